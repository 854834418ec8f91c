/* args: -std=c11 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
int dlm_startup(int *argc, char ***argv);

static double data[1 << 18];

int main(int argc, char **argv) {
    void *(*alloc)(size_t) = malloc;
    void (*release)(void *) = free;
    char *s;
    void *q = 0;
    dlm_startup(&argc, &argv);
    s = alloc(16);
    strcpy(s, "x");
    release(s);
    if (posix_memalign(&q, 64, 1 << 20) == 0)
        free(q);
    q = aligned_alloc(4096, 1 << 20);
    free(q);
    return (int)data[0];
}
