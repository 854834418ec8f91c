/* The kernel touching DLM memory: fwrite/fread, write/read/pread, writev/readv and send/recv
 * over a socket pair of DLM buffers several times larger than the local budget, byte-exact
 * against the pattern. Exits 0 when all match. */
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

static uint8_t pattern(uint64_t i) { return (uint8_t)((i * 2654435761u) >> 13 ^ i >> 20); }

static int check(const uint8_t *buf, uint64_t n, uint64_t base, const char *what) {
    for (uint64_t i = 0; i < n; i++)
        if (buf[i] != pattern(base + i)) {
            printf("%s: byte %llu differs\n", what, (unsigned long long)(base + i));
            return 1;
        }
    return 0;
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
    for (uint64_t i = 0; i < n; i++) a[i] = pattern(i);

    snprintf(path, sizeof path, "%s/stdio.bin", argv[1]);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(a, 1, n, f) != n || fclose(f)) { perror("fwrite"); return 1; }
    f = fopen(path, "rb");
    if (!f || fread(b, 1, n, f) != n || fclose(f)) { perror("fread"); return 1; }
    int bad = check(b, n, 0, "fread");

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
    close(fd);

    for (uint64_t i = 0; i < n; i++) a[i] = pattern(i);
    memset(c, 0, n);
    snprintf(path, sizeof path, "%s/vectors.bin", argv[1]);
    bad |= vectors(path, a, c, n);
    memset(b, 0, n);
    bad |= socket_pair(c, b, n);

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
