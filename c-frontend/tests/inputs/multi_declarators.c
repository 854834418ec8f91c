/* args: -std=c99 */
#define N 512
static double a[N][N], b[4], x, *p, c[N][N];
int s1[10], big1[1 << 20], s2[3] = { 1, 2, 3 }, big2[1 << 19] = { 1 };
static double (*fps[1 << 17])(int), y = 2.0;

double use(void) { p = &x; return a[0][0] + b[0] + c[0][0] + s1[0] + big1[0] + s2[0] + big2[0] + *p + y + (fps[0] != 0); }
