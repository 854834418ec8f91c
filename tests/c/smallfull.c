/* Small blocks beyond what DLM memory can hold, and small blocks that grow past the threshold
 * and shrink back: with dlmcc, once the local budget and the servers are full, further small
 * blocks come from the C library and the program goes on as natively; every block keeps its
 * data through realloc wherever it moves. The output must equal the gcc build's.
 *
 *   smallfull MIB     (MIB: how much data in 4 KiB blocks) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 4000

static uint64_t fill(unsigned char *p, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7);
    return seed;
}

static int intact(const unsigned char *p, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7))
            return 0;
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: smallfull MIB\n");
        return 2;
    }
    size_t count = (size_t)atol(argv[1]) * 1048576 / BLOCK;
    unsigned char **blocks = malloc(count * sizeof *blocks);
    if (blocks == NULL)
        return 1;
    for (size_t b = 0; b < count; b++) {
        blocks[b] = malloc(BLOCK);
        if (blocks[b] == NULL) {
            printf("malloc failed at block %zu\n", b);
            return 1;
        }
        fill(blocks[b], BLOCK, b);
    }
    size_t bad = 0;
    for (size_t b = 0; b < count; b++)
        bad += !intact(blocks[b], BLOCK, b);
    printf("%zu blocks of %d bytes, %zu damaged\n", count, BLOCK, bad);

    /* Grown past the threshold (1 MiB) and shrunk back, a first and a last block. */
    size_t moved_bad = 0;
    for (size_t b = 0; b < count; b += count - 1) {
        blocks[b] = realloc(blocks[b], 3 << 20);
        moved_bad += !intact(blocks[b], BLOCK, b);
        fill(blocks[b], 3 << 20, b + 1);
        blocks[b] = realloc(blocks[b], 100);
        moved_bad += !intact(blocks[b], 100, b + 1);
        blocks[b] = realloc(blocks[b], 2000);
        moved_bad += !intact(blocks[b], 100, b + 1);
    }
    printf("realloc across the threshold: %zu damaged\n", moved_bad);

    for (size_t b = 0; b < count; b++)
        free(blocks[b]);
    free(blocks);
    printf("freed\n");
    return 0;
}
