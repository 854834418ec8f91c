/* args: -std=c99 */
#define BIGARRAY(name) static double name[1 << 18]
#define DECLARE_BUF double buf[1 << 18]
BIGARRAY(x);
DECLARE_BUF;
static double y[1 << 18];

double use(void) { return x[0] + buf[0] + y[0]; }
