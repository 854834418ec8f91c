/* args: -std=c99 */
__attribute__((dlm)) static int lead1[10];
static double __attribute__((dlm)) lead2a[4], lead2b[4];
static double after1[8] __attribute__((dlm)), not_marked[8];
static double no[8], __attribute__((__dlm__)) yes[8];
static int init[4] __attribute__((dlm)) = { 1, 2, 3, 4 };

int use(void) {
    return lead1[0] + (int)lead2a[0] + (int)lead2b[0] + (int)after1[0] + (int)not_marked[0] + (int)no[0] +
           (int)yes[0] + init[0];
}
