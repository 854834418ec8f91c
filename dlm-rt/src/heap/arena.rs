//! The small-block heap's arena: an address range at the end of the DLM range set aside for
//! mimalloc (`abi::small` hands it over), its layout, and the DLM pages under it charged
//! against the limit as mimalloc commits spans of it.

use std::ffi::c_void;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

/// mimalloc's arenas start on a 64 KiB slice (`mi_arena_min_alignment`).
pub const ARENA_ALIGN: usize = 64 << 10;
/// mimalloc's arenas are whole multiples of 32 MiB (`mi_arena_min_size`).
pub(crate) const ARENA_UNIT: usize = 32 << 20;
/// The largest arena mimalloc accepts: its metadata (136 bytes per 64 KiB slice, and bitmaps)
/// must fit in 32 MiB, which 16 GiB exceeds. The small-block heap holds at most this much.
const ARENA_MAX: u64 = 15 << 30;

/// The arena's range, `[start, end)`; set when DLM starts, kept after it stops (so that a late
/// `free` of a small block is recognised).
static RANGE: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];

/// The length of the small-block arena for a limit (budget + servers' capacity) of `limit`
/// bytes: the limit (the heap can never hold more), at most 15 GiB, in whole arena units.
pub fn arena_len(limit: u64) -> usize {
    (limit.min(ARENA_MAX) as usize).next_multiple_of(ARENA_UNIT).max(ARENA_UNIT)
}

/// Sets the arena's range, `len` bytes from `start` (which is [`ARENA_ALIGN`]-aligned).
pub fn set_range(start: usize, len: usize) {
    RANGE[1].store(start + len, Ordering::Relaxed);
    RANGE[0].store(start, Ordering::Release);
}

/// The arena's range, once DLM has started.
pub fn range() -> Option<Range<usize>> {
    let start = RANGE[0].load(Ordering::Acquire);
    (start != 0).then(|| start..RANGE[1].load(Ordering::Relaxed))
}

/// Whether `ptr` lies in the arena (a small block, live or not).
pub fn owns(ptr: *const c_void) -> bool {
    let start = RANGE[0].load(Ordering::Acquire);
    start != 0 && (start..RANGE[1].load(Ordering::Relaxed)).contains(&(ptr as usize))
}

/// The DLM pages of the arena charged against the limit so far: mimalloc commits spans of
/// 64 KiB slices, the pager holds whole DLM pages, so each DLM page under a committed span is
/// charged once.
pub struct ChargedPages {
    /// Index (in DLM pages from the start of the DLM range) of the arena's first page.
    first: usize,
    bits: Vec<u64>,
}

impl ChargedPages {
    /// For an arena over DLM pages `pages`.
    pub fn new(pages: Range<usize>) -> Self {
        ChargedPages { first: pages.start, bits: vec![0; pages.len().div_ceil(64)] }
    }

    /// Charges the pages in `pages` not charged yet: `reserve` is asked for how many there are
    /// and the pages are marked only if it agrees. Returns the count charged.
    pub fn charge<E>(&mut self, pages: Range<usize>, reserve: impl FnOnce(usize) -> Result<(), E>) -> Result<usize, E> {
        let indices = pages.start - self.first..pages.end - self.first;
        let fresh = indices.clone().filter(|&i| self.bits[i / 64] & (1 << (i % 64)) == 0).count();
        if fresh > 0 {
            reserve(fresh)?;
            for i in indices {
                self.bits[i / 64] |= 1 << (i % 64);
            }
        }
        Ok(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_is_the_limit_in_whole_units_up_to_15_gib() {
        assert_eq!(arena_len(1), 32 << 20);
        assert_eq!(arena_len(100 << 20), 128 << 20);
        assert_eq!(arena_len(1 << 40), 15 << 30);
    }

    #[test]
    fn charges_each_page_once_and_only_when_reserved() {
        fn expect(pages: usize) -> impl FnOnce(usize) -> Result<(), &'static str> {
            move |n| if n == pages { Ok(()) } else { Err("asked for the wrong count") }
        }
        let mut charged = ChargedPages::new(10..200);
        assert_eq!(charged.charge(10..12, expect(2)), Ok(2));
        assert_eq!(charged.charge(11..14, expect(2)), Ok(2));
        assert_eq!(charged.charge(20..90, |_| Err("full")), Err("full"));
        assert_eq!(charged.charge(10..14, expect(0)), Ok(0));
        assert_eq!(charged.charge(20..90, expect(70)), Ok(70));
    }
}
