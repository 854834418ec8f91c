//! `#[dlm]` and `#[dlm::main]`: results equal to the same computation on ordinary memory.

use crate::support::*;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(300);

#[test]
fn dlm_items_through_a_quarter_budget_give_the_native_digest() {
    let _heavy = one_at_a_time();
    let exe = rust_example("attributes");
    let native = run(Command::new(&exe).arg("--native"), LIMIT);
    let digest = native.assert_success().field("digest:");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("stats.json");
    // 1.06 GiB of #[dlm] items through 256 MiB, standalone and under mpirun.
    let standalone = run(Command::new(&exe).env("DLM_LOCAL_MEM", "256M").env("DLM_STATS_JSON", &json), LIMIT);
    assert_eq!(standalone.assert_success().field("digest:"), digest);
    let stats = std::fs::read_to_string(&json).unwrap();
    assert!(stat(&stats, "pages_evicted") > 0.0 && stat(&stats, "bytes_fetched") > 0.0, "{stats}");
    assert!(stat(&stats, "peak_resident_bytes") <= (256u64 << 20) as f64, "{stats}");
    let under_mpirun = run(mpirun(2).arg(&exe).env("DLM_LOCAL_MEM", "256M"), LIMIT);
    assert_eq!(under_mpirun.assert_success().field("digest:"), digest);
}

#[test]
fn himeno_validates_like_the_plain_rust_solver() {
    let _heavy = one_at_a_time();
    let exe = rust_example("himeno");
    let native = run(Command::new(&exe).args(["4", "--native"]), LIMIT);
    let expected = native.assert_success().field("validation (gosa):");
    // About 240 MB of grids through 60 MiB.
    let dlm = run(Command::new(&exe).arg("4").env("DLM_LOCAL_MEM", "60M").env("DLM_STATS", "1"), LIMIT);
    assert_eq!(dlm.assert_success().field("validation (gosa):"), expected);
    assert!(dlm.stdout.contains("MFLOPS: "), "{}", dlm.stdout);
    assert!(dlm.stderr.contains("wrote back"), "{}", dlm.stderr);
}

#[test]
fn main_returning_result_and_guard_misuse() {
    let _heavy = one_at_a_time();
    let exe = test_program("result_main");
    let ok = run(Command::new(&exe).arg("ok").env("DLM_LOCAL_MEM", "4M"), LIMIT);
    // 4Mi cells of 3, one of them plus 7 from the initialized static.
    assert_eq!(ok.assert_success().field("cells[12] ="), "10, sum = 12582919");
    let failed = run(Command::new(&exe).arg("fail").env("DLM_LOCAL_MEM", "4M"), LIMIT);
    assert_eq!(failed.status.code(), Some(1));
    assert!(failed.stderr.contains("Error: \"asked to fail\""), "{}", failed.stderr);
    let misuse = run(Command::new(&exe).args(["ok", "two-writers"]).env("DLM_LOCAL_MEM", "4M"), LIMIT);
    assert!(!misuse.status.success());
    assert!(misuse.stderr.contains("TABLE.write() while another guard of TABLE is alive"), "{}", misuse.stderr);
    assert!(survivors_after(&exe, Duration::from_secs(10)).is_empty());
}
