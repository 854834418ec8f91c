/* The kernel touching DLM memory: fwrite/fread, write/read/pread/pwrite, writev/readv,
 * send/recv over a stream and a datagram socket pair, and fputs of DLM buffers several times
 * larger than the local budget, and read/fread into a big static array (checked by
 * _FORTIFY_SOURCE when built with it); a read that starts on the oldest resident page. All
 * byte-exact against the pattern. Exits 0 when all match. */
#include <dlm.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Moved to DLM memory by dlmcc; its size is known to _FORTIFY_SOURCE. */
static uint8_t table[4 << 20];

static uint8_t pattern(uint64_t i) { return (uint8_t)((i * 2654435761u) >> 13 ^ i >> 20); }

static int check(const uint8_t *buf, uint64_t n, uint64_t base, const char *what) {
    for (uint64_t i = 0; i < n; i++)
        if (buf[i] != pattern(base + i)) {
            printf("%s: byte %llu differs\n", what, (unsigned long long)(base + i));
            return 1;
        }
    return 0;
}

/* Writes `n` bytes of the pattern to `path` from ordinary memory. */
static int write_pattern_file(const char *path, uint64_t n) {
    uint8_t *plain = malloc(n);
    for (uint64_t i = 0; i < n; i++) plain[i] = pattern(i);
    FILE *f = fopen(path, "wb");
    int bad = !f || fwrite(plain, 1, n, f) != n || fclose(f);
    free(plain);
    return bad;
}

/* A read(2) that starts on the oldest resident page and runs on into absent ones: bringing
 * those in must not evict the first, which the kernel is about to write. Runs first, with
 * nothing else resident. */
static int read_from_the_oldest_page(const char *dir, uint8_t *target, uint8_t *filler) {
    char path[4096];
    struct dlm_stats s;
    dlm_get_stats(&s);
    uint64_t len = s.local_budget_bytes / 4; /* one slice */
    snprintf(path, sizeof path, "%s/oldest.bin", dir);
    if (write_pattern_file(path, len)) { perror("oldest.bin"); return 1; }
    target[0] = 1; /* the oldest resident page */
    for (uint64_t off = 0; off + 2 * s.page_size <= s.local_budget_bytes; off += s.page_size)
        filler[off] = 1; /* the budget is full behind it */
    int fd = open(path, O_RDONLY);
    ssize_t got = fd < 0 ? -1 : read(fd, target, len);
    if (got != (ssize_t)len) { perror("read from the oldest page"); return 1; }
    close(fd);
    return check(target, len, 0, "read from the oldest page");
}

/* One datagram from DLM memory to DLM memory: it must arrive whole, as one message. */
static int datagram(const uint8_t *from, uint8_t *to, size_t len) {
    int sv[2], size = (int)(2 * len);
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv)) { perror("socketpair"); return 1; }
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    ssize_t sent = send(sv[0], from, len, 0);
    ssize_t got = recv(sv[1], to, len, 0);
    close(sv[0]);
    close(sv[1]);
    if (sent != (ssize_t)len || got != (ssize_t)len) {
        printf("datagram: sent %zd, received %zd of %zu\n", sent, got, len);
        return 1;
    }
    return check(to, len, 0, "datagram");
}

/* A string in DLM memory longer than the stream's buffer: stdio writes it straight from there. */
static int long_string(const char *dir, char *text, size_t len) {
    char path[4096];
    for (size_t i = 0; i < len; i++) text[i] = (char)('a' + i % 26);
    text[len] = 0;
    snprintf(path, sizeof path, "%s/string.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) == EOF || fclose(f)) { perror("fputs"); return 1; }
    char *back = malloc(len + 1);
    f = fopen(path, "r");
    size_t got = f ? fread(back, 1, len + 1, f) : 0;
    if (f) fclose(f);
    int bad = got != len || memcmp(back, text, len) != 0;
    if (bad) printf("fputs: %zu of %zu bytes came back\n", got, len);
    free(back);
    return bad;
}

/* read(2) and fread of `len` bytes (known at run time only, so that _FORTIFY_SOURCE checks
 * them) into a static array. */
static int into_the_table(const char *path, size_t len) {
    int fd = open(path, O_RDONLY);
    if (fd < 0 || read(fd, table, len) != (ssize_t)len) { perror("read into table"); return 1; }
    close(fd);
    int bad = check(table, len, 0, "read into table");
    memset(table, 0, len);
    FILE *f = fopen(path, "rb");
    if (!f || fread(table, 1, len, f) != len || fclose(f)) { perror("fread into table"); return 1; }
    return bad | check(table, len, 0, "fread into table");
}

struct sending {
    int fd;
    const uint8_t *data;
    uint64_t len;
};

static void *send_all(void *arg) {
    struct sending *s = arg;
    for (uint64_t off = 0; off < s->len;) {
        ssize_t sent = send(s->fd, s->data + off, s->len - off, 0);
        if (sent <= 0) { perror("send"); exit(1); }
        off += (uint64_t)sent;
    }
    return NULL;
}

/* writev out of two halves of `from`, readv back into `to` (an item-sized tail on its own). */
static int vectors(const char *path, uint8_t *from, uint8_t *to, uint64_t n) {
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    struct iovec out[2] = {{from, n / 2}, {from + n / 2, n - n / 2}};
    if (fd < 0 || writev(fd, out, 2) != (ssize_t)n) { perror("writev"); return 1; }
    lseek(fd, 0, SEEK_SET);
    struct iovec in[2] = {{to, n - 8}, {to + n - 8, 8}};
    if (readv(fd, in, 2) != (ssize_t)n) { perror("readv"); return 1; }
    close(fd);
    return check(to, n, 0, "readv");
}

/* send from `from` on one end of a socket pair (another thread), recv into `to` on the other. */
static int socket_pair(const uint8_t *from, uint8_t *to, uint64_t n) {
    int sv[2];
    pthread_t sender;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) { perror("socketpair"); return 1; }
    struct sending s = {sv[0], from, n};
    pthread_create(&sender, NULL, send_all, &s);
    for (uint64_t off = 0; off < n;) {
        ssize_t got = recv(sv[1], to + off, n - off, MSG_WAITALL);
        if (got <= 0) { perror("recv"); return 1; }
        off += (uint64_t)got;
    }
    pthread_join(sender, NULL);
    close(sv[0]);
    close(sv[1]);
    return check(to, n, 0, "recv");
}

int main(int argc, char **argv) {
    dlm_startup(&argc, &argv);
    if (argc < 2) { fprintf(stderr, "usage: fileio DIR [MiB]\n"); return 2; }
    uint64_t n = (argc > 2 ? strtoull(argv[2], NULL, 10) : 64) << 20;
    char path[4096];
    uint8_t *a = dlm_alloc(n), *b = dlm_alloc(n), *c = dlm_alloc(n);
    if (!a || !b || !c) return 1;
    int bad = read_from_the_oldest_page(argv[1], c, b);
    for (uint64_t i = 0; i < n; i++) a[i] = pattern(i);

    snprintf(path, sizeof path, "%s/stdio.bin", argv[1]);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(a, 1, n, f) != n || fclose(f)) { perror("fwrite"); return 1; }
    f = fopen(path, "rb");
    if (!f || fread(b, 1, n, f) != n || fclose(f)) { perror("fread"); return 1; }
    bad |= check(b, n, 0, "fread");
    volatile size_t table_len = sizeof table; /* unknown to the compiler */
    if (n >= sizeof table) bad |= into_the_table(path, table_len);

    /* The file itself, read into ordinary memory. */
    uint8_t *plain = malloc(1 << 20);
    int fd = open(path, O_RDONLY);
    for (uint64_t off = 0; off < n; off += 1 << 20) {
        if (read(fd, plain, 1 << 20) != 1 << 20) { perror("read"); return 1; }
        bad |= check(plain, 1 << 20, off, "file");
    }
    close(fd);

    /* write(2) out of DLM memory, read(2) and pread(2) into it. */
    snprintf(path, sizeof path, "%s/raw.bin", argv[1]);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    for (uint64_t off = 0; off < n;) {
        ssize_t w = write(fd, b + off, n - off);
        if (w <= 0) { perror("write"); return 1; }
        off += (uint64_t)w;
    }
    lseek(fd, 0, SEEK_SET);
    for (uint64_t off = 0; off < n;) {
        ssize_t r = read(fd, c + off, n - off);
        if (r <= 0) { perror("read"); return 1; }
        off += (uint64_t)r;
    }
    bad |= check(c, n, 0, "read");
    uint64_t mid = n / 3;
    if (pread(fd, a + 5, 1 << 20, mid) != 1 << 20) { perror("pread"); return 1; }
    bad |= check(a + 5, 1 << 20, mid, "pread");
    if (pwrite(fd, c + mid, 1 << 20, 0) != 1 << 20 || pread(fd, b, 1 << 20, 0) != 1 << 20) { perror("pwrite"); return 1; }
    bad |= check(b, 1 << 20, mid, "pwrite");
    close(fd);

    for (uint64_t i = 0; i < n; i++) a[i] = pattern(i);
    memset(c, 0, n);
    snprintf(path, sizeof path, "%s/vectors.bin", argv[1]);
    bad |= vectors(path, a, c, n);
    memset(b, 0, n);
    bad |= socket_pair(c, b, n);
    bad |= datagram(a, b, 160 << 10);
    bad |= long_string(argv[1], (char *)c, n - 1);

    struct dlm_stats s;
    dlm_get_stats(&s);
    printf("evicted %llu written back %llu fetched %llu\n", (unsigned long long)s.pages_evicted,
           (unsigned long long)s.bytes_written_back, (unsigned long long)s.bytes_fetched);
    printf("budget %llu page %llu servers %llu peak<=budget %d\n", (unsigned long long)s.local_budget_bytes,
           (unsigned long long)s.page_size, (unsigned long long)s.servers,
           s.peak_resident_bytes <= s.local_budget_bytes && s.wait_seconds > 0);
    printf(bad ? "fileio FAILED\n" : "fileio ok\n");
    return bad;
}
