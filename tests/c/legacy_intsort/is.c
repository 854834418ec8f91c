/* An integer sort in the shape of the classic benchmark kernel: three adjacent global int arrays
 * of NKEYS (no alignment of their own), keys drawn from a generator whose state is a global
 * double, timers writing global structs, a bucket scatter into 1024 sequential streams,
 * random-index increments, ranks left in a global pointer, and a full verification that
 * scatters the keys back at random. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/time.h>

#ifndef LOG_KEYS
#define LOG_KEYS 23
#endif
#ifndef LOG_MAXKEY
#define LOG_MAXKEY 19
#endif
#ifndef ITERATIONS
#define ITERATIONS 10
#endif
#define LOG_BUCKETS 10
#define NKEYS (1 << LOG_KEYS)
#define MAXKEY (1 << LOG_MAXKEY)
#define NBUCKETS (1 << LOG_BUCKETS)
#define PROBES 5

int key_array[NKEYS], key_buff1[NKEYS], key_buff2[NKEYS], probe_vals[PROBES];
int *ranks_global;
int probe_index[PROBES] = {48427, 17148, 23627, 62548, 4431};
int probe_rank[PROBES] = {0, 18, 346, 64917, 65463};
int verified;
double seed_state = 314159265.0;
struct timeval wall_start;
struct timespec cpu_marks[3];
double elapsed[3];
char banner[128];

static double next_uniform(void)
{
    /* A 46-bit multiplicative generator evaluated in two 23-bit halves, state in a double. */
    const double a = 1220703125.0, t23 = 8388608.0, r23 = 1.0 / t23, t46 = t23 * t23, r46 = r23 * r23;
    double a1 = (double)(long)(r23 * a), a2 = a - t23 * a1;
    double x1 = (double)(long)(r23 * seed_state), x2 = seed_state - t23 * x1;
    double t1 = a1 * x2 + a2 * x1;
    double z = t1 - t23 * (double)(long)(r23 * t1);
    double t3 = t23 * z + a2 * x2;
    seed_state = t3 - t46 * (double)(long)(r46 * t3);
    return r46 * seed_state;
}

static void mark(int which) { clock_gettime(CLOCK_MONOTONIC, &cpu_marks[which]); }
static void lap(int which)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    elapsed[which] += (now.tv_sec - cpu_marks[which].tv_sec) + 1e-9 * (now.tv_nsec - cpu_marks[which].tv_nsec);
}

static void make_keys(void)
{
    double k = MAXKEY / 4;
    for (long i = 0; i < NKEYS; i++) {
        double x = next_uniform();
        x += next_uniform();
        x += next_uniform();
        x += next_uniform();
        key_array[i] = (int)(k * x);
    }
}

static void rank(int iteration)
{
    static int bucket_size[NBUCKETS], bucket_ptrs[NBUCKETS];
    int probed[PROBES];
    int shift = LOG_MAXKEY - LOG_BUCKETS;

    key_array[iteration] = iteration;
    key_array[iteration + ITERATIONS] = MAXKEY - iteration;
    for (int i = 0; i < PROBES; i++)
        probed[i] = key_array[probe_index[i]];

    memset(bucket_size, 0, sizeof bucket_size);
    for (long i = 0; i < NKEYS; i++)
        bucket_size[key_array[i] >> shift]++;
    bucket_ptrs[0] = 0;
    for (int i = 1; i < NBUCKETS; i++)
        bucket_ptrs[i] = bucket_ptrs[i - 1] + bucket_size[i - 1];
    for (long i = 0; i < NKEYS; i++) {
        int k = key_array[i];
        key_buff2[bucket_ptrs[k >> shift]++] = k;
    }
    /* Count the keys of each bucket, then turn counts into ranks. */
    for (int b = 0; b < NBUCKETS; b++) {
        int lo = b << shift, hi = (b + 1) << shift;
        int from = b == 0 ? 0 : bucket_ptrs[b - 1], to = bucket_ptrs[b];
        for (int k = lo; k < hi; k++)
            key_buff1[k] = 0;
        for (int i = from; i < to; i++)
            key_buff1[key_buff2[i]]++;
        int before = lo == 0 ? 0 : key_buff1[lo - 1];
        for (int k = lo; k < hi; k++) {
            before += key_buff1[k];
            key_buff1[k] = before;
        }
    }
    for (int i = 0; i < PROBES; i++) {
        int k = probed[i];
        if (k >= 1 && k < MAXKEY) {
            int r = key_buff1[k - 1];
            if (r >= probe_rank[i] - 1000000)
                verified++;
        }
    }
    if (iteration == ITERATIONS)
        ranks_global = key_buff1;
}

static void full_verify(void)
{
    memcpy(key_buff1 + MAXKEY, key_array, sizeof(int) * (NKEYS - MAXKEY));
    for (long i = 0; i < NKEYS; i++)
        key_array[--ranks_global[key_buff2[i]]] = key_buff2[i];
    long wrong = 0;
    for (long i = 1; i < NKEYS; i++)
        if (key_array[i - 1] > key_array[i])
            wrong++;
    if (wrong)
        printf("full verify: %ld keys out of order\n", wrong);
    else
        verified++;
}

int main(void)
{
    gettimeofday(&wall_start, NULL);
    snprintf(banner, sizeof banner, "sort of %d keys in [0, %d), %d iterations", NKEYS, MAXKEY, ITERATIONS);
    puts(banner);
    printf("data %zu bytes\n", sizeof key_array + sizeof key_buff1 + sizeof key_buff2);
    mark(0);
    make_keys();
    lap(0);
    rank(1);
    verified = 0;
    mark(1);
    for (int it = 1; it <= ITERATIONS; it++) {
        printf("iteration %d\n", it);
        rank(it);
    }
    lap(1);
    mark(2);
    full_verify();
    lap(2);
    unsigned long sum = 0;
    for (long i = 0; i < NKEYS; i += 97)
        sum = sum * 31 + key_array[i] + key_buff2[i] + key_buff1[i % NKEYS];
    printf("verified %d checksum %lu\n", verified, sum);
    return 0;
}
