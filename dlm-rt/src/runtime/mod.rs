//! The process-wide runtime: DLM's state in this process (not started, running, shut down)
//! and what the program's threads ask of it — allocation within the limit, freeing, advice,
//! static arrays adopted in place, holds, statistics. Stands on `pager`, `transport`, `heap`
//! and `sys`; the C ABI and the Rust API stand on it.
//!
//! - `start`: startup as named steps (launch, handshake, sizes, DLM range, userfaultfd, pager
//!   thread), each failure undone by a guard that stops the servers.
//! - `shutdown`: stopping the pager and the servers, also at exit, and the final statistics.
//! - `pool`: joining a memory pool instead of starting servers, renewing its lease, leaving.
//! - `watchdog`: ends the process if a blocking MPI call (spawn, connect) never returns.
//! - `holds`: user-only mode, where I/O calls hold the DLM memory the kernel will access.
//! - `live`: the thread that writes live statistics (`DLM_STATS_LIVE`) twice a second.

pub mod holds;
mod live;
mod pool;
mod shutdown;
mod start;
mod watchdog;

pub use shutdown::{shut_down_at_exit, shutdown};
pub use start::start;

use crate::config::Config;
use crate::error::Error;
use crate::heap::arena::ChargedPages;
use crate::heap::Heap;
use crate::pager::{Advice, Command, Mailbox, Refusal};
use crate::stats::{Counters, Stats};
use crate::sys::{self, FaultMode, Mapping};
use crate::transport::Job;
use mpi::environment::Universe;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

enum State {
    NotStarted,
    Running(Box<Runtime>),
    ShutDown,
}

static STATE: Mutex<State> = Mutex::new(State::NotStarted);
/// Mirrors `State::Running` for checks that must not take the lock.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Whether `ptr` lies in the DLM range (a block from [`allocate`], live or not; also after
/// shutdown, so that a late `free` of a DLM block is not handed to the C library).
pub fn owns(ptr: *const u8) -> bool {
    sys::in_dlm_range(ptr as usize)
}

/// Whether DLM memory can be used now.
pub fn is_running() -> bool {
    RUNNING.load(Ordering::Acquire)
}

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

struct Runtime {
    // Dropped in this order at shutdown: pager (and its job), then MPI, then the DLM range.
    pager: Option<JoinHandle<Job>>,
    /// In a pool: the lease, renewed until the program leaves (after the pager has stopped).
    membership: Option<pool::Membership>,
    /// With `DLM_STATS_LIVE`: the thread that writes the live statistics.
    live: Option<live::LiveStats>,
    universe: Option<Universe>,
    region: Arc<Mapping>,
    mailbox: Arc<Mailbox>,
    counters: Arc<Counters>,
    heap: Heap,
    /// Which faults reach the pager: in user-only mode I/O calls hold their buffers.
    fault_mode: FaultMode,
    /// The DLM pages of the small-block heap's arena charged against the limit.
    small_pages: ChargedPages,
    config: Config,
    budget: u64,
    servers: u64,
    capacity: u64,
}

impl Runtime {
    fn stats(&self) -> Stats {
        let mut stats =
            Stats::capture(&self.counters, self.budget, self.config.page_size as u64, self.servers, self.capacity);
        stats.user_mode_only = u64::from(self.fault_mode == FaultMode::UserOnly);
        stats
    }
}

/// Allocates `bytes` of DLM memory (page-aligned, reads as zero).
pub fn allocate(bytes: usize) -> Result<NonNull<u8>, Error> {
    if sys::is_forked_child() {
        return Err(Error::ForkedChild);
    }
    let mut guard = state();
    let State::Running(rt) = &mut *guard else { return Err(Error::NotStarted) };
    let offset = rt.heap.allocate(bytes)?;
    // SAFETY: the heap only hands out offsets inside the region.
    Ok(unsafe { NonNull::new_unchecked(rt.region.base().add(offset)) })
}

/// Why [`release`] refused a pointer.
#[derive(Debug, PartialEq, Eq)]
pub enum ReleaseError {
    NotDlm,
    NotStarted,
}

/// Frees a block from [`allocate`]: its pages are dropped locally and on the servers.
pub fn release(ptr: *mut u8) -> Result<(), ReleaseError> {
    if sys::is_forked_child() {
        return Ok(());
    }
    let mut guard = state();
    let rt = match &mut *guard {
        State::Running(rt) => rt,
        // After shutdown every block is gone with the DLM range.
        State::ShutDown => return Ok(()),
        State::NotStarted => return Err(ReleaseError::NotStarted),
    };
    let offset = (ptr as usize).wrapping_sub(rt.region.base() as usize);
    if offset >= rt.region.len() {
        return Err(ReleaseError::NotDlm);
    }
    let len = rt.heap.release(offset).ok_or(ReleaseError::NotDlm)?;
    // Freeing cannot fail in the pager; an error only means it is gone at shutdown.
    let _ = rt.mailbox.call(Command::Free { offset, len });
    Ok(())
}

/// The length of the live block at `ptr` (whole pages), if `ptr` starts one.
pub fn block_len(ptr: *const u8) -> Option<usize> {
    let guard = state();
    let State::Running(rt) = &*guard else { return None };
    rt.heap.block_len((ptr as usize).checked_sub(rt.region.base() as usize)?)
}

/// Passes `advice` about `[start, start+len)` of DLM memory to the pager.
pub fn advise(start: usize, len: usize, advice: Advice) -> Result<(), Error> {
    let guard = state();
    let State::Running(rt) = &*guard else { return Err(Error::NotStarted) };
    if len == 0 {
        return Ok(());
    }
    rt.mailbox.call(Command::Advise { start, len, advice }).map_err(Error::from)
}

/// The DLM page size, if DLM is running.
pub fn page_size() -> Option<usize> {
    match &*state() {
        State::Running(rt) => Some(rt.config.page_size),
        _ => None,
    }
}

/// Makes `[start, start+len)`, a page-aligned part of a static array, DLM memory: it counts
/// against the limit like an allocation and is paged from now on. With `keep_contents` its
/// current data is kept; otherwise it must be all zeros (it reads as zeros afterwards).
pub fn adopt_static(start: usize, len: usize, keep_contents: bool) -> Result<(), Error> {
    let mut guard = state();
    let State::Running(rt) = &mut *guard else { return Err(Error::NotStarted) };
    // The pager's pages are aligned in the address space, so an array that starts inside a
    // page spans one more page than its length alone: charge every page it touches.
    let page = rt.config.page_size;
    rt.heap.reserve(start % page + len)?;
    rt.mailbox.call(Command::AddStatic { start, len, keep_contents }).map_err(Error::from)?;
    holds::add_static(start..start + len);
    Ok(())
}

/// Charges the DLM pages under `[start, start+len)` of the small-block heap's arena against the
/// limit, each page once, before the heap touches them.
pub fn charge_small_heap(start: usize, len: usize) -> Result<(), Error> {
    let mut guard = state();
    let State::Running(rt) = &mut *guard else { return Err(Error::NotStarted) };
    let page = rt.config.page_size;
    let offset = start - rt.region.base() as usize;
    let rt = &mut **rt;
    let charged =
        rt.small_pages.charge(offset / page..(offset + len).div_ceil(page), |pages| rt.heap.reserve(pages * page))?;
    Counters::add(&rt.counters.small_heap_bytes, (charged * page) as u64);
    Ok(())
}

/// The current statistics, if DLM is running.
pub fn stats() -> Option<Stats> {
    match &*state() {
        State::Running(rt) => Some(rt.stats()),
        _ => None,
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Adopt { step, source } => Error::Adopt { step, source },
            Refusal::NotDlmMemory { addr } => Error::NotDlmMemory { addr },
            Refusal::Evacuate { server } => Error::Evacuate { server },
        }
    }
}
