/* Blocks the program allocated (in DLM memory when built by dlmcc) freed, grown, measured and
 * read into by code dlmcc did not rewrite: a macro from a header, a library built with plain cc
 * (realloc, free, read(2)), glibc's getline, a free through a function pointer, an atexit
 * handler and a destructor that run after main. The output must equal the gcc build's.
 *
 *   main DIR MIB        (MIB: size of each big array)
 */
#define _GNU_SOURCE /* getline, reallocarray */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arrays.h"

void *lib_grow(void *p, size_t bytes);
void lib_free(void *p);
long lib_read_all(int fd, void *p, size_t bytes);

static size_t n;                /* doubles per big array */
static double *late;            /* read and freed after main */
static double *last;            /* read by a destructor */

static void fill(double *a, size_t count, double seed) {
    for (size_t i = 0; i < count; i++)
        a[i] = seed + (double)(i % 1000) * 0.25;
}

static double sum(const double *a, size_t count) {
    double s = 0;
    for (size_t i = 0; i < count; i++)
        s += a[i];
    return s;
}

static void header_macro_frees(void) {
    double *arrays[3] = {alloc_aligned(n), alloc_plain(n), alloc_zeroed(n)};
    printf("zeroed: %.1f\n", sum(arrays[2], n));
    for (int k = 0; k < 3; k++) {
        fill(arrays[k], n, k);
        printf("array %d: %.1f usable %d\n", k, sum(arrays[k], n), malloc_usable_size(arrays[k]) >= n * 8);
        FREE_ARRAY(arrays[k]);
    }
}

/* Grown by realloc in the plain library: the data must survive the move. */
static void library_grows_and_frees(size_t bytes) {
    size_t count = bytes / sizeof(double);
    double *a = malloc(bytes);
    fill(a, count, 7);
    double before = sum(a, count);
    a = lib_grow(a, 2 * bytes);
    fill(a + count, count, 9);
    printf("grown %zu: %.1f then %.1f\n", bytes, before, sum(a, 2 * count));
    a = lib_grow(a, bytes / 2);
    printf("shrunk: %.1f\n", sum(a, count / 2));
    lib_free(a);
}

static void getline_grows_a_buffer(const char *dir, size_t line_bytes) {
    char path[4096];
    snprintf(path, sizeof path, "%s/line.txt", dir);
    FILE *f = fopen(path, "w+");
    if (!f) {
        perror(path);
        exit(1);
    }
    for (size_t i = 0; i < line_bytes; i++)
        fputc('a' + (int)(i % 26), f);
    fputs("\nshort\n", f);
    rewind(f);
    size_t cap = 2u << 20;
    char *line = malloc(cap);
    memset(line, 'x', cap);
    ssize_t got = getline(&line, &cap, f);
    uint64_t h = 0;
    for (ssize_t i = 0; i < got; i++)
        h = h * 31 + (unsigned char)line[i];
    printf("getline: %zd bytes, hash %llu, capacity grew %d\n", got, (unsigned long long)h, cap > (2u << 20));
    got = getline(&line, &cap, f);
    printf("getline: %zd bytes: %s", got, line);
    free(line);
    fclose(f);
    remove(path);
}

static void free_through_a_pointer(void) {
    void (*release)(void *) = free;
    void *(*grow)(void *, size_t) = realloc;
    double *a = malloc(n * sizeof(double));
    fill(a, n, 3);
    a = grow(a, n * sizeof(double) + 4096);
    printf("through pointers: %.1f\n", sum(a, n));
    release(a);
}

/* The C library's answers for the corner cases, for DLM blocks too. */
static void corner_cases(void) {
    double *a = malloc(n * sizeof(double));
    a[n - 1] = 1;
    a = realloc(a, 0);
    printf("realloc to 0: %s\n", a ? "a block" : "NULL");
    free(a);
    volatile size_t huge = SIZE_MAX / 2; /* opaque: the overflow is the point */
    errno = 0;
    void *b = reallocarray(NULL, huge, 4);
    printf("reallocarray overflow: %s, ENOMEM %d\n", b ? "a block" : "NULL", errno == ENOMEM);
    double *c = reallocarray(malloc(n * sizeof(double)), n, 2 * sizeof(double));
    fill(c, 2 * n, 4);
    printf("reallocarray: %.1f\n", sum(c, 2 * n));
    free(c);
}

static void after_main(void) {
    printf("atexit: %.1f\n", sum(late, n));
    free(late);
}

/* A big block written to a file, then read back into another by the plain library's read(2). */
static void library_reads_into(const char *dir, size_t bytes) {
    char path[4096];
    size_t count = bytes / sizeof(double);
    double *out = malloc(bytes), *in = malloc(bytes);
    fill(out, count, 3);
    snprintf(path, sizeof path, "%s/library_read.bin", dir);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(out, 1, bytes, f) != bytes || fclose(f)) {
        perror("fwrite");
        exit(1);
    }
    int fd = open(path, O_RDONLY);
    long got = fd < 0 ? -1 : lib_read_all(fd, in, bytes);
    if (got < 0)
        perror("lib_read_all");
    printf("library read %ld: %.1f equal %d\n", got, sum(in, count), memcmp(in, out, bytes) == 0);
    close(fd);
    free(out);
    free(in);
}

__attribute__((destructor)) static void destructor(void) {
    printf("destructor: %.1f\n", sum(last, n));
    free(last);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s DIR MIB\n", argv[0]);
        return 2;
    }
    size_t mib = strtoul(argv[2], NULL, 10);
    n = (mib << 20) / sizeof(double);
    header_macro_frees();
    library_grows_and_frees(mib << 20);
    library_grows_and_frees(64u << 10); /* below the threshold: a small block */
    library_reads_into(argv[1], mib << 20);
    getline_grows_a_buffer(argv[1], 5u << 20);
    free_through_a_pointer();
    corner_cases();
    late = malloc(n * sizeof(double));
    fill(late, n, 5);
    last = malloc(n * sizeof(double));
    fill(last, n, 6);
    atexit(after_main);
    printf("main done\n");
    return 0;
}
