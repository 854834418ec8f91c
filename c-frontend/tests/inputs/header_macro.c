/* args: -std=c99 */
#include <stdlib.h>
#include "include/alloc.h"

int main(void) {
    char *a = XMALLOC(10);
    char *b = malloc(20);
    XFREE(a);
    free(b);
    return 0;
}
