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
    uint64_t blocks_fetched;        /* isolated faults that fetched only the system page touched */
    uint64_t user_mode_only;        /* 1: user-only paging (no /dev/userfaultfd access); I/O holds buffers */
    uint64_t io_holds;              /* I/O calls (or slices) that held DLM memory resident */
    uint64_t small_heap_bytes;      /* DLM memory taken by the small-block heap (whole DLM pages) */
    uint64_t small_blocks_in_libc;  /* small blocks that came from the C library: DLM memory was full */
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

/* How a range of DLM memory will be used, for dlm_advise. By default the pager guesses: a fault
 * that continues a sequential stream brings whole pages and fetches ahead, an isolated fault
 * brings only the 4 KiB it touched. */
#define DLM_ADVICE_NORMAL 0     /* back to the pager's guesses */
#define DLM_ADVICE_SEQUENTIAL 1 /* read in order: whole pages, fetched ahead */
#define DLM_ADVICE_RANDOM 2     /* touched at random: only what is touched, nothing ahead */
#define DLM_ADVICE_WILLNEED 3   /* needed soon: start fetching it now */
#define DLM_ADVICE_DONTNEED 4   /* not needed for a while: evict it now (its data is kept) */

/* Tells the pager how [addr, addr+len) of DLM memory (from dlm_alloc or an array dlmcc moved)
 * will be used. Returns 0, or -1 with a message on stderr. */
int dlm_advise(void *addr, size_t len, int advice);

/* Stops DLM and its memory servers. Runs by itself at exit if not called. */
void dlm_shutdown(void);

/* Copies the paging statistics to *out; returns 0, or -1 if DLM is not running. */
int dlm_get_stats(struct dlm_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* DLM_H */
