//! Bad input: a clear message naming the problem, a non-zero exit, no hang, no server left.

use crate::support::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

fn program(dir: &Path) -> std::path::PathBuf {
    dlmcc(dir, "tests/c/exits.c")
}

fn assert_fails_with(out: &Output, code: i32, message: &str) {
    assert_eq!(out.status.code(), Some(code), "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains(message), "expected `{message}` in stderr:\n{}", out.stderr);
}

#[test]
fn malformed_memfile_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let exe = program(dir.path());
    let memfile = dir.path().join("memfile");
    std::fs::write(&memfile, "localhost 1G\nnode04\n").unwrap();
    let out = run(Command::new(&exe).args(["return", "1"]).env("DLM_MEMFILE", &memfile), LIMIT);
    assert_fails_with(
        &out,
        2,
        &format!("{}:2: expected `HOST SIZE` (e.g. `node03 16G`), found `node04`", memfile.display()),
    );
    std::fs::write(&memfile, "# sizes\nlocalhost 12X\n").unwrap();
    let out = run(Command::new(&exe).args(["return", "1", "--"]).arg(&memfile), LIMIT);
    assert_fails_with(&out, 2, &format!("{}:2: invalid size `12X`", memfile.display()));
    let out = run(Command::new(&exe).args(["return", "1"]).env("DLM_MEMFILE", dir.path().join("nope")), LIMIT);
    assert_fails_with(&out, 2, "cannot read memfile");
    assert!(survivors_after(&exe, Duration::from_secs(5)).is_empty());
}

#[test]
fn unknown_options_are_rejected_with_usage() {
    let dir = tempfile::tempdir().unwrap();
    let exe = program(dir.path());
    let out = run(Command::new(&exe).args(["return", "1", "--", "--bogus"]), LIMIT);
    assert_fails_with(&out, 2, "unexpected argument '--bogus'");
    assert!(out.stderr.contains("Usage:") && out.stderr.contains("--local-mem <SIZE>"), "{}", out.stderr);
    let out = run(Command::new(&exe).args(["return", "1"]).env("DLM_LOCALMEM", "1G"), LIMIT);
    assert_fails_with(&out, 2, "unknown environment variable DLM_LOCALMEM");
    let out = run(Command::new(&exe).args(["return", "1"]).env("DLM_PAGE_SIZE", "1000"), LIMIT);
    assert_fails_with(&out, 2, "page size 1000 must be a non-zero multiple of the system page size");
    let out = run(Command::new(&exe).args(["return", "1", "--", "-l", "12X"]), LIMIT);
    assert_fails_with(&out, 2, "invalid value '12X' for '--local-mem <SIZE>'");
    let out = run(Command::new(&exe).args(["return", "1"]).env("DLM_LOCAL_MEM", "-1"), LIMIT);
    assert_fails_with(&out, 2, "DLM_LOCAL_MEM=-1: invalid size `-1`");
    let out = run(Command::new(&exe).args(["return", "1"]).env("DLM_SERVER_MEM", "99999999T"), LIMIT);
    assert_fails_with(&out, 2, "DLM_SERVER_MEM=99999999T: size `99999999T` is too large");
    // Under mpirun the servers leave too.
    let out = run(mpirun(3).arg(&exe).args(["return", "1", "--", "--bogus"]), LIMIT);
    assert!(!out.status.success());
    assert!(out.stderr.contains("unexpected argument '--bogus'"), "{}", out.stderr);
    assert!(survivors_after(&exe, Duration::from_secs(5)).is_empty());
}

#[test]
fn allocation_beyond_budget_and_servers_fails_in_dlm_alloc() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let exe = dlmcc(dir.path(), "examples/c/bigarray.c");
    let out = run(Command::new(&exe).arg("1024").env("DLM_LOCAL_MEM", "16M").env("DLM_SERVER_MEM", "64M"), LIMIT);
    assert_fails_with(
        &out,
        1,
        "dlm_alloc: cannot allocate 256 MiB of DLM memory: only 80 MiB is available (local budget 16 MiB + memory servers 64 MiB - 0 B in use)",
    );
    let probe = test_program("rust_probe");
    let out = run(Command::new(probe).arg("oversize").env("DLM_LOCAL_MEM", "16M").env("DLM_SERVER_MEM", "64M"), LIMIT);
    out.assert_success();
    assert!(
        out.stdout.contains("error: cannot allocate 1 TiB of DLM memory: only 80 MiB is available"),
        "{}",
        out.stdout
    );
    assert!(survivors_after(&exe, Duration::from_secs(5)).is_empty());
}
