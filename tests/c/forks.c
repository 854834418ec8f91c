/* fork, system and popen from a DLM program: exec-style children work; a child that touches
 * DLM memory is stopped with a message (never reads zeros); the parent's data stays intact. */
#include <dlm.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    dlm_startup(&argc, &argv);
    uint64_t n = (argc > 1 ? strtoull(argv[1], NULL, 10) : 64) << 20 >> 3;
    uint64_t *a = dlm_alloc(n * sizeof *a);
    if (!a) return 1;
    for (uint64_t i = 0; i < n; i++) a[i] = i * 7;

    fflush(stdout);
    if (system("echo system-ok") != 0) return 1;

    FILE *p = popen("wc -c", "w");
    if (!p || fwrite(a, 1, 1 << 20, p) != 1 << 20 || pclose(p) != 0) return 1;

    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        volatile uint64_t x = a[n / 2]; /* must not silently read 0 */
        printf("child read %llu\n", (unsigned long long)x);
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    printf("toucher: %s\n", WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV ? "stopped" : "NOT STOPPED");
    fflush(stdout);

    child = fork();
    if (child == 0) {
        void *more = dlm_alloc(4096); /* refused in a child */
        printf("child alloc %s\n", more ? "GRANTED" : "refused");
        exit(0); /* runs exit handlers: must not wait for the parent's pager */
    }
    waitpid(child, &status, 0);
    printf("exiting child: %s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ok" : "FAILED");

    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; i++) bad += a[i] != i * 7;
    printf("parent mismatches: %llu\n", (unsigned long long)bad);
    return bad != 0;
}
