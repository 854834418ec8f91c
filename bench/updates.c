/* Random 8-byte updates of a big table (GUPS-shaped), timed from start to end.
 *
 *     updates [MiB [UPDATES]]        # default: 1024 MiB, 2000000 updates
 *
 * Fills a table of MiB in order (t[i] = i), then XORs UPDATES pseudo-random places with the
 * random number itself, then reads the whole table back into a checksum. Prints
 * `fill`, `update` and `check` seconds and `CHECK` (the sum), which must be the same in every
 * build: built with cc the table is ordinary memory; with dlmcc its malloc goes to DLM memory;
 * with dlmcc -DDLM_API it is dlm_alloc'd through the explicit API. bench/updates.py runs them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifdef DLM_API
#include <dlm.h>
#endif

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
#ifdef DLM_API
    dlm_startup(&argc, &argv);
#endif
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
    size_t updates = argc > 2 ? strtoul(argv[2], NULL, 10) : 2000000;
    size_t n = mib << 17; /* 8-byte words */
#ifdef DLM_API
    uint64_t *t = dlm_alloc(n * sizeof *t);
#else
    uint64_t *t = malloc(n * sizeof *t);
#endif
    if (!t) {
        fprintf(stderr, "updates: cannot allocate %zu MiB\n", mib);
        return 1;
    }
    double started = now();
    for (size_t i = 0; i < n; i++)
        t[i] = i;
    double filled = now();
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t u = 0; u < updates; u++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        t[x % n] ^= x;
    }
    double updated = now();
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += t[i] * (i | 1);
    double checked = now();
    printf("fill %.4f\nupdate %.4f\ncheck %.4f\nCHECK %llu\n", filled - started, updated - filled,
           checked - updated, (unsigned long long)sum);
    return 0;
}
