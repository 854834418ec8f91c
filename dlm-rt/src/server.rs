//! A memory server: holds evicted DLM pages for the compute process, never more than its
//! capacity, until told to shut down.

use crate::sys::{self, Mapping};
use crate::transport::{Hello, Job, Request};
use mpi::environment::Universe;
use std::time::{Duration, Instant};

/// After this long without a request the server stops spinning and sleeps between polls:
/// MPI's blocking receive would keep a core busy that the compute process needs.
const SPIN: Duration = Duration::from_micros(100);
const SHORT_IDLE: Duration = Duration::from_millis(50);

/// Serves until the compute process says shutdown, then finalizes MPI and exits 0.
pub fn serve(universe: Universe, job: Job) -> ! {
    let hello = Hello {
        host: sys::hostname(),
        pid: std::process::id(),
        available_memory: sys::available_memory().unwrap_or(0),
    };
    let setup = job.hello(&hello);
    if setup.page_size == 0 {
        // The compute process rejected its options; it reports why and exits non-zero. Exiting
        // 0 here lets mpirun wait for it instead of killing it before it has printed.
        drop(job);
        crate::transport::finalize_server(universe);
        std::process::exit(0);
    }
    let page = setup.page_size;
    let store = match Mapping::reserve((setup.capacity as usize).max(page)) {
        Ok(store) => store,
        Err(e) => sys::fatal(&format!("memory server on {} cannot reserve its capacity: {e}", hello.host)),
    };
    let capacity = setup.capacity;
    let range = |at: u64, len: u64| -> (usize, usize) {
        if at.checked_add(len).is_none_or(|end| end > capacity) {
            sys::fatal(&format!("request for bytes {at}..+{len} beyond this server's capacity of {capacity}"));
        }
        (at as usize, len as usize)
    };
    sys::tighten_timer_slack();
    let mut last_request = Instant::now();
    loop {
        let Some(request) = job.poll_request() else {
            let idle = last_request.elapsed();
            if idle < SPIN {
                std::hint::spin_loop();
            } else if idle < SHORT_IDLE {
                std::thread::sleep(Duration::from_micros(20));
            } else {
                std::thread::sleep(Duration::from_micros(500));
            }
            continue;
        };
        match request {
            Request::Put { at, len } => {
                let (offset, len) = range(at, len);
                // SAFETY: [offset, offset+len) lies inside the store, which only this loop touches.
                let into = unsafe { std::slice::from_raw_parts_mut(store.base().add(offset), len) };
                job.receive_page_data(into);
            }
            Request::Get { at, len } => {
                let (offset, len) = range(at, len);
                // SAFETY: as above.
                let from = unsafe { std::slice::from_raw_parts(store.base().add(offset), len) };
                job.send_page_data(from);
            }
            Request::Free { at, len } => {
                let (offset, len) = range(at, len);
                store.discard(offset, len);
            }
            Request::Shutdown => break,
        }
        last_request = Instant::now();
    }
    job.acknowledge_shutdown();
    drop(job);
    drop(store);
    crate::transport::finalize_server(universe);
    std::process::exit(0)
}
