/* args: -std=c11 */
#define N 512
#define M (N * 2)
#define DIM(x) ((x) + 1)

double grid[N][M];
static float cube[64][64][64];
static double small[N];
static char planes[4][DIM(N)][N * 2];
static short six[2][3][4][5][6][DIM(999)];

double sum(void) { return grid[1][2] + cube[1][2][3] + small[3] + planes[0][0][0] + six[1][2][3][4][5][6]; }
