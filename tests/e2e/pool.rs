//! Memory pools on the emulated cluster (scripts/cluster.sh): `dlm pool up` starts real
//! ompi-server, the manager and a real resident server (`dlm pool serve`) under its own mpirun
//! on each of dlmh1..dlmh3; programs here — C built by dlmcc and Rust, standalone and under
//! `mpirun -np 1` — join it and must give the native result byte for byte. A client killed, a
//! server killed, a drain, an over-capacity request and `down` with and without clients are
//! each checked. After `down`, or after a failed `up`, nothing it started may run anywhere:
//! here (processes whose command line names the test's run directory) or on the emulated hosts
//! (`ip netns pids`). `DLM_POOL_SERVER_COMMAND` replaces the server only to make one fail.
//!
//! Root, munged and Open MPI's ompi-server (scripts/setup.sh): a missing one fails the test.

use crate::cluster::{cannot_make_a_cluster, Cluster};
use crate::support::*;
use dlm_pool::proto::{Phase, ServerState, Status};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);
/// A port of its own, so that a pool an administrator runs on 7450 is not in the way.
const LISTEN: &str = "0.0.0.0:7461";

fn dlm() -> PathBuf {
    let path = target_dir().join("dlm");
    assert!(path.is_file(), "{} is missing: run `cargo build --release --workspace` first", path.display());
    path
}

fn require_pool_prerequisites() {
    require("an emulated cluster", cannot_make_a_cluster());
    let munge = Command::new("munge").arg("-n").output();
    let munge_missing = match munge {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!("munged does not answer: {}", String::from_utf8_lossy(&out.stderr).trim())),
        Err(e) => Some(format!("no munge command: {e}")),
    };
    require("munged (the servers reach the manager over TCP)", munge_missing);
    let ompi_server = Command::new("ompi-server").arg("--help").output();
    require("Open MPI's ompi-server", ompi_server.err().map(|e| e.to_string()));
}

/// A test's own socket and run directory.
struct Place {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    run_dir: PathBuf,
    conf: PathBuf,
}

impl Place {
    fn new(conf: &str) -> Place {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool.conf");
        std::fs::write(&path, conf).unwrap();
        Place { socket: dir.path().join("pool.sock"), run_dir: dir.path().join("run"), conf: path, _dir: dir }
    }

    fn up(&self, cluster: Option<&Cluster>, server: Option<&Path>, timeout: &str) -> Command {
        let mut cmd = Command::new(dlm());
        cmd.args(["pool", "up"])
            .arg(&self.conf)
            .args(["--listen", LISTEN, "--socket"])
            .arg(&self.socket)
            .arg("--run-dir")
            .arg(&self.run_dir)
            .args(["--timeout", timeout]);
        if let Some(server) = server {
            cmd.env("DLM_POOL_SERVER_COMMAND", server);
        }
        if let Some(cluster) = cluster {
            cluster.env(&mut cmd);
        }
        cmd
    }

    fn pool(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(dlm());
        cmd.arg("pool").args(args).arg("-s").arg(&self.socket);
        cmd
    }

    /// Processes here whose command line names the run directory: the manager, ompi-server,
    /// the mpiruns.
    fn processes_here(&self) -> Vec<String> {
        let needle = self.run_dir.to_string_lossy().into_owned();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if pid != std::process::id() && cmdline.contains(&needle) {
                found.push(format!("pid {pid}: {cmdline}"));
            }
        }
        found
    }

    /// Waits up to `limit` until the manager has stopped (it ends what it started).
    fn assert_nothing_left_quietly(&self, limit: Duration) -> bool {
        let started = Instant::now();
        while self.socket.exists() && started.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(200));
        }
        !self.socket.exists()
    }

    /// Waits up to `limit` until nothing the pool started runs here or on `cluster`'s hosts.
    fn assert_nothing_left(&self, cluster: Option<&Cluster>, limit: Duration) {
        let started = Instant::now();
        let left = || {
            let mut left = self.processes_here();
            left.extend(cluster.map(Cluster::processes_inside).unwrap_or_default());
            left
        };
        while !left().is_empty() && started.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(left(), Vec::<String>::new(), "still running after the pool stopped");
        assert!(!self.socket.exists(), "the manager left its socket {}", self.socket.display());
    }
}

#[test]
fn pool_up_status_and_down_leave_nothing_running_on_any_host() {
    let _serial = one_at_a_time();
    require_pool_prerequisites();
    let cluster = Cluster::up(3, None);
    let place = Place::new("# three hosts\ndlmh1 1G\ndlmh2 512M\ndlmh3 2G\n");
    let out = run(&mut place.up(Some(&cluster), None, "60"), LIMIT);
    let cleanup = || {
        let _ = place.pool(&["down", "--force"]).output();
    };
    if !out.status.success() {
        cleanup();
        panic!("dlm pool up failed ({}):\n{}\n{}", out.status, out.stdout, out.stderr);
    }
    assert_eq!(out.stdout, "0  dlmh1  1 GiB\n1  dlmh2  512 MiB\n2  dlmh3  2 GiB\n", "{}", out.stderr);

    let json = run(&mut place.pool(&["status", "--json"]), LIMIT);
    json.assert_success();
    let status: Status = serde_json::from_str(&json.stdout).expect("status --json parses as dlm_pool::proto::Status");
    assert_eq!(status.phase, Phase::Serving);
    let servers: Vec<_> = status.servers.iter().map(|s| (s.host.as_str(), s.state)).collect();
    assert_eq!(servers, [("dlmh1", ServerState::Up), ("dlmh2", ServerState::Up), ("dlmh3", ServerState::Up)]);
    // ompi-server's URI: `JOBID.VPID;tcp://ADDRS:PORT…`.
    let rendezvous = status.rendezvous.clone().expect("a rendezvous");
    assert!(rendezvous.contains(";tcp://"), "{rendezvous}");
    let uri_file = std::fs::read_to_string(place.run_dir.join("ompi-server.uri")).unwrap();
    assert_eq!(uri_file.trim(), rendezvous);
    let human = run(&mut place.pool(&["status"]), LIMIT);
    assert!(human.stdout.contains(&format!("rendezvous (ompi-server): {rendezvous}")), "{}", human.stdout);
    // Each server really runs on its own host.
    let inside = cluster.processes_inside();
    for host in &cluster.hosts {
        assert!(inside.iter().any(|p| p.starts_with("dlm") && p.ends_with(host)), "{inside:?}");
    }

    // A second pool on the same socket is refused, and leaves the first alone.
    let again = run(&mut place.up(Some(&cluster), None, "60"), LIMIT);
    assert!(!again.status.success());
    assert!(again.stderr.contains("a pool manager already answers on"), "{}", again.stderr);
    assert_eq!(run(&mut place.pool(&["status", "--json"]), LIMIT).status.code(), Some(0));

    let down = run(&mut place.pool(&["down"]), LIMIT);
    down.assert_success();
    place.assert_nothing_left(Some(&cluster), Duration::from_secs(30));
    let log = std::fs::read_to_string(place.run_dir.join("manager.log")).unwrap();
    assert!(log.contains("ompi-server and every server's mpirun have ended"), "{log}");
    // The servers left when told, before anything was signalled.
    assert!(!log.contains("did not leave"), "{log}");
}

#[test]
fn pool_up_refuses_a_bad_poolconf_or_host_and_stops_servers_that_never_come_up() {
    let _serial = one_at_a_time();
    require_pool_prerequisites();
    let bad = Place::new("dlmh1 1G\ndlmh2 lots\n");
    let out = run(&mut bad.up(None, None, "10"), LIMIT);
    assert!(!out.status.success());
    assert!(out.stderr.contains("pool.conf:2: invalid size `lots`"), "{}", out.stderr);
    assert!(!bad.run_dir.exists(), "a bad POOLCONF started something");
    bad.assert_nothing_left(None, Duration::ZERO);

    let unknown = Place::new("no-such-host.invalid 1G\n");
    let out = run(&mut unknown.up(None, None, "10"), LIMIT);
    assert!(!out.status.success());
    assert!(out.stderr.contains("pool.conf:1: host `no-such-host.invalid` does not resolve"), "{}", out.stderr);
    assert!(!unknown.run_dir.exists());

    // Servers that exit at once (/bin/false): `up` gives up at its timeout, names each one with
    // the end of its log, and stops the manager and ompi-server.
    let cluster = Cluster::up(2, None);
    let failing = Place::new("dlmh1 1G\ndlmh2 1G\n");
    let started = Instant::now();
    let out = run(&mut failing.up(Some(&cluster), Some(Path::new("/bin/false")), "8"), LIMIT);
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(60), "up took {:?} to give up", started.elapsed());
    for (i, host) in cluster.hosts.iter().enumerate() {
        let said = format!(
            "server {i} on {host} did not come up; the end of {}",
            failing.run_dir.join(format!("server-{i}.log")).display()
        );
        assert!(out.stderr.contains(&said), "{}", out.stderr);
    }
    assert!(out.stderr.contains("everything it started was stopped"), "{}", out.stderr);
    failing.assert_nothing_left(Some(&cluster), Duration::from_secs(20));
}

/// Data each client pages: 16 MiB through a 4 MiB budget, 20 MiB asked of the pool.
const DATA_MIB: &str = "16";
const CLIENT_ENV: [(&str, &str); 2] = [("DLM_LOCAL_MEM", "4M"), ("DLM_POOL_MEM", "24M")];
/// A client that runs for minutes (its scattered sweep does not fit the budget), to be killed,
/// lose its server or be ended by `down --force` part way.
const LONG_DATA_MIB: &str = "32";
const LONG_ENV: [(&str, &str); 2] = [("DLM_LOCAL_MEM", "4M"), ("DLM_POOL_MEM", "40M")];
/// The drain's two clients run long enough to be paging while the pages move (four times the
/// data through four times the budget, over links of [`DRAIN_LINKS`]).
const DRAIN_DATA_MIB: &str = "64";
const DRAIN_LINKS: &str = "200mbit";
const DRAIN_ENV: [(&str, &str); 2] = [("DLM_LOCAL_MEM", "16M"), ("DLM_POOL_MEM", "64M")];

/// A pool of three 64 MiB servers on dlmh1..dlmh3, up; `down --force` when dropped.
struct RunningPool {
    place: Place,
    cluster: Cluster,
}

impl RunningPool {
    fn up() -> RunningPool {
        RunningPool::up_with_links(None)
    }

    /// The same, each host's link limited to `rate` (tc syntax).
    fn up_with_links(rate: Option<&str>) -> RunningPool {
        let cluster = Cluster::up(3, rate);
        let place = Place::new("dlmh1 64M\ndlmh2 64M\ndlmh3 64M\n");
        run(&mut place.up(Some(&cluster), None, "60"), LIMIT).assert_success();
        RunningPool { place, cluster }
    }

    /// `program` as a client of this pool: over TCP with a MUNGE credential, or over the
    /// manager's Unix socket.
    fn client(&self, program: &Path, over_tcp: bool) -> Command {
        let mut cmd = Command::new(program);
        self.join(&mut cmd, over_tcp);
        cmd
    }

    /// `program` as a client that runs for minutes ([`LONG_DATA_MIB`]), its stderr piped.
    fn start_long_client(&self, program: &Path, over_tcp: bool) -> std::process::Child {
        let mut cmd = self.client(program, over_tcp);
        cmd.envs(LONG_ENV).arg(LONG_DATA_MIB).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    }

    /// `mpirun -np 1 program`, a client of this pool.
    fn client_under_mpirun(&self, program: &Path, over_tcp: bool) -> Command {
        let mut cmd = mpirun(1);
        cmd.arg("-x").arg("DLM_POOL").arg("-x").arg("DLM_LOCAL_MEM").arg("-x").arg("DLM_POOL_MEM").arg(program);
        self.join(&mut cmd, over_tcp);
        cmd
    }

    fn join(&self, cmd: &mut Command, over_tcp: bool) {
        let manager =
            if over_tcp { format!("127.0.0.1:{}", &LISTEN[8..]) } else { self.place.socket.display().to_string() };
        cmd.env("DLM_POOL", manager).envs(CLIENT_ENV);
        self.cluster.env(cmd);
    }

    fn status(&self) -> Status {
        let out = run(&mut self.place.pool(&["status", "--json"]), LIMIT);
        out.assert_success();
        serde_json::from_str(&out.stdout).expect("status --json parses")
    }

    /// Waits up to `limit` for the status to satisfy `done`; the last status.
    fn status_until(&self, limit: Duration, done: impl Fn(&Status) -> bool) -> Status {
        let started = Instant::now();
        loop {
            let status = self.status();
            if done(&status) || started.elapsed() > limit {
                return status;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn server_log(&self, id: usize) -> String {
        std::fs::read_to_string(self.place.run_dir.join(format!("server-{id}.log"))).unwrap_or_default()
    }

    /// `dlm pool down`, then nothing left anywhere.
    fn down(self) {
        run(&mut self.place.pool(&["down"]), LIMIT).assert_success();
        self.place.assert_nothing_left(Some(&self.cluster), Duration::from_secs(30));
    }
}

impl Drop for RunningPool {
    /// A test that failed part way stops its pool too (the cluster goes after it).
    fn drop(&mut self) {
        if self.place.socket.exists() {
            let _ = self.place.pool(&["down", "--force"]).output();
            let _ = self.place.assert_nothing_left_quietly(Duration::from_secs(30));
        }
    }
}

/// The checksum bigarray.c gives natively, and the dlmcc build of it.
fn bigarray(dir: &Path) -> (PathBuf, String) {
    let native = cc_native(dir, "examples/c/bigarray.c");
    let checksum = run(Command::new(native).arg(DATA_MIB), LIMIT).assert_success().field("checksum:");
    (dlmcc(dir, "examples/c/bigarray.c"), checksum)
}

/// The checksum the bigsweep example gives on ordinary memory.
fn bigsweep_native() -> String {
    run(Command::new(rust_example("bigsweep")).args([DATA_MIB, "--native"]), LIMIT).assert_success().field("checksum:")
}

/// Each server's load as the classic rule gives it from the clients in `status`: the sum over
/// its clients of their bytes there divided by their bytes on all servers.
fn loads_by_the_rule(status: &Status) -> Vec<f64> {
    status
        .servers
        .iter()
        .map(|server| {
            status
                .clients
                .iter()
                .map(|c| {
                    let here: u64 = c.bytes.iter().filter(|b| b.server == server.id).map(|b| b.bytes).sum();
                    here as f64 / c.total_bytes as f64
                })
                .sum()
        })
        .collect()
}

#[test]
fn four_clients_share_three_servers_exactly_and_a_killed_one_is_freed() {
    let _serial = one_at_a_time();
    require_pool_prerequisites();
    let pool = RunningPool::up();
    let dir = tempfile::tempdir().unwrap();
    let (c_program, c_native) = bigarray(dir.path());
    let rust_program = rust_example("bigsweep");
    let rust_native = bigsweep_native();

    // A long client, killed with SIGKILL mid-run.
    let mut victim = pool.start_long_client(&c_program, true);
    let with_victim = pool.status_until(LIMIT, |s| s.clients.len() == 1);
    assert_eq!(with_victim.clients.len(), 1, "{with_victim:?}");

    let mut clients = [
        (pool.client(&c_program, true), &c_native, "C standalone"),
        (pool.client_under_mpirun(&c_program, false), &c_native, "C under mpirun"),
        (pool.client(&rust_program, false), &rust_native, "Rust standalone"),
        (pool.client_under_mpirun(&rust_program, true), &rust_native, "Rust under mpirun"),
    ];
    let running: Vec<_> = clients
        .iter_mut()
        .map(|(cmd, native, what)| {
            let child = cmd.arg(DATA_MIB).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
            (child.spawn().unwrap(), native.to_string(), *what)
        })
        .collect();
    let busy = pool.status_until(LIMIT, |s| s.clients.len() >= 3);
    assert!(busy.clients.len() >= 3, "the clients did not run at once: {busy:?}");
    for (server, expected) in busy.servers.iter().zip(loads_by_the_rule(&busy)) {
        assert!(
            (server.load - expected).abs() < 1e-9,
            "server {} load {} by the rule {expected}",
            server.id,
            server.load
        );
        assert!(server.used_bytes <= server.cap_bytes, "{server:?}");
    }
    victim.kill().unwrap();
    let _ = victim.wait();

    for (child, native, what) in running {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{what}: {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("mismatches: 0 stale: 0"), "{what}: {stdout}");
        assert!(stdout.contains(&format!("checksum: {native}")), "{what}: {stdout} (native {native})");
    }
    let idle = pool.status_until(Duration::from_secs(15), |s| s.clients.is_empty());
    assert!(idle.clients.is_empty(), "the killed client is still held: {idle:?}");
    assert!(idle.servers.iter().all(|s| s.used_bytes == 0), "{idle:?}");
    let held_now = pool.status_until(Duration::from_secs(10), |s| s.servers.iter().all(|v| v.held_bytes == 0));
    assert!(held_now.servers.iter().all(|s| s.held_bytes == 0), "pages still held: {held_now:?}");
    pool.down();
}

#[test]
fn a_request_over_capacity_fails_at_startup_with_the_numbers() {
    let _serial = one_at_a_time();
    require_pool_prerequisites();
    let pool = RunningPool::up();
    let dir = tempfile::tempdir().unwrap();
    let (program, _) = bigarray(dir.path());
    let out = run(pool.client(&program, true).env("DLM_POOL_MEM", "1G").arg(DATA_MIB), LIMIT);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("the pool cannot hold 1069547520 bytes"), "{}", out.stderr);
    assert!(out.stderr.contains("available on 3 servers up"), "{}", out.stderr);
    assert!(pool.status().clients.is_empty());
    pool.down();
}

#[test]
fn a_killed_server_ends_the_clients_on_it_naming_its_host() {
    let _serial = one_at_a_time();
    require_pool_prerequisites();
    let pool = RunningPool::up();
    let dir = tempfile::tempdir().unwrap();
    let (program, _) = bigarray(dir.path());
    let client = pool.start_long_client(&program, true);
    let status = pool.status_until(LIMIT, |s| s.clients.len() == 1);
    let share = status.clients[0].bytes[0].clone();
    let server = status.servers.iter().find(|s| s.id == share.server).unwrap();
    // Another program, on another server (the least loaded), goes on.
    let (_, native) = bigarray(dir.path());
    let other = pool.client(&program, false).arg(DATA_MIB).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let pid = server.pid.expect("a registered server has a pid");
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    let started = Instant::now();
    let (exit, stderr) = ends_within(client, Duration::from_secs(20));
    assert!(!exit.success());
    assert!(stderr.contains(&share.host), "the message names {}: {stderr}", share.host);
    let other = other.wait_with_output().unwrap();
    assert!(other.status.success(), "the other program: {}", other.status);
    assert!(String::from_utf8_lossy(&other.stdout).contains(&format!("checksum: {native}")));
    eprintln!("the client ended {:?} after its server was killed: {stderr}", started.elapsed());
    let down = pool.status_until(Duration::from_secs(15), |s| {
        s.servers.iter().any(|v| v.id == share.server && v.state == ServerState::Down)
    });
    assert!(down.servers.iter().any(|v| v.id == share.server && v.state == ServerState::Down), "{down:?}");
    // The client ended without leaving: the pool lets it go when its lease runs out.
    let gone = pool.status_until(Duration::from_secs(15), |s| s.clients.is_empty());
    assert!(gone.clients.is_empty(), "{gone:?}");
    pool.down();
}

#[test]
fn down_refuses_while_clients_run_and_force_ends_them_with_a_message() {
    let _serial = one_at_a_time();
    require_pool_prerequisites();
    let pool = RunningPool::up();
    let dir = tempfile::tempdir().unwrap();
    let (program, _) = bigarray(dir.path());
    let client = pool.start_long_client(&program, false);
    pool.status_until(LIMIT, |s| s.clients.len() == 1);
    let refused = run(&mut pool.place.pool(&["down"]), LIMIT);
    assert!(!refused.status.success(), "down with a client running: {}", refused.stdout);
    assert!(refused.stderr.contains("client"), "{}", refused.stderr);
    run(&mut pool.place.pool(&["down", "--force"]), LIMIT).assert_success();
    let (exit, stderr) = ends_within(client, Duration::from_secs(30));
    assert!(!exit.success());
    assert!(stderr.contains("memory server"), "{stderr}");
    pool.place.assert_nothing_left(Some(&pool.cluster), Duration::from_secs(30));
}

#[test]
fn a_drained_server_gives_its_pages_to_the_others_while_two_clients_run() {
    let _serial = one_at_a_time();
    require_pool_prerequisites();
    let pool = RunningPool::up_with_links(Some(DRAIN_LINKS));
    let dir = tempfile::tempdir().unwrap();
    let (program, _) = bigarray(dir.path());
    let data = DRAIN_DATA_MIB;
    let native =
        run(Command::new(dir.path().join("bigarray-native")).arg(data), LIMIT).assert_success().field("checksum:");
    let start = |over_tcp| {
        let mut cmd = pool.client(&program, over_tcp);
        cmd.envs(DRAIN_ENV).arg(data).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };
    let (mut first, mut second) = (start(true), start(false));
    let both = pool.status_until(LIMIT, |s| s.clients.len() == 2);
    assert_eq!(both.clients.len(), 2, "{both:?}");
    let busiest = both.servers.iter().max_by_key(|s| s.used_bytes).unwrap().clone();
    assert!(busiest.used_bytes > 0, "{both:?}");
    run(&mut pool.place.pool(&["drain", &busiest.host]), LIMIT).assert_success();
    // The pages leave the server while the programs run: it is empty before they end.
    let emptied = pool.status_until(LIMIT, |s| s.servers.iter().any(|v| v.id == busiest.id && v.used_bytes == 0));
    let still_running = [first.try_wait().unwrap(), second.try_wait().unwrap()].iter().filter(|e| e.is_none()).count();
    assert!(still_running > 0, "both clients ended before the server was empty: {emptied:?}");
    let moved: u64 =
        emptied.clients.iter().flat_map(|c| &c.bytes).filter(|b| b.server != busiest.id).map(|b| b.bytes).sum();
    assert!(moved >= busiest.used_bytes, "the grants did not move: {emptied:?}");
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(&format!("checksum: {native}")), "{stdout}");
    }
    let drained = pool.status_until(Duration::from_secs(15), |s| {
        s.servers.iter().any(|v| v.id == busiest.id && v.state == ServerState::Down)
    });
    let server = drained.servers.iter().find(|s| s.id == busiest.id).unwrap();
    assert_eq!((server.state, server.used_bytes), (ServerState::Down, 0), "{drained:?}");
    let left = Instant::now();
    let said_it_leaves = || pool.server_log(busiest.id.0 as usize).contains("this server leaves the pool");
    while !said_it_leaves() && left.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(said_it_leaves(), "{}", pool.server_log(busiest.id.0 as usize));
    pool.down();
}

/// Knocks at `server`'s door as a test-only raw client would: `ADMIT CLIENT LEASE`; the answer.
fn knock(server: &dlm_pool::proto::ServerStatus, client: &str, lease: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let door = server.endpoint.clone().expect("a registered server has an endpoint (its door, HOST:PORT)");
    let mut stream = std::net::TcpStream::connect(door).expect("the door answers");
    writeln!(stream, "ADMIT {client} {lease}").unwrap();
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).unwrap();
    answer.trim_end().to_string()
}

#[test]
fn a_forged_or_foreign_claim_on_a_clients_pages_is_refused_and_logged() {
    let _serial = one_at_a_time();
    require_pool_prerequisites();
    let pool = RunningPool::up();
    let dir = tempfile::tempdir().unwrap();
    let (program, native) = bigarray(dir.path());
    // The victim runs as root; another user's program runs beside it.
    let mut victim = pool.start_long_client(&program, true);
    let status = pool.status_until(LIMIT, |s| s.clients.len() == 1);
    let target = &status.clients[0];
    let server = status.servers.iter().find(|s| s.id == target.bytes[0].server).unwrap();

    // Its id with a made-up lease, and an id nobody has: both refused, and said in the log.
    let forged = knock(server, &target.id.0, "0123456789abcdef0123456789abcdef");
    assert_eq!(forged, "refused: its lease is not the one the manager gave that client");
    let unknown = knock(server, "feedfacefeedface", "0123456789abcdef");
    assert_eq!(unknown, "refused: the manager lists no such client for this server");
    let log = pool.server_log(server.id.0 as usize);
    assert!(log.contains(&format!("refused a connection claiming client {}", target.id)), "{log}");

    // A plain user's program joins through MUNGE as itself and pages its own data exactly; its
    // lease does not open the victim's pages.
    let user = require_plain_user();
    let home = user.tempdir();
    let copy = user.runnable_copy(&program, home.path());
    let mut other = user.command(home.path(), &copy);
    pool.join(&mut other, true);
    let out = run(other.arg(DATA_MIB), LIMIT);
    out.assert_success();
    assert_eq!(out.field("checksum:"), native);
    // The manager knew it as that user (MUNGE), not as the victim's.
    let logs: String = (0..3).map(|id| pool.server_log(id)).collect();
    assert!(logs.contains(&format!("(user {}, pid", user.name)), "{logs}");
    victim.kill().unwrap();
    let _ = victim.wait();
    // Killed, it did not leave: the pool lets it go when its lease runs out.
    let gone = pool.status_until(Duration::from_secs(15), |s| s.clients.is_empty());
    assert!(gone.clients.is_empty(), "{gone:?}");
    pool.down();
}
