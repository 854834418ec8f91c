//! The web portal in a real browser: `dlm portal` in front of the WAN manager of the emulated
//! WAN of `wan.rs` (three clusters, real pools), driven by Debian's Chromium through Playwright
//! (`tests/browser/portal.mjs`, `playwright-core` from `tests/browser/package.json`).
//!
//! Two accounts of this machine, made for the test with passwords of its own, log in through PAM.
//! The first runs a dlmcc stencil by Autorun and watches its live view gain points while it
//! pages through a pool, downloads its result, then runs it again on a node picked in the
//! Interactive page; each result must equal the native run's byte for byte. The second sees none
//! of it, and direct URLs to the first's job are refused. Each bad input is refused with its
//! message. The script takes the screenshots of docs/portal/ on the way.
//!
//! Root, munged, Open MPI's ompi-server, chromium and node with `npm ci` done in tests/browser
//! (scripts/setup.sh): a missing one fails the test.

use crate::support::*;
use crate::wan::{dlm, require_wan_prerequisites, stencil_source, Deployment, WAN_PORT};
use dlm_wan::proto::{JobState, Through};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PORTAL_PORT: u16 = 7469;
/// Small enough that the test can send a form over it quickly.
const MAX_UPLOAD: &str = "8M";
/// The stencil of the portal's jobs: two 64 MiB grids, 256 MiB asked, so through a pool; enough
/// sweeps that it runs for several of the live view's updates.
const CFLAGS: &str = "-DNX=128 -DNY=128 -DNZ=1024";
const SWEEPS: &str = "48";
const MEMORY: &str = "256M";
const USERS: [&str; 2] = ["dlm-web-a", "dlm-web-b"];
const LIMIT: Duration = Duration::from_secs(600);

/// An account of this machine with a password, for logging in through PAM.
struct Account {
    name: &'static str,
    password: String,
}

/// Makes `name` (a system account without a home or a login shell, as `plain_user` does) if it
/// does not exist, and gives it a new random password.
fn account(name: &'static str) -> Account {
    if !Command::new("id").arg(name).output().is_ok_and(|o| o.status.success()) {
        let mut add = Command::new("useradd");
        add.args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]);
        run(&mut add, LIMIT).assert_success();
    }
    let password = format!("pw-{:016x}", rand_u64());
    let mut chpasswd = Command::new("chpasswd").stdin(Stdio::piped()).spawn().expect("chpasswd");
    use std::io::Write;
    chpasswd.stdin.take().unwrap().write_all(format!("{name}:{password}\n").as_bytes()).unwrap();
    assert!(chpasswd.wait().unwrap().success(), "chpasswd {name} failed");
    Account { name, password }
}

fn rand_u64() -> u64 {
    let bytes = std::fs::read("/proc/sys/kernel/random/uuid").unwrap();
    let hex: String = String::from_utf8_lossy(&bytes).chars().filter(char::is_ascii_hexdigit).take(16).collect();
    u64::from_str_radix(&hex, 16).unwrap()
}

/// `dlm portal` on this host in front of the deployment's WAN manager, stopped with SIGTERM
/// (and checked gone) on drop.
struct Portal {
    child: Child,
}

impl Portal {
    fn start() -> Portal {
        install_pam_service();
        let mut cmd = Command::new(dlm());
        cmd.args(["portal", "-w", &format!("localhost:{WAN_PORT}"), "--listen", &format!("127.0.0.1:{PORTAL_PORT}")]);
        cmd.args(["--max-upload", MAX_UPLOAD]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("dlm portal");
        let (said, heard) = std::sync::mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        // Its line when it listens, and then whatever else it says, on the test's stderr.
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                eprintln!("{line}");
                let _ = said.send(line);
            }
        });
        let listening = format!("http://127.0.0.1:{PORTAL_PORT}/");
        let started = Instant::now();
        loop {
            let line = heard.recv_timeout(Duration::from_secs(30)).expect("dlm portal said nothing within 30 s");
            if line.contains(&listening) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "dlm portal does not listen: `{line}`");
        }
        Portal { child }
    }
}

impl Drop for Portal {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success() || std::thread::panicking(), "dlm portal ended with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        assert!(std::thread::panicking(), "dlm portal did not stop within 10 s of SIGTERM");
    }
}

/// The portal's own PAM service, as `scripts/install.sh --pam` installs it.
fn install_pam_service() {
    let installed = Path::new("/etc/pam.d/dlm-portal");
    if !installed.exists() {
        std::fs::copy(repo_dir().join("dlm-portal/pam/dlm-portal"), installed).unwrap();
    }
}

/// The native run's result file, built with cc and the same flags.
fn native_result(dir: &Path) -> Vec<u8> {
    let exe = dir.join("native");
    let mut cc = Command::new("cc");
    cc.arg("-O2").args(CFLAGS.split_whitespace()).arg(stencil_source()).arg("-o").arg(&exe);
    run(&mut cc, LIMIT).assert_success();
    let result = dir.join("native.txt");
    run(Command::new(&exe).arg(SWEEPS).arg(&result), LIMIT).assert_success();
    std::fs::read(&result).unwrap()
}

/// What the browser script needs: where things are, who logs in.
fn script(dir: &Path, accounts: &[Account; 2], too_large: &Path) -> Command {
    let browser_dir = repo_dir().join("tests/browser");
    require(
        "the browser tests' packages (npm ci in tests/browser)",
        (!browser_dir.join("node_modules/playwright-core").is_dir()).then(|| "node_modules missing".into()),
    );
    require("chromium", (!Path::new("/usr/bin/chromium").exists()).then(|| "/usr/bin/chromium missing".into()));
    let mut cmd = Command::new("node");
    cmd.arg(browser_dir.join("portal.mjs"))
        .env("PORTAL_URL", format!("http://127.0.0.1:{PORTAL_PORT}"))
        .env("USER_A", accounts[0].name)
        .env("PASSWORD_A", &accounts[0].password)
        .env("USER_B", accounts[1].name)
        .env("PASSWORD_B", &accounts[1].password)
        .env("STENCIL", stencil_source())
        .env("CFLAGS", CFLAGS)
        .env("SWEEPS", SWEEPS)
        .env("MEMORY", MEMORY)
        .env("TOO_LARGE", too_large)
        .env("DOWNLOADS", dir.join("downloads"))
        .env("SCREENSHOTS", repo_dir().join("docs/portal"))
        .env("USER_DATA", dir.join("chromium"));
    cmd
}

/// The script's last line: `{"autorun": ID, "interactive": ID, "node": "CLUSTER/NODE"}`.
struct Ran {
    autorun: u64,
    interactive: u64,
    node: String,
}

fn ran(stdout: &str) -> Ran {
    let last = stdout.lines().last().unwrap_or_default();
    let json: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: the browser script printed\n{stdout}"));
    let id = |key: &str| json[key].as_u64().unwrap_or_else(|| panic!("no {key} in `{last}`"));
    Ran { autorun: id("autorun"), interactive: id("interactive"), node: json["node"].as_str().unwrap_or("").into() }
}

/// A file of zeros beyond the upload limit.
fn too_large_file(dir: &Path) -> PathBuf {
    let path = dir.join("too-large.bin");
    std::fs::write(&path, vec![0u8; 9 << 20]).unwrap();
    path
}

#[test]
fn the_portal_runs_watches_and_downloads_jobs_in_a_real_browser_for_its_own_user_only() {
    let _serial = one_at_a_time();
    require_wan_prerequisites();
    let accounts = USERS.map(account);
    let d = Deployment::up();
    let native = native_result(d.dir.path());
    let portal = Portal::start();

    let out = run(&mut script(d.dir.path(), &accounts, &too_large_file(d.dir.path())), LIMIT);
    assert!(out.status.success(), "the browser script failed:\n{}\n{}", out.stdout, out.stderr);
    let ran = ran(&out.stdout);

    let downloads = d.dir.path().join("downloads");
    for (id, file) in [(ran.autorun, "autorun-result.txt"), (ran.interactive, "interactive-result.txt")] {
        let got = std::fs::read(downloads.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(got, native, "job {id}'s downloaded result differs from the native run's");
    }
    let jobs = d.jobs();
    for id in [ran.autorun, ran.interactive] {
        let job = jobs.values().find(|j| j.id.0 == id).unwrap_or_else(|| panic!("job {id} unknown to the WAN"));
        assert_eq!((job.state, job.user.as_str()), (JobState::Done, USERS[0]), "{job:#?}");
        let placement = job.placement.as_ref().unwrap();
        assert_eq!(placement.through, Through::Pool, "{job:#?}");
        assert!(!placement.servers.is_empty(), "{job:#?}");
    }
    let interactive = jobs.values().find(|j| j.id.0 == ran.interactive).unwrap().placement.clone().unwrap();
    assert_eq!(format!("{}/{}", interactive.cluster, interactive.node), ran.node);
    let of = |user: &str| jobs.values().filter(|j| j.user == user).count();
    assert_eq!((of(USERS[0]), of(USERS[1])), (2, 0), "a refused input made a job: {jobs:#?}");

    // The WAN manager gone, the portal still serves (its pages then say the manager does not
    // answer) and still stops cleanly.
    let mut down = Command::new(dlm());
    down.args(["wan", "down", "--force"]).env("DLM_WAN", format!("localhost:{WAN_PORT}"));
    let down = run(&mut down, LIMIT);
    assert!(down.status.success(), "{}", down.stderr);
    let login = run(
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("http://127.0.0.1:{PORTAL_PORT}/login")),
        LIMIT,
    );
    assert_eq!(login.stdout.trim(), "200", "the portal after its WAN manager stopped: {}", login.stderr);
    drop(portal);
}
