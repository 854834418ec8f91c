/* A Poisson solver in the style of a legacy benchmark: grids defined in grid.h, sizes from the
 * generated params.h, a driver that sets up the problem, iterates and verifies. */
#include <math.h>
#include <stdio.h>
#include "grid.h"

static void setup(void)
{
    const double pi = 3.14159265358979323846;
    for (int k = 0; k < NZ; k++)
        for (int j = 0; j < NY; j++)
            for (int i = 0; i < NX; i++) {
                double x = (double)i / (NX - 1), y = (double)j / (NY - 1), z = (double)k / (NZ - 1);
                rhs[k][j][i] = sin(pi * x) * sin(pi * y) * sin(2 * pi * z);
                u[k][j][i] = 0.0;
            }
}

int main(void)
{
    double h = 1.0 / (NX - 1), h2 = h * h;
    printf("class %c: grid %d x %d x %d, %d iterations\n", CLASS, NX, NY, NZ, NITER);
    printf("data %zu bytes\n", sizeof u + sizeof unew + sizeof rhs + sizeof resid);
    setup();
    printf("initial residual %.12e\n", residual(h2));
    for (int it = 1; it <= NITER; it++) {
        relax(h2);
        printf("iteration %d residual %.12e\n", it, residual(h2));
    }
    double checksum = 0.0;
    for (int k = 0; k < NZ; k += 3)
        for (int j = 0; j < NY; j += 5)
            for (int i = 0; i < NX; i += 7)
                checksum += u[k][j][i] + 1e-3 * resid[k][j][i];
    printf("checksum %.12e\n", checksum);
    return 0;
}
