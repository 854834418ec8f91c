//! sweepbench: sequential read-modify-write sweeps, side by side with the machine's ceilings.
//!
//! ```text
//! sweepbench native MiB            # ordinary memory
//! sweepbench dlm MiB               # DLM memory (set DLM_LOCAL_MEM, DLM_PAGE_SIZE)
//! sweepbench uffd MiB PAGE         # raw userfaultfd: one UFFDIO_COPY of PAGE bytes per fault
//! sweepbench mpi PAGE              # MPI round trip of PAGE bytes (run with mpirun -np 2)
//! ```
//! Each prints one line `RESULT <mode> <GB/s>`; scripts/bench-sweep.sh runs them in one go.

use std::time::Instant;

const SWEEPS: usize = 3;

/// Fills, then times `SWEEPS` read-modify-write passes; returns GB/s of data swept.
fn sweep(data: &mut [u64]) -> f64 {
    for (i, x) in data.iter_mut().enumerate() {
        *x = i as u64;
    }
    let started = Instant::now();
    for pass in 0..SWEEPS as u64 {
        for x in data.iter_mut() {
            *x = x.wrapping_mul(3).wrapping_add(pass);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    std::hint::black_box(&data);
    (SWEEPS * std::mem::size_of_val(data)) as f64 / seconds / 1e9
}

/// Raw userfaultfd ceiling: every first touch of a PAGE-sized unit is one fault served by one
/// UFFDIO_COPY from a handler thread, as the pager does without any network transfer.
fn uffd_ceiling(bytes: usize, page: usize) -> f64 {
    use userfaultfd::{Event, UffdBuilder};
    let uffd = UffdBuilder::new().close_on_exec(true).user_mode_only(false).create().expect("userfaultfd");
    // SAFETY: a fresh anonymous mapping, used only by this function.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert_ne!(base, libc::MAP_FAILED);
    uffd.register(base, bytes).expect("register");
    let start = base as usize;
    let handler = std::thread::spawn(move || {
        let source = vec![1u8; page];
        let mut served = 0;
        while served < bytes / page {
            if let Some(Event::Pagefault { addr, .. }) = uffd.read_event().expect("read fault") {
                let at = (addr as usize - start) / page * page + start;
                // SAFETY: `at` is a page-aligned missing unit of the registered mapping.
                unsafe { uffd.copy(source.as_ptr().cast(), at as *mut _, page, true) }.expect("UFFDIO_COPY");
                served += 1;
            }
        }
    });
    // SAFETY: the mapping holds bytes/8 u64s, served on first touch by the handler.
    let data = unsafe { std::slice::from_raw_parts_mut(base as *mut u64, bytes / 8) };
    let started = Instant::now();
    for x in data.iter_mut() {
        *x = x.wrapping_add(1);
    }
    let seconds = started.elapsed().as_secs_f64();
    handler.join().expect("handler");
    bytes as f64 / seconds / 1e9
}

/// MPI ceiling: rank 0 sends PAGE bytes to rank 1 and gets PAGE bytes back, as a fetch plus a
/// write-back do; GB/s of page data moved in both directions.
fn mpi_ceiling(page: usize) -> Option<f64> {
    use mpi::traits::*;
    let universe = mpi::initialize().expect("MPI");
    let world = universe.world();
    let mut buf = vec![0u8; page];
    let rounds = (4usize << 30) / page / 2;
    let started = Instant::now();
    for _ in 0..rounds {
        if world.rank() == 0 {
            world.process_at_rank(1).send(&buf[..]);
            world.process_at_rank(1).receive_into(&mut buf[..]);
        } else {
            world.process_at_rank(0).receive_into(&mut buf[..]);
            world.process_at_rank(0).send(&buf[..]);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    (world.rank() == 0).then(|| {
        println!("round trip of {page} bytes: {:.1} us", seconds / rounds as f64 * 1e6);
        (2 * rounds * page) as f64 / seconds / 1e9
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let mode = args.get(1).map(String::as_str).unwrap_or("");
    let gbps = match mode {
        "native" => sweep(&mut vec![0u64; (number(2, 1024) << 20) / 8]),
        "dlm" => {
            let dlm = dlm::start_or_exit();
            let mib = dlm.args().get(2).and_then(|a| a.parse().ok()).unwrap_or(1024usize);
            let mut data = dlm::DlmBox::<[u64]>::new_zeroed_slice((mib << 20) / 8).unwrap_or_else(|e| panic!("{e}"));
            sweep(&mut data)
        }
        "uffd" => uffd_ceiling(number(2, 1024) << 20, number(3, 256 << 10)),
        "mpi" => match mpi_ceiling(number(2, 256 << 10)) {
            Some(gbps) => gbps,
            None => return,
        },
        _ => {
            eprintln!("usage: sweepbench native|dlm MiB | uffd MiB PAGE | mpi PAGE");
            std::process::exit(2);
        }
    };
    println!("RESULT {mode} {gbps:.3}");
}
