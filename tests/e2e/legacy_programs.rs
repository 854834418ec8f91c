//! Legacy-style C programs built by their own Makefiles, once with `make` (gcc) and once with
//! `make CC=dlmcc`: a solver whose grids are defined in a header included by two files and
//! sized by a parameter header that the Makefile generates; an integer sort over three adjacent
//! global arrays; an OpenMP kernel that includes `<omp.h>`. Each DLM build runs with a quarter
//! of its data as the local budget, standalone and under mpirun, prints exactly what the gcc
//! build prints, and fetches at least as many bytes as its data holds (so most of it paged).
//!
//! The sort is the shape of a program that once died with "DLM page … was partly mapped behind
//! the pager's back" (8 M keys, three adjacent 32 MiB arrays whose pages share aligned frames,
//! 24 MiB local); it is kept at that size.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Far above what a run takes on an idle machine (the sort at its full size: about 25 s), for a
/// machine shared with other work.
const LIMIT: Duration = Duration::from_secs(300);

/// One program under tests/c: its directory, what `make` builds, and how to build and run it.
struct Program {
    dir: &'static str,
    executable: &'static str,
    make_args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

/// A copy of the program's sources in `to`, built by `make` with `compiler` (`None`: make's own
/// `cc`); returns the executable.
fn make(program: &Program, to: &Path, compiler: Option<&Path>) -> PathBuf {
    make_copy(program.dir, to, program.make_args, compiler);
    to.join(program.executable)
}

/// The bytes of big data the program says it has, on its line `data N bytes`.
fn data_bytes(stdout: &str) -> u64 {
    let line =
        stdout.lines().find_map(|l| l.strip_prefix("data ")).unwrap_or_else(|| panic!("no data line:\n{stdout}"));
    line.trim_end_matches(" bytes").parse().unwrap_or_else(|_| panic!("data line `{line}`"))
}

/// Runs the DLM build by `cmd` with `budget` bytes local and statistics to `json`: the gcc
/// build's stdout, and at least `data` bytes fetched within the budget.
fn check_paged_run(cmd: &mut Command, what: &str, budget: u64, json: &Path, expected: &str, data: u64) {
    cmd.env("DLM_LOCAL_MEM", budget.to_string()).env("DLM_STATS_JSON", json);
    let out = run(cmd, LIMIT);
    out.assert_success();
    assert_eq!(out.stdout, expected, "{what}: stdout differs from the gcc build's\nstderr:\n{}", out.stderr);
    let stats = std::fs::read_to_string(json).unwrap_or_else(|e| panic!("{what}: no statistics ({e})"));
    assert_eq!(stat(&stats, "local_budget_bytes"), budget as f64, "{what}: {stats}");
    assert!(stat(&stats, "peak_resident_bytes") <= budget as f64, "{what}: {stats}");
    assert!(stat(&stats, "pages_evicted") > 0.0, "{what}: nothing evicted: {stats}");
    assert!(
        stat(&stats, "bytes_fetched") >= data as f64,
        "{what}: fetched less than the {data} bytes of data: {stats}"
    );
}

/// How the DLM build is started.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Launch {
    /// `./prog`: it spawns its memory server.
    Standalone,
    /// `mpirun -np 2 ./prog`: rank 1 serves.
    Mpirun,
}

/// Builds `program` with gcc and with dlmcc, runs the gcc build, then the DLM build with a
/// quarter of the data local, started each way of `launches`; returns the gcc output.
fn same_output_paging_a_quarter(program: &Program, launches: &[Launch]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let native = make(program, &dir.path().join("gcc"), None);
    let dlm = make(program, &dir.path().join("dlm"), Some(&target_dir().join("dlmcc")));
    let mut gcc_run = Command::new(&native);
    gcc_run.envs(program.env.iter().copied());
    let expected = run(&mut gcc_run, LIMIT);
    expected.assert_success();
    let data = data_bytes(&expected.stdout);
    let budget = data / 4;

    for &launch in launches {
        let (mut cmd, what) = match launch {
            Launch::Standalone => (Command::new(&dlm), "standalone"),
            Launch::Mpirun => {
                let mut cmd = mpirun(2);
                cmd.arg(&dlm);
                (cmd, "under mpirun")
            }
        };
        cmd.envs(program.env.iter().copied());
        let json = dir.path().join(format!("{what}.json"));
        check_paged_run(&mut cmd, what, budget, &json, &expected.stdout, data);
        assert_no_survivors(&dlm);
    }
    expected.stdout
}

#[test]
fn solver_with_header_grids_and_generated_parameters_pages_a_quarter_and_matches_gcc() {
    let _heavy = one_at_a_time();
    // Class A: four 16 MiB grids in grid.h, included by main.c and relax.c (-fcommon).
    let program = Program { dir: "tests/c/legacy_solver", executable: "solver", make_args: &["CLASS=A"], env: &[] };
    let stdout = same_output_paging_a_quarter(&program, &[Launch::Standalone, Launch::Mpirun]);
    assert!(stdout.starts_with("class A: grid 64 x 64 x 512, 6 iterations\ndata 67108864 bytes\n"), "{stdout}");
    assert!(stdout.contains("iteration 6 residual "), "{stdout}");
}

#[test]
fn openmp_kernel_that_includes_omp_h_pages_a_quarter_and_matches_gcc() {
    let _heavy = one_at_a_time();
    // Three 16-32 MiB static arrays, parallel loops on two threads, built with -fopenmp.
    let program =
        Program { dir: "tests/c/legacy_omp", executable: "histo", make_args: &[], env: &[("OMP_NUM_THREADS", "2")] };
    let stdout = same_output_paging_a_quarter(&program, &[Launch::Standalone, Launch::Mpirun]);
    assert!(stdout.contains("round 2: ") && stdout.contains(", wrong 0\n"), "{stdout}");
}

/// The sort at the size of the abort: 8 M keys, 96 MiB in three adjacent arrays, 24 MiB local;
/// one timed iteration after the warm-up ranking (about 25 s on an idle machine: the bucket
/// scatter into 1024 streams pages many times the data).
const INTSORT: Program =
    Program { dir: "tests/c/legacy_intsort", executable: "is", make_args: &["LOG_KEYS=23", "ITERATIONS=1"], env: &[] };

/// The same sort at 2 M keys (24 MiB, 6 MiB local), for the run under mpirun.
const INTSORT_SMALL: Program = Program { make_args: &["LOG_KEYS=21", "ITERATIONS=1"], ..INTSORT };

/// Five partial verifications per ranking and the full one passed.
fn assert_sorted(stdout: &str, keys: u32) {
    assert!(stdout.starts_with(&format!("sort of {keys} keys in [0, 524288), 1 iterations\n")), "{stdout}");
    assert!(stdout.contains("\nverified 6 checksum "), "{stdout}");
}

#[test]
fn integer_sort_over_three_adjacent_global_arrays_at_the_abort_size_pages_a_quarter_standalone() {
    let _heavy = one_at_a_time();
    assert_sorted(&same_output_paging_a_quarter(&INTSORT, &[Launch::Standalone]), 1 << 23);
}

#[test]
fn integer_sort_over_three_adjacent_global_arrays_pages_a_quarter_under_mpirun() {
    let _heavy = one_at_a_time();
    assert_sorted(&same_output_paging_a_quarter(&INTSORT_SMALL, &[Launch::Mpirun]), 1 << 21);
}
