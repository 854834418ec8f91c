//! Every `free`, `realloc` and `malloc_usable_size` in the process handles DLM blocks: blocks
//! that a dlmcc-built program allocated, freed, grown and read into by code dlmcc did not
//! rewrite (a macro from a header, a shared library built with plain cc, glibc's `getline`, a
//! pointer to `free`, an `atexit` handler and a destructor after `main`). And a program that dies mid-transfer
//! leaves its servers a DLM line, never a transport backtrace.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(180);
const SOURCES: [&str; 2] = ["tests/c/freeanywhere/main.c", "tests/c/freeanywhere/arrays.c"];
/// Each big array of the program, MiB; about 64 MiB are live at the peak.
const ARRAY_MIB: &str = "16";

/// Builds the program with `compiler` (dlmcc or cc) against the plain-cc library in `dir`.
fn build(compiler: &Path, dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new(compiler)
        .args(["-O2", "-Wall", "-o"])
        .arg(&out)
        .args(SOURCES.map(|s| repo_dir().join(s)))
        .arg(format!("-L{}", dir.display()))
        .args(["-lplain", &format!("-Wl,-rpath,{}", dir.display())])
        .status()
        .expect("run the compiler");
    assert!(status.success(), "{} failed", compiler.display());
    out
}

fn plain_library(dir: &Path) {
    let status = Command::new("cc")
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(dir.join("libplain.so"))
        .arg(repo_dir().join("tests/c/freeanywhere/plainlib.c"))
        .status()
        .expect("cc");
    assert!(status.success(), "cc -shared failed");
}

#[test]
fn dlm_blocks_freed_grown_and_measured_by_code_dlmcc_did_not_rewrite() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    check_native_then_dlm_both_ways(None, dir.path());
}

/// Builds the program natively and with dlmcc in `dir`, runs it (as `user` if given) natively,
/// then with a quarter of its data local standalone and under mpirun: the same output, paged.
/// Returns the standalone run's stderr (its DLM statistics).
pub(crate) fn check_native_then_dlm_both_ways(user: Option<&PlainUser>, dir: &Path) -> String {
    plain_library(dir);
    let native = build(Path::new("cc"), dir, "native");
    let exe = build(&target_dir().join("dlmcc"), dir, "freeanywhere");
    let mut native_run = Command::new(&native);
    native_run.arg(dir).arg(ARRAY_MIB);
    let expected = run(&mut as_user(user, dir, native_run), LIMIT);
    expected.assert_success();
    assert!(expected.stdout.contains("destructor:"), "{}", expected.stdout);
    assert!(expected.stdout.contains("equal 1"), "{}", expected.stdout);

    let mut standalone = Command::new(&exe);
    standalone.arg(dir).arg(ARRAY_MIB).env("DLM_LOCAL_MEM", "16M").env("DLM_STATS", "1");
    let standalone = run(&mut as_user(user, dir, standalone), LIMIT);
    standalone.assert_success();
    assert_eq!(standalone.stdout, expected.stdout, "stderr: {}", standalone.stderr);
    assert!(!standalone.stderr.contains("evicted 0 "), "nothing paged: {}", standalone.stderr);
    let mut cmd = mpirun(2);
    cmd.arg(&exe).arg(dir).arg(ARRAY_MIB).env("DLM_LOCAL_MEM", "16M");
    let under_mpirun = run(&mut as_user(user, dir, cmd), LIMIT);
    under_mpirun.assert_success();
    assert_eq!(under_mpirun.stdout, expected.stdout, "stderr: {}", under_mpirun.stderr);
    assert_no_survivors(&exe);
    standalone.stderr
}

#[test]
fn a_program_killed_mid_transfer_leaves_no_transport_backtrace() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let exe = dlmcc(dir.path(), "tests/c/exits.c");
    for round in 0..3 {
        let (child, pid) = start_hanging(mpirun(2).arg(&exe).args(["sweep", "64", "--", "-l", "16M"]));
        std::thread::sleep(Duration::from_millis(300 * round));
        assert!(Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success());
        let (_, stderr) = ends_within(child, LIMIT);
        assert!(!stderr.contains("backtrace"), "a transport backtrace:\n{stderr}");
        if stderr.contains("process_vm_readv") {
            // UCX saw the program vanish mid-copy: the server says what happened, once.
            assert_eq!(stderr.matches("the program it served").count(), 1, "{stderr}");
        }
        assert_no_survivors(&exe);
    }
}
