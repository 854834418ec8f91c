//! The kernel reading and writing DLM memory, and several threads faulting at once.

use crate::support::*;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(180);

#[test]
fn stdio_and_syscalls_on_dlm_buffers_are_byte_exact() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let exe = dlmcc(dir.path(), "tests/c/fileio.c");
    // 3 x 64 MiB of buffers through 16 MiB.
    let out = run(Command::new(&exe).arg(dir.path()).arg("64").env("DLM_LOCAL_MEM", "16M"), LIMIT);
    out.assert_success();
    assert!(out.stdout.contains("fileio ok"), "{}", out.stdout);
    assert!(!out.stdout.contains("evicted 0 "), "{}", out.stdout);
    // dlm_get_stats fills the C struct field by field.
    assert!(out.stdout.contains("budget 16777216 page 262144 servers 1 peak<=budget 1"), "{}", out.stdout);
}

#[test]
fn stdio_and_syscalls_under_mpirun_with_small_pages() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let exe = dlmcc(dir.path(), "tests/c/fileio.c");
    let mut cmd = mpirun(2);
    cmd.arg(&exe).arg(dir.path()).args(["32", "--", "-l", "4M", "-p", "4K"]);
    let out = run(&mut cmd, LIMIT);
    out.assert_success();
    assert!(out.stdout.contains("fileio ok"), "{}", out.stdout);
}

#[test]
fn four_threads_faulting_on_shared_pages() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let exe = dlmcc(dir.path(), "tests/c/threads.c");
    for page in ["256K", "16K"] {
        let out = run(
            Command::new(&exe).arg("64").env("DLM_LOCAL_MEM", "8M").env("DLM_PAGE_SIZE", page).env("DLM_STATS", "1"),
            LIMIT,
        );
        out.assert_success();
        assert!(out.stdout.contains("threads: 0 mismatches of 8388608"), "{}", out.stdout);
        assert!(out.stderr.contains("wrote back"), "{}", out.stderr);
    }
}
