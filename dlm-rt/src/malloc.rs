//! The C library's allocation functions for the whole process, so that a DLM block is freed,
//! grown or measured correctly wherever it goes: into a `free` that dlmcc did not rewrite (one
//! spelled in a header or a macro), a shared library built with plain `cc`, a `free` reached
//! through a function pointer, or the C library itself (`getline` growing the caller's buffer).
//!
//! These definitions are linked into the executable, so they interpose the C library's for
//! every shared library of the process: ELF symbol interposition, the way glibc documents
//! replacing `malloc` (it then calls them for its own allocations too). glibc's rule for a
//! replacement is that `malloc`, `free`, `calloc` and `realloc` come together; the aligned
//! functions need not, since the memory behind all of them stays glibc's (`__libc_malloc` and
//! friends, which glibc exports for this). New blocks come from the C library here: only code
//! that dlmcc rewrote asks for DLM blocks, with its threshold (see `rewritten`). A pointer in
//! the DLM range goes to DLM, any other to the C library.

use crate::runtime::{self, ReleaseError};
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};

extern "C" {
    fn __libc_malloc(size: usize) -> *mut c_void;
    fn __libc_calloc(count: usize, size: usize) -> *mut c_void;
    fn __libc_realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
    fn __libc_free(ptr: *mut c_void);
}

/// `malloc`: the C library's.
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    // SAFETY: glibc's allocator, called as `malloc`.
    unsafe { __libc_malloc(size) }
}

/// `calloc`: the C library's.
#[no_mangle]
pub extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    // SAFETY: glibc's allocator, called as `calloc`.
    unsafe { __libc_calloc(count, size) }
}

/// `free`: a DLM block goes back to DLM, anything else to the C library.
///
/// # Safety
/// As for `free`.
#[no_mangle]
pub unsafe extern "C" fn free(ptr: *mut c_void) {
    if runtime::owns(ptr.cast()) {
        free_dlm_block(ptr);
    } else {
        // SAFETY: the caller passes a block of the C library's allocator (or NULL).
        unsafe { __libc_free(ptr) };
    }
}

/// `realloc`: a DLM block grows or shrinks in DLM memory (a buffer the program put there stays
/// there, whoever grows it), anything else in the C library.
///
/// # Safety
/// As for `realloc`.
#[no_mangle]
pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    if runtime::owns(ptr.cast()) {
        // SAFETY: `ptr` is in the DLM range; the threshold keeps the block in DLM.
        unsafe { crate::rewritten::__dlm_rt_realloc(ptr, size, 1) }
    } else {
        // SAFETY: the caller passes a block of the C library's allocator (or NULL).
        unsafe { __libc_realloc(ptr, size) }
    }
}

/// `reallocarray`: `realloc` of `count * size` bytes, refused with ENOMEM on overflow.
///
/// # Safety
/// As for `reallocarray`.
#[no_mangle]
pub unsafe extern "C" fn reallocarray(ptr: *mut c_void, count: usize, size: usize) -> *mut c_void {
    let Some(bytes) = count.checked_mul(size) else {
        // SAFETY: __errno_location returns this thread's errno.
        unsafe { *libc::__errno_location() = libc::ENOMEM };
        return std::ptr::null_mut();
    };
    // SAFETY: as the caller's.
    unsafe { realloc(ptr, bytes) }
}

/// `malloc_usable_size`: a DLM block's whole length (it is made of whole DLM pages), or what
/// the C library says of its own blocks.
///
/// # Safety
/// As for `malloc_usable_size`.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(ptr: *mut c_void) -> usize {
    if runtime::owns(ptr.cast()) {
        return runtime::block_len(ptr.cast()).unwrap_or(0);
    }
    // SAFETY: the C library's own function, found once; the caller passes one of its blocks.
    unsafe { libc_usable_size()(ptr) }
}

/// Frees a block in the DLM range; a pointer that is not the start of a live block is a bug of
/// the program, which the C library would also stop at.
pub(crate) fn free_dlm_block(ptr: *mut c_void) {
    if let Err(ReleaseError::NotDlm) = runtime::release(ptr.cast()) {
        crate::sys::fatal(&format!("free({ptr:p}): not the start of a live DLM block"));
    }
}

type UsableSize = unsafe extern "C" fn(*mut c_void) -> usize;

/// glibc's `malloc_usable_size`, the next definition after this one (glibc exports no other
/// name for it).
fn libc_usable_size() -> UsableSize {
    static FOUND: AtomicUsize = AtomicUsize::new(0);
    let mut address = FOUND.load(Ordering::Acquire);
    if address == 0 {
        // SAFETY: a NUL-terminated name; RTLD_NEXT looks past this object.
        address = unsafe { libc::dlsym(libc::RTLD_NEXT, c"malloc_usable_size".as_ptr()) } as usize;
        if address == 0 {
            crate::sys::fatal("the C library has no malloc_usable_size");
        }
        FOUND.store(address, Ordering::Release);
    }
    // SAFETY: dlsym returned glibc's malloc_usable_size, which has this signature.
    unsafe { std::mem::transmute::<usize, UsableSize>(address) }
}
