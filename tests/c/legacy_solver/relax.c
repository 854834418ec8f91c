/* One Jacobi sweep of the 7-point Laplacian and the residual's norm. */
#include <math.h>
#include "grid.h"

void relax(double h2)
{
    for (int k = 1; k < NZ - 1; k++)
        for (int j = 1; j < NY - 1; j++)
            for (int i = 1; i < NX - 1; i++)
                unew[k][j][i] = (u[k - 1][j][i] + u[k + 1][j][i] + u[k][j - 1][i] + u[k][j + 1][i] +
                                 u[k][j][i - 1] + u[k][j][i + 1] - h2 * rhs[k][j][i]) / 6.0;
    for (int k = 1; k < NZ - 1; k++)
        for (int j = 1; j < NY - 1; j++)
            for (int i = 1; i < NX - 1; i++)
                u[k][j][i] = unew[k][j][i];
}

double residual(double h2)
{
    double sum = 0.0;
    for (int k = 1; k < NZ - 1; k++)
        for (int j = 1; j < NY - 1; j++)
            for (int i = 1; i < NX - 1; i++) {
                double r = rhs[k][j][i] - (u[k - 1][j][i] + u[k + 1][j][i] + u[k][j - 1][i] + u[k][j + 1][i] +
                                           u[k][j][i - 1] + u[k][j][i + 1] - 6.0 * u[k][j][i]) / h2;
                resid[k][j][i] = r;
                sum += r * r;
            }
    return sqrt(sum / ((double)(NX - 2) * (NY - 2) * (NZ - 2)));
}
