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
//! - Replacement is FIFO over resident pages, counted in bytes against the budget. The next
//!   dirty pages in eviction order start their trip home early (pre-cleaning); an evicted dirty
//!   page is moved out into a staging slot and sent from there without waiting.
//! - `dlm_advise` hints override the guesses (sequential, random, will-need, don't-need).
//!
//! Slots on the servers are handed out on first eviction and kept while the page lives, so a
//! page that is fetched again and not written can be dropped without traffic. When every slot
//! is taken, a resident page's slot is taken over and that page becomes dirty (its only copy is
//! then local); the heap's limit (budget + capacity) guarantees such a page exists.
//!
//! Parts: `page` (a page's entry and [`State`]), `slots` (where evicted pages live on the
//! servers, striped by capacity), `streams` (stream detection), `fetch`
//! (bringing pages and blocks in), `evict` (making room, sending data home, MPI progress),
//! `failure` (the thread never unwinds), `hold` (pages kept resident while the kernel accesses
//! them); this file holds the thread's loop, the commands and
//! the fault dispatch.
//!
//! Besides the heap's DLM range, the pager serves *static segments*: static arrays of a C or
//! Rust program adopted in place at startup. Their pages are aligned to the page size in the
//! address space, so a segment's first and last pages may be short. Pages of an initialized
//! array start [`State::Stashed`].

mod evict;
mod failure;
mod fetch;
mod hold;
mod page;
mod slots;
mod streams;

use crate::staging::{Slot, Staging};
use crate::stats::Counters;
use crate::sys::{self, fatal, poll_readable, EventFd, Fault, FaultFd, Mapping};
use crate::transport::{Job, Request, Transfer, KEEP_ALIVE};
pub use hold::KernelAccess;
use page::{Blocks, Page, State};
use slots::ServerSlots;
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use streams::{Run, Streams};

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

/// What a program declared about a range of DLM memory (`dlm_advise`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advice {
    /// Back to the pager's own guesses.
    Normal,
    /// Read in order: whole pages, fetched ahead.
    Sequential,
    /// Touched at random: only the blocks touched, never fetched ahead.
    Random,
    /// Needed soon: fetch it now.
    WillNeed,
    /// Not needed for a while: evict it now (its data is kept).
    DontNeed,
}

/// Work the program's threads hand to the pager thread.
pub enum Command {
    /// Forget the pages of `[offset, offset+len)` of the DLM range, locally and on the servers.
    Free { offset: usize, len: usize },
    /// Serve `[start, start+len)`, a page-aligned static array, as DLM memory from now on; with
    /// `keep_contents` its current data is kept (else it reads as zeros).
    AddStatic { start: usize, len: usize, keep_contents: bool },
    /// Take `advice` for the DLM memory in `[start, start+len)`.
    Advise { start: usize, len: usize, advice: Advice },
    /// Bring `[start, start+len)` in and keep it resident until [`Command::Release`]: the
    /// kernel will access it (see [`hold`]).
    Hold { start: usize, len: usize, access: KernelAccess },
    /// End a [`Command::Hold`] of the same range.
    Release { start: usize, len: usize },
    /// Stop the servers and end the pager thread.
    Shutdown,
}

/// Where the pager answers a command: `Err` says why it could not be done.
type Reply = SyncSender<Result<(), String>>;

/// Where program threads post [`Command`]s; each call waits for the pager to finish it.
pub struct Mailbox {
    queue: Mutex<Vec<(Command, Reply)>>,
    doorbell: EventFd,
}

impl Mailbox {
    pub fn new() -> std::io::Result<Self> {
        Ok(Mailbox { queue: Mutex::new(Vec::new()), doorbell: EventFd::new()? })
    }

    /// Posts `command` and returns the pager's answer (an error says why it could not be done).
    pub fn call(&self, command: Command) -> Result<(), String> {
        let (done, wait) = sync_channel(1);
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).push((command, done));
        self.doorbell.notify();
        // A closed channel means the pager thread is gone, which only happens at shutdown.
        wait.recv().unwrap_or(Ok(()))
    }

    fn take(&self) -> Vec<(Command, Reply)> {
        self.doorbell.drain();
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A run of consecutive pages at one address range: the heap's DLM range, or a static array.
struct Segment {
    base: usize,
    len: usize,
    /// `base` rounded down to the page size: pages are aligned in the address space.
    origin: usize,
    /// Index of its first page in `Pager::pages`.
    first: usize,
    /// The initial contents of a static array, byte for byte.
    stash: Option<Mapping>,
}

/// Where a page lies: its bytes `[start, start+len)`, at `offset` within its aligned frame
/// (non-zero only for a static array's first page), which is also where its data lies in its
/// server slot and staging slot.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    len: usize,
    offset: usize,
}

impl Span {
    fn ptr(&self) -> *mut u8 {
        self.start as *mut u8
    }

    /// The address of the whole, aligned page this span lies in.
    fn frame(&self) -> usize {
        self.start - self.offset
    }
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
    uffd: FaultFd,
    job: Job,
    mailbox: Arc<Mailbox>,
    counters: Arc<Counters>,
    page_size: usize,
    /// The unit an isolated fault brings: the system page.
    block: usize,
    pages: Vec<Page>,
    /// The blocks of every [`State::Partial`] page.
    partial: HashMap<u32, Blocks>,
    /// Resident pages, oldest first (FIFO replacement).
    resident: VecDeque<u32>,
    resident_bytes: usize,
    resident_budget: usize,
    /// Resident pages whose copy is on its way home, oldest first.
    cleanings: VecDeque<(u32, Transfer)>,
    /// Evicted pages being sent home from a staging slot, oldest first.
    outgoing: VecDeque<(Slot, Transfer)>,
    /// Pages being fetched ahead, oldest first.
    read_aheads: VecDeque<ReadAhead>,
    /// Where fetched pages are received and evicted pages are moved to.
    staging: Staging,
    streams: Streams,
    /// `dlm_advise` ranges in force, as (start, end, advice); later ones win.
    advice: Vec<(usize, usize, Advice)>,
    slots: ServerSlots,
    zeros: Vec<u8>,
    /// Where a block fetched on its own is received.
    block_buffer: Vec<u8>,
    faults: u64,
    /// A page being installed whose data waits in a staging slot: it may give its server slot
    /// away when every slot is taken (see [`Pager::assign_home`]).
    donor_in_staging: Option<usize>,
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
}

impl Pager {
    pub fn new(
        region: Arc<Mapping>,
        uffd: FaultFd,
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
        Pager {
            pages: vec![Page::default(); region.len() / page_size],
            segments: vec![heap],
            region,
            uffd,
            job,
            mailbox,
            counters,
            page_size,
            block,
            partial: HashMap::new(),
            resident: VecDeque::new(),
            resident_bytes: 0,
            resident_budget,
            cleanings: VecDeque::with_capacity(CLEAN_AHEAD),
            outgoing: VecDeque::new(),
            read_aheads: VecDeque::new(),
            staging,
            streams: Streams::new(),
            advice: Vec::new(),
            slots: ServerSlots::new(&capacities),
            zeros: vec![0; page_size],
            block_buffer: vec![0; block],
            faults: 0,
            donor_in_staging: None,
            last_missing: 0,
            installed_bytes: 0,
            bytes_per_fault: block,
            panic_at,
            server_hosts,
            swap_checked: Instant::now(),
        }
    }

    /// Serves faults and commands until [`Command::Shutdown`]; returns the job for finalization.
    /// A panic in here ends the process (see [`failure`]).
    pub fn run(mut self) -> Job {
        let _never_unwinds = failure::enter_pager_thread();
        crate::held::exempt_this_thread();
        let mut faults = Vec::with_capacity(64);
        // Besides faults and commands, wake up when a memory server on this host exits.
        let mut fds = vec![self.uffd.raw_fd(), self.mailbox.doorbell.raw_fd()];
        fds.extend(self.job.watched_fds());
        loop {
            // While data is in flight, keep MPI progressing between faults: read-ahead data is
            // copied in by this thread's MPI calls.
            let timeout = if self.in_flight() { 0 } else { KEEP_ALIVE.as_millis() as i32 };
            let ready = poll_readable(fds.iter().copied(), timeout);
            self.job.keep_alive_if_due();
            self.stop_moving_if_swap_is_on();
            if ready == 0 {
                self.progress();
                continue;
            }
            if ready >> 2 != 0 {
                self.job.check_servers();
            }
            if ready & 1 != 0 {
                faults.clear();
                if let Err(e) = self.uffd.read_faults(&mut faults) {
                    fatal(&format!("cannot read page faults: {e}"));
                }
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

    /// Carries out the posted commands; true after [`Command::Shutdown`].
    fn serve_commands(&mut self) -> bool {
        for (command, done) in self.mailbox.take() {
            let answer = match command {
                Command::Free { offset, len } => {
                    self.free(offset, len);
                    Ok(())
                }
                Command::AddStatic { start, len, keep_contents } => self.add_static(start, len, keep_contents),
                Command::Advise { start, len, advice } => self.advise(start, len, advice),
                Command::Hold { start, len, access } => {
                    self.hold(start, len, access);
                    Ok(())
                }
                Command::Release { start, len } => {
                    self.release(start, len);
                    Ok(())
                }
                Command::Shutdown => {
                    self.drain_transfers();
                    self.job.shut_down_servers();
                    let _ = done.send(Ok(()));
                    return true;
                }
            };
            let _ = done.send(answer);
        }
        false
    }

    fn add_static(&mut self, start: usize, len: usize, keep_contents: bool) -> Result<(), String> {
        let huge = self.page_size.is_multiple_of(sys::HUGE_PAGE);
        // SAFETY: the runtime hands over a page-aligned range inside one static array that the
        // program does not touch until this call returns.
        let stash = unsafe { sys::adopt_range(start as *mut u8, len, keep_contents, huge) }
            .map_err(|e| format!("cannot remap it: {e}"))?;
        self.uffd.register_range(start as *mut u8, len).map_err(|e| format!("userfaultfd refused it: {e}"))?;
        let origin = start - start % self.page_size;
        let first = self.pages.len();
        let count = (start + len - origin).div_ceil(self.page_size);
        let state = if keep_contents { State::Stashed } else { State::Absent };
        self.pages.extend(std::iter::repeat_n(Page::new(state), count));
        self.segments.push(Segment { base: start, len, origin, first, stash });
        Ok(())
    }

    fn segment_of_page(&self, index: usize) -> &Segment {
        let after = self.segments.partition_point(|s| s.first <= index);
        &self.segments[after - 1]
    }

    /// Where page `index` lies (only a static array's first and last pages can be short).
    fn span(&self, index: usize) -> Span {
        let segment = self.segment_of_page(index);
        let frame = segment.origin + (index - segment.first) * self.page_size;
        let start = frame.max(segment.base);
        let end = (frame + self.page_size).min(segment.base + segment.len);
        Span { start, len: end - start, offset: start - frame }
    }

    fn page_at(&self, addr: usize) -> Option<usize> {
        let segment = self.segments.iter().find(|s| (s.base..s.base + s.len).contains(&addr))?;
        Some(segment.first + (addr - segment.origin) / self.page_size)
    }

    /// The pages of `index`'s segment, as a range of indices.
    fn segment_pages(&self, index: usize) -> std::ops::Range<usize> {
        let segment = self.segment_of_page(index);
        let count = (segment.base + segment.len - segment.origin).div_ceil(self.page_size);
        segment.first..segment.first + count
    }

    fn advice_at(&self, addr: usize) -> Advice {
        self.advice.iter().rev().find(|(s, e, _)| (*s..*e).contains(&addr)).map_or(Advice::Normal, |a| a.2)
    }

    fn serve(&mut self, fault: Fault) {
        let started = Instant::now();
        self.faults += 1;
        if self.panic_at == Some(self.faults) {
            panic!("injected for a test at fault {} (DLM_TEST_PAGER_PANIC)", self.faults);
        }
        let Some(index) = self.page_at(fault.addr) else {
            fatal(&format!("page fault at {:#x} outside the DLM range", fault.addr));
        };
        if fault.write_protected {
            self.serve_write_protect(index, fault.addr);
        } else {
            self.serve_missing(index, fault.addr, fault.write);
        }
        self.reap_transfers();
        Counters::add(&self.counters.faults, 1);
        Counters::add(&self.counters.wait_nanos, started.elapsed().as_nanos() as u64);
    }

    /// A write to a write-protected page: from now on it is dirty.
    fn serve_write_protect(&mut self, index: usize, addr: usize) {
        let span = self.span(index);
        match self.pages[index].state {
            State::Clean | State::Dirty | State::Cleaning => {
                if self.pages[index].state == State::Cleaning {
                    // The page is being read by its send: let that finish first.
                    self.finish_cleanings(|i| i == index);
                }
                self.uffd.unprotect(span.ptr(), span.len);
                self.pages[index].state = State::Dirty;
            }
            State::Partial => {
                let block = self.block_of(addr);
                let blocks = self.partial.get_mut(&(index as u32)).expect("partial pages have blocks");
                blocks.mark_dirty((addr - span.frame()) / self.block);
                self.uffd.unprotect(block as *mut u8, self.block);
            }
            // Evicted while the writer waited: let it retry and take a missing fault.
            State::Absent | State::Stashed | State::Fetching => {
                self.uffd.wake(span.ptr(), span.len);
                return;
            }
        }
        self.pages[index].written = true;
    }

    /// Whether a fault on a missing block of partial page `index` brings the rest of the page:
    /// as advised, or when it continues the previous fault or the page is used densely.
    fn completes_partial(&self, advice: Advice, index: usize, addr: usize) -> bool {
        match advice {
            Advice::Sequential | Advice::WillNeed => true,
            Advice::Random => false,
            Advice::Normal | Advice::DontNeed => self.continues_last_fault(addr) || self.is_dense(index),
        }
    }

    fn block_of(&self, addr: usize) -> usize {
        addr - addr % self.block
    }

    /// A read or write of a missing page or block: bring what the access pattern calls for.
    fn serve_missing(&mut self, index: usize, addr: usize, write: bool) {
        let installed_before = self.installed_bytes;
        self.serve_missing_by_state(index, addr, write);
        self.last_missing = self.block_of(addr);
        let brought = self.installed_bytes - installed_before;
        self.bytes_per_fault = (self.bytes_per_fault * 63 + brought) / 64;
    }

    fn serve_missing_by_state(&mut self, index: usize, addr: usize, write: bool) {
        let page = self.pages[index];
        let advice = self.advice_at(addr);
        let span = self.span(index);
        match page.state {
            // Another thread's fault on the same page was served first.
            State::Clean | State::Dirty | State::Cleaning => self.uffd.wake(span.ptr(), span.len),
            State::Partial => {
                let block = (addr - span.frame()) / self.block;
                if self.partial[&(index as u32)].is_present(block) {
                    self.uffd.wake(self.block_of(addr) as *mut u8, self.block);
                } else if self.completes_partial(advice, index, addr) {
                    self.complete_partial(index, write);
                    if let Some(run) = self.streams.observe(index, self.edge(index, addr)) {
                        self.after_sequential_fault(index, run);
                    }
                } else {
                    self.fetch_block(index, addr, write);
                }
            }
            State::Absent | State::Stashed | State::Fetching => {
                let advised = Run { direction: 1, steps: u32::MAX };
                let run = match advice {
                    Advice::Random => None,
                    Advice::Sequential | Advice::WillNeed => {
                        Some(self.streams.observe(index, self.edge(index, addr)).unwrap_or(advised))
                    }
                    Advice::Normal | Advice::DontNeed => self.streams.observe(index, self.edge(index, addr)),
                };
                let whole = run.is_some() || page.state != State::Absent || page.home().is_none();
                if whole || self.block == self.page_size {
                    self.page_in(index, write);
                } else {
                    self.fetch_block(index, addr, write);
                }
                if let Some(run) = run {
                    self.after_sequential_fault(index, run);
                }
            }
        }
    }

    fn free(&mut self, offset: usize, len: usize) {
        let first = offset / self.page_size;
        let range = first..first + len / self.page_size;
        self.finish_cleanings(|i| range.contains(&i));
        self.drop_read_aheads(|i, _| range.contains(&i));
        self.streams.forget(range.clone());
        for index in range.clone() {
            let page = self.pages[index];
            if let Some(home) = page.home() {
                let at = self.home_address(home);
                self.job.send(home.server as usize, Request::Free { at, len: self.page_size as u64 });
                self.slots.give_back(home.server as usize, home.slot);
            }
            self.resident_bytes -= match page.state {
                State::Partial => self.partial.remove(&(index as u32)).map_or(0, |b| b.count * self.block),
                state if state.is_resident() => self.span(index).len,
                _ => 0,
            };
            self.pages[index] = Page::default();
        }
        self.resident.retain(|&i| !range.contains(&(i as usize)));
        self.region.discard(offset, len);
        self.counters.set_resident(self.resident_bytes as u64);
    }

    /// Records `advice` for `[start, start+len)` and acts on will-need and don't-need now;
    /// `Err` if the range does not start in DLM memory.
    fn advise(&mut self, start: usize, len: usize, advice: Advice) -> Result<(), String> {
        let first = self.page_at(start).ok_or("not DLM memory")?;
        let end = start.saturating_add(len);
        let last = self.page_at(end - 1).filter(|&l| l >= first).unwrap_or(first);
        self.advice.retain(|&(s, e, _)| s < start || e > end);
        if advice != Advice::Normal {
            self.advice.push((start, end, advice));
        }
        match advice {
            Advice::WillNeed => {
                self.drop_stale_read_aheads();
                for index in first..=last {
                    if !self.read_ahead(index) {
                        break;
                    }
                }
            }
            Advice::DontNeed => {
                for index in first..=last {
                    if self.pages[index].state.is_resident() && self.can_evict(index) {
                        self.resident.retain(|&i| i as usize != index);
                        self.evict(index);
                    }
                }
            }
            Advice::Normal | Advice::Sequential | Advice::Random => {}
        }
        Ok(())
    }
}
