//! Making room: eviction in [`super::replace`]'s order, sending dirty data home (pre-cleaning,
//! write-back from staging slots without waiting), server slots for pages that have none, and
//! MPI progress.

use super::page::{Home, State};
use super::{Pager, Span, CLEAN_AHEAD};
use crate::stats::Counters;
use crate::sys::{self, fatal};
use crate::transport::{Request, Transfer};

/// The page a fault is bringing in while room is made for it: it is never evicted itself, and
/// once its data is local or waits in a staging slot, it may give its server slot to a victim
/// that has none when every slot is taken (see [`Pager::assign_home`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Incoming {
    /// Its data is not here yet (a block about to be fetched, or a page with no data).
    Unfetched(usize),
    /// Its data is local or in a staging slot: its server slot may go to a victim.
    Staged(usize),
}

impl Incoming {
    fn index(self) -> usize {
        match self {
            Incoming::Unfetched(index) | Incoming::Staged(index) => index,
        }
    }
}

impl Pager {
    /// Makes room for `bytes` more resident bytes, evicting pages in replacement order but the
    /// incoming one, and passing over pages that cannot be evicted now (held, or dirty without a
    /// home while no server slot can be found for them).
    pub(super) fn make_room(&mut self, bytes: usize, incoming: Incoming) {
        while self.resident_bytes + bytes > self.resident_budget && !self.resident.is_empty() {
            let evictable = |p: &usize| {
                let index = self.resident[*p] as usize;
                index != incoming.index() && self.can_evict(index, Some(incoming))
            };
            let Some(position) = self.eviction_order().find(evictable) else {
                if self.resident.iter().any(|&i| self.pages[i as usize].held > 0) {
                    // I/O calls hold the rest: exceed the budget until they return.
                    break;
                }
                fatal("no resident DLM page can be evicted: the memory servers are full");
            };
            let victim = self.resident.remove(position).expect("the order's positions are in the queue");
            self.evict(victim as usize, Some(incoming));
        }
    }

    /// Whether `bytes` more fit, or some resident page but the incoming one can be evicted to
    /// make room without the incoming page giving its own server slot away.
    pub(super) fn room_without_donor(&self, bytes: usize, incoming: Incoming) -> bool {
        let keep = incoming.index();
        self.resident_bytes + bytes <= self.resident_budget
            || self.resident.iter().any(|&i| i as usize != keep && self.can_evict(i as usize, Some(incoming)))
    }

    /// Whether evicting `index` now is possible: not while an I/O call holds it, and it needs a
    /// server slot only if it is dirty and has none (the incoming page may give its own).
    pub(super) fn can_evict(&self, index: usize, incoming: Option<Incoming>) -> bool {
        let page = self.pages[index];
        if page.held > 0 {
            return false;
        }
        page.home().is_some()
            || page.state == State::Clean
            || self.slots.has_free()
            || self.staged_donor(index, incoming).is_some()
            || self.resident.iter().any(|&i| i as usize != index && self.can_donate(i as usize))
    }

    /// The incoming page, if its data is staged, it is not `index` itself and it still has a
    /// server slot to give to `index`.
    fn staged_donor(&self, index: usize, incoming: Option<Incoming>) -> Option<usize> {
        match incoming {
            Some(Incoming::Staged(donor)) if donor != index && self.pages[donor].home().is_some() => Some(donor),
            _ => None,
        }
    }

    /// Whether page `index` can give its server slot away (its data stays local, dirty).
    pub(super) fn can_donate(&self, index: usize) -> bool {
        let page = self.pages[index];
        page.home().is_some() && matches!(page.state, State::Clean | State::Dirty)
    }

    /// Evicts resident page `index` (see [`Incoming`] for `incoming`).
    pub(super) fn evict(&mut self, index: usize, incoming: Option<Incoming>) {
        let span = self.span(index);
        let bytes = match self.pages[index].state {
            State::Partial => self.evict_blocks(index, span),
            State::Cleaning | State::Clean | State::Dirty => {
                if self.pages[index].state == State::Cleaning {
                    self.finish_cleanings(|i| i == index);
                }
                self.evict_whole(index, span, incoming);
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
    pub(super) fn evict_whole(&mut self, index: usize, span: Span, incoming: Option<Incoming>) {
        let page = self.pages[index];
        let dirty = page.state == State::Dirty;
        let movable = !self.staging.huge() || page.huge;
        if movable && self.staging.free() == 0 {
            // Make a slot free so the page can be moved out rather than sent in place.
            let slot = self.free_slot();
            self.staging.release(slot, true);
        }
        // SAFETY: the page is resident and leaves the DLM range here.
        let moved_out = movable.then(|| unsafe { self.staging.move_out(span.ptr(), span.offset, span.len) });
        match moved_out.flatten() {
            Some(slot) if dirty => {
                // SAFETY: moved out of the program's reach, the slot cannot change until released.
                let send =
                    unsafe { self.start_put(index, self.staging.ptr(slot).add(span.offset), span.len, incoming) };
                self.outgoing.push_back((slot, vec![send]));
            }
            Some(slot) => self.staging.release(slot, true),
            None => {
                if dirty {
                    self.copy_out_and_send(index, span, incoming);
                }
                // SAFETY: the page is DLM memory whose data is on its way home from a staging
                // slot (or on its server already).
                unsafe { sys::discard(span.ptr(), span.len) };
            }
        }
    }

    /// Evicts a partial page: its written blocks go home under one request, copied out first so
    /// that the pager does not wait for the sends, then its blocks are dropped. Returns the
    /// bytes it held.
    pub(super) fn evict_blocks(&mut self, index: usize, span: Span) -> usize {
        let blocks = self.partial.remove(&(index as u32)).expect("partial pages have blocks");
        let runs = blocks.dirty_runs(self.page_size / self.block);
        if !runs.is_empty() {
            self.write_back_blocks(index, span, &runs);
        }
        // SAFETY: the written blocks' data is on its way home from a staging slot; the page is
        // DLM memory.
        unsafe { sys::discard(span.ptr(), span.len) };
        blocks.count * self.block
    }

    /// Copies the written blocks `runs` (first block, count) of partial page `index` packed into
    /// a staging slot and starts sending them home as one `PutRuns`; the slot is released when
    /// the sends finish. The page is write-protected first, so that a write from another
    /// thread between the copy and the drop waits and retries instead of being lost.
    fn write_back_blocks(&mut self, index: usize, span: Span, runs: &[(usize, usize)]) {
        let home = self.pages[index].home().expect("partial pages have a home");
        self.staging.protect(span.ptr(), span.len);
        let slot = self.free_slot();
        let packed = self.staging.ptr(slot);
        let mut list = Vec::with_capacity(runs.len());
        let mut len = 0;
        for &(first, count) in runs {
            let (offset, bytes) = (first * self.block, count * self.block);
            // SAFETY: the run lies in the page's frame and is installed; the slot is a page long
            // and the runs together are at most a page.
            unsafe { std::ptr::copy_nonoverlapping((span.frame() + offset) as *const u8, packed.add(len), bytes) };
            list.push([offset as u64, bytes as u64]);
            len += bytes;
        }
        // SAFETY: the slot is held until the send is finished (`outgoing`).
        let sends = unsafe { self.job.start_put_runs(home.server as usize, self.home_address(home), &list, packed) };
        self.outgoing.push_back((slot, sends));
        Counters::add(&self.counters.bytes_written_back, len as u64);
    }

    /// Copies dirty page `index`, which is not moved out, into a staging slot and starts sending
    /// it home from there, so that the pager need not wait for the send; the slot is released
    /// when it finishes. Write-protected first: a writer waits until the page is dropped.
    fn copy_out_and_send(&mut self, index: usize, span: Span, incoming: Option<Incoming>) {
        self.staging.protect(span.ptr(), span.len);
        let slot = self.free_slot();
        // SAFETY: the slot is ours and a page long; the span is resident and lies at its offset.
        let copy = unsafe { self.staging.ptr(slot).add(span.offset) };
        // SAFETY: as above; the page is resident and write-protected.
        unsafe { std::ptr::copy_nonoverlapping(span.ptr(), copy, span.len) };
        // SAFETY: the slot is held until the send is finished (`outgoing`).
        let send = unsafe { self.start_put(index, copy, span.len, incoming) };
        self.outgoing.push_back((slot, vec![send]));
    }

    /// Write-protects a dirty page and starts sending it home; it is clean once the send
    /// finishes.
    pub(super) fn send_home(&mut self, index: usize, incoming: Option<Incoming>) -> Transfer {
        let span = self.span(index);
        self.staging.protect(span.ptr(), span.len);
        // SAFETY: the page is write-protected and stays mapped until the send is finished
        // (eviction and writers' faults finish it first), so its bytes are stable.
        unsafe { self.start_put(index, span.ptr(), span.len, incoming) }
    }

    /// Starts sending page `index`'s data, `len` bytes at `data`, to its home (given one now
    /// if it has none).
    ///
    /// # Safety
    /// `[data, data+len)` must stay unchanged until the send is finished.
    pub(super) unsafe fn start_put(
        &mut self,
        index: usize,
        data: *const u8,
        len: usize,
        incoming: Option<Incoming>,
    ) -> Transfer {
        let home = match self.pages[index].home() {
            Some(home) => home,
            None => self.assign_home(index, incoming),
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
    pub(super) fn clean_ahead(&mut self) {
        let newest = self.resident.len().saturating_sub(1);
        let next: Vec<usize> = self.eviction_order().filter(|&p| p != newest).take(CLEAN_AHEAD).collect();
        for position in next {
            let index = self.resident[position] as usize;
            if self.pages[index].state != State::Dirty || !self.can_evict(index, None) {
                continue;
            }
            let send = self.send_home(index, None);
            self.pages[index].state = State::Cleaning;
            self.cleanings.push_back((index as u32, send));
        }
    }

    /// Completes, without waiting, the transfers that have finished: cleaned pages become
    /// clean, slots of sent pages become free.
    pub(super) fn reap_transfers(&mut self) {
        while let Some((index, send)) = self.cleanings.front_mut() {
            if !self.job.finished(send) {
                break;
            }
            self.pages[*index as usize].state = State::Clean;
            self.cleanings.pop_front();
        }
        while let Some((slot, sends)) = self.outgoing.front_mut() {
            if !self.job.all_finished(sends) {
                break;
            }
            self.staging.release(*slot, true);
            self.outgoing.pop_front();
        }
    }

    /// Whether data is on its way (so MPI must be kept progressing).
    pub(super) fn in_flight(&self) -> bool {
        !self.outgoing.is_empty() || !self.cleanings.is_empty() || self.read_aheads.iter().any(|a| !a.arrived)
    }

    /// Lets MPI move the data of transfers in flight while no fault waits.
    pub(super) fn progress(&mut self) {
        self.reap_transfers();
        let job = &self.job;
        if let Some(ahead) = self.read_aheads.iter_mut().find(|a| !a.arrived) {
            ahead.arrived = job.finished(&mut ahead.transfer);
        }
    }

    /// Waits for every transfer in flight (before shutdown).
    pub(super) fn drain_transfers(&mut self) {
        self.finish_cleanings(|_| true);
        self.drop_read_aheads(|_, _| true);
        while let Some((slot, mut sends)) = self.outgoing.pop_front() {
            self.job.finish_all(&mut sends);
            self.staging.release(slot, true);
        }
    }

    /// Waits for the sends of the pages `which` selects.
    pub(super) fn finish_cleanings(&mut self, which: impl Fn(usize) -> bool) {
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

    /// Finds a server slot for `index`: a free one on the server that is least full for its
    /// capacity (`ServerSlots::take`), or else one taken over from a wholly resident page or
    /// from the staged incoming page.
    pub(super) fn assign_home(&mut self, index: usize, incoming: Option<Incoming>) -> Home {
        if let Some((server, slot)) = self.slots.take() {
            return Home { server: server as u16, slot };
        }
        let donor = self.resident.iter().map(|&i| i as usize).find(|&i| i != index && self.can_donate(i));
        let donor = donor.or(self.staged_donor(index, incoming));
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
}
