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
    for page in ["256K", "16K", "2M"] {
        let out = run(
            Command::new(&exe).arg("64").env("DLM_LOCAL_MEM", "8M").env("DLM_PAGE_SIZE", page).env("DLM_STATS", "1"),
            LIMIT,
        );
        out.assert_success();
        assert!(out.stdout.contains("threads: 0 mismatches of 8388608"), "{}", out.stdout);
        assert!(out.stderr.contains("wrote back"), "{}", out.stderr);
    }
}

#[test]
fn dlm_advise_steers_the_pager_and_keeps_the_data() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let exe = dlmcc(dir.path(), "tests/c/advise.c");
    let out = run(Command::new(&exe).arg("256").env("DLM_LOCAL_MEM", "128M").env("DLM_PAGE_SIZE", "2M"), LIMIT);
    out.assert_success();
    assert_eq!(out.field("advise:"), "0 mismatches");
    // Don't-need evicts everything (its data is kept: the reads after it are right).
    assert_eq!(out.field("dontneed:"), "0, resident 0");
    // Random: every miss brings one 4 KiB block, never a whole page.
    let random: Vec<u64> =
        out.field("random:").split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
    assert_eq!(random[0], 0, "{}", out.stdout);
    assert!(random[1] > 3000, "few blocks fetched: {}", out.stdout);
    assert_eq!(random[2], random[1] * 4096, "random advice fetched whole pages: {}", out.stdout);
    // Sequential: whole pages only.
    assert_eq!(out.field("sequential:"), "0 0, 0 blocks");
    assert_eq!(out.field("normal"), "0 unknown -1 not-dlm -1");
    assert!(out.stderr.contains("dlm_advise: unknown advice 99"), "{}", out.stderr);
    assert!(out.stderr.contains("is not DLM memory"), "{}", out.stderr);
}
