//! 1 GiB of data through a 256 MiB local budget, from C and from Rust, under both launches:
//! every element is checked and the checksum equals a native run's.

use crate::support::*;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

const DATA_MIB: &str = "1024";
const BUDGET: &str = "256M";
const LIMIT: Duration = Duration::from_secs(300);

/// The checksum of bigarray.c built with plain cc on ordinary memory.
fn native_checksum() -> &'static str {
    static CHECKSUM: OnceLock<String> = OnceLock::new();
    CHECKSUM.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let native = cc_native(dir.path(), "examples/c/bigarray.c");
        let out = run(Command::new(native).arg(DATA_MIB), LIMIT);
        out.assert_success().field("checksum:")
    })
}

/// Runs `cmd` with a 256 MiB budget and checks the result and the paging statistics.
fn check_paged_run(cmd: &mut Command, dir: &Path) {
    let json = dir.join("stats.json");
    cmd.env("DLM_LOCAL_MEM", BUDGET).env("DLM_STATS_JSON", &json);
    let out = run(cmd, LIMIT);
    out.assert_success();
    assert_eq!(out.field("elements:"), "134217728 mismatches: 0 stale: 0");
    assert_eq!(out.field("checksum:"), native_checksum());
    let stats = std::fs::read_to_string(&json).expect("DLM_STATS_JSON written at shutdown");
    for key in ["faults", "bytes_fetched", "bytes_written_back", "pages_evicted"] {
        assert!(stat(&stats, key) > 0.0, "{key} is 0 in {stats}");
    }
    assert_eq!(stat(&stats, "local_budget_bytes"), (256u64 << 20) as f64);
    assert!(stat(&stats, "peak_resident_bytes") <= stat(&stats, "local_budget_bytes"), "{stats}");
    assert!(stat(&stats, "peak_resident_bytes") > 0.0);
    assert!(stat(&stats, "wait_seconds") > 0.0);
    // Pages of 128 KiB and more are moved into place where the kernel can.
    assert_eq!(stat(&stats, "pages_moved") > 0.0, kernel_moves_pages(), "{stats}");
}

fn two_local_servers(dir: &Path) -> std::path::PathBuf {
    let memfile = dir.join("memfile");
    std::fs::write(&memfile, "# two servers on this host\nlocalhost 1G\nlocalhost 1G\n").unwrap();
    memfile
}

#[test]
fn c_program_standalone_spawns_servers_from_memfile() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let exe = dlmcc(dir.path(), "examples/c/bigarray.c");
    let memfile = two_local_servers(dir.path());
    check_paged_run(Command::new(&exe).arg(DATA_MIB).env("DLM_MEMFILE", memfile), dir.path());
    assert_eq!(survivors_after(&exe, Duration::from_secs(10)), Vec::<u32>::new());
}

#[test]
fn c_program_under_mpirun_with_two_servers() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let exe = dlmcc(dir.path(), "examples/c/bigarray.c");
    check_paged_run(mpirun(3).arg(&exe).arg(DATA_MIB), dir.path());
}

#[test]
fn rust_program_standalone_with_default_server() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    check_paged_run(Command::new(rust_example("bigsweep")).arg(DATA_MIB), dir.path());
}

#[test]
fn rust_program_under_mpirun_with_two_servers_and_classic_options() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let memfile = two_local_servers(dir.path());
    // The classic form after `--` (page size, memfile) is taken off the program's arguments.
    let mut cmd = mpirun(3);
    cmd.arg(rust_example("bigsweep")).args([DATA_MIB, "--", "-p", "128K"]).arg(memfile);
    check_paged_run(&mut cmd, dir.path());
}

#[test]
fn rust_vec_grows_past_the_budget() {
    let _heavy = one_at_a_time();
    let probe = test_program("rust_probe");
    let out = run(Command::new(probe).args(["vec", "96"]).env("DLM_LOCAL_MEM", "16M"), LIMIT);
    out.assert_success();
    assert!(out.stdout.contains("vec: 12582912 elements, 0 mismatches"), "{}", out.stdout);
}

#[test]
fn default_pages_are_huge_pages_moved_whole_and_stay_huge() {
    let _heavy = one_at_a_time();
    require("2 MiB pages moved whole", why_huge_pages_do_not_move());
    let probe = test_program("rust_probe");
    // 512 MiB through 128 MiB (huge pages are the default from this budget): every page is
    // evicted and fetched back at least once.
    let out = run(Command::new(probe).args(["huge", "512"]).env("DLM_LOCAL_MEM", "128M"), LIMIT);
    out.assert_success();
    let fields = out.field("huge:");
    let number = |key: &str| -> u64 {
        let value = fields.split(' ').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='));
        value.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no {key} in {fields}"))
    };
    assert_eq!(number("mismatches"), 0, "{fields}");
    assert_eq!(number("page_size"), 2 << 20, "the default page is a huge page: {fields}");
    assert!(number("evicted") > 100 && number("moved") > 100, "{fields}");
    // The resident DLM pages are transparent huge pages (besides them, only the staging
    // slots can be), so they were moved in and out whole, never split.
    assert!(number("anon_huge_kib") >= number("resident_kib"), "resident DLM pages are not huge pages: {fields}");
}

#[test]
fn fetch_granularity_follows_the_access() {
    let _heavy = one_at_a_time();
    let probe = test_program("rust_probe");
    let out = run(
        Command::new(probe).args(["granularity", "256"]).env("DLM_LOCAL_MEM", "64M").env("DLM_PAGE_SIZE", "2M"),
        LIMIT,
    );
    out.assert_success();
    assert_eq!(out.field("granularity:"), "0 mismatches");
    let phase = |name: &str| -> Vec<u64> {
        out.field(name).split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect()
    };
    let (sweep, random) = (phase("sweep:"), phase("random:"));
    let page = 2u64 << 20;
    // The sweep brings whole pages: about one fault per page and at most a couple of blocks.
    assert!(sweep[0] <= 256 * (1 << 20) / page + 8, "sweep faults: {sweep:?}");
    assert!(sweep[1] <= 4, "sweep fetched single blocks: {sweep:?}");
    // 20 000 random 8-byte reads over 256 MiB, three quarters not resident: each miss brings
    // a 4 KiB block, not a 2 MiB page (a page that happens to look densely used comes whole:
    // a few of the 128). Whole pages for every miss would be over 20 GB.
    assert!(random[1] > 10_000, "random reads did not fetch single blocks: {random:?}");
    assert!(random[2] < 20_000 * 4096 + 64 * page, "random reads fetched {} bytes", random[2]);
}

/// `DLM_STATS_LIVE`: a paging program's live statistics, one JSON line every half second and a
/// last one at shutdown, as a cluster's manager reads them for DLM-WAN's live view.
#[test]
fn live_statistics_are_written_while_the_program_pages() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("stats.jsonl");
    // 256 MiB through 96 MiB: a few seconds of paging to the one server spawned here.
    let mut cmd = Command::new(rust_example("bigsweep"));
    cmd.arg("256").env("DLM_LOCAL_MEM", "96M").env("DLM_STATS_LIVE", &live);
    let started = std::time::Instant::now();
    let out = run(&mut cmd, LIMIT);
    let took = started.elapsed();
    out.assert_success();
    assert!(out.stdout.contains("mismatches: 0 stale: 0"), "{}", out.stdout);
    let text = std::fs::read_to_string(&live).expect("DLM_STATS_LIVE written");
    let lines: Vec<dlm_pool::proto::StatLine> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: `{l}`"))).collect();
    // One at the start, one every 500 ms, one at shutdown (a loaded machine may delay some).
    assert!(
        lines.len() >= 2 && lines.len() as u128 >= took.as_millis() / 1000,
        "{} lines in {took:?}:\n{text}",
        lines.len()
    );
    let (first, last) = (&lines[0], &lines[lines.len() - 1]);
    assert!(lines.windows(2).all(|w| w[0].t_ms < w[1].t_ms && w[0].bytes_fetched <= w[1].bytes_fetched), "{text}");
    assert!(last.bytes_fetched > first.bytes_fetched && last.bytes_written_back > 0 && last.faults > 0, "{text}");
    assert!(lines.iter().all(|l| l.local_budget_bytes == 96 << 20 && l.resident_bytes <= l.local_budget_bytes));
    // The one spawned server, on this host, held the pages that did not fit the budget (and
    // nothing once the program had freed its blocks before it exited).
    assert!(lines.iter().all(|l| l.servers.len() == 1 && !l.servers[0].host.is_empty()), "{text}");
    let most = lines.iter().map(|l| l.servers[0].bytes).max().unwrap();
    assert!((160 << 20..=256 << 20).contains(&most), "{text}");
    assert_eq!((last.resident_bytes, last.servers[0].bytes), (0, 0), "{text}");
}

/// A loop over more data than the budget keeps a part resident (FIFO re-fetches all of it on
/// every pass; the optimum re-fetches three quarters here), and a loop that fits, over data
/// the first one evicted, becomes resident within about two passes (FIFO: one) although the
/// first loop's kept pages filled the budget. Every element is checked.
#[test]
fn loops_keep_a_part_resident_and_a_loop_that_fits_moves_in() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let exe = dlmcc(dir.path(), "tests/c/loops.c");
    let out = run(Command::new(exe).arg("64").env("DLM_LOCAL_MEM", "64M"), LIMIT);
    out.assert_success();
    assert!(out.stdout.contains("loops ok"), "{}", out.stdout);
    let mib = |key: &str| out.field(key).parse::<u64>().unwrap() >> 20;
    let (large, fitting) = (mib("large loop fetched:"), mib("fitting loop fetched:"));
    // 3 passes over 256 MiB: FIFO fetches 768 MiB, the optimum 576 MiB.
    assert!(large <= 650, "the large loop fetched {large} MiB: nothing of it was kept");
    // 8 passes over 32 MiB.
    assert!(fitting <= 80, "the fitting loop fetched {fitting} MiB: it did not become resident");
}
