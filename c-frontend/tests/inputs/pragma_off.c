/* args: -std=c99 */
#include <stdlib.h>
#pragma dlm off
static double keep_me[1 << 18];
static double move_me[1 << 18];

int main(void) {
    double *a, *b;
#pragma dlm off
    a = malloc(1 << 20);
    b = malloc(1 << 20);
    a[0] = keep_me[0] + move_me[0];
    b[0] = 0;
    free(b);
    #pragma dlm off
    free(a);
    return 0;
}
