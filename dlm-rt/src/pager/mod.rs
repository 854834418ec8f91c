//! The pager thread: serves the program's page faults on the DLM range from the memory servers
//! and keeps the resident DLM pages within the local budget. docs/DESIGN.md describes the page
//! states ([`State`]), the granularity rule, stream detection and replacement; in short:
//!
//! - A missing fault that continues a sequential stream ([`Streams`]) brings its whole page
//!   (with 2 MiB pages, one transparent huge page moved into place with one `UFFDIO_MOVE`) and
//!   starts fetching the next pages of the stream ahead. An isolated fault brings only the
//!   system page (block) it touched, so random access moves what it uses; the page is then
//!   [`State::Partial`], and a fault next to one of its blocks brings the rest.
//! - A page read is mapped write-protected so its first write is seen (dirty tracking); a write
//!   maps it writable, and so does a read of a page seen written in its last residency (the
//!   write hint), which saves the write-protect fault of a read-modify-write.
//! - Replacement is FIFO over resident pages, counted in bytes against the budget, or MRU
//!   outside a window of the newest pages while a loop larger than the budget runs
//!   ([`replace`]). The next dirty pages in eviction order start their trip home early
//!   (pre-cleaning); an evicted dirty page is moved out into a staging slot and sent from there
//!   without waiting.
//! - `dlm_advise` hints override the guesses (sequential, random, will-need, don't-need).
//!
//! Slots on the servers are handed out on first eviction and kept while the page lives, so a
//! page that is fetched again and not written can be dropped without traffic. When every slot
//! is taken, a resident page's slot is taken over and that page becomes dirty (its only copy is
//! then local); the heap's limit (budget + capacity) guarantees such a page exists.
//!
//! A fault's path through this folder: `dispatch` (which page, what its state calls for) →
//! `fetch` (bring the page or block; it asks `evict` to make room first) → `staging` (install
//! it: moved or copied into place). The files:
//!
//! - `mailbox`: [`Command`]s from the program's threads, answered by the pager.
//! - `commands`: carrying them out (free, static arrays, advice, holds, shutdown).
//! - `evacuate`: moving pages off a draining pool server while the program runs.
//! - `dispatch`: a fault's page and state, and the granularity rule.
//! - `fetch`: bringing pages and blocks in, read-ahead of streams, completing partial pages.
//! - `evict`: making room, sending data home, pre-cleaning, MPI progress.
//! - `replace`: which page goes next (FIFO, or MRU within a loop), learnt from the faults.
//! - `staging`: the userfaultfd and the staging slots: every install, move and protect.
//! - `segments`: the ranges served (the heap's and static arrays) and where a page lies.
//! - `page`: a page's entry and its [`State`]; `slots`: where evicted pages live on the
//!   servers; `streams`: stream detection; `hold`: pages kept resident for the kernel.
//! - `failure`: the thread's one failure policy (it never unwinds; a failed step is fatal).
//!
//! Besides the heap's DLM range, the pager serves *static segments*: static arrays of a C or
//! Rust program adopted in place at startup. Their pages are aligned to the page size in the
//! address space, so a segment's first and last pages may be short. Pages of an initialized
//! array start [`State::Stashed`].

mod commands;
mod dispatch;
mod evacuate;
mod evict;
mod failure;
mod fetch;
mod hold;
mod mailbox;
mod page;
mod replace;
mod segments;
mod slots;
mod staging;
mod streams;
#[cfg(feature = "bench")]
mod trace;

pub use evacuate::Destination;
pub use failure::on_pager_thread;
pub use hold::KernelAccess;
pub use mailbox::{Advice, Command, Mailbox, Refusal};
pub use staging::Staging;

use crate::stats::Counters;
use crate::sys::{self, poll_readable, FaultEvents, Mapping};
use crate::transport::{Job, Transfer, KEEP_ALIVE};
use page::{Blocks, Page};
use replace::Replacement;
use segments::{Segment, Span};
use slots::ServerSlots;
use staging::Slot;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;
use streams::Streams;

/// How many of the next pages to evict are sent home ahead of time.
const CLEAN_AHEAD: usize = 4;

/// How far a stream fetches ahead, in bytes (at least one page) per host with memory servers:
/// pages are striped over the servers, and each host's link needs enough in flight to stay busy.
const READ_AHEAD_BYTES: usize = 8 << 20;

/// A partial page's use is judged after this fraction of its blocks (see `Pager::is_dense`).
const DENSE_FRACTION: usize = 32;

/// How near a page's edge a fault must be to continue a stream (see [`streams`]).
const STREAM_EDGE: usize = 64 << 10;

/// Staging slots kept free of read-aheads: a fault's own fetch and evictions need them.
const RESERVED_SLOTS: usize = 3;

/// How many staging slots the pager uses for a budget of `budget_pages` pages and servers on
/// `server_hosts` hosts: enough for read-ahead of several streams over every host's link, at
/// most an eighth of the budget where the budget allows. They are memory beyond the budget: a
/// program whose data just fits the budget must not page.
pub fn staging_slots(budget_pages: usize, server_hosts: usize) -> usize {
    (budget_pages / 8).clamp(RESERVED_SLOTS + 2, 16 * server_hosts.max(1))
}

/// A page being fetched before its fault.
struct ReadAhead {
    index: u32,
    slot: Slot,
    transfer: Transfer,
    /// The fault count when it was started: one left unused for long is dropped.
    started_at: u64,
    /// Its data has arrived (MPI said so).
    arrived: bool,
}

/// The sizes the pager works within.
pub struct Limits {
    pub page_size: usize,
    /// Bytes of resident DLM pages allowed (the budget).
    pub resident_budget: usize,
    /// Each server's capacity in pages.
    pub capacities: Vec<u32>,
    /// How many hosts the servers are on: each has a link of its own to keep busy.
    pub server_hosts: usize,
    /// Test only: panic at this fault (see `Config::pager_panic_at`).
    pub panic_at: Option<u64>,
}

pub struct Pager {
    region: Arc<Mapping>,
    /// The DLM range first, then static arrays in the order they were added.
    segments: Vec<Segment>,
    job: Job,
    mailbox: Arc<Mailbox>,
    counters: Arc<Counters>,
    page_size: usize,
    /// The unit an isolated fault brings: the system page.
    block: usize,
    pages: Vec<Page>,
    /// The blocks of every [`State::Partial`] page.
    partial: HashMap<u32, Blocks>,
    /// Resident pages, oldest first ([`replace`] picks victims from it).
    resident: VecDeque<u32>,
    replacement: Replacement,
    /// The fault count at the last fault that continued a stream.
    last_stream_fault: u64,
    resident_bytes: usize,
    resident_budget: usize,
    /// Resident pages whose copy is on its way home, oldest first.
    cleanings: VecDeque<(u32, Transfer)>,
    /// Evicted pages (or their written blocks) being sent home from a staging slot, oldest first.
    outgoing: VecDeque<(Slot, Vec<Transfer>)>,
    /// Pages being fetched ahead, oldest first.
    read_aheads: VecDeque<ReadAhead>,
    /// The userfaultfd, and where fetched pages are received and evicted pages are moved to.
    staging: Staging,
    streams: Streams,
    /// `dlm_advise` ranges in force, as (start, end, advice); later ones win.
    advice: Vec<(usize, usize, Advice)>,
    slots: ServerSlots,
    zeros: Vec<u8>,
    /// Where a block fetched on its own is received.
    block_buffer: Vec<u8>,
    faults: u64,
    /// The block of the last missing fault, to see a stream inside a page.
    last_missing: usize,
    /// Bytes made resident so far, and per missing fault lately (a moving average over about
    /// 64 faults): how fast the resident set turns over, which bounds a page's lifetime.
    installed_bytes: usize,
    bytes_per_fault: usize,
    panic_at: Option<u64>,
    /// How many hosts the servers are on (see [`READ_AHEAD_BYTES`]).
    server_hosts: usize,
    /// When the pager last looked for swap (see `stop_moving_if_swap_is_on`).
    swap_checked: Instant,
    /// Pages moving off a draining pool server, and where a page's copy passes.
    evacuation: Option<evacuate::Evacuation>,
    evacuation_buffer: Vec<u8>,
    /// The benchmark's record of missing faults (`trace`).
    #[cfg(feature = "bench")]
    trace: trace::FaultTrace,
}

impl Pager {
    pub fn new(
        region: Arc<Mapping>,
        job: Job,
        mailbox: Arc<Mailbox>,
        counters: Arc<Counters>,
        staging: Staging,
        limits: Limits,
    ) -> Self {
        let Limits { page_size, resident_budget, capacities, server_hosts, panic_at } = limits;
        let base = region.base() as usize;
        let heap = Segment { base, len: region.len(), origin: base, first: 0, stash: None };
        let block = sys::system_page_size();
        let slots = ServerSlots::new(&capacities, page_size as u64, counters.clone());
        Pager {
            pages: vec![Page::default(); region.len() / page_size],
            segments: vec![heap],
            region,
            job,
            mailbox,
            counters,
            page_size,
            block,
            partial: HashMap::new(),
            resident: VecDeque::new(),
            replacement: Replacement::default(),
            last_stream_fault: 0,
            resident_bytes: 0,
            resident_budget,
            cleanings: VecDeque::with_capacity(CLEAN_AHEAD),
            outgoing: VecDeque::new(),
            read_aheads: VecDeque::new(),
            staging,
            streams: Streams::new(),
            advice: Vec::new(),
            slots,
            zeros: vec![0; page_size],
            block_buffer: vec![0; block],
            faults: 0,
            last_missing: 0,
            installed_bytes: 0,
            bytes_per_fault: block,
            panic_at,
            server_hosts,
            swap_checked: Instant::now(),
            evacuation: None,
            evacuation_buffer: Vec::new(),
            #[cfg(feature = "bench")]
            trace: trace::FaultTrace::from_env(),
        }
    }

    /// Serves faults and commands until [`Command::Shutdown`]; returns the job for finalization.
    /// A panic in here ends the process (see [`failure`]).
    pub fn run(mut self) -> Job {
        let _never_unwinds = failure::enter_pager_thread();
        let mut events = FaultEvents::new();
        let mut faults = Vec::with_capacity(64);
        // Besides faults and commands, wake up when a memory server on this host exits.
        let mut fds = vec![self.staging.uffd().raw_fd(), self.mailbox.doorbell.raw_fd()];
        fds.extend(self.job.watched_fds());
        loop {
            // While data is in flight, keep MPI progressing between faults: read-ahead data is
            // copied in by this thread's MPI calls.
            let timeout = if self.in_flight() || self.is_evacuating() { 0 } else { KEEP_ALIVE.as_millis() as i32 };
            let ready = poll_readable(fds.iter().copied(), timeout);
            self.job.keep_alive_if_due();
            self.stop_moving_if_swap_is_on();
            self.evacuate_some();
            if ready == 0 {
                self.progress();
                continue;
            }
            if ready >> 2 != 0 {
                self.job.check_servers();
            }
            if ready & 1 != 0 {
                faults.clear();
                failure::or_fatal(self.staging.uffd().read_faults(&mut events, &mut faults), "reading page faults");
                for &fault in &faults {
                    self.serve(fault);
                }
            }
            if ready & 2 != 0 && self.serve_commands() {
                return self.job;
            }
        }
    }

    /// Once a second while pages are moved: when the machine has swap on, copy pages from then
    /// on. Pages the kernel swapped out behind the pager do not move reliably.
    fn stop_moving_if_swap_is_on(&mut self) {
        if self.staging.moves() && self.swap_checked.elapsed() >= KEEP_ALIVE {
            self.swap_checked = Instant::now();
            if sys::swap_is_on() {
                self.staging.stop_moving();
            }
        }
    }
}
