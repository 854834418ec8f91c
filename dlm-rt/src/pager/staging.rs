//! Where pages enter and leave the DLM range: the pager's userfaultfd, and its staging slots,
//! page-sized buffers of one mapping where pages are received from the servers and, where the
//! kernel can move pages (`UFFDIO_MOVE`), where evicted pages go. [`Staging`] owns both, so
//! every install, move, protect and wake goes through it, and a failed one ends the process
//! here (`failure::or_fatal`).
//!
//! Moving recycles physical pages: an evicted page is moved (not copied) into a free slot, the
//! next fetched page is received into a slot that holds such pages, and then moved into place.
//! No page is allocated, copied into place or freed per fault, which is what `UFFDIO_COPY` and
//! `MADV_DONTNEED` cost (docs/PERFORMANCE.md has the measurement). Without `UFFDIO_MOVE`, or if
//! the kernel refuses a move, the slots are plain buffers and pages are copied in.

use super::failure::or_fatal;
use crate::sys::{fatal, FaultFd, Mapping, MoveError, HUGE_PAGE};
use std::io;

/// Smaller pages are copied: a move costs a TLB shootdown per 4 KiB page, which outweighs the
/// allocation and copy it saves below this size (docs/PERFORMANCE.md: at 4 KiB moving was
/// 7 % slower on random access, at 64 KiB 1.3–1.7× faster on a sweep).
const MIN_MOVED_PAGE: usize = 64 << 10;

/// How [`Staging::install`] put a page in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    Moved,
    Copied,
    /// The page was already populated (another thread's fault won); nothing was installed.
    AlreadyMapped,
}

impl Placement {
    /// The placement of a copy (`UFFDIO_COPY`): done, or refused because the range was mapped.
    fn copied(result: io::Result<()>) -> Self {
        match result {
            Ok(()) => Placement::Copied,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Placement::AlreadyMapped,
            Err(e) => fatal(&format!("UFFDIO_COPY failed: {e}")),
        }
    }
}

/// One slot, held by whoever took it until it is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(u32);

pub struct Staging {
    uffd: FaultFd,
    slots: Mapping,
    page_size: usize,
    /// Free slots whose pages are allocated (they hold an evicted page's memory, or old data).
    filled: Vec<Slot>,
    /// Free slots with no pages.
    empty: Vec<Slot>,
    /// Whether pages are moved in and out (else copied in and dropped).
    moves: bool,
    /// Whether each slot is one transparent huge page (pages of a multiple of 2 MiB).
    huge: bool,
}

impl Staging {
    /// `count` slots of `page_size`; pages are moved if `allow_moves`, the pages are large
    /// enough and the kernel can.
    pub fn new(count: usize, page_size: usize, uffd: FaultFd, allow_moves: bool) -> io::Result<Self> {
        // Slots of whole huge pages hold one transparent huge page each, moved as one PMD.
        let huge = page_size.is_multiple_of(HUGE_PAGE);
        let slots = if huge { Mapping::reserve_huge(count * page_size)? } else { Mapping::reserve(count * page_size)? };
        // A fork would share the slots' pages with the child, and shared pages cannot be moved.
        slots.exclude_from_fork()?;
        let moves =
            allow_moves && page_size >= MIN_MOVED_PAGE && uffd.can_move() && uffd.register_staging(&slots).is_ok();
        let empty = (0..count as u32).rev().map(Slot).collect();
        Ok(Staging { uffd, slots, page_size, filled: Vec::with_capacity(count), empty, moves, huge: huge && moves })
    }

    /// The pager's userfaultfd.
    pub fn uffd(&self) -> &FaultFd {
        &self.uffd
    }

    /// Write-protects a resident range: later writes fault to the pager.
    pub fn protect(&self, start: *mut u8, len: usize) {
        or_fatal(self.uffd.protect(start, len), "UFFDIO_WRITEPROTECT");
    }

    /// Lifts write protection from a resident range and wakes the writers.
    pub fn unprotect(&self, start: *mut u8, len: usize) {
        or_fatal(self.uffd.unprotect(start, len), "UFFDIO_WRITEPROTECT (lifting it)");
    }

    /// Wakes the threads waiting on a range so that they retry their access.
    pub fn wake(&self, start: *mut u8, len: usize) {
        or_fatal(self.uffd.wake(start, len), "UFFDIO_WAKE");
    }

    /// Copies `len` bytes from `src` into the missing range at `dst` and wakes its waiters; with
    /// `write_protect` the new pages are mapped write-protected.
    ///
    /// # Safety
    /// `src` must be readable for `len` bytes; `dst..dst+len` must lie in a registered range.
    pub unsafe fn copy_in(&self, src: *const u8, dst: *mut u8, len: usize, write_protect: bool) -> Placement {
        // SAFETY: as the caller guarantees.
        Placement::copied(unsafe { self.uffd.install(src, dst, len, write_protect) })
    }

    /// Moves pages as [`FaultFd::move_pages`] does; a move that stopped part-way ends the process
    /// (a page would be in two places).
    ///
    /// # Safety
    /// As for [`FaultFd::move_pages`].
    unsafe fn move_pages(&self, src: *mut u8, dst: *mut u8, len: usize, wake: bool) -> io::Result<()> {
        // SAFETY: as the caller guarantees.
        match unsafe { self.uffd.move_pages(src, dst, len, wake) } {
            Ok(()) => Ok(()),
            Err(MoveError::NotMoved(e)) => Err(e),
            Err(MoveError::PartWay(e)) => fatal(&format!("UFFDIO_MOVE failed part-way through a DLM page: {e}")),
        }
    }

    pub fn ptr(&self, slot: Slot) -> *mut u8 {
        // SAFETY: a slot's offset lies inside the mapping.
        unsafe { self.slots.base().add(slot.0 as usize * self.page_size) }
    }

    /// Copies pages from now on instead of moving them (see `sys::swap_is_on`).
    pub fn stop_moving(&mut self) {
        self.moves = false;
        self.huge = false;
    }

    /// Whether pages are moved (not copied) into and out of the slots.
    pub fn moves(&self) -> bool {
        self.moves
    }

    /// Whether slots hold transparent huge pages that are moved whole. Then only pages that are
    /// one huge page should be moved out (a page of 4 KiB pieces would fill a slot with them).
    pub fn huge(&self) -> bool {
        self.huge
    }

    /// A free slot to fill with zeros and move into place: any free slot where slots are huge
    /// pages (a fresh one becomes one on its first touch), else one whose pages are allocated.
    pub fn take_for_zeros(&mut self) -> Option<Slot> {
        if self.huge {
            self.take()
        } else {
            self.take_filled()
        }
    }

    /// How many slots are free.
    pub fn free(&self) -> usize {
        self.filled.len() + self.empty.len()
    }

    /// A free slot to receive a page into, one with allocated pages if there is one.
    pub fn take(&mut self) -> Option<Slot> {
        self.filled.pop().or_else(|| self.empty.pop())
    }

    /// A free slot whose pages are allocated, if pages are moved and there is one.
    fn take_filled(&mut self) -> Option<Slot> {
        if self.moves {
            self.filled.pop()
        } else {
            None
        }
    }

    /// Gives a slot back; `filled` says whether it holds allocated pages (a receive or write
    /// into it allocates any that are missing).
    pub fn release(&mut self, slot: Slot, filled: bool) {
        if filled {
            self.filled.push(slot);
        } else {
            self.empty.push(slot);
        }
    }

    /// Moves the resident page at `page` (`len` bytes) into a free slot at `offset` (where a
    /// short page lies in a whole one), which the caller then holds; `None` if pages are not
    /// moved or no slot is free (the caller drops the page).
    ///
    /// # Safety
    /// `page` must be a resident DLM page that nobody may read at its address any more.
    pub unsafe fn move_out(&mut self, page: *mut u8, offset: usize, len: usize) -> Option<Slot> {
        if !self.moves {
            return None;
        }
        let slot = self.empty.pop().or_else(|| {
            let slot = self.filled.pop()?;
            // SAFETY: the slot is free, so its old contents are nobody's.
            unsafe { crate::sys::discard(self.ptr(slot), self.page_size) };
            Some(slot)
        })?;
        // SAFETY: the slot is empty and ours; the caller gives up the page.
        match unsafe { self.move_pages(page, self.ptr(slot).add(offset), len, false) } {
            Ok(()) => {
                // A part of the page that the kernel swapped out moves as a swap entry and keeps
                // its write-protect marker (a present page moves writable). The pager writes
                // into this slot later (a receive, zeros): with the marker, that write would
                // fault to the pager thread itself.
                // SAFETY: the slot is ours; offset + len lies inside it.
                self.unprotect(unsafe { self.ptr(slot).add(offset) }, len);
                Some(slot)
            }
            Err(_) => {
                self.empty.push(slot);
                self.moves = false;
                None
            }
        }
    }

    /// Puts the page data held in `slot` at `offset` at the missing DLM page `page` (`len`
    /// bytes) and wakes the threads waiting on it, releasing the slot. With `write_protect` the
    /// page is mapped write-protected.
    ///
    /// # Safety
    /// `slot` must be held by the caller with its `len` bytes at `offset` written; `page` must
    /// be a DLM page.
    pub unsafe fn install(
        &mut self,
        slot: Slot,
        (offset, len): (usize, usize),
        page: *mut u8,
        write_protect: bool,
    ) -> Placement {
        // SAFETY: offset + len lies inside the slot.
        let data = unsafe { self.ptr(slot).add(offset) };
        if self.moves {
            // SAFETY: the slot's pages are ours and written; the page lies in a registered range.
            match unsafe { self.move_pages(data, page, len, !write_protect) } {
                Ok(()) => {
                    if write_protect {
                        self.protect(page, len);
                        self.wake(page, len);
                    }
                    if len < self.page_size {
                        // SAFETY: the rest of the slot is ours and unused.
                        unsafe {
                            crate::sys::discard(self.ptr(slot), offset);
                            crate::sys::discard(data.add(len), self.page_size - offset - len);
                        }
                    }
                    self.empty.push(slot);
                    return Placement::Moved;
                }
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                    self.filled.push(slot);
                    return Placement::AlreadyMapped;
                }
                // Refused (e.g. a pinned page): copy from now on.
                Err(_) => self.moves = false,
            }
        }
        // SAFETY: the slot is readable for `len` bytes; the page lies in a registered range.
        let placement = unsafe { self.copy_in(data, page, len, write_protect) };
        self.filled.push(slot);
        placement
    }
}
