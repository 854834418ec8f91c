//! Reliability: random operations against a shadow copy, lost servers, signals, fork, foreign
//! signal handlers, hosts that cannot run servers.

use crate::support::*;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(180);

#[test]
fn torture_against_a_shadow_copy() {
    let _heavy = one_at_a_time();
    let exe = test_program("torture");
    // (page size, local budget, threads, operations per thread, DLM_MOVE_PAGES): small budgets,
    // several page sizes, one and several threads, pages moved into place (from 64 KiB, where
    // the kernel can) and copied; servers small enough that some allocations are refused.
    // Huge pages (2 MiB, the default for budgets of 128 MiB and more) with blocks fetched
    // alone on isolated faults, with budgets of 8 and 12 pages; and the default page at 16 MiB.
    for (page, budget, threads, ops, moves) in [
        ("4K", "2M", "1", "2500", "1"),
        ("64K", "4M", "4", "1500", "1"),
        ("256K", "8M", "2", "1500", "1"),
        ("64K", "4M", "2", "1500", "0"),
        ("", "16M", "2", "1500", "1"),
        ("2M", "16M", "2", "1500", "1"),
        ("2M", "24M", "4", "1500", "1"),
        ("2M", "16M", "2", "1000", "0"),
    ] {
        let mut torture = Command::new(&exe);
        if !page.is_empty() {
            torture.env("DLM_PAGE_SIZE", page);
        }
        let out = run(
            torture
                .args(["--ops", ops, "--threads", threads, "--seed", "2024"])
                .env("DLM_LOCAL_MEM", budget)
                .env("DLM_SERVER_MEM", "32M")
                .env("DLM_MOVE_PAGES", moves),
            LIMIT,
        );
        out.assert_success();
        assert!(out.stdout.contains("torture seed 2025 "), "{}", out.stdout);
        assert!(out.stdout.contains("torture ok: ") && !out.stdout.contains(" 0 pages evicted"), "{}", out.stdout);
        let moved = page != "4K" && moves == "1" && kernel_moves_pages();
        assert_eq!(!out.stdout.contains(" 0 pages moved"), moved, "{}", out.stdout);
        if page.is_empty() || page == "2M" {
            assert!(!out.stdout.contains(" 0 blocks fetched"), "no isolated fault fetched a block: {}", out.stdout);
        }
    }
}

#[test]
fn a_panic_on_the_pager_thread_ends_the_process_before_any_wrong_read() {
    let _heavy = one_at_a_time();
    let probe = test_program("rust_probe");
    // The pager panics (test-only injection) at its 300th fault, in the middle of writing and
    // reading back 256 MiB through 32 MiB. Unwinding would close the userfaultfd and the
    // program would read zero pages where it wrote data: it must die first, with the message.
    let out = run(
        Command::new(&probe).args(["verify", "256"]).env("DLM_LOCAL_MEM", "32M").env("DLM_TEST_PAGER_PANIC", "300"),
        LIMIT,
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(SIGABRT), "{:?}\n{}\n{}", out.status, out.stdout, out.stderr);
    assert!(
        out.stderr.contains("dlm: fatal: the pager thread panicked at")
            && out.stderr.contains("injected for a test at fault 300"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("verify:"), "the program went on after the pager died: {}", out.stdout);
    assert_no_survivors(&probe);
    // The same run without the injection completes and reads back every element.
    let clean = run(Command::new(&probe).args(["verify", "256"]).env("DLM_LOCAL_MEM", "32M"), LIMIT);
    clean.assert_success();
    assert_eq!(clean.field("verify:"), "0 mismatches");
}

/// SIGABRT's number on Linux.
const SIGABRT: i32 = 6;

/// The job must end within a few seconds of what was done to it.
fn ends_soon(child: std::process::Child) -> (std::process::ExitStatus, String) {
    ends_within(child, Duration::from_secs(20))
}

#[test]
fn a_killed_memory_server_ends_the_job_naming_it() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let exe = dlmcc(dir.path(), "tests/c/exits.c");
    let mut standalone = Command::new(&exe);
    standalone.args(["hang", "64"]).env("DLM_LOCAL_MEM", "16M");
    let mut under_mpirun = mpirun(3);
    under_mpirun.arg(&exe).args(["hang", "64", "--", "-l", "16M"]);
    for cmd in [&mut standalone, &mut under_mpirun] {
        let (child, compute) = start_hanging(cmd);
        let server = *live_processes(&exe).iter().filter(|&&p| p != compute).max().expect("a server process");
        kill_all(&[server]);
        let (status, stderr) = ends_soon(child);
        assert!(!status.success());
        assert!(
            stderr.contains(&format!("(pid {server} on "))
                && stderr.contains("has exited; the DLM pages it held are lost"),
            "{stderr}"
        );
        assert_no_survivors(&exe);
    }
}

#[test]
fn sigint_and_sigterm_end_the_whole_job() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let exe = dlmcc(dir.path(), "tests/c/exits.c");
    for signal in ["-INT", "-TERM"] {
        // Standalone: the signal goes to the program.
        let (child, compute) = start_hanging(Command::new(&exe).args(["hang", "64"]).env("DLM_LOCAL_MEM", "16M"));
        assert!(Command::new("kill").args([signal, &compute.to_string()]).status().unwrap().success());
        let (status, stderr) = ends_soon(child);
        assert!(!status.success(), "{signal}");
        let said = if signal == "-INT" { "dlm: interrupted (SIGINT)" } else { "dlm: terminated (SIGTERM)" };
        assert!(stderr.contains(said), "{signal}: {stderr}");
        assert_no_survivors(&exe);
        // Under mpirun: the signal goes to mpirun, as Ctrl-C would. mpirun signals every rank
        // at once, so the program reports either the signal or a server that went first.
        let (child, _) = start_hanging(mpirun(3).arg(&exe).args(["hang", "64", "--", "-l", "16M"]));
        assert!(Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap().success());
        let (status, stderr) = ends_soon(child);
        assert!(!status.success(), "{signal}");
        assert!(
            ["dlm: terminated (SIGTERM)", "dlm: interrupted (SIGINT)", "has exited; the DLM pages it held are lost"]
                .iter()
                .any(|said| stderr.contains(said)),
            "{signal}: {stderr}"
        );
        assert_no_survivors(&exe);
    }
}

#[test]
fn fork_system_and_popen() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let exe = dlmcc(dir.path(), "tests/c/forks.c");
    let out = run(Command::new(&exe).arg("64").env("DLM_LOCAL_MEM", "16M"), LIMIT);
    out.assert_success();
    assert_eq!(
        out.stdout,
        "system-ok\n1048576\ntoucher: stopped\nchild alloc refused\nexiting child: ok\nparent mismatches: 0\n"
    );
    assert!(
        out.stderr.contains("dlm: this process was forked from a DLM program and touched DLM memory"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("DLM memory is not available in a forked child"), "{}", out.stderr);
}

#[test]
fn the_programs_own_sigsegv_handler_keeps_working() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let exe = dlmcc(dir.path(), "tests/c/ownsegv.c");
    let out = run(Command::new(&exe).env("DLM_LOCAL_MEM", "8M"), LIMIT);
    out.assert_success();
    assert_eq!(out.stdout.trim(), "own handler ran 1 time(s), DLM mismatches 0");
}

#[test]
fn memfile_hosts_that_cannot_run_servers() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dlmcc(dir.path(), "tests/c/exits.c");
    let memfile = dir.path().join("memfile");
    std::fs::write(&memfile, "localhost 1G\nnosuchhost.invalid 1G\n").unwrap();
    let out = run(Command::new(&exe).args(["return", "1"]).env("DLM_MEMFILE", &memfile), LIMIT);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("{}:2: unknown host `nosuchhost.invalid`", memfile.display())),
        "{}",
        out.stderr
    );
    // A host that resolves but where MPI cannot start a process: the wait is bounded.
    std::fs::write(&memfile, "127.0.0.2 1G\n").unwrap();
    let out = run(
        Command::new(&exe).args(["return", "1"]).env("DLM_MEMFILE", &memfile).env("DLM_SPAWN_TIMEOUT", "10"),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("memory servers on 127.0.0.2 did not start within 10 s"), "{}", out.stderr);
    assert_no_survivors(&exe);
}

/// Swap for the length of a test: the machine's own if it has some, else a swap file made in
/// `dir` (which needs root and a file system that takes swap files), turned off when dropped.
struct Swap {
    file: Option<std::path::PathBuf>,
}

impl Swap {
    /// `Err` with the reason to print when no swap can be had here.
    fn on(dir: &std::path::Path) -> Result<Swap, String> {
        if swap_is_on() {
            return Ok(Swap { file: None });
        }
        let file = dir.join("swapfile");
        let sh = |script: &str| Command::new("sh").args(["-c", script, "sh"]).arg(&file).output();
        let made = sh("fallocate -l 256M \"$1\" && chmod 600 \"$1\" && mkswap \"$1\" && swapon \"$1\"")
            .map_err(|e| format!("cannot run sh: {e}"))?;
        if !made.status.success() {
            return Err(format!(
                "no swap, and a swap file cannot be turned on here (root and a file system that takes \
                 swap files are needed): {}",
                String::from_utf8_lossy(&made.stderr).trim()
            ));
        }
        Ok(Swap { file: Some(file) })
    }
}

impl Drop for Swap {
    fn drop(&mut self) {
        if let Some(file) = &self.file {
            let _ = Command::new("swapoff").arg(file).status();
        }
    }
}

#[test]
fn dlm_memory_paged_out_by_the_kernel_behind_the_pagers_back_keeps_its_data() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let swap = Swap::on(dir.path()).unwrap_or_else(|reason| panic!("prerequisite missing: swap: {reason}"));
    // With swap on, the kernel swaps DLM pages out behind the pager. Moving such pages with
    // UFFDIO_MOVE hung (a clean page's write-protect marker went into a staging slot with its
    // swap entry, and the pager's next receive there faulted to itself) or aborted (a move
    // reported a moved swap entry as not moved); the pager now copies pages while swap is on.
    let exe = dlmcc(dir.path(), "tests/c/pageout.c");
    let out = run(Command::new(&exe).args(["32", "10"]).env("DLM_LOCAL_MEM", "8M").env("DLM_STATS", "1"), LIMIT);
    drop(swap);
    out.assert_success();
    assert!(out.stdout.contains("pageout ok"), "{}", out.stdout);
    assert!(!out.stderr.contains("evicted 0 "), "nothing paged: {}", out.stderr);
    assert_no_survivors(&exe);
}
