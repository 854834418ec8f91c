#define IMAX 64
#define JMAX 64
#define KMAX 64
