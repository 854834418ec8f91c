//! `dlm pool up`, `dlm pool status --json` and `dlm pool down` on the emulated cluster
//! (scripts/cluster.sh): real ompi-server, real mpirun onto dlmh1..dlmh3 through the cluster's
//! agent, the manager detached. The resident server (`dlm pool serve`) is not built yet, so
//! `tests/bin/pool_standin` (registers and reports like one, no MPI port) runs in its place
//! through `DLM_POOL_SERVER_COMMAND`. After `down`, or after a failed `up`, nothing it started
//! may run anywhere: here (processes whose command line names the test's run directory) or on
//! the emulated hosts (`ip netns pids`).
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

    fn up(&self, cluster: Option<&Cluster>, server: &Path, timeout: &str) -> Command {
        let mut cmd = Command::new(dlm());
        cmd.args(["pool", "up"])
            .arg(&self.conf)
            .args(["--listen", LISTEN, "--socket"])
            .arg(&self.socket)
            .arg("--run-dir")
            .arg(&self.run_dir)
            .args(["--timeout", timeout])
            .env("DLM_POOL_SERVER_COMMAND", server);
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
    let standin = test_program("pool_standin");

    let out = run(&mut place.up(Some(&cluster), &standin, "60"), LIMIT);
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
        assert!(inside.iter().any(|p| p.starts_with("pool_standin") && p.ends_with(host)), "{inside:?}");
    }

    // A second pool on the same socket is refused, and leaves the first alone.
    let again = run(&mut place.up(Some(&cluster), &standin, "60"), LIMIT);
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
    let standin = test_program("pool_standin");

    let bad = Place::new("dlmh1 1G\ndlmh2 lots\n");
    let out = run(&mut bad.up(None, &standin, "10"), LIMIT);
    assert!(!out.status.success());
    assert!(out.stderr.contains("pool.conf:2: invalid size `lots`"), "{}", out.stderr);
    assert!(!bad.run_dir.exists(), "a bad POOLCONF started something");
    bad.assert_nothing_left(None, Duration::ZERO);

    let unknown = Place::new("no-such-host.invalid 1G\n");
    let out = run(&mut unknown.up(None, &standin, "10"), LIMIT);
    assert!(!out.status.success());
    assert!(out.stderr.contains("pool.conf:1: host `no-such-host.invalid` does not resolve"), "{}", out.stderr);
    assert!(!unknown.run_dir.exists());

    // Servers that exit at once (/bin/false): `up` gives up at its timeout, names each one with
    // the end of its log, and stops the manager and ompi-server.
    let cluster = Cluster::up(2, None);
    let failing = Place::new("dlmh1 1G\ndlmh2 1G\n");
    let started = Instant::now();
    let out = run(&mut failing.up(Some(&cluster), Path::new("/bin/false"), "8"), LIMIT);
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
