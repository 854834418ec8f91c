#define XMALLOC(n) malloc(n)
#define XFREE(p) free(p)
