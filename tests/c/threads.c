/* Four threads fault on the same DLM pages at once: thread t owns every element i with
 * i % 4 == t, so every page is shared by all four. Exits 0 when every element is right. */
#include <dlm.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 4
#define PASSES 3
#define SCATTERED 4096
static uint64_t *data;
static uint64_t n;

/* The k-th scattered element of thread t; distinct for k < n / THREADS (n is a power of two). */
static uint64_t scattered(uint64_t k, uint64_t t) {
    return ((k * 0x9e3779b1ULL) & (n / THREADS - 1)) * THREADS + t;
}

static void *work(void *arg) {
    uint64_t t = (uint64_t)(uintptr_t)arg;
    for (uint64_t pass = 0; pass < PASSES; pass++) {
        for (uint64_t i = t; i < n; i += THREADS) data[i] = data[i] * 7 + i + pass;
        /* Then a scattered pass over a few of the same elements. */
        for (uint64_t k = 0; k < SCATTERED; k++) data[scattered(k, t)] += 1000;
    }
    return NULL;
}

int main(int argc, char **argv) {
    dlm_startup(&argc, &argv);
    n = (argc > 1 ? strtoull(argv[1], NULL, 10) : 64) << 20 >> 3;
    data = dlm_alloc(n * sizeof *data);
    if (!data) return 1;
    pthread_t th[THREADS];
    for (uintptr_t t = 0; t < THREADS; t++) pthread_create(&th[t], NULL, work, (void *)t);
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    unsigned char *hit = calloc(n, 1);
    for (uint64_t t = 0; t < THREADS; t++)
        for (uint64_t k = 0; k < SCATTERED; k++) hit[scattered(k, t)] = 1;
    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = 0;
        for (uint64_t pass = 0; pass < PASSES; pass++) v = v * 7 + i + pass + (hit[i] ? 1000 : 0);
        bad += data[i] != v;
    }
    printf("threads: %llu mismatches of %llu\n", (unsigned long long)bad, (unsigned long long)n);
    return bad != 0;
}
