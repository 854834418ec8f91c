#include "header.h"
double solve(void) {
    double s = 0;
    for (int m = 0; m < 5; m++)
        for (int k = 0; k < KMAX; k++)
            for (int j = 0; j < JMAX; j++)
                for (int i = 0; i <= IMAX; i++) {
                    u[m][k][j][i] = m + k * 0.5 + j * 0.25 + i;
                    s += u[m][k][j][i];
                }
    for (int k = 0; k < KMAX; k++)
        for (int j = 0; j < JMAX; j++)
            for (int i = 0; i < IMAX; i++) s += shared_grid[k][j][i];
    return s + coef[1] + sizeof u;
}
