/* A program with its own SIGSEGV handler (a guard page it unprotects on first touch) also
 * uses DLM memory: both keep working. */
#include <dlm.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static char *guarded;
static volatile int handled;

static void on_segv(int sig, siginfo_t *info, void *ctx) {
    (void)sig; (void)ctx;
    char *addr = info->si_addr;
    if (addr >= guarded && addr < guarded + 4096) {
        mprotect(guarded, 4096, PROT_READ | PROT_WRITE);
        handled++;
        return;
    }
    _exit(99);
}

int main(int argc, char **argv) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    dlm_startup(&argc, &argv);
    guarded = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint64_t n = 32 << 20 >> 3;
    uint64_t *a = dlm_alloc(n * sizeof *a);
    if (!a) return 1;
    for (uint64_t i = 0; i < n; i++) a[i] = i ^ 0x55;
    guarded[10] = 1; /* the program's own fault */
    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; i++) bad += a[i] != (i ^ 0x55);
    printf("own handler ran %d time(s), DLM mismatches %llu\n", handled, (unsigned long long)bad);
    return bad != 0 || handled != 1;
}
