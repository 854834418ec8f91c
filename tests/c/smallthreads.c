/* Threads that allocate, check and free small blocks at the same time, and free each other's:
 * with dlmcc every block is in the small-block heap, and a thread may fault on DLM memory while
 * another holds the allocator's locks. Each thread fills its blocks with a pattern; then each
 * checks and frees the blocks of the next thread, and grows its own survivors with realloc.
 * The output must equal the gcc build's.
 *
 *   smallthreads MIB     (MIB: data per thread) */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 4

struct work {
    size_t count;
    unsigned char **blocks;
    size_t *sizes;
    size_t damaged;
    uint64_t sum;
    pthread_barrier_t *barrier;
    struct work *next;
    unsigned seed;
};

static unsigned char pattern(size_t block, size_t i) { return (unsigned char)(block * 131 + i * 7); }

static int intact(const unsigned char *p, size_t n, size_t block) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != pattern(block, i))
            return 0;
    return 1;
}

static void *run(void *arg) {
    struct work *w = arg;
    for (size_t b = 0; b < w->count; b++) {
        w->sizes[b] = 16 + rand_r(&w->seed) % 4000;
        w->blocks[b] = malloc(w->sizes[b]);
        if (w->blocks[b] == NULL)
            abort();
        for (size_t i = 0; i < w->sizes[b]; i++)
            w->blocks[b][i] = pattern(b, i);
    }
    pthread_barrier_wait(w->barrier);
    /* The next thread's odd blocks: checked and freed here, a thread that did not allocate them. */
    struct work *other = w->next;
    for (size_t b = 1; b < other->count; b += 2) {
        w->damaged += !intact(other->blocks[b], other->sizes[b], b);
        w->sum += other->blocks[b][other->sizes[b] / 2];
        free(other->blocks[b]);
    }
    pthread_barrier_wait(w->barrier);
    /* Its own even blocks: grown, checked, freed. */
    for (size_t b = 0; b < w->count; b += 2) {
        w->blocks[b] = realloc(w->blocks[b], w->sizes[b] + 5000);
        if (w->blocks[b] == NULL)
            abort();
        w->damaged += !intact(w->blocks[b], w->sizes[b], b);
        free(w->blocks[b]);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: smallthreads MIB\n");
        return 2;
    }
    size_t count = (size_t)atol(argv[1]) * 1048576 / 2008; /* blocks average 2008 bytes */
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, THREADS);
    struct work work[THREADS];
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) {
        work[t] = (struct work){count, malloc(count * sizeof(unsigned char *)), malloc(count * sizeof(size_t)), 0, 0,
                                &barrier, &work[(t + 1) % THREADS], 1000u + (unsigned)t};
        if (work[t].blocks == NULL || work[t].sizes == NULL)
            return 1;
    }
    for (int t = 0; t < THREADS; t++)
        pthread_create(&threads[t], NULL, run, &work[t]);
    size_t damaged = 0;
    uint64_t sum = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        damaged += work[t].damaged;
        sum += work[t].sum;
    }
    for (int t = 0; t < THREADS; t++) {
        free(work[t].blocks);
        free(work[t].sizes);
    }
    printf("%d threads, %zu blocks each: %zu damaged, sum %llu\n", THREADS, count, damaged, (unsigned long long)sum);
    return 0;
}
