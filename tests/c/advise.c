/* dlm_advise: every advice keeps the data; don't-need empties local memory, random keeps the
 * pager at 4 KiB blocks, sequential and will-need bring whole pages; bad advice and memory
 * that is not DLM memory are refused with -1. Prints what it saw; exits 0 if the data is right. */
#include <dlm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t value(uint64_t i) { return i * 3 + 1; }

int main(int argc, char **argv) {
    dlm_startup(&argc, &argv);
    uint64_t n = (argc > 1 ? strtoull(argv[1], NULL, 10) : 256) << 20 >> 3;
    uint64_t *a = dlm_alloc(n * sizeof *a);
    if (!a) return 1;
    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; i++) a[i] = value(i);

    struct dlm_stats before, after;
    int dontneed = dlm_advise(a, n * sizeof *a, DLM_ADVICE_DONTNEED);
    dlm_get_stats(&after);
    printf("dontneed: %d, resident %llu\n", dontneed, (unsigned long long)after.resident_bytes);

    int random = dlm_advise(a, n * sizeof *a, DLM_ADVICE_RANDOM);
    dlm_get_stats(&before);
    uint64_t x = 88172645463325252ULL;
    for (int k = 0; k < 4000; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t i = x % n;
        bad += a[i] != value(i);
    }
    dlm_get_stats(&after);
    printf("random: %d, %llu blocks, %llu bytes fetched\n", random,
           (unsigned long long)(after.blocks_fetched - before.blocks_fetched),
           (unsigned long long)(after.bytes_fetched - before.bytes_fetched));

    int sequential = dlm_advise(a, n * sizeof *a, DLM_ADVICE_SEQUENTIAL);
    int willneed = dlm_advise(a, 16 << 20, DLM_ADVICE_WILLNEED);
    dlm_get_stats(&before);
    for (uint64_t i = 0; i < n; i++) bad += a[i] != value(i);
    dlm_get_stats(&after);
    printf("sequential: %d %d, %llu blocks\n", sequential, willneed,
           (unsigned long long)(after.blocks_fetched - before.blocks_fetched));

    int normal = dlm_advise(a, n * sizeof *a, DLM_ADVICE_NORMAL);
    int unknown = dlm_advise(a, 4096, 99);
    int not_dlm = dlm_advise(&n, sizeof n, DLM_ADVICE_RANDOM);
    printf("normal %d unknown %d not-dlm %d\n", normal, unknown, not_dlm);
    printf("advise: %llu mismatches\n", (unsigned long long)bad);
    dlm_free(a);
    return bad != 0;
}
