/* bigarray: the classic DLM API on an array several times larger than the local budget.
 *
 * Fills BLOCKS blocks of DLM memory with a deterministic pattern, sweeps them sequentially and
 * in a scattered order (read-modify-write), frees and reallocates one block (which must read
 * as zeros), then checks every element and prints a checksum.  Built with -DNATIVE it uses
 * calloc instead, so its checksum can be compared with the DLM run.
 *
 *   dlmcc -O2 bigarray.c -o bigarray
 *   DLM_LOCAL_MEM=256M ./bigarray 1024        # 1024 MiB of data through a 256 MiB budget
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef NATIVE
#define dlm_startup(argc, argv) 0
#define dlm_alloc(size) calloc(1, size)
#define dlm_free free
#define dlm_shutdown() ((void)0)
#else
#include <dlm.h>
#endif

#define BLOCKS 4

static uint64_t mix(uint64_t x) { /* splitmix64 finalizer */
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* The value element i of block b must hold after all passes. */
static uint64_t expected(int b, uint64_t i) {
    if (b == 1) return mix(i ^ 0xabcdef);          /* the reallocated block */
    uint64_t g = (uint64_t)b << 40 | i;
    return (mix(g) * 3 + 1) + (g ^ 0x5555);
}

int main(int argc, char **argv) {
    dlm_startup(&argc, &argv);
    uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 1024;
    uint64_t n = (mib << 20) / BLOCKS / sizeof(uint64_t); /* elements per block, a power of two */
    uint64_t *block[BLOCKS];
    for (int b = 0; b < BLOCKS; b++) {
        block[b] = dlm_alloc(n * sizeof(uint64_t));
        if (!block[b]) return 1;
    }
    for (int b = 0; b < BLOCKS; b++)            /* fill */
        for (uint64_t i = 0; i < n; i++) block[b][i] = mix((uint64_t)b << 40 | i);
    for (int b = 0; b < BLOCKS; b++)            /* sequential read-modify-write */
        for (uint64_t i = 0; i < n; i++) block[b][i] = block[b][i] * 3 + 1;
    uint64_t stride = 0x9e3779b1 | 1;          /* odd: visits every index once, scattered */
    for (int b = 0; b < BLOCKS; b++)            /* scattered read-modify-write */
        for (uint64_t k = 0; k < n; k++) {
            uint64_t i = (k * stride) & (n - 1);
            block[b][i] += ((uint64_t)b << 40 | i) ^ 0x5555;
        }
    dlm_free(block[1]);                         /* free and reallocate one block */
    block[1] = dlm_alloc(n * sizeof(uint64_t));
    if (!block[1]) return 1;
    uint64_t stale = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (block[1][i] != 0) stale++;
        block[1][i] = mix(i ^ 0xabcdef);
    }
    uint64_t bad = 0, sum = 0;
    for (int b = 0; b < BLOCKS; b++)
        for (uint64_t i = 0; i < n; i++) {
            if (block[b][i] != expected(b, i)) bad++;
            sum += block[b][i] * (i | 1);
        }
    printf("elements: %" PRIu64 " mismatches: %" PRIu64 " stale: %" PRIu64 "\n", n * BLOCKS, bad, stale);
    printf("checksum: %016" PRIx64 "\n", sum);
    for (int b = 0; b < BLOCKS; b++) dlm_free(block[b]);
    dlm_shutdown();
    return bad || stale ? 1 : 0;
}
