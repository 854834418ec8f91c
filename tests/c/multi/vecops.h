#include <stddef.h>
void fill(double *v, size_t n);
double sum(const double *v, size_t n);
