//! dlmbench: the workloads and ceilings of the benchmark suite (`bench/run.py` runs them side
//! by side). Each run prints `RESULT <name> <value> <unit>` lines.
//!
//! ```text
//! dlmbench WORKLOAD MiB [--native]     # WORKLOAD: seqread seqwrite rmw rand4k gups copy
//!                                      # triad sparse
//! dlmbench fetch MiB                   # paging throughput: GB/s of pages fetched while
//!                                      # the program reads (DLM only)
//! dlmbench uffd MiB PAGE               # raw fault path per PAGE, no transfer: the pager's
//!                                      # install + evict (uffd), and copy + drop (uffd_copy)
//! dlmbench mpi PAGE                    # MPI round trip of PAGE bytes (under mpirun -np 2)
//! ```
//! Without `--native` the data is DLM memory (set DLM_LOCAL_MEM, DLM_PAGE_SIZE); such runs also
//! print the DLM page size in effect (`RESULT page_size`). `sparse` prints `CHECK <value>`,
//! which must be the same in every configuration.

use dlm::{DlmBox, Zeroable};
use std::ops::{Deref, DerefMut};
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

/// Where a workload's arrays live: ordinary memory (`--native`) or DLM memory.
#[derive(Clone, Copy)]
enum Memory {
    Native,
    Dlm,
}

/// An array in ordinary or in DLM memory; the workloads see only the slice.
enum Array<T> {
    Native(Vec<T>),
    Dlm(DlmBox<[T]>),
}

impl Memory {
    /// `len` zeroed elements. Native arrays come from `vec!`, which gets zero elements from
    /// the allocator without touching them, so first touches fault in both configurations.
    fn zeroed<T: Zeroable + Clone>(self, len: usize) -> Array<T> {
        match self {
            Memory::Native => Array::Native(vec![T::zeroed(); len]),
            Memory::Dlm => Array::Dlm(DlmBox::new_zeroed_slice(len).unwrap_or_else(|e| panic!("{e}"))),
        }
    }
}

impl<T> Deref for Array<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Array::Native(v) => v,
            Array::Dlm(b) => b,
        }
    }
}

impl<T> DerefMut for Array<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match self {
            Array::Native(v) => v,
            Array::Dlm(b) => b,
        }
    }
}

/// Runs `workload` over `bytes` of data in `memory`.
fn run(workload: &str, bytes: usize, memory: Memory) {
    match workload {
        "copy" => copy(bytes, memory),
        "triad" => triad(bytes, memory),
        "sparse" => sparse(bytes, memory),
        _ => sweep(workload, &mut memory.zeroed(bytes / 8)),
    }
}

/// The workloads over one array of `u64`.
fn sweep(workload: &str, data: &mut [u64]) {
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
        other => {
            eprintln!("unknown workload {other}");
            std::process::exit(2);
        }
    }
}

/// STREAM copy, a = b over two arrays; GB/s counts both arrays, as STREAM does.
fn copy(bytes: usize, memory: Memory) {
    let len = bytes / 16;
    let (mut a, mut b) = (memory.zeroed::<f64>(len), memory.zeroed::<f64>(len));
    for (i, x) in b.iter_mut().enumerate() {
        *x = i as f64;
    }
    report("copy", timed(16 * len, |_| a.copy_from_slice(&b)), "GB/s");
}

/// STREAM triad, a = b + s*c over three arrays; GB/s counts all three, as STREAM does.
fn triad(bytes: usize, memory: Memory) {
    let len = bytes / 24;
    let (mut a, mut b, mut c) = (memory.zeroed::<f64>(len), memory.zeroed::<f64>(len), memory.zeroed::<f64>(len));
    for (i, (y, z)) in b.iter_mut().zip(c.iter_mut()).enumerate() {
        (*y, *z) = (i as f64, 2.0 * i as f64);
    }
    let s = 3.0;
    let gbps = timed(24 * len, |_| {
        for ((x, y), z) in a.iter_mut().zip(&b[..]).zip(&c[..]) {
            *x = y + s * z;
        }
    });
    report("triad", gbps, "GB/s");
}

/// Columns of a sparse row outside its 27-point neighbourhood, at pseudo-random places (as far
/// couplings in an unstructured mesh), so that `x` is also read irregularly.
const RANDOM_COLUMNS: usize = 3;
const SPARSE_ITERATIONS: usize = 5;
/// Bytes per row: its values (f64) and columns (u32), its row start (u64), x and y (f64).
const SPARSE_ROW_BYTES: usize = (27 + RANDOM_COLUMNS) * 12 + 3 * 8;

/// A sparse matrix in compressed sparse rows.
struct Csr {
    values: Array<f64>,
    columns: Array<u32>,
    /// Row r's entries are `row_start[r]..row_start[r + 1]`.
    row_start: Array<u64>,
}

/// The matrix of a 27-point stencil on an `nx`×`ny`×`nz` grid (neighbours outside the grid
/// left out) plus `RANDOM_COLUMNS` far entries per row; the same for every run.
fn sparse_matrix(nx: usize, ny: usize, nz: usize, memory: Memory) -> Csr {
    let rows = nx * ny * nz;
    // Per dimension, the cells' neighbour counts (2 at both faces, 3 inside) sum to 3n - 2.
    let entries = (3 * nx - 2) * (3 * ny - 2) * (3 * nz - 2) + RANDOM_COLUMNS * rows;
    let mut a =
        Csr { values: memory.zeroed(entries), columns: memory.zeroed(entries), row_start: memory.zeroed(rows + 1) };
    let mut rng = Rng(0x853c49e6748fea9b);
    let mut row_entries = Vec::with_capacity(27 + RANDOM_COLUMNS);
    let mut next = 0;
    let near = |i: usize, n: usize| i.saturating_sub(1)..(i + 2).min(n);
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let row = (z * ny + y) * nx + x;
                row_entries.clear();
                for k in near(z, nz) {
                    for j in near(y, ny) {
                        for i in near(x, nx) {
                            let column = (k * ny + j) * nx + i;
                            row_entries.push((column, if column == row { 30.0 } else { -1.0 }));
                        }
                    }
                }
                for _ in 0..RANDOM_COLUMNS {
                    row_entries.push((rng.next() as usize % rows, -0.5));
                }
                for &(column, value) in &row_entries {
                    a.columns[next] = u32::try_from(column).expect("more rows than u32 columns can name");
                    a.values[next] = value;
                    next += 1;
                }
                a.row_start[row + 1] = next as u64;
            }
        }
    }
    assert_eq!(next, entries);
    a
}

/// y = A x.
fn multiply(a: &Csr, x: &[f64], y: &mut [f64]) {
    for (row, y) in y.iter_mut().enumerate() {
        let span = a.row_start[row] as usize..a.row_start[row + 1] as usize;
        *y = a.values[span.clone()].iter().zip(&a.columns[span]).map(|(v, &c)| v * x[c as usize]).sum();
    }
}

/// A CG-like sparse kernel: power iterations x = A x / |A x| on a matrix whose arrays, with x
/// and y, take about `bytes`. Reports GFLOP/s, and a checksum of x as `CHECK` that is the same
/// bit for bit in every configuration (same code, same order of operations).
fn sparse(bytes: usize, memory: Memory) {
    let rows = bytes / SPARSE_ROW_BYTES;
    let side = (rows as f64).cbrt() as usize;
    let a = sparse_matrix(side, side, rows / (side * side), memory);
    let rows = a.row_start.len() - 1;
    let (mut x, mut y) = (memory.zeroed::<f64>(rows), memory.zeroed::<f64>(rows));
    for (i, v) in x.iter_mut().enumerate() {
        *v = 1.0 + (i % 7) as f64 / 8.0;
    }
    let started = Instant::now();
    for _ in 0..SPARSE_ITERATIONS {
        multiply(&a, &x, &mut y);
        let norm = y.iter().map(|v| v * v).sum::<f64>().sqrt();
        for (x, y) in x.iter_mut().zip(&y[..]) {
            *x = y / norm;
        }
    }
    // A multiply and an add per entry; per row a square, an add and a division.
    let flops = SPARSE_ITERATIONS * (2 * a.values.len() + 3 * rows);
    report("sparse", flops as f64 / started.elapsed().as_secs_f64() / 1e9, "GFLOP/s");
    // Weighted, so that x's values in the wrong places would show too.
    let check: f64 = x.iter().enumerate().map(|(i, v)| v * (i % 13 + 1) as f64).sum();
    println!("CHECK {check:e}");
}

/// Paging throughput in the fetch direction: passes that read data which does not fit,
/// timed with the bytes fetched meanwhile. One untimed pass first, so that no page is written
/// back during the timed ones (a page written before is fetched writable once).
fn fetch(dlm: &dlm::Dlm, bytes: usize) {
    let mut data = Memory::Dlm.zeroed::<u64>(bytes / 8);
    fill(&mut data);
    let mut sum = data.iter().fold(0u64, |s, &x| s.wrapping_add(x));
    let before = dlm.stats();
    let started = Instant::now();
    for _ in 0..PASSES {
        sum = data.iter().fold(sum, |s, &x| s.wrapping_add(x));
    }
    let seconds = started.elapsed().as_secs_f64();
    std::hint::black_box(sum);
    let after = dlm.stats();
    report("fetch", (after.bytes_fetched - before.bytes_fetched) as f64 / seconds / 1e9, "GB/s");
    report("fetch_write_back", (after.bytes_written_back - before.bytes_written_back) as f64 / seconds / 1e9, "GB/s");
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

fn usage() -> ! {
    eprintln!("usage: dlmbench WORKLOAD MiB [--native] | uffd MiB PAGE | mpi PAGE");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize| args.get(i).and_then(|a| a.parse::<usize>().ok()).unwrap_or_else(|| usage());
    let workload = args.get(1).cloned().unwrap_or_default();
    match workload.as_str() {
        "uffd" => {
            // The pager's path, and the copying path (fault + UFFDIO_COPY + drop) beside it.
            for (name, moves) in [("uffd", true), ("uffd_copy", false)] {
                let gbps = dlm::bench::userfaultfd_sweep(number(2) << 20, number(3), moves)
                    .unwrap_or_else(|e| panic!("userfaultfd ceiling: {e}"));
                report(name, gbps, "GB/s");
            }
        }
        "mpi" => mpi_ceiling(number(2)),
        _ if args.iter().any(|a| a == "--native") => run(&workload, number(2) << 20, Memory::Native),
        _ => {
            let dlm = dlm::start_or_exit();
            let mib: usize = dlm.args().get(2).and_then(|a| a.parse().ok()).unwrap_or_else(|| usage());
            if workload == "fetch" {
                fetch(&dlm, mib << 20);
            } else {
                run(&workload, mib << 20, Memory::Dlm);
            }
            // The page size in effect (DLM_PAGE_SIZE or the runtime's default), for bench/run.py.
            report("page_size", dlm.stats().page_size as f64, "B");
        }
    }
}
