/* stencil_job.c: a Himeno-style job for the DLM-WAN tests: a 7-point Jacobi sweep over static
 * grids sized by macros (legacy C, no DLM calls; `dlmcc` puts the grids in DLM memory), that
 * writes its result to a file so that the run on a cluster can be compared with a native run
 * byte for byte.
 *
 *   dlmcc -O2 -DNX=64 -DNY=64 -DNZ=256 stencil_job.c -o stencil_job   # 2 grids of 4 MiB
 *   ./stencil_job ITERATIONS RESULT_FILE
 *
 * The result: the residual of the last sweep and a checksum of the grid, both as exact hex. Its
 * standard output also says how long the sweeps took (bench/portal.py reads it). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifndef NX
#define NX 64
#endif
#ifndef NY
#define NY 64
#endif
#ifndef NZ
#define NZ 256
#endif

static float p[NX][NY][NZ];
static float next[NX][NY][NZ];

static void initialise(void)
{
    for (int i = 0; i < NX; i++)
        for (int j = 0; j < NY; j++)
            for (int k = 0; k < NZ; k++)
                p[i][j][k] = (float)(i * i) / (float)((NX - 1) * (NX - 1)) + (float)(k % 7) * 0.01f;
}

/* One sweep into `next`, then back; returns the sum of squared changes. */
static double sweep(void)
{
    double gosa = 0.0;
    for (int i = 1; i < NX - 1; i++)
        for (int j = 1; j < NY - 1; j++)
            for (int k = 1; k < NZ - 1; k++) {
                float s = (p[i + 1][j][k] + p[i - 1][j][k] + p[i][j + 1][k] + p[i][j - 1][k] + p[i][j][k + 1]
                           + p[i][j][k - 1]) / 6.0f;
                float ss = s - p[i][j][k];
                gosa += (double)ss * ss;
                next[i][j][k] = p[i][j][k] + 0.8f * ss;
            }
    for (int i = 1; i < NX - 1; i++)
        for (int j = 1; j < NY - 1; j++)
            for (int k = 1; k < NZ - 1; k++)
                p[i][j][k] = next[i][j][k];
    return gosa;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s ITERATIONS RESULT_FILE\n", argv[0]);
        return 2;
    }
    int iterations = atoi(argv[1]);
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    initialise();
    double gosa = 0.0;
    for (int n = 0; n < iterations; n++)
        gosa = sweep();
    clock_gettime(CLOCK_MONOTONIC, &end);
    double seconds = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) * 1e-9;
    double sum = 0.0;
    for (int i = 0; i < NX; i++)
        for (int j = 0; j < NY; j++)
            for (int k = 0; k < NZ; k++)
                sum += p[i][j][k] * (double)(1 + (i + j + k) % 5);
    FILE *out = fopen(argv[2], "w");
    if (!out) {
        perror(argv[2]);
        return 1;
    }
    fprintf(out, "grid %dx%dx%d iterations %d\ngosa %a\nchecksum %a\n", NX, NY, NZ, iterations, gosa, sum);
    printf("stencil_job: %d sweeps of %dx%dx%d done in %.3f s, gosa %e\n", iterations, NX, NY, NZ, seconds, gosa);
    return fclose(out) == 0 ? 0 : 1;
}
