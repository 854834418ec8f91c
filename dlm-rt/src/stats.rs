//! Paging counters, shared between the pager thread (which writes them) and the program, and
//! the [`Stats`] snapshot the API returns and prints. A leaf: it imports nothing of the crate.

use dlm_units::Bytes;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
