/* args: -std=c89 -pedantic */
#include <stdlib.h>
#define N 1024
static double grid[N][N];
double other[N * N];

int main(void) {
    double *p = (double *)malloc(N * sizeof(double));
    int i;
    static double scratch[N][N];
    for (i = 0; i < N; i++) {
        p[i] = grid[i][i] + other[i] + scratch[i][0];
    }
    free(p);
    return 0;
}
