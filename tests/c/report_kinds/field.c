/* The second file that includes kinds.h: its own copy of `field`, the shared `shared_field`. */
#include "kinds.h"

double field_sum(void)
{
    double sum = 0;
    for (long i = 0; i < FIELD_POINTS; i++)
        sum += field[i] + shared_field[i] + header_counts[i % 64];
    return sum;
}
