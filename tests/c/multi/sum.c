#include <math.h>
#include "vecops.h"
double sum(const double *v, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += fabs(v[i]);
    return s;
}
