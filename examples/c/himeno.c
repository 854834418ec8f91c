/* himeno.c: a Himeno-style Jacobi solver for a 3-D Poisson equation (19-point stencil), written
 * as legacy C: fourteen static grids sized by macros, no DLM calls. `dlmcc` puts the grids in
 * DLM memory; `cc` builds the same program in ordinary memory.
 *
 *   dlmcc -O3 himeno.c -o himeno                                  # 129x129x257: about 240 MB
 *   dlmcc -O3 -DMIMAX=193 -DMJMAX=193 -DMKMAX=385 himeno.c -o himeno   # about 800 MB
 *   DLM_LOCAL_MEM=200M ./himeno 10                                # iterations
 *
 * Prints MFLOPS and the validation value (the residual of the last iteration). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

#ifndef MIMAX
#define MIMAX 129
#endif
#ifndef MJMAX
#define MJMAX 129
#endif
#ifndef MKMAX
#define MKMAX 257
#endif

static float p[MIMAX][MJMAX][MKMAX];
static float a[4][MIMAX][MJMAX][MKMAX], b[3][MIMAX][MJMAX][MKMAX], c[3][MIMAX][MJMAX][MKMAX];
static float bnd[MIMAX][MJMAX][MKMAX];
static float wrk1[MIMAX][MJMAX][MKMAX], wrk2[MIMAX][MJMAX][MKMAX];

static void fill(float g[MIMAX][MJMAX][MKMAX], float value)
{
    int i, j, k;
    for (i = 0; i < MIMAX; i++)
        for (j = 0; j < MJMAX; j++)
            for (k = 0; k < MKMAX; k++)
                g[i][j][k] = value;
}

static double now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec * 1e-6;
}

static float jacobi(int iterations)
{
    const float omega = 0.8f;
    float gosa = 0, s0, ss;
    int n, i, j, k;
    for (n = 0; n < iterations; n++) {
        gosa = 0;
        for (i = 1; i < MIMAX - 1; i++)
            for (j = 1; j < MJMAX - 1; j++)
                for (k = 1; k < MKMAX - 1; k++) {
                    s0 = a[0][i][j][k] * p[i + 1][j][k] + a[1][i][j][k] * p[i][j + 1][k] +
                         a[2][i][j][k] * p[i][j][k + 1] +
                         b[0][i][j][k] * (p[i + 1][j + 1][k] - p[i + 1][j - 1][k] - p[i - 1][j + 1][k] +
                                          p[i - 1][j - 1][k]) +
                         b[1][i][j][k] * (p[i][j + 1][k + 1] - p[i][j - 1][k + 1] - p[i][j + 1][k - 1] +
                                          p[i][j - 1][k - 1]) +
                         b[2][i][j][k] * (p[i + 1][j][k + 1] - p[i - 1][j][k + 1] - p[i + 1][j][k - 1] +
                                          p[i - 1][j][k - 1]) +
                         c[0][i][j][k] * p[i - 1][j][k] + c[1][i][j][k] * p[i][j - 1][k] +
                         c[2][i][j][k] * p[i][j][k - 1] + wrk1[i][j][k];
                    ss = (s0 * a[3][i][j][k] - p[i][j][k]) * bnd[i][j][k];
                    gosa += ss * ss;
                    wrk2[i][j][k] = p[i][j][k] + omega * ss;
                }
        for (i = 1; i < MIMAX - 1; i++)
            for (j = 1; j < MJMAX - 1; j++)
                for (k = 1; k < MKMAX - 1; k++)
                    p[i][j][k] = wrk2[i][j][k];
    }
    return gosa;
}

int main(int argc, char **argv)
{
    int iterations = argc > 1 ? atoi(argv[1]) : 10;
    int n, i, j, k;
    double start, seconds, points;
    float gosa;
    for (i = 0; i < MIMAX; i++)
        for (j = 0; j < MJMAX; j++)
            for (k = 0; k < MKMAX; k++)
                p[i][j][k] = (float)(i * i) / (float)((MIMAX - 1) * (MIMAX - 1));
    for (n = 0; n < 4; n++)
        fill(a[n], n == 3 ? 1.0f / 6.0f : 1.0f);
    for (n = 0; n < 3; n++)
        fill(b[n], 0.0f), fill(c[n], 1.0f);
    fill(bnd, 1.0f), fill(wrk1, 0.0f), fill(wrk2, 0.0f);

    start = now();
    gosa = jacobi(iterations);
    seconds = now() - start;
    points = (double)(MIMAX - 2) * (MJMAX - 2) * (MKMAX - 2);
    printf("grid: %dx%dx%d, iterations: %d, time: %.3f s\n", MIMAX, MJMAX, MKMAX, iterations, seconds);
    printf("MFLOPS: %.1f\n", 34.0 * points * iterations / seconds / 1e6);
    printf("validation (gosa): %e\n", gosa);
    return 0;
}
