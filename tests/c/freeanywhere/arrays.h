/* A kernel suite's shared header: allocation in arrays.c, freeing through a macro that dlmcc
 * sees only as spelled in a header. */
#include <stddef.h>
#include <stdlib.h>

#define FREE_ARRAY(x) free((void *)(x))

double *alloc_aligned(size_t n);
double *alloc_plain(size_t n);
double *alloc_zeroed(size_t n);
