//! What the allocation functions of a dlmcc-built program do with a pointer, by its address:
//! `free` and `realloc` of rewritten code, and the `*_any` functions that `interpose.c` calls
//! (its `free`, `realloc`, `reallocarray` and `malloc_usable_size` replace the C library's for
//! the whole process): a pointer in the DLM range goes to DLM
//! (in the small-block heap's arena to it, elsewhere to the blocks with pages of their own),
//! any other to the C library. So a DLM block is freed, grown or measured correctly wherever
//! it goes: a `free` spelled in a header or macro, a shared library built with plain `cc`, a
//! function pointer, the C library itself (`getline` growing the caller's buffer).
//!
//! These are not `malloc`/`free` themselves: a Rust program that links the runtime keeps its
//! allocator untouched.

use super::alloc::__dlm_rt_malloc;
use super::small;
use crate::runtime::{self, ReleaseError};
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
        unsafe { __dlm_rt_realloc(ptr, size, usize::MAX) }
    } else if runtime::owns(ptr.cast()) {
        // SAFETY: `ptr` is in the DLM range; a threshold of 1 keeps the block in DLM.
        unsafe { __dlm_rt_realloc(ptr, size, 1) }
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

/// `free` of rewritten code: DLM blocks go back to DLM, anything else to the C library.
///
/// # Safety
/// As for `free`.
#[no_mangle]
pub unsafe extern "C" fn __dlm_rt_free(ptr: *mut c_void) {
    // SAFETY: as the caller's.
    unsafe { __dlm_free_any(ptr) }
}

/// `realloc` of rewritten code: the block moves to pages of its own when its new size reaches
/// the threshold (if DLM memory cannot hold them, it grows where it is rather than fail), and
/// from them to the small-block heap when it falls below; a C-library block stays there unless
/// it reaches the threshold.
///
/// # Safety
/// As for `realloc`.
#[no_mangle]
pub unsafe extern "C" fn __dlm_rt_realloc(ptr: *mut c_void, size: usize, threshold: usize) -> *mut c_void {
    let Some(block) = NonNull::new(ptr) else {
        return __dlm_rt_malloc(size, threshold);
    };
    if small::owns(ptr) {
        // SAFETY: the caller passes a live block; its address says it is a small block.
        unsafe { realloc_small(block, size, threshold) }
    } else if runtime::owns(ptr.cast()) {
        // SAFETY: as above, in the DLM range outside the small-block heap.
        unsafe { realloc_own_pages(block, size, threshold) }
    } else {
        // SAFETY: as above, outside the DLM range: the C library's.
        unsafe { realloc_libc(block, size, threshold) }
    }
}

/// `realloc` of a block of the small-block heap.
///
/// # Safety
/// `block` is a live block of the small-block heap.
unsafe fn realloc_small(block: NonNull<c_void>, size: usize, threshold: usize) -> *mut c_void {
    if !runtime::is_running() {
        crate::sys::fatal(&format!("realloc({block:p}): DLM has shut down, and its memory with it"));
    }
    // SAFETY: a live small block, by the caller's guarantee.
    let old_len = unsafe { small::usable_size(block) };
    if size == 0 {
        // SAFETY: as above.
        unsafe { small::free(block) };
        return std::ptr::null_mut();
    }
    if size >= threshold {
        // Pages of its own if DLM memory holds them; if not, the block stays small (or goes to
        // the C library) rather than fail where the native build would not.
        if let Ok(pages) = runtime::allocate(size) {
            // SAFETY: as above; the new block is distinct.
            return unsafe { move_block(block, old_len, pages.as_ptr().cast(), size) };
        }
    }
    // SAFETY: as above.
    match unsafe { small::reallocate(block, size) } {
        Some(resized) => resized.as_ptr(),
        // SAFETY: as above; plain libc call for the new block.
        None => unsafe { move_block(block, old_len, libc::malloc(size), size) },
    }
}

/// `realloc` of a block with DLM pages of its own.
///
/// # Safety
/// `block` is in the DLM range, outside the small-block heap.
unsafe fn realloc_own_pages(block: NonNull<c_void>, size: usize, threshold: usize) -> *mut c_void {
    let Some(old_len) = runtime::block_len(block.as_ptr().cast()) else {
        crate::sys::fatal(&format!("realloc({block:p}): not the start of a live DLM block"));
    };
    if size == 0 {
        // SAFETY: a live DLM block.
        unsafe { __dlm_rt_free(block.as_ptr()) };
        return std::ptr::null_mut();
    }
    if size <= old_len && size >= threshold {
        return block.as_ptr(); // shrinks in place
    }
    // SAFETY: the old block holds old_len bytes; the new one is distinct.
    unsafe { move_block(block, old_len, __dlm_rt_malloc(size, threshold), size) }
}

/// `realloc` of a block of the C library: it moves to DLM pages of its own when it reaches the
/// threshold, if DLM memory holds them (if not, it grows where it is rather than fail).
///
/// # Safety
/// `block` is a live block of the C library.
unsafe fn realloc_libc(block: NonNull<c_void>, size: usize, threshold: usize) -> *mut c_void {
    let pages =
        (size >= threshold && size > 0 && runtime::is_running()).then(|| runtime::allocate(size).ok()).flatten();
    match pages {
        // SAFETY: the caller passes a pointer from the C library's allocator.
        None => unsafe { libc::realloc(block.as_ptr(), size) },
        Some(pages) => {
            // SAFETY: as above; the usable size is what the program may have written.
            let old_len = unsafe { libc::malloc_usable_size(block.as_ptr()) };
            // SAFETY: as above; the new block is distinct.
            unsafe { move_block(block, old_len, pages.as_ptr().cast(), size) }
        }
    }
}

/// Copies what fits of `old` (`old_len` bytes) into `new` (at least `size` bytes) and frees
/// `old`, unless `new` is NULL (an allocation that failed: `old` stays). Returns `new`.
///
/// # Safety
/// `old` is a live block of any kind holding `old_len` bytes; `new` is NULL or a distinct block.
unsafe fn move_block(old: NonNull<c_void>, old_len: usize, new: *mut c_void, size: usize) -> *mut c_void {
    if !new.is_null() {
        // SAFETY: both blocks hold at least the bytes copied and do not overlap; `old` is live.
        unsafe {
            std::ptr::copy_nonoverlapping(old.as_ptr().cast::<u8>(), new.cast::<u8>(), old_len.min(size));
            __dlm_free_any(old.as_ptr());
        }
    }
    new
}
