/* mgrows: a multigrid solver for a periodic 3-D Poisson problem, written the way many older
 * codes are: every grid is an array of planes, every plane an array of rows, and every row a
 * malloc'd block of its own, so that g[k][j][i] works without index arithmetic. A grid of n^3
 * doubles is n*n rows of n*8 bytes (1.75 KiB at n = 224) plus n+1 pointer arrays: a run is
 * made of hundreds of thousands of small blocks, none of them big.
 *
 * Usage: mgrows N CYCLES   (N a multiple of 8; prints the residual after every V-cycle and
 * checksums of the solution, then frees everything).
 *
 * The V-cycle: weighted Jacobi smoothing of the 7-point Laplacian, restriction by summing the 8
 * children, prolongation by adding a coarse value to its 8 children, plain smoothing on the
 * coarsest grid. The residual grids of the coarse levels are freed and built again every cycle,
 * and the residual history grows with realloc, as such programs do. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LEVELS 16
#define OMEGA 0.8

typedef double ***grid;

static size_t data_bytes;  /* bytes of every block allocated, the peak data */
static size_t data_blocks; /* how many blocks */

static void *checked(void *block, size_t bytes) {
    if (block == NULL) {
        fprintf(stderr, "mgrows: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    data_bytes += bytes;
    data_blocks++;
    return block;
}

/* An n^3 grid built row by row; rows from calloc if zeroed, else from malloc (and set to 0). */
static grid grid_new(int n, int zeroed) {
    grid g = checked(malloc(n * sizeof(double **)), n * sizeof(double **));
    for (int k = 0; k < n; k++) {
        g[k] = checked(malloc(n * sizeof(double *)), n * sizeof(double *));
        for (int j = 0; j < n; j++) {
            if (zeroed) {
                g[k][j] = checked(calloc(n, sizeof(double)), n * sizeof(double));
            } else {
                g[k][j] = checked(malloc(n * sizeof(double)), n * sizeof(double));
                for (int i = 0; i < n; i++)
                    g[k][j][i] = 0.0;
            }
        }
    }
    return g;
}

static void grid_free(grid g, int n) {
    for (int k = 0; k < n; k++) {
        for (int j = 0; j < n; j++)
            free(g[k][j]);
        free(g[k]);
    }
    free(g);
}

static void grid_zero(grid g, int n) {
    for (int k = 0; k < n; k++)
        for (int j = 0; j < n; j++)
            memset(g[k][j], 0, n * sizeof(double));
}

/* r = v - A u, with A u = 6 u - (sum of the 6 neighbours), periodic. */
static void residual(grid u, grid v, grid r, int n) {
    for (int k = 0; k < n; k++) {
        int km = (k + n - 1) % n, kp = (k + 1) % n;
        for (int j = 0; j < n; j++) {
            int jm = (j + n - 1) % n, jp = (j + 1) % n;
            double *c = u[k][j], *s = u[k][jm], *no = u[k][jp], *b = u[km][j], *t = u[kp][j];
            double *vr = v[k][j], *rr = r[k][j];
            for (int i = 0; i < n; i++) {
                int im = i == 0 ? n - 1 : i - 1, ip = i == n - 1 ? 0 : i + 1;
                double au = 6.0 * c[i] - (c[im] + c[ip] + s[i] + no[i] + b[i] + t[i]);
                rr[i] = vr[i] - au;
            }
        }
    }
}

/* One weighted Jacobi step: u += OMEGA * r / 6, r the residual of u. */
static void smooth(grid u, grid v, grid r, int n) {
    residual(u, v, r, n);
    for (int k = 0; k < n; k++)
        for (int j = 0; j < n; j++) {
            double *uu = u[k][j], *rr = r[k][j];
            for (int i = 0; i < n; i++)
                uu[i] += OMEGA / 6.0 * rr[i];
        }
}

/* The coarse right-hand side: half the sum of the 8 fine children (the coarse operator is the
 * fine one with twice the spacing). */
static void restrict_to(grid fine, grid coarse, int nc) {
    for (int k = 0; k < nc; k++)
        for (int j = 0; j < nc; j++)
            for (int i = 0; i < nc; i++) {
                double sum = 0.0;
                for (int dk = 0; dk < 2; dk++)
                    for (int dj = 0; dj < 2; dj++)
                        sum += fine[2 * k + dk][2 * j + dj][2 * i] + fine[2 * k + dk][2 * j + dj][2 * i + 1];
                coarse[k][j][i] = 0.5 * sum;
            }
}

/* fine += the coarse value of each child's parent. */
static void prolong_add(grid coarse, grid fine, int nc) {
    for (int k = 0; k < 2 * nc; k++)
        for (int j = 0; j < 2 * nc; j++) {
            double *f = fine[k][j], *c = coarse[k / 2][j / 2];
            for (int i = 0; i < 2 * nc; i++)
                f[i] += c[i / 2];
        }
}

static int levels;
static int size_at[MAX_LEVELS];
static grid u[MAX_LEVELS], v[MAX_LEVELS], r[MAX_LEVELS];

static void vcycle(int l) {
    int n = size_at[l];
    if (l == levels - 1) {
        grid_zero(u[l], n);
        for (int s = 0; s < 8; s++)
            smooth(u[l], v[l], r[l], n);
        return;
    }
    if (l > 0)
        grid_zero(u[l], n);
    smooth(u[l], v[l], r[l], n);
    smooth(u[l], v[l], r[l], n);
    residual(u[l], v[l], r[l], n);
    restrict_to(r[l], v[l + 1], size_at[l + 1]);
    vcycle(l + 1);
    prolong_add(u[l + 1], u[l], size_at[l + 1]);
    smooth(u[l], v[l], r[l], n);
    smooth(u[l], v[l], r[l], n);
}

static double norm(grid g, int n) {
    double sum = 0.0;
    for (int k = 0; k < n; k++)
        for (int j = 0; j < n; j++)
            for (int i = 0; i < n; i++)
                sum += g[k][j][i] * g[k][j][i];
    return sqrt(sum / ((double)n * n * n));
}

/* Point charges: +1 and -1 at pseudo-random places (a periodic problem needs a zero mean). */
static void charges(grid rhs, int n) {
    unsigned long seed = 12345;
    for (int c = 0; c < 20; c++) {
        int at[3];
        for (int d = 0; d < 3; d++) {
            seed = seed * 6364136223846793005UL + 1442695040888963407UL;
            at[d] = (int)((seed >> 33) % (unsigned long)n);
        }
        rhs[at[0]][at[1]][at[2]] += c % 2 == 0 ? 1.0 : -1.0;
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: mgrows N CYCLES\n");
        return 2;
    }
    int n = atoi(argv[1]), cycles = atoi(argv[2]);
    if (n < 8 || n % 8 != 0 || cycles < 1) {
        fprintf(stderr, "mgrows: N must be a positive multiple of 8 and CYCLES at least 1\n");
        return 2;
    }
    for (levels = 0; levels < MAX_LEVELS && n >> levels >= 4 && (n >> levels) % 2 == 0; levels++)
        size_at[levels] = n >> levels;
    if (levels < MAX_LEVELS && n >> levels >= 2) {
        size_at[levels] = n >> levels;
        levels++;
    }
    printf("mgrows: n=%d levels=%d cycles=%d\n", n, levels, cycles);

    for (int l = 0; l < levels; l++) {
        u[l] = grid_new(size_at[l], 1);
        v[l] = grid_new(size_at[l], l > 0);
        r[l] = grid_new(size_at[l], 0);
    }
    charges(v[0], n);
    printf("data: %zu bytes in %zu blocks\n", data_bytes, data_blocks);

    double *history = NULL;
    for (int c = 0; c < cycles; c++) {
        vcycle(0);
        residual(u[0], v[0], r[0], n);
        history = realloc(history, (c + 1) * sizeof *history);
        if (history == NULL) {
            fprintf(stderr, "mgrows: out of memory\n");
            return 1;
        }
        history[c] = norm(r[0], n);
        printf("cycle %d: residual %.12e\n", c + 1, history[c]);
        /* The coarse residual grids are scratch: rebuilt for the next cycle. */
        for (int l = 1; l < levels; l++) {
            grid_free(r[l], size_at[l]);
            r[l] = grid_new(size_at[l], 0);
        }
    }

    double sum = 0.0, weighted = 0.0;
    for (int k = 0; k < n; k++)
        for (int j = 0; j < n; j++)
            for (int i = 0; i < n; i++) {
                sum += u[0][k][j][i];
                weighted += u[0][k][j][i] * (double)((k * 7 + j * 3 + i) % 11);
            }
    printf("reduction: %.6f\n", history[cycles - 1] / history[0]);
    printf("checksum: %.17g %.17g\n", sum, weighted);
    free(history);
    for (int l = 0; l < levels; l++) {
        grid_free(u[l], size_at[l]);
        grid_free(v[l], size_at[l]);
        grid_free(r[l], size_at[l]);
    }
    printf("freed: every block\n");
    return 0;
}
