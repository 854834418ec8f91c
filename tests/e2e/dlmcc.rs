//! dlmcc accepts mpicc's flags and inputs and reports the compiler's errors.

use crate::support::*;
use std::process::Command;
use std::time::Duration;

fn dlmcc_cmd() -> Command {
    Command::new(target_dir().join("dlmcc"))
}

#[test]
fn compiles_objects_archives_and_several_files_like_mpicc() {
    let dir = tempfile::tempdir().unwrap();
    let src = repo_dir().join("tests/c/multi");
    let d = dir.path();
    let ok = |cmd: &mut Command| assert!(cmd.current_dir(d).status().unwrap().success(), "{cmd:?}");
    ok(dlmcc_cmd()
        .args(["-c", "-O2", "-g", "-std=c11"])
        .arg("-I")
        .arg(&src)
        .arg(src.join("vecops.c"))
        .args(["-o", "vecops.o"]));
    ok(dlmcc_cmd().args(["-c", "-O2"]).arg(format!("-I{}", src.display())).arg(src.join("sum.c")));
    ok(Command::new("ar").args(["rcs", "libstats.a", "sum.o"]));
    ok(dlmcc_cmd()
        .args(["-O2", "-std=gnu11", "-DSIZE_MIB=64", "-DLABEL=\"sum\""])
        .arg(format!("-I{}", src.display()))
        .arg(src.join("main.c"))
        .args(["vecops.o", "-L.", "-lstats", "-lm", "-o", "multi"]));
    let out = run(Command::new(d.join("multi")).env("DLM_LOCAL_MEM", "8M"), Duration::from_secs(60));
    out.assert_success();
    // The sum of i % 1000 over 8Mi elements, computed independently.
    assert_eq!(out.stdout.trim(), "sum 4189990528.0");
}

#[test]
fn showme_prints_the_underlying_command() {
    let out = dlmcc_cmd().args(["--showme", "-O2", "prog.c", "-o", "prog"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.starts_with("cc -I") && text.contains("dlm-rt/include"), "{text}");
    assert!(text.contains("libdlm.a") && text.contains("-lmpi"), "{text}");
    let out = dlmcc_cmd().args(["--showme", "-c", "prog.c"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("libdlm.a"), "compile-only must not link");
}

#[test]
fn unparsable_c_fails_with_the_compilers_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let out = dlmcc_cmd()
        .arg(repo_dir().join("tests/c/multi/broken.c"))
        .arg("-o")
        .arg(dir.path().join("broken"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.c:1") && stderr.contains("error"), "{stderr}");
    assert!(!dir.path().join("broken").exists());
}
