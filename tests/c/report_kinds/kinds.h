/* Arrays defined in one of the program's own headers, included by both files. */
#define FIELD_POINTS (256 * 1024)

static double field[FIELD_POINTS];   /* 2 MiB, one copy per including file: moves */
double shared_field[FIELD_POINTS];   /* 2 MiB, one array for the program (-fcommon): moves */
static int header_counts[64];        /* below the threshold */

double field_sum(void);
