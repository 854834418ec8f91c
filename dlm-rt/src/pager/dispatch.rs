//! A fault's first steps: which page it is on, what that page's state calls for (a write to a
//! write-protected page makes it dirty; a missing page or block is brought by the granularity
//! rule: whole for streams and dense use, one block for an isolated fault), then `fetch`.

use super::mailbox::Advice;
use super::page::State;
use super::streams::{Edge, Run};
use super::Pager;
use crate::stats::Counters;
use crate::sys::{fatal, Fault};
use std::time::Instant;

impl Pager {
    pub(super) fn serve(&mut self, fault: Fault) {
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
                self.staging.unprotect(span.ptr(), span.len);
                self.pages[index].state = State::Dirty;
            }
            State::Partial => {
                let block = self.block_of(addr);
                let blocks = self.partial.get_mut(&(index as u32)).expect("partial pages have blocks");
                blocks.mark_dirty((addr - span.frame()) / self.block);
                self.staging.unprotect(block as *mut u8, self.block);
            }
            // Evicted while the writer waited: let it retry and take a missing fault.
            State::Absent | State::Stashed | State::Fetching => {
                self.staging.wake(span.ptr(), span.len);
                return;
            }
        }
        self.pages[index].written = true;
        self.note_used(index);
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

    /// Feeds a missing fault to stream detection (past the resident pages before it) and
    /// returns the confirmed stream it continues.
    fn observe_stream(&mut self, index: usize, addr: usize) -> Option<Run> {
        let edge = self.edge(index, addr);
        // Only the pages between the nearest stream and this fault need be resident.
        let reach = match (edge, self.streams.nearest_gap(index, edge)) {
            (Edge::Start, Some(gap)) if gap > 0 => self.resident_run(index, 1, gap),
            (Edge::End, Some(gap)) if gap > 0 => self.resident_run(index, -1, gap),
            _ => 0,
        };
        let run = self.streams.observe(index, edge, reach)?;
        self.note_stream(index, run.direction, run.passed);
        Some(run)
    }

    pub(super) fn block_of(&self, addr: usize) -> usize {
        addr - addr % self.block
    }

    /// A read or write of a missing page or block: bring what the access pattern calls for.
    fn serve_missing(&mut self, index: usize, addr: usize, write: bool) {
        let installed_before = self.installed_bytes;
        #[cfg(feature = "bench")]
        self.trace.record(index);
        self.note_missing(index);
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
            State::Clean | State::Dirty | State::Cleaning => self.staging.wake(span.ptr(), span.len),
            State::Partial => {
                let block = (addr - span.frame()) / self.block;
                if self.partial[&(index as u32)].is_present(block) {
                    self.staging.wake(self.block_of(addr) as *mut u8, self.block);
                } else if self.completes_partial(advice, index, addr) {
                    self.complete_partial(index, write);
                    if let Some(run) = self.observe_stream(index, addr) {
                        self.after_sequential_fault(index, run);
                    }
                } else {
                    self.fetch_block(index, addr, write);
                }
            }
            State::Absent | State::Stashed | State::Fetching => {
                let advised = Run { direction: 1, steps: u32::MAX, passed: 0 };
                let run = match advice {
                    Advice::Random => None,
                    Advice::Sequential | Advice::WillNeed => Some(self.observe_stream(index, addr).unwrap_or(advised)),
                    Advice::Normal | Advice::DontNeed => self.observe_stream(index, addr),
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
}
