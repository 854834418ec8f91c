//! Sequential streams seen in the faults: many at once (a stencil walks 7–14 arrays in
//! lockstep), forward or backward, each remembered by the last page it touched.
//!
//! A stream enters each new page at its edge: a forward sweep at the page's first bytes, a
//! backward one at its last. A fault elsewhere in the page next to a stream's page is random
//! access that landed there by chance (likely in a small array), not a step of the stream.

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
        (self.steps >= 2).then_some(Run { direction: self.direction, steps: self.steps })
    }
}

/// A confirmed stream: its direction and how many steps it has taken so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub direction: isize,
    pub steps: u32,
}

pub struct Streams {
    streams: Vec<Stream>,
    clock: u64,
}

impl Streams {
    pub fn new() -> Self {
        Streams { streams: Vec::with_capacity(STREAMS), clock: 0 }
    }

    /// Records a missing fault on page `index`; returns the direction of the confirmed stream
    /// it continues, `None` if it continues none (it may start one).
    pub fn observe(&mut self, index: usize, edge: Edge) -> Option<Run> {
        self.clock += 1;
        let clock = self.clock;
        if let Some(same) = self.streams.iter_mut().find(|s| s.last == index) {
            // A second fault on the stream's page (a block, then the rest of the page).
            same.used = clock;
            return same.confirmed();
        }
        let step_from = |last: usize| match edge {
            Edge::Start => (index == last + 1).then_some(1),
            Edge::End => (index + 1 == last).then_some(-1),
            Edge::Middle => None,
        };
        let continued = self
            .streams
            .iter_mut()
            .find(|s| step_from(s.last).is_some_and(|step| s.direction == 0 || s.direction == step));
        if let Some(stream) = continued {
            stream.direction = index as isize - stream.last as isize;
            stream.last = index;
            stream.steps += 1;
            stream.used = clock;
            return stream.confirmed();
        }
        let fresh = Stream { last: index, direction: 0, steps: 0, used: clock };
        if self.streams.len() < STREAMS {
            self.streams.push(fresh);
        } else if let Some(oldest) = self.streams.iter_mut().min_by_key(|s| s.used) {
            *oldest = fresh;
        }
        None
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
                let expected = (step >= 2).then_some(Run { direction: 1, steps: step as u32 });
                assert_eq!(streams.observe(a * 1000 + step, Edge::Start), expected, "array {a} step {step}");
            }
        }
    }

    #[test]
    fn backward_streams_repeats_and_random_faults() {
        let mut streams = Streams::new();
        assert_eq!(streams.observe(50, Edge::End), None);
        assert_eq!(streams.observe(49, Edge::End), None);
        let backward = Some(Run { direction: -1, steps: 2 });
        assert_eq!(streams.observe(48, Edge::End), backward);
        assert_eq!(streams.observe(48, Edge::Middle), backward, "the same page again keeps its stream");
        // A fault next to the stream but against its direction is no continuation.
        assert_eq!(streams.observe(49, Edge::Start), None);
        // Faults in the middle of neighbouring pages are not streams.
        assert_eq!(streams.observe(7000, Edge::Middle), None);
        assert_eq!(streams.observe(7001, Edge::Middle), None);
        assert_eq!(streams.observe(7002, Edge::Middle), None);
        // Entering pages at the wrong edge is no stream either.
        assert_eq!(streams.observe(8001, Edge::End), None);
        assert_eq!(streams.observe(8002, Edge::End), None);
        assert_eq!(streams.observe(8003, Edge::End), None);
    }
}
