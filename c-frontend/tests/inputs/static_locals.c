/* args: -std=c99 */
#define N 1024
double work(int i) {
    static double buf[N][N];
    static int counts[1 << 18] = { 1 }, small[8];
    double tmp[16];
    tmp[0] = i;
    buf[i][i] += tmp[0] + small[0];
    return buf[i][0] + counts[i];
}

double again(int i) {
    static double buf[N][N];
    return buf[i][i];
}
