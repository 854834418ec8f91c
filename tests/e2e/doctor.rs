//! `dlm doctor`: every check passes on this machine as root; a user who is not root gets the
//! user-mode fallback as working; a memfile host that does not resolve, a memfile asking more
//! memory than the host has and a memfile syntax error each fail with their advice.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

fn dlm() -> PathBuf {
    let path = target_dir().join("dlm");
    assert!(path.is_file(), "{} is missing: run `cargo build --release --workspace` first", path.display());
    path
}

/// `dlm doctor` with none of the test environment's `DLM_*` variables.
fn doctor(exe: &Path) -> Command {
    let mut cmd = Command::new(exe);
    as_doctor(&mut cmd);
    cmd
}

/// Makes a command that runs `dlm` a `dlm doctor` without the test environment's `DLM_*`.
fn as_doctor(cmd: &mut Command) {
    cmd.arg("doctor");
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("DLM_")) {
        cmd.env_remove(name);
    }
}

/// A memfile with `text` in a fresh directory (kept alive by the returned guard).
fn memfile(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memfile");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn assert_exit(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
}

#[test]
fn version_is_printed_like_dlmcc() {
    let out = run(Command::new(dlm()).arg("--version"), LIMIT);
    out.assert_success();
    assert!(out.stdout.starts_with("dlm (DLM) 0."), "{}", out.stdout);
}

#[test]
fn every_check_passes_here_as_root() {
    require("root", (!running_as_root()).then(|| "the tests do not run as root".to_string()));
    let out = run(&mut doctor(&dlm()), LIMIT);
    assert_exit(&out, 0);
    for line in [
        "ok       userfaultfd: kernel-and-user mode (root)",
        "ok       write-protect: a range registered in missing + write-protect mode",
        "ok       mpirun: ",
        "ok       Open MPI: ",
        "ok       UCX transport: Open MPI has the ucx pml and osc components",
        "ok       DLM options: no DLM_* variables set",
        "ok       memfile: none given",
        "ok       memory on ",
    ] {
        assert!(out.stdout.contains(line), "no `{line}` in:\n{}", out.stdout);
    }
    if why_huge_pages_do_not_move().is_none() {
        assert!(out.stdout.contains("ok       page moves: UFFDIO_MOVE moved a 2 MiB transparent huge page whole"));
        assert!(out.stdout.contains("ok       transparent huge pages: "));
    }
    assert!(!out.stdout.contains("FAILED"), "{}", out.stdout);
    assert!(out.stdout.contains("nothing here would stop a DLM run"), "{}", out.stdout);
}

#[test]
fn a_user_who_is_not_root_gets_the_user_mode_fallback_as_working() {
    let user = require_plain_user();
    let home = user.tempdir();
    let exe = user.runnable_copy(&dlm(), home.path());
    let mut cmd = user.command(home.path(), &exe);
    as_doctor(cmd.current_dir(home.path()));
    let out = run(&mut cmd, LIMIT);
    assert_exit(&out, 0);
    assert!(
        out.stdout.contains("warning  userfaultfd: user-mode only (not root, no read-write access to /dev/userfaultfd"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("DLM works; the I/O calls of programs built by dlmcc"), "{}", out.stdout);
    assert!(out.stdout.contains("what to do: nothing is needed;"), "{}", out.stdout);
    assert!(out.stdout.contains("ok       write-protect: "), "{}", out.stdout);
    assert!(!out.stdout.contains("FAILED"), "{}", out.stdout);
}

#[test]
fn a_memfile_host_that_does_not_resolve_fails_with_advice() {
    let (_dir, path) = memfile("localhost 1G\nno-such-host.invalid 1G\n");
    let out = run(doctor(&dlm()).arg("--memfile").arg(&path), LIMIT);
    assert_exit(&out, 1);
    let failure =
        format!("FAILED   host no-such-host.invalid: {}:2: `no-such-host.invalid` does not resolve", path.display());
    assert!(out.stdout.contains(&failure), "no `{failure}` in:\n{}", out.stdout);
    assert!(out.stdout.contains("what to do: name a host that this machine resolves"), "{}", out.stdout);
    assert!(out.stdout.contains("ok       host localhost: resolves to"), "{}", out.stdout);
    assert!(
        out.stdout.contains("skipped  memory on no-such-host.invalid: not checked: the host does not resolve"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_memfile_asking_more_than_the_host_has_fails_with_advice() {
    let (_dir, path) = memfile("localhost 100000G\n");
    let out = run(doctor(&dlm()).arg("--memfile").arg(&path), LIMIT);
    assert_exit(&out, 1);
    let failure = "(this machine): the memory servers here may hold 97.66 TiB (memfile line 1) but only";
    assert!(out.stdout.contains(failure), "no `{failure}` in:\n{}", out.stdout);
    assert!(out.stdout.contains("what to do: lower their sizes in the memfile to at most"), "{}", out.stdout);
}

#[test]
fn a_memfile_syntax_error_fails_naming_the_line() {
    let (_dir, path) = memfile("localhost 1G\nnode04\n");
    // The memfile a DLM program would read: DLM_MEMFILE.
    let out = run(doctor(&dlm()).env("DLM_MEMFILE", &path), LIMIT);
    assert_exit(&out, 1);
    let failure = format!("FAILED   memfile: {}:2: expected `HOST SIZE`", path.display());
    assert!(out.stdout.contains(&failure), "no `{failure}` in:\n{}", out.stdout);
    assert!(out.stdout.contains("what to do: write one memory server per line as `HOST SIZE`"), "{}", out.stdout);
    assert!(out.stdout.contains("not checked: the memfile was rejected"), "{}", out.stdout);
}

/// An Open MPI launch agent (`OMPI_MCA_plm_rsh_agent`, in place of ssh) in `dir` that runs
/// `body` for every host; `$HOST` is the host and `$@` the command.
fn launch_agent(dir: &Path, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let agent = dir.join("agent");
    std::fs::write(&agent, format!("#!/bin/sh\nHOST=$1\nshift\n{body}\n")).unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    agent
}

#[test]
fn another_hosts_memory_is_read_through_mpirun() {
    // Two addresses of the documentation ranges stand for other hosts; the launch agent starts
    // their processes on this machine, as ssh would start them there.
    let (dir, path) = memfile("192.0.2.1 1G\n198.51.100.1 100000G\n");
    let agent = launch_agent(dir.path(), "exec sh -c \"$*\"");
    let out = run(doctor(&dlm()).arg("--memfile").arg(&path).env("OMPI_MCA_plm_rsh_agent", &agent), LIMIT);
    assert_exit(&out, 1);
    let fits = "ok       memory on 192.0.2.1: ";
    assert!(out.stdout.contains(fits), "no `{fits}` in:\n{}", out.stdout);
    assert!(out.stdout.contains("available; the memory servers here may hold 1 GiB (memfile line 1)"));
    let too_much =
        "FAILED   memory on 198.51.100.1: the memory servers here may hold 97.66 TiB (memfile line 2) but only";
    assert!(out.stdout.contains(too_much), "no `{too_much}` in:\n{}", out.stdout);
}

#[test]
fn a_host_that_mpi_cannot_start_on_fails_within_the_spawn_timeout() {
    // The launch agent never returns, as ssh to a host that does not answer.
    let (dir, path) = memfile("192.0.2.1 1G\n");
    let hang = dir.path().join("hang");
    std::fs::copy("/bin/sleep", &hang).unwrap();
    let agent = launch_agent(dir.path(), &format!("exec {} 600", hang.display()));
    let mut cmd = doctor(&dlm());
    cmd.arg("--memfile").arg(&path).env("OMPI_MCA_plm_rsh_agent", &agent).env("DLM_SPAWN_TIMEOUT", "2");
    let out = run(&mut cmd, LIMIT);
    assert_exit(&out, 1);
    let failure = "FAILED   memory on 192.0.2.1: MPI could not start a process there: mpirun --host 192.0.2.1 did not \
                   finish within 2 s (DLM_SPAWN_TIMEOUT)";
    assert!(out.stdout.contains(failure), "no `{failure}` in:\n{}", out.stdout);
    assert!(out.stdout.contains("what to do: DLM starts its memory servers on 192.0.2.1 the same way"));
    assert_no_survivors(&hang);
}
