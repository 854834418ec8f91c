/*
 * triad.c -- STREAM-like bandwidth kernels (copy, scale, add, triad) over three
 * file-scope static arrays of doubles, legacy style: the length is a macro, one
 * array has an initializer for its first elements (the rest are zero), loops use
 * sizeof a / sizeof a[0], and a pointer to the whole array is passed around.
 *
 * 3 arrays of 5 Mi doubles (40 MiB each): 120 MiB of data.
 * Prints per-array sums and hashes, and the number of elements that differ from
 * the value the same arithmetic gives on scalars.
 */
#include <stdio.h>
#include <string.h>

#define N (5 * 1024 * 1024)
#define NTIMES 6
#define SCALAR 3.0
#define NPATTERN 13

static double a[N] = {1.0, 2.0, 3.0};
static double b[N], c[N];

/* The first elements keep their initializer; the rest follow a short pattern. */
static double initial(long j)
{
    static const double head[] = {1.0, 2.0, 3.0};
    if (j < (long)(sizeof head / sizeof head[0]))
        return head[j];
    return 1.0 + (double)(j % NPATTERN) * 0.25;
}

static double sum_of(double (*v)[N])
{
    double s = 0.0;
    size_t j;
    for (j = 0; j < sizeof *v / sizeof (*v)[0]; j++)
        s += (*v)[j];
    return s;
}

static unsigned long long hash_of(const double *v, size_t n)
{
    unsigned long long h = 14695981039346656037ULL, bits;
    size_t j;
    for (j = 0; j < n; j++) {
        memcpy(&bits, &v[j], sizeof bits);
        h = (h ^ bits) * 1099511628211ULL;
    }
    return h;
}

int main(void)
{
    double (*pa)[N] = &a;
    const size_t n = sizeof a / sizeof a[0];
    double ea[NPATTERN + 3], eb[NPATTERN + 3], ec[NPATTERN + 3];
    long j, mismatches = 0;
    int k, t;

    printf("elements: %lu per array, %lu bytes per array\n", (unsigned long)n, (unsigned long)sizeof a);

    /* The initializer must be visible before the program writes anything. */
    printf("initial a: %.1f %.1f %.1f %.1f zeros in b,c: %d\n", a[0], a[1], a[2], a[3],
           b[0] == 0.0 && c[N - 1] == 0.0 && b[N / 2] == 0.0);
    if (a[0] != 1.0 || a[1] != 2.0 || a[2] != 3.0 || a[3] != 0.0 || a[N - 1] != 0.0)
        mismatches++;

    for (j = 3; j < (long)n; j++)
        (*pa)[j] = initial(j);
    for (j = 0; j < (long)(sizeof b / sizeof b[0]); j++) {
        b[j] = 2.0;
        c[j] = 0.0;
    }

    for (k = 0; k < NTIMES; k++) {
        for (j = 0; j < N; j++)
            c[j] = a[j];
        for (j = 0; j < N; j++)
            b[j] = SCALAR * c[j];
        for (j = 0; j < N; j++)
            c[j] = a[j] + b[j];
        for (j = 0; j < N; j++)
            a[j] = b[j] + SCALAR * c[j];
    }

    /* The same arithmetic on one scalar per distinct starting value: slots 0..2 are
       the initialized head, slot 3 + r the pattern value for j % NPATTERN == r. */
    for (t = 0; t < NPATTERN + 3; t++) {
        ea[t] = t < 3 ? initial(t) : 1.0 + (double)(t - 3) * 0.25;
        eb[t] = 2.0;
        ec[t] = 0.0;
        for (k = 0; k < NTIMES; k++) {
            ec[t] = ea[t];
            eb[t] = SCALAR * ec[t];
            ec[t] = ea[t] + eb[t];
            ea[t] = eb[t] + SCALAR * ec[t];
        }
    }
    for (j = 0; j < N; j++) {
        t = j < 3 ? (int)j : 3 + (int)(j % NPATTERN);
        if (a[j] != ea[t] || b[j] != eb[t] || c[j] != ec[t])
            mismatches++;
    }

    printf("sum a: %.10e\n", sum_of(pa));
    printf("sum b: %.10e\n", sum_of(&b));
    printf("sum c: %.10e\n", sum_of(&c));
    printf("hash a: %016llx b: %016llx c: %016llx\n", hash_of(a, n), hash_of(*&b, N), hash_of(&c[0], N));
    printf("a[0..2]: %.10e %.10e %.10e a[N-1]: %.10e\n", a[0], a[1], a[2], (*pa)[N - 1]);
    printf("mismatches: %ld\n", mismatches);
    return mismatches != 0;
}
