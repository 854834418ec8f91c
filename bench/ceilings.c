/* Physical ceilings of this machine for DLM's paging path, measured without DLM:
 *
 *   ceilings MiB
 *
 * prints `RESULT <name> <value> <unit>` lines (as dlmbench does) for
 *   memcpy                  one thread copying between large buffers: bounds any step that copies
 *                           page data inside one process (staging, zero-fill, UFFDIO_COPY).
 *   thp_move, thp_move_2m   UFFDIO_MOVE of whole 2 MiB transparent huge pages: bounds installing
 *                           and evicting pages when DLM pages are huge pages.
 *   thp_move_huge_fraction  the share of the moved data that stayed in huge pages (1 = none split;
 *                           below 1 the thp_move numbers include 4 KiB moves).
 *   pte_move, pte_move_256k UFFDIO_MOVE of 4 KiB pages in 256 KiB units: the same bound when the
 *                           pages are not huge.
 *   copy_between_processes  process_vm_readv of 2 MiB chunks from another process: bounds the
 *                           transport's copy between the program and a memory server on one host.
 * GB/s count the bytes copied or moved. Needs Linux 6.8+ and root (or /dev/userfaultfd access)
 * for the moves; without them the move ceilings are skipped with a note on stderr.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1UL << 20)
#define HUGE_PAGE (2 * MIB)
/* Each ceiling repeats its work for at least this long, so that timer and scheduling noise
 * stay small against the total. */
#define MIN_SECONDS 0.3

/* The installed headers predate UFFDIO_MOVE (Linux 6.8). Its feature bit is 16 (bit 10 is
 * UFFD_FEATURE_MINOR_SHMEM). */
#ifndef UFFDIO_MOVE
#define UFFD_FEATURE_MOVE (1ULL << 16)
struct uffdio_move {
    uint64_t dst, src, len, mode;
    int64_t move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, 0x05, struct uffdio_move)
#endif

static void die(const char *what) {
    perror(what);
    exit(1);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void result(const char *name, double value, const char *unit) {
    printf("RESULT %s %.4f %s\n", name, value, unit);
}

/* `bytes` of private anonymous memory starting on a 2 MiB boundary, nothing else mapped in its
 * huge pages (the slack is unmapped), so that THP and smaps see exactly this range. */
static char *map_aligned(size_t bytes) {
    size_t slack = HUGE_PAGE;
    char *raw = mmap(NULL, bytes + slack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        die("mmap");
    char *start = (char *)(((uintptr_t)raw + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1));
    char *end = start + bytes, *raw_end = raw + bytes + slack;
    if (start > raw && munmap(raw, start - raw))
        die("munmap");
    if (raw_end > end && munmap(end, raw_end - end))
        die("munmap");
    return start;
}

static void touch(char *p, size_t bytes, int value) {
    memset(p, value, bytes);
}

/* memcpy: the bound for copies inside one process. */
static void measure_memcpy(size_t bytes) {
    char *a = map_aligned(bytes), *b = map_aligned(bytes);
    touch(a, bytes, 1);
    touch(b, bytes, 2);
    size_t copied = 0;
    double start = now();
    while (now() - start < MIN_SECONDS) {
        memcpy(b, a, bytes);
        memcpy(a, b, bytes);
        copied += 2 * bytes;
    }
    result("memcpy", copied / (now() - start) / 1e9, "GB/s");
    munmap(a, bytes);
    munmap(b, bytes);
}

/* A userfaultfd with UFFDIO_MOVE, or -1 (with the reason on stderr) if this kernel or user
 * cannot have one. Nothing here serves faults: with UFFD_FEATURE_SIGBUS a stray access to a
 * missing page crashes instead of waiting forever. */
static int open_uffd(void) {
    int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        perror("move ceilings skipped: userfaultfd");
        return -1;
    }
    struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_MOVE | UFFD_FEATURE_SIGBUS};
    if (ioctl(fd, UFFDIO_API, &api)) {
        perror("move ceilings skipped: UFFDIO_API with UFFD_FEATURE_MOVE");
        close(fd);
        return -1;
    }
    return fd;
}

/* Both ranges take part as destinations (the data goes back and forth), so both are registered;
 * MISSING mode is the one the pager registers DLM memory with. */
static void register_range(int uffd, char *p, size_t bytes) {
    struct uffdio_register reg = {
        .range = {.start = (uintptr_t)p, .len = bytes},
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };
    if (ioctl(uffd, UFFDIO_REGISTER, &reg))
        die("UFFDIO_REGISTER");
}

/* Moves `bytes` from `src` to `dst`, one UFFDIO_MOVE per `unit`. */
static void move_all(int uffd, char *dst, char *src, size_t bytes, size_t unit) {
    for (size_t off = 0; off < bytes; off += unit) {
        struct uffdio_move m = {.dst = (uintptr_t)dst + off, .src = (uintptr_t)src + off, .len = unit};
        if (ioctl(uffd, UFFDIO_MOVE, &m))
            die("UFFDIO_MOVE");
        if ((size_t)m.move != unit) {
            fprintf(stderr, "UFFDIO_MOVE moved %lld of %zu bytes\n", (long long)m.move, unit);
            exit(1);
        }
    }
}

/* AnonHugePages (bytes) of the mappings of /proc/self/smaps that overlap [p, p + bytes). The two
 * ranges of a move may have merged into one mapping; the other one is empty when this runs. */
static size_t huge_bytes(const char *p, size_t bytes) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        die("/proc/self/smaps");
    char line[256];
    int inside = 0;
    size_t total = 0, kib;
    uintptr_t lo, hi;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
            inside = lo < (uintptr_t)p + bytes && hi > (uintptr_t)p;
        else if (inside && sscanf(line, "AnonHugePages: %zu kB", &kib) == 1)
            total += kib << 10;
    }
    fclose(f);
    return total;
}

/* Moves `bytes` of data between two ranges, back and forth in `unit` moves, for MIN_SECONDS.
 * `advice` is MADV_HUGEPAGE (whole 2 MiB pages move as one PMD) or MADV_NOHUGEPAGE (4 KiB PTEs).
 * Reports GB/s as `name`, the time per unit as `unit_name`; returns the share of the data that
 * was in huge pages, before and after the moves, whichever is lower. */
static double measure_moves(int uffd, size_t bytes, size_t unit, int advice, const char *name, const char *unit_name) {
    char *a = map_aligned(bytes), *b = map_aligned(bytes);
    if (madvise(a, bytes, advice) || madvise(b, bytes, advice))
        die("madvise");
    touch(a, bytes, 3); /* before registering: afterwards a missing page faults */
    size_t huge_before = huge_bytes(a, bytes);
    register_range(uffd, a, bytes);
    register_range(uffd, b, bytes);
    size_t moved = 0;
    double start = now();
    while (now() - start < MIN_SECONDS) {
        move_all(uffd, b, a, bytes, unit);
        move_all(uffd, a, b, bytes, unit);
        moved += 2 * bytes;
    }
    double seconds = now() - start;
    size_t huge_after = huge_bytes(a, bytes);
    if (a[0] != 3 || a[bytes - 1] != 3) {
        fprintf(stderr, "%s: data changed by the moves\n", name);
        exit(1);
    }
    result(name, moved / seconds / 1e9, "GB/s");
    result(unit_name, seconds / (moved / unit) * 1e6, "us");
    munmap(a, bytes);
    munmap(b, bytes);
    return (double)(huge_before < huge_after ? huge_before : huge_after) / bytes;
}

/* process_vm_readv from a forked child: the copy the transport makes between processes. The
 * child writes its buffer first (its own pages, not shared copy-on-write with the parent's),
 * then waits until the parent closes the pipe. 4 KiB pages on both sides, as plain
 * anonymous memory gets by default. */
static void measure_copy_between_processes(size_t bytes) {
    char *src = map_aligned(bytes), *dst = map_aligned(bytes);
    int ready[2], done[2];
    if (pipe(ready) || pipe(done))
        die("pipe");
    pid_t child = fork();
    if (child < 0)
        die("fork");
    if (child == 0) {
        char c = 0;
        close(done[1]);
        touch(src, bytes, 4);
        if (write(ready[1], &c, 1) != 1)
            _exit(1);
        ssize_t r = read(done[0], &c, 1); /* returns 0 when the parent closes it */
        _exit(r == 0 ? 0 : 1);
    }
    char c;
    close(done[0]);
    touch(dst, bytes, 5);
    if (read(ready[0], &c, 1) != 1)
        die("child not ready");
    size_t copied = 0, chunk = HUGE_PAGE;
    double start = now();
    do { /* at least two passes (1 GiB at 512 MiB) */
        for (size_t off = 0; off < bytes; off += chunk) {
            struct iovec local = {dst + off, chunk}, remote = {src + off, chunk};
            if (process_vm_readv(child, &local, 1, &remote, 1, 0) != (ssize_t)chunk)
                die("process_vm_readv");
        }
        copied += bytes;
    } while (copied < 2 * bytes || now() - start < MIN_SECONDS);
    double seconds = now() - start;
    close(done[1]);
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status))
        die("child");
    if (dst[0] != 4 || dst[bytes - 1] != 4) {
        fprintf(stderr, "copy_between_processes: wrong data\n");
        exit(1);
    }
    result("copy_between_processes", copied / seconds / 1e9, "GB/s");
    munmap(src, bytes);
    munmap(dst, bytes);
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 512;
    if (mib < 2 || mib % 2) {
        fprintf(stderr, "usage: ceilings MiB (an even number, at least 2)\n");
        return 2;
    }
    size_t bytes = mib * MIB;
    setvbuf(stdout, NULL, _IOLBF, 0);
    measure_memcpy(bytes);
    /* The moves run before the fork: pages shared with a child cannot be moved (EBUSY). */
    int uffd = open_uffd();
    if (uffd >= 0) {
        double huge = measure_moves(uffd, bytes, HUGE_PAGE, MADV_HUGEPAGE, "thp_move", "thp_move_2m");
        result("thp_move_huge_fraction", huge, "fraction");
        if (huge < 0.99)
            fprintf(stderr, "thp_move: only %.0f%% of the data was in huge pages (THP off?)\n", huge * 100);
        measure_moves(uffd, bytes, 256 << 10, MADV_NOHUGEPAGE, "pte_move", "pte_move_256k");
        close(uffd);
    }
    measure_copy_between_processes(bytes);
    return 0;
}
