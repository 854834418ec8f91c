//! The hooks of the I/O functions that dlmcc links into every program (`interpose_io.c`): in
//! user-only mode they hold a call's DLM buffer resident while the kernel accesses it (see
//! `runtime::holds`); otherwise `__dlm_io_slice` says 0 and the call goes straight through.

use crate::pager::KernelAccess;
use crate::runtime::holds;
use std::ffi::{c_int, c_void};

/// Bytes of `[buf, buf+len)` that one call may hold at once, or 0 if the call need not hold
/// anything. The I/O functions dlmcc links (`interpose_io.c`) ask this first.
#[no_mangle]
pub extern "C" fn __dlm_io_slice(buf: *const c_void, len: usize) -> usize {
    holds::slice_for(buf as usize, len).unwrap_or(0)
}

/// Brings `[buf, buf+len)` in and holds it until `__dlm_io_release`; writable if
/// `kernel_writes` (the call stores into it).
#[no_mangle]
pub extern "C" fn __dlm_io_hold(buf: *const c_void, len: usize, kernel_writes: c_int) {
    let access = if kernel_writes != 0 { KernelAccess::Writes } else { KernelAccess::Reads };
    holds::hold(buf as usize, len, access);
}

/// Ends an `__dlm_io_hold` of the same range.
#[no_mangle]
pub extern "C" fn __dlm_io_release(buf: *const c_void, len: usize) {
    holds::release_hold(buf as usize, len);
}
