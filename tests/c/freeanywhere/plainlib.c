/* A library built with plain cc (not dlmcc) that grows and frees its callers' buffers, and
 * reads files into them with read(2). */
#include <stdlib.h>
#include <unistd.h>

void *lib_grow(void *p, size_t bytes) { return realloc(p, bytes); }

void lib_free(void *p) { free(p); }

/* Reads `bytes` from `fd` into `p`; returns the bytes read, or -1. */
long lib_read_all(int fd, void *p, size_t bytes) {
    size_t done = 0;
    while (done < bytes) {
        ssize_t got = read(fd, (char *)p + done, bytes - done);
        if (got <= 0)
            return -1;
        done += (size_t)got;
    }
    return (long)done;
}
