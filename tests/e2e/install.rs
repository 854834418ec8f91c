//! The toolchain installed for the users of a machine (scripts/install.sh): the installed
//! dlmcc builds a program from any directory, and plain cc builds one against the DLM API with
//! `pkg-config --cflags --libs dlm`; both run with native results. The `dlm` command and the
//! man pages dlmcc(1) and dlm(1) are installed too, and the pages render without warnings.

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

/// The page formats with groff without a warning, and man shows its synopsis (groff and man
/// are installed by scripts/setup.sh).
fn assert_man_page_renders(page: &Path, command: &str) {
    let groff = Command::new("groff").args(["-man", "-Tutf8", "-ww", "-z"]).arg(page).output();
    let groff = groff.unwrap_or_else(|e| panic!("prerequisite missing: groff ({e})"));
    let warnings = String::from_utf8_lossy(&groff.stderr);
    assert!(groff.status.success() && warnings.is_empty(), "groff on {}: {warnings}", page.display());
    let man = Command::new("man").arg("-l").arg(page).env("MANWIDTH", "80").output();
    let man = man.unwrap_or_else(|e| panic!("prerequisite missing: man ({e})"));
    let text = String::from_utf8_lossy(&man.stdout);
    assert!(man.status.success(), "man -l {}: {}", page.display(), String::from_utf8_lossy(&man.stderr));
    assert!(
        text.contains("SYNOPSIS") && text.contains(&format!("       {command} ")),
        "man -l {}:\n{text}",
        page.display()
    );
}

#[test]
fn installed_toolchain_builds_from_another_directory_and_with_pkg_config() {
    let _heavy = one_at_a_time();
    let prefix = tempfile::tempdir().unwrap();
    let install = Command::new(repo_dir().join("scripts/install.sh")).arg("--prefix").arg(prefix.path()).output();
    let install = install.expect("run scripts/install.sh");
    assert!(install.status.success(), "install.sh: {}", String::from_utf8_lossy(&install.stderr));
    for file in [
        "bin/dlmcc",
        "bin/dlm",
        "lib/libdlm.a",
        "lib/libdlm.so",
        "include/dlm.h",
        "lib/pkgconfig/dlm.pc",
        "share/man/man1/dlmcc.1",
        "share/man/man1/dlm.1",
    ] {
        assert!(prefix.path().join(file).is_file(), "{file} was not installed");
    }
    for command in ["dlmcc", "dlm"] {
        let version = Command::new(prefix.path().join("bin").join(command)).arg("--version").output().unwrap();
        let expected = format!("{command} (DLM) 0.");
        assert!(String::from_utf8_lossy(&version.stdout).starts_with(&expected), "{version:?}");
        assert_man_page_renders(&prefix.path().join(format!("share/man/man1/{command}.1")), command);
    }

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
