/* args: -std=c99 */
#include <stdio.h>
static double small[16];

int main(void) {
    printf("%f\n", small[0]);
    return 0;
}
