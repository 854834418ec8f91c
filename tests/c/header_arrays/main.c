#include <stdio.h>
#include "header.h"
double solve(void);
int main(void) {
    for (int k = 0; k < KMAX; k++)
        for (int j = 0; j < JMAX; j++)
            for (int i = 0; i < IMAX; i++) shared_grid[k][j][i] = k - j + i * 0.125;
    double s = solve();
    for (int m = 0; m < 5; m++) s += u[m][1][2][3];
    printf("%.3f %.1f %zu\n", s, coef[2], sizeof u);
    return 0;
}
