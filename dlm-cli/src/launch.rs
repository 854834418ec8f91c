//! What `dlm pool up` starts, and how it all stops: the MPI rendezvous (`ompi-server`), one
//! `mpirun` per POOLCONF server line (the resident server on its host), and the manager that
//! supervises them.
//!
//! `dlm pool up` ([`up`]) checks what it can first (the POOLCONF, `mpirun` and `ompi-server`
//! on PATH, every host's name, no manager already answering), then starts
//! `dlm pool manager POOLCONF --launch …` detached (a new session, its output in
//! `RUNDIR/manager.log`) and waits until every server is up. With `--launch` the manager
//! ([`Launched`]) first starts `ompi-server --no-daemonize --report-uri RUNDIR/ompi-server.uri`
//! and reads its URI (the rendezvous handed to clients in every assignment), then, once its
//! listeners are bound, runs for server line `i` on host `H`
//! `mpirun --host H -np 1 --ompi-server file:RUNDIR/ompi-server.uri <dlm> pool serve
//! --manager ADVERTISE:PORT --line i` with its output in `RUNDIR/server-i.log`. When the
//! manager stops (after `dlm pool down`, or on SIGINT/SIGTERM) it gives the `mpirun`s
//! [`GRACE`] to end on their own (a server leaves when its report's reply says `down`), sends
//! SIGTERM to the rest, then stops `ompi-server`.
//!
//! The environment variable `DLM_POOL_SERVER_COMMAND` (tests only) names a program to run in
//! place of `<dlm> pool serve`, with the same `--manager ADDR --line I` arguments.

use anyhow::{bail, Context as _};
use dlm_pool::client::{Address, PoolClient};
use dlm_pool::conf::PoolConf;
use dlm_pool::proto::{Phase, ServerState, Status};
use dlm_pool::remote;
use dlm_units::Bytes;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::net::ToSocketAddrs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a stopping manager waits for the servers' `mpirun`s to end on their own.
pub const GRACE: Duration = Duration::from_secs(10);
/// How long a process has after SIGTERM before it gets SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);
/// How long `ompi-server` may take to write its URI.
const URI_TIMEOUT: Duration = Duration::from_secs(15);
/// How many lines of a log a failure shows.
const TAIL_LINES: usize = 12;
/// The environment variable that replaces `<dlm> pool serve` (tests only).
pub const SERVER_COMMAND_ENV: &str = "DLM_POOL_SERVER_COMMAND";

/// The run directory when none is given: `/run/dlm` for root, else `$XDG_RUNTIME_DIR/dlm`
/// (else `/tmp/dlm-UID`).
pub fn default_run_dir() -> PathBuf {
    if euid() == 0 {
        return PathBuf::from("/run/dlm");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("dlm"),
        _ => PathBuf::from(format!("/tmp/dlm-{}", euid())),
    }
}

pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Options of `dlm pool up`, handed on to the manager it starts.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub poolconf: PathBuf,
    pub listen: std::net::SocketAddr,
    pub socket: PathBuf,
    pub lease: u64,
    pub advertise: Option<String>,
    pub run_dir: PathBuf,
    pub timeout: Duration,
}

/// `dlm pool up`: starts the pool and returns once every server is up; on any failure stops
/// whatever it started.
pub fn up(options: &UpOptions) -> anyhow::Result<()> {
    let conf = PoolConf::load(&options.poolconf)?;
    for tool in ["mpirun", "ompi-server"] {
        if find_on_path(tool).is_none() {
            bail!(
                "{tool} is not on PATH: install Open MPI (Debian: apt-get install openmpi-bin) or put its bin \
                 directory on PATH"
            );
        }
    }
    check_hosts(&conf)?;
    let client = PoolClient::new(Address::Unix(options.socket.clone()));
    if let Ok(status) = client.status() {
        bail!(
            "a pool manager already answers on {} ({} servers, {}); stop it with `dlm pool down` first",
            options.socket.display(),
            status.servers.len(),
            format!("{:?}", status.phase).to_lowercase()
        );
    }
    std::fs::create_dir_all(&options.run_dir)
        .with_context(|| format!("cannot make the run directory {}", options.run_dir.display()))?;
    let log_path = options.run_dir.join("manager.log");
    let log = File::create(&log_path).with_context(|| format!("cannot write {}", log_path.display()))?;
    let poolconf = std::path::absolute(&options.poolconf).unwrap_or_else(|_| options.poolconf.clone());
    let mut command = Command::new(std::env::current_exe().context("cannot find the dlm executable")?);
    command
        .args(["pool", "manager"])
        .arg(&poolconf)
        .arg("--launch")
        .arg("--listen")
        .arg(options.listen.to_string())
        .arg("--socket")
        .arg(&options.socket)
        .arg("--lease")
        .arg(options.lease.to_string())
        .arg("--run-dir")
        .arg(&options.run_dir);
    if let Some(host) = &options.advertise {
        command.arg("--advertise").arg(host);
    }
    command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
    new_session(&mut command);
    let mut manager = command.spawn().context("cannot start the pool manager")?;
    let deadline = Instant::now() + options.timeout;
    let mut last = None;
    loop {
        if let Some(exit) = manager.try_wait()? {
            bail!(
                "the pool manager exited ({exit}) before the pool was up; the end of {}:\n{}",
                log_path.display(),
                indent(&tail(&log_path))
            );
        }
        match client.status() {
            Ok(status) if all_up(&status) => {
                print!("{}", server_lines(&status));
                eprintln!(
                    "dlm pool up: {} servers up; manager on {} and {}:{}, logs in {}",
                    status.servers.len(),
                    options.socket.display(),
                    options.advertise.clone().unwrap_or_else(dlm::probe::hostname),
                    options.listen.port(),
                    options.run_dir.display()
                );
                return Ok(());
            }
            Ok(status) => last = Some(status),
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let report = not_up_report(&conf, last.as_ref(), &options.run_dir);
    stop_manager(&client, &mut manager);
    bail!(
        "the pool did not come up within {} s; everything it started was stopped.\n{report}",
        options.timeout.as_secs()
    )
}

/// Makes `command`'s child the leader of a new session: it has no terminal (a Ctrl-C there
/// does not reach it) and its process group is its own, for [`signal_group`].
pub(crate) fn new_session(command: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec and calls only setsid,
    // which is async-signal-safe.
    unsafe {
        command.pre_exec(|| if libc::setsid() < 0 { Err(io::Error::last_os_error()) } else { Ok(()) });
    }
}

/// Whether the manager answers with every server up, serving (its rebuild after the start
/// is over: joins are taken) and with its rendezvous.
fn all_up(status: &Status) -> bool {
    status.phase == Phase::Serving
        && status.rendezvous.is_some()
        && status.servers.iter().all(|s| s.state == ServerState::Up)
}

/// One line per server: id, host, cap.
pub fn server_lines(status: &Status) -> String {
    let width = status.servers.iter().map(|s| s.host.len()).max().unwrap_or(0);
    status.servers.iter().map(|s| format!("{}  {:width$}  {}\n", s.id, s.host, Bytes(s.cap_bytes))).collect()
}

/// Which servers are not up, each with the end of its log.
fn not_up_report(conf: &PoolConf, status: Option<&Status>, run_dir: &Path) -> String {
    let mut out = String::new();
    if status.is_none() {
        out.push_str(&format!(
            "the manager never answered; the end of {}:\n{}\n",
            run_dir.join("manager.log").display(),
            indent(&tail(&run_dir.join("manager.log")))
        ));
    }
    for (i, line) in conf.servers.iter().enumerate() {
        let state = status.and_then(|s| s.servers.get(i)).map(|s| (s.state, s.down_reason));
        if matches!(state, Some((ServerState::Up, _))) {
            continue;
        }
        let log = server_log(run_dir, i);
        out.push_str(&format!(
            "server {i} on {} did not come up; the end of {}:\n{}\n",
            line.host,
            log.display(),
            indent(&tail(&log))
        ));
    }
    out
}

/// Stops a manager that `up` started: `down --force` (its servers leave), else SIGTERM; then
/// its whole session's process group if it is still there after its grace.
fn stop_manager(client: &PoolClient, manager: &mut Child) {
    if client.down(true).is_err() {
        signal(manager.id(), libc::SIGTERM);
    }
    let limit = GRACE + 2 * TERM_GRACE + Duration::from_secs(5);
    if wait_for(manager, limit).is_none() {
        // The manager leads its own process group (a new session): ompi-server and the
        // mpiruns are in it.
        signal_group(manager.id(), libc::SIGKILL);
        let _ = manager.wait();
    }
}

/// Each POOLCONF host must resolve here (mpirun and the emulated hosts use the same names).
fn check_hosts(conf: &PoolConf) -> anyhow::Result<()> {
    for line in &conf.servers {
        if let Err(e) = (line.host.as_str(), 0).to_socket_addrs() {
            bail!(
                "{}:{}: host `{}` does not resolve ({e}); fix the name, or add it to DNS or /etc/hosts",
                conf.path.display(),
                line.line,
                line.host
            );
        }
    }
    Ok(())
}

/// A server's log in the run directory.
pub fn server_log(run_dir: &Path, id: usize) -> PathBuf {
    run_dir.join(format!("server-{id}.log"))
}

/// The last lines of a log that say something.
pub fn tail(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => tail_of(&String::from_utf8_lossy(&bytes), TAIL_LINES),
        Err(e) => format!("(cannot read it: {e})"),
    }
}

fn tail_of(text: &str, n: usize) -> String {
    let lines: Vec<&str> =
        text.lines().filter(|l| !l.trim().is_empty() && !l.trim().chars().all(|c| c == '-')).collect();
    if lines.is_empty() {
        return "(empty)".into();
    }
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub(crate) fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

/// The URI in ompi-server's report file: its first line, once it is complete.
pub fn read_uri(text: &str) -> Option<String> {
    let (line, _) = text.split_once('\n')?;
    let line = line.trim();
    (!line.is_empty()).then(|| line.to_string())
}

/// What the manager runs with `--launch`: the rendezvous, and the servers' mpiruns.
pub struct Launched {
    run_dir: PathBuf,
    uri_file: PathBuf,
    pub uri: String,
    ompi_server: Child,
    servers: Arc<Mutex<Vec<ServerJob>>>,
    supervising: Arc<AtomicBool>,
    supervisor: Option<std::thread::JoinHandle<()>>,
    stopped: bool,
}

/// One server line's mpirun.
struct ServerJob {
    id: usize,
    host: String,
    child: Child,
    exited: Option<ExitStatus>,
}

/// Open MPI's environment for a launch: as root it refuses to run without the two
/// confirmations; several servers share a host's few cores.
fn open_mpi_env(command: &mut Command) {
    let mut set = |name: &str| {
        if std::env::var_os(name).is_none() {
            command.env(name, "1");
        }
    };
    if euid() == 0 {
        set("OMPI_ALLOW_RUN_AS_ROOT");
        set("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM");
    }
    set("OMPI_MCA_rmaps_base_oversubscribe");
}

impl Launched {
    /// Starts `ompi-server` and waits for its URI.
    pub fn start(run_dir: &Path) -> anyhow::Result<Launched> {
        std::fs::create_dir_all(run_dir).with_context(|| format!("cannot make {}", run_dir.display()))?;
        let uri_file = run_dir.join("ompi-server.uri");
        match std::fs::remove_file(&uri_file) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove the stale {}", uri_file.display()))
            }
            _ => {}
        }
        let log_path = run_dir.join("ompi-server.log");
        let log = File::create(&log_path).with_context(|| format!("cannot write {}", log_path.display()))?;
        let mut command = Command::new("ompi-server");
        command.arg("--no-daemonize").arg("--report-uri").arg(&uri_file);
        open_mpi_env(&mut command);
        command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        let mut ompi_server =
            command.spawn().context("cannot start ompi-server (install Open MPI: apt-get install openmpi-bin)")?;
        let deadline = Instant::now() + URI_TIMEOUT;
        let uri = loop {
            if let Some(uri) = std::fs::read_to_string(&uri_file).ok().as_deref().and_then(read_uri) {
                break uri;
            }
            if let Some(exit) = ompi_server.try_wait()? {
                bail!("ompi-server exited ({exit}) before writing its URI:\n{}", indent(&tail(&log_path)));
            }
            if Instant::now() >= deadline {
                let _ = ompi_server.kill();
                let _ = ompi_server.wait();
                bail!(
                    "ompi-server wrote no URI to {} within {} s:\n{}",
                    uri_file.display(),
                    URI_TIMEOUT.as_secs(),
                    indent(&tail(&log_path))
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        eprintln!("dlm pool manager: ompi-server (pid {}) is the rendezvous: {uri}", ompi_server.id());
        Ok(Launched {
            run_dir: run_dir.to_path_buf(),
            uri_file,
            uri,
            ompi_server,
            servers: Arc::new(Mutex::new(Vec::new())),
            supervising: Arc::new(AtomicBool::new(true)),
            supervisor: None,
            stopped: false,
        })
    }

    /// Starts one mpirun per server line, the servers reporting to `manager` (`HOST:PORT`),
    /// and a thread that logs each one that exits.
    pub fn start_servers(&mut self, conf: &PoolConf, manager: &str) {
        let program = server_program();
        let mut jobs = Vec::new();
        for (id, line) in conf.servers.iter().enumerate() {
            match self.mpirun(&program, id, &line.host, manager) {
                Ok(child) => {
                    eprintln!(
                        "dlm pool manager: server {id} on {}: mpirun pid {}, log {}",
                        line.host,
                        child.id(),
                        server_log(&self.run_dir, id).display()
                    );
                    jobs.push(ServerJob { id, host: line.host.clone(), child, exited: None });
                }
                Err(e) => eprintln!("dlm pool manager: cannot start server {id} on {}: {e:#}", line.host),
            }
        }
        *lock(&self.servers) = jobs;
        let servers = self.servers.clone();
        let running = self.supervising.clone();
        let run_dir = self.run_dir.clone();
        self.supervisor = Some(std::thread::spawn(move || {
            while running.load(Ordering::Relaxed) {
                reap(&servers, &run_dir);
                std::thread::sleep(Duration::from_millis(250));
            }
        }));
    }

    fn mpirun(&self, program: &[OsString], id: usize, host: &str, manager: &str) -> anyhow::Result<Child> {
        let log_path = server_log(&self.run_dir, id);
        let log = File::create(&log_path).with_context(|| format!("cannot write {}", log_path.display()))?;
        let mut command = server_command(host, &self.uri, program, manager, id);
        open_mpi_env(&mut command);
        command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        command.spawn().context("cannot run mpirun")
    }

    /// Ends everything it started: the mpiruns get [`GRACE`] to end on their own, then
    /// SIGTERM, then SIGKILL; then ompi-server the same way.
    pub fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        self.supervising.store(false, Ordering::Relaxed);
        if let Some(thread) = self.supervisor.take() {
            let _ = thread.join();
        }
        let deadline = Instant::now() + GRACE;
        while Instant::now() < deadline && reap(&self.servers, &self.run_dir) > 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut jobs = lock(&self.servers);
        for job in jobs.iter_mut().filter(|j| j.exited.is_none()) {
            eprintln!("dlm pool manager: server {} on {} did not leave; SIGTERM to its mpirun", job.id, job.host);
            signal(job.child.id(), libc::SIGTERM);
        }
        for job in jobs.iter_mut().filter(|j| j.exited.is_none()) {
            end(&mut job.child);
        }
        drop(jobs);
        signal(self.ompi_server.id(), libc::SIGTERM);
        end(&mut self.ompi_server);
        let _ = std::fs::remove_file(&self.uri_file);
        eprintln!("dlm pool manager: ompi-server and every server's mpirun have ended");
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The command that starts server line `id` on `host`: `mpirun -np 1 --ompi-server URI
/// <program> --manager M --line N`, run *on that host* through Open MPI's remote shell
/// (`plm_rsh_agent`, ssh by default), as mpirun itself reaches hosts. Not `mpirun --host H`
/// from here: Open MPI 4.1 cannot connect a job to a process that another job's `mpirun` placed
/// on a remote daemon (the connecting side's daemon crashes in `orte_rml_base_parse_uris`,
/// measured on the emulated cluster), while a server whose `mpirun` runs on its own host is
/// reached like a local one.
fn server_command(host: &str, uri: &str, program: &[OsString], manager: &str, id: usize) -> Command {
    let mut words: Vec<String> = ["mpirun", "-np", "1", "--ompi-server", uri].iter().map(|w| w.to_string()).collect();
    words.extend(program.iter().map(|p| p.to_string_lossy().into_owned()));
    words.extend([
        "--manager".into(),
        manager.into(),
        "--rendezvous".into(),
        uri.into(),
        "--line".into(),
        id.to_string(),
    ]);
    if remote::is_this_host(host) {
        let mut command = Command::new(&words[0]);
        command.args(&words[1..]);
        return command;
    }
    // The remote shell passes no environment: what Open MPI needs goes on the command line.
    let mut line = vec!["env".to_string()];
    line.extend(remote_mpi_env());
    line.extend(words);
    remote::on_host(host, &remote::command_line(&line))
}

/// The variables [`open_mpi_env`] sets here, as `NAME=VALUE` for the remote command, with the
/// caller's own `OMPI_MCA_*` settings.
fn remote_mpi_env() -> Vec<String> {
    let mut vars: Vec<String> =
        std::env::vars().filter(|(n, _)| n.starts_with("OMPI_MCA_")).map(|(n, v)| format!("{n}={v}")).collect();
    let mut default = |name: &str| {
        if std::env::var_os(name).is_none() {
            vars.push(format!("{name}=1"));
        }
    };
    if euid() == 0 {
        default("OMPI_ALLOW_RUN_AS_ROOT");
        default("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM");
    }
    default("OMPI_MCA_rmaps_base_oversubscribe");
    for name in ["OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] {
        if let Ok(value) = std::env::var(name) {
            vars.push(format!("{name}={value}"));
        }
    }
    vars
}

/// The resident server's command: `<dlm> pool serve`, or `$DLM_POOL_SERVER_COMMAND` (tests).
fn server_program() -> Vec<OsString> {
    if let Some(program) = std::env::var_os(SERVER_COMMAND_ENV).filter(|p| !p.is_empty()) {
        return vec![program];
    }
    let exe = std::env::current_exe().map_or_else(|_| OsString::from("dlm"), PathBuf::into_os_string);
    vec![exe, "pool".into(), "serve".into()]
}

/// Notes the mpiruns that exited; returns how many still run.
fn reap(servers: &Mutex<Vec<ServerJob>>, run_dir: &Path) -> usize {
    let mut running = 0;
    for job in lock(servers).iter_mut().filter(|j| j.exited.is_none()) {
        match job.child.try_wait() {
            Ok(Some(exit)) => {
                eprintln!(
                    "dlm pool manager: server {} on {}: mpirun exited ({exit}); its log: {}",
                    job.id,
                    job.host,
                    server_log(run_dir, job.id).display()
                );
                job.exited = Some(exit);
            }
            Ok(None) => running += 1,
            Err(e) => eprintln!("dlm pool manager: cannot wait for server {}'s mpirun: {e}", job.id),
        }
    }
    running
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits up to `limit` for `child`; SIGKILL after that.
fn end(child: &mut Child) {
    if wait_for(child, TERM_GRACE).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

pub(crate) fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(exit)) = child.try_wait() {
            return Some(exit);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory-safety preconditions; `pid` is our own child, not yet
        // reaped, so it names no other process.
        unsafe { libc::kill(pid, signal) };
    }
}

pub(crate) fn signal_group(leader: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(leader) {
        // SAFETY: kill has no memory-safety preconditions; `-pid` is the process group our
        // own unreaped child leads (it called setsid).
        unsafe { libc::kill(-pid, signal) };
    }
}

/// The first executable `name` in the directories of `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|c| c.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlm_pool::proto::{ServerId, ServerStatus};

    #[test]
    fn reads_the_uri_once_its_line_is_complete() {
        assert_eq!(read_uri(""), None);
        assert_eq!(read_uri("1523253248.0;tcp://192.0.2.2:48469"), None);
        assert_eq!(
            read_uri("1523253248.0;tcp://192.0.2.2:48469;tcp6://[fd00::2]:51289\n").as_deref(),
            Some("1523253248.0;tcp://192.0.2.2:48469;tcp6://[fd00::2]:51289")
        );
        assert_eq!(read_uri("\n"), None);
    }

    #[test]
    fn mpirun_runs_one_server_on_its_own_host_through_the_rendezvous() {
        let program: Vec<OsString> = vec!["/usr/bin/dlm".into(), "pool".into(), "serve".into()];
        let command = server_command("node03", "1.0;tcp://10.0.0.1:5", &program, "login1:7450", 2);
        let args: Vec<String> = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let remote = args.last().unwrap();
        assert_eq!(args[args.len() - 2], "node03");
        assert!(
            remote.ends_with(
                "'mpirun' '-np' '1' '--ompi-server' '1.0;tcp://10.0.0.1:5' '/usr/bin/dlm' 'pool' 'serve' \
                 '--manager' 'login1:7450' '--rendezvous' '1.0;tcp://10.0.0.1:5' '--line' '2'"
            ),
            "{remote}"
        );
        assert!(remote.starts_with("'env' "), "{remote}");
        assert_eq!(dlm_pool::remote::shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn tails_skip_blank_lines_and_frames() {
        assert_eq!(tail_of("a\n\n---\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_of("\n\n", 2), "(empty)");
    }

    #[test]
    fn lists_servers_and_knows_when_all_are_up() {
        let server = |id: u32, host: &str, state| ServerStatus {
            id: ServerId(id),
            host: host.into(),
            pid: None,
            endpoint: None,
            state,
            down_reason: None,
            cap_bytes: 1 << 30,
            used_bytes: 0,
            held_bytes: 0,
            available_bytes: 0,
            mem_available_bytes: None,
            load: 0.0,
            loadavg: None,
            clients: vec![],
        };
        let mut status = Status {
            phase: Phase::Serving,
            servers: vec![server(0, "dlmh1", ServerState::Up), server(1, "node10", ServerState::Up)],
            clients: vec![],
            rendezvous: Some("uri".into()),
        };
        assert_eq!(server_lines(&status), "0  dlmh1   1 GiB\n1  node10  1 GiB\n");
        assert!(all_up(&status));
        status.phase = Phase::Rebuilding;
        assert!(!all_up(&status));
        status.phase = Phase::Serving;
        status.servers[1].state = ServerState::Down;
        assert!(!all_up(&status));
    }

    #[test]
    fn an_unknown_host_names_its_line() {
        let conf = PoolConf::parse(Path::new("pool.conf"), "localhost 1G\nno-such-host.invalid 1G\n").unwrap();
        let err = check_hosts(&conf).unwrap_err().to_string();
        assert!(err.starts_with("pool.conf:2: host `no-such-host.invalid` does not resolve"), "{err}");
    }
}
