/* grid.c -- the program's global data. */
#include "grid.h"

double field[NX][NY];
int counts[NCOUNTS] = { 5, 3, 1, 4, 1, 5, 9, 2, 6 };

/* A smooth bump plus a deterministic ripple, all values in [0, 1]. */
void fill_field(void)
{
    int i, j;
    for (i = 0; i < NX; i++)
        for (j = 0; j < NY; j++) {
            double x = (double)i / (NX - 1), y = (double)j / (NY - 1);
            double r = (double)((i * 31 + j * 17) % 97) / 97.0;
            field[i][j] = 0.5 * x * (1.0 - x) * 4.0 * y * (1.0 - y) + 0.5 * r;
        }
}

/* The initializer's values must be there before anyone writes counts. */
long count_seeds(void)
{
    long s = 0;
    int i;
    for (i = 0; i < 16; i++)
        s = s * 10 + counts[i];
    return s;
}
