//! The memory servers' slots: where each evicted page lives. Pages are striped over the
//! servers in proportion to their capacities (round robin among equals), so that every
//! server's link carries its share of the traffic and no server fills before the others.

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
}

impl ServerSlots {
    /// Servers with these capacities, in slots.
    pub(super) fn new(capacities: &[u32]) -> Self {
        let pools = capacities.iter().map(|&capacity| Pool { free: Vec::new(), next_unused: 0, capacity }).collect();
        ServerSlots { pools, next_server: 0 }
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
        Some((server, self.pools[server].take()?))
    }

    /// Gives a slot back (its page was freed); a retired server's slots are not reused.
    pub(super) fn give_back(&mut self, server: usize, slot: u32) {
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

    #[test]
    fn equal_servers_take_turns() {
        let mut slots = ServerSlots::new(&[4, 4, 4]);
        assert_eq!(servers_of_next(&mut slots, 6), [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn pages_are_striped_in_proportion_to_capacity() {
        let mut slots = ServerSlots::new(&[200, 100]);
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
        let mut slots = ServerSlots::new(&[1, 3]);
        assert_eq!(servers_of_next(&mut slots, 4), [0, 1, 1, 1]);
        assert_eq!(slots.take(), None);
        assert!(!slots.has_free());
        slots.give_back(0, 0);
        assert_eq!(slots.take(), Some((0, 0)));
    }

    #[test]
    fn a_retired_server_gives_no_slot_and_an_added_one_does() {
        let mut slots = ServerSlots::new(&[2, 2]);
        slots.take();
        slots.retire(0);
        slots.give_back(0, 0);
        let added = slots.add_server(1);
        assert_eq!(servers_of_next(&mut slots, 3), [1, added, 1]);
        assert_eq!(slots.take(), None);
    }
}
