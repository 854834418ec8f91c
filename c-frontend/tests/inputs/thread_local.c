/* args: -std=c11 */
_Thread_local double tl[1 << 18];
static __thread int tl2[1 << 19];
double plain[1 << 18];

double use(void) { return tl[0] + tl2[0] + plain[0]; }
