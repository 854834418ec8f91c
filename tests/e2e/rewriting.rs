//! Unmodified legacy C programs (tests/c/legacy) recompiled by dlmcc: their big static arrays
//! and big malloc/calloc/realloc buffers live in DLM memory, page through a local budget of a
//! quarter of their data, standalone and under mpirun, and print exactly what a native build
//! prints.

use crate::support::*;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(300);
pub(crate) const STENCIL: &[&str] = &["tests/c/legacy/stencil/stencil.c"];
pub(crate) const TRIAD: &[&str] = &["tests/c/legacy/triad/triad.c"];
const MULTIFILE_DIR: &str = "tests/c/legacy/multifile";
pub(crate) const MULTIFILE: &[&str] =
    &["tests/c/legacy/multifile/main.c", "tests/c/legacy/multifile/grid.c", "tests/c/legacy/multifile/solve.c"];
pub(crate) const HEAPIO: &[&str] = &["tests/c/legacy/heapio/heapio.c"];

pub(crate) fn dlmcc_path() -> PathBuf {
    let dlmcc = target_dir().join("dlmcc");
    assert!(dlmcc.is_file(), "{} is missing: run `cargo build --release --workspace` first", dlmcc.display());
    dlmcc
}

/// Compiles and links `sources` (relative to the repo) with `compiler` and `flags` into `out`.
pub(crate) fn compile(compiler: &Path, flags: &[&str], sources: &[&str], out: &Path) -> PathBuf {
    let mut cmd = Command::new(compiler);
    cmd.args(flags).arg("-o").arg(out);
    for source in sources {
        cmd.arg(repo_dir().join(source));
    }
    succeed(&mut cmd);
    out.to_path_buf()
}

/// The native build: plain cc, which must also find the program warning-free.
pub(crate) fn build_native(dir: &Path, sources: &[&str], name: &str) -> PathBuf {
    compile(Path::new("cc"), &["-O2", "-Wall", "-Wextra", "-Werror"], sources, &dir.join(format!("{name}-native")))
}

/// The same sources, unmodified, through dlmcc.
pub(crate) fn build_dlm(dir: &Path, sources: &[&str], name: &str) -> PathBuf {
    compile(&dlmcc_path(), &["-O2"], sources, &dir.join(format!("{name}-dlm")))
}

/// Asserts that the run behind `json` paged: evictions, fetches, within `budget_mib`.
fn assert_paged(json: &Path, budget_mib: u64) {
    let stats = std::fs::read_to_string(json).unwrap_or_else(|e| {
        panic!(
            "no DLM statistics at {} ({e}): the program never started DLM, so dlmcc did not put its \
             arrays in DLM memory",
            json.display()
        )
    });
    for key in ["faults", "pages_evicted", "bytes_fetched", "bytes_written_back"] {
        assert!(stat(&stats, key) > 0.0, "{key} is 0: the data did not page through DLM\n{stats}");
    }
    assert_eq!(stat(&stats, "local_budget_bytes"), (budget_mib << 20) as f64, "{stats}");
    assert!(stat(&stats, "peak_resident_bytes") <= stat(&stats, "local_budget_bytes"), "{stats}");
}

/// Runs the DLM build `cmd` with a budget of `budget_mib` MiB and statistics to `json`;
/// asserts success, the native stdout, and paging.
fn check_dlm_run(cmd: &mut Command, budget_mib: u64, json: &Path, native_stdout: &str, what: &str) {
    cmd.env("DLM_LOCAL_MEM", format!("{budget_mib}M")).env("DLM_STATS_JSON", json);
    let out = run(cmd, LIMIT);
    out.assert_success();
    assert_eq!(out.stdout, native_stdout, "{what}: stdout differs from the native build's\nstderr:\n{}", out.stderr);
    assert_paged(json, budget_mib);
}

/// Native run, then the dlmcc build standalone (spawned server) and under `mpirun -np 3`
/// (two server ranks), each with `args(dir, run_name)`: same stdout, paging in both.
fn native_then_dlm_both_ways(
    dir: &Path,
    native: &Path,
    dlm: &Path,
    budget_mib: u64,
    args: impl Fn(&str) -> Vec<OsString>,
) -> String {
    native_then_dlm_both_ways_as(None, dir, native, dlm, budget_mib, args)
}

/// [`native_then_dlm_both_ways`], every run as `user` when one is given (`dir` is then theirs).
pub(crate) fn native_then_dlm_both_ways_as(
    user: Option<&PlainUser>,
    dir: &Path,
    native: &Path,
    dlm: &Path,
    budget_mib: u64,
    args: impl Fn(&str) -> Vec<OsString>,
) -> String {
    let as_user = |cmd: Command| as_user(user, dir, cmd);
    let mut native_cmd = Command::new(native);
    native_cmd.args(args("native"));
    let native_out = run(&mut as_user(native_cmd), LIMIT);
    native_out.assert_success();
    assert!(!native_out.stdout.is_empty());

    let mut alone = Command::new(dlm);
    alone.args(args("standalone"));
    let mut alone = as_user(alone);
    check_dlm_run(&mut alone, budget_mib, &dir.join("standalone.json"), &native_out.stdout, "standalone");
    assert_no_survivors(dlm);

    let mut under = mpirun(3);
    under.arg(dlm).args(args("mpirun"));
    let mut under = as_user(under);
    check_dlm_run(&mut under, budget_mib, &dir.join("mpirun.json"), &native_out.stdout, "under mpirun");
    assert_no_survivors(dlm);
    native_out.stdout
}

pub(crate) fn no_args(_: &str) -> Vec<OsString> {
    Vec::new()
}

#[test]
fn stencil_static_grids_page_through_a_quarter_and_print_the_native_residuals() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    // 14 static float grids of 97 x 97 x 257: 129 MiB through 32 MiB.
    let native = build_native(dir.path(), STENCIL, "stencil");
    let dlm = build_dlm(dir.path(), STENCIL, "stencil");
    let stdout = native_then_dlm_both_ways(dir.path(), &native, &dlm, 32, no_args);
    assert!(stdout.contains("gosa after 8: "), "{stdout}");
}

#[test]
fn triad_static_arrays_with_an_initializer_page_and_match_native() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    // 3 static double arrays of 40 MiB (one with `= {1.0, 2.0, 3.0}`): 120 MiB through 30 MiB.
    let native = build_native(dir.path(), TRIAD, "triad");
    let dlm = build_dlm(dir.path(), TRIAD, "triad");
    let stdout = native_then_dlm_both_ways(dir.path(), &native, &dlm, 30, no_args);
    assert!(stdout.contains("initial a: 1.0 2.0 3.0 0.0 zeros in b,c: 1"), "{stdout}");
    assert!(stdout.contains("mismatches: 0"), "{stdout}");
}

#[test]
fn multifile_globals_shared_across_translation_units_page_and_match_native() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    // extern/tentative/initialized globals, a static local, a const table and an array of
    // structs over three files: 115 MiB through 28 MiB.
    let native = build_native(dir.path(), MULTIFILE, "multifile");
    let dlm = build_dlm(dir.path(), MULTIFILE, "multifile");
    let stdout = native_then_dlm_both_ways(dir.path(), &native, &dlm, 28, no_args);
    assert!(stdout.contains("seeds: 5314159260000000"), "{stdout}");
    assert!(stdout.contains("table: 53686927360"), "{stdout}");
    assert!(stdout.contains("badids 0"), "{stdout}");
}

#[test]
fn multifile_makefile_builds_with_make_cc_dlmcc_and_cc_env_and_matches_native_make() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let dlmcc = dlmcc_path();
    let (native_dir, arg_dir, env_dir) = (dir.path().join("native"), dir.path().join("arg"), dir.path().join("env"));
    for d in [&native_dir, &arg_dir, &env_dir] {
        copy_sources(MULTIFILE_DIR, d);
    }
    // `make`, `make CC=dlmcc`, `CC=dlmcc make`: the Makefile is the program's own, untouched.
    succeed(Command::new("make").arg("-C").arg(&native_dir).env_remove("CC"));
    succeed(Command::new("make").arg("-C").arg(&arg_dir).arg(format!("CC={}", dlmcc.display())).env_remove("CC"));
    succeed(Command::new("make").arg("-C").arg(&env_dir).env("CC", &dlmcc));

    let native = run(&mut Command::new(native_dir.join("multifile")), LIMIT);
    native.assert_success();

    let json = dir.path().join("arg.json");
    let by_arg = arg_dir.join("multifile");
    check_dlm_run(&mut Command::new(&by_arg), 28, &json, &native.stdout, "make CC=dlmcc, standalone");
    assert_no_survivors(&by_arg);

    let json = dir.path().join("env.json");
    let by_env = env_dir.join("multifile");
    let mut under = mpirun(3);
    under.arg(&by_env);
    check_dlm_run(&mut under, 28, &json, &native.stdout, "CC=dlmcc make, under mpirun");
    assert_no_survivors(&by_env);

    // `make clean` works on the dlmcc build too.
    succeed(Command::new("make").arg("-C").arg(&arg_dir).arg(format!("CC={}", dlmcc.display())).arg("clean"));
    assert!(!by_arg.exists() && !arg_dir.join("main.o").exists());
}

#[test]
fn heapio_malloc_calloc_realloc_buffers_page_and_fread_fwrite_match_native() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    // 48 MiB written with fwrite and read back with fread into malloc'd buffers, a realloc'd
    // buffer grown to 32 MiB, a 16 MiB calloc: 112 MiB live at the peak, through 28 MiB.
    let native = build_native(dir.path(), HEAPIO, "heapio");
    let dlm = build_dlm(dir.path(), HEAPIO, "heapio");
    let data = |run_name: &str| dir.path().join(format!("{run_name}.bin"));
    let stdout = native_then_dlm_both_ways(dir.path(), &native, &dlm, 28, |run_name| vec![data(run_name).into()]);
    assert!(stdout.contains("bad: 0"), "{stdout}");
    // The file written from (DLM) heap buffers is byte for byte the native one.
    let expected = std::fs::read(data("native")).unwrap();
    assert_eq!(expected.len(), 48 << 20);
    for run_name in ["standalone", "mpirun"] {
        assert!(std::fs::read(data(run_name)).unwrap() == expected, "{run_name}: the written file differs");
    }
}

#[test]
fn arrays_defined_in_a_header_page_once_per_definition_and_match_native() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    // A static 10 MiB array in a header included by two files (two copies), a shared tentative
    // definition of 2 MiB (-fcommon: one array registered by both files) and an initialized
    // 2 MiB table: 24.8 MiB through 6 MiB.
    let sources = ["tests/c/header_arrays/main.c", "tests/c/header_arrays/solver.c"];
    let native = compile(
        Path::new("cc"),
        &["-O2", "-Wall", "-Werror", "-fcommon"],
        &sources,
        &dir.path().join("headers-native"),
    );
    let dlm = compile(&dlmcc_path(), &["-O2", "-fcommon"], &sources, &dir.path().join("headers-dlm"));
    let stdout = native_then_dlm_both_ways(dir.path(), &native, &dlm, 6, no_args);
    assert!(stdout.ends_with(" 3.0 10649600\n"), "{stdout}");
    let mut report = Command::new(dlmcc_path());
    report.args(["--dlm-report", "-fcommon", "-c", "-o"]).arg(dir.path().join("solver.o"));
    report.arg(repo_dir().join(sources[1]));
    let out = report.output().unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    for line in [
        "header.h:5: array 'u' (double[5][64][64][65], 10.16 MiB) -> DLM",
        "header.h:6: array 'shared_grid' (double[64][64][64], 2 MiB) -> DLM",
        "header.h:7: array 'coef' (const double[262144], 2 MiB) -> DLM",
    ] {
        assert!(report.contains(line), "no `{line}` in:\n{report}");
    }
    assert!(!report.contains("elsewhere"), "an extern declaration was moved:\n{report}");
}
