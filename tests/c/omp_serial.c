/* A legacy program with OpenMP pragmas and <omp.h>, built serially: gcc finds omp.h in its
 * private include directory, so the parse must too. */
#include <omp.h>
#include <stdio.h>

#define N (1 << 21)
double grid[N];

int main(void) {
    double sum = 0;
#pragma omp parallel for reduction(+ : sum)
    for (int i = 0; i < N; i++) {
        grid[i] = i * 0.5;
        sum += grid[i];
    }
    printf("sum %.1f\n", sum);
    return 0;
}
