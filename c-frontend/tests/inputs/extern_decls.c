/* args: -std=c99 */
extern double grid[1024][1024];
extern float cube[64][64][64];

double use(void) {
    extern double more[1 << 20];
    return grid[0][0] + cube[0][0][0] + more[0];
}
