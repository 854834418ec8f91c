//! The toolchain installed for the users of a machine (scripts/install.sh): the installed
//! dlmcc builds a program from any directory, and plain cc builds one against the DLM API with
//! `pkg-config --cflags --libs dlm`; both run with native results.

use crate::support::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

fn pkg_config(prefix: &Path) -> Vec<String> {
    let out = Command::new("pkg-config")
        .args(["--cflags", "--libs", "dlm"])
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
        .expect("pkg-config (scripts/setup.sh installs it)");
    assert!(out.status.success(), "pkg-config: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).split_whitespace().map(String::from).collect()
}

#[test]
fn installed_toolchain_builds_from_another_directory_and_with_pkg_config() {
    let _heavy = one_at_a_time();
    let prefix = tempfile::tempdir().unwrap();
    let install = Command::new(repo_dir().join("scripts/install.sh")).arg("--prefix").arg(prefix.path()).output();
    let install = install.expect("run scripts/install.sh");
    assert!(install.status.success(), "install.sh: {}", String::from_utf8_lossy(&install.stderr));
    for file in ["bin/dlmcc", "lib/libdlm.a", "lib/libdlm.so", "include/dlm.h", "lib/pkgconfig/dlm.pc"] {
        assert!(prefix.path().join(file).is_file(), "{file} was not installed");
    }
    let version = Command::new(prefix.path().join("bin/dlmcc")).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("dlmcc (DLM) 0."), "{version:?}");

    // The installed dlmcc, from a directory that is not the source tree.
    let work = tempfile::tempdir().unwrap();
    let source = repo_dir().join("examples/c/bigarray.c");
    let built = Command::new(prefix.path().join("bin/dlmcc"))
        .current_dir(work.path())
        .args(["-O2", "-o", "bigarray"])
        .arg(&source)
        .output()
        .unwrap();
    assert!(built.status.success(), "installed dlmcc: {}", String::from_utf8_lossy(&built.stderr));
    let native = work.path().join("native");
    assert!(Command::new("cc").args(["-O2", "-DNATIVE", "-o"]).arg(&native).arg(&source).status().unwrap().success());
    let expected = run(Command::new(&native).arg("64"), LIMIT);
    let paged = run(Command::new(work.path().join("bigarray")).arg("64").env("DLM_LOCAL_MEM", "16M"), LIMIT);
    paged.assert_success();
    assert_eq!(paged.stdout, expected.stdout);

    // Plain cc against the DLM API, flags from pkg-config.
    let exe = work.path().join("exits");
    let status = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(repo_dir().join("tests/c/exits.c"))
        .args(pkg_config(prefix.path()))
        .status()
        .unwrap();
    assert!(status.success(), "cc with pkg-config flags failed");
    let out = run(Command::new(&exe).args(["return", "64"]).env("DLM_LOCAL_MEM", "16M").env("DLM_STATS", "1"), LIMIT);
    out.assert_success();
    assert!(out.stdout.contains("filled 0"), "{}", out.stdout);
    assert!(out.stderr.contains("evicted"), "no DLM statistics: {}", out.stderr);
    assert_no_survivors(&exe);
}
