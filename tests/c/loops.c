/* Replacement on loops: a read-modify-write loop over 4x the budget, then a loop that fits
 * (half the budget) over data the first loop evicted. Prints the bytes fetched by each phase
 * and "loops ok" when every element holds what was written.
 *
 *   loops BUDGET_MIB   (run with DLM_LOCAL_MEM=BUDGET_MIB M) */
#include <dlm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define PASSES 3
#define FITTING_PASSES 8

static uint64_t fetched(void) {
    struct dlm_stats stats;
    dlm_get_stats(&stats);
    return stats.bytes_fetched;
}

int main(int argc, char **argv) {
    dlm_startup(&argc, &argv);
    if (argc < 2) {
        fprintf(stderr, "usage: loops BUDGET_MIB\n");
        return 2;
    }
    size_t budget = strtoull(argv[1], NULL, 10) << 20;
    size_t words = 4 * budget / sizeof(uint64_t), fitting = budget / 2 / sizeof(uint64_t);
    uint64_t *a = dlm_alloc(words * sizeof(uint64_t)), sum = 0, expected = 0;
    if (!a) return 1;
    for (size_t i = 0; i < words; i++) a[i] = i;
    uint64_t before = fetched();
    for (int pass = 0; pass < PASSES; pass++)
        for (size_t i = 0; i < words; i++) a[i] += 1;
    uint64_t large = fetched() - before;
    uint64_t *b = a + words / 2;
    before = fetched();
    for (int pass = 0; pass < FITTING_PASSES; pass++)
        for (size_t i = 0; i < fitting; i++) sum += b[i];
    uint64_t small = fetched() - before;
    size_t bad = 0;
    for (size_t i = 0; i < words; i++) bad += a[i] != i + PASSES;
    for (size_t i = 0; i < fitting; i++) expected += (words / 2 + i + PASSES) * FITTING_PASSES;
    printf("large loop fetched: %llu\nfitting loop fetched: %llu\n", (unsigned long long)large,
           (unsigned long long)small);
    if (bad || sum != expected) {
        printf("loops: %zu mismatches, sum %llu expected %llu\n", bad, (unsigned long long)sum,
               (unsigned long long)expected);
        return 1;
    }
    printf("loops ok\n");
    dlm_shutdown();
    return 0;
}
