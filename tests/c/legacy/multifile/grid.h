/* grid.h -- shared declarations of the multifile program. */
#ifndef GRID_H
#define GRID_H

#define NX 2048
#define NY 4096
#define NCOUNTS (1 << 22)
#define NCELLS (1 << 21)
#define NSWEEP 4

/* Defined in grid.c: 64 MiB of field, 16 MiB of counts. */
extern double field[NX][NY];
extern int counts[];

void fill_field(void);
long count_seeds(void);

void relax(double (*f)[NY], int n);
double row_energy(int nx, int ny);
unsigned long tally(int round);
unsigned long table_sum(void);

#endif
