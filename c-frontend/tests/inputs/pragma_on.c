/* args: -std=c99 */
#pragma dlm
static double small[16];
#pragma dlm on
static int s1[4], s2[8] = { 1 };
static double big[1 << 18];
int x;
#pragma dlm
double tiny[2];

int use(void) { return (int)small[0] + s1[0] + s2[0] + (int)big[0] + x + (int)tiny[0]; }
