//! Helpers: build C programs with dlmcc, run programs standalone or under mpirun with a time
//! limit, read DLM's JSON statistics, and find DLM processes that outlived their job.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The heavy tests run one at a time: they page gigabytes through a 2-core machine.
static HEAVY: Mutex<()> = Mutex::new(());

pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// `target/<profile>`, where cargo put dlmcc, libdlm.a and the examples.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>").to_path_buf()
}

pub fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

/// An example of the runtime (`examples/*.rs`: bigsweep, attributes, himeno).
pub fn rust_example(name: &str) -> PathBuf {
    let path = target_dir().join("examples").join(name);
    assert!(path.is_file(), "{} is missing: run `cargo build --release --workspace --examples` first", path.display());
    path
}

/// A test program of this suite (`tests/bin/*.rs`: rust_probe, result_main, torture, rust_fileio).
pub fn test_program(name: &str) -> PathBuf {
    let path = target_dir().join(name);
    assert!(path.is_file(), "{} is missing: run `cargo build --release --workspace --bins` first", path.display());
    path
}

/// Compiles `source` (relative to the repo) with dlmcc into `dir`; returns the executable.
pub fn dlmcc(dir: &Path, source: &str) -> PathBuf {
    let dlmcc = target_dir().join("dlmcc");
    assert!(dlmcc.is_file(), "{} is missing: run `cargo build --release --workspace` first", dlmcc.display());
    let out = dir.join(Path::new(source).file_stem().expect("file name"));
    let status = Command::new(&dlmcc)
        .args(["-O2", "-Wall", "-o"])
        .arg(&out)
        .arg(repo_dir().join(source))
        .status()
        .expect("run dlmcc");
    assert!(status.success(), "dlmcc failed on {source}");
    out
}

/// Compiles `source` with plain cc and `-DNATIVE` (ordinary memory instead of DLM).
pub fn cc_native(dir: &Path, source: &str) -> PathBuf {
    let out = dir.join(format!("{}-native", Path::new(source).file_stem().unwrap().to_string_lossy()));
    let status =
        Command::new("cc").args(["-O2", "-DNATIVE", "-o"]).arg(&out).arg(repo_dir().join(source)).status().expect("cc");
    assert!(status.success(), "cc failed on {source}");
    out
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn assert_success(&self) -> &Self {
        assert!(self.status.success(), "exit {:?}\nstdout:\n{}\nstderr:\n{}", self.status, self.stdout, self.stderr);
        self
    }

    /// The value after `key` on the line that starts with it (e.g. `checksum:`).
    pub fn field(&self, key: &str) -> String {
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no `{key}` in output:\n{}", self.stdout))
            .trim()
            .to_string()
    }
}

/// Runs `cmd` (a compiler, make) to completion; fails the test with its output unless it succeeds.
pub fn succeed(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh copy in `to` of the files of `source_dir` (relative to the repo).
pub fn copy_sources(source_dir: &str, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(repo_dir().join(source_dir)).unwrap().flatten() {
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// `make` with `args` in a fresh copy of `source_dir` at `to`, with `CC=compiler` if given
/// (the environment's `CC` and `CFLAGS` left out).
pub fn make_copy(source_dir: &str, to: &Path, args: &[&str], compiler: Option<&Path>) {
    copy_sources(source_dir, to);
    let mut cmd = Command::new("make");
    cmd.arg("-C").arg(to).args(args).env_remove("CC").env_remove("CFLAGS");
    if let Some(compiler) = compiler {
        cmd.arg(format!("CC={}", compiler.display()));
    }
    succeed(&mut cmd);
}

/// `mpirun -np NP` with what Open MPI needs as root on a small machine.
pub fn mpirun(np: usize) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args(["-np", &np.to_string()])
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1");
    cmd
}

/// Runs `cmd` to completion, killing it (and failing the test) after `limit`.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                std::fs::read_to_string(&out_path).unwrap_or_default(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// Live (not zombie) processes running the executable `exe`.
pub fn live_processes(exe: &Path) -> Vec<u32> {
    let exe = exe.canonicalize().unwrap_or_else(|_| exe.to_path_buf());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if std::fs::read_link(entry.path().join("exe")).ok().as_deref() != Some(exe.as_path()) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let state = stat.rsplit(") ").next().and_then(|rest| rest.chars().next());
        if !matches!(state, Some('Z') | Some('X') | None) {
            found.push(pid);
        }
    }
    found
}

/// Waits up to `limit` for every process running `exe` to end; returns the survivors.
pub fn survivors_after(exe: &Path, limit: Duration) -> Vec<u32> {
    let started = Instant::now();
    loop {
        let live = live_processes(exe);
        if live.is_empty() || started.elapsed() > limit {
            return live;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kills leftovers so that one failing test does not leave load behind for the next.
pub fn kill_all(pids: &[u32]) {
    for pid in pids {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

/// Ends the calling test with a failure when a prerequisite of the suite is missing: the suite
/// runs as root on a Debian machine set up by scripts/setup.sh (README), where each exists, so
/// a missing one is a failure to see, never a silent pass.
pub fn require(prerequisite: &str, missing: Option<String>) {
    if let Some(reason) = missing {
        panic!("prerequisite missing: {prerequisite}: {reason} (the suite runs as root after scripts/setup.sh)");
    }
}

/// The one feature check of the suite, as the runtime itself probes this machine
/// (`dlm::probe`, what `dlm doctor` reports): why DLM pages of 2 MiB are not moved whole
/// here, if they are not (no transparent huge pages, no `UFFDIO_MOVE`, or swap on: then DLM
/// copies pages).
pub fn why_huge_pages_do_not_move() -> Option<String> {
    if !dlm::probe::huge_pages_available() {
        return Some("the kernel gives no transparent huge pages (THP mode never)".into());
    }
    if swap_is_on() {
        return Some("the machine has swap on (DLM then copies pages)".into());
    }
    match dlm::probe::userfaultfd() {
        Ok(found) if matches!(found.moves, dlm::probe::PageMoves::HugePageWhole) => None,
        Ok(found) => Some(format!("2 MiB pages do not move whole here: {:?}", found.moves)),
        Err(e) => Some(format!("no userfaultfd: {e}")),
    }
}

/// Whether DLM pages of 64 KiB and more are moved: the kernel has `UFFDIO_MOVE` and the machine
/// has no swap on (with swap on, DLM copies pages).
pub fn kernel_moves_pages() -> bool {
    use dlm::probe::PageMoves::{Refused, Unavailable};
    !swap_is_on() && dlm::probe::userfaultfd().is_ok_and(|found| !matches!(found.moves, Unavailable | Refused(_)))
}

/// Whether the machine has swap on (`/proc/swaps` lists a device or file).
pub fn swap_is_on() -> bool {
    dlm::probe::swap_is_on()
}

/// Whether these tests run as root.
pub fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// One number from DLM's statistics JSON.
pub fn stat(json: &str, key: &str) -> f64 {
    let needle = format!("\"{key}\": ");
    let start = json.find(&needle).unwrap_or_else(|| panic!("no {key} in {json}")) + needle.len();
    let end = json[start..].find([',', '}']).map_or(json.len(), |e| start + e);
    json[start..end].trim().parse().unwrap_or_else(|_| panic!("{key} is not a number in {json}"))
}

/// Starts `cmd`, which runs `exits hang`, and returns it with the compute process's pid.
pub fn start_hanging(cmd: &mut Command) -> (Child, u32) {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let pid = loop {
        let line = lines.next().expect("program output").expect("read");
        if let Some(pid) = line.strip_prefix("pid ") {
            break pid.trim().parse().unwrap();
        }
    };
    (child, pid)
}

/// Waits for `child` to end within `limit` (killing it and failing otherwise); returns its
/// status and stderr.
pub fn ends_within(mut child: Child, limit: Duration) -> (ExitStatus, String) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child.stderr.as_mut().unwrap().read_to_string(&mut stderr).unwrap();
            return (status, stderr);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the job did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fails (after killing them) if processes running `exe` are still alive 10 s from now.
pub fn assert_no_survivors(exe: &Path) {
    let left = survivors_after(exe, Duration::from_secs(10));
    kill_all(&left);
    assert!(left.is_empty(), "DLM processes left behind: {left:?}");
}

/// A user who is not root, for the tests of what such a user can do (`plain_user`).
pub struct PlainUser {
    pub name: &'static str,
}

/// The tests' user who is not root, created on first use; `Err` with the reason to print when
/// the tests cannot create one (they do not run as root).
pub fn plain_user() -> Result<PlainUser, String> {
    static CREATED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    const NAME: &str = "dlm-plain";
    CREATED
        .get_or_init(|| {
            if !running_as_root() {
                return Err("the tests do not run as root, so they cannot create a plain user".into());
            }
            if Command::new("id").arg(NAME).output().is_ok_and(|o| o.status.success()) {
                return Ok(());
            }
            let status = Command::new("useradd")
                .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", NAME])
                .status()
                .map_err(|e| format!("cannot run useradd: {e}"))?;
            status.success().then_some(()).ok_or_else(|| format!("useradd {NAME} failed: {status}"))
        })
        .clone()
        .map(|()| PlainUser { name: NAME })
}

/// `cmd` as it is, or run as `user` (with `HOME` at `home`) when one is given.
pub fn as_user(user: Option<&PlainUser>, home: &Path, cmd: Command) -> Command {
    match user {
        Some(user) => user.wrap(home, &cmd),
        None => cmd,
    }
}

/// The plain user; the calling test fails if it cannot be had (see [`require`]).
pub fn require_plain_user() -> PlainUser {
    plain_user().unwrap_or_else(|reason| panic!("prerequisite missing: a plain user: {reason}"))
}

impl PlainUser {
    /// Runs `program` as this user, with the test's environment and `HOME` set to `home`.
    pub fn command(&self, home: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid", self.name, "--regid", self.name, "--init-groups", "--"]).arg(program).env("HOME", home);
        cmd
    }

    /// `cmd` (its program, arguments and environment) run as this user with `HOME` at `home`.
    pub fn wrap(&self, home: &Path, cmd: &Command) -> Command {
        let mut wrapped = self.command(home, cmd.get_program());
        wrapped.args(cmd.get_args());
        for (key, value) in cmd.get_envs() {
            match value {
                Some(value) => wrapped.env(key, value),
                None => wrapped.env_remove(key),
            };
        }
        wrapped
    }

    /// A temporary directory that this user owns (and so may read, write and run files in).
    pub fn tempdir(&self) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("chown").arg(format!("{0}:{0}", self.name)).arg(dir.path()).status().expect("chown");
        assert!(status.success(), "chown {} failed", dir.path().display());
        dir
    }

    /// A copy of `file` in `dir` that this user can run (the checkout may be in a directory
    /// only root can enter).
    pub fn runnable_copy(&self, file: &Path, dir: &Path) -> PathBuf {
        let copy = dir.join(file.file_name().expect("file name"));
        std::fs::copy(file, &copy).expect("copy for the plain user");
        let status = Command::new("chown").arg(format!("{0}:{0}", self.name)).arg(&copy).status().expect("chown");
        assert!(status.success());
        copy
    }
}

/// `scripts/install.sh --prefix PREFIX --mpi-defaults user` from the checkout at `checkout`,
/// with `HOME` at `home` (so the user's MCA parameter file is the test's, never root's) and
/// cargo's target directory at `target_dir` if given (else the tests' own build: cargo's
/// environment as it is).
pub fn install(checkout: &Path, prefix: &Path, home: &Path, target_dir: Option<&Path>) -> Output {
    let mut cmd = Command::new(checkout.join("scripts/install.sh"));
    cmd.arg("--prefix").arg(prefix).args(["--mpi-defaults", "user"]).env("HOME", home);
    // The toolchain that runs these tests, whatever HOME says.
    for (name, dir) in [("CARGO_HOME", ".cargo"), ("RUSTUP_HOME", ".rustup")] {
        if std::env::var_os(name).is_none() {
            cmd.env(name, Path::new(&std::env::var_os("HOME").expect("HOME")).join(dir));
        }
    }
    if let Some(dir) = target_dir {
        cmd.env("CARGO_TARGET_DIR", dir);
    }
    let out = run(&mut cmd, Duration::from_secs(900));
    out.assert_success();
    out
}
