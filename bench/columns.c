/* Column walks of row-major arrays, shaped like public kernels (unchanged C: build with dlmcc
 * for DLM, with cc for native). Each prints "checksum: X" and "seconds: S" (the kernel only).
 *
 *   columns corr N      column means and deviations of data[N][N], then the covariance of
 *                       64 column pairs (correlation/covariance-shaped)
 *   columns gemver N    A[N][N]: rank-2 update by rows, x += A^T y by columns, w += A x by rows
 *   columns symm N      C = A B + C with A symmetric, the k loop walking columns of B and C
 *   columns bt N        u[N][N][N][5]: a tridiagonal-like sweep along x, y and z (BT-shaped)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double corr(size_t n) {
    double (*data)[n] = malloc(n * n * sizeof(double));
    double *mean = calloc(n, sizeof(double)), *dev = calloc(n, sizeof(double)), sum = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) data[i][j] = (double)((i * j) % 97) / n + i;
    for (size_t j = 0; j < n; j++) {
        for (size_t i = 0; i < n; i++) mean[j] += data[i][j];
        mean[j] /= n;
    }
    for (size_t j = 0; j < n; j++) {
        for (size_t i = 0; i < n; i++) dev[j] += (data[i][j] - mean[j]) * (data[i][j] - mean[j]);
        dev[j] = sqrt(dev[j] / n);
        if (dev[j] <= 0.1) dev[j] = 1.0;
    }
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < n; i++) data[i][j] = (data[i][j] - mean[j]) / (sqrt((double)n) * dev[j]);
    for (size_t p = 0; p < 64; p++) {
        size_t a = p * 7 % n, b = (p * 13 + 1) % n;
        for (size_t k = 0; k < n; k++) sum += data[k][a] * data[k][b];
    }
    return sum;
}

static double gemver(size_t n) {
    double (*a)[n] = malloc(n * n * sizeof(double));
    double *u1 = malloc(n * 8), *v1 = malloc(n * 8), *u2 = malloc(n * 8), *v2 = malloc(n * 8);
    double *x = calloc(n, 8), *y = malloc(n * 8), *w = calloc(n, 8), sum = 0;
    for (size_t i = 0; i < n; i++) {
        u1[i] = i, u2[i] = (i + 1) / 2.0, v1[i] = (i + 1) / 4.0, v2[i] = (i + 1) / 6.0;
        y[i] = (i + 1) / 8.0;
        for (size_t j = 0; j < n; j++) a[i][j] = (double)(i * j % n) / n;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) a[i][j] += u1[i] * v1[j] + u2[i] * v2[j];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) x[i] += 1.2 * a[j][i] * y[j];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) w[i] += 1.5 * a[i][j] * x[j];
    for (size_t i = 0; i < n; i++) sum += w[i] / n;
    return sum;
}

static double symm(size_t n) {
    double (*a)[n] = malloc(n * n * 8), (*b)[n] = malloc(n * n * 8), (*c)[n] = malloc(n * n * 8);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            a[i][j] = (double)((i + j) % 100) / n;
            b[i][j] = (double)((n + i - j) % 100) / n;
            c[i][j] = (double)((i + j) % 100) / n;
        }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            double temp2 = 0;
            for (size_t k = 0; k < i; k++) {
                c[k][j] += 1.5 * b[i][j] * a[i][k];
                temp2 += b[k][j] * a[i][k];
            }
            c[i][j] = 1.2 * c[i][j] + 1.5 * b[i][j] * a[i][i] + 1.5 * temp2;
        }
    for (size_t i = 0; i < n; i += 7)
        for (size_t j = 0; j < n; j += 5) sum += c[i][j];
    return sum;
}

/* One line of the grid, `len` cells `stride` doubles apart, 5 components each: a forward
 * elimination then a back substitution, as BT's block-tridiagonal solves do along a line. */
static void solve_line(double *u, size_t len, size_t stride) {
    for (size_t i = 1; i < len; i++)
        for (int m = 0; m < 5; m++) u[i * stride + m] -= 0.3 * u[(i - 1) * stride + m];
    for (size_t i = len - 1; i-- > 0;)
        for (int m = 0; m < 5; m++) u[i * stride + m] = 0.5 * (u[i * stride + m] + u[(i + 1) * stride + m]);
}

static double bt(size_t n) {
    double *u = malloc(n * n * n * 5 * sizeof(double)), sum = 0;
    for (size_t i = 0; i < n * n * n * 5; i++) u[i] = (double)(i % 1013) / 1013;
    size_t cell = 5, row = n * cell, plane = n * row;
    for (int iteration = 0; iteration < 2; iteration++) {
        for (size_t k = 0; k < n; k++)
            for (size_t j = 0; j < n; j++) solve_line(u + k * plane + j * row, n, cell);
        for (size_t k = 0; k < n; k++)
            for (size_t i = 0; i < n; i++) solve_line(u + k * plane + i * cell, n, row);
        for (size_t j = 0; j < n; j++)
            for (size_t i = 0; i < n; i++) solve_line(u + j * row + i * cell, n, plane);
    }
    for (size_t i = 0; i < n * n * n * 5; i += 11) sum += u[i];
    return sum;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: columns corr|gemver|symm|bt N\n");
        return 2;
    }
    size_t n = strtoull(argv[2], NULL, 10);
    double started = now(), sum;
    if (!strcmp(argv[1], "corr")) sum = corr(n);
    else if (!strcmp(argv[1], "gemver")) sum = gemver(n);
    else if (!strcmp(argv[1], "symm")) sum = symm(n);
    else if (!strcmp(argv[1], "bt")) sum = bt(n);
    else {
        fprintf(stderr, "columns: unknown kernel %s\n", argv[1]);
        return 2;
    }
    printf("checksum: %.10e\nseconds: %.3f\n", sum, now() - started);
    return 0;
}
