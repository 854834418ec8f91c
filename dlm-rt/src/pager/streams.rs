//! Sequential streams seen in the faults: many at once (a stencil walks 7–14 arrays in
//! lockstep), forward or backward, each remembered by the last page it touched.
//!
//! A stream enters each new page at its edge: a forward sweep at the page's first bytes, a
//! backward one at its last. A fault elsewhere in the page next to a stream's page is random
//! access that landed there by chance (likely in a small array), not a step of the stream.
//! A stream may pass resident pages without a fault (the part of a loop that replacement
//! keeps): a fault past such a run continues it, and the run's pages count as used.

/// Where in its page a fault is, as far as streams care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// Near the page's start: where a forward stream enters it.
    Start,
    /// Near the page's end: where a backward stream enters it.
    End,
    Middle,
}

/// How many streams are followed at once; the least recently continued one is replaced.
const STREAMS: usize = 32;

#[derive(Debug, Clone, Copy)]
struct Stream {
    last: usize,
    /// +1 forward, -1 backward, 0 not known yet (one fault seen).
    direction: isize,
    /// Consecutive steps to a neighbouring page so far.
    steps: u32,
    used: u64,
}

impl Stream {
    /// Two steps in a row make a stream: one step next to an old fault happens by chance
    /// under random access, far more often than two.
    fn confirmed(&self) -> Option<Run> {
        self.confirmed_past(0)
    }

    fn confirmed_past(&self, passed: u32) -> Option<Run> {
        (self.steps >= 2).then_some(Run { direction: self.direction, steps: self.steps, passed })
    }

    /// The step (+1, -1) and the pages between if a fault on page `index` at `edge` would
    /// continue this stream past them.
    fn step_to(&self, index: usize, edge: Edge) -> Option<(isize, usize)> {
        let (step, gap) = match edge {
            Edge::Start if index > self.last => (1, index - self.last - 1),
            Edge::End if index < self.last => (-1, self.last - index - 1),
            _ => return None,
        };
        (self.direction == 0 || self.direction == step).then_some((step, gap))
    }
}

/// A confirmed stream: its direction and how many steps it has taken so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub direction: isize,
    pub steps: u32,
    /// Resident pages the stream passed without a fault to reach this one.
    pub passed: u32,
}

pub struct Streams {
    streams: Vec<Stream>,
    clock: u64,
}

impl Streams {
    pub fn new() -> Self {
        Streams { streams: Vec::with_capacity(STREAMS), clock: 0 }
    }

    /// Records a missing fault on page `index`; `reach` is how many pages right before it (in
    /// the direction its edge enters from) are resident, as far as [`Streams::nearest_gap`]. Returns the confirmed stream it
    /// continues, `None` if it continues none (it may start one).
    pub fn observe(&mut self, index: usize, edge: Edge, reach: usize) -> Option<Run> {
        self.clock += 1;
        let clock = self.clock;
        if let Some(same) = self.streams.iter_mut().find(|s| s.last == index) {
            // A second fault on the stream's page (a block, then the rest of the page).
            same.used = clock;
            return same.confirmed();
        }
        let continued = self
            .streams
            .iter_mut()
            .filter_map(|s| s.step_to(index, edge).filter(|&(_, gap)| gap <= reach).map(|p| (s, p)))
            .min_by_key(|(_, (_, gap))| *gap);
        if let Some((stream, (step, gap))) = continued {
            stream.direction = step;
            stream.last = index;
            stream.steps += 1;
            stream.used = clock;
            return stream.confirmed_past(gap as u32);
        }
        let fresh = Stream { last: index, direction: 0, steps: 0, used: clock };
        if self.streams.len() < STREAMS {
            self.streams.push(fresh);
        } else if let Some(oldest) = self.streams.iter_mut().min_by_key(|s| s.used) {
            *oldest = fresh;
        }
        None
    }

    /// The fewest pages between page `index` and a stream that a fault there at `edge` would
    /// continue: the resident pages a caller must check before [`Streams::observe`].
    pub fn nearest_gap(&self, index: usize, edge: Edge) -> Option<usize> {
        self.streams.iter().filter_map(|s| s.step_to(index, edge)).map(|(_, gap)| gap).min()
    }

    /// How many streams continued within the last `faults` missing faults seen here.
    pub fn active(&self, faults: u64) -> usize {
        self.streams.iter().filter(|s| s.steps >= 2 && self.clock - s.used < faults).count()
    }

    /// Forgets the streams in pages `range` (freed memory).
    pub fn forget(&mut self, range: std::ops::Range<usize>) {
        self.streams.retain(|s| !range.contains(&s.last));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaved_streams_are_each_followed() {
        let mut streams = Streams::new();
        // Fourteen arrays of 1000 pages swept in lockstep: confirmed at their third page.
        for step in 0..6 {
            for a in 0..14 {
                let expected = (step >= 2).then_some(Run { direction: 1, steps: step as u32, passed: 0 });
                assert_eq!(streams.observe(a * 1000 + step, Edge::Start, 0), expected, "array {a} step {step}");
            }
        }
    }

    #[test]
    fn backward_streams_repeats_and_random_faults() {
        let mut streams = Streams::new();
        assert_eq!(streams.observe(50, Edge::End, 0), None);
        assert_eq!(streams.observe(49, Edge::End, 0), None);
        let backward = Some(Run { direction: -1, steps: 2, passed: 0 });
        assert_eq!(streams.observe(48, Edge::End, 0), backward);
        assert_eq!(streams.observe(48, Edge::Middle, 0), backward, "the same page again keeps its stream");
        // A fault next to the stream but against its direction is no continuation.
        assert_eq!(streams.observe(49, Edge::Start, 0), None);
        // Faults in the middle of neighbouring pages are not streams.
        assert_eq!(streams.observe(7000, Edge::Middle, 0), None);
        assert_eq!(streams.observe(7001, Edge::Middle, 0), None);
        assert_eq!(streams.observe(7002, Edge::Middle, 0), None);
        // Entering pages at the wrong edge is no stream either.
        assert_eq!(streams.observe(8001, Edge::End, 0), None);
        assert_eq!(streams.observe(8002, Edge::End, 0), None);
        assert_eq!(streams.observe(8003, Edge::End, 0), None);
    }

    #[test]
    fn a_stream_passes_resident_pages() {
        let mut streams = Streams::new();
        for page in 10..13 {
            streams.observe(page, Edge::Start, 0);
        }
        // Pages 13..=16 are resident: a fault at 17 continues the stream past them.
        assert_eq!(streams.observe(17, Edge::Start, 4), Some(Run { direction: 1, steps: 3, passed: 4 }));
        // Not past a run longer than the resident one.
        assert_eq!(streams.observe(30, Edge::Start, 11), None);
        assert_eq!(streams.active(8), 1);
    }
}
