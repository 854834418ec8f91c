//! One DLM page's entry in the pager's table, and the blocks of a partly resident page.

/// Where a page's data lives on the servers: a slot of one page on one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Home {
    pub server: u16,
    pub slot: u32,
}

/// Where a page is and who holds its current data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum State {
    /// Not local: its data is at its home, or it reads as zeros if it has none.
    #[default]
    Absent,
    /// A static array's page whose initial data waits in its segment's stash; no home yet.
    Stashed,
    /// Being fetched whole ahead of its fault into a staging slot (a read-ahead holds it).
    Fetching,
    /// Some blocks installed (the block table says which and which were written); the others
    /// are at its home, which it always has.
    Partial,
    /// Wholly resident and write-protected; its home (if any) holds the same data.
    Clean,
    /// Wholly resident and writable; only the local copy is current.
    Dirty,
    /// Wholly resident, write-protected while its copy travels home; clean when the send ends.
    Cleaning,
}

impl State {
    /// Whether it takes local memory (and so sits in the replacement queue).
    pub fn is_resident(self) -> bool {
        matches!(self, State::Partial | State::Clean | State::Dirty | State::Cleaning)
    }
}

/// A page's entry; its home is stored flat (slot, server, `homed`) to keep the entry small.
#[derive(Debug, Clone, Copy, Default)]
pub struct Page {
    slot: u32,
    server: u16,
    homed: bool,
    pub state: State,
    /// Written since it was last installed (seen by a write or write-protect fault).
    pub written: bool,
    /// Seen written in its last residency: a read fault maps it writable (docs/DESIGN.md).
    pub write_hint: bool,
    /// Resident as one transparent huge page (moved in whole), so it can be moved out whole.
    pub huge: bool,
    /// How many I/O calls hold it resident now (it is not evicted while any does).
    pub held: u8,
    /// The pager's fault count (wrapping) when it was last seen used: faulted on, or passed
    /// by a stream while resident; 0 if never (see `replace`).
    pub used: u32,
}

// docs/PERFORMANCE.md quotes the pager's metadata per page.
const _: () = assert!(size_of::<Page>() <= 16);

impl Page {
    /// A page with no home in `state`.
    pub fn new(state: State) -> Self {
        Page { state, ..Page::default() }
    }

    pub fn home(&self) -> Option<Home> {
        self.homed.then_some(Home { server: self.server, slot: self.slot })
    }

    pub fn set_home(&mut self, home: Option<Home>) {
        let Home { server, slot } = home.unwrap_or(Home { server: 0, slot: 0 });
        (self.server, self.slot, self.homed) = (server, slot, home.is_some());
    }
}

/// The blocks (system pages) of a [`State::Partial`] page: which are installed, which written.
pub struct Blocks {
    present: Vec<u64>,
    dirty: Vec<u64>,
    pub count: usize,
    /// The pager's fault count when the page became partial.
    pub since: u64,
}

impl Blocks {
    pub fn new(blocks: usize, since: u64) -> Self {
        let words = blocks.div_ceil(64);
        Blocks { present: vec![0; words], dirty: vec![0; words], count: 0, since }
    }

    pub fn is_present(&self, block: usize) -> bool {
        self.present[block / 64] >> (block % 64) & 1 != 0
    }

    pub fn add(&mut self, block: usize, dirty: bool) {
        self.present[block / 64] |= 1 << (block % 64);
        self.count += 1;
        if dirty {
            self.mark_dirty(block);
        }
    }

    pub fn mark_dirty(&mut self, block: usize) {
        self.dirty[block / 64] |= 1 << (block % 64);
    }

    pub fn any_dirty(&self) -> bool {
        self.dirty.iter().any(|&w| w != 0)
    }

    /// Runs of consecutive written blocks, as (first block, count).
    pub fn dirty_runs(&self, blocks: usize) -> Vec<(usize, usize)> {
        runs(&self.dirty, blocks)
    }

    /// Runs of consecutive blocks that are not installed, as (first block, count).
    pub fn missing_runs(&self, blocks: usize) -> Vec<(usize, usize)> {
        let missing: Vec<u64> = self.present.iter().map(|w| !w).collect();
        runs(&missing, blocks)
    }
}

fn runs(bits: &[u64], blocks: usize) -> Vec<(usize, usize)> {
    let set = |b: usize| bits[b / 64] >> (b % 64) & 1 != 0;
    let mut out = Vec::new();
    let mut b = 0;
    while b < blocks {
        if !set(b) {
            b += 1;
            continue;
        }
        let start = b;
        while b < blocks && set(b) {
            b += 1;
        }
        out.push((start, b - start));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_exactly_the_blocks_set() {
        let mut blocks = Blocks::new(130, 0);
        for b in [0, 1, 2, 63, 64, 65, 129] {
            blocks.add(b, b == 64);
        }
        assert_eq!(blocks.dirty_runs(130), vec![(64, 1)]);
        assert_eq!(blocks.missing_runs(130), vec![(3, 60), (66, 63)]);
        assert_eq!(blocks.count, 7);
        assert!(blocks.any_dirty());
    }
}
