/* Linked by dlmcc into every program it links: the C library's allocation functions for the
 * whole process. They interpose glibc's for every shared library and for glibc itself (ELF
 * symbol interposition, the way glibc documents replacing malloc), so that any free, realloc,
 * reallocarray or malloc_usable_size of a DLM block, wherever it is called from, goes to DLM.
 * New blocks come from glibc's own allocator (__libc_malloc and friends, which glibc exports
 * for this); only a pointer in the DLM range is DLM's (libdlm: __dlm_*_any). Only dlmcc links
 * this file: Rust programs and other users of the runtime keep their allocator. All are weak:
 * a program that defines its own allocator keeps it (its free must then never see a DLM block). */
#include <errno.h>
#include <stddef.h>

void *__libc_malloc(size_t);
void *__libc_calloc(size_t, size_t);
void *__libc_memalign(size_t, size_t);
void *__libc_valloc(size_t);
void *__libc_pvalloc(size_t);
void __dlm_free_any(void *);
void *__dlm_realloc_any(void *, size_t);
size_t __dlm_usable_size_any(void *);

__attribute__((weak)) void *malloc(size_t size) { return __libc_malloc(size); }
__attribute__((weak)) void *calloc(size_t count, size_t size) { return __libc_calloc(count, size); }
__attribute__((weak)) void free(void *ptr) { __dlm_free_any(ptr); }
__attribute__((weak)) void *realloc(void *ptr, size_t size) { return __dlm_realloc_any(ptr, size); }
__attribute__((weak)) size_t malloc_usable_size(void *ptr) { return __dlm_usable_size_any(ptr); }

__attribute__((weak)) void *reallocarray(void *ptr, size_t count, size_t size) {
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    return __dlm_realloc_any(ptr, bytes);
}

/* The aligned ones too, so that every block freed here came from glibc's allocator even when
 * another allocator is preloaded. */
__attribute__((weak)) void *memalign(size_t align, size_t size) { return __libc_memalign(align, size); }
__attribute__((weak)) void *aligned_alloc(size_t align, size_t size) { return __libc_memalign(align, size); }
__attribute__((weak)) void *valloc(size_t size) { return __libc_valloc(size); }
__attribute__((weak)) void *pvalloc(size_t size) { return __libc_pvalloc(size); }

__attribute__((weak)) int posix_memalign(void **out, size_t align, size_t size) {
    int saved = errno;
    void *block;
    if (align == 0 || (align & (align - 1)) != 0 || align % sizeof(void *) != 0)
        return EINVAL;
    block = __libc_memalign(align, size);
    errno = saved;
    if (block == NULL)
        return ENOMEM;
    *out = block;
    return 0;
}
