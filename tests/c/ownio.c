/* A legacy program with functions of its own named like the C library's I/O and allocation
 * functions that dlmcc links in: its own definitions must win, as with the compiler alone. */
#include <stdio.h>

int send(int to, int value) { return to * 1000 + value; }
long read(long a, long b) { return a - b; }

int main(void) {
    printf("send %d read %ld\n", send(3, 7), read(10, 4));
    return 0;
}
