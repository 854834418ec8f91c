//! What the allocation functions of a dlmcc-built program do with a pointer (dlmcc links
//! `interpose.c`, whose `free`, `realloc`, `reallocarray` and `malloc_usable_size` replace the
//! C library's for the whole process and call these): a pointer in the DLM range goes to DLM
//! (in the small-block heap's arena to it, elsewhere to the blocks with pages of their own),
//! any other to the C library. So a DLM block is freed, grown or measured correctly wherever
//! it goes: a `free` spelled in a header or macro, a shared library built with plain `cc`, a
//! function pointer, the C library itself (`getline` growing the caller's buffer).
//!
//! These are not `malloc`/`free` themselves: a Rust program that links the runtime keeps its
//! allocator untouched.

use crate::runtime::{self, ReleaseError};
use crate::small;
use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

extern "C" {
    fn __libc_realloc(ptr: *mut c_void, size: usize) -> *mut c_void;
    fn __libc_free(ptr: *mut c_void);
}

/// `free` of any block of the process.
///
/// # Safety
/// As for `free`.
#[no_mangle]
pub unsafe extern "C" fn __dlm_free_any(ptr: *mut c_void) {
    if let Some(block) = NonNull::new(ptr).filter(|_| small::owns(ptr)) {
        // SAFETY: the caller passes a live block; its address says it is a small block.
        unsafe { small::free(block) };
    } else if runtime::owns(ptr.cast()) {
        free_dlm_block(ptr);
    } else {
        // SAFETY: the caller passes a block of the C library's allocator (or NULL).
        unsafe { __libc_free(ptr) };
    }
}

/// `realloc` of any block: a DLM block grows or shrinks in DLM memory (a buffer the program put
/// there stays there, whoever grows it: a small block in the small-block heap, whatever its new
/// size, since the threshold of the code that grows it is unknown), anything else in the C
/// library.
///
/// # Safety
/// As for `realloc`.
#[no_mangle]
pub unsafe extern "C" fn __dlm_realloc_any(ptr: *mut c_void, size: usize) -> *mut c_void {
    if small::owns(ptr) {
        // SAFETY: the caller passes a live block; a threshold above any size keeps it small.
        unsafe { crate::rewritten::__dlm_rt_realloc(ptr, size, usize::MAX) }
    } else if runtime::owns(ptr.cast()) {
        // SAFETY: `ptr` is in the DLM range; a threshold of 1 keeps the block in DLM.
        unsafe { crate::rewritten::__dlm_rt_realloc(ptr, size, 1) }
    } else {
        // SAFETY: the caller passes a block of the C library's allocator (or NULL).
        unsafe { __libc_realloc(ptr, size) }
    }
}

/// `malloc_usable_size` of any block: a DLM block's whole length (whole DLM pages for a block
/// with pages of its own, mimalloc's size class for a small block; 0 once DLM has shut down),
/// or what the C library says of its own blocks.
///
/// # Safety
/// As for `malloc_usable_size`.
#[no_mangle]
pub unsafe extern "C" fn __dlm_usable_size_any(ptr: *mut c_void) -> usize {
    if let Some(block) = NonNull::new(ptr).filter(|_| small::owns(ptr)) {
        // SAFETY: the caller passes a live block; its address says it is a small block.
        return unsafe { small::usable_size(block) };
    }
    if runtime::owns(ptr.cast()) {
        return runtime::block_len(ptr.cast()).unwrap_or(0);
    }
    // SAFETY: the C library's own function; the caller passes one of its blocks.
    unsafe { libc_usable_size()(ptr) }
}

/// Frees a block in the DLM range, keeping `errno` as `free` does; a pointer that is not the
/// start of a live block is a bug of the program, which the C library would also stop at.
fn free_dlm_block(ptr: *mut c_void) {
    // SAFETY: __errno_location returns this thread's errno.
    let saved = unsafe { *libc::__errno_location() };
    if let Err(ReleaseError::NotDlm) = runtime::release(ptr.cast()) {
        crate::sys::fatal(&format!("free({ptr:p}): not the start of a live DLM block"));
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
}

type UsableSize = unsafe extern "C" fn(*mut c_void) -> usize;

/// glibc's `malloc_usable_size`, looked up in the C library itself (the executable's own
/// definition comes first in the global scope, and a preloaded allocator would come next).
fn libc_usable_size() -> UsableSize {
    static FOUND: AtomicUsize = AtomicUsize::new(0);
    let mut address = FOUND.load(Ordering::Acquire);
    if address == 0 {
        // SAFETY: NUL-terminated names; RTLD_NOLOAD only finds the C library already loaded.
        address = unsafe {
            let libc = libc::dlopen(c"libc.so.6".as_ptr(), libc::RTLD_LAZY | libc::RTLD_NOLOAD);
            if libc.is_null() {
                0
            } else {
                libc::dlsym(libc, c"malloc_usable_size".as_ptr()) as usize
            }
        };
        if address == 0 {
            crate::sys::fatal("the C library has no malloc_usable_size");
        }
        FOUND.store(address, Ordering::Release);
    }
    // SAFETY: dlsym returned glibc's malloc_usable_size, which has this signature.
    unsafe { std::mem::transmute::<usize, UsableSize>(address) }
}
