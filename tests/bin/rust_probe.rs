//! Small Rust programs for the end-to-end tests: `rust_probe MODE`.
//! - `oversize`: asking for more than budget + servers must give a clear error.
//! - `vec MiB`: a DlmVec grown by push past the local budget keeps every element.
//! - `huge MiB`: sweeps DLM memory twice (pages evicted and fetched back) and reports how much
//!   of the process's memory is in transparent huge pages (`/proc/self/smaps`).
//! - `granularity MiB`: a sequential sweep, then random 8-byte reads; reports the paging
//!   counters of each phase, so the test sees whole pages for the one and blocks for the other.
//! - `verify MiB`: writes a pattern, then reads it back and reports any element that differs
//!   (a zero page where data was written would be one); used with an injected pager panic.

use dlm::{DlmBox, DlmVec, Stats};

fn main() {
    let dlm = dlm::start_or_exit();
    let args = dlm.args().to_vec();
    let code = match args.get(1).map(String::as_str) {
        Some("oversize") => match DlmBox::<[u8]>::new_zeroed_slice(1 << 40) {
            Ok(_) => {
                println!("a 1 TiB allocation succeeded");
                1
            }
            Err(e) => {
                println!("error: {e}");
                0
            }
        },
        Some("vec") => {
            let mib: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(64);
            let n = (mib << 20) / 8;
            let mut v = DlmVec::with_capacity(1).expect("DLM memory");
            for i in 0..n as u64 {
                v.push(i.wrapping_mul(0x9e3779b97f4a7c15)).expect("DLM memory");
            }
            let bad = v.iter().enumerate().filter(|&(i, &x)| x != (i as u64).wrapping_mul(0x9e3779b97f4a7c15)).count();
            let stats = dlm.stats();
            println!("vec: {n} elements, {bad} mismatches, {} pages evicted", stats.pages_evicted);
            i32::from(bad != 0 || stats.pages_evicted == 0)
        }
        Some("huge") => huge(&dlm, mib_arg(&args)),
        Some("granularity") => granularity(&dlm, mib_arg(&args)),
        Some("verify") => verify(mib_arg(&args)),
        _ => {
            eprintln!("usage: rust_probe oversize | vec MiB | huge MiB | granularity MiB | verify MiB");
            2
        }
    };
    drop(dlm);
    std::process::exit(code);
}

fn mib_arg(args: &[String]) -> usize {
    args.get(2).and_then(|a| a.parse().ok()).unwrap_or(64)
}

fn pattern(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x9e3779b97f4a7c15) | 1
}

fn filled(mib: usize) -> DlmBox<[u64]> {
    let mut data = DlmBox::<[u64]>::new_zeroed_slice((mib << 20) / 8).expect("DLM memory");
    for (i, x) in data.iter_mut().enumerate() {
        *x = pattern(i);
    }
    data
}

fn mismatches(data: &[u64]) -> usize {
    data.iter().enumerate().filter(|&(i, &x)| x != pattern(i)).count()
}

/// Kilobytes of anonymous memory in transparent huge pages, over the whole process.
fn anon_huge_kib() -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("reading /proc/self/smaps");
    smaps
        .lines()
        .filter_map(|l| l.strip_prefix("AnonHugePages:"))
        .filter_map(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .sum()
}

fn huge(dlm: &dlm::Dlm, mib: usize) -> i32 {
    let data = filled(mib);
    let bad = mismatches(&data);
    let stats = dlm.stats();
    println!(
        "huge: mismatches={bad} resident_kib={} anon_huge_kib={} evicted={} moved={} page_size={}",
        stats.resident_bytes >> 10,
        anon_huge_kib(),
        stats.pages_evicted,
        stats.pages_moved,
        stats.page_size
    );
    i32::from(bad != 0)
}

fn print_phase(name: &str, before: Stats, after: Stats) {
    println!(
        "{name}: {} faults, {} blocks fetched, {} bytes fetched",
        after.faults - before.faults,
        after.blocks_fetched - before.blocks_fetched,
        after.bytes_fetched - before.bytes_fetched
    );
}

fn granularity(dlm: &dlm::Dlm, mib: usize) -> i32 {
    let data = filled(mib);
    let start = dlm.stats();
    let bad = mismatches(&data);
    let swept = dlm.stats();
    print_phase("sweep", start, swept);
    let mut x = 88172645463325252u64;
    let mut bad_random = 0;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (x % data.len() as u64) as usize;
        bad_random += usize::from(data[i] != pattern(i));
    }
    print_phase("random", swept, dlm.stats());
    println!("granularity: {} mismatches", bad + bad_random);
    i32::from(bad + bad_random != 0)
}

fn verify(mib: usize) -> i32 {
    let data = filled(mib);
    let bad = mismatches(&data);
    println!("verify: {bad} mismatches");
    i32::from(bad != 0)
}
