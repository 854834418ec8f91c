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
//! Besides the heap's DLM range, the pager serves *static segments*: static arrays of a C or
//! Rust program adopted in place at startup. Their pages are aligned to the page size in the
//! address space, so a segment's first and last pages may be short. Pages of an initialized
//! array start [`State::Stashed`].

mod failure;
mod page;
mod streams;

use crate::staging::{Placement, Slot, Staging};
use crate::stats::Counters;
use crate::sys::{self, fatal, poll_readable, EventFd, Fault, FaultFd, Mapping};
use crate::transport::{Job, Request, Transfer};
use page::{Blocks, Home, Page, State};
use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use streams::{Edge, Run, Streams};

/// How many of the next pages to evict are sent home ahead of time.
const CLEAN_AHEAD: usize = 4;

/// How far a stream fetches ahead, in bytes (at least one page).
const READ_AHEAD_BYTES: usize = 8 << 20;

/// A partial page's use is judged after this fraction of its blocks (see `Pager::is_dense`).
const DENSE_FRACTION: usize = 32;

/// How near a page's edge a fault must be to continue a stream (see [`streams`]).
const STREAM_EDGE: usize = 64 << 10;

/// Staging slots kept free of read-aheads: a fault's own fetch and evictions need them.
const RESERVED_SLOTS: usize = 3;

/// How many staging slots the pager uses for a budget of `budget_pages` pages: enough for
/// read-ahead of several streams, at most an eighth of the budget where the budget allows.
/// They are memory beyond the budget: a program whose data just fits the budget must not page.
pub fn staging_slots(budget_pages: usize) -> usize {
    (budget_pages / 8).clamp(RESERVED_SLOTS + 2, 16)
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

/// The free slots of one server.
struct SlotPool {
    free: Vec<u32>,
    next_unused: u32,
    capacity: u32,
}

impl SlotPool {
    fn has_free(&self) -> bool {
        !self.free.is_empty() || self.next_unused < self.capacity
    }

    fn take(&mut self) -> Option<u32> {
        self.free.pop().or_else(|| {
            (self.next_unused < self.capacity).then(|| {
                self.next_unused += 1;
                self.next_unused - 1
            })
        })
    }
}

/// The sizes the pager works within.
pub struct Limits {
    pub page_size: usize,
    /// Bytes of resident DLM pages allowed (the budget).
    pub resident_budget: usize,
    /// Each server's capacity in pages.
    pub capacities: Vec<u32>,
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
    pools: Vec<SlotPool>,
    next_server: usize,
    zeros: Vec<u8>,
    /// Where a block fetched on its own is received.
    block_buffer: Vec<u8>,
    faults: u64,
    /// A page being installed whose data waits in a staging slot: it may give its server slot
    /// away when every slot is taken (see [`Pager::assign_home`]).
    donor_in_staging: Option<usize>,
    /// The block of the last missing fault, to see a stream inside a page.
    last_missing: usize,
    panic_at: Option<u64>,
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
        let Limits { page_size, resident_budget, capacities, panic_at } = limits;
        let pools =
            capacities.iter().map(|&capacity| SlotPool { free: Vec::new(), next_unused: 0, capacity }).collect();
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
            pools,
            next_server: 0,
            zeros: vec![0; page_size],
            block_buffer: vec![0; block],
            faults: 0,
            donor_in_staging: None,
            last_missing: 0,
            panic_at,
        }
    }

    /// Serves faults and commands until [`Command::Shutdown`]; returns the job for finalization.
    /// A panic in here ends the process (see [`failure`]).
    pub fn run(mut self) -> Job {
        let _never_unwinds = failure::enter_pager_thread();
        let mut faults = Vec::with_capacity(64);
        // Besides faults and commands, wake up when a memory server on this host exits.
        let mut fds = vec![self.uffd.raw_fd(), self.mailbox.doorbell.raw_fd()];
        fds.extend(self.job.watched_fds());
        loop {
            // While data is in flight, keep MPI progressing between faults: read-ahead data is
            // copied in by this thread's MPI calls.
            let timeout = if self.in_flight() { 0 } else { -1 };
            let ready = poll_readable(fds.iter().copied(), timeout);
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
                blocks.mark_dirty((addr - (span.start - span.offset)) / self.block);
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

    fn block_of(&self, addr: usize) -> usize {
        addr - addr % self.block
    }

    /// A read or write of a missing page or block: bring what the access pattern calls for.
    fn serve_missing(&mut self, index: usize, addr: usize, write: bool) {
        self.serve_missing_by_state(index, addr, write);
        self.last_missing = self.block_of(addr);
    }

    fn serve_missing_by_state(&mut self, index: usize, addr: usize, write: bool) {
        let page = self.pages[index];
        let advice = self.advice_at(addr);
        match page.state {
            // Another thread's fault on the same page was served first.
            State::Clean | State::Dirty | State::Cleaning => {
                self.uffd.wake(self.span(index).ptr(), self.span(index).len)
            }
            State::Partial => {
                let frame = self.span(index).start - self.span(index).offset;
                let block = (addr - frame) / self.block;
                if self.partial[&(index as u32)].is_present(block) {
                    self.uffd.wake(self.block_of(addr) as *mut u8, self.block);
                } else if advice != Advice::Random && (self.continues_last_fault(addr) || self.is_dense(index)) {
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

    /// Whether partial page `index` is being used densely enough that it would be wholly
    /// used before it is evicted, so bringing the rest at once saves the block faults.
    ///
    /// A page's blocks arrive at `count / age` per fault, and a page stays resident for about
    /// as many faults as the budget has blocks (each fault adds a block). If that rate fills at
    /// least half the page within that lifetime, the working set fits and whole pages pay;
    /// under random access over more data than the budget (rate × lifetime = the resident
    /// fraction of the page), blocks stay cheaper. The rate is trusted only after 1/32 of the
    /// page's blocks, about what one whole-page fetch costs in block faults (docs/PERFORMANCE.md).
    fn is_dense(&self, index: usize) -> bool {
        let Some(blocks) = self.partial.get(&(index as u32)) else { return false };
        let per_page = self.page_size / self.block;
        let age = (self.faults - blocks.since).max(1) as usize;
        let lifetime = self.resident_budget / self.block;
        blocks.count >= (per_page / DENSE_FRACTION).max(2) && blocks.count * lifetime >= per_page / 2 * age
    }

    /// Where in page `index` the fault at `addr` is, for stream detection.
    fn edge(&self, index: usize, addr: usize) -> Edge {
        let span = self.span(index);
        let near = STREAM_EDGE.min(self.page_size / 4);
        if addr < span.start + near {
            Edge::Start
        } else if addr >= span.start + span.len - near.min(span.len) {
            Edge::End
        } else {
            Edge::Middle
        }
    }

    /// Whether a missing fault at `addr` is on a block next to the previous missing fault's:
    /// a stream inside a page. (Blocks merely present next to it would also be there after
    /// enough random faults, and bringing the page then would evict pages still in use.)
    fn continues_last_fault(&self, addr: usize) -> bool {
        self.block_of(addr).abs_diff(self.last_missing) == self.block
    }

    /// Starts fetching the next pages of a stream through `index` ahead of their faults: one
    /// page more for every step the stream has taken, up to [`READ_AHEAD_BYTES`] (a stream
    /// seen by chance under random access costs little; a long one is fetched far ahead).
    fn after_sequential_fault(&mut self, index: usize, run: Run) {
        let pages = self.segment_pages(index);
        let depth = (READ_AHEAD_BYTES / self.page_size).max(1).min(run.steps as usize - 1);
        for step in 1..=depth as isize {
            let Some(next) = index.checked_add_signed(step * run.direction).filter(|n| pages.contains(n)) else {
                break;
            };
            if !self.read_ahead(next) {
                break;
            }
        }
    }

    /// Starts fetching page `index` whole if it lives on a server and is not local or coming;
    /// false if no staging slot can be spared.
    fn read_ahead(&mut self, index: usize) -> bool {
        let page = self.pages[index];
        let Some(home) = page.home().filter(|_| page.state == State::Absent) else { return true };
        self.drop_stale_read_aheads();
        if self.staging.free() <= RESERVED_SLOTS {
            return false;
        }
        let span = self.span(index);
        let (slot, transfer) = self.start_fetch(home, span);
        self.pages[index].state = State::Fetching;
        self.read_aheads.push_back(ReadAhead {
            index: index as u32,
            slot,
            transfer,
            started_at: self.faults,
            arrived: false,
        });
        true
    }

    /// Drops read-aheads whose page was not touched for many faults (a stream that stopped).
    fn drop_stale_read_aheads(&mut self) {
        let horizon = 4 * self.read_aheads.len().max(8) as u64;
        let faults = self.faults;
        self.drop_read_aheads(|_, ahead| faults - ahead.started_at > horizon);
    }

    /// Starts fetching the page at `home` into a staging slot; the slot is the caller's, and
    /// untouched until the transfer is finished.
    fn start_fetch(&mut self, home: Home, span: Span) -> (Slot, Transfer) {
        let slot = self.free_slot();
        let at = self.home_address(home) + span.offset as u64;
        // SAFETY: the slot is a whole page long and nothing touches it until the transfer is
        // finished; the span's offset and length lie inside it.
        let transfer =
            unsafe { self.job.start_get(home.server as usize, at, self.staging.ptr(slot).add(span.offset), span.len) };
        (slot, transfer)
    }

    fn home_address(&self, home: Home) -> u64 {
        home.slot as u64 * self.page_size as u64
    }

    /// A free staging slot, waiting for write-backs or dropping the oldest read-ahead if none is.
    fn free_slot(&mut self) -> Slot {
        loop {
            if let Some(slot) = self.staging.take() {
                return slot;
            }
            if let Some((slot, mut send)) = self.outgoing.pop_front() {
                self.job.finish(&mut send);
                self.staging.release(slot, true);
            } else if let Some(oldest) = self.read_aheads.front().map(|a| a.index) {
                self.drop_read_aheads(|i, _| i == oldest as usize);
            } else {
                fatal("every staging slot is held");
            }
        }
    }

    /// The slot holding `index` if it was fetched ahead (waiting for it to arrive).
    fn take_read_ahead(&mut self, index: usize) -> Option<Slot> {
        let position = self.read_aheads.iter().position(|r| r.index as usize == index)?;
        let mut ahead = self.read_aheads.remove(position).expect("position is in range");
        self.job.finish(&mut ahead.transfer);
        Some(ahead.slot)
    }

    /// Finishes and forgets the read-aheads that `which` selects; their pages are absent again.
    fn drop_read_aheads(&mut self, which: impl Fn(usize, &ReadAhead) -> bool) {
        let (job, staging, pages) = (&self.job, &mut self.staging, &mut self.pages);
        self.read_aheads.retain_mut(|ahead| {
            if !which(ahead.index as usize, ahead) {
                return true;
            }
            job.finish(&mut ahead.transfer);
            staging.release(ahead.slot, true);
            pages[ahead.index as usize].state = State::Absent;
            false
        });
    }

    /// Makes room for `bytes` more resident bytes, evicting pages in FIFO order but `keep`,
    /// and passing over dirty pages without a home while no server slot can be found for them.
    fn make_room(&mut self, bytes: usize, keep: usize) {
        let mut passed = 0;
        while self.resident_bytes + bytes > self.resident_budget {
            let Some(victim) = self.resident.pop_front() else { break };
            let victim = victim as usize;
            if victim == keep || !self.can_evict(victim) {
                self.resident.push_back(victim as u32);
                passed += 1;
                if passed > self.resident.len() {
                    fatal("no resident DLM page can be evicted: the memory servers are full");
                }
                continue;
            }
            self.evict(victim);
        }
    }

    /// Whether `bytes` more fit, or some resident page but `keep` can be evicted to make room.
    fn room_without_donor(&self, bytes: usize, keep: usize) -> bool {
        self.resident_bytes + bytes <= self.resident_budget
            || self.resident.iter().any(|&i| i as usize != keep && self.can_evict(i as usize))
    }

    /// Whether evicting `index` now is possible: it needs a server slot only if it is dirty
    /// and has none.
    fn can_evict(&self, index: usize) -> bool {
        let page = self.pages[index];
        page.home().is_some()
            || page.state == State::Clean
            || self.pools.iter().any(|p| p.has_free())
            || self.donor_in_staging.is_some_and(|i| i != index)
            || self.resident.iter().any(|&i| i as usize != index && self.can_donate(i as usize))
    }

    /// Whether page `index` can give its server slot away (its data stays local, dirty).
    fn can_donate(&self, index: usize) -> bool {
        let page = self.pages[index];
        page.home().is_some() && matches!(page.state, State::Clean | State::Dirty)
    }

    /// Installs page `index` whole (from a read-ahead, its home, its stash or zeros).
    fn page_in(&mut self, index: usize, write: bool) {
        let span = self.span(index);
        // Fetched before room is made: with every server slot taken, eviction may then give
        // this page's slot to the victim (its data is safe in the staging slot).
        let fetched = self.fetch_whole(index, span);
        self.donor_in_staging = fetched.map(|_| index);
        self.make_room(span.len, index);
        self.donor_in_staging = None;
        let page = self.pages[index];
        // A read maps the page write-protected so that its first write is seen; a write maps it
        // writable at once and the page is dirty, and so does a read of a page with the hint.
        let write_protect = !(write || page.write_hint);
        let mut dirty = !write_protect;
        let placement = match fetched {
            Some(slot) => {
                // A page whose slot was given away holds the only copy of its data.
                dirty |= page.home().is_none();
                // SAFETY: the finished transfer wrote the span's bytes of the slot.
                unsafe { self.staging.install(&self.uffd, slot, (span.offset, span.len), span.ptr(), write_protect) }
            }
            None if page.state == State::Stashed => {
                dirty = true;
                self.install_stashed(index, span, write_protect)
            }
            None => self.install_zeros(span, write_protect),
        };
        match placement {
            Placement::AlreadyMapped => fatal(&format!("DLM page {index} was partly mapped behind the pager's back")),
            Placement::Moved => Counters::add(&self.counters.pages_moved, 1),
            Placement::Copied => {}
        }
        let huge = placement == Placement::Moved && self.staging.huge() && span.len == self.page_size;
        let page = &mut self.pages[index];
        page.state = if dirty { State::Dirty } else { State::Clean };
        page.written = write;
        page.huge = huge;
        self.now_resident(index, span.len);
    }

    /// The staging slot holding page `index`'s data from its server (fetched ahead or now), or
    /// `None` if it has no home.
    fn fetch_whole(&mut self, index: usize, span: Span) -> Option<Slot> {
        let page = self.pages[index];
        let slot = match (page.state, page.home()) {
            (State::Fetching, _) => self.take_read_ahead(index).expect("a fetching page has a read-ahead"),
            (_, Some(home)) => {
                let (slot, mut transfer) = self.start_fetch(home, span);
                self.job.finish(&mut transfer);
                slot
            }
            (_, None) => return None,
        };
        Counters::add(&self.counters.bytes_fetched, span.len as u64);
        Some(slot)
    }

    fn install_stashed(&mut self, index: usize, span: Span, write_protect: bool) -> Placement {
        let segment = self.segment_of_page(index);
        let stash = segment.stash.as_ref().expect("stashed pages have a stash");
        let offset = span.start - segment.base;
        // SAFETY: the page's offset in its segment is inside the equally long stash, and the page
        // lies in a registered range.
        let installed = unsafe { self.uffd.install(stash.base().add(offset), span.ptr(), span.len, write_protect) };
        stash.discard(offset, span.len);
        Placement::copied(installed)
    }

    fn install_zeros(&mut self, span: Span, write_protect: bool) -> Placement {
        Counters::add(&self.counters.zero_fills, 1);
        match self.staging.take_for_zeros() {
            // SAFETY: the slot is ours and a page long; the page is DLM memory.
            Some(slot) => unsafe {
                std::ptr::write_bytes(self.staging.ptr(slot).add(span.offset), 0, span.len);
                self.staging.install(&self.uffd, slot, (span.offset, span.len), span.ptr(), write_protect)
            },
            None => {
                // SAFETY: `zeros` is a page long; the page is DLM memory.
                let installed = unsafe { self.uffd.install(self.zeros.as_ptr(), span.ptr(), span.len, write_protect) };
                Placement::copied(installed)
            }
        }
    }

    /// Counts a page that became resident with `bytes` and starts pre-cleaning if memory is full.
    fn now_resident(&mut self, index: usize, bytes: usize) {
        self.resident.push_back(index as u32);
        self.resident_bytes += bytes;
        self.counters.set_resident(self.resident_bytes as u64);
        if self.resident_bytes + self.page_size > self.resident_budget {
            self.clean_ahead();
        }
    }

    /// Brings only the block at `addr` of page `index` (which has a home): an isolated fault.
    fn fetch_block(&mut self, index: usize, addr: usize, write: bool) {
        if !self.room_without_donor(self.block, index) {
            // Only a page fetched whole can give its server slot to an evicted page.
            return match self.pages[index].state {
                State::Partial => self.complete_partial(index, write),
                _ => self.page_in(index, write),
            };
        }
        self.make_room(self.block, index);
        let span = self.span(index);
        let page = self.pages[index];
        let home = page.home().expect("blocks are fetched only for pages with a home");
        if page.state != State::Partial {
            // Evicted while making room, or absent: it starts afresh.
            self.partial.insert(index as u32, Blocks::new(self.page_size / self.block, self.faults));
            self.pages[index].state = State::Partial;
            self.pages[index].written = false;
            self.resident.push_back(index as u32);
        }
        let block_addr = self.block_of(addr);
        let in_frame = block_addr - (span.start - span.offset);
        let at = self.home_address(home) + in_frame as u64;
        // SAFETY: the buffer is a block long and only this transfer uses it until finished.
        let mut transfer =
            unsafe { self.job.start_get(home.server as usize, at, self.block_buffer.as_mut_ptr(), self.block) };
        self.job.finish(&mut transfer);
        let write_protect = !(write || page.write_hint);
        // SAFETY: the buffer holds the block; the block lies in the registered page.
        if !unsafe { self.uffd.install(self.block_buffer.as_ptr(), block_addr as *mut u8, self.block, write_protect) } {
            fatal(&format!("DLM block at {block_addr:#x} was mapped behind the pager's back"));
        }
        let blocks = self.partial.get_mut(&(index as u32)).expect("just made partial");
        blocks.add(in_frame / self.block, !write_protect);
        self.pages[index].written |= write;
        Counters::add(&self.counters.bytes_fetched, self.block as u64);
        Counters::add(&self.counters.blocks_fetched, 1);
        self.resident_bytes += self.block;
        self.counters.set_resident(self.resident_bytes as u64);
    }

    /// Brings the blocks a partial page lacks: a stream runs through it.
    fn complete_partial(&mut self, index: usize, write: bool) {
        let span = self.span(index);
        let blocks = self.partial.remove(&(index as u32)).expect("partial pages have blocks");
        let frame = span.start - span.offset;
        let end = span.start + span.len;
        let missing: Vec<(usize, usize)> = blocks
            .missing_runs(self.page_size / self.block)
            .into_iter()
            .map(|(b, n)| ((frame + b * self.block).max(span.start), (frame + (b + n) * self.block).min(end)))
            .filter(|(from, to)| from < to)
            .map(|(from, to)| (from, to - from))
            .collect();
        let absent_bytes: usize = missing.iter().map(|r| r.1).sum();
        let home = self.pages[index].home().expect("partial pages have a home");
        let (slot, mut transfer) = self.start_fetch(home, span);
        self.job.finish(&mut transfer);
        // With all its data local or in the slot, this page may give its server slot away
        // while room is made; it stays in the queue (kept).
        self.donor_in_staging = Some(index);
        self.make_room(absent_bytes, index);
        self.donor_in_staging = None;
        let dirty = write || blocks.any_dirty() || self.pages[index].home().is_none();
        for (at, len) in missing {
            // SAFETY: the slot holds the whole page; each run lies in the page and is missing.
            unsafe {
                let from = self.staging.ptr(slot).add(at - frame);
                self.uffd.install(from, at as *mut u8, len, !write);
            }
        }
        self.staging.release(slot, true);
        Counters::add(&self.counters.bytes_fetched, absent_bytes as u64);
        let page = &mut self.pages[index];
        page.state = if dirty { State::Dirty } else { State::Clean };
        page.written |= write;
        page.huge = false;
        self.resident_bytes += absent_bytes;
        self.counters.set_resident(self.resident_bytes as u64);
    }

    fn evict(&mut self, index: usize) {
        let span = self.span(index);
        let bytes = match self.pages[index].state {
            State::Partial => self.evict_blocks(index, span),
            State::Cleaning | State::Clean | State::Dirty => {
                if self.pages[index].state == State::Cleaning {
                    self.finish_cleanings(|i| i == index);
                }
                self.evict_whole(index, span);
                span.len
            }
            state => fatal(&format!("DLM page {index} queued as resident while {state:?}")),
        };
        let page = &mut self.pages[index];
        page.state = State::Absent;
        page.write_hint = page.written;
        self.resident_bytes -= bytes;
        Counters::add(&self.counters.pages_evicted, 1);
        self.counters.set_resident(self.resident_bytes as u64);
    }

    /// Evicts a wholly resident page: moved out and sent from a slot without waiting, or sent
    /// from where it is (write-protected) and dropped.
    fn evict_whole(&mut self, index: usize, span: Span) {
        let page = self.pages[index];
        let dirty = page.state == State::Dirty;
        let movable = !self.staging.huge() || page.huge;
        if movable && self.staging.free() == 0 {
            // Make a slot free so the page can be moved out rather than sent in place.
            let slot = self.free_slot();
            self.staging.release(slot, true);
        }
        // SAFETY: the page is resident and leaves the DLM range here.
        let moved_out =
            movable.then(|| unsafe { self.staging.move_out(&self.uffd, span.ptr(), span.offset, span.len) });
        match moved_out.flatten() {
            Some(slot) if dirty => {
                // SAFETY: moved out of the program's reach, the slot cannot change until released.
                let send = unsafe { self.start_put(index, self.staging.ptr(slot).add(span.offset), span.len) };
                self.outgoing.push_back((slot, send));
            }
            Some(slot) => self.staging.release(slot, true),
            None => {
                if dirty {
                    // Writers now block until the page has been sent and dropped.
                    let mut send = self.send_home(index);
                    self.job.finish(&mut send);
                }
                // SAFETY: the page is DLM memory whose data is now on its server (or never written).
                unsafe { sys::discard(span.ptr(), span.len) };
            }
        }
    }

    /// Evicts a partial page: its written blocks go home (write-protected while sent), then
    /// its blocks are dropped. Returns the bytes it held.
    fn evict_blocks(&mut self, index: usize, span: Span) -> usize {
        let blocks = self.partial.remove(&(index as u32)).expect("partial pages have blocks");
        let frame = span.start - span.offset;
        let home = self.pages[index].home().expect("partial pages have a home");
        let mut sends = Vec::new();
        for (first, count) in blocks.dirty_runs(self.page_size / self.block) {
            let (at, len) = (frame + first * self.block, count * self.block);
            self.uffd.protect(at as *mut u8, len);
            self.job.send(
                home.server as usize,
                Request::Put { at: self.home_address(home) + (at - frame) as u64, len: len as u64 },
            );
            // SAFETY: write-protected, the blocks stay unchanged until the send is finished.
            sends.push(unsafe { self.job.start_send_data(home.server as usize, at as *const u8, len) });
            Counters::add(&self.counters.bytes_written_back, len as u64);
        }
        for send in &mut sends {
            self.job.finish(send);
        }
        // SAFETY: the blocks' data is on the server now; the page is DLM memory.
        unsafe { sys::discard(span.ptr(), span.len) };
        blocks.count * self.block
    }

    /// Write-protects a dirty page and starts sending it home; it is clean once the send
    /// finishes.
    fn send_home(&mut self, index: usize) -> Transfer {
        let span = self.span(index);
        self.uffd.protect(span.ptr(), span.len);
        // SAFETY: the page is write-protected and stays mapped until the send is finished
        // (eviction and writers' faults finish it first), so its bytes are stable.
        unsafe { self.start_put(index, span.ptr(), span.len) }
    }

    /// Starts sending page `index`'s data, `len` bytes at `data`, to its home (given one now
    /// if it has none).
    ///
    /// # Safety
    /// `[data, data+len)` must stay unchanged until the send is finished.
    unsafe fn start_put(&mut self, index: usize, data: *const u8, len: usize) -> Transfer {
        let home = match self.pages[index].home() {
            Some(home) => home,
            None => self.assign_home(index),
        };
        let at = self.home_address(home) + self.span(index).offset as u64;
        self.job.send(home.server as usize, Request::Put { at, len: len as u64 });
        // SAFETY: the caller keeps the data stable until the send is finished.
        let send = unsafe { self.job.start_send_data(home.server as usize, data, len) };
        self.pages[index].set_home(Some(home));
        Counters::add(&self.counters.bytes_written_back, len as u64);
        send
    }

    /// Sends the next dirty pages in eviction order home ahead of time.
    fn clean_ahead(&mut self) {
        for position in 0..CLEAN_AHEAD.min(self.resident.len().saturating_sub(1)) {
            let index = self.resident[position] as usize;
            if self.pages[index].state != State::Dirty || !self.can_evict(index) {
                continue;
            }
            let send = self.send_home(index);
            self.pages[index].state = State::Cleaning;
            self.cleanings.push_back((index as u32, send));
        }
    }

    /// Completes, without waiting, the transfers that have finished: cleaned pages become
    /// clean, slots of sent pages become free.
    fn reap_transfers(&mut self) {
        while let Some((index, send)) = self.cleanings.front_mut() {
            if !self.job.finished(send) {
                break;
            }
            self.pages[*index as usize].state = State::Clean;
            self.cleanings.pop_front();
        }
        while let Some((slot, send)) = self.outgoing.front_mut() {
            if !self.job.finished(send) {
                break;
            }
            self.staging.release(*slot, true);
            self.outgoing.pop_front();
        }
    }

    /// Whether data is on its way (so MPI must be kept progressing).
    fn in_flight(&self) -> bool {
        !self.outgoing.is_empty() || !self.cleanings.is_empty() || self.read_aheads.iter().any(|a| !a.arrived)
    }

    /// Lets MPI move the data of transfers in flight while no fault waits.
    fn progress(&mut self) {
        self.reap_transfers();
        let job = &self.job;
        if let Some(ahead) = self.read_aheads.iter_mut().find(|a| !a.arrived) {
            ahead.arrived = job.finished(&mut ahead.transfer);
        }
    }

    /// Waits for every transfer in flight (before shutdown).
    fn drain_transfers(&mut self) {
        self.finish_cleanings(|_| true);
        self.drop_read_aheads(|_, _| true);
        while let Some((slot, mut send)) = self.outgoing.pop_front() {
            self.job.finish(&mut send);
            self.staging.release(slot, true);
        }
    }

    /// Waits for the sends of the pages `which` selects.
    fn finish_cleanings(&mut self, which: impl Fn(usize) -> bool) {
        let (job, pages) = (&self.job, &mut self.pages);
        self.cleanings.retain_mut(|(index, send)| {
            if !which(*index as usize) {
                return true;
            }
            job.finish(send);
            pages[*index as usize].state = State::Clean;
            false
        });
    }

    /// Finds a server slot for `index`: a free one, striping across servers, or else one taken
    /// over from a wholly resident page.
    fn assign_home(&mut self, index: usize) -> Home {
        let servers = self.pools.len();
        for step in 0..servers {
            let server = (self.next_server + step) % servers;
            if let Some(slot) = self.pools[server].take() {
                self.next_server = (server + 1) % servers;
                return Home { server: server as u16, slot };
            }
        }
        let donor = self.resident.iter().map(|&i| i as usize).find(|&i| i != index && self.can_donate(i));
        let donor = donor.or(self.donor_in_staging.filter(|&i| i != index && self.pages[i].home().is_some()));
        let Some(donor) = donor else {
            fatal("the memory servers are full although the allocation limit was respected");
        };
        let page = &mut self.pages[donor];
        let home = page.home().expect("donor has a home");
        page.set_home(None);
        if page.state == State::Clean {
            page.state = State::Dirty;
        }
        home
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
                self.pools[home.server as usize].free.push(home.slot);
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
