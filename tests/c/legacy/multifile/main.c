/*
 * main.c -- a program spread over several files sharing global arrays:
 * field (64 MiB) and counts (16 MiB) from grid.c, a 2 MiB static local
 * histogram and a 1.25 MiB const table in solve.c, and cells (32 MiB, an
 * array of structs) here.  About 115 MiB of data.
 */
#include <stdio.h>
#include "grid.h"

static struct cell { double v; int id; float w; } cells[NCELLS];

static unsigned long count_hash(void)
{
    unsigned long h = 0;
    long nonzero = 0;
    int i;
    for (i = 0; i < NCOUNTS; i++) {
        h = (h * 31UL + (unsigned long)counts[i]) & 0xffffffffUL;
        nonzero += counts[i] != 0;
    }
    return h ^ (unsigned long)nonzero << 8;
}

int main(void)
{
    int i;
    double wsum = 0.0;
    long idsum = 0, badids = 0;
    struct cell tmp;

    printf("bytes: field %lu cells %lu\n", (unsigned long)sizeof field, (unsigned long)sizeof cells);
    printf("seeds: %ld\n", count_seeds());
    printf("table: %lu\n", table_sum());

    fill_field();
    printf("energy before: %.10e\n", row_energy(NX, NY));
    printf("tally 1: %08lx\n", tally(1));
    relax(field, NSWEEP);
    printf("energy after: %.10e\n", row_energy(NX, NY));
    printf("energy as wide rows: %.10e\n", row_energy(NX / 2, 2 * NY));
    printf("tally 2: %08lx\n", tally(2));
    printf("counts: %08lx\n", count_hash());

    for (i = 0; i < NCELLS; i++) {
        /* Rows in order, columns scattered within each row. */
        cells[i].v = field[(i / NY) % NX][(i * 7) % NY];
        cells[i].id = i;
        cells[i].w = (float)(i % 100) / 8.0f;
    }
    /* Reverse the array by whole-struct copies. */
    for (i = 0; i < NCELLS / 2; i++) {
        tmp = cells[i];
        cells[i] = cells[NCELLS - 1 - i];
        cells[NCELLS - 1 - i] = tmp;
    }
    for (i = 0; i < NCELLS; i++) {
        wsum += cells[i].v * (double)cells[i].w;
        idsum += cells[i].id;
        badids += cells[i].id != NCELLS - 1 - i;
    }
    printf("cells: wsum %.10e idsum %ld badids %ld\n", wsum, idsum, badids);
    return badids != 0;
}
