//! Bringing pages in: the granularity rule (whole page or one block), streams' read-ahead,
//! the one install path for whole pages, and completing a partial page.

use super::evict::Incoming;
use super::page::{Blocks, Home, State};
use super::staging::{Placement, Slot};
use super::streams::{Edge, Run};
use super::{Pager, ReadAhead, Span, DENSE_FRACTION, READ_AHEAD_BYTES, RESERVED_SLOTS, STREAM_EDGE};
use crate::stats::Counters;
use crate::sys::fatal;
use crate::transport::Transfer;

impl Pager {
    /// Whether partial page `index` is being used densely enough that it would be wholly
    /// used before it is evicted, so bringing the rest at once saves the block faults.
    ///
    /// A page's blocks arrive at `count / age` per fault, and a page stays resident for about
    /// as many faults as it takes to bring the budget's worth of bytes at the recent bytes per
    /// fault (a block each while faults bring blocks; fewer faults once they bring whole pages,
    /// which keeps whole pages from feeding on themselves under random access). If that rate
    /// fills at least three quarters of the page within that lifetime, the working set (nearly)
    /// fits and whole pages pay;
    /// under random access over more data than the budget (rate × lifetime = the resident
    /// fraction of the page), blocks stay cheaper. The rate is trusted only after 1/32 of the
    /// page's blocks, about what one whole-page fetch costs in block faults (docs/PERFORMANCE.md).
    pub(super) fn is_dense(&self, index: usize) -> bool {
        let Some(blocks) = self.partial.get(&(index as u32)) else { return false };
        let per_page = self.page_size / self.block;
        let age = (self.faults - blocks.since).max(1) as usize;
        let lifetime = self.resident_budget / self.bytes_per_fault.max(self.block);
        blocks.count >= (per_page / DENSE_FRACTION).max(2) && 4 * blocks.count * lifetime >= 3 * per_page * age
    }

    /// Where in page `index` the fault at `addr` is, for stream detection.
    pub(super) fn edge(&self, index: usize, addr: usize) -> Edge {
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
    pub(super) fn continues_last_fault(&self, addr: usize) -> bool {
        self.block_of(addr).abs_diff(self.last_missing) == self.block
    }

    /// Starts fetching the next pages of a stream through `index` ahead of their faults: one
    /// page more for every step the stream has taken, up to [`READ_AHEAD_BYTES`] per server
    /// host (a stream seen by chance under random access costs little; a long one is fetched
    /// far ahead).
    pub(super) fn after_sequential_fault(&mut self, index: usize, run: Run) {
        let pages = self.segment_pages(index);
        let most = READ_AHEAD_BYTES * self.server_hosts.max(1) / self.page_size;
        let depth = most.max(1).min(run.steps as usize - 1);
        self.drop_stale_read_aheads();
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
    /// false if no staging slot can be spared (callers drop stale read-aheads first).
    pub(super) fn read_ahead(&mut self, index: usize) -> bool {
        let page = self.pages[index];
        let Some(home) = page.home().filter(|_| page.state == State::Absent) else { return true };
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
    pub(super) fn drop_stale_read_aheads(&mut self) {
        let horizon = 4 * self.read_aheads.len().max(8) as u64;
        let faults = self.faults;
        self.drop_read_aheads(|_, ahead| faults - ahead.started_at > horizon);
    }

    /// Starts fetching the page at `home` into a staging slot; the slot is the caller's, and
    /// untouched until the transfer is finished.
    pub(super) fn start_fetch(&mut self, home: Home, span: Span) -> (Slot, Transfer) {
        let slot = self.free_slot();
        let at = self.home_address(home) + span.offset as u64;
        // SAFETY: the slot is a whole page long and nothing touches it until the transfer is
        // finished; the span's offset and length lie inside it.
        let transfer =
            unsafe { self.job.start_get(home.server as usize, at, self.staging.ptr(slot).add(span.offset), span.len) };
        (slot, transfer)
    }

    pub(super) fn home_address(&self, home: Home) -> u64 {
        home.slot as u64 * self.page_size as u64
    }

    /// A free staging slot, waiting for write-backs or dropping the oldest read-ahead if none is.
    pub(super) fn free_slot(&mut self) -> Slot {
        loop {
            if let Some(slot) = self.staging.take() {
                return slot;
            }
            if let Some((slot, mut sends)) = self.outgoing.pop_front() {
                self.job.finish_all(&mut sends);
                self.staging.release(slot, true);
            } else if let Some(oldest) = self.read_aheads.front().map(|a| a.index) {
                self.drop_read_aheads(|i, _| i == oldest as usize);
            } else {
                fatal("every staging slot is held");
            }
        }
    }

    /// The slot holding `index` if it was fetched ahead (waiting for it to arrive).
    pub(super) fn take_read_ahead(&mut self, index: usize) -> Option<Slot> {
        let position = self.read_aheads.iter().position(|r| r.index as usize == index)?;
        let mut ahead = self.read_aheads.remove(position).expect("position is in range");
        self.job.finish(&mut ahead.transfer);
        Some(ahead.slot)
    }

    /// Finishes and forgets the read-aheads that `which` selects; their pages are absent again.
    pub(super) fn drop_read_aheads(&mut self, which: impl Fn(usize, &ReadAhead) -> bool) {
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

    /// Installs page `index` whole (from a read-ahead, its home, its stash or zeros).
    pub(super) fn page_in(&mut self, index: usize, write: bool) {
        let span = self.span(index);
        // Fetched before room is made: with every server slot taken, eviction may then give
        // this page's slot to the victim (its data is safe in the staging slot).
        let fetched = self.fetch_whole(index, span);
        self.make_room(span.len, if fetched.is_some() { Incoming::Staged(index) } else { Incoming::Unfetched(index) });
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
                unsafe { self.staging.install(slot, (span.offset, span.len), span.ptr(), write_protect) }
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
    pub(super) fn fetch_whole(&mut self, index: usize, span: Span) -> Option<Slot> {
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

    pub(super) fn install_stashed(&mut self, index: usize, span: Span, write_protect: bool) -> Placement {
        let segment = self.segment_of_page(index);
        let stash = segment.stash.as_ref().expect("stashed pages have a stash");
        let offset = span.start - segment.base;
        // SAFETY: the page's offset in its segment is inside the equally long stash, and the page
        // lies in a registered range.
        let placement = unsafe { self.staging.copy_in(stash.base().add(offset), span.ptr(), span.len, write_protect) };
        stash.discard(offset, span.len);
        placement
    }

    pub(super) fn install_zeros(&mut self, span: Span, write_protect: bool) -> Placement {
        Counters::add(&self.counters.zero_fills, 1);
        match self.staging.take_for_zeros() {
            // SAFETY: the slot is ours and a page long; the page is DLM memory.
            Some(slot) => unsafe {
                std::ptr::write_bytes(self.staging.ptr(slot).add(span.offset), 0, span.len);
                self.staging.install(slot, (span.offset, span.len), span.ptr(), write_protect)
            },
            None => {
                // SAFETY: `zeros` is a page long; the page is DLM memory.
                unsafe { self.staging.copy_in(self.zeros.as_ptr(), span.ptr(), span.len, write_protect) }
            }
        }
    }

    /// Counts a page that became resident with `bytes` and starts pre-cleaning if memory is full.
    pub(super) fn now_resident(&mut self, index: usize, bytes: usize) {
        self.resident.push_back(index as u32);
        self.resident_bytes += bytes;
        self.installed_bytes += bytes;
        self.counters.set_resident(self.resident_bytes as u64);
        if self.resident_bytes + self.page_size > self.resident_budget {
            self.clean_ahead();
        }
    }

    /// Brings only the block at `addr` of page `index` (which has a home): an isolated fault.
    pub(super) fn fetch_block(&mut self, index: usize, addr: usize, write: bool) {
        if !self.room_without_donor(self.block, Incoming::Unfetched(index)) {
            // Only a page fetched whole can give its server slot to an evicted page.
            return match self.pages[index].state {
                State::Partial => self.complete_partial(index, write),
                _ => self.page_in(index, write),
            };
        }
        let span = self.span(index);
        let home = self.pages[index].home().expect("blocks are fetched only for pages with a home");
        let block_addr = self.block_of(addr);
        let in_frame = block_addr - span.frame();
        let at = self.home_address(home) + in_frame as u64;
        // The round trip goes on while room is made: the block arrives in the pager's own
        // buffer, and no eviction gives this page's home away (it is not wholly resident).
        // SAFETY: the buffer is a block long and only this transfer uses it until finished.
        let mut transfer =
            unsafe { self.job.start_get(home.server as usize, at, self.block_buffer.as_mut_ptr(), self.block) };
        self.make_room(self.block, Incoming::Unfetched(index));
        let page = self.pages[index];
        if page.state != State::Partial {
            // Absent: it becomes partial with this block.
            self.partial.insert(index as u32, Blocks::new(self.page_size / self.block, self.faults));
            self.pages[index].state = State::Partial;
            self.pages[index].written = false;
            self.resident.push_back(index as u32);
        }
        self.job.finish(&mut transfer);
        let write_protect = !(write || page.write_hint);
        let block_ptr = block_addr as *mut u8;
        // SAFETY: the buffer holds the block; the block lies in the registered page.
        let placement =
            unsafe { self.staging.copy_in(self.block_buffer.as_ptr(), block_ptr, self.block, write_protect) };
        if placement == Placement::AlreadyMapped {
            fatal(&format!("DLM block at {block_addr:#x} was mapped behind the pager's back"));
        }
        let blocks = self.partial.get_mut(&(index as u32)).expect("just made partial");
        blocks.add(in_frame / self.block, !write_protect);
        self.pages[index].written |= write;
        Counters::add(&self.counters.bytes_fetched, self.block as u64);
        Counters::add(&self.counters.blocks_fetched, 1);
        self.resident_bytes += self.block;
        self.installed_bytes += self.block;
        self.counters.set_resident(self.resident_bytes as u64);
    }

    /// Brings the blocks a partial page lacks: a stream runs through it.
    pub(super) fn complete_partial(&mut self, index: usize, write: bool) {
        let span = self.span(index);
        let blocks = self.partial.remove(&(index as u32)).expect("partial pages have blocks");
        let frame = span.frame();
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
        self.make_room(absent_bytes, Incoming::Staged(index));
        let dirty = write || blocks.any_dirty() || self.pages[index].home().is_none();
        for (at, len) in missing {
            // SAFETY: the slot holds the whole page; each run lies in the page and is missing.
            let from = unsafe { self.staging.ptr(slot).add(at - frame) };
            // SAFETY: as above.
            if unsafe { self.staging.copy_in(from, at as *mut u8, len, !write) } == Placement::AlreadyMapped {
                fatal(&format!("DLM page {index} was partly mapped behind the pager's back"));
            }
        }
        self.staging.release(slot, true);
        Counters::add(&self.counters.bytes_fetched, absent_bytes as u64);
        let page = &mut self.pages[index];
        page.state = if dirty { State::Dirty } else { State::Clean };
        page.written |= write;
        page.huge = false;
        self.resident_bytes += absent_bytes;
        self.installed_bytes += absent_bytes;
        self.counters.set_resident(self.resident_bytes as u64);
    }
}
