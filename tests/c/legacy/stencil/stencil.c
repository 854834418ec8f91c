/*
 * stencil.c -- pressure relaxation on a 3-D grid, written in the style of
 * old Fortran-to-C benchmark ports: every grid is a file-scope static array
 * whose extents come from the MIMAX/MJMAX/MKMAX macros, the coefficient
 * grids are stacked in one declaration, and nothing is allocated at run time.
 *
 * 14 grids of 97 x 97 x 257 floats (9.2 MiB each): about 129 MiB of data.
 * Prints the residual of the last sweep and checksums of the pressure grid.
 * Plain C89; no library beyond stdio.
 */
#include <stdio.h>

#define MIMAX 97
#define MJMAX 97
#define MKMAX 257
#define NSWEEP 8

static float p[MIMAX][MJMAX][MKMAX];
static float a[4][MIMAX][MJMAX][MKMAX], b[3][MIMAX][MJMAX][MKMAX],
             c[3][MIMAX][MJMAX][MKMAX];
static float bnd[MIMAX][MJMAX][MKMAX];
static float wrk1[MIMAX][MJMAX][MKMAX], wrk2[MIMAX][MJMAX][MKMAX];

static int imax = MIMAX, jmax = MJMAX, kmax = MKMAX;
static float omega = 0.8f;

/* Coefficients that vary a little over the grid, so that a misplaced page
   (any wrong element) changes the result. */
static void setup(void)
{
    int i, j, k, l;

    for (i = 0; i < imax; i++)
        for (j = 0; j < jmax; j++)
            for (k = 0; k < kmax; k++) {
                for (l = 0; l < 3; l++) {
                    a[l][i][j][k] = 1.0f + 0.0625f * (float)((i + 2 * j + 3 * k + l) % 5 - 2) / 8.0f;
                    b[l][i][j][k] = 0.015625f * (float)((i * 3 + j + k * 7 + l) % 7 - 3) / 4.0f;
                    c[l][i][j][k] = 1.0f - 0.0625f * (float)((2 * i + j + k + l) % 3 - 1) / 8.0f;
                }
                a[3][i][j][k] = 1.0f / 6.0f;
                p[i][j][k] = (float)((i * 7 + j * 3 + k) % 17) / 16.0f
                           + (float)(i * i) / (float)((imax - 1) * (imax - 1));
                wrk1[i][j][k] = (float)((i + j + k) % 11 - 5) / 1024.0f;
                wrk2[i][j][k] = 0.0f;
                bnd[i][j][k] = (i == 0 || j == 0 || k == 0 || i == imax - 1
                                || j == jmax - 1 || k == kmax - 1) ? 0.0f : 1.0f;
            }
    /* A few interior obstacles. */
    for (i = imax / 4; i < imax / 4 + 3; i++)
        for (j = jmax / 3; j < jmax / 3 + 5; j++)
            for (k = 10; k < kmax - 10; k += 13)
                bnd[i][j][k] = 0.0f;
}

static float sweep(int nn)
{
    int n, i, j, k;
    float s0, ss, gosa = 0.0f;

    for (n = 0; n < nn; n++) {
        gosa = 0.0f;
        for (i = 1; i < imax - 1; i++)
            for (j = 1; j < jmax - 1; j++)
                for (k = 1; k < kmax - 1; k++) {
                    s0 = a[0][i][j][k] * p[i + 1][j][k]
                       + a[1][i][j][k] * p[i][j + 1][k]
                       + a[2][i][j][k] * p[i][j][k + 1]
                       + b[0][i][j][k] * (p[i + 1][j + 1][k] - p[i + 1][j - 1][k]
                                          - p[i - 1][j + 1][k] + p[i - 1][j - 1][k])
                       + b[1][i][j][k] * (p[i][j + 1][k + 1] - p[i][j - 1][k + 1]
                                          - p[i][j + 1][k - 1] + p[i][j - 1][k - 1])
                       + b[2][i][j][k] * (p[i + 1][j][k + 1] - p[i - 1][j][k + 1]
                                          - p[i + 1][j][k - 1] + p[i - 1][j][k - 1])
                       + c[0][i][j][k] * p[i - 1][j][k]
                       + c[1][i][j][k] * p[i][j - 1][k]
                       + c[2][i][j][k] * p[i][j][k - 1]
                       + wrk1[i][j][k];
                    ss = (s0 * a[3][i][j][k] - p[i][j][k]) * bnd[i][j][k];
                    gosa += ss * ss;
                    wrk2[i][j][k] = p[i][j][k] + omega * ss;
                }
        for (i = 1; i < imax - 1; i++)
            for (j = 1; j < jmax - 1; j++)
                for (k = 1; k < kmax - 1; k++)
                    p[i][j][k] = wrk2[i][j][k];
    }
    return gosa;
}

/* Order-dependent hash of the bit patterns, folded to 32 bits. */
static unsigned long grid_hash(float g[MIMAX][MJMAX][MKMAX])
{
    unsigned long h = 2166136261UL;
    int i, j, k;
    union { float f; unsigned int u; } bits;

    for (i = 0; i < imax; i++)
        for (j = 0; j < jmax; j++)
            for (k = 0; k < kmax; k++) {
                bits.f = g[i][j][k];
                h = ((h ^ (unsigned long)bits.u) * 16777619UL) & 0xffffffffUL;
            }
    return h;
}

int main(void)
{
    int i, j, k;
    double sum = 0.0, corner;
    float gosa;

    printf("grid: %d x %d x %d, %lu bytes per grid, %d sweeps\n",
           imax, jmax, kmax, (unsigned long)sizeof p, NSWEEP);
    setup();
    gosa = sweep(NSWEEP / 2);
    printf("gosa after %d: %.10e\n", NSWEEP / 2, (double)gosa);
    gosa = sweep(NSWEEP - NSWEEP / 2);
    printf("gosa after %d: %.10e\n", NSWEEP, (double)gosa);

    for (i = 0; i < imax; i++)
        for (j = 0; j < jmax; j++)
            for (k = 0; k < kmax; k++)
                sum += (double)p[i][j][k];
    corner = (double)p[imax / 2][jmax / 2][kmax / 2] + (double)wrk2[imax - 2][jmax - 2][kmax - 2];
    printf("sum p: %.10e\n", sum);
    printf("probe: %.10e\n", corner);
    printf("hash p: %08lx wrk2: %08lx bnd: %08lx\n", grid_hash(p), grid_hash(wrk2), grid_hash(bnd));
    return 0;
}
