/* args: -std=c99 */
static const double table[1 << 17] = { 1.0, 2.0, 3.0 };
int lut[300000] = { 0 };
static const char *names[1 << 17] = { "zero", "one" };
unsigned char bytes[1 << 20] = "abc";
static int tiny[4] = { 1, 2, 3, 4 };

int get(int i) { return (int)table[i] + lut[i] + (names[i] != 0) + bytes[i] + tiny[i & 3]; }
