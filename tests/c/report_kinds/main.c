/* A program with every kind of decision --dlm-report summarizes: big static arrays, arrays
 * defined in a header, heap allocation sites, small arrays, an array kept by #pragma dlm off,
 * a thread-local array and a table from a system header. */
#include <stdio.h>
#include <stdlib.h>
#include <vendor_tables.h>
#include "kinds.h"

#define GRID (1024 * 1024)
#define HEAP_BYTES (4 << 20)

double grid[GRID];                   /* 8 MiB: moves */
static float weights[GRID / 2];      /* 2 MiB: moves */
static int histogram[256];           /* below the threshold */
#pragma dlm off
static double scratch[GRID / 4];     /* 2 MiB, kept by the pragma */
static __thread double per_thread[GRID / 4]; /* 2 MiB, thread-local */

int main(void)
{
    static char line_buffer[1024];   /* below the threshold */
    double *heap = malloc(HEAP_BYTES);
    unsigned char *bytes = calloc(HEAP_BYTES, 1);
    if (!heap || !bytes)
        return 1;
    for (long i = 0; i < GRID; i++)
        grid[i] = (double)(i % 1000);
    for (long i = 0; i < GRID / 2; i++)
        weights[i] = 0.5f;
    for (long i = 0; i < GRID / 4; i++) {
        scratch[i] = grid[i] * weights[i];
        per_thread[i] = scratch[i] + 1.0;
        field[i] = per_thread[i];
        shared_field[i] = 2.0;
        heap[i] = field[i] + bytes[i];
        histogram[i % 256]++;
        header_counts[i % 64]++;
    }
    double sum = 0;
    for (long i = 0; i < GRID / 4; i++)
        sum += heap[i];
    snprintf(line_buffer, sizeof line_buffer, "sum %.1f %d %d %u %.1f", sum, histogram[7], header_counts[3],
             vendor_crc_table[1], field_sum());
    puts(line_buffer);
    free(bytes);
    free(heap);
    return 0;
}
