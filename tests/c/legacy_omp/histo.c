/* A legacy OpenMP kernel: big static arrays, parallel loops over them, OpenMP's runtime calls.
 * Every result is an integer computed the same way whatever the threads' order, so the output
 * does not depend on how many threads run. */
#include <omp.h>
#include <stdio.h>

#define N (4 << 20)
#define BINS 4096
#define ROUNDS 3

static unsigned int keys[N];
static unsigned int weights[N];
static long long prefix[N];
static long long bins[BINS];

static unsigned int mix(unsigned int x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    return x ^ (x >> 16);
}

int main(void)
{
    int threads = omp_get_max_threads();
    fprintf(stderr, "running on %d OpenMP threads\n", threads);
    printf("data %zu bytes\n", sizeof keys + sizeof weights + sizeof prefix);
    for (int round = 0; round < ROUNDS; round++) {
#pragma omp parallel for schedule(static)
        for (long i = 0; i < N; i++) {
            keys[i] = mix((unsigned int)i + 0x9e3779b9U * (unsigned int)round);
            weights[i] = 1 + keys[i] % 7;
        }
        long long total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
        for (long i = 0; i < N; i++)
            total += (long long)weights[i] * (keys[i] % 1000);
        for (int b = 0; b < BINS; b++)
            bins[b] = 0;
#pragma omp parallel
        {
            long long mine[BINS] = {0};
#pragma omp for schedule(static) nowait
            for (long i = 0; i < N; i++)
                mine[keys[i] % BINS] += weights[i];
#pragma omp critical
            for (int b = 0; b < BINS; b++)
                bins[b] += mine[b];
        }
        /* A running sum in one pass, then checked in parallel. */
        long long running = 0;
        for (long i = 0; i < N; i++) {
            running += weights[i];
            prefix[i] = running;
        }
        long long wrong = 0;
#pragma omp parallel for schedule(static) reduction(+ : wrong)
        for (long i = 1; i < N; i++)
            wrong += prefix[i] - prefix[i - 1] != weights[i];
        long long heaviest = 0;
        int heaviest_bin = 0;
        for (int b = 0; b < BINS; b++)
            if (bins[b] > heaviest) {
                heaviest = bins[b];
                heaviest_bin = b;
            }
        printf("round %d: total %lld, heaviest bin %d (%lld), prefix %lld, wrong %lld\n", round, total, heaviest_bin,
               heaviest, prefix[N - 1], wrong);
    }
    return 0;
}
