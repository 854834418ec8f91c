/* args: -std=c99 */
#include <stddef.h>
static char arena[4096];
static size_t used;

void *malloc(size_t n) {
    void *p = arena + used;
    used += (n + 15) & ~(size_t)15;
    return p;
}

void free(void *p) { (void)p; }

int main(void) {
    char *p = malloc(10);
    free(p);
    return 0;
}
