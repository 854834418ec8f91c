/* The ceiling of one TCP stream over a link, without DLM or MPI (bench/cluster.py runs it):
 *
 *   tcp_probe serve PORT           accepts one connection and reads until EOF; prints
 *                                  `listening PORT` once it listens (PORT 0: the kernel's pick),
 *                                  then `RESULT tcp_stream <GB/s> GB/s`, the bytes received over
 *                                  the time from accept to EOF
 *   tcp_probe send HOST PORT MIB   connects, writes MIB MiB in 4 MiB writes, shuts down its
 *                                  write side and waits for the peer to close
 */
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (4UL << 20)

static void die(const char *what) {
    perror(what);
    exit(1);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int serve(int port, char *buf) {
    int one = 1, s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    socklen_t len = sizeof addr;
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(s, (struct sockaddr *)&addr, len) || listen(s, 1) || getsockname(s, (struct sockaddr *)&addr, &len))
        die("listen");
    printf("listening %d\n", ntohs(addr.sin_port));
    fflush(stdout);
    int c = accept(s, NULL, NULL);
    if (c < 0)
        die("accept");
    double start = now();
    size_t received = 0;
    ssize_t n;
    while ((n = read(c, buf, CHUNK)) > 0)
        received += n;
    if (n < 0)
        die("read");
    printf("RESULT tcp_stream %.4f GB/s\n", received / (now() - start) / 1e9);
    return close(c);
}

static int send_data(const char *host, const char *port, size_t bytes, char *buf) {
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
    int err = getaddrinfo(host, port, &hints, &ai), s;
    if (err) {
        fprintf(stderr, "%s: %s\n", host, gai_strerror(err));
        exit(1);
    }
    if ((s = socket(AF_INET, SOCK_STREAM, 0)) < 0 || connect(s, ai->ai_addr, ai->ai_addrlen))
        die("connect");
    freeaddrinfo(ai);
    for (size_t off = 0, n; off < bytes; off += n) {
        size_t want = bytes - off < CHUNK ? bytes - off : CHUNK;
        ssize_t w = write(s, buf, want);
        if (w < 0)
            die("write");
        n = w;
    }
    if (shutdown(s, SHUT_WR))
        die("shutdown");
    while (read(s, buf, CHUNK) > 0) /* until the receiver has everything and closes */
        ;
    return close(s);
}

int main(int argc, char **argv) {
    char *buf = malloc(CHUNK);
    if (!buf)
        die("malloc");
    memset(buf, 1, CHUNK);
    if (argc == 3 && !strcmp(argv[1], "serve"))
        return serve(atoi(argv[2]), buf);
    if (argc == 5 && !strcmp(argv[1], "send"))
        return send_data(argv[2], argv[3], strtoul(argv[4], NULL, 10) << 20, buf);
    fprintf(stderr, "usage: tcp_probe serve PORT | tcp_probe send HOST PORT MIB\n");
    return 2;
}
