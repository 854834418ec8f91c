/* solve.c -- relaxation, energies and a histogram through a permutation table. */
#include "grid.h"

/*
 * tbl: a fixed permutation of 0 .. NTBL-1 (NTBL = 5 * 65536, 1.25 MiB), built
 * by the preprocessor: each hex digit of the index goes through the same
 * digit shuffle.  ROW pastes the last digit onto a prefix of literal digits.
 */
#define NTBL (5 * 65536)
#define ROW(h) h##7u, h##cu, h##1u, h##au, h##4u, h##fu, h##0u, h##9u, \
               h##2u, h##du, h##6u, h##3u, h##eu, h##5u, h##bu, h##8u
#define H256(p) ROW(p##7), ROW(p##c), ROW(p##1), ROW(p##a), ROW(p##4), ROW(p##f), \
                ROW(p##0), ROW(p##9), ROW(p##2), ROW(p##d), ROW(p##6), ROW(p##3), \
                ROW(p##e), ROW(p##5), ROW(p##b), ROW(p##8)
#define H4K(p) H256(p##7), H256(p##c), H256(p##1), H256(p##a), H256(p##4), H256(p##f), \
               H256(p##0), H256(p##9), H256(p##2), H256(p##d), H256(p##6), H256(p##3), \
               H256(p##e), H256(p##5), H256(p##b), H256(p##8)
#define H64K(p) H4K(p##7), H4K(p##c), H4K(p##1), H4K(p##a), H4K(p##4), H4K(p##f), \
                H4K(p##0), H4K(p##9), H4K(p##2), H4K(p##d), H4K(p##6), H4K(p##3), \
                H4K(p##e), H4K(p##5), H4K(p##b), H4K(p##8)

static const unsigned tbl[NTBL] = {
    H64K(0x3), H64K(0x0), H64K(0x4), H64K(0x1), H64K(0x2)
};

/* Gauss-Seidel sweeps of the 5-point average, in place; the border stays. */
void relax(double (*f)[NY], int n)
{
    int s, i, j;
    for (s = 0; s < n; s++)
        for (i = 1; i < NX - 1; i++)
            for (j = 1; j < NY - 1; j++)
                f[i][j] = 0.2 * (f[i][j] + f[i - 1][j] + f[i + 1][j] + f[i][j - 1] + f[i][j + 1]);
}

/* The field seen as ny-wide rows (a VLA pointer); weighted sum of squares. */
double row_energy(int nx, int ny)
{
    double (*v)[ny] = (double (*)[ny])field;
    double e = 0.0;
    int i, j;
    for (i = 0; i < nx; i++) {
        double row = 0.0;
        for (j = 0; j < ny; j++)
            row += v[i][j] * v[i][j];
        e += row * (double)(i % 7 + 1);
    }
    return e;
}

/*
 * Buckets every field value through tbl into hist (static: it keeps the
 * previous rounds) and into counts.  Returns a hash of hist.
 */
unsigned long tally(int round)
{
    static long hist[1 << 18];
    unsigned long h = 0;
    int i, j;
    for (i = 0; i < NX; i++)
        for (j = 0; j < NY; j++) {
            unsigned q = (unsigned)(field[i][j] * 65535.0);      /* field is in [0, 1] */
            unsigned t = tbl[(q * 5u + (unsigned)j) % NTBL];
            hist[t & ((1u << 18) - 1)] += round;
            counts[(t * 13u + (unsigned)i) % NCOUNTS] += 1;
        }
    for (i = 0; i < (1 << 18); i++)
        h = (h * 1000003UL + (unsigned long)hist[i]) & 0xffffffffUL;
    return h;
}

/* NTBL * (NTBL - 1) / 2 if tbl holds a permutation; also checks positions. */
unsigned long table_sum(void)
{
    unsigned long s = 0, misplaced = 0;
    unsigned i;
    for (i = 0; i < NTBL; i++) {
        s += tbl[i];
        if (tbl[i] >= NTBL)
            misplaced++;
    }
    return misplaced ? 0 : s;
}
