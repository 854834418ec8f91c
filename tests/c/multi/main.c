/* dlmcc builds like mpicc: this file is linked with vecops.o (from -c) and libstats.a. */
#include <dlm.h>
#include <stdio.h>
#include "vecops.h"

int main(int argc, char **argv) {
    dlm_startup(&argc, &argv);
    size_t n = (size_t)SIZE_MIB << 20 >> 3;
    double *v = dlm_alloc(n * sizeof *v);
    if (!v) return 1;
    fill(v, n);
    printf("%s %.1f\n", LABEL, sum(v, n));
    dlm_free(v);
    dlm_shutdown();
    return 0;
}
