#include "vecops.h"
void fill(double *v, size_t n) {
    for (size_t i = 0; i < n; i++) v[i] = (double)(i % 1000);
}
