/* A library built with plain cc (not dlmcc) that grows and frees its callers' buffers. */
#include <stdlib.h>

void *lib_grow(void *p, size_t bytes) { return realloc(p, bytes); }

void lib_free(void *p) { free(p); }
