//! The toolchain installed for the users of a machine (scripts/install.sh): the installed
//! dlmcc builds a program from any directory, and plain cc builds one against the DLM API with
//! `pkg-config --cflags --libs dlm`; both run with native results. The `dlm` command and the
//! man pages dlmcc(1) and dlm(1) are installed too, and the pages render without warnings.
//! The install takes the build from wherever cargo put it (`CARGO_TARGET_DIR` elsewhere), and
//! writes DLM's Open MPI defaults into the installing user's MCA parameter file, keeping what
//! the user set there.

use crate::support::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// What Open MPI reads for `name` with `HOME` at `home`: its value and where it came from.
fn open_mpi_parameter(home: &Path, name: &str) -> (String, String) {
    let out = Command::new("ompi_info")
        .args(["--param", "oob", "tcp", "--level", "9", "--parsable"])
        .env("HOME", home)
        .output()
        .expect("ompi_info");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |what: &str| {
        let key = format!("mca:oob:tcp:param:{name}:{what}:");
        text.lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
            .to_string()
    };
    (field("value"), field("source"))
}

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
    let home = tempfile::tempdir().unwrap();
    // A parameter file the user already has: their own line stays, DLM's block comes once.
    let params = home.path().join(".openmpi/mca-params.conf");
    std::fs::create_dir_all(params.parent().unwrap()).unwrap();
    std::fs::write(&params, "# mine\noob_tcp_keepalive_probes = 3\n").unwrap();
    install(&repo_dir(), prefix.path(), home.path(), None);
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

    // Open MPI's defaults for DLM jobs, in the user's file: mpirun reads them.
    install(&repo_dir(), prefix.path(), home.path(), None);
    let written = std::fs::read_to_string(&params).unwrap();
    assert!(written.starts_with("# mine\noob_tcp_keepalive_probes = 3\n"), "{written}");
    assert_eq!(written.matches("# BEGIN DLM defaults").count(), 1, "{written}");
    assert_eq!(written.matches("oob_tcp_keepalive_probes").count(), 1, "{written}");
    for (name, value) in
        [("oob_tcp_keepalive_time", "4"), ("oob_tcp_keepalive_intvl", "1"), ("oob_tcp_keepalive_probes", "3")]
    {
        let (read, source) = open_mpi_parameter(home.path(), name);
        assert_eq!(read, value, "{name} as Open MPI reads it ({source}); the file:\n{written}");
        assert!(source.contains(&params.display().to_string()), "{name} comes from {source}");
    }
}

/// A copy at `to` of the checkout's files (tracked, and new ones not ignored: no ./target),
/// with their times, so that a build of an unchanged copy at the same place stays fresh.
fn copy_checkout(to: &Path) {
    if to.exists() {
        std::fs::remove_dir_all(to).unwrap();
    }
    std::fs::create_dir_all(to).unwrap();
    succeed(
        Command::new("sh")
            .arg("-c")
            .arg(
                "git -C \"$1\" ls-files -z --cached --others --exclude-standard \
                 | tar -C \"$1\" --null --ignore-failed-read -T - -cf - | tar -C \"$2\" -xf -",
            )
            .arg("sh")
            .arg(repo_dir())
            .arg(to),
    );
}

/// `cargo build` with `CARGO_TARGET_DIR` elsewhere (shared machines, CI caches): install.sh
/// takes the build from there. The checkout is a copy with no ./target, so nothing can come
/// from a target/release that happens to exist; the target directory persists between runs
/// (the first one builds the release from scratch, about a minute on two cores).
#[test]
fn install_takes_the_build_from_a_cargo_target_dir_elsewhere() {
    let _heavy = one_at_a_time();
    let elsewhere = target_dir().parent().expect("cargo's target directory").join("install-elsewhere");
    let checkout = elsewhere.join("checkout");
    copy_checkout(&checkout);
    let prefix = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    install(&checkout, prefix.path(), home.path(), Some(&elsewhere.join("target")));
    assert!(!checkout.join("target").exists(), "cargo built into the checkout's ./target");
    for file in ["bin/dlmcc", "bin/dlm", "lib/libdlm.a", "lib/libdlm.so"] {
        let built = elsewhere.join("target/release").join(Path::new(file).file_name().unwrap());
        let installed = prefix.path().join(file);
        assert_eq!(
            std::fs::read(&installed).unwrap(),
            std::fs::read(&built).unwrap(),
            "{file} is not {}",
            built.display()
        );
    }

    // A program built and run with the installed dlmcc.
    let work = tempfile::tempdir().unwrap();
    let source = repo_dir().join("examples/c/bigarray.c");
    succeed(
        Command::new(prefix.path().join("bin/dlmcc"))
            .current_dir(work.path())
            .args(["-O2", "-o", "bigarray"])
            .arg(&source),
    );
    let native = cc_native(work.path(), "examples/c/bigarray.c");
    let expected = run(Command::new(&native).arg("64"), LIMIT);
    let exe = work.path().join("bigarray");
    let paged = run(Command::new(&exe).arg("64").env("DLM_LOCAL_MEM", "16M"), LIMIT);
    paged.assert_success();
    assert_eq!(paged.stdout, expected.stdout);
    assert_no_survivors(&exe);
}
