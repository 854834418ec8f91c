/* Ways a DLM program ends: `exits MODE MiB` fills MiB of DLM memory, then
 * return (no dlm_shutdown) | segv | abort | exit3 (exit(3) from deep inside) | hang (prints its
 * pid and waits to be killed) | sweep (prints its pid and pages until it is killed). */
#include <dlm.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void innermost(void) { exit(3); }
static void inner(void) { innermost(); }
static void outer(void) { inner(); }

int main(int argc, char **argv) {
    dlm_startup(&argc, &argv);
    if (argc < 3) { fprintf(stderr, "usage: exits MODE MiB\n"); return 2; }
    uint64_t n = strtoull(argv[2], NULL, 10) << 20;
    uint8_t *a = dlm_alloc(n);
    if (!a) return 1;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) a[i] = (uint8_t)i;
    for (uint64_t i = 0; i < n; i += 4096) sum += a[i];
    printf("filled %llu\n", (unsigned long long)sum);
    fflush(stdout);
    const char *mode = argv[1];
    if (!strcmp(mode, "segv")) *(volatile int *)0 = 1;
    if (!strcmp(mode, "abort")) abort();
    if (!strcmp(mode, "exit3")) outer();
    if (!strcmp(mode, "hang") || !strcmp(mode, "sweep")) {
        printf("pid %d\n", (int)getpid());
        fflush(stdout);
        while (!strcmp(mode, "sweep"))
            for (uint64_t i = 0; i < n; i += 64) a[i]++;
        for (;;) pause();
    }
    return 0;
}
