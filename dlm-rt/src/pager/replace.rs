//! Which resident page goes next: FIFO, or, while a cyclic sweep larger than the budget runs,
//! the newest page outside a window of the newest ones (MRU within the loop).
//!
//! FIFO re-fetches all of a loop over more data than the budget on every pass; the best policy
//! (Belady's) keeps a fixed part of it resident and re-fetches only the rest. A loop shows
//! itself when pages fault again: the faults between a page's last use and its refault,
//! smoothed towards the longest, are the loop's period. While streams run and a period is
//! known, the victim is the newest resident page outside a window that holds each stream's
//! current page (one per active stream, plus two, grown by one whenever a page comes back
//! within half a period, as planes read behind a stencil's streams do; at most a quarter of the
//! resident pages). The oldest pages, the part of the loop kept, then stay.
//!
//! A working set that moves must not be locked out by the part of an old loop that was kept:
//! a page among the oldest that was not used for two periods goes first, and while most pages
//! that fault again come back sooner than FIFO would have evicted them (fewer faults than pages
//! are resident), the loop fits and FIFO is back.
//! Userfaultfd shows a page's use only through its faults, so a resident page counts as used
//! when a stream passes it ([`super::streams`]).

use super::Pager;

/// How many of the oldest resident pages are looked at for one unused for two periods.
const STALE_CANDIDATES: usize = 8;

/// A stream continued within this many missing faults keeps the loop policy on.
const STREAMS_RECENT: u64 = 64;

/// How far a fault looks back for resident pages a stream passed, in pages.
pub(super) const MOST_PASSED: usize = 256;

/// What replacement has learnt from the faults.
#[derive(Debug, Default)]
pub struct Replacement {
    /// One pass of the loop, in faults; 0 while no page has faulted again.
    period: u32,
    /// Pages added to the window by refaults within half a period.
    grown: usize,
    /// A moving average (over about 16 refaults, in 1/256) of refaults that FIFO would have
    /// avoided.
    fits_share: u32,
}

impl Replacement {
    /// Learns from a page that faults again `distance` faults after its last use, while
    /// `resident` pages are resident.
    fn refault(&mut self, distance: u32, resident: usize) {
        let distance = distance.max(1);
        if distance >= self.period {
            self.period = distance;
        } else {
            // Towards the longest: a loop's short refaults (planes behind) must not hide it.
            self.period -= (self.period - distance) / 64;
        }
        if distance < self.period / 2 {
            self.grown += 1;
        }
        // FIFO keeps a page for about as many faults as pages are resident: a page back sooner
        // would have stayed under FIFO, one back later belongs to a loop larger than the budget.
        let fits = (distance as usize) < resident;
        self.fits_share = self.fits_share - self.fits_share / 16 + if fits { 16 } else { 0 };
    }

    /// Whether most pages that fault again are back later than FIFO would have kept them.
    fn loop_exceeds_budget(&self) -> bool {
        self.period > 0 && self.fits_share <= 128
    }
}

/// The order in which resident positions are tried as victims: a stale page first, then from
/// `split` down to the oldest, then the window from `split` up to the newest. FIFO is the
/// order with `split` 0 and no stale page.
#[derive(Debug, Clone, Copy)]
struct Order {
    stale: Option<usize>,
    split: usize,
    len: usize,
}

impl Order {
    fn positions(self) -> impl Iterator<Item = usize> {
        let Order { stale, split, len } = self;
        let rest = (0..split).rev().chain(split..len).filter(move |&p| Some(p) != stale);
        stale.into_iter().chain(rest)
    }
}

impl Pager {
    /// Records a missing fault on page `index` before it is served: a page seen before that
    /// faults again teaches the period.
    pub(super) fn note_missing(&mut self, index: usize) {
        let page = self.pages[index];
        if page.used != 0 && page.home().is_some() {
            self.replacement.refault(self.clock().wrapping_sub(page.used), self.resident.len());
        }
        self.note_used(index);
    }

    pub(super) fn note_used(&mut self, index: usize) {
        self.pages[index].used = self.clock();
    }

    /// Records that a stream continued at page `index` in `direction`, passing `passed`
    /// resident pages before it (they were used).
    pub(super) fn note_stream(&mut self, index: usize, direction: isize, passed: u32) {
        self.last_stream_fault = self.faults;
        for step in 1..=passed as isize {
            if let Some(page) = index.checked_add_signed(-step * direction) {
                self.note_used(page);
            }
        }
    }

    /// How many pages right before `index`, coming from `direction`, are resident (at most
    /// `most` and [`MOST_PASSED`], within its segment).
    pub(super) fn resident_run(&self, index: usize, direction: isize, most: usize) -> usize {
        let pages = self.segment_pages(index);
        (1..=most.min(MOST_PASSED) as isize)
            .map(|step| index.checked_add_signed(-step * direction))
            .take_while(|p| p.is_some_and(|p| pages.contains(&p) && self.pages[p].state.is_resident()))
            .count()
    }

    /// Positions in the resident queue in the order victims are tried.
    pub(super) fn eviction_order(&self) -> impl Iterator<Item = usize> {
        let len = self.resident.len();
        let order = if self.in_loop() {
            let window = (self.streams.active(STREAMS_RECENT) + 2 + self.replacement.grown).min(len / 4);
            Order { stale: self.stale_position(), split: len - window, len }
        } else {
            Order { stale: None, split: 0, len }
        };
        order.positions()
    }

    /// Whether a loop runs: a period is known and streams run.
    fn in_loop(&self) -> bool {
        self.replacement.loop_exceeds_budget() && self.faults - self.last_stream_fault < STREAMS_RECENT
    }

    /// The first of the oldest resident pages unused for two periods.
    fn stale_position(&self) -> Option<usize> {
        let now = self.clock();
        let stale_after = 2 * self.replacement.period;
        self.resident
            .iter()
            .take(STALE_CANDIDATES)
            .position(|&i| now.wrapping_sub(self.pages[i as usize].used) > stale_after)
    }

    /// The fault count as stamped on pages: wrapping, and never 0 (0 is "never used").
    fn clock(&self) -> u32 {
        (self.faults as u32).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_order_tries_the_stale_page_then_mru_outside_the_window() {
        let order = Order { stale: Some(1), split: 4, len: 6 };
        assert_eq!(order.positions().collect::<Vec<_>>(), vec![1, 3, 2, 0, 4, 5]);
        let stale_in_window = Order { stale: Some(2), split: 1, len: 3 };
        assert_eq!(stale_in_window.positions().collect::<Vec<_>>(), vec![2, 0, 1]);
        let fifo = Order { stale: None, split: 0, len: 3 };
        assert_eq!(fifo.positions().collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn the_period_follows_the_longest_refault_and_loops_that_fit_go_back_to_fifo() {
        let mut replacement = Replacement::default();
        replacement.refault(1000, 100);
        replacement.refault(300, 100);
        assert!(replacement.period > 980, "a short refault barely moves it: {}", replacement.period);
        assert_eq!(replacement.grown, 1);
        assert!(replacement.loop_exceeds_budget());
        for _ in 0..20 {
            replacement.refault(50, 100);
        }
        assert!(!replacement.loop_exceeds_budget(), "pages back within FIFO's reach: FIFO again");
    }
}
