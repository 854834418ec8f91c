//! The pager thread: serves the program's page faults on the DLM range from the memory servers
//! and keeps the resident DLM pages within the local budget.
//!
//! Page states (one [`Page`] entry of 16 bytes per DLM page):
//! - not resident, no home: never written (or freed); a fault fills it with zeros locally.
//! - not resident, home: its data is in `home` on a server; a fault fetches it.
//! - resident, clean: mapped write-protected; eviction just drops it (its home, if any, is
//!   current).
//! - resident, dirty: mapped writable; eviction sends it home and drops it (moved out to a
//!   staging slot first where pages are moved, else write-protected while it is sent).
//! - resident, cleaning: write-protected while a copy is on its way home; it becomes clean when
//!   the send finishes. A writer's fault waits for the send first.
//!
//! Write hint: a page seen written in its last residency is mapped writable (and counted dirty)
//! even on a read fault, which saves the write-protect fault that a read-modify-write of it
//! would take. Whether such a page is written is not seen, so it is sent home when evicted and
//! its next residency starts write-protected again: a page that stopped being written (data
//! that was initialized and is now only read) costs one extra write-back before it is known.
//!
//! Pre-cleaning: after each fault, the next [`CLEAN_AHEAD`] pages in eviction order that are
//! dirty start their trip home, so the server receives them while the program computes and the
//! pager serves the next faults; when their turn comes they are clean and dropped at once. It
//! changes neither which pages are resident nor how much memory they take.
//!
//! Read-ahead: a fault on the page right after the previous fault's page starts fetching the
//! next [`READ_AHEAD`] pages of that array into spare buffers (a Get each, received without
//! waiting), so the server sends them while the pager installs this one and the program
//! computes. Their fault then only installs the data.
//!
//! Staging (see [`crate::staging`]): fetched pages are received into staging slots and moved
//! into place, evicted pages are moved out into them, so that physical pages are recycled
//! instead of allocated, copied and freed on every fault.
//!
//! Slots on the servers are handed out on first eviction and kept while the page lives, so a
//! page that is fetched again and not written can be dropped without traffic. When every slot
//! is taken, a resident page's slot is taken over and that page becomes dirty (its only copy is
//! then local); the heap's limit (budget + capacity) guarantees such a page exists.
//!
//! Besides the DLM range of the heap, the pager serves *static segments*: static arrays of a C
//! program that dlmcc marked, adopted in place at startup. A segment's pages start at the
//! array's first byte; its last page may be shorter. Pages of an initialized array start
//! *stashed*: their first fault installs the original data (moved aside, not copied) and makes
//! the page dirty, since no server holds it yet.

use crate::staging::{Placement, Slot, Staging};
use crate::stats::Counters;
use crate::sys::{self, fatal, poll_readable, EventFd, Fault, FaultFd, Mapping};
use crate::transport::{Job, Request, Transfer};
use std::collections::VecDeque;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where a page's data lives on the servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Home {
    server: u16,
    slot: u32,
}

/// A page's entry; its home is stored flat (slot, server, `homed`) to keep the entry at 16 bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Page {
    slot: u32,
    server: u16,
    homed: bool,
    resident: bool,
    dirty: bool,
    stashed: bool,
    cleaning: bool,
    /// Written since it was last installed (seen by a write or write-protect fault).
    written: bool,
    /// Seen written in its last residency: a read fault maps it writable (see the module doc).
    write_hint: bool,
}

impl Page {
    fn home(&self) -> Option<Home> {
        self.homed.then_some(Home { server: self.server, slot: self.slot })
    }

    fn set_home(&mut self, home: Option<Home>) {
        let Home { server, slot } = home.unwrap_or(Home { server: 0, slot: 0 });
        (self.server, self.slot, self.homed) = (server, slot, home.is_some());
    }
}

/// How many of the next pages to evict are sent home ahead of time.
const CLEAN_AHEAD: usize = 8;

/// How many pages a sequential stream fetches ahead.
const READ_AHEAD: usize = 2;

/// Staging slots: the read-aheads, the page being fetched, the page being evicted, and spares
/// so that a slot with allocated pages is usually free.
pub const STAGING_SLOTS: usize = READ_AHEAD + 6;

/// A page being fetched before its fault.
struct ReadAhead {
    index: u32,
    slot: Slot,
    transfer: Transfer,
}

// docs/PERFORMANCE.md quotes the pager's metadata per page.
const _: () = assert!(size_of::<Page>() == 16);

/// A run of consecutive pages at one address range: the heap's DLM range, or a static array.
struct Segment {
    base: usize,
    len: usize,
    /// Index of its first page in `Pager::pages`.
    first: usize,
    /// The initial contents of a static array, page for page.
    stash: Option<Mapping>,
}

/// The free slots of one server.
struct SlotPool {
    free: Vec<u32>,
    next_unused: u32,
    capacity: u32,
}

impl SlotPool {
    fn take(&mut self) -> Option<u32> {
        self.free.pop().or_else(|| {
            (self.next_unused < self.capacity).then(|| {
                self.next_unused += 1;
                self.next_unused - 1
            })
        })
    }
}

/// Work the program's threads hand to the pager thread.
pub enum Command {
    /// Forget the pages of `[offset, offset+len)` of the DLM range, locally and on the servers.
    Free { offset: usize, len: usize },
    /// Serve `[start, start+len)`, a page-aligned static array, as DLM memory from now on; with
    /// `keep_contents` its current data is kept (else it reads as zeros).
    AddStatic { start: usize, len: usize, keep_contents: bool },
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

pub struct Pager {
    region: Arc<Mapping>,
    /// The DLM range first, then static arrays in the order they were added.
    segments: Vec<Segment>,
    uffd: FaultFd,
    job: Job,
    mailbox: Arc<Mailbox>,
    counters: Arc<Counters>,
    page_size: usize,
    pages: Vec<Page>,
    /// Resident pages, oldest first (FIFO replacement).
    resident: VecDeque<u32>,
    /// Resident pages whose copy is on its way home, oldest first.
    cleanings: VecDeque<(u32, Transfer)>,
    /// Pages being fetched ahead, oldest first.
    read_aheads: VecDeque<ReadAhead>,
    /// Where fetched pages are received and evicted pages are moved to.
    staging: Staging,
    /// The page of the last missing fault, to see sequential streams.
    last_fault: usize,
    /// The budget in pages.
    max_resident: usize,
    pools: Vec<SlotPool>,
    next_server: usize,
    zeros: Vec<u8>,
}

/// The sizes the pager works within.
pub struct Limits {
    pub page_size: usize,
    /// The local budget in pages.
    pub max_resident: usize,
    /// Each server's capacity in pages.
    pub capacities: Vec<u32>,
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
        let Limits { page_size, max_resident, capacities } = limits;
        let pools =
            capacities.iter().map(|&capacity| SlotPool { free: Vec::new(), next_unused: 0, capacity }).collect();
        let heap = Segment { base: region.base() as usize, len: region.len(), first: 0, stash: None };
        Pager {
            pages: vec![Page::default(); region.len() / page_size],
            segments: vec![heap],
            region,
            uffd,
            job,
            mailbox,
            counters,
            page_size,
            resident: VecDeque::with_capacity(max_resident + 1),
            cleanings: VecDeque::with_capacity(CLEAN_AHEAD),
            read_aheads: VecDeque::with_capacity(READ_AHEAD),
            staging,
            last_fault: usize::MAX,
            max_resident,
            pools,
            next_server: 0,
            zeros: vec![0; page_size],
        }
    }

    /// Serves faults and commands until [`Command::Shutdown`]; returns the job for finalization.
    pub fn run(mut self) -> Job {
        let mut faults = Vec::with_capacity(64);
        // Besides faults and commands, wake up when a memory server on this host exits.
        let mut fds = vec![self.uffd.raw_fd(), self.mailbox.doorbell.raw_fd()];
        fds.extend(self.job.watched_fds());
        loop {
            let ready = poll_readable(fds.iter().copied(), -1);
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
            if ready & 2 != 0 {
                for (command, done) in self.mailbox.take() {
                    let answer = match command {
                        Command::Free { offset, len } => {
                            self.free(offset, len);
                            Ok(())
                        }
                        Command::AddStatic { start, len, keep_contents } => self.add_static(start, len, keep_contents),
                        Command::Shutdown => {
                            self.finish_cleanings(|_| true);
                            self.drop_read_aheads(|_| true);
                            self.job.shut_down_servers();
                            let _ = done.send(Ok(()));
                            return self.job;
                        }
                    };
                    let _ = done.send(answer);
                }
            }
        }
    }

    fn add_static(&mut self, start: usize, len: usize, keep_contents: bool) -> Result<(), String> {
        // SAFETY: the runtime hands over a page-aligned range inside one static array that the
        // program does not touch until this call returns.
        let stash = unsafe { sys::adopt_range(start as *mut u8, len, keep_contents) }
            .map_err(|e| format!("cannot remap it: {e}"))?;
        self.uffd.register_range(start as *mut u8, len).map_err(|e| format!("userfaultfd refused it: {e}"))?;
        let first = self.pages.len();
        let count = len.div_ceil(self.page_size);
        self.pages.extend(std::iter::repeat_n(Page { stashed: keep_contents, ..Page::default() }, count));
        self.segments.push(Segment { base: start, len, first, stash });
        Ok(())
    }

    fn segment_of_page(&self, index: usize) -> &Segment {
        let after = self.segments.partition_point(|s| s.first <= index);
        &self.segments[after - 1]
    }

    /// The page's address and length (only a static array's last page can be short).
    fn page_span(&self, index: usize) -> (*mut u8, usize) {
        let segment = self.segment_of_page(index);
        let offset = (index - segment.first) * self.page_size;
        ((segment.base + offset) as *mut u8, self.page_size.min(segment.len - offset))
    }

    fn page_at(&self, addr: usize) -> Option<usize> {
        let segment = self.segments.iter().find(|s| (s.base..s.base + s.len).contains(&addr))?;
        Some(segment.first + (addr - segment.base) / self.page_size)
    }

    fn serve(&mut self, fault: Fault) {
        let started = Instant::now();
        let Some(index) = self.page_at(fault.addr) else {
            fatal(&format!("page fault at {:#x} outside the DLM range", fault.addr));
        };
        let page = self.pages[index];
        let (ptr, len) = self.page_span(index);
        if fault.write_protected {
            if page.resident {
                if page.cleaning {
                    // The page is being read by its send: let that finish first.
                    self.finish_cleanings(|i| i == index);
                }
                self.uffd.unprotect(ptr, len);
                self.pages[index].dirty = true;
                self.pages[index].written = true;
            } else {
                // Evicted while the writer waited: let it retry and take a missing fault.
                self.uffd.wake(ptr, len);
            }
        } else if page.resident {
            // Another thread's fault on the same page was served first.
            self.uffd.wake(ptr, len);
        } else {
            self.page_in(index, ptr, len, fault.write);
        }
        Counters::add(&self.counters.faults, 1);
        Counters::add(&self.counters.wait_nanos, started.elapsed().as_nanos() as u64);
    }

    /// Installs page `index` (at `ptr`, `len` bytes) after making room for it.
    fn page_in(&mut self, index: usize, ptr: *mut u8, len: usize, write: bool) {
        self.reap_cleanings();
        while self.resident.len() >= self.max_resident {
            let victim = self.resident.pop_front().expect("max_resident is at least 1");
            self.evict(victim as usize);
        }
        // A read maps the page write-protected so that its first write is seen; a write maps it
        // writable at once and the page is dirty, and so does a read of a page with the hint.
        let write_protect = !(write || self.pages[index].write_hint);
        let mut dirty = !write_protect;
        let placement = match self.pages[index].home() {
            Some(home) => {
                let slot = self.take_read_ahead(index).unwrap_or_else(|| {
                    let (slot, mut transfer) = self.start_fetch(home);
                    self.job.finish(&mut transfer);
                    slot
                });
                Counters::add(&self.counters.bytes_fetched, len as u64);
                // SAFETY: the finished transfer wrote the whole slot; the page is DLM memory.
                unsafe { self.staging.install(&self.uffd, slot, ptr, len, write_protect) }
            }
            None if self.pages[index].stashed => {
                let segment = self.segment_of_page(index);
                let stash = segment.stash.as_ref().expect("stashed pages have a stash");
                dirty = true;
                // SAFETY: the page's offset in its segment is inside the equally long stash, and
                // the page lies in a registered range.
                let installed = unsafe {
                    self.uffd.install(stash.base().add(ptr as usize - segment.base), ptr, len, write_protect)
                };
                stash.discard(ptr as usize - segment.base, len);
                Placement::copied(installed)
            }
            None => {
                Counters::add(&self.counters.zero_fills, 1);
                match self.staging.take_filled() {
                    // SAFETY: the slot is ours and `len` long; the page is DLM memory.
                    Some(slot) => unsafe {
                        std::ptr::write_bytes(self.staging.ptr(slot), 0, len);
                        self.staging.install(&self.uffd, slot, ptr, len, write_protect)
                    },
                    None => {
                        // SAFETY: `zeros` is a page long; the page is DLM memory.
                        let installed = unsafe { self.uffd.install(self.zeros.as_ptr(), ptr, len, write_protect) };
                        Placement::copied(installed)
                    }
                }
            }
        };
        match placement {
            Placement::AlreadyMapped => fatal(&format!("DLM page {index} was partly mapped behind the pager's back")),
            Placement::Moved => Counters::add(&self.counters.pages_moved, 1),
            Placement::Copied => {}
        }
        let page = &mut self.pages[index];
        page.resident = true;
        page.dirty = dirty;
        page.stashed = false;
        page.written = write;
        self.resident.push_back(index as u32);
        self.counters.set_resident((self.resident.len() * self.page_size) as u64);
        if self.resident.len() >= self.max_resident {
            self.clean_ahead();
        }
        if index == self.last_fault.wrapping_add(1) {
            self.read_ahead(index);
        }
        self.last_fault = index;
    }

    /// Starts fetching the pages after `index` in its segment that live on a server.
    fn read_ahead(&mut self, index: usize) {
        let segment = self.segment_of_page(index);
        let end = segment.first + segment.len.div_ceil(self.page_size);
        for next in index + 1..end.min(index + 1 + READ_AHEAD) {
            let page = self.pages[next];
            if page.resident || self.read_aheads.iter().any(|r| r.index as usize == next) {
                continue;
            }
            let Some(home) = page.home() else { continue };
            if self.read_aheads.len() == READ_AHEAD {
                // A stream that stopped: its oldest read-ahead is dropped.
                let oldest = self.read_aheads[0].index as usize;
                self.drop_read_aheads(|i| i == oldest);
            }
            let (slot, transfer) = self.start_fetch(home);
            self.read_aheads.push_back(ReadAhead { index: next as u32, slot, transfer });
        }
    }

    /// Starts fetching the page at `home` into a staging slot; the slot is the caller's, and
    /// untouched until the transfer is finished.
    fn start_fetch(&mut self, home: Home) -> (Slot, Transfer) {
        let slot = self.staging.take().expect("read-aheads leave staging slots free");
        // SAFETY: the slot is a whole page long (a server always sends a whole slot, also for
        // a short page) and nothing touches it until the transfer is finished.
        let transfer = unsafe {
            self.job.start_get(home.server as usize, home.slot as u64, self.staging.ptr(slot), self.page_size)
        };
        (slot, transfer)
    }

    /// The slot holding `index` if it was fetched ahead (waiting for it to arrive).
    fn take_read_ahead(&mut self, index: usize) -> Option<Slot> {
        let position = self.read_aheads.iter().position(|r| r.index as usize == index)?;
        let mut ahead = self.read_aheads.remove(position).expect("position is in range");
        self.job.finish(&mut ahead.transfer);
        Some(ahead.slot)
    }

    /// Finishes and forgets the read-aheads of the pages `which` selects.
    fn drop_read_aheads(&mut self, which: impl Fn(usize) -> bool) {
        let (job, staging) = (&self.job, &mut self.staging);
        self.read_aheads.retain_mut(|ahead| {
            if !which(ahead.index as usize) {
                return true;
            }
            job.finish(&mut ahead.transfer);
            staging.release(ahead.slot, true);
            false
        });
    }

    fn evict(&mut self, index: usize) {
        let (ptr, len) = self.page_span(index);
        if self.pages[index].cleaning {
            self.finish_cleanings(|i| i == index);
        }
        let dirty = self.pages[index].dirty;
        // SAFETY: the page is resident and leaves the DLM range here.
        match unsafe { self.staging.move_out(&self.uffd, ptr, len) } {
            Some(slot) => {
                if dirty {
                    // SAFETY: moved out of the program's reach, the slot cannot change.
                    let mut send = unsafe { self.start_put(index, self.staging.ptr(slot), len) };
                    self.job.finish(&mut send);
                }
                self.staging.release(slot, true);
            }
            None => {
                if dirty {
                    // Writers now block until the page has been sent and dropped.
                    let mut send = self.send_home(index);
                    self.job.finish(&mut send);
                }
                // SAFETY: the page is DLM memory whose data is now on its server (or never written).
                unsafe { sys::discard(ptr, len) };
            }
        }
        let page = &mut self.pages[index];
        page.resident = false;
        page.dirty = false;
        page.write_hint = page.written;
        Counters::add(&self.counters.pages_evicted, 1);
        self.counters.set_resident((self.resident.len() * self.page_size) as u64);
    }

    /// Write-protects a dirty page and starts sending it home; it is clean once the send
    /// finishes.
    fn send_home(&mut self, index: usize) -> Transfer {
        let (ptr, len) = self.page_span(index);
        self.uffd.protect(ptr, len);
        // SAFETY: the page is write-protected and stays mapped until the send is finished
        // (eviction and writers' faults finish it first), so its bytes are stable.
        unsafe { self.start_put(index, ptr, len) }
    }

    /// Starts sending page `index`'s data, `len` bytes at `data`, to its home (given one now
    /// if it has none); the page is clean once the send finishes.
    ///
    /// # Safety
    /// `[data, data+len)` must stay unchanged until the send is finished.
    unsafe fn start_put(&mut self, index: usize, data: *const u8, len: usize) -> Transfer {
        let home = match self.pages[index].home() {
            Some(home) => home,
            None => self.assign_home(index),
        };
        self.job.send(home.server as usize, Request::Put { slot: home.slot as u64, count: 1 });
        // SAFETY: the caller keeps the data stable until the send is finished.
        let send = unsafe { self.job.start_send_data(home.server as usize, data, len) };
        let page = &mut self.pages[index];
        page.set_home(Some(home));
        page.dirty = false;
        Counters::add(&self.counters.bytes_written_back, len as u64);
        send
    }

    /// Sends the next dirty pages in eviction order home ahead of time (see the module doc).
    fn clean_ahead(&mut self) {
        for position in 0..CLEAN_AHEAD.min(self.resident.len().saturating_sub(1)) {
            let index = self.resident[position] as usize;
            if !self.pages[index].dirty || self.pages[index].cleaning {
                continue;
            }
            let send = self.send_home(index);
            self.pages[index].cleaning = true;
            self.cleanings.push_back((index as u32, send));
        }
    }

    /// Marks the pages whose send has finished clean, oldest first, without waiting.
    fn reap_cleanings(&mut self) {
        while let Some((index, send)) = self.cleanings.front_mut() {
            if !self.job.finished(send) {
                break;
            }
            self.pages[*index as usize].cleaning = false;
            self.cleanings.pop_front();
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
            pages[*index as usize].cleaning = false;
            false
        });
    }

    /// Finds a server slot for `index`: a free one, striping across servers, or else one taken
    /// over from a resident page.
    fn assign_home(&mut self, index: usize) -> Home {
        let servers = self.pools.len();
        for step in 0..servers {
            let server = (self.next_server + step) % servers;
            if let Some(slot) = self.pools[server].take() {
                self.next_server = (server + 1) % servers;
                return Home { server: server as u16, slot };
            }
        }
        let donor = self
            .resident
            .iter()
            .map(|&i| i as usize)
            .find(|&i| i != index && self.pages[i].homed && !self.pages[i].cleaning);
        let Some(donor) = donor else {
            fatal("the memory servers are full although the allocation limit was respected");
        };
        let page = &mut self.pages[donor];
        let home = page.home().expect("donor has a home");
        page.set_home(None);
        page.dirty = true;
        home
    }

    fn free(&mut self, offset: usize, len: usize) {
        let first = offset / self.page_size;
        let range = first..first + len / self.page_size;
        self.finish_cleanings(|i| range.contains(&i));
        self.drop_read_aheads(|i| range.contains(&i));
        for index in range.clone() {
            if let Some(home) = self.pages[index].home() {
                self.job.send(home.server as usize, Request::Free { slot: home.slot as u64, count: 1 });
                self.pools[home.server as usize].free.push(home.slot);
            }
            self.pages[index] = Page::default();
        }
        self.resident.retain(|&i| !range.contains(&(i as usize)));
        self.region.discard(offset, len);
        self.counters.set_resident((self.resident.len() * self.page_size) as u64);
    }
}
