//! DLM for a user who is not root and may not open /dev/userfaultfd: the pager falls back to
//! user-only mode by itself, and the kernel's accesses to DLM memory (read, fread, recv, write …
//! into and out of DLM buffers) keep working because the I/O calls hold their buffers
//! resident. The legacy C programs of the suite, the kernel I/O program and a Rust `#[dlm]`
//! program run as a plain user, byte-exact against native, paged, in user-only mode. They fail,
//! saying why, when the tests are not root (they cannot create that user).

use crate::rewriting::{
    build_dlm, build_native, compile, dlmcc_path, native_then_dlm_both_ways_as, no_args, HEAPIO, MULTIFILE, STENCIL,
    TRIAD,
};
use crate::support::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(300);

/// Asserts that the run behind `json` paged in user-only mode, with `holds` I/O holds at least.
fn assert_user_only(json: &Path, holds: f64) {
    let stats = std::fs::read_to_string(json).unwrap_or_else(|e| panic!("{}: {e}", json.display()));
    assert_eq!(stat(&stats, "user_mode_only"), 1.0, "not in user-only mode:\n{stats}");
    assert!(stat(&stats, "io_holds") >= holds, "{stats}");
    assert!(stat(&stats, "bytes_fetched") > 0.0, "{stats}");
}

/// What a legacy program takes on its command line.
enum Arguments {
    None,
    /// The path of a data file to write and read back.
    DataFile,
}

/// Builds `sources` natively and with dlmcc into a directory of `user`'s, runs both as them
/// (standalone and under mpirun, `budget_mib` local), and checks user-only paging with at least
/// `holds` I/O holds.
fn legacy_program_as(user: &PlainUser, sources: &[&str], arguments: Arguments, budget_mib: u64, holds: f64) -> String {
    let dir = user.tempdir();
    let native = build_native(dir.path(), sources, "program");
    let dlm = build_dlm(dir.path(), sources, "program");
    let args = |run_name: &str| match arguments {
        Arguments::None => no_args(run_name),
        Arguments::DataFile => vec![dir.path().join(format!("{run_name}.bin")).into()],
    };
    let stdout = native_then_dlm_both_ways_as(Some(user), dir.path(), &native, &dlm, budget_mib, args);
    for run_name in ["standalone", "mpirun"] {
        assert_user_only(&dir.path().join(format!("{run_name}.json")), holds);
    }
    stdout
}

#[test]
fn static_array_programs_page_as_a_plain_user() {
    let user = require_plain_user();
    let _heavy = one_at_a_time();
    let stencil = legacy_program_as(&user, STENCIL, Arguments::None, 32, 0.0);
    assert!(stencil.contains("gosa after 8: "), "{stencil}");
    let triad = legacy_program_as(&user, TRIAD, Arguments::None, 30, 0.0);
    assert!(triad.contains("mismatches: 0"), "{triad}");
    let multifile = legacy_program_as(&user, MULTIFILE, Arguments::None, 28, 0.0);
    assert!(multifile.contains("badids 0"), "{multifile}");
}

#[test]
fn heap_buffers_written_and_read_with_stdio_page_as_a_plain_user() {
    let user = require_plain_user();
    let _heavy = one_at_a_time();
    // fwrite out of and fread into malloc'd DLM buffers: without holds, EFAULT.
    let stdout = legacy_program_as(&user, HEAPIO, Arguments::DataFile, 28, 1.0);
    assert!(stdout.contains("bad: 0"), "{stdout}");
}

#[test]
fn read_write_readv_recv_fputs_on_dlm_buffers_work_as_a_plain_user() {
    let user = require_plain_user();
    let _heavy = one_at_a_time();
    let dir = user.tempdir();
    // Built with _FORTIFY_SOURCE, so that its reads into a static array go through the checking
    // variants (__read_chk, __fread_chk).
    let exe = compile(
        &dlmcc_path(),
        &["-O2", "-Wall", "-D_FORTIFY_SOURCE=2"],
        &["tests/c/fileio.c"],
        &dir.path().join("fileio"),
    );
    let fileio_as_user = |cmd: Command, json: &Path| {
        let mut cmd = user.wrap(dir.path(), &cmd);
        let out = run(cmd.env("DLM_STATS_JSON", json), LIMIT);
        out.assert_success();
        assert!(out.stdout.contains("fileio ok"), "{}", out.stdout);
        assert_user_only(json, 10.0);
    };
    // 3 x 64 MiB of buffers through 16 MiB, standalone.
    let mut alone = Command::new(&exe);
    alone.arg(dir.path()).arg("64").env("DLM_LOCAL_MEM", "16M");
    fileio_as_user(alone, &dir.path().join("alone.json"));
    // 32 MiB with 4 KiB pages through 4 MiB under mpirun.
    let mut under = mpirun(2);
    under.arg(&exe).arg(dir.path()).args(["32", "--", "-l", "4M", "-p", "4K"]);
    fileio_as_user(under, &dir.path().join("mpirun.json"));
    // A 512 KiB budget holds 128 KiB per slice: the 160 KiB datagram still goes whole.
    let mut small = Command::new(&exe);
    small.arg(dir.path()).args(["2", "--", "-l", "512K", "-p", "4K"]);
    fileio_as_user(small, &dir.path().join("small.json"));
    assert_no_survivors(&exe);
}

#[test]
fn rust_program_reads_files_into_dlm_memory_as_a_plain_user() {
    let user = require_plain_user();
    let _heavy = one_at_a_time();
    let dir = user.tempdir();
    let exe = user.runnable_copy(&test_program("rust_fileio"), dir.path());
    let json = dir.path().join("rust.json");
    let mut cmd = Command::new(&exe);
    cmd.arg(dir.path()).arg("64").env("DLM_LOCAL_MEM", "16M").env("DLM_STATS_JSON", &json);
    let out = run(&mut user.wrap(dir.path(), &cmd), LIMIT);
    out.assert_success();
    assert!(out.stdout.contains("rust_fileio ok"), "{}", out.stdout);
    let read_back = out.field("read back");
    assert_eq!(out.field("native"), read_back, "{}", out.stdout);
    assert_user_only(&json, 3.0);
    assert!(stat(&std::fs::read_to_string(&json).unwrap(), "pages_evicted") > 0.0);
}

#[test]
fn a_plain_cc_library_reading_into_dlm_blocks_works_as_a_plain_user() {
    let user = require_plain_user();
    let _heavy = one_at_a_time();
    let dir = user.tempdir();
    // read(2) called by a shared library built with plain cc, into a DLM block: the I/O
    // functions dlmcc links in interpose the C library's for every library of the process.
    let stats = crate::free_anywhere::check_native_then_dlm_both_ways(Some(&user), dir.path());
    assert!(stats.contains("dlm: user-only paging"), "{stats}");
}

#[test]
fn small_blocks_handed_to_system_calls_work_as_a_plain_user() {
    let user = require_plain_user();
    let _heavy = one_at_a_time();
    let dir = user.tempdir();
    // A path, a struct stat and a timespec from malloc given to open, stat and nanosleep after
    // other small blocks pushed them out: in user-only mode small blocks stay in the C library.
    let native = cc_native(dir.path(), "tests/c/smallsys.c");
    let exe = dlmcc(dir.path(), "tests/c/smallsys.c");
    let expected = run(&mut user.wrap(dir.path(), &Command::new(&native)), LIMIT);
    expected.assert_success();
    let json = dir.path().join("small.json");
    let mut cmd = Command::new(&exe);
    cmd.env("DLM_LOCAL_MEM", "8M").env("DLM_SERVER_MEM", "32M").env("DLM_STATS_JSON", &json);
    let out = run(&mut user.wrap(dir.path(), &cmd), LIMIT);
    out.assert_success();
    assert_eq!(out.stdout, expected.stdout, "stderr:\n{}", out.stderr);
    let stats = std::fs::read_to_string(&json).unwrap();
    assert_eq!(stat(&stats, "user_mode_only"), 1.0, "{stats}");
    assert_eq!(stat(&stats, "small_heap_bytes"), 0.0, "{stats}");
}
