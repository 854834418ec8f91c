//! The raw fault-path ceiling that the benchmark suite (`examples/dlmbench.rs`) compares the
//! pager against: the pager's own install and eviction steps, with no transfer and no servers.
//! Built only with the `bench` feature: benchmark code, not part of the library's API.

use crate::pager::Staging;
use crate::sys::{discard, poll_readable, FaultEvents, FaultFd, Mapping};
use std::io;
use std::time::Instant;

/// GB/s of a read-modify-write sweep over `bytes` of fresh userfaultfd memory in which each
/// `page` is one fault. A handler thread serves each fault as the pager does at that page size:
/// the data arrives in a staging slot (written there, as a receive would), the page is installed
/// from it (moved, or copied below the size where moves pay, or always copied without
/// `allow_moves`), after the previous page was evicted (moved out into a slot, or dropped), all
/// while the sweep waits in the fault.
pub fn userfaultfd_sweep(bytes: usize, page: usize, allow_moves: bool) -> io::Result<f64> {
    let region = Mapping::reserve(bytes)?;
    let uffd = FaultFd::register(&region)?;
    let mut staging = Staging::new(2, page, uffd, allow_moves)?;
    let base = region.base() as usize;
    let pages = bytes / page;
    let handler = std::thread::spawn(move || {
        let mut events = FaultEvents::new();
        let mut faults = Vec::new();
        let mut served = 0;
        while served < pages {
            poll_readable([staging.uffd().raw_fd()], -1);
            faults.clear();
            staging.uffd().read_faults(&mut events, &mut faults).expect("reading faults");
            for fault in &faults {
                let index = (fault.addr - base) / page;
                let at = (base + index * page) as *mut u8;
                // SAFETY: the page before `at` is behind the sweep; `at` is a missing page of
                // the region; the slot is ours and a page long.
                unsafe {
                    if index > 0 {
                        let previous = at.sub(page);
                        match staging.move_out(previous, 0, page) {
                            Some(slot) => staging.release(slot, true),
                            None => discard(previous, page),
                        }
                    }
                    let slot = staging.take().expect("two slots, one held at a time");
                    std::ptr::write_bytes(staging.ptr(slot), 1, page);
                    staging.install(slot, (0, page), at, false);
                }
                served += 1;
            }
        }
    });
    // SAFETY: the region holds bytes/8 u64s, each page served on first touch by the handler.
    let data = unsafe { std::slice::from_raw_parts_mut(base as *mut u64, bytes / 8) };
    let started = Instant::now();
    for x in data.iter_mut() {
        *x = x.wrapping_add(1);
    }
    let seconds = started.elapsed().as_secs_f64();
    handler.join().map_err(|_| io::Error::other("the fault handler panicked"))?;
    drop(region);
    Ok(bytes as f64 / seconds / 1e9)
}
