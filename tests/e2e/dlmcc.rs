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
fn a_programs_own_functions_named_like_the_interposed_ones_win() {
    let dir = tempfile::tempdir().unwrap();
    // Its own `send` and `read`, with other signatures: as with cc, they link and are called.
    let exe = dlmcc(dir.path(), "tests/c/ownio.c");
    let out = run(&mut Command::new(&exe), Duration::from_secs(60));
    out.assert_success();
    assert_eq!(out.stdout, "send 3007 read 6\n");
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

#[test]
fn unparsable_c_leaves_no_object_when_compiling_only() {
    let dir = tempfile::tempdir().unwrap();
    let object = dir.path().join("broken.o");
    let out =
        dlmcc_cmd().arg("-c").arg(repo_dir().join("tests/c/multi/broken.c")).arg("-o").arg(&object).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.c:1"));
    assert!(!object.exists());
}

/// A small program with one array of each kind the rewriting distinguishes.
const MARKED: &str = r#"#include <stdlib.h>
#include <stdio.h>
#define BIG (1 << 18)
double big[BIG];                          /* 2 MiB: over the default threshold */
#pragma dlm
static int marked[25000];                 /* 100 KB, marked */
static char small[1000];                  /* stays */
#pragma dlm off
static double kept[BIG];                  /* big, kept out */
static long tagged[30000] __attribute__((dlm));
int main(void) {
    double *heap = malloc(4u << 20);
    size_t i;
    long sum = 0;
    for (i = 0; i < BIG; i++) { big[i] = (double)i; kept[i] = 1.0; }
    for (i = 0; i < 25000; i++) marked[i] = (int)i;
    for (i = 0; i < 30000; i++) tagged[i] = (long)i;
    for (i = 0; i < (4u << 20) / sizeof *heap; i++) heap[i] = 2.0;
    for (i = 0; i < BIG; i++) sum += (long)(big[i] + kept[i] + heap[i]);
    for (i = 0; i < 25000; i++) sum += marked[i];
    for (i = 0; i < 30000; i++) sum += tagged[i];
    small[0] = 1;
    printf("sum %ld %d %zu %zu\n", sum, small[0], sizeof big, sizeof marked);
    free(heap);
    return 0;
}
"#;

#[test]
fn report_names_each_array_and_allocation_site_with_its_rule() {
    let (dir, _) = marked_source();
    let out = dlmcc_cmd()
        .current_dir(dir.path())
        .args(["--dlm-report", "-Wall", "-Werror", "-c", "marked.c"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(dir.path().join("marked.o").is_file());
    let line_of =
        |needle: &str| report.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle}: {report}"));
    assert!(line_of("'big'").starts_with("marked.c:4:") && line_of("'big'").contains("threshold"), "{report}");
    assert!(line_of("'marked'").contains("pragma"), "{report}");
    assert!(line_of("'tagged'").contains("attribute"), "{report}");
    assert!(line_of("'kept'").contains("kept"), "{report}");
    assert!(line_of("'malloc'").starts_with("marked.c:12:"), "{report}");
    assert!(!report.contains("'small'"), "{report}");
}

/// A temporary directory holding `marked.c` (MARKED), and that file's path.
fn marked_source() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("marked.c");
    std::fs::write(&source, MARKED).unwrap();
    (dir, source)
}

#[test]
fn marked_and_big_arrays_run_in_dlm_memory_with_native_results() {
    let _heavy = one_at_a_time();
    let (dir, source) = marked_source();
    let native = dir.path().join("native");
    assert!(Command::new("cc").arg("-O2").arg(&source).arg("-o").arg(&native).status().unwrap().success());
    let native_out = run(&mut Command::new(&native), Duration::from_secs(60));
    let exe = dir.path().join("marked");
    let built = dlmcc_cmd().args(["-O2", "--dlm-threshold=1M"]).arg(&source).arg("-o").arg(&exe).output().unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let json = dir.path().join("stats.json");
    let out = run(Command::new(&exe).env("DLM_LOCAL_MEM", "1M").env("DLM_STATS_JSON", &json), Duration::from_secs(60));
    out.assert_success();
    assert_eq!(out.stdout, native_out.stdout);
    let stats = std::fs::read_to_string(&json).unwrap();
    // big (2 MiB) + marked + tagged + the 4 MiB heap block page through a 1 MiB budget.
    assert!(stat(&stats, "pages_evicted") > 0.0 && stat(&stats, "bytes_fetched") > 0.0, "{stats}");
}

#[test]
fn emit_rewritten_prints_the_source_dlmcc_compiles_and_dlm_off_keeps_it() {
    let (dir, source) = marked_source();
    let out = dlmcc_cmd().current_dir(dir.path()).args(["--dlm-emit-rewritten", "marked.c"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("#line 1 \"marked.c\""), "{text}");
    // Arrays chosen by size keep their declaration (and placement); marked ones are aligned.
    assert!(text.contains("double big[BIG]; static const struct __dlm_static"), "{text}");
    assert!(text.contains("static int marked[25000] __attribute__((aligned(4096)));"), "{text}");
    assert!(text.contains("__dlm_malloc(4u << 20)") && !text.contains("#pragma dlm"), "{text}");
    assert!(!dir.path().join("a.out").exists(), "emitting must not compile");
    // --dlm-off: the program is compiled as written and never starts DLM.
    let exe = dir.path().join("off");
    assert!(dlmcc_cmd().arg("--dlm-off").arg(&source).arg("-o").arg(&exe).status().unwrap().success());
    let json = dir.path().join("stats.json");
    run(Command::new(&exe).env("DLM_STATS_JSON", &json), Duration::from_secs(60)).assert_success();
    assert!(!json.exists(), "--dlm-off must leave DLM out");
}

#[test]
fn unknown_dlm_option_is_an_error_with_usage() {
    let out = dlmcc_cmd().args(["--dlm-bogus", "x.c"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown option `--dlm-bogus`") && stderr.contains("--dlm-threshold"), "{stderr}");
    let out = dlmcc_cmd().args(["--dlm-threshold=12X", "x.c"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid size `12X`"));
}

#[test]
fn static_arrays_beyond_budget_and_servers_stop_before_main_naming_the_array() {
    let _heavy = one_at_a_time();
    let (dir, source) = marked_source();
    let exe = dir.path().join("marked");
    assert!(dlmcc_cmd().arg(&source).arg("-o").arg(&exe).status().unwrap().success());
    let out = run(Command::new(&exe).env("DLM_LOCAL_MEM", "1M").env("DLM_SERVER_MEM", "1M"), Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "main must not run: {}", out.stdout);
    // Whichever array comes last in the linker's order is the one that no longer fits.
    let named = [("`big`", "marked.c:4"), ("`marked`", "marked.c:6"), ("`tagged`", "marked.c:10")]
        .iter()
        .any(|(name, site)| out.stderr.contains(&format!("static array {name} ({}", dir.path().join(site).display())));
    assert!(named && out.stderr.contains("cannot be placed in DLM memory"), "{}", out.stderr);
    assert!(out.stderr.contains("raise DLM_LOCAL_MEM"), "{}", out.stderr);
    assert_no_survivors(&exe);
}

#[test]
fn headers_only_the_driven_compiler_has_are_found_by_the_parse() {
    // It runs a DLM program: not while a cluster test adds and removes network links, which
    // UCX enumerates when it starts.
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let source = repo_dir().join("tests/c/omp_serial.c");
    let native = dir.path().join("native");
    assert!(Command::new("cc").args(["-O2", "-o"]).arg(&native).arg(&source).status().unwrap().success());
    let out =
        dlmcc_cmd().args(["--dlm-report", "-O2", "-o"]).arg(dir.path().join("prog")).arg(&source).output().unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("array 'grid' (double[2097152], 16 MiB) -> DLM"), "{report}");
    let expected = run(&mut Command::new(&native), Duration::from_secs(60));
    let paged = run(Command::new(dir.path().join("prog")).env("DLM_LOCAL_MEM", "4M"), Duration::from_secs(60));
    paged.assert_success();
    assert_eq!(paged.stdout, expected.stdout);
}

#[test]
fn report_ends_with_a_summary_of_what_moved_and_what_stayed_and_why() {
    let _heavy = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let src = repo_dir().join("tests/c/report_kinds");
    let flags = |cmd: &mut Command| {
        cmd.args(["-O2", "-fcommon", "-isystem"])
            .arg(src.join("sysinc"))
            .arg(src.join("main.c"))
            .arg(src.join("field.c"));
    };
    let native = dir.path().join("native");
    let mut cc = Command::new("cc");
    flags(cc.arg("-o").arg(&native));
    assert!(cc.status().unwrap().success(), "{cc:?}");
    let exe = dir.path().join("kinds");
    let mut build = dlmcc_cmd();
    flags(build.args(["--dlm-report", "-o"]).arg(&exe));
    let out = build.output().unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    let summary: Vec<&str> = report.lines().filter(|l| l.starts_with("summary: ")).collect();
    // grid (8 MiB) and weights (2 MiB); `field` once per including file and `shared_field` once;
    // malloc and calloc. Kept: two small arrays of main.c and `header_counts` in each file
    // (1 KiB + 1 KiB + 2 x 256 B), `scratch` by the pragma, `per_thread`, the system table.
    assert_eq!(
        summary,
        [
            "summary: moved to DLM memory, static arrays of the .c files: 2 arrays, 10 MiB",
            "summary: moved to DLM memory, arrays defined in headers: 3 arrays, 6 MiB",
            "summary: moved to DLM memory, allocation sites: 2 (their blocks of at least 1 MiB, decided at run time)",
            "summary: kept in ordinary memory, below the threshold 1 MiB: 4 arrays, 2.50 KiB (a lower \
             --dlm-threshold=SIZE moves them; marking one with #pragma dlm moves it)",
            "summary: kept in ordinary memory, #pragma dlm off: 1 array, 2 MiB (remove the pragma to move them)",
            "summary: kept in ordinary memory, thread-local: 1 array, 2 MiB (each thread has its own copy, which \
             DLM does not page)",
            "summary: kept in ordinary memory, in a system header: 1 array, 512 B (not the program's own)",
        ],
        "{report}"
    );
    // The summary comes last, after the per-array lines.
    assert!(report.trim_end().ends_with("(not the program's own)"), "{report}");
    // And the program it describes runs as the native one does, its moved arrays paging.
    let expected = run(&mut Command::new(&native), Duration::from_secs(60));
    expected.assert_success();
    let paged = run(Command::new(&exe).env("DLM_LOCAL_MEM", "4M").env("DLM_STATS", "1"), Duration::from_secs(60));
    paged.assert_success();
    assert_eq!(paged.stdout, expected.stdout, "{}", paged.stderr);
    assert!(!paged.stderr.contains("evicted 0 "), "nothing paged: {}", paged.stderr);
}
