/* DLM memory reclaimed behind the pager's back: with swap on, the program pages its own DLM
 * memory out (MADV_PAGEOUT, as the kernel's reclaim or a DAMON pageout scheme would) between
 * sweeps that read it (its pages stay clean and write-protected) and sweeps that write it.
 * Swapped-out parts of pages then travel through the pager's moves. Prints "pageout ok" when
 * every element holds what was written.
 *
 *   pageout MIB ROUNDS */
#include <dlm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

int main(int argc, char **argv) {
    dlm_startup(&argc, &argv);
    if (argc < 3) {
        fprintf(stderr, "usage: pageout MIB ROUNDS\n");
        return 2;
    }
    size_t bytes = strtoull(argv[1], NULL, 10) << 20, words = bytes / sizeof(uint64_t);
    int rounds = atoi(argv[2]), refused = 0;
    uint64_t *a = dlm_alloc(bytes), sum = 0;
    if (!a) return 1;
    for (size_t i = 0; i < words; i++) a[i] = i;
    for (int r = 0; r < rounds; r++) {
        for (size_t i = 0; i < words; i++) sum += a[i];
        refused |= madvise(a, bytes, MADV_PAGEOUT);
        for (size_t i = 0; i < words; i++) a[i] += 1;
        refused |= madvise(a, bytes, MADV_PAGEOUT);
    }
    size_t bad = 0;
    for (size_t i = 0; i < words; i++) bad += a[i] != i + (uint64_t)rounds;
    if (refused) perror("madvise(MADV_PAGEOUT)");
    printf("sum %llu bad %zu\n%s\n", (unsigned long long)sum, bad, bad || refused ? "pageout FAILED" : "pageout ok");
    return bad != 0 || refused;
}
