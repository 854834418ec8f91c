//! The pager thread: serves the program's page faults on the DLM range from the memory servers
//! and keeps the resident DLM pages within the local budget.
//!
//! Page states (one [`Page`] entry of 12 bytes per DLM page):
//! - not resident, no home: never written (or freed); a fault fills it with zeros locally.
//! - not resident, home: its data is in `home` on a server; a fault fetches it.
//! - resident, clean: mapped write-protected; eviction just drops it (its home, if any, is current).
//! - resident, dirty: mapped writable; eviction write-protects it, sends it home, then drops it.
//!
//! Slots on the servers are handed out on first eviction and kept while the page lives, so a
//! page that is fetched again and not written can be dropped without traffic. When every slot
//! is taken, a resident page's slot is taken over and that page becomes dirty (its only copy is
//! then local); the heap's limit (budget + capacity) guarantees such a page exists.

use crate::stats::Counters;
use crate::sys::{fatal, poll_readable, EventFd, Fault, FaultFd, Mapping};
use crate::transport::{Job, Request};
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

#[derive(Debug, Clone, Copy, Default)]
struct Page {
    resident: bool,
    dirty: bool,
    home: Option<Home>,
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
    /// Forget the pages of `[offset, offset+len)`, locally and on the servers.
    Free { offset: usize, len: usize },
    /// Stop the servers and end the pager thread.
    Shutdown,
}

/// Where program threads post [`Command`]s; each call waits for the pager to finish it.
pub struct Mailbox {
    queue: Mutex<Vec<(Command, SyncSender<()>)>>,
    doorbell: EventFd,
}

impl Mailbox {
    pub fn new() -> std::io::Result<Self> {
        Ok(Mailbox { queue: Mutex::new(Vec::new()), doorbell: EventFd::new()? })
    }

    pub fn call(&self, command: Command) {
        let (done, wait) = sync_channel(1);
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).push((command, done));
        self.doorbell.notify();
        // An error means the pager thread is gone, which only happens at shutdown.
        let _ = wait.recv();
    }

    fn take(&self) -> Vec<(Command, SyncSender<()>)> {
        self.doorbell.drain();
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

pub struct Pager {
    region: Arc<Mapping>,
    uffd: FaultFd,
    job: Job,
    mailbox: Arc<Mailbox>,
    counters: Arc<Counters>,
    page_size: usize,
    pages: Vec<Page>,
    /// Resident pages, oldest first (FIFO replacement).
    resident: VecDeque<u32>,
    max_resident: usize,
    pools: Vec<SlotPool>,
    next_server: usize,
    zeros: Vec<u8>,
    bounce: Vec<u8>,
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
        limits: Limits,
    ) -> Self {
        let Limits { page_size, max_resident, capacities } = limits;
        let pools =
            capacities.iter().map(|&capacity| SlotPool { free: Vec::new(), next_unused: 0, capacity }).collect();
        Pager {
            pages: vec![Page::default(); region.len() / page_size],
            region,
            uffd,
            job,
            mailbox,
            counters,
            page_size,
            resident: VecDeque::with_capacity(max_resident + 1),
            max_resident,
            pools,
            next_server: 0,
            zeros: vec![0; page_size],
            bounce: vec![0; page_size],
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
                    match command {
                        Command::Free { offset, len } => self.free(offset, len),
                        Command::Shutdown => {
                            self.job.shut_down_servers();
                            let _ = done.send(());
                            return self.job;
                        }
                    }
                    let _ = done.send(());
                }
            }
        }
    }

    fn page_ptr(&self, index: usize) -> *mut u8 {
        // SAFETY: every index comes from an address inside the region.
        unsafe { self.region.base().add(index * self.page_size) }
    }

    fn serve(&mut self, fault: Fault) {
        let started = Instant::now();
        let Some(index) = fault.addr.checked_sub(self.region.base() as usize).map(|o| o / self.page_size) else {
            fatal(&format!("page fault at {:#x} outside the DLM range", fault.addr));
        };
        let page = self.pages[index];
        let ptr = self.page_ptr(index);
        if fault.write_protected {
            if page.resident {
                self.uffd.unprotect(ptr, self.page_size);
                self.pages[index].dirty = true;
            } else {
                // Evicted while the writer waited: let it retry and take a missing fault.
                self.uffd.wake(ptr, self.page_size);
            }
        } else if page.resident {
            // Another thread's fault on the same page was served first.
            self.uffd.wake(ptr, self.page_size);
        } else {
            self.page_in(index, fault.write);
        }
        Counters::add(&self.counters.faults, 1);
        Counters::add(&self.counters.wait_nanos, started.elapsed().as_nanos() as u64);
    }

    fn page_in(&mut self, index: usize, write: bool) {
        while self.resident.len() >= self.max_resident {
            let victim = self.resident.pop_front().expect("max_resident is at least 1");
            self.evict(victim as usize);
        }
        let src = match self.pages[index].home {
            Some(home) => {
                self.job.send(home.server as usize, Request::Get { slot: home.slot as u64, count: 1 });
                self.job.receive_data(home.server as usize, &mut self.bounce);
                Counters::add(&self.counters.bytes_fetched, self.page_size as u64);
                self.bounce.as_ptr()
            }
            None => {
                Counters::add(&self.counters.zero_fills, 1);
                self.zeros.as_ptr()
            }
        };
        // A read maps the page write-protected so that its first write is seen; a write maps it
        // writable at once and the page is dirty.
        // SAFETY: src is a page-sized buffer of ours; the page lies in the registered region.
        if !unsafe { self.uffd.install(src, self.page_ptr(index), self.page_size, !write) } {
            fatal(&format!("DLM page {index} was partly mapped behind the pager's back"));
        }
        let page = &mut self.pages[index];
        page.resident = true;
        page.dirty = write;
        self.resident.push_back(index as u32);
        self.counters.set_resident((self.resident.len() * self.page_size) as u64);
    }

    fn evict(&mut self, index: usize) {
        let ptr = self.page_ptr(index);
        if self.pages[index].dirty {
            // Writers now block until the page has been sent and dropped.
            self.uffd.protect(ptr, self.page_size);
            let home = match self.pages[index].home {
                Some(home) => home,
                None => self.assign_home(index),
            };
            self.job.send(home.server as usize, Request::Put { slot: home.slot as u64, count: 1 });
            // SAFETY: the page is resident and write-protected, so it is readable and stable.
            let data = unsafe { std::slice::from_raw_parts(ptr, self.page_size) };
            self.job.send_data(home.server as usize, data);
            self.pages[index].home = Some(home);
            Counters::add(&self.counters.bytes_written_back, self.page_size as u64);
        }
        self.region.discard(index * self.page_size, self.page_size);
        let page = &mut self.pages[index];
        page.resident = false;
        page.dirty = false;
        Counters::add(&self.counters.pages_evicted, 1);
        self.counters.set_resident((self.resident.len() * self.page_size) as u64);
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
        let donor = self.resident.iter().map(|&i| i as usize).find(|&i| i != index && self.pages[i].home.is_some());
        let Some(donor) = donor else {
            fatal("the memory servers are full although the allocation limit was respected");
        };
        let page = &mut self.pages[donor];
        page.dirty = true;
        page.home.take().expect("donor has a home")
    }

    fn free(&mut self, offset: usize, len: usize) {
        let first = offset / self.page_size;
        let range = first..first + len / self.page_size;
        for index in range.clone() {
            if let Some(home) = self.pages[index].home {
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
