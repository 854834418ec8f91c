/* Arrays defined in a header (the layout of a CFD-style solver family): a static one, copied in
 * every file that includes the header, a shared tentative definition (-fcommon), and an
 * initialized constant table; sizes from a generated npbparams.h. */
#include "npbparams.h"
static double u[5][KMAX][JMAX][IMAX + 1];
double shared_grid[KMAX][JMAX][IMAX];
static const double coef[1 << 18] = {1.0, 2.0, 3.0};
extern double elsewhere[1 << 20];
