/* DLM (Distributed Large Memory): memory for a sequential program, paged to memory servers
 * that run as MPI ranks. Build with `dlmcc`; see the README for launching and options. */
#ifndef DLM_H
#define DLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Paging statistics (see dlm_get_stats). */
struct dlm_stats {
    uint64_t faults;                /* page faults served */
    uint64_t zero_fills;            /* faults on never-written pages, zero-filled locally */
    uint64_t bytes_fetched;         /* bytes read back from memory servers */
    uint64_t bytes_written_back;    /* bytes of dirty pages sent to memory servers */
    uint64_t pages_evicted;         /* DLM pages dropped from local memory */
    uint64_t resident_bytes;        /* DLM bytes resident now */
    uint64_t peak_resident_bytes;   /* most DLM bytes resident at once */
    uint64_t local_budget_bytes;    /* the local memory budget */
    uint64_t page_size;             /* the DLM page size */
    uint64_t servers;               /* number of memory servers */
    uint64_t server_capacity_bytes; /* what the servers may hold together */
    double wait_seconds;            /* time threads waited for the pager */
    uint64_t pages_moved;           /* pages moved into place (UFFDIO_MOVE), not copied */
};

/* Starts DLM. Call it first in main with main's arguments (or NULLs). Under mpirun, ranks other
 * than 0 become memory servers here and never return. Removes the DLM options that follow `--`
 * from argv. Bad options print a message and exit with status 2. Returns 0. */
int dlm_startup(int *argc, char ***argv);

/* Allocates size bytes of DLM memory, page-aligned and zeroed. Returns NULL, with a message on
 * stderr, if the local budget plus the servers' capacity cannot hold it. */
void *dlm_alloc(size_t size);

/* Frees memory from dlm_alloc (NULL is ignored). */
void dlm_free(void *ptr);

/* Stops DLM and its memory servers. Runs by itself at exit if not called. */
void dlm_shutdown(void);

/* Copies the paging statistics to *out; returns 0, or -1 if DLM is not running. */
int dlm_get_stats(struct dlm_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* DLM_H */
