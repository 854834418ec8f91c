//! Holding pages resident for the kernel: in user-only mode (`sys::FaultMode::UserOnly`) the
//! kernel's own access to a missing or write-protected page fails with `EFAULT` instead of
//! faulting, so an I/O call on DLM memory first has the pager bring its pages in (writable if
//! the kernel will write them) and keep them until the call returns. Held pages are never
//! evicted or pre-cleaned; the runtime holds at most a share of the budget per call.

use super::page::State;
use super::Pager;
use crate::stats::Counters;
use crate::sys::fatal;

/// How the kernel will access held memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelAccess {
    /// It reads the memory (`write(2)` out of it).
    Reads,
    /// It writes the memory (`read(2)` into it).
    Writes,
}

impl Pager {
    /// Brings the pages of `[start, start+len)` that are DLM memory in and holds them there.
    pub(super) fn hold(&mut self, start: usize, len: usize, access: KernelAccess) {
        Counters::add(&self.counters.io_holds, 1);
        for index in self.pages_touching(start, len) {
            self.bring_in_whole(index, access);
            let page = &mut self.pages[index];
            page.held = page
                .held
                .checked_add(1)
                .unwrap_or_else(|| fatal(&format!("DLM page {index} is held by more than 255 I/O calls at once")));
        }
    }

    /// Lets the pages of `[start, start+len)` go again (one [`Pager::hold`] each).
    pub(super) fn release(&mut self, start: usize, len: usize) {
        for index in self.pages_touching(start, len) {
            let page = &mut self.pages[index];
            page.held = page.held.saturating_sub(1);
        }
    }

    /// The pages, in any segment, that hold bytes of `[start, start+len)`.
    fn pages_touching(&self, start: usize, len: usize) -> Vec<usize> {
        let end = start.saturating_add(len);
        let mut pages = Vec::new();
        let mut addr = start;
        while addr < end {
            match self.page_at(addr) {
                Some(index) => {
                    let span = self.span(index);
                    pages.push(index);
                    addr = span.start + span.len;
                }
                None => addr = self.next_segment_start(addr).unwrap_or(end),
            }
        }
        pages
    }

    /// Where the first segment above `addr` begins.
    fn next_segment_start(&self, addr: usize) -> Option<usize> {
        self.segments.iter().map(|s| s.base).filter(|&base| base > addr).min()
    }

    /// Makes page `index` wholly resident; writable (and dirty) if the kernel will write it.
    fn bring_in_whole(&mut self, index: usize, access: KernelAccess) {
        let write = access == KernelAccess::Writes;
        match self.pages[index].state {
            State::Absent | State::Stashed | State::Fetching => self.page_in(index, write),
            State::Partial => self.complete_partial(index, write),
            State::Clean | State::Dirty | State::Cleaning => {}
        }
        if write {
            if self.pages[index].state == State::Cleaning {
                self.finish_cleanings(|i| i == index);
            }
            // Blocks installed by earlier reads may still be write-protected.
            let span = self.span(index);
            self.staging.unprotect(span.ptr(), span.len);
            let page = &mut self.pages[index];
            page.state = State::Dirty;
            page.written = true;
        }
    }
}
