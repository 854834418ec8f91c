//! Paging counters, shared between the pager thread (which writes them) and the program, and
//! the [`Stats`] snapshot the API returns and prints, and the live line written with
//! `DLM_STATS_LIVE` ([`live_line`]). A leaf: it imports nothing of the crate.

use dlm_pool::proto::{HeldBytes, StatLine};
use dlm_units::Bytes;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

/// Small blocks of rewritten code that came from the C library while DLM ran (the limit was
/// reached, or mimalloc refused the arena). Counted by the small-block heap, process-wide.
static SMALL_BLOCKS_IN_LIBC: AtomicU64 = AtomicU64::new(0);

/// Counts one more small block that the C library had to take; true for the first one.
pub fn note_small_block_in_libc() -> bool {
    SMALL_BLOCKS_IN_LIBC.fetch_add(1, Relaxed) == 0
}

/// Counters the pager thread updates as it works.
#[derive(Default)]
pub struct Counters {
    pub faults: AtomicU64,
    pub zero_fills: AtomicU64,
    pub bytes_fetched: AtomicU64,
    pub bytes_written_back: AtomicU64,
    pub pages_evicted: AtomicU64,
    pub resident_bytes: AtomicU64,
    pub peak_resident_bytes: AtomicU64,
    pub wait_nanos: AtomicU64,
    pub pages_moved: AtomicU64,
    pub blocks_fetched: AtomicU64,
    pub io_holds: AtomicU64,
    pub small_heap_bytes: AtomicU64,
    /// Bytes of the program's pages each memory server holds.
    pub held: ServerHeld,
}

/// The most memory servers whose held bytes are counted: the ones a program starts with and
/// those a pool adds while pages move off draining servers. Servers past it are not shown.
pub const MAX_SERVERS_SHOWN: usize = 1024;

/// Bytes of the program's pages each memory server holds (its slots in use), by the pager's
/// server number, with each server's host. The pager updates them where it takes and gives
/// back server slots (relaxed atomics: a reader sees each count, not a snapshot of all).
pub struct ServerHeld {
    servers: Box<[Held]>,
}

#[derive(Default)]
struct Held {
    host: OnceLock<Box<str>>,
    bytes: AtomicU64,
}

impl Default for ServerHeld {
    fn default() -> Self {
        ServerHeld { servers: (0..MAX_SERVERS_SHOWN).map(|_| Held::default()).collect() }
    }
}

impl ServerHeld {
    /// Names server `server`'s host (once: a server number is never reused).
    pub fn name(&self, server: usize, host: &str) {
        if let Some(held) = self.servers.get(server) {
            let _ = held.host.set(host.into());
        }
    }

    /// Server `server` holds `bytes` more.
    pub fn add(&self, server: usize, bytes: u64) {
        if let Some(held) = self.servers.get(server) {
            held.bytes.fetch_add(bytes, Relaxed);
        }
    }

    /// Server `server` holds `bytes` less.
    pub fn sub(&self, server: usize, bytes: u64) {
        if let Some(held) = self.servers.get(server) {
            held.bytes.fetch_sub(bytes, Relaxed);
        }
    }

    /// What server `server` holds now.
    pub fn bytes(&self, server: usize) -> u64 {
        self.servers.get(server).map_or(0, |held| held.bytes.load(Relaxed))
    }

    /// The named servers' bytes by host (servers on one host summed), in server order.
    pub fn by_host(&self) -> Vec<HeldBytes> {
        let mut hosts: Vec<HeldBytes> = Vec::new();
        for held in self.servers.iter() {
            let Some(host) = held.host.get() else { continue };
            let bytes = held.bytes.load(Relaxed);
            match hosts.iter_mut().find(|h| *h.host == **host) {
                Some(known) => known.bytes += bytes,
                None => hosts.push(HeldBytes { host: host.to_string(), bytes }),
            }
        }
        hosts
    }
}

/// The line written every half second with `DLM_STATS_LIVE`: `t_ms` since the runtime started,
/// the counters, and what each server host holds; one JSON object and a newline.
pub fn live_line(counters: &Counters, local_budget_bytes: u64, t_ms: u64) -> String {
    let line = StatLine {
        t_ms,
        resident_bytes: counters.resident_bytes.load(Relaxed),
        local_budget_bytes,
        faults: counters.faults.load(Relaxed),
        bytes_fetched: counters.bytes_fetched.load(Relaxed),
        bytes_written_back: counters.bytes_written_back.load(Relaxed),
        servers: counters.held.by_host(),
    };
    let mut text = serde_json::to_string(&line).expect("a StatLine always serializes");
    text.push('\n');
    text
}

impl Counters {
    pub fn add(counter: &AtomicU64, amount: u64) {
        counter.fetch_add(amount, Relaxed);
    }

    pub fn set_resident(&self, bytes: u64) {
        self.resident_bytes.store(bytes, Relaxed);
        self.peak_resident_bytes.fetch_max(bytes, Relaxed);
    }
}

/// A snapshot of the paging statistics; laid out as `struct dlm_stats` in `dlm.h`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[repr(C)]
pub struct Stats {
    /// Page faults served (missing and write-protect).
    pub faults: u64,
    /// Missing faults on never-written pages, filled with zeros locally.
    pub zero_fills: u64,
    pub bytes_fetched: u64,
    pub bytes_written_back: u64,
    pub pages_evicted: u64,
    pub resident_bytes: u64,
    pub peak_resident_bytes: u64,
    pub local_budget_bytes: u64,
    pub page_size: u64,
    pub servers: u64,
    pub server_capacity_bytes: u64,
    /// Time the program's threads waited for the pager, from when it read each fault.
    pub wait_seconds: f64,
    /// Pages moved into place (`UFFDIO_MOVE`) rather than copied.
    pub pages_moved: u64,
    /// Isolated faults served by fetching only the system page touched, not its whole DLM page.
    pub blocks_fetched: u64,
    /// 1 when the pager's userfaultfd sees only faults of user-space code (no access to
    /// `/dev/userfaultfd`): I/O calls then hold their DLM buffers resident.
    pub user_mode_only: u64,
    /// I/O calls (or slices of one) that held DLM memory resident for the kernel.
    pub io_holds: u64,
    /// DLM memory the small-block heap has taken (whole DLM pages, charged against the limit).
    pub small_heap_bytes: u64,
    /// Small blocks of rewritten code that came from the C library while DLM ran, because DLM
    /// memory was full (or mimalloc refused the small-block heap's arena: said on stderr).
    pub small_blocks_in_libc: u64,
}

impl Stats {
    pub fn capture(counters: &Counters, local_budget_bytes: u64, page_size: u64, servers: u64, capacity: u64) -> Self {
        Stats {
            faults: counters.faults.load(Relaxed),
            zero_fills: counters.zero_fills.load(Relaxed),
            bytes_fetched: counters.bytes_fetched.load(Relaxed),
            bytes_written_back: counters.bytes_written_back.load(Relaxed),
            pages_evicted: counters.pages_evicted.load(Relaxed),
            resident_bytes: counters.resident_bytes.load(Relaxed),
            peak_resident_bytes: counters.peak_resident_bytes.load(Relaxed),
            local_budget_bytes,
            page_size,
            servers,
            server_capacity_bytes: capacity,
            wait_seconds: counters.wait_nanos.load(Relaxed) as f64 * 1e-9,
            pages_moved: counters.pages_moved.load(Relaxed),
            blocks_fetched: counters.blocks_fetched.load(Relaxed),
            user_mode_only: 0,
            io_holds: counters.io_holds.load(Relaxed),
            small_heap_bytes: counters.small_heap_bytes.load(Relaxed),
            small_blocks_in_libc: SMALL_BLOCKS_IN_LIBC.load(Relaxed),
        }
    }

    /// The summary printed on stderr with `DLM_STATS=1` (the small-block heap's line once a
    /// program used it).
    pub fn summary(&self) -> String {
        let mode = if self.user_mode_only != 0 {
            format!(
                "dlm: user-only paging (this user may not open /dev/userfaultfd): {} I/O call(s) held their DLM buffers resident\n",
                self.io_holds
            )
        } else {
            String::new()
        };
        let mut summary = mode
            + &format!(
            "dlm: {} faults ({} zero-filled, {} single blocks), fetched {}, wrote back {}, evicted {} pages of {}\n\
             dlm: peak resident {} of a {} local budget; {} memory server(s) with {}; waited {:.3} s for the pager\n",
            self.faults,
            self.zero_fills,
            self.blocks_fetched,
            Bytes(self.bytes_fetched),
            Bytes(self.bytes_written_back),
            self.pages_evicted,
            Bytes(self.page_size),
            Bytes(self.peak_resident_bytes),
            Bytes(self.local_budget_bytes),
            self.servers,
            Bytes(self.server_capacity_bytes),
            self.wait_seconds,
        );
        if self.small_heap_bytes > 0 || self.small_blocks_in_libc > 0 {
            summary += &format!(
                "dlm: small-block heap {}; {} small blocks went to the C library (DLM memory full)\n",
                Bytes(self.small_heap_bytes),
                self.small_blocks_in_libc
            );
        }
        summary
    }

    /// The JSON object written with `DLM_STATS_JSON=PATH`.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"faults\": {}, \"zero_fills\": {}, \"bytes_fetched\": {}, \"bytes_written_back\": {}, \
             \"pages_evicted\": {}, \"resident_bytes\": {}, \"peak_resident_bytes\": {}, \"local_budget_bytes\": {}, \
             \"page_size\": {}, \"servers\": {}, \"server_capacity_bytes\": {}, \"wait_seconds\": {:.6}, \
             \"pages_moved\": {}, \"blocks_fetched\": {}, \"user_mode_only\": {}, \"io_holds\": {}, \
             \"small_heap_bytes\": {}, \"small_blocks_in_libc\": {}}}\n",
            self.faults,
            self.zero_fills,
            self.bytes_fetched,
            self.bytes_written_back,
            self.pages_evicted,
            self.resident_bytes,
            self.peak_resident_bytes,
            self.local_budget_bytes,
            self.page_size,
            self.servers,
            self.server_capacity_bytes,
            self.wait_seconds,
            self.pages_moved,
            self.blocks_fetched,
            self.user_mode_only,
            self.io_holds,
            self.small_heap_bytes,
            self.small_blocks_in_libc,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_line_is_one_json_object_with_every_field() {
        let counters = Counters::default();
        Counters::add(&counters.faults, 7);
        Counters::add(&counters.bytes_fetched, 3 << 20);
        Counters::add(&counters.bytes_written_back, 1 << 20);
        counters.set_resident(2 << 20);
        counters.held.name(0, "mem1");
        counters.held.name(1, "mem2");
        counters.held.name(2, "mem1");
        counters.held.add(0, 4096);
        counters.held.add(1, 8192);
        counters.held.add(2, 4096);
        counters.held.sub(1, 4096);
        let line = live_line(&counters, 64 << 20, 1500);
        assert_eq!(
            line,
            "{\"t_ms\":1500,\"resident_bytes\":2097152,\"local_budget_bytes\":67108864,\"faults\":7,\
             \"bytes_fetched\":3145728,\"bytes_written_back\":1048576,\
             \"servers\":[{\"host\":\"mem1\",\"bytes\":8192},{\"host\":\"mem2\",\"bytes\":4096}]}\n"
        );
        let parsed: StatLine = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed.servers.len(), 2);
    }

    #[test]
    fn servers_past_the_last_shown_are_ignored() {
        let held = ServerHeld::default();
        held.name(MAX_SERVERS_SHOWN, "far");
        held.add(MAX_SERVERS_SHOWN, 1);
        assert_eq!(held.bytes(MAX_SERVERS_SHOWN), 0);
        assert!(held.by_host().is_empty());
    }
}
