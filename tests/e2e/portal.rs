//! The web portal in a real browser (Debian's chromium, driven by playwright-core from
//! tests/browser/portal.mjs) against `dlm portal` in front of the WAN manager of the emulated
//! WAN of tests/e2e/wan.rs, with two real accounts logging in through PAM: a C stencil Autorun
//! with recompile, its live view gaining points while it runs, its output downloaded and equal
//! to the native run's byte for byte; the same on a chosen node (Interactive); each bad input
//! refused with its message; the second user sees none of the first user's jobs or files, and
//! direct URLs to them are not found. The screenshots land in target/portal-shots/ (the ones in
//! docs/portal/ come from such a run).
//!
//! Root (namespaces, accounts), munged, Open MPI, chromium and tests/browser's node_modules
//! (scripts/setup.sh): a missing one fails the test.

use crate::support::*;
use crate::wan::{dlm, require_wan_prerequisites, stencil_source, Deployment, WAN_PORT};
use serde_json::Value;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PORTAL: &str = "127.0.0.1:7465";
/// Long enough that the live view gets several samples (about one a second) while it runs.
const CFLAGS: &str = "-DNX=128 -DNY=128 -DNZ=1024";
const SWEEPS: &str = "12";
const MEMORY: &str = "256M";
const OUTPUT: &str = "result.txt";
/// The portal's upload limit in this test, and a file over it.
const MAX_UPLOAD: &str = "2M";
const TOO_BIG_BYTES: usize = 3 << 20;
const LIMIT: Duration = Duration::from_secs(900);

/// An account with a password, removed (with its home) on drop.
struct Account {
    name: String,
    password: String,
}

impl Account {
    fn new(name: &str) -> Account {
        let _ = Command::new("userdel").args(["-r", name]).stderr(Stdio::null()).status();
        run(Command::new("useradd").args(["-m", "-s", "/bin/sh", name]), Duration::from_secs(30)).assert_success();
        let password = format!("pw-{name}-{}", std::process::id());
        let mut chpasswd = Command::new("chpasswd").stdin(Stdio::piped()).spawn().unwrap();
        use std::io::Write;
        chpasswd.stdin.take().unwrap().write_all(format!("{name}:{password}\n").as_bytes()).unwrap();
        assert!(chpasswd.wait().unwrap().success(), "chpasswd failed for {name}");
        Account { name: name.to_string(), password }
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let _ = Command::new("pkill").args(["-u", &self.name]).status();
        let _ = Command::new("userdel").args(["-r", &self.name]).stderr(Stdio::null()).status();
    }
}

/// `dlm portal` in front of the deployment's WAN manager, killed on drop.
struct Portal(Child);

impl Portal {
    fn start(log: &std::path::Path) -> Portal {
        let child = Command::new(dlm())
            .args(["portal", "--listen", PORTAL, "-w", &format!("localhost:{WAN_PORT}"), "--max-upload", MAX_UPLOAD])
            .stdout(std::fs::File::create(log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .expect("dlm portal");
        let started = Instant::now();
        while TcpStream::connect(PORTAL).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "dlm portal does not listen on {PORTAL}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Portal(child)
    }
}

impl Drop for Portal {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn require_browser() -> std::path::PathBuf {
    let browser_dir = repo_dir().join("tests/browser");
    let missing = if !std::path::Path::new("/usr/bin/chromium").exists() {
        Some("no /usr/bin/chromium (apt-get install chromium)".to_string())
    } else if !browser_dir.join("node_modules/playwright-core").is_dir() {
        Some(format!("no playwright-core in {} (npm ci there; scripts/setup.sh does)", browser_dir.display()))
    } else {
        None
    };
    require("a browser to drive", missing);
    browser_dir
}

/// The native build's result, with the same flags.
fn native_result(dir: &std::path::Path) -> Vec<u8> {
    let exe = dir.join("native");
    let mut cc = Command::new("cc");
    cc.arg("-O2").args(CFLAGS.split_whitespace()).arg(stencil_source()).arg("-o").arg(&exe);
    run(&mut cc, Duration::from_secs(60)).assert_success();
    let result = dir.join("native.txt");
    run(Command::new(&exe).arg(SWEEPS).arg(&result), Duration::from_secs(60)).assert_success();
    std::fs::read(result).unwrap()
}

#[test]
fn portal_in_a_browser_runs_watches_and_downloads_a_job_for_its_user_only() {
    let _serial = one_at_a_time();
    require_wan_prerequisites();
    let browser_dir = require_browser();
    let deployment = Deployment::up();
    let (alice, bob) = (Account::new("dlm-portal-a"), Account::new("dlm-portal-b"));
    let dir = deployment.dir.path();
    let native = native_result(dir);
    let too_big = dir.join("too-big.bin");
    std::fs::write(&too_big, vec![7u8; TOO_BIG_BYTES]).unwrap();
    // The stencil where alice's account can read it, as a browser's user would have it.
    let source = dir.join("stencil.c");
    std::fs::copy(stencil_source(), &source).unwrap();
    let _portal = Portal::start(&dir.join("portal.log"));
    let shots = target_dir().join("portal-shots");
    let _ = std::fs::remove_dir_all(&shots);
    let node = format!("c3/{}", deployment.wan.compute(3)[1]);

    let mut script = Command::new("node");
    script
        .arg(browser_dir.join("portal.mjs"))
        .current_dir(&browser_dir)
        .env("PORTAL", format!("http://{PORTAL}"))
        .env("USER1", &alice.name)
        .env("PASSWORD1", &alice.password)
        .env("USER2", &bob.name)
        .env("PASSWORD2", &bob.password)
        .env("SOURCE", &source)
        .env("CFLAGS", CFLAGS)
        .env("ARGS", format!("{SWEEPS} {OUTPUT}"))
        .env("MEMORY", MEMORY)
        .env("OUTPUT", OUTPUT)
        .env("NODE", &node)
        .env("TOO_BIG", &too_big)
        .env("SHOTS", &shots);
    let out = run(&mut script, LIMIT);
    let found: Value = serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null);
    assert!(out.status.success(), "the browser script failed:\n{}\n{}\nportal: {}", out.stdout, out.stderr,
        std::fs::read_to_string(dir.join("portal.err")).unwrap_or_default());

    // Both runs finished and gave the native result, byte for byte.
    assert_eq!(found["autorunState"], "done", "{found}");
    assert_eq!(found["interactiveState"], "done", "{found}");
    for run_name in ["autorun", "interactive"] {
        let fetched = std::fs::read(target_dir().join(format!("{run_name}-{OUTPUT}"))).unwrap();
        assert_eq!(fetched, native, "the {run_name} job's {OUTPUT} differs from the native run's");
    }
    assert!(found["interactivePlace"].as_str().unwrap_or_default().contains(deployment.wan.compute(3)[1].as_str()), "{found}");
    // The live view gained points while the job ran.
    let live = &found["live"];
    assert!(live["after"].as_u64() > live["before"].as_u64(), "{found}");
    assert_eq!(live["state"], "running", "{found}");
    assert!(found["archiveBytes"].as_u64().unwrap_or(0) > native.len() as u64, "{found}");
    // Bad input: each refused with its message.
    let bad = &found["bad"];
    let text = |key: &str| bad[key].as_str().unwrap_or_default().to_string();
    assert!(text("tooBig").contains("2 MiB"), "{found}");
    assert!(text("dotDot").contains("../evil.dat"), "{found}");
    assert!(text("absolute").contains("/etc/passwd"), "{found}");
    assert!(text("tooMuchMemory").contains("64 GiB") && text("tooMuchMemory").contains("896 MiB"), "{found}");
    assert_eq!(bad["unknownJob"]["status"], 404, "{found}");
    // The second user: nothing of the first's, and direct URLs are not found.
    assert_eq!(found["otherJobs"], 0, "{found}");
    assert_eq!(found["otherFolders"], 0, "{found}");
    assert_eq!(found["otherDirect"]["status"], 404, "{found}");
    assert_eq!(found["otherFile"], 404, "{found}");
    assert_eq!(found["otherApi"], 404, "{found}");
    for page in ["login", "autorun", "interactive", "job-live", "jobs", "downloads"] {
        assert!(shots.join(format!("{page}.png")).is_file(), "no screenshot of {page}");
    }
}
