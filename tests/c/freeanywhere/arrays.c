#include "arrays.h"

double *alloc_aligned(size_t n) {
    void *p = NULL;
    return posix_memalign(&p, 64, n * sizeof(double)) ? NULL : p;
}

double *alloc_plain(size_t n) { return malloc(n * sizeof(double)); }

double *alloc_zeroed(size_t n) { return calloc(n, sizeof(double)); }
