/* args: -std=c99 */
double t[1 << 18];
double t[1 << 18];
double u[1 << 18];
double u[1 << 18] = { 1.0 };
extern double v[1 << 18];
double v[1 << 18];

double use(void) { return t[0] + u[0] + v[0]; }
