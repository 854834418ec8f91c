//! However the program ends, no memory server outlives it and nothing hangs.

use crate::support::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

fn exits_program(dir: &Path) -> std::path::PathBuf {
    dlmcc(dir, "tests/c/exits.c")
}

#[test]
fn every_ending_cleans_up_standalone() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let exe = exits_program(dir.path());
    for (mode, expect_code) in [("return", Some(0)), ("exit3", Some(3)), ("segv", None), ("abort", None)] {
        let out = run(Command::new(&exe).args([mode, "64"]).env("DLM_LOCAL_MEM", "16M"), LIMIT);
        assert!(out.stdout.contains("filled"), "{mode}: {}", out.stderr);
        match expect_code {
            Some(code) => assert_eq!(out.status.code(), Some(code), "{mode}: {}", out.stderr),
            None => assert!(!out.status.success(), "{mode} exited successfully"),
        }
        assert_no_survivors(&exe);
    }
}

#[test]
fn every_ending_cleans_up_under_mpirun() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let exe = exits_program(dir.path());
    for (mode, success) in [("return", true), ("exit3", false), ("segv", false)] {
        let out = run(mpirun(3).arg(&exe).args([mode, "64", "--", "-l", "16M"]), LIMIT);
        assert!(out.stdout.contains("filled"), "{mode}: {}", out.stderr);
        assert_eq!(out.status.success(), success, "{mode}: {}", out.stderr);
        assert_no_survivors(&exe);
    }
}

/// Starts `cmd` (which runs `exits hang`), kills the compute process with SIGKILL once it has
/// paged, and checks that the job ends and no process is left.
fn kill_compute_process(cmd: &mut Command, exe: &Path) {
    let (child, pid) = start_hanging(cmd);
    assert!(Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success());
    ends_within(child, LIMIT);
    assert_no_survivors(exe);
}

#[test]
fn kill_9_of_the_compute_process_leaves_no_server() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let exe = exits_program(dir.path());
    kill_compute_process(Command::new(&exe).args(["hang", "64"]).env("DLM_LOCAL_MEM", "16M"), &exe);
    kill_compute_process(mpirun(3).arg(&exe).args(["hang", "64", "--", "-l", "16M"]), &exe);
}
