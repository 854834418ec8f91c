//! An emulated WAN (`scripts/cluster.sh wan`): clusters of hosts (network namespaces), each
//! cluster on a bridge of its own, routed through this host, what enters or leaves a cluster
//! limited to the WAN's rate. Every host has memory and cpu cgroups, and what runs there through
//! scripts/cluster-agent reads lxcfs's /proc/meminfo and /proc/loadavg: its host's own memory
//! and load average, not the machine's. [`Wan`] brings one up for a test and down when dropped;
//! the test here measures what the DLM-WAN tests rely on.
//!
//! Root only (namespaces, cgroups): elsewhere the test fails, saying why (`require`).

use crate::cluster::{agent_env, cannot_make_a_cluster, compute_host, net_namespace, script};
use crate::support::*;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);
/// What cluster.sh gives every cluster's manager.
const MANAGER_MEMORY: u64 = 512 << 20;

/// "512M" → 536870912: a size as cluster.sh takes it (K, M, G or no suffix).
fn bytes(size: &str) -> Option<u64> {
    let (digits, shift) = match size.char_indices().last()? {
        (i, 'K' | 'k') => (&size[..i], 10),
        (i, 'M' | 'm') => (&size[..i], 20),
        (i, 'G' | 'g') => (&size[..i], 30),
        _ => (size, 0),
    };
    Some(digits.parse::<u64>().ok()? << shift)
}

/// One cluster's hosts by role, named as cluster.sh names them, with the memory each has.
struct Hosts {
    manager: String,
    compute: Vec<String>,
    servers: Vec<String>,
    compute_memory: u64,
    server_memory: u64,
}

impl Hosts {
    /// Cluster `k` of the spec `COMPUTExCMEM+SERVERSxSMEM`.
    fn of(k: usize, spec: &str) -> Hosts {
        let parse = || {
            let (compute, servers) = spec.split_once('+')?;
            let (compute, compute_memory) = compute.split_once('x')?;
            let (servers, server_memory) = servers.split_once('x')?;
            Some((compute.parse().ok()?, bytes(compute_memory)?, servers.parse().ok()?, bytes(server_memory)?))
        };
        let (compute, compute_memory, servers, server_memory): (usize, u64, usize, u64) = parse()
            .unwrap_or_else(|| panic!("a cluster is COMPUTExCMEM+SERVERSxSMEM (e.g. 2x512M+3x1G), not {spec:?}"));
        Hosts {
            manager: format!("dlmw{k}-m"),
            compute: (1..=compute).map(|i| format!("dlmw{k}-n{i}")).collect(),
            servers: (1..=servers).map(|i| format!("dlmw{k}-s{i}")).collect(),
            compute_memory,
            server_memory,
        }
    }

    /// Every host of the cluster with its memory.
    fn with_memory(&self) -> impl Iterator<Item = (&str, u64)> {
        std::iter::once((self.manager.as_str(), MANAGER_MEMORY))
            .chain(self.compute.iter().map(|h| (h.as_str(), self.compute_memory)))
            .chain(self.servers.iter().map(|h| (h.as_str(), self.server_memory)))
    }
}

/// An emulated WAN for one test: `scripts/cluster.sh wan down` when dropped, also on panic, which
/// must leave no process in the WAN's hosts. The tests take the suite's one-at-a-time lock
/// first, so two never share the host names.
pub(crate) struct Wan {
    clusters: Vec<Hosts>,
}

impl Wan {
    /// `scripts/cluster.sh wan up SPEC... [--wan-rate RATE]`: cluster K (from 1) for the Kth spec.
    pub(crate) fn up(specs: &[&str], rate: Option<&str>) -> Wan {
        let clusters = (1..).zip(specs).map(|(k, spec)| Hosts::of(k, spec)).collect();
        let mut cmd = Command::new(script("cluster.sh"));
        cmd.args(["wan", "up"]).args(specs);
        if let Some(rate) = rate {
            cmd.args(["--wan-rate", rate]);
        }
        let out = run(&mut cmd, LIMIT);
        // The guard exists before the checks, so a half-made WAN is removed too.
        let wan = Wan { clusters };
        out.assert_success();
        let agent = format!("export OMPI_MCA_plm_rsh_agent={}", script("cluster-agent").display());
        assert!(out.stdout.contains(&agent), "{}", out.stdout);
        // The hosts are listed by cluster and role, under the names they have here.
        for (k, cluster) in (1..).zip(&wan.clusters) {
            assert!(out.stdout.contains(&format!("# cluster {k}: 10.214.{k}.0/24")), "{}", out.stdout);
            let roles = [
                ("manager", std::slice::from_ref(&cluster.manager)),
                ("compute", &cluster.compute),
                ("memory", &cluster.servers),
            ];
            for (role, hosts) in roles {
                let listed = if hosts.is_empty() { "none".to_string() } else { hosts.join(" ") };
                assert!(
                    out.stdout.contains(&format!("#   {role:<8} {listed}")),
                    "cluster {k}, {role}:\n{}",
                    out.stdout
                );
            }
        }
        wan
    }

    /// What a user exports after `wan up` (the same as after `up`).
    pub(crate) fn env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        agent_env(cmd)
    }

    fn cluster(&self, k: usize) -> &Hosts {
        let clusters = self.clusters.len();
        k.checked_sub(1).and_then(|i| self.clusters.get(i)).unwrap_or_else(|| panic!("no cluster {k}: 1 to {clusters}"))
    }

    pub(crate) fn manager(&self, k: usize) -> &str {
        &self.cluster(k).manager
    }

    pub(crate) fn compute(&self, k: usize) -> &[String] {
        &self.cluster(k).compute
    }

    pub(crate) fn servers(&self, k: usize) -> &[String] {
        &self.cluster(k).servers
    }

    /// Every host of the WAN with its memory, cluster by cluster.
    pub(crate) fn hosts(&self) -> impl Iterator<Item = (&str, u64)> {
        self.clusters.iter().flat_map(Hosts::with_memory)
    }

    /// `shell` run on `host` through the agent, as Open MPI would start it there.
    pub(crate) fn on(&self, host: &str, shell: &str) -> Command {
        let mut cmd = Command::new(script("cluster-agent"));
        cmd.arg(host).arg(shell);
        cmd
    }

    /// `cluster.sh wan load HOST [--memory SIZE] --cpu N`: returns once the memory is held.
    pub(crate) fn load(&self, host: &str, memory: Option<&str>, cpus: usize) {
        let mut cmd = Command::new(script("cluster.sh"));
        cmd.args(["wan", "load", host, "--cpu", &cpus.to_string()]);
        if let Some(memory) = memory {
            cmd.args(["--memory", memory]);
        }
        run(&mut cmd, LIMIT).assert_success();
    }

    pub(crate) fn unload(&self, host: &str) {
        run(Command::new(script("cluster.sh")).args(["wan", "unload", host]), LIMIT).assert_success();
    }

    /// The processes in the WAN's hosts, with their names.
    pub(crate) fn processes_inside(&self) -> Vec<String> {
        processes_in(&self.namespaces())
    }

    /// The network namespaces' inodes (what /proc/PID/ns/net names).
    fn namespaces(&self) -> Vec<u64> {
        self.hosts()
            .filter_map(|(host, _)| std::fs::metadata(format!("/run/netns/{host}")).ok())
            .map(|m| m.ino())
            .collect()
    }
}

impl Drop for Wan {
    fn drop(&mut self) {
        let namespaces = self.namespaces();
        let down = Command::new(script("cluster.sh")).args(["wan", "down"]).output();
        let left = processes_in(&namespaces);
        let failed = match down {
            Ok(out) if out.status.success() => None,
            Ok(out) => Some(format!("cluster.sh wan down failed: {}", String::from_utf8_lossy(&out.stderr))),
            Err(e) => Some(format!("cluster.sh wan down: {e}")),
        };
        if std::thread::panicking() {
            // A second panic would abort the test binary: report only.
            eprintln!("{failed:?}; left in the WAN's hosts: {left:?}");
            return;
        }
        assert!(failed.is_none(), "{failed:?}");
        assert!(left.is_empty(), "processes left in the WAN's hosts after `wan down`: {left:?}");
    }
}

/// Every process whose network namespace is one of `namespaces`, as "name (pid P)".
fn processes_in(namespaces: &[u64]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if net_namespace(pid).is_some_and(|ns| namespaces.contains(&ns)) {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            found.push(format!("{} (pid {pid})", comm.trim()));
        }
    }
    found
}

/// A /proc/meminfo field in kB, as a process on `host` reads it.
fn meminfo_kb(wan: &Wan, host: &str, field: &str) -> u64 {
    let out = run(&mut wan.on(host, "cat /proc/meminfo"), LIMIT);
    out.assert_success();
    let value = out.stdout.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.split_whitespace().next());
    value.and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no {field} on {host}:\n{}", out.stdout))
}

/// The 1-minute load average, as a process on `host` reads it.
fn loadavg(wan: &Wan, host: &str) -> f64 {
    let out = run(&mut wan.on(host, "cat /proc/loadavg"), LIMIT);
    out.assert_success();
    out.stdout
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{host}: {}", out.stdout))
}

/// One TCP stream: the receiver counts the bytes from the first to the end and the seconds they
/// took; the sender sends for the seconds given (at least one chunk).
const NET_PY: &str = r#"import socket, sys, time
if sys.argv[1] == "listen":
    server = socket.create_server(("0.0.0.0", 0))
    server.settimeout(30)
    print("listening", server.getsockname()[1], flush=True)
    conn, peer = server.accept()
    conn.settimeout(30)
    received, first = 0, None
    while True:
        data = conn.recv(1 << 20)
        if not data:
            break
        first = first or time.monotonic()
        received += len(data)
    print(peer[0], received, time.monotonic() - first, flush=True)
else:
    host, port, seconds = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    conn = socket.create_connection((host, port), timeout=30)
    chunk = bytes(1 << 16)
    end = time.monotonic() + seconds
    conn.sendall(chunk)
    while time.monotonic() < end:
        conn.sendall(chunk)
    conn.close()
"#;

/// The receiving side of [`NET_PY`], started and listening.
struct Receiver {
    child: Child,
    stdout: BufReader<ChildStdout>,
    port: u16,
    host: String,
}

impl Receiver {
    fn start(mut cmd: Command, host: &str) -> Receiver {
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).spawn().expect("python3 receiver");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the receiver's first line");
        let port = line.strip_prefix("listening ").and_then(|p| p.trim().parse().ok());
        let port = port.unwrap_or_else(|| panic!("the receiver on {host} did not start: {line:?}"));
        Receiver { child, stdout, port, host: host.to_string() }
    }

    /// The sender's address and bytes per second.
    fn finish(mut self) -> (String, f64) {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("the receiver's result");
        let status = self.child.wait().expect("wait for the receiver");
        assert!(status.success(), "the receiver on {} failed: {line:?}", self.host);
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(peer), Some(Ok(bytes)), Some(Ok(seconds))) =
            (fields.first(), fields.get(1).map(|b| b.parse::<f64>()), fields.get(2).map(|s| s.parse::<f64>()))
        else {
            panic!("the receiver on {} printed {line:?}", self.host)
        };
        (peer.to_string(), bytes / seconds)
    }
}

/// Streams from `from` to `to` (`None`: this host) for `seconds`: the sender's address as the
/// receiver saw it, and bytes per second.
fn transfer(wan: &Wan, net_py: &Path, from: Option<&str>, to: Option<&str>, seconds: f64) -> (String, f64) {
    let here = compute_host();
    let command = |host: Option<&str>, args: &str| match host {
        Some(host) => wan.on(host, &format!("exec python3 {} {args}", net_py.display())),
        None => {
            let mut cmd = Command::new("python3");
            cmd.arg(net_py).args(args.split_whitespace());
            cmd
        }
    };
    let to_name = to.unwrap_or(&here);
    let receiver = Receiver::start(command(to, "listen"), to_name);
    run(&mut command(from, &format!("send {to_name} {} {seconds}", receiver.port)), LIMIT).assert_success();
    receiver.finish()
}

/// The WAN's rate, and in bytes per second.
const RATE: &str = "100mbit";
const RATE_BYTES: f64 = 100e6 / 8.0;
const MIB: f64 = (1 << 20) as f64;

#[test]
fn wan_hosts_see_their_own_memory_and_load_and_the_wan_is_shaped() {
    let _heavy = one_at_a_time();
    require("an emulated WAN", cannot_make_a_cluster());
    let started = Instant::now();
    let wan = Wan::up(&["2x512M+1x1G", "1x256M+1x768M", "1x1G+0x1G"], Some(RATE));
    eprintln!("wan up: {:.1} s", started.elapsed().as_secs_f64());

    // Burners first: the load average rises over some 20 s, while the rest is checked.
    let (busy, idle) = (wan.compute(2)[0].as_str(), wan.servers(2)[0].as_str());
    wan.load(busy, None, 4);
    let loaded = Instant::now();

    // Each host's MemTotal is its memory.
    for (host, memory) in wan.hosts() {
        assert_eq!(meminfo_kb(&wan, host, "MemTotal") << 10, memory, "MemTotal on {host}");
    }

    // A hog of 200M on one compute node: its MemFree falls by that, its neighbour's does not.
    let (hogged, neighbour) = (wan.compute(1)[0].as_str(), wan.compute(1)[1].as_str());
    let free = |host| meminfo_kb(&wan, host, "MemFree") as f64 / 1024.0;
    let (before, neighbour_before) = (free(hogged), free(neighbour));
    wan.load(hogged, Some("200M"), 0);
    let (after, neighbour_after) = (free(hogged), free(neighbour));
    eprintln!("MemFree {hogged}: {before:.0} -> {after:.0} MiB, {neighbour}: {neighbour_before:.0} -> {neighbour_after:.0} MiB");
    assert!((190.0..240.0).contains(&(before - after)), "the hog took {:.0} MiB of {hogged}'s MemFree", before - after);
    assert!((neighbour_before - neighbour_after).abs() < 16.0, "{neighbour}'s MemFree moved with {hogged}'s hog");
    // Unloading ends the hog (its memory is free again) and not the burners on another host.
    let burners = |wan: &Wan| wan.processes_inside().iter().filter(|p| p.starts_with("sh ")).count();
    assert_eq!(burners(&wan), 4, "{:?}", wan.processes_inside());
    wan.unload(hogged);
    assert!((before - free(hogged)).abs() < 16.0, "{hogged}'s MemFree after unload: {:.0} MiB", free(hogged));
    assert_eq!(burners(&wan), 4, "unloading {hogged} ended other processes: {:?}", wan.processes_inside());

    // TCP between clusters and with this host, at the WAN's rate each way; inside a cluster
    // far faster.
    let dir = tempfile::tempdir().unwrap();
    let net_py = dir.path().join("net.py");
    std::fs::write(&net_py, NET_PY).unwrap();
    let (s1, s2, n12) = (wan.servers(1)[0].as_str(), wan.servers(2)[0].as_str(), wan.compute(1)[1].as_str());
    let shaped = [
        (Some(s1), Some(s2)),
        (Some(s2), Some(n12)),
        (None, Some(wan.manager(3))),
        (Some(wan.compute(3)[0].as_str()), None),
    ];
    for (from, to) in shaped {
        let (peer, rate) = transfer(&wan, &net_py, from, to, 1.5);
        let (from, to) = (from.unwrap_or("this host"), to.unwrap_or("this host"));
        eprintln!(
            "{from} -> {to} (from {peer}): {:.1} MiB/s, the WAN's rate {:.1} MiB/s",
            rate / MIB,
            RATE_BYTES / MIB
        );
        assert!(peer.starts_with("10.214."), "{from} -> {to} came from {peer}");
        assert!(rate < 1.5 * RATE_BYTES && rate > 0.5 * RATE_BYTES, "{from} -> {to}: {:.1} MiB/s", rate / MIB);
    }
    let (_, inside) = transfer(&wan, &net_py, Some(n12), Some(s1), 1.0);
    eprintln!("{n12} -> {s1} (one cluster): {:.0} MiB/s", inside / MIB);
    assert!(inside > 3.0 * RATE_BYTES, "inside a cluster: {:.1} MiB/s", inside / MIB);
    // The managers reach each other across the WAN (and a stream needs no shaping to pass).
    for (from, to) in [(1, 3), (3, 2), (2, 1)] {
        transfer(&wan, &net_py, Some(wan.manager(from)), Some(wan.manager(to)), 0.0);
    }

    // Open MPI starts processes on WAN hosts of two clusters through the agent, and they see
    // their host's memory.
    let mut mpirun = mpirun(2);
    mpirun.args(["--host", &format!("{},{}", wan.compute(1)[0], wan.compute(3)[0]), "sh", "-c"]);
    mpirun.arg(r#"echo "$(hostname) $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)""#);
    let out = run(wan.env(&mut mpirun), LIMIT);
    out.assert_success();
    let mut seen: Vec<&str> = out.stdout.lines().collect();
    seen.sort();
    assert_eq!(
        seen,
        [format!("{} 524288", wan.compute(1)[0]), format!("{} 1048576", wan.compute(3)[0])],
        "{}",
        out.stderr
    );

    // The burners' host's load average passes 1 (4 runnable processes, averaged over a minute,
    // sampled every 5 s); the others' stay near 0. The burners take little of the machine.
    let (mut busy_load, deadline) = (0.0, Duration::from_secs(40));
    while loaded.elapsed() < deadline {
        busy_load = loadavg(&wan, busy);
        if busy_load > 1.0 {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let ramp = loaded.elapsed().as_secs_f64();
    let (idle_load, hogged_load) = (loadavg(&wan, idle), loadavg(&wan, hogged));
    let cpu = std::fs::read_to_string(format!("/sys/fs/cgroup/cpuacct/dlm/{busy}/burn/cpuacct.usage")).unwrap();
    let cpu = cpu.trim().parse::<f64>().unwrap() / 1e9 / ramp;
    eprintln!("load averages after {ramp:.0} s: {busy} {busy_load}, {idle} {idle_load}, {hogged} {hogged_load}; the 4 burners used {:.1}% of a core", cpu * 100.0);
    assert!(busy_load > 1.0, "{busy}'s load average is {busy_load} {ramp:.0} s after 4 burners started there");
    assert!(idle_load < 0.5 && hogged_load < 0.5, "{idle}: {idle_load}, {hogged}: {hogged_load}");
    assert!(cpu < 0.15, "the burners took {:.0}% of a core", cpu * 100.0);

    // No bind mount of the hosts' reached this namespace.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let leaked: Vec<&str> =
        mounts.lines().filter(|l| l.contains(" /proc/meminfo ") || l.contains(" /proc/loadavg ")).collect();
    assert!(leaked.is_empty(), "{leaked:?}");

    // `wan down` (the drop) leaves nothing behind, and a second one does nothing, quietly.
    drop(wan);
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&netns.stdout).contains("dlmw"), "{}", String::from_utf8_lossy(&netns.stdout));
    let links = Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains("dlmw"), "{}", String::from_utf8_lossy(&links.stdout));
    for controller in ["memory", "cpu", "cpuacct"] {
        assert!(!Path::new(&format!("/sys/fs/cgroup/{controller}/dlm")).exists(), "the {controller} cgroups are left");
    }
    assert!(!std::fs::read_to_string("/proc/mounts").unwrap().contains("/run/dlm-wan-lxcfs"));
    assert!(!std::fs::read_to_string("/etc/hosts").unwrap().contains("dlm emulated WAN"));
    assert!(!Path::new("/etc/netns/dlmw1-m").exists());
    let again = run(Command::new(script("cluster.sh")).args(["wan", "down"]), LIMIT);
    again.assert_success();
    assert_eq!((again.stdout.as_str(), again.stderr.as_str()), ("", ""));
    let total = started.elapsed();
    eprintln!("in all {:.1} s", total.as_secs_f64());
    assert!(total < Duration::from_secs(90), "took {total:?}");
}
