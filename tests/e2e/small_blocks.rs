//! A legacy program whose data is all small blocks (tests/c/mgrows: multigrid grids built row
//! by row with malloc and calloc, ~250 MB in 174 000 blocks of under 2 KiB, freed and rebuilt,
//! a history grown with realloc) built with its own Makefile and `make CC=dlmcc`: every block
//! lands in DLM memory (the small-block heap), pages through a quarter of the data, standalone
//! and under mpirun, and the program prints exactly what its gcc build prints. And small blocks
//! beyond what DLM memory holds (tests/c/smallfull.c) come from the C library instead; threads
//! allocate and free each other's small blocks while paging (tests/c/smallthreads.c).

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(180);
const SOURCE_DIR: &str = "tests/c/mgrows";
/// Grid size and V-cycles: 208^3 doubles per grid, three grids per level, five levels.
const ARGS: [&str; 2] = ["208", "2"];
/// A quarter of the data (the program reports 248 MB).
const LOCAL: &str = "60M";

/// Builds the program with `make` in a fresh copy of its directory, with `CC` given if any.
fn make_in(dir: &Path, cc: Option<&Path>) -> PathBuf {
    make_copy(SOURCE_DIR, dir, &[], cc);
    dir.join("mgrows")
}

/// Runs the dlmcc build through `cmd` at a quarter local; checks its output against `expected`
/// and that its data went through DLM: the small-block heap holds at least the data, none of it
/// stayed in the C library, and more than the data was fetched back from the server.
fn check_paged_run(cmd: &mut Command, json: &Path, expected: &Output, how: &str) {
    let out = run(cmd.args(ARGS).env("DLM_LOCAL_MEM", LOCAL).env("DLM_STATS_JSON", json), LIMIT);
    out.assert_success();
    assert_eq!(out.stdout, expected.stdout, "{how}: output differs from the gcc build\nstderr:\n{}", out.stderr);
    let data = data_bytes(expected);
    let stats = std::fs::read_to_string(json).unwrap_or_else(|e| panic!("{how}: no statistics ({e})"));
    assert!(stat(&stats, "small_heap_bytes") >= data, "{how}: the small-block heap does not hold the data: {stats}");
    assert_eq!(stat(&stats, "small_blocks_in_libc"), 0.0, "{how}: {stats}");
    assert!(stat(&stats, "bytes_fetched") >= data, "{how}: less than the data was paged: {stats}");
    assert!(stat(&stats, "peak_resident_bytes") <= stat(&stats, "local_budget_bytes"), "{how}: {stats}");
}

/// The bytes of every block the program allocated, as it reports them (`data: N bytes ...`).
fn data_bytes(out: &Output) -> f64 {
    let field = out.field("data:");
    field.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("bad data line: {field}"))
}

#[test]
fn rows_of_a_multigrid_program_page_through_a_quarter_and_match_gcc() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let native = make_in(&dir.path().join("native"), Some(Path::new("gcc")));
    let exe = make_in(&dir.path().join("dlm"), Some(&target_dir().join("dlmcc")));

    let expected = run(Command::new(&native).args(ARGS), LIMIT);
    expected.assert_success();
    assert!(data_bytes(&expected) >= 200e6, "the test size is too small: {}", expected.stdout);
    assert!(expected.stdout.contains("freed: every block"), "{}", expected.stdout);

    check_paged_run(&mut Command::new(&exe), &dir.path().join("alone.json"), &expected, "standalone");
    assert_no_survivors(&exe);
    let mut under_mpirun = mpirun(2);
    under_mpirun.arg(&exe);
    check_paged_run(&mut under_mpirun, &dir.path().join("mpirun.json"), &expected, "under mpirun");
    assert_no_survivors(&exe);
}

/// Small blocks beyond budget + servers: the rest come from the C library and the program goes
/// on as natively (said once, and counted); blocks grown past the threshold and shrunk back
/// keep their data wherever they move, also when DLM memory cannot take them.
#[test]
fn small_blocks_beyond_dlm_memory_come_from_the_c_library_and_the_program_goes_on() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let native = cc_native(dir.path(), "tests/c/smallfull.c");
    let exe = dlmcc(dir.path(), "tests/c/smallfull.c");
    let expected = run(Command::new(&native).arg("96"), LIMIT);
    expected.assert_success();
    assert!(expected.stdout.contains("0 damaged\nrealloc across the threshold: 0 damaged"), "{}", expected.stdout);

    let mut under_mpirun = mpirun(2);
    under_mpirun.arg(&exe);
    for (cmd, how) in [(&mut Command::new(&exe), "standalone"), (&mut under_mpirun, "under mpirun")] {
        let json = dir.path().join("stats.json");
        // 96 MiB of 4000-byte blocks through 16 MiB local and a 48 MiB server.
        let out = run(
            cmd.arg("96").env("DLM_LOCAL_MEM", "16M").env("DLM_SERVER_MEM", "48M").env("DLM_STATS_JSON", &json),
            LIMIT,
        );
        out.assert_success();
        assert_eq!(out.stdout, expected.stdout, "{how}: stderr:\n{}", out.stderr);
        assert_eq!(out.stderr.matches("dlm: DLM memory is full").count(), 1, "{how}: {}", out.stderr);
        let stats = std::fs::read_to_string(&json).unwrap();
        let limit = stat(&stats, "local_budget_bytes") + stat(&stats, "server_capacity_bytes");
        assert!(stat(&stats, "small_blocks_in_libc") > 0.0, "{how}: {stats}");
        assert!(stat(&stats, "small_heap_bytes") <= limit, "{how}: {stats}");
        assert!(stat(&stats, "small_heap_bytes") >= limit / 2.0, "{how}: the heap did not fill: {stats}");
        assert_no_survivors(&exe);
    }
}

/// The small-block heap keeps what it took (mimalloc never gives arena memory back): after 30
/// MiB of small blocks are freed, a 30 MiB block that DLM memory cannot hold any more comes from
/// the C library, as natively, instead of failing. Small blocks handed to system calls work.
#[test]
fn a_big_block_after_freed_small_ones_succeeds_when_dlm_memory_is_taken() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let native = cc_native(dir.path(), "tests/c/smallsys.c");
    let exe = dlmcc(dir.path(), "tests/c/smallsys.c");
    let expected = run(&mut Command::new(&native), LIMIT);
    expected.assert_success();
    assert!(expected.stdout.contains("freed: ok\nits last byte: 4\n"), "{}", expected.stdout);
    // A limit of 40 MiB: 8 MiB local and a 32 MiB server.
    let out = run(Command::new(&exe).env("DLM_LOCAL_MEM", "8M").env("DLM_SERVER_MEM", "32M"), LIMIT);
    out.assert_success();
    assert_eq!(out.stdout, expected.stdout, "stderr:\n{}", out.stderr);
    assert!(out.stderr.contains("in DLM memory (") && out.stderr.contains("come from the C library"), "{}", out.stderr);
    assert_no_survivors(&exe);
}

/// Four threads allocate small blocks at once, check and free each other's and grow their own,
/// through a budget of a fifth of their data: faults inside the allocator while other threads
/// hold its locks; the same output as the gcc build.
#[test]
fn threads_allocating_and_freeing_each_others_small_blocks_while_paging_match_gcc() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let (native, exe) = (dir.path().join("native"), dir.path().join("smallthreads"));
    for (compiler, out) in [(Path::new("cc").to_path_buf(), &native), (target_dir().join("dlmcc"), &exe)] {
        let status = Command::new(&compiler)
            .args(["-O2", "-Wall", "-pthread", "-o"])
            .arg(out)
            .arg(repo_dir().join("tests/c/smallthreads.c"))
            .status()
            .expect("run the compiler");
        assert!(status.success(), "{} failed", compiler.display());
    }
    let expected = run(Command::new(&native).arg("32"), LIMIT);
    expected.assert_success();
    assert!(expected.stdout.contains(": 0 damaged"), "{}", expected.stdout);
    let mut under_mpirun = mpirun(2);
    under_mpirun.arg(&exe);
    for (cmd, how) in [(&mut Command::new(&exe), "standalone"), (&mut under_mpirun, "under mpirun")] {
        let json = dir.path().join("stats.json");
        let out = run(cmd.arg("32").env("DLM_LOCAL_MEM", "24M").env("DLM_STATS_JSON", &json), LIMIT);
        out.assert_success();
        assert_eq!(out.stdout, expected.stdout, "{how}: stderr:\n{}", out.stderr);
        let stats = std::fs::read_to_string(&json).unwrap();
        assert!(stat(&stats, "small_heap_bytes") >= 128e6, "{how}: {stats}");
        assert!(stat(&stats, "bytes_fetched") > 0.0, "{how}: nothing paged: {stats}");
        assert_no_survivors(&exe);
    }
}
