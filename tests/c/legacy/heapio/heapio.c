/*
 * heapio.c -- a plain C program that lives on the heap and does file I/O:
 *   - writes FILE_MIB MiB of pseudo-random bytes to the file named by argv[1]
 *     with fwrite, from a malloc'd generation buffer;
 *   - reads the file back with fread into four malloc'd buffers (16+16+8+8 MiB);
 *   - grows one buffer with realloc from 1 KiB to 32 MiB, doubling, with small
 *     mallocs in between, checking the kept prefix each time, then freads the
 *     file into it again;
 *   - folds everything into a calloc'd 16 MiB table (checked to start zeroed);
 *   - builds, reverses and frees a linked list of 10000 small nodes.
 * About 112 MiB of heap is live at the peak.  Prints checksums; exit 0 on success.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024UL * 1024UL)
#define FILE_MIB 48
#define GEN_MIB 16
#define GROW_START 1024UL
#define GROW_MAX (32 * MIB)
#define ZERO_MIB 16
#define NNODES 10000
#define NBUFS 4

struct node {
    struct node *next;
    int key;
    char tag[12];
};

static unsigned long long rng_state = 0x9e3779b97f4a7c15ULL;

static unsigned long long next_rand(void)
{
    unsigned long long x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static unsigned long long fnv(const unsigned char *p, size_t n, unsigned long long h)
{
    size_t i;
    for (i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

#define FNV_START 14695981039346656037ULL

static void die(const char *what)
{
    perror(what);
    exit(1);
}

int main(int argc, char **argv)
{
    static const size_t buf_mib[NBUFS] = {16, 16, 8, 8};
    unsigned char *gen, *bufs[NBUFS], *grow;
    unsigned long long *zero;
    char *names[32];
    int nnames = 0;
    struct node *head = NULL, *nd, *prev, *nx;
    unsigned long long h_write = FNV_START, h_read = FNV_START, h, word;
    size_t i, k, size, nwords, nonzero = 0, off;
    long list_sum = 0, list_weighted = 0, pos;
    int c, bad = 0;
    FILE *f;

    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE\n", argv[0]);
        return 2;
    }

    /* Write: FILE_MIB MiB through one GEN_MIB MiB buffer. */
    gen = malloc(GEN_MIB * MIB);
    if (!gen)
        die("malloc");
    f = fopen(argv[1], "wb");
    if (!f)
        die(argv[1]);
    for (c = 0; c < FILE_MIB / GEN_MIB; c++) {
        for (i = 0; i < GEN_MIB * MIB; i += 8) {
            word = next_rand();
            memcpy(gen + i, &word, 8);
        }
        h_write = fnv(gen, GEN_MIB * MIB, h_write);
        if (fwrite(gen, 1, GEN_MIB * MIB, f) != GEN_MIB * MIB)
            die("fwrite");
    }
    if (fclose(f) != 0)
        die("fclose");
    printf("written: %d MiB hash %016llx\n", FILE_MIB, h_write);

    /* Read it back into several heap buffers. */
    f = fopen(argv[1], "rb");
    if (!f)
        die(argv[1]);
    for (k = 0; k < NBUFS; k++) {
        bufs[k] = malloc(buf_mib[k] * MIB);
        if (!bufs[k])
            die("malloc");
        if (fread(bufs[k], 1, buf_mib[k] * MIB, f) != buf_mib[k] * MIB)
            die("fread");
        h_read = fnv(bufs[k], buf_mib[k] * MIB, h_read);
    }
    if (fgetc(f) != EOF)
        bad++;
    printf("read: hash %016llx same %d\n", h_read, h_read == h_write);
    bad += h_read != h_write;

    /* Grow one buffer by doubling; the kept prefix must survive every move. */
    size = GROW_START;
    grow = malloc(size);
    if (!grow)
        die("malloc");
    memcpy(grow, bufs[0], size);
    while (size < GROW_MAX) {
        unsigned long long before = fnv(grow, size, FNV_START);
        unsigned char *g = realloc(grow, 2 * size);
        if (!g)
            die("realloc");
        grow = g;
        if (fnv(grow, size, FNV_START) != before)
            bad++;
        /* The new half: file bytes from further on, flipped. */
        off = (size * 3) % (FILE_MIB * MIB / 2);
        for (i = 0; i < size; i++) {
            size_t at = off + i;
            grow[size + i] = (unsigned char)~bufs[at / (16 * MIB) % 2][at % (16 * MIB)];
        }
        size *= 2;
        /* A small allocation in between, so the next realloc may have to move. */
        names[nnames] = malloc(40);
        if (!names[nnames])
            die("malloc");
        sprintf(names[nnames], "step %d: %lu bytes", nnames, (unsigned long)size);
        nnames++;
    }
    printf("grown: %lu bytes after %d doublings, hash %016llx, last name \"%s\"\n",
           (unsigned long)size, nnames, fnv(grow, size, FNV_START), names[nnames - 1]);

    /* fread again, into the realloc'd buffer (which is smaller than the file). */
    f = freopen(argv[1], "rb", f);
    if (!f)
        die("freopen");
    if (fread(grow, 1, size, f) != size)
        die("fread");
    if (fclose(f) != 0)
        die("fclose");
    if (memcmp(grow, bufs[0], 16 * MIB) != 0 || memcmp(grow + 16 * MIB, bufs[1], 16 * MIB) != 0)
        bad++;
    printf("reread: hash %016llx\n", fnv(grow, size, FNV_START));

    /* A zeroed table, then every file word folded into it. */
    nwords = ZERO_MIB * MIB / sizeof *zero;
    zero = calloc(nwords, sizeof *zero);
    if (!zero)
        die("calloc");
    for (i = 0; i < nwords; i++)
        nonzero += zero[i] != 0;
    for (k = 0; k < NBUFS; k++)
        for (i = 0; i < buf_mib[k] * MIB; i += 8) {
            memcpy(&word, bufs[k] + i, 8);
            zero[(word >> 7) % nwords] += word | 1;
        }
    printf("calloc: nonzero before %lu, hash %016llx\n", (unsigned long)nonzero,
           fnv((const unsigned char *)zero, nwords * sizeof *zero, FNV_START));
    bad += nonzero != 0;

    /* A linked list of small nodes; built at the front, then reversed. */
    for (i = 0; i < NNODES; i++) {
        nd = malloc(sizeof *nd);
        if (!nd)
            die("malloc");
        nd->key = (int)(next_rand() % 100000);
        sprintf(nd->tag, "n%lu", (unsigned long)i);
        nd->next = head;
        head = nd;
    }
    for (prev = NULL, nd = head; nd; nd = nx) {
        nx = nd->next;
        nd->next = prev;
        prev = nd;
    }
    head = prev;
    for (pos = 0, nd = head; nd; nd = nd->next, pos++) {
        list_sum += nd->key;
        list_weighted += (pos % 97) * nd->key;
        if (strtol(nd->tag + 1, NULL, 10) != pos)
            bad++;
    }
    printf("list: %ld nodes, sum %ld weighted %ld\n", pos, list_sum, list_weighted);

    h = FNV_START;
    for (c = 0; c < nnames; c++) {
        h = fnv((const unsigned char *)names[c], strlen(names[c]), h);
        free(names[c]);
    }
    printf("names: hash %016llx\n", h);

    for (nd = head; nd; nd = nx) {
        nx = nd->next;
        free(nd);
    }
    free(zero);
    free(grow);
    for (k = 0; k < NBUFS; k++)
        free(bufs[k]);
    free(gen);
    printf("bad: %d\n", bad);
    return bad != 0;
}
