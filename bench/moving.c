/* A loop over 4x the budget, then a loop that fits (half the budget) over data the first
   loop had evicted: the second must end up resident (checks the guard of the loop policy). */
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    size_t budget = (size_t)atol(argv[1]) << 20, n = 4 * budget / 8, m = budget / 2 / 8;
    double *a = malloc(n * 8), sum = 0;
    for (size_t i = 0; i < n; i++) a[i] = i;
    for (int pass = 0; pass < 3; pass++)
        for (size_t i = 0; i < n; i++) a[i] += 1;
    double *b = a + n / 2;
    for (int pass = 0; pass < 8; pass++)
        for (size_t i = 0; i < m; i++) sum += b[i];
    printf("%g\n", sum);
    return 0;
}
