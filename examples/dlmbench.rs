//! dlmbench: the workloads and ceilings of the benchmark suite (`bench/run.py` runs them side
//! by side). Each run prints `RESULT <name> <value> <unit>` lines.
//!
//! ```text
//! dlmbench WORKLOAD MiB [--native]     # WORKLOAD: seqread seqwrite rmw rand4k gups triad
//! dlmbench uffd MiB PAGE               # raw fault path per PAGE, no transfer: the pager's
//!                                      # install + evict (uffd), and copy + drop (uffd_copy)
//! dlmbench mpi PAGE                    # MPI round trip of PAGE bytes (under mpirun -np 2)
//! ```
//! Without `--native` the data is DLM memory (set DLM_LOCAL_MEM, DLM_PAGE_SIZE).

use std::time::Instant;

const PASSES: usize = 3;
/// Random workloads stop after this long (paging can make each access cost a fault).
const RANDOM_SECONDS: f64 = 4.0;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn fill(data: &mut [u64]) {
    for (i, x) in data.iter_mut().enumerate() {
        *x = i as u64;
    }
}

fn report(name: &str, value: f64, unit: &str) {
    println!("RESULT {name} {value:.4} {unit}");
}

/// Times `PASSES` passes of `pass`; returns GB/s for `bytes` touched per pass.
fn timed(bytes: usize, mut pass: impl FnMut(u64)) -> f64 {
    let started = Instant::now();
    for p in 0..PASSES as u64 {
        pass(p);
    }
    (PASSES * bytes) as f64 / started.elapsed().as_secs_f64() / 1e9
}

fn run(workload: &str, data: &mut [u64]) {
    let bytes = std::mem::size_of_val(data);
    match workload {
        "seqread" => {
            fill(data);
            let mut sum = 0u64;
            let gbps = timed(bytes, |_| sum = data.iter().fold(sum, |s, &x| s.wrapping_add(x)));
            std::hint::black_box(sum);
            report("seqread", gbps, "GB/s");
        }
        "seqwrite" => report("seqwrite", timed(bytes, |p| data.iter_mut().for_each(|x| *x = p)), "GB/s"),
        "rmw" => {
            fill(data);
            report(
                "rmw",
                timed(bytes, |p| data.iter_mut().for_each(|x| *x = x.wrapping_mul(3).wrapping_add(p))),
                "GB/s",
            );
        }
        "rand4k" => {
            // Read-modify-write of whole random 4 KiB pages; also the median time of one.
            fill(data);
            let pages = bytes / 4096;
            let touches = pages.min(1 << 16);
            let mut rng = Rng(0x2545f4914f6cdd1d);
            let mut times = Vec::with_capacity(touches);
            let started = Instant::now();
            while times.len() < touches && started.elapsed().as_secs_f64() < RANDOM_SECONDS {
                let page = (rng.next() as usize % pages) * 512;
                let t = Instant::now();
                for x in &mut data[page..page + 512] {
                    *x = x.wrapping_add(1);
                }
                times.push(t.elapsed().as_nanos() as u64);
            }
            let seconds = started.elapsed().as_secs_f64();
            times.sort_unstable();
            report("rand4k", (times.len() * 4096) as f64 / seconds / 1e6, "MB/s");
            report("rand4k_median_latency", times[times.len() / 2] as f64 / 1e3, "us");
        }
        "gups" => {
            fill(data);
            let n = data.len();
            let updates = (n / 4).min(1 << 24);
            let mut rng = Rng(0x9e3779b97f4a7c15);
            let started = Instant::now();
            let mut done = 0;
            while done < updates && started.elapsed().as_secs_f64() < RANDOM_SECONDS {
                for _ in 0..1024 {
                    let v = rng.next();
                    data[v as usize % n] ^= v;
                }
                done += 1024;
            }
            report("gups", done as f64 / started.elapsed().as_secs_f64() / 1e6, "Mupdates/s");
        }
        "triad" => {
            // STREAM-style a = b + s*c over three thirds of the data.
            let third = data.len() / 3;
            let (a, rest) = data.split_at_mut(third);
            let (b, c) = rest.split_at_mut(third);
            for (i, (y, z)) in b.iter_mut().zip(c.iter_mut()).enumerate() {
                (*y, *z) = (i as u64, 2 * i as u64);
            }
            let gbps = timed(3 * third * 8, |p| {
                for ((x, y), z) in a.iter_mut().zip(&b[..third]).zip(&c[..third]) {
                    *x = y.wrapping_add(z.wrapping_mul(3 + p));
                }
            });
            report("triad", gbps, "GB/s");
        }
        other => {
            eprintln!("unknown workload {other}");
            std::process::exit(2);
        }
    }
}

/// MPI ceiling: rank 0 sends PAGE bytes to rank 1 and gets PAGE bytes back, as a fetch plus a
/// write-back do; GB/s of page data moved, and the round-trip time.
fn mpi_ceiling(page: usize) {
    use mpi::traits::*;
    let universe = mpi::initialize().expect("MPI");
    let world = universe.world();
    let mut buf = vec![0u8; page];
    let rounds = ((1usize << 30) / page).max(1000);
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
    if world.rank() == 0 {
        report("mpi", (2 * rounds * page) as f64 / seconds / 1e9, "GB/s");
        report("mpi_round_trip", seconds / rounds as f64 * 1e6, "us");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let workload = args.get(1).cloned().unwrap_or_default();
    match workload.as_str() {
        "uffd" => {
            // The pager's path, and the copying path (fault + UFFDIO_COPY + drop) beside it.
            for (name, moves) in [("uffd", true), ("uffd_copy", false)] {
                let gbps = dlm::ceiling::userfaultfd_sweep(number(2, 1024) << 20, number(3, 256 << 10), moves)
                    .unwrap_or_else(|e| panic!("userfaultfd ceiling: {e}"));
                report(name, gbps, "GB/s");
            }
        }
        "mpi" => mpi_ceiling(number(2, 256 << 10)),
        _ if args.iter().any(|a| a == "--native") => run(&workload, &mut vec![0u64; (number(2, 1024) << 20) / 8]),
        _ => {
            let dlm = dlm::start_or_exit();
            let mib = dlm.args().get(2).and_then(|a| a.parse().ok()).unwrap_or(1024usize);
            let mut data = dlm::DlmBox::<[u64]>::new_zeroed_slice((mib << 20) / 8).unwrap_or_else(|e| panic!("{e}"));
            run(&workload, &mut data);
        }
    }
}
