/* Linked by dlmcc into every program it links, next to interpose.c: the C library's I/O
 * functions whose kernel side touches the caller's buffer. When the user may not open
 * /dev/userfaultfd, DLM pages in user-only mode, where the kernel's own access to a DLM page
 * that is not resident (or is write-protected) fails with EFAULT instead of waiting for the
 * pager. So each of these asks the runtime (__dlm_io_slice) whether its buffer needs holding;
 * if so, the buffer is brought in and held resident (__dlm_io_hold) for the call, in slices
 * that fit the local budget. Otherwise the call goes straight to the C library's function
 * (the next definition in the lookup order, found with dlsym(RTLD_NEXT) before main), at the
 * cost of one atomic load. Like interpose.c, these interpose the C library's functions for
 * every shared library too. All are weak: a program that defines its own `send` or `read`
 * keeps it, as with the C compiler alone. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* <stdio.h> may define these as macros at -O2. */
#undef fread_unlocked
#undef fwrite_unlocked
#undef fputs_unlocked

#define WEAK __attribute__((weak))

size_t __dlm_io_slice(const void *buf, size_t len) __attribute__((access(none, 1)));
void __dlm_io_hold(const void *buf, size_t len, int kernel_writes);
void __dlm_io_release(const void *buf, size_t len);

/* glibc's checking variants, which _FORTIFY_SOURCE calls instead (not declared by default),
 * and how they report an overflow: a message and abort. */
ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen);
ssize_t __pread_chk(int fd, void *buf, size_t len, off_t offset, size_t buflen);
ssize_t __pread64_chk(int fd, void *buf, size_t len, off64_t offset, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags, struct sockaddr *from,
                       socklen_t *fromlen);
size_t __fread_chk(void *buf, size_t buflen, size_t size, size_t count, FILE *stream);
size_t __fread_unlocked_chk(void *buf, size_t buflen, size_t size, size_t count, FILE *stream);
void __chk_fail(void) __attribute__((noreturn));

/* The C library's definition of `name`, looked up once. */
static void *next_definition(const char *name, void **cache) {
    void *found = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
    if (found == NULL) {
        found = dlsym(RTLD_NEXT, name);
        if (found == NULL) {
            static const char message[] = "dlm: fatal: the C library lacks an I/O function DLM wraps\n";
            syscall(SYS_write, 2, message, sizeof message - 1);
            abort();
        }
        __atomic_store_n(cache, found, __ATOMIC_RELEASE);
    }
    return found;
}
#define NEXT(name) ((__typeof__(&name))next_definition(#name, &next_##name))

static void *next_read, *next_pread64, *next_readv, *next_write, *next_pwrite64, *next_writev, *next_recvfrom,
    *next_sendto, *next_fread, *next_fwrite, *next_fread_unlocked, *next_fwrite_unlocked, *next_fputs,
    *next_fputs_unlocked, *next_puts, *next_getrandom;

/* Looked up before main (dlmcc's own constructors come first and may do I/O: they look up
 * lazily), so that a signal handler's first write never runs dlsym, which is not
 * async-signal-safe. */
__attribute__((constructor)) static void look_up_next_definitions(void) {
    static const char *const names[] = {"read",   "pread64", "readv",          "write",           "pwrite64", "writev",
                                        "recvfrom", "sendto", "fread",         "fwrite",          "fread_unlocked",
                                        "fwrite_unlocked",    "fputs",         "fputs_unlocked",  "puts", "getrandom"};
    void **caches[] = {&next_read,   &next_pread64, &next_readv,          &next_write,           &next_pwrite64,
                       &next_writev, &next_recvfrom, &next_sendto,        &next_fread,           &next_fwrite,
                       &next_fread_unlocked, &next_fwrite_unlocked, &next_fputs, &next_fputs_unlocked, &next_puts,
                       &next_getrandom};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        next_definition(names[i], caches[i]);
}

/* One kind of call over part of its buffer: `len` bytes at `at`, `done` bytes into the call. */
struct io_call {
    ssize_t (*part)(const struct io_call *call, char *at, size_t len, size_t done);
    int fd;
    off64_t offset;
    int flags;
    struct sockaddr *address;
    socklen_t *address_len;
    const struct sockaddr *to;
    socklen_t to_len;
    FILE *stream;
    /* The kernel stores into the buffer (an input call). */
    int kernel_writes;
    /* Go on after a slice done in full (a file, a socket waiting for all); else one slice. */
    int continues;
};

/* A held range, released also when the thread is cancelled inside the call. */
struct held_range {
    const void *at;
    size_t len;
};

static void release_range(void *range) {
    struct held_range *held = range;
    __dlm_io_release(held->at, held->len);
}

/* One slice of `call`, [at, at+len), held resident while it runs; `errno` is carried in and
 * out through `error` (holding may change it). */
static ssize_t held_part(const struct io_call *call, char *at, size_t len, size_t done, int *error) {
    struct held_range held = {at, len};
    ssize_t moved;
    __dlm_io_hold(at, len, call->kernel_writes);
    pthread_cleanup_push(release_range, &held);
    errno = *error;
    moved = call->part(call, at, len, done);
    *error = errno;
    pthread_cleanup_pop(1);
    return moved;
}

/* Runs `call` over [buf, buf+len) slice by slice; stops at an error, a short transfer or,
 * unless it continues, after the first slice. Returns the bytes transferred, or the first
 * slice's error. */
static ssize_t held_in_slices(const struct io_call *call, char *buf, size_t len, size_t slice) {
    size_t done = 0;
    int error = errno;
    while (done < len) {
        size_t part = len - done < slice ? len - done : slice;
        ssize_t moved = held_part(call, buf + done, part, done, &error);
        if (moved < 0) {
            errno = error;
            return done > 0 ? (ssize_t)done : moved;
        }
        done += (size_t)moved;
        if ((size_t)moved < part || !call->continues)
            break;
    }
    errno = error;
    return (ssize_t)done;
}

/* Whether reading `fd` in several calls gives what one call would: a file, not a pipe, a
 * terminal or a socket (where a second read could wait for data the first call would have
 * returned without). */
static int reads_like_a_file(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
}

/* Whether `fd` keeps message boundaries (a datagram or sequenced-packet socket): one call
 * moves one message, which slices would cut in pieces. */
static int keeps_messages(int fd) {
    int type;
    socklen_t type_len = sizeof type;
    int saved = errno;
    int is_message_socket = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) == 0 && type != SOCK_STREAM;
    errno = saved;
    return is_message_socket;
}

/* The slice for a call on `fd`: a message goes whole, however long. */
static size_t slice_on(int fd, size_t slice, size_t len) { return keeps_messages(fd) ? len : slice; }

static ssize_t read_part(const struct io_call *c, char *at, size_t len, size_t done) {
    (void)done;
    return NEXT(read)(c->fd, at, len);
}

static ssize_t pread_part(const struct io_call *c, char *at, size_t len, size_t done) {
    return NEXT(pread64)(c->fd, at, len, c->offset + (off64_t)done);
}

static ssize_t write_part(const struct io_call *c, char *at, size_t len, size_t done) {
    (void)done;
    return NEXT(write)(c->fd, at, len);
}

static ssize_t pwrite_part(const struct io_call *c, char *at, size_t len, size_t done) {
    return NEXT(pwrite64)(c->fd, at, len, c->offset + (off64_t)done);
}

static ssize_t recvfrom_part(const struct io_call *c, char *at, size_t len, size_t done) {
    (void)done;
    return NEXT(recvfrom)(c->fd, at, len, c->flags, c->address, c->address_len);
}

static ssize_t sendto_part(const struct io_call *c, char *at, size_t len, size_t done) {
    (void)done;
    return NEXT(sendto)(c->fd, at, len, c->flags, c->to, c->to_len);
}

/* The stdio parts run with the stream locked by the caller (one lock for the whole call). */
static ssize_t fread_part(const struct io_call *c, char *at, size_t len, size_t done) {
    (void)done;
    size_t got = NEXT(fread_unlocked)(at, 1, len, c->stream);
    return got == 0 && ferror_unlocked(c->stream) ? -1 : (ssize_t)got;
}

static ssize_t fwrite_part(const struct io_call *c, char *at, size_t len, size_t done) {
    (void)done;
    size_t put = NEXT(fwrite_unlocked)(at, 1, len, c->stream);
    return put == 0 && ferror_unlocked(c->stream) ? -1 : (ssize_t)put;
}

WEAK ssize_t read(int fd, void *buf, size_t len) {
    size_t slice = __dlm_io_slice(buf, len);
    if (slice == 0)
        return NEXT(read)(fd, buf, len);
    struct io_call call = {.part = read_part, .fd = fd, .kernel_writes = 1, .continues = reads_like_a_file(fd)};
    return held_in_slices(&call, buf, len, slice_on(fd, slice, len));
}

WEAK ssize_t pread64(int fd, void *buf, size_t len, off64_t offset) {
    size_t slice = __dlm_io_slice(buf, len);
    if (slice == 0)
        return NEXT(pread64)(fd, buf, len, offset);
    struct io_call call = {.part = pread_part, .fd = fd, .offset = offset, .kernel_writes = 1, .continues = 1};
    return held_in_slices(&call, buf, len, slice);
}

WEAK ssize_t pread(int fd, void *buf, size_t len, off_t offset) { return pread64(fd, buf, len, offset); }

WEAK ssize_t write(int fd, const void *buf, size_t len) {
    size_t slice = __dlm_io_slice(buf, len);
    if (slice == 0)
        return NEXT(write)(fd, buf, len);
    struct io_call call = {.part = write_part, .fd = fd, .continues = 1};
    return held_in_slices(&call, (char *)buf, len, slice_on(fd, slice, len));
}

WEAK ssize_t pwrite64(int fd, const void *buf, size_t len, off64_t offset) {
    size_t slice = __dlm_io_slice(buf, len);
    if (slice == 0)
        return NEXT(pwrite64)(fd, buf, len, offset);
    struct io_call call = {.part = pwrite_part, .fd = fd, .offset = offset, .continues = 1};
    return held_in_slices(&call, (char *)buf, len, slice);
}

WEAK ssize_t pwrite(int fd, const void *buf, size_t len, off_t offset) { return pwrite64(fd, buf, len, offset); }

WEAK ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *from, socklen_t *from_len) {
    size_t slice = __dlm_io_slice(buf, len);
    if (slice == 0)
        return NEXT(recvfrom)(fd, buf, len, flags, from, from_len);
    struct io_call call = {.part = recvfrom_part,
                           .fd = fd,
                           .flags = flags,
                           .address = from,
                           .address_len = from_len,
                           .kernel_writes = 1,
                           /* A peek would see the same bytes in every slice. */
                           .continues = (flags & MSG_WAITALL) && !(flags & MSG_PEEK)};
    return held_in_slices(&call, buf, len, slice_on(fd, slice, len));
}

WEAK ssize_t recv(int fd, void *buf, size_t len, int flags) { return recvfrom(fd, buf, len, flags, NULL, NULL); }

WEAK ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to, socklen_t to_len) {
    size_t slice = __dlm_io_slice(buf, len);
    if (slice == 0)
        return NEXT(sendto)(fd, buf, len, flags, to, to_len);
    struct io_call call = {.part = sendto_part, .fd = fd, .flags = flags, .to = to, .to_len = to_len, .continues = 1};
    return held_in_slices(&call, (char *)buf, len, slice_on(fd, slice, len));
}

WEAK ssize_t send(int fd, const void *buf, size_t len, int flags) { return sendto(fd, buf, len, flags, NULL, 0); }

WEAK ssize_t getrandom(void *buf, size_t len, unsigned int flags) {
    size_t slice = __dlm_io_slice(buf, len);
    if (slice == 0)
        return NEXT(getrandom)(buf, len, flags);
    /* One slice: getrandom may return fewer bytes than asked. */
    size_t part = len < slice ? len : slice;
    __dlm_io_hold(buf, part, 1);
    ssize_t got = NEXT(getrandom)(buf, part, flags);
    int saved = errno;
    __dlm_io_release(buf, part);
    errno = saved;
    return got;
}

static void unlock_stream(void *stream) { funlockfile(stream); }

/* Bytes of a stdio call moved in slices with the stream locked once, as one call locks it. */
static ssize_t stream_bytes(struct io_call *call, void *buf, size_t bytes, size_t slice) {
    call->continues = 1;
    flockfile(call->stream);
    ssize_t moved;
    pthread_cleanup_push(unlock_stream, call->stream);
    moved = held_in_slices(call, buf, bytes, slice);
    pthread_cleanup_pop(1);
    return moved;
}

/* fread and fwrite count whole items: the bytes are moved, the items counted after. */
static size_t stream_items(struct io_call *call, void *buf, size_t size, size_t count, size_t slice) {
    size_t bytes;
    if (size == 0 || count == 0 || __builtin_mul_overflow(size, count, &bytes))
        return 0;
    ssize_t moved = stream_bytes(call, buf, bytes, slice);
    return moved < 0 ? 0 : (size_t)moved / size;
}

WEAK size_t fread(void *buf, size_t size, size_t count, FILE *stream) {
    size_t slice = __dlm_io_slice(buf, size * count);
    if (slice == 0)
        return NEXT(fread)(buf, size, count, stream);
    struct io_call call = {.part = fread_part, .stream = stream, .kernel_writes = 1};
    return stream_items(&call, buf, size, count, slice);
}

WEAK size_t fwrite(const void *buf, size_t size, size_t count, FILE *stream) {
    size_t slice = __dlm_io_slice(buf, size * count);
    if (slice == 0)
        return NEXT(fwrite)(buf, size, count, stream);
    struct io_call call = {.part = fwrite_part, .stream = stream};
    return stream_items(&call, (void *)buf, size, count, slice);
}

WEAK size_t fread_unlocked(void *buf, size_t size, size_t count, FILE *stream) {
    if (__dlm_io_slice(buf, size * count) == 0)
        return NEXT(fread_unlocked)(buf, size, count, stream);
    return fread(buf, size, count, stream);
}

WEAK size_t fwrite_unlocked(const void *buf, size_t size, size_t count, FILE *stream) {
    if (__dlm_io_slice(buf, size * count) == 0)
        return NEXT(fwrite_unlocked)(buf, size, count, stream);
    return fwrite(buf, size, count, stream);
}

/* A string longer than the stream's buffer is written straight from the caller's memory. */
WEAK int fputs(const char *text, FILE *stream) {
    size_t len = strlen(text);
    size_t slice = __dlm_io_slice(text, len);
    if (slice == 0)
        return NEXT(fputs)(text, stream);
    struct io_call call = {.part = fwrite_part, .stream = stream};
    return stream_bytes(&call, (char *)text, len, slice) == (ssize_t)len ? 1 : EOF;
}

WEAK int fputs_unlocked(const char *text, FILE *stream) {
    if (__dlm_io_slice(text, strlen(text)) == 0)
        return NEXT(fputs_unlocked)(text, stream);
    return fputs(text, stream);
}

WEAK int puts(const char *text) {
    if (__dlm_io_slice(text, strlen(text)) == 0)
        return NEXT(puts)(text);
    flockfile(stdout);
    int result = fputs(text, stdout) == EOF || putc_unlocked('\n', stdout) == EOF ? EOF : 1;
    funlockfile(stdout);
    return result;
}

/* A vector is moved whole when it fits one slice or is one message, else one part at a time
 * through the calls above (stopping at the first short one), which is what one call does on
 * a file. */
static ssize_t vector_in_parts(int fd, const struct iovec *iov, int count, int input) {
    ssize_t total = 0;
    for (int i = 0; i < count; i++) {
        ssize_t moved = input ? read(fd, iov[i].iov_base, iov[i].iov_len) : write(fd, iov[i].iov_base, iov[i].iov_len);
        if (moved < 0)
            return total > 0 ? total : moved;
        total += moved;
        if ((size_t)moved < iov[i].iov_len || (input && !reads_like_a_file(fd)))
            break;
    }
    return total;
}

/* The smallest slice any part of the vector needs (0 if none needs holding), and its length. */
static size_t vector_slice(const struct iovec *iov, int count, size_t *total) {
    size_t slice = 0;
    *total = 0;
    for (int i = 0; i < count; i++) {
        size_t part = __dlm_io_slice(iov[i].iov_base, iov[i].iov_len);
        if (part != 0 && (slice == 0 || part < slice))
            slice = part;
        *total += iov[i].iov_len;
    }
    return slice;
}

static void hold_vector(const struct iovec *iov, int count, int input) {
    for (int i = 0; i < count; i++)
        if (__dlm_io_slice(iov[i].iov_base, iov[i].iov_len) != 0)
            __dlm_io_hold(iov[i].iov_base, iov[i].iov_len, input);
}

/* A held vector, released also when the thread is cancelled inside the call. */
struct held_vector {
    const struct iovec *iov;
    int count;
};

static void release_vector(void *vector) {
    struct held_vector *held = vector;
    for (int i = 0; i < held->count; i++)
        if (__dlm_io_slice(held->iov[i].iov_base, held->iov[i].iov_len) != 0)
            __dlm_io_release(held->iov[i].iov_base, held->iov[i].iov_len);
}

static ssize_t vector_call(int fd, const struct iovec *iov, int count, int input) {
    size_t total;
    size_t slice = vector_slice(iov, count, &total);
    ssize_t (*whole)(int, const struct iovec *, int) = input ? NEXT(readv) : NEXT(writev);
    if (slice == 0)
        return whole(fd, iov, count);
    if (total > slice && !keeps_messages(fd))
        return vector_in_parts(fd, iov, count, input);
    int saved = errno;
    struct held_vector held = {iov, count};
    hold_vector(iov, count, input);
    errno = saved;
    ssize_t moved;
    pthread_cleanup_push(release_vector, &held);
    moved = whole(fd, iov, count);
    saved = errno;
    pthread_cleanup_pop(1);
    errno = saved;
    return moved;
}

WEAK ssize_t readv(int fd, const struct iovec *iov, int count) { return vector_call(fd, iov, count, 1); }

WEAK ssize_t writev(int fd, const struct iovec *iov, int count) { return vector_call(fd, iov, count, 0); }

/* The checking variants check, then do what the plain call does. */
WEAK ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen) {
    if (len > buflen)
        __chk_fail();
    return read(fd, buf, len);
}

WEAK ssize_t __pread64_chk(int fd, void *buf, size_t len, off64_t offset, size_t buflen) {
    if (len > buflen)
        __chk_fail();
    return pread64(fd, buf, len, offset);
}

WEAK ssize_t __pread_chk(int fd, void *buf, size_t len, off_t offset, size_t buflen) {
    return __pread64_chk(fd, buf, len, offset, buflen);
}

WEAK ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags, struct sockaddr *from,
                            socklen_t *from_len) {
    if (len > buflen)
        __chk_fail();
    return recvfrom(fd, buf, len, flags, from, from_len);
}

WEAK ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags) {
    return __recvfrom_chk(fd, buf, len, buflen, flags, NULL, NULL);
}

WEAK size_t __fread_chk(void *buf, size_t buflen, size_t size, size_t count, FILE *stream) {
    size_t bytes;
    if (__builtin_mul_overflow(size, count, &bytes) || bytes > buflen)
        __chk_fail();
    return fread(buf, size, count, stream);
}

WEAK size_t __fread_unlocked_chk(void *buf, size_t buflen, size_t size, size_t count, FILE *stream) {
    size_t bytes;
    if (__builtin_mul_overflow(size, count, &bytes) || bytes > buflen)
        __chk_fail();
    return fread_unlocked(buf, size, count, stream);
}
