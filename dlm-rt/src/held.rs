//! Keeping DLM memory resident while the kernel accesses it, for a program whose pager runs in
//! user-only mode (`sys::FaultMode::UserOnly`: the user may not open `/dev/userfaultfd`). In
//! that mode the kernel's own access to a missing or write-protected DLM page (`read(2)` into
//! a DLM buffer, `write(2)` out of an evicted one) fails with `EFAULT` instead of waiting for
//! the pager. So an I/O call first has the pager bring the buffer in and hold it, in slices of
//! at most a quarter of the budget, and lets it go when the call returns.
//!
//! C programs built by dlmcc get this from `interpose_io.c` (their `read`, `fread`, `recv`,
//! `write` … call the `__dlm_io_*` hooks here); Rust programs use [`read_exact`] and
//! [`write_all`]. In kernel-and-user mode nothing is held: the calls fault like any access.

use crate::pager::KernelAccess;
use crate::runtime;
use bytemuck::Pod;
use std::ffi::{c_int, c_void};
use std::io::{self, Read, Write};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;

/// Bytes one call may hold at once; 0 while nothing needs holding. Checked without a lock on
/// every I/O call of the process, the pager thread's own included.
static SLICE: AtomicUsize = AtomicUsize::new(0);

/// Static arrays adopted as DLM memory (the DLM range itself is `sys::in_dlm_range`). Its own
/// lock, never held while waiting for the pager, so the pager thread's I/O can read it.
static STATICS: RwLock<Vec<Range<usize>>> = RwLock::new(Vec::new());

thread_local! {
    /// Set on the pager thread: it must never ask itself for a hold (it would wait for itself).
    static EXEMPT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The calling thread (the pager's) never holds memory: its transfers read and write DLM pages
/// it manages itself.
pub(crate) fn exempt_this_thread() {
    EXEMPT.with(|exempt| exempt.set(true));
}

/// From now on, I/O calls hold DLM memory, `slice` bytes at a time.
pub(crate) fn enable(slice: usize) {
    SLICE.store(slice, Ordering::Release);
}

/// DLM has stopped: nothing is held any more.
pub(crate) fn disable() {
    SLICE.store(0, Ordering::Release);
}

/// Whether the kernel's own accesses to DLM memory fail instead of faulting (user-only mode,
/// DLM running).
pub(crate) fn kernel_faults_fail() -> bool {
    SLICE.load(Ordering::Acquire) != 0
}

pub(crate) fn add_static(range: Range<usize>) {
    STATICS.write().unwrap_or_else(|e| e.into_inner()).push(range);
}

/// How many bytes of `[start, start+len)` to hold at once, or `None` if the call need not
/// hold anything (no holds needed now, or none of it is DLM memory).
fn slice_for(start: usize, len: usize) -> Option<usize> {
    let slice = SLICE.load(Ordering::Acquire);
    // A forked child has no pager of its own (DLM memory is not in it: its I/O fails there).
    if slice == 0 || len == 0 || crate::sys::is_forked_child() || EXEMPT.with(|exempt| exempt.get()) {
        return None;
    }
    let end = start.saturating_add(len);
    let overlaps = |r: &Range<usize>| r.start < end && start < r.end;
    let is_dlm = crate::sys::overlaps_dlm_range(start, end)
        || STATICS.read().unwrap_or_else(|e| e.into_inner()).iter().any(overlaps);
    is_dlm.then_some(slice)
}

/// A hold on `[start, start+len)`, released when dropped.
struct Held {
    start: usize,
    len: usize,
}

impl Held {
    fn new(start: usize, len: usize, access: KernelAccess) -> Self {
        runtime::hold(start, len, access);
        Held { start, len }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        runtime::release_hold(self.start, self.len);
    }
}

/// Bytes of `[buf, buf+len)` that one call may hold at once, or 0 if the call need not hold
/// anything. The I/O functions dlmcc links (`interpose_io.c`) ask this first.
#[no_mangle]
pub extern "C" fn __dlm_io_slice(buf: *const c_void, len: usize) -> usize {
    slice_for(buf as usize, len).unwrap_or(0)
}

/// Brings `[buf, buf+len)` in and holds it until `__dlm_io_release`; writable if
/// `kernel_writes` (the call stores into it).
#[no_mangle]
pub extern "C" fn __dlm_io_hold(buf: *const c_void, len: usize, kernel_writes: c_int) {
    let access = if kernel_writes != 0 { KernelAccess::Writes } else { KernelAccess::Reads };
    runtime::hold(buf as usize, len, access);
}

/// Ends an `__dlm_io_hold` of the same range.
#[no_mangle]
pub extern "C" fn __dlm_io_release(buf: *const c_void, len: usize) {
    runtime::release_hold(buf as usize, len);
}

/// Fills `data` from `reader`, as [`Read::read_exact`] does, holding DLM memory resident while
/// the kernel writes it: the way to read a file into a [`DlmVec`](crate::DlmVec) or a DLM
/// array that works whether or not this user may open `/dev/userfaultfd`.
pub fn read_exact<T: Pod>(reader: &mut impl Read, data: &mut [T]) -> io::Result<()> {
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(data);
    let slice = slice_for(bytes.as_ptr() as usize, bytes.len());
    for chunk in bytes.chunks_mut(slice.unwrap_or(usize::MAX)) {
        let _held = slice.map(|_| Held::new(chunk.as_ptr() as usize, chunk.len(), KernelAccess::Writes));
        reader.read_exact(chunk)?;
    }
    Ok(())
}

/// Writes all of `data` to `writer`, as [`Write::write_all`] does, holding DLM memory resident
/// while the kernel reads it (see [`read_exact`]).
pub fn write_all<T: Pod>(writer: &mut impl Write, data: &[T]) -> io::Result<()> {
    let bytes: &[u8] = bytemuck::cast_slice(data);
    let slice = slice_for(bytes.as_ptr() as usize, bytes.len());
    for chunk in bytes.chunks(slice.unwrap_or(usize::MAX)) {
        let _held = slice.map(|_| Held::new(chunk.as_ptr() as usize, chunk.len(), KernelAccess::Reads));
        writer.write_all(chunk)?;
    }
    Ok(())
}
