//! Keeping DLM memory resident while the kernel accesses it, for a program whose pager runs in
//! user-only mode (`sys::FaultMode::UserOnly`: the user may not open `/dev/userfaultfd`). In
//! that mode the kernel's own access to a missing or write-protected DLM page (`read(2)` into
//! a DLM buffer, `write(2)` out of an evicted one) fails with `EFAULT` instead of waiting for
//! the pager. So an I/O call first has the pager bring the buffer in and hold it, in slices of
//! at most a quarter of the budget, and lets it go when the call returns.
//!
//! C programs built by dlmcc get this from `interpose_io.c` (their `read`, `fread`, `recv`,
//! `write` … call the `__dlm_io_*` hooks of `abi::io`); Rust programs use `dlm::read_exact`
//! and `dlm::write_all` (`api::io`). In kernel-and-user mode nothing is held: the calls fault
//! like any access.

use super::{state, State};
use crate::pager::{on_pager_thread, Command, KernelAccess, Mailbox};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::RwLock;

/// Bytes one call may hold at once; 0 while nothing needs holding. Checked without a lock on
/// every I/O call of the process, the pager thread's own included.
static SLICE: AtomicUsize = AtomicUsize::new(0);

/// Static arrays adopted as DLM memory (the DLM range itself is `sys::in_dlm_range`). Its own
/// lock, never held while waiting for the pager, so the pager thread's I/O can read it.
static STATICS: RwLock<Vec<Range<usize>>> = RwLock::new(Vec::new());

/// From now on, I/O calls hold DLM memory, `slice` bytes at a time.
pub fn enable(slice: usize) {
    SLICE.store(slice, Ordering::Release);
}

/// DLM has stopped: nothing is held any more.
pub fn disable() {
    SLICE.store(0, Ordering::Release);
}

/// Whether the kernel's own accesses to DLM memory fail instead of faulting (user-only mode,
/// DLM running).
pub fn kernel_faults_fail() -> bool {
    SLICE.load(Ordering::Acquire) != 0
}

pub fn add_static(range: Range<usize>) {
    STATICS.write().unwrap_or_else(|e| e.into_inner()).push(range);
}

/// How many bytes of `[start, start+len)` to hold at once, or `None` if the call need not
/// hold anything (no holds needed now, or none of it is DLM memory).
pub fn slice_for(start: usize, len: usize) -> Option<usize> {
    let slice = SLICE.load(Ordering::Acquire);
    // A forked child has no pager of its own (DLM memory is not in it: its I/O fails there).
    if slice == 0 || len == 0 || crate::sys::is_forked_child() || on_pager_thread() {
        return None;
    }
    let end = start.saturating_add(len);
    let overlaps = |r: &Range<usize>| r.start < end && start < r.end;
    let is_dlm = crate::sys::overlaps_dlm_range(start, end)
        || STATICS.read().unwrap_or_else(|e| e.into_inner()).iter().any(overlaps);
    is_dlm.then_some(slice)
}

/// A hold on `[start, start+len)`, released when dropped.
pub struct Held {
    start: usize,
    len: usize,
}

impl Held {
    pub fn new(start: usize, len: usize, access: KernelAccess) -> Self {
        hold(start, len, access);
        Held { start, len }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        release_hold(self.start, self.len);
    }
}

/// Has the pager bring the DLM memory in `[start, start+len)` in and keep it resident until
/// [`release_hold`], so that the kernel can `access` it in user-only mode.
pub fn hold(start: usize, len: usize, access: KernelAccess) {
    if let Some(mailbox) = running_mailbox() {
        let _ = mailbox.call(Command::Hold { start, len, access });
    }
}

/// Ends a [`hold`] of the same range.
pub fn release_hold(start: usize, len: usize) {
    if let Some(mailbox) = running_mailbox() {
        let _ = mailbox.call(Command::Release { start, len });
    }
}

/// The pager's mailbox while DLM runs (taken out of the lock: the call may wait for data).
fn running_mailbox() -> Option<Arc<Mailbox>> {
    match &*state() {
        State::Running(rt) => Some(rt.mailbox.clone()),
        _ => None,
    }
}
