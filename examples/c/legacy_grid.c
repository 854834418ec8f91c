/* A legacy sequential program with a 1 GiB static grid. Nothing here knows about DLM: built
 * with `dlmcc`, the grid lives in DLM memory and the program prints what `cc` builds print.
 *
 *   target/release/dlmcc -O2 examples/c/legacy_grid.c -o grid && DLM_LOCAL_MEM=256M ./grid
 */
#include <stdio.h>

#define NX 8192
#define NY 16384
#define SWEEPS 3

static double grid[NX][NY]; /* 1 GiB */

/* Each row becomes the average of itself and the row above it, top to bottom. */
static void relax(double (*g)[NY], int rows)
{
    int i, j;
    for (i = 1; i < rows; i++)
        for (j = 0; j < NY; j++)
            g[i][j] = 0.5 * (g[i][j] + g[i - 1][j]);
}

int main(void)
{
    int i, j, s;
    double sum = 0.0;
    for (i = 0; i < NX; i++)
        for (j = 0; j < NY; j++)
            grid[i][j] = (double)((i * 31 + j * 17) % 1000);
    for (s = 0; s < SWEEPS; s++)
        relax(grid, NX);
    for (i = 0; i < NX; i++)
        for (j = 0; j < NY; j++)
            sum += grid[i][j];
    printf("grid %dx%d (%lu MiB), %d sweeps: checksum %.10e\n", NX, NY, (unsigned long)(sizeof grid >> 20), SWEEPS,
           sum);
    return 0;
}
