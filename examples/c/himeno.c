/* himeno.c: a Himeno-style Jacobi solver for a 3-D Poisson equation (19-point stencil), the
 * classic DLM way: fourteen grids from dlm_alloc. Built with -DNATIVE it uses calloc.
 *
 *   dlmcc -O2 himeno.c -o himeno
 *   DLM_LOCAL_MEM=200M ./himeno 193 193 385 10     # grid size and iterations: about 800 MB
 *
 * Prints MFLOPS and the validation value (the residual of the last iteration). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#ifdef NATIVE
#define dlm_startup(argc, argv) 0
#define dlm_alloc(size) calloc(1, size)
#else
#include <dlm.h>
#endif

static int mi, mj, mk;
#define AT(g, i, j, k) (g)[((size_t)(i) * mj + (j)) * mk + (k)]

static float *grid(void) {
    float *g = dlm_alloc((size_t)mi * mj * mk * sizeof(float));
    if (!g) exit(1);
    return g;
}

static void fill(float *g, float value, int by_plane) {
    for (int i = 0; i < mi; i++) {
        float v = by_plane ? (float)(i * i) / (float)((mi - 1) * (mi - 1)) : value;
        for (size_t jk = 0; jk < (size_t)mj * mk; jk++) g[(size_t)i * mj * mk + jk] = v;
    }
}

static double now(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec * 1e-6;
}

int main(int argc, char **argv) {
    dlm_startup(&argc, &argv);
    mi = argc > 1 ? atoi(argv[1]) : 129;
    mj = argc > 2 ? atoi(argv[2]) : 129;
    mk = argc > 3 ? atoi(argv[3]) : 257;
    int iterations = argc > 4 ? atoi(argv[4]) : 10;
    float *p = grid(), *a[4], *b[3], *c[3], *bnd = grid(), *wrk1 = grid(), *wrk2 = grid();
    for (int n = 0; n < 4; n++) a[n] = grid();
    for (int n = 0; n < 3; n++) b[n] = grid(), c[n] = grid();
    fill(p, 0, 1);
    for (int n = 0; n < 4; n++) fill(a[n], n == 3 ? 1.0f / 6.0f : 1.0f, 0);
    for (int n = 0; n < 3; n++) fill(b[n], 0.0f, 0), fill(c[n], 1.0f, 0);
    fill(bnd, 1.0f, 0), fill(wrk1, 0.0f, 0), fill(wrk2, 0.0f, 0);

    const float omega = 0.8f;
    float gosa = 0;
    double start = now();
    for (int n = 0; n < iterations; n++) {
        gosa = 0;
        for (int i = 1; i < mi - 1; i++)
            for (int j = 1; j < mj - 1; j++)
                for (int k = 1; k < mk - 1; k++) {
                    float s0 = AT(a[0], i, j, k) * AT(p, i + 1, j, k) + AT(a[1], i, j, k) * AT(p, i, j + 1, k) +
                               AT(a[2], i, j, k) * AT(p, i, j, k + 1) +
                               AT(b[0], i, j, k) * (AT(p, i + 1, j + 1, k) - AT(p, i + 1, j - 1, k) -
                                                    AT(p, i - 1, j + 1, k) + AT(p, i - 1, j - 1, k)) +
                               AT(b[1], i, j, k) * (AT(p, i, j + 1, k + 1) - AT(p, i, j - 1, k + 1) -
                                                    AT(p, i, j + 1, k - 1) + AT(p, i, j - 1, k - 1)) +
                               AT(b[2], i, j, k) * (AT(p, i + 1, j, k + 1) - AT(p, i - 1, j, k + 1) -
                                                    AT(p, i + 1, j, k - 1) + AT(p, i - 1, j, k - 1)) +
                               AT(c[0], i, j, k) * AT(p, i - 1, j, k) + AT(c[1], i, j, k) * AT(p, i, j - 1, k) +
                               AT(c[2], i, j, k) * AT(p, i, j, k - 1) + AT(wrk1, i, j, k);
                    float ss = (s0 * AT(a[3], i, j, k) - AT(p, i, j, k)) * AT(bnd, i, j, k);
                    gosa += ss * ss;
                    AT(wrk2, i, j, k) = AT(p, i, j, k) + omega * ss;
                }
        for (int i = 1; i < mi - 1; i++)
            for (int j = 1; j < mj - 1; j++)
                for (int k = 1; k < mk - 1; k++) AT(p, i, j, k) = AT(wrk2, i, j, k);
    }
    double seconds = now() - start;
    double points = (double)(mi - 2) * (mj - 2) * (mk - 2);
    printf("grid: %dx%dx%d, iterations: %d, time: %.3f s\n", mi, mj, mk, iterations, seconds);
    printf("MFLOPS: %.1f\n", 34.0 * points * iterations / seconds / 1e6);
    printf("validation (gosa): %e\n", gosa);
    return 0;
}
