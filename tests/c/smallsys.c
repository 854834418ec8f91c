/* Small blocks handed to the kernel and DLM memory that fills up: a path, a struct stat and a
 * struct timespec from malloc passed to open, stat and nanosleep after 64 MiB of other small
 * blocks have pushed them out of a small budget; then 30 MiB of small blocks freed and one
 * 30 MiB block allocated, which must succeed as it does natively. The output equals gcc's. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ROW 2000

/* `bytes` of small blocks, each filled with `fill`. */
static char **rows_of(size_t bytes, int fill, size_t *count) {
    *count = bytes / ROW;
    char **rows = malloc(*count * sizeof *rows);
    for (size_t i = 0; i < *count; i++) {
        rows[i] = malloc(ROW);
        memset(rows[i], fill, ROW);
    }
    return rows;
}

static void free_rows(char **rows, size_t count) {
    for (size_t i = 0; i < count; i++)
        free(rows[i]);
    free(rows);
}

static void small_blocks_to_the_kernel(void) {
    char *path = malloc(64);
    strcpy(path, "/proc/self/stat");
    struct stat *st = malloc(sizeof *st);
    struct timespec *pause = malloc(sizeof *pause);
    pause->tv_sec = 0;
    pause->tv_nsec = 1000;
    size_t count;
    char **rows = rows_of(64u << 20, 1, &count);
    int fd = open(path, O_RDONLY);
    printf("open: %s\n", fd >= 0 ? "ok" : strerror(errno));
    if (fd >= 0)
        close(fd);
    for (size_t i = 0; i < count; i++)
        memset(rows[i], 2, ROW);
    printf("stat: %s\n", stat(path, st) == 0 && st->st_size == 0 ? "ok" : strerror(errno));
    for (size_t i = 0; i < count; i++)
        memset(rows[i], 3, ROW);
    printf("nanosleep: %s\n", nanosleep(pause, NULL) == 0 ? "ok" : strerror(errno));
    free_rows(rows, count);
    free(path);
    free(st);
    free(pause);
}

static void a_big_block_after_small_ones(void) {
    size_t count;
    char **rows = rows_of(30u << 20, 1, &count);
    free_rows(rows, count);
    char *big = malloc(30u << 20);
    printf("a big block after the small ones were freed: %s\n", big ? "ok" : "NULL");
    if (big) {
        memset(big, 4, 30u << 20);
        printf("its last byte: %d\n", big[(30u << 20) - 1]);
        free(big);
    }
}

int main(void) {
    small_blocks_to_the_kernel();
    a_big_block_after_small_ones();
    return 0;
}
