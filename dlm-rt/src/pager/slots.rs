//! The memory servers' slots: where each evicted page lives. Pages are striped over the
//! servers in proportion to their capacities (round robin among equals), so that every
//! server's link carries its share of the traffic and no server fills before the others.
//! Every slot taken counts a page held on its server, every slot given back one less
//! (`Counters::held`, for `DLM_STATS_LIVE`).

use crate::stats::Counters;
use std::sync::Arc;

/// The free slots of one server.
struct Pool {
    free: Vec<u32>,
    next_unused: u32,
    capacity: u32,
}

impl Pool {
    fn has_free(&self) -> bool {
        !self.free.is_empty() || self.next_unused < self.capacity
    }

    fn used(&self) -> u64 {
        u64::from(self.next_unused).saturating_sub(self.free.len() as u64)
    }

    /// Compares how full two pools are for their capacities.
    fn fill_cmp(&self, other: &Pool) -> std::cmp::Ordering {
        (self.used() * u64::from(other.capacity)).cmp(&(other.used() * u64::from(self.capacity)))
    }

    fn take(&mut self) -> Option<u32> {
        self.free.pop().or_else(|| {
            (self.next_unused < self.capacity).then(|| {
                self.next_unused += 1;
                self.next_unused - 1
            })
        })
    }
}

/// Every server's slots.
pub(super) struct ServerSlots {
    pools: Vec<Pool>,
    /// Where the search for the least full server starts: ties go round robin.
    next_server: usize,
    /// Where the bytes each server holds are counted, and a slot's bytes (a DLM page).
    counters: Arc<Counters>,
    page_bytes: u64,
}

impl ServerSlots {
    /// Servers with these capacities, in slots of `page_bytes`.
    pub(super) fn new(capacities: &[u32], page_bytes: u64, counters: Arc<Counters>) -> Self {
        let pools = capacities.iter().map(|&capacity| Pool { free: Vec::new(), next_unused: 0, capacity }).collect();
        ServerSlots { pools, next_server: 0, counters, page_bytes }
    }

    pub(super) fn has_free(&self) -> bool {
        self.pools.iter().any(Pool::has_free)
    }

    /// A free slot on the server that is least full for its capacity: (server, slot).
    pub(super) fn take(&mut self) -> Option<(usize, u32)> {
        let servers = self.pools.len();
        let pools = &self.pools;
        let server = (0..servers)
            .map(|step| (self.next_server + step) % servers)
            .filter(|&server| pools[server].has_free())
            .min_by(|&a, &b| pools[a].fill_cmp(&pools[b]))?;
        self.next_server = (server + 1) % servers;
        let slot = self.pools[server].take()?;
        self.counters.held.add(server, self.page_bytes);
        Some((server, slot))
    }

    /// Gives a slot back (its page was freed, or moved off a retired server); a retired
    /// server's slots are not reused.
    pub(super) fn give_back(&mut self, server: usize, slot: u32) {
        self.counters.held.sub(server, self.page_bytes);
        let pool = &mut self.pools[server];
        if pool.capacity > 0 {
            pool.free.push(slot);
        }
    }

    /// A server added (a pool's server that pages move to); its index.
    pub(super) fn add_server(&mut self, capacity: u32) -> usize {
        self.pools.push(Pool { free: Vec::new(), next_unused: 0, capacity });
        self.pools.len() - 1
    }

    /// No slot of `server` is handed out again (its pages are moving elsewhere).
    pub(super) fn retire(&mut self, server: usize) {
        let pool = &mut self.pools[server];
        (pool.capacity, pool.next_unused) = (0, 0);
        pool.free.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers_of_next(slots: &mut ServerSlots, n: usize) -> Vec<usize> {
        (0..n).map(|_| slots.take().expect("a free slot").0).collect()
    }

    impl ServerSlots {
        fn of(capacities: &[u32]) -> Self {
            ServerSlots::new(capacities, 4096, Arc::default())
        }
    }

    #[test]
    fn equal_servers_take_turns() {
        let mut slots = ServerSlots::of(&[4, 4, 4]);
        assert_eq!(servers_of_next(&mut slots, 6), [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn pages_are_striped_in_proportion_to_capacity() {
        let mut slots = ServerSlots::of(&[200, 100]);
        let taken = servers_of_next(&mut slots, 90);
        let on_first = taken.iter().filter(|&&s| s == 0).count();
        assert_eq!(on_first, 60, "{taken:?}");
        // Never more than one page ahead of the proportional share.
        for n in 1..=taken.len() {
            let first = taken[..n].iter().filter(|&&s| s == 0).count() as f64;
            assert!((first - n as f64 * 2.0 / 3.0).abs() <= 1.0, "after {n}: {taken:?}");
        }
    }

    #[test]
    fn a_full_server_is_skipped_and_freed_slots_are_reused() {
        let mut slots = ServerSlots::of(&[1, 3]);
        assert_eq!(servers_of_next(&mut slots, 4), [0, 1, 1, 1]);
        assert_eq!(slots.take(), None);
        assert!(!slots.has_free());
        slots.give_back(0, 0);
        assert_eq!(slots.take(), Some((0, 0)));
    }

    #[test]
    fn a_retired_server_gives_no_slot_and_an_added_one_does() {
        let mut slots = ServerSlots::of(&[2, 2]);
        slots.take();
        slots.retire(0);
        slots.give_back(0, 0);
        let added = slots.add_server(1);
        assert_eq!(servers_of_next(&mut slots, 3), [1, added, 1]);
        assert_eq!(slots.take(), None);
    }

    #[test]
    fn slots_in_use_are_counted_as_bytes_held_per_server() {
        let mut slots = ServerSlots::of(&[2, 2]);
        let taken: Vec<(usize, u32)> = (0..3).map(|_| slots.take().unwrap()).collect();
        let held = |slots: &ServerSlots, server| slots.counters.held.bytes(server);
        assert_eq!((held(&slots, 0), held(&slots, 1)), (8192, 4096));
        slots.give_back(taken[0].0, taken[0].1);
        assert_eq!(held(&slots, 0), 4096);
        // Pages moving off a retired server: each one moved is given back there.
        slots.retire(0);
        let added = slots.add_server(4);
        let (to, _) = slots.take().unwrap();
        assert_eq!(to, added);
        slots.give_back(0, taken[2].1);
        assert_eq!((held(&slots, 0), held(&slots, added)), (0, 4096));
    }
}
