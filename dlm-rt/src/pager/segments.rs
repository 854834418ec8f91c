//! The address ranges the pager serves: the heap's DLM range and static arrays adopted in
//! place ([`Segment`]), and where each page lies in them ([`Span`]). A static array's pages are
//! aligned to the page size in the address space, so its first and last pages may be short.

use super::mailbox::Refusal;
use super::page::{Page, State};
use super::Pager;
use crate::sys::{self, Mapping};

/// A run of consecutive pages at one address range: the heap's DLM range, or a static array.
pub(super) struct Segment {
    pub(super) base: usize,
    pub(super) len: usize,
    /// `base` rounded down to the page size: pages are aligned in the address space.
    pub(super) origin: usize,
    /// Index of its first page in `Pager::pages`.
    pub(super) first: usize,
    /// The initial contents of a static array, byte for byte.
    pub(super) stash: Option<Mapping>,
}

/// Where a page lies: its bytes `[start, start+len)`, at `offset` within its aligned frame
/// (non-zero only for a static array's first page), which is also where its data lies in its
/// server slot and staging slot.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub(super) start: usize,
    pub(super) len: usize,
    pub(super) offset: usize,
}

impl Span {
    pub(super) fn ptr(&self) -> *mut u8 {
        self.start as *mut u8
    }

    /// The address of the whole, aligned page this span lies in.
    pub(super) fn frame(&self) -> usize {
        self.start - self.offset
    }
}

impl Pager {
    /// Serves `[start, start+len)`, a page-aligned part of a static array, from now on; with
    /// `keep_contents` its current data is kept (stashed until each page's first fault).
    pub(super) fn add_static(&mut self, start: usize, len: usize, keep_contents: bool) -> Result<(), Refusal> {
        let huge = self.page_size.is_multiple_of(sys::HUGE_PAGE);
        // SAFETY: the runtime hands over a page-aligned range inside one static array that the
        // program does not touch until this call returns.
        let stash = unsafe { sys::adopt_range(start as *mut u8, len, keep_contents, huge) }
            .map_err(|source| Refusal::Adopt { step: "remapping it", source })?;
        let registered = self.staging.uffd().register_range(start as *mut u8, len);
        registered.map_err(|source| Refusal::Adopt { step: "registering it with userfaultfd", source })?;
        let origin = start - start % self.page_size;
        let first = self.pages.len();
        let count = (start + len - origin).div_ceil(self.page_size);
        let state = if keep_contents { State::Stashed } else { State::Absent };
        self.pages.extend(std::iter::repeat_n(Page::new(state), count));
        self.segments.push(Segment { base: start, len, origin, first, stash });
        Ok(())
    }

    pub(super) fn segment_of_page(&self, index: usize) -> &Segment {
        let after = self.segments.partition_point(|s| s.first <= index);
        &self.segments[after - 1]
    }

    /// Where page `index` lies (only a static array's first and last pages can be short).
    pub(super) fn span(&self, index: usize) -> Span {
        let segment = self.segment_of_page(index);
        let frame = segment.origin + (index - segment.first) * self.page_size;
        let start = frame.max(segment.base);
        let end = (frame + self.page_size).min(segment.base + segment.len);
        Span { start, len: end - start, offset: start - frame }
    }

    pub(super) fn page_at(&self, addr: usize) -> Option<usize> {
        let segment = self.segments.iter().find(|s| (s.base..s.base + s.len).contains(&addr))?;
        Some(segment.first + (addr - segment.origin) / self.page_size)
    }

    /// The pages of `index`'s segment, as a range of indices.
    pub(super) fn segment_pages(&self, index: usize) -> std::ops::Range<usize> {
        let segment = self.segment_of_page(index);
        let count = (segment.base + segment.len - segment.origin).div_ceil(self.page_size);
        segment.first..segment.first + count
    }
}
