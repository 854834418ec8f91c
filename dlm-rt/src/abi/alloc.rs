//! The allocation functions of rewritten code (`malloc`, `calloc`, `posix_memalign`,
//! `aligned_alloc` with dlmcc's threshold): a block of at least the threshold gets DLM pages of
//! its own (`runtime::allocate`), a smaller one a place in the small-block heap (`small`), and
//! the C library takes what DLM cannot (before DLM starts, after it stops, when it is full).

use super::small;
use crate::runtime;
use dlm_units::Bytes;
use std::ffi::{c_int, c_void};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

/// A DLM block of its own (whole DLM pages) for `size` bytes if DLM runs and `size` reaches the
/// threshold; `None` if the C library must take it: below the threshold, DLM not running, or
/// DLM memory full (said once: the program never fails where its native build would not).
fn dlm_block(size: usize, threshold: usize) -> Option<*mut c_void> {
    if size == 0 || size < threshold || !runtime::is_running() || crate::sys::is_forked_child() {
        return None;
    }
    match runtime::allocate(size) {
        Ok(ptr) => Some(ptr.as_ptr().cast()),
        Err(e) => {
            static SAID: AtomicBool = AtomicBool::new(false);
            if !SAID.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "dlm: cannot allocate {} in DLM memory ({e}); it and later blocks that do not fit come from \
                     the C library",
                    Bytes(size as u64)
                );
            }
            None
        }
    }
}

pub(super) fn set_errno(code: c_int) {
    // SAFETY: __errno_location returns this thread's errno.
    unsafe { *libc::__errno_location() = code };
}

/// `malloc` of rewritten code: a block of at least the threshold gets DLM pages of its own, a
/// smaller one a place in the small-block heap (DLM pages shared with other small blocks); the
/// C library takes it when DLM is not running, or is full.
#[no_mangle]
pub extern "C" fn __dlm_rt_malloc(size: usize, threshold: usize) -> *mut c_void {
    let small = || (size < threshold).then(|| small::allocate(size)).flatten().map(NonNull::as_ptr);
    // SAFETY: plain libc call.
    dlm_block(size, threshold).or_else(small).unwrap_or_else(|| unsafe { libc::malloc(size) })
}

/// `calloc` of rewritten code, as `malloc` (DLM memory reads as zeros until written).
#[no_mangle]
pub extern "C" fn __dlm_rt_calloc(count: usize, size: usize, threshold: usize) -> *mut c_void {
    let Some(total) = count.checked_mul(size) else {
        set_errno(libc::ENOMEM);
        return std::ptr::null_mut();
    };
    let small = || (total < threshold).then(|| small::allocate_zeroed(count, size)).flatten().map(NonNull::as_ptr);
    // SAFETY: plain libc call.
    dlm_block(total, threshold).or_else(small).unwrap_or_else(|| unsafe { libc::calloc(count, size) })
}

/// `posix_memalign` of rewritten code. Blocks with pages of their own are aligned to the DLM
/// page; small blocks take alignments below 64 KiB.
///
/// # Safety
/// `out` must be writable.
#[no_mangle]
pub unsafe extern "C" fn __dlm_rt_posix_memalign(
    out: *mut *mut c_void,
    align: usize,
    size: usize,
    threshold: usize,
) -> c_int {
    if !align.is_power_of_two() || !align.is_multiple_of(size_of::<*mut c_void>()) {
        return libc::EINVAL;
    }
    let Some(block) = aligned_dlm_block(align, size, threshold) else {
        // SAFETY: plain libc call with the caller's arguments.
        return unsafe { libc::posix_memalign(out, align, size) };
    };
    // SAFETY: the caller guarantees `out` is writable.
    unsafe { *out = block };
    0
}

/// `aligned_alloc` of rewritten code.
#[no_mangle]
pub extern "C" fn __dlm_rt_aligned_alloc(align: usize, size: usize, threshold: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        // SAFETY: plain libc call (it rejects the alignment).
        return unsafe { libc::aligned_alloc(align, size) };
    }
    // SAFETY: plain libc call.
    aligned_dlm_block(align, size, threshold).unwrap_or_else(|| unsafe { libc::aligned_alloc(align, size) })
}

/// A DLM block aligned to `align` (a power of two): pages of its own from the threshold (if
/// the DLM page is aligned enough), else the small-block heap; `None` if the C library must
/// take it.
fn aligned_dlm_block(align: usize, size: usize, threshold: usize) -> Option<*mut c_void> {
    if size >= threshold {
        if runtime::page_size().is_some_and(|page| align <= page) {
            return dlm_block(size, threshold);
        }
        return None;
    }
    small::allocate_aligned(align, size).map(NonNull::as_ptr)
}
