/* The solver's grids, defined here and shared by every file that includes this header
 * (tentative definitions merged by the linker, as with -fcommon). */
#include "params.h"

double u[NZ][NY][NX];     /* the solution */
double unew[NZ][NY][NX];  /* the next iterate */
double rhs[NZ][NY][NX];   /* the right-hand side */
double resid[NZ][NY][NX]; /* the residual of the last sweep */

void relax(double h2);
double residual(double h2);
