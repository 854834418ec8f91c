/* The cost of the small-block heap: an allocation-heavy C program with all of its data local,
 * built natively (cc) and with dlmcc, timed by itself (bench/small_blocks.py runs both side by
 * side). Phases, each timed:
 *   build  three n^3 grids built row by row with malloc/calloc (the multigrid style);
 *   churn  a pool of blocks of 16..2048 bytes, repeatedly half freed and allocated again with new
 *          sizes (a third of them grown with realloc), each block written when allocated;
 *   sweep  7-point stencil passes over the row-built grids (memory access, no allocation);
 *   free   every block freed.
 * Prints `phase SECONDS` lines and a checksum that both builds must agree on.
 * Usage: small_blocks N POOL ROUNDS */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static unsigned long long seed = 88172645463325252ULL;
static unsigned long long next(void) {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

static double ***grid_new(int n, int zeroed) {
    double ***g = malloc(n * sizeof *g);
    for (int k = 0; k < n; k++) {
        g[k] = malloc(n * sizeof **g);
        for (int j = 0; j < n; j++) {
            g[k][j] = zeroed ? calloc(n, sizeof(double)) : malloc(n * sizeof(double));
            if (g[k][j] == NULL) {
                fprintf(stderr, "out of memory\n");
                exit(1);
            }
            if (!zeroed)
                for (int i = 0; i < n; i++)
                    g[k][j][i] = (double)((i + j + k) % 7);
        }
    }
    return g;
}

static void grid_free(double ***g, int n) {
    for (int k = 0; k < n; k++) {
        for (int j = 0; j < n; j++)
            free(g[k][j]);
        free(g[k]);
    }
    free(g);
}

static void sweep(double ***out, double ***in, int n) {
    for (int k = 1; k < n - 1; k++)
        for (int j = 1; j < n - 1; j++) {
            double *c = in[k][j], *o = out[k][j];
            double *s = in[k][j - 1], *no = in[k][j + 1], *b = in[k - 1][j], *t = in[k + 1][j];
            for (int i = 1; i < n - 1; i++)
                o[i] = 0.5 * c[i] + (c[i - 1] + c[i + 1] + s[i] + no[i] + b[i] + t[i]) / 12.0;
        }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: small_blocks N POOL ROUNDS\n");
        return 2;
    }
    int n = atoi(argv[1]);
    size_t pool = strtoul(argv[2], NULL, 10);
    int rounds = atoi(argv[3]);
    double t0 = now();

    double ***a = grid_new(n, 0), ***b = grid_new(n, 1), ***c = grid_new(n, 1);
    double t1 = now();

    char **blocks = calloc(pool, sizeof *blocks);
    size_t *sizes = calloc(pool, sizeof *sizes);
    unsigned long long check = 0;
    for (int r = 0; r < rounds; r++) {
        for (size_t p = 0; p < pool; p++) {
            unsigned long long x = next();
            if (blocks[p] != NULL && (x & 1))
                continue; /* kept this round */
            size_t size = 16 + (x >> 8) % 2033;
            if (blocks[p] != NULL && (x >> 1) % 3 == 0) {
                blocks[p] = realloc(blocks[p], size);
            } else {
                free(blocks[p]);
                blocks[p] = malloc(size);
            }
            if (blocks[p] == NULL) {
                fprintf(stderr, "out of memory\n");
                return 1;
            }
            blocks[p][0] = (char)x;
            blocks[p][size - 1] = (char)(x >> 8);
            sizes[p] = size;
        }
        check += (unsigned char)blocks[r % pool][0];
    }
    double t2 = now();

    for (int s = 0; s < 4; s++) {
        sweep(b, a, n);
        sweep(c, b, n);
        sweep(a, c, n);
    }
    double sum = 0.0;
    for (int k = 0; k < n; k++)
        for (int j = 0; j < n; j++)
            sum += a[k][j][n / 2];
    double t3 = now();

    for (size_t p = 0; p < pool; p++) {
        check += (unsigned char)blocks[p][sizes[p] - 1];
        free(blocks[p]);
    }
    free(blocks);
    free(sizes);
    grid_free(a, n);
    grid_free(b, n);
    grid_free(c, n);
    double t4 = now();

    printf("checksum %llu %.17g\n", check, sum);
    printf("build %.4f\nchurn %.4f\nsweep %.4f\nfree %.4f\ntotal %.4f\n", t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0);
    return 0;
}
