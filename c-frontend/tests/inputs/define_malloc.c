/* args: -std=c99 */
#include <stdlib.h>
#define NEW(T, n) ((T *)malloc(sizeof(T) * (n)))
#define ALLOC_ZEROED(n) calloc((n), 1)
#define DELETE(p) free(p)

int main(void) {
    double *a = NEW(double, 1000);
    int *b = NEW(int, 10);
    char *c = ALLOC_ZEROED(100);
    a = realloc(a, 2000 * sizeof *a);
    DELETE(a);
    DELETE(b);
    free(c);
    return 0;
}
