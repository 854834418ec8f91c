//! Memory servers on other hosts: an emulated cluster (scripts/cluster.sh: network namespaces
//! on a bridge, each with its own hostname, reached by Open MPI through scripts/cluster-agent
//! instead of ssh). Programs page to servers that run only on the other hosts, standalone
//! (spawned onto memfile hosts) and under `mpirun --host`; results must equal a native run's
//! byte for byte. A server killed or cut off mid-run must end the job quickly, naming its host.
//!
//! Root only (namespaces): elsewhere each test fails, saying why (`require`).

use crate::support::*;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Small data: a few hundred MiB of paging over the emulated links per run.
const DATA_MIB: &str = "16";
const BUDGET: &str = "4M";
/// A run that is killed or cut off part way: long enough that it is still paging then.
const LONG_DATA_MIB: &str = "1024";
const LIMIT: Duration = Duration::from_secs(120);
/// How soon a job must end after one of its servers is lost.
const FAILURE_DEADLINE: Duration = Duration::from_secs(10);
/// Open MPI's TCP keepalive settings, as environment variables: what the README once asked
/// users to export for `mpirun`.
const KEEPALIVE: [&str; 3] =
    ["OMPI_MCA_oob_tcp_keepalive_time", "OMPI_MCA_oob_tcp_keepalive_intvl", "OMPI_MCA_oob_tcp_keepalive_probes"];

/// A script of `scripts/`: cluster.sh, cluster-agent.
pub(crate) fn script(name: &str) -> PathBuf {
    repo_dir().join("scripts").join(name)
}

/// This machine's hostname: the compute host, in the root network namespace.
pub(crate) fn compute_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname").trim().to_string()
}

/// Why an emulated cluster cannot be made here, if it cannot.
pub(crate) fn cannot_make_a_cluster() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|v| v.split_whitespace().next());
    if uid != Some("0") {
        return Some("not root (network namespaces need root)".into());
    }
    // What cluster.sh does first; a container may refuse it even to root.
    let probe = format!("dlmprobe{}", std::process::id());
    match Command::new("ip").args(["netns", "add", &probe]).stderr(Stdio::piped()).output() {
        Ok(out) if out.status.success() => {
            let _ = Command::new("ip").args(["netns", "del", &probe]).status();
            None
        }
        Ok(out) => {
            Some(format!("network namespaces are not usable here: {}", String::from_utf8_lossy(&out.stderr).trim()))
        }
        Err(e) => Some(format!("no `ip` command (iproute2): {e}")),
    }
}

/// What a user exports after `cluster.sh up` or `cluster.sh wan up`: Open MPI launches through
/// the agent and binds no rank to a core (the hosts share this machine's cores). Nothing about
/// TCP keepalive: a standalone run sets it for its daemons, and under `mpirun` it comes from the
/// installed toolchain's defaults (see [`Installed`]); a keepalive variable from the caller's
/// environment would hide a missing default, so none gets through.
pub(crate) fn agent_env(cmd: &mut Command) -> &mut Command {
    for name in KEEPALIVE {
        cmd.env_remove(name);
    }
    cmd.env("OMPI_MCA_plm_rsh_agent", script("cluster-agent"))
        .env("OMPI_MCA_plm_rsh_no_tree_spawn", "1")
        .env("OMPI_MCA_hwloc_base_binding_policy", "none")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
}

/// An emulated cluster for one test: `scripts/cluster.sh down` when dropped, also on panic.
/// The tests take the suite's one-at-a-time lock first, so two never share the host names.
pub(crate) struct Cluster {
    pub(crate) hosts: Vec<String>,
}

impl Cluster {
    pub(crate) fn up(n: usize, rate: Option<&str>) -> Cluster {
        let mut cmd = Command::new(script("cluster.sh"));
        cmd.args(["up", &n.to_string()]);
        if let Some(rate) = rate {
            cmd.args(["--rate", rate]);
        }
        let out = run(&mut cmd, Duration::from_secs(60));
        // The guard exists before the check, so a half-made cluster is removed too.
        let cluster = Cluster { hosts: (1..=n).map(|k| format!("dlmh{k}")).collect() };
        out.assert_success();
        assert!(out.stdout.contains(&format!("export OMPI_MCA_plm_rsh_agent={}", script("cluster-agent").display())));
        cluster
    }

    /// What a user exports after `cluster.sh up` ([`agent_env`]).
    pub(crate) fn env<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        agent_env(cmd)
    }

    /// `mpirun --host COMPUTE,HOSTS...`: rank 0 (the program) here, one server rank per host.
    fn mpirun(&self, hosts: &[&str]) -> Command {
        let mut cmd = mpirun(hosts.len() + 1);
        cmd.arg("--host")
            .arg(std::iter::once(compute_host().as_str()).chain(hosts.iter().copied()).collect::<Vec<_>>().join(","));
        self.env(&mut cmd);
        cmd
    }

    /// Namespace inode → host name, for every host and for this (the compute) host.
    fn namespaces(&self) -> HashMap<u64, String> {
        let mut map: HashMap<u64, String> = self
            .hosts
            .iter()
            .map(|h| (std::fs::metadata(format!("/run/netns/{h}")).expect("namespace file").ino(), h.clone()))
            .collect();
        map.insert(net_namespace(std::process::id()).expect("own namespace"), compute_host());
        map
    }

    /// The processes left inside the emulated hosts, with their names.
    pub(crate) fn processes_inside(&self) -> Vec<String> {
        let mut found = Vec::new();
        for host in &self.hosts {
            let out = Command::new("ip").args(["netns", "pids", host]).output().expect("ip netns pids");
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                found.push(format!("{} (pid {pid}) on {host}", comm.trim()));
            }
        }
        found
    }

    /// Waits up to 10 s for the emulated hosts to be empty (MPI's daemons exit after their job).
    fn assert_empty(&self) {
        let started = Instant::now();
        while !self.processes_inside().is_empty() && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let left = self.processes_inside();
        assert!(left.is_empty(), "processes left on the emulated hosts after the job: {left:?}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        match Command::new(script("cluster.sh")).arg("down").output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!("cluster.sh down failed: {}", String::from_utf8_lossy(&out.stderr)),
            Err(e) => eprintln!("cluster.sh down: {e}"),
        }
    }
}

/// The inode of the network namespace `pid` is in.
pub(crate) fn net_namespace(pid: u32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    link.to_str()?.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(") ").next()?.split_whitespace().nth(1)?.parse().ok()
}

/// Watches, while a job runs, where the processes running `exe` are: pid → host.
struct Placement {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<HashMap<u32, String>>,
}

impl Placement {
    fn watch(cluster: &Cluster, exe: &Path) -> Placement {
        let namespaces = cluster.namespaces();
        let exe = exe.canonicalize().expect("executable");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = HashMap::new();
            while !stopped.load(Ordering::Relaxed) {
                for pid in live_processes(&exe) {
                    // A child the program forked (MPI starting its daemon) runs `exe` until it
                    // execs: not a server.
                    let forked = parent_of(pid).is_some_and(|p| live_processes(&exe).contains(&p));
                    if let (false, Some(ns)) = (forked, net_namespace(pid)) {
                        let host = namespaces.get(&ns).cloned().unwrap_or_else(|| format!("namespace {ns}"));
                        seen.entry(pid).or_insert(host);
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            seen
        });
        Placement { stop, thread }
    }

    /// Host → how many processes ran `exe` there.
    fn finish(self) -> HashMap<String, usize> {
        self.stop.store(true, Ordering::Relaxed);
        let mut per_host = HashMap::new();
        for host in self.thread.join().expect("placement watcher").into_values() {
            *per_host.entry(host).or_insert(0) += 1;
        }
        per_host
    }
}

/// The result bigarray.c gives on ordinary memory.
fn native_checksum() -> &'static str {
    static CHECKSUM: OnceLock<String> = OnceLock::new();
    CHECKSUM.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let native = cc_native(dir.path(), "examples/c/bigarray.c");
        run(Command::new(native).arg(DATA_MIB), LIMIT).assert_success().field("checksum:")
    })
}

/// Runs `cmd` (bigarray.c or the bigsweep example, DATA_MIB through BUDGET) and checks that
/// its result equals the native one, that it paged through one server on each of `hosts`, and
/// that the program ran here and no server did. Returns the statistics JSON.
fn check_remote_run(cluster: &Cluster, cmd: &mut Command, exe: &Path, hosts: &[&str], dir: &Path) -> String {
    let json = dir.join("stats.json");
    let _ = std::fs::remove_file(&json);
    cmd.env("DLM_LOCAL_MEM", BUDGET).env("DLM_STATS_JSON", &json);
    let placement = Placement::watch(cluster, exe);
    let started = Instant::now();
    let out = run(cmd, LIMIT);
    let seconds = started.elapsed().as_secs_f64();
    let placed = placement.finish();
    out.assert_success();
    assert_eq!(out.field("elements:"), "2097152 mismatches: 0 stale: 0");
    assert_eq!(out.field("checksum:"), native_checksum());
    let mut expected: HashMap<String, usize> = hosts.iter().map(|h| (h.to_string(), 1)).collect();
    expected.insert(compute_host(), 1);
    assert_eq!(placed, expected, "where the program (1 on {}) and its servers ran", compute_host());
    let stats = std::fs::read_to_string(&json).expect("DLM_STATS_JSON written at shutdown");
    assert_eq!(stat(&stats, "servers"), hosts.len() as f64, "{stats}");
    for key in ["bytes_fetched", "bytes_written_back", "pages_evicted"] {
        assert!(stat(&stats, key) > 0.0, "{key} is 0 in {stats}");
    }
    assert!(stat(&stats, "peak_resident_bytes") <= stat(&stats, "local_budget_bytes"), "{stats}");
    assert_no_survivors(exe);
    cluster.assert_empty();
    let moved = stat(&stats, "bytes_fetched") + stat(&stats, "bytes_written_back");
    eprintln!("{}: {:.0} MiB paged over the links in {seconds:.1} s", exe.display(), moved / f64::from(1 << 20));
    stats
}

/// A copy of `exe` in `dir`: processes running it are this test's alone (the placement and
/// survivor checks go by executable), whatever other tests run at the same time.
fn private_copy(exe: &Path, dir: &Path) -> PathBuf {
    let copy = dir.join(exe.file_name().expect("file name"));
    std::fs::copy(exe, &copy).expect("copy the executable");
    copy
}

fn memfile(dir: &Path, lines: &str) -> PathBuf {
    let path = dir.join("memfile");
    std::fs::write(&path, lines).unwrap();
    path
}

#[test]
fn script_up_down_and_agent() {
    let _heavy = one_at_a_time();
    require("an emulated cluster", cannot_make_a_cluster());
    let agent = script("cluster-agent");
    let here = compute_host();
    {
        // A second `up` replaces the first (as after a crashed run) instead of failing.
        let _first = Cluster::up(2, None);
        let cluster = Cluster::up(3, Some("200mbit"));
        let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
        let names: Vec<String> = String::from_utf8_lossy(&netns.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next().filter(|n| n.starts_with("dlmh")).map(String::from))
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        // ssh-style options before the host are skipped; the command runs there, under the
        // host's own name, and every name resolves there to its cluster address.
        let out = run(
            Command::new(&agent).args([
                "-x",
                "-o",
                "BatchMode=yes",
                "dlmh2",
                "hostname;",
                "getent",
                "hosts",
                "dlmh3",
                &here,
            ]),
            LIMIT,
        );
        out.assert_success();
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines[0], "dlmh2");
        assert!(lines[1].starts_with("10.213.0.3 ") && lines[1].ends_with(" dlmh3"), "{}", out.stdout);
        assert!(lines[2].starts_with("10.213.0.254 ") && lines[2].ends_with(&format!(" {here}")), "{}", out.stdout);
        // Like ssh, the agent gives the remote side a fresh environment.
        let out = run(
            Command::new(&agent)
                .args(["dlmh1", "echo", "probe=${DLM_CLUSTER_PROBE:-unset}"])
                .env("DLM_CLUSTER_PROBE", "x"),
            LIMIT,
        );
        assert_eq!(out.assert_success().stdout, "probe=unset\n");
        // This host by its own name: the command runs here.
        let out = run(Command::new(&agent).args([here.as_str(), "hostname"]), LIMIT);
        assert_eq!(out.assert_success().stdout.trim(), here);
        // An unknown host fails as ssh does.
        let out = run(Command::new(&agent).args(["dlmh9", "true"]), LIMIT);
        assert_eq!(out.status.code(), Some(255), "{}", out.stderr);
        assert!(out.stderr.contains("no emulated host 'dlmh9'"), "{}", out.stderr);
        // The hosts resolve here too, and the links are shaped in both directions.
        let out = run(Command::new("getent").args(["hosts", "dlmh1"]), LIMIT);
        assert!(out.assert_success().stdout.starts_with("10.213.0.1 "), "{}", out.stdout);
        let out = run(Command::new("tc").args(["class", "show", "dev", "dlmv1"]), LIMIT);
        assert!(out.assert_success().stdout.contains("rate 200Mbit"), "{}", out.stdout);
        let out = run(Command::new("tc").args(["-n", "dlmh1", "class", "show", "dev", "eth0"]), LIMIT);
        assert!(out.assert_success().stdout.contains("rate 200Mbit"), "{}", out.stdout);
        // A process left inside a host is ended by `down`.
        let mut sleeper = Command::new(&agent).args(["dlmh3", "sleep", "600"]).spawn().unwrap();
        let started = Instant::now();
        while cluster.processes_inside().is_empty() {
            assert!(started.elapsed() < Duration::from_secs(10), "sleep did not start on dlmh3");
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(cluster);
        let ended = sleeper.wait().unwrap();
        assert!(!ended.success(), "the process inside dlmh3 was not ended by `down`");
    }
    // `down` leaves no namespace, link, hosts entry or per-host file.
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&netns.stdout).contains("dlmh"), "{}", String::from_utf8_lossy(&netns.stdout));
    let links = Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains("dlmv") && !links.contains("dlmbr0"), "{links}");
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap();
    assert!(!hosts.contains("dlm emulated cluster") && !hosts.contains("dlmh"), "{hosts}");
    assert!(!Path::new("/etc/netns/dlmh1").exists());
    // Not as root: a plain message, nothing done. (The script goes in on stdin and runs from
    // `/`, so that the unprivileged user needs no access to the checkout.)
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "bash", "-s", "up", "1"])
        .stdin(std::fs::File::open(script("cluster.sh")).unwrap())
        .current_dir("/")
        .output()
        .expect("setpriv");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cluster.sh: needs root"), "{stderr}");
}

#[test]
fn standalone_with_one_remote_server() {
    let _heavy = one_at_a_time();
    require("an emulated cluster", cannot_make_a_cluster());
    let cluster = Cluster::up(1, None);
    let dir = tempfile::tempdir().unwrap();
    let memfile = memfile(dir.path(), "# the only server, on another host\ndlmh1 1G\n");
    let c = dlmcc(dir.path(), "examples/c/bigarray.c");
    let mut cmd = Command::new(&c);
    cluster.env(cmd.arg(DATA_MIB).env("DLM_MEMFILE", &memfile));
    check_remote_run(&cluster, &mut cmd, &c, &["dlmh1"], dir.path());
    let rust = private_copy(&rust_example("bigsweep"), dir.path());
    let mut cmd = Command::new(&rust);
    cluster.env(cmd.arg(DATA_MIB).env("DLM_MEMFILE", &memfile));
    check_remote_run(&cluster, &mut cmd, &rust, &["dlmh1"], dir.path());
}

#[test]
fn standalone_with_three_remote_servers_on_shaped_links() {
    let _heavy = one_at_a_time();
    require("an emulated cluster", cannot_make_a_cluster());
    let cluster = Cluster::up(3, Some("1gbit"));
    let dir = tempfile::tempdir().unwrap();
    // 17.25 MiB in all: the 12 MiB or more that do not fit the budget need all three servers,
    // and with the budget they hold the 20 MiB bigsweep has allocated at its peak.
    let memfile = memfile(dir.path(), "dlmh1 5888K\ndlmh2 5888K\ndlmh3 5888K\n");
    let c = dlmcc(dir.path(), "examples/c/bigarray.c");
    let mut cmd = Command::new(&c);
    cluster.env(cmd.arg(DATA_MIB).env("DLM_MEMFILE", &memfile));
    let stats = check_remote_run(&cluster, &mut cmd, &c, &["dlmh1", "dlmh2", "dlmh3"], dir.path());
    assert_eq!(stat(&stats, "server_capacity_bytes"), (3 * 5888 * 1024) as f64, "{stats}");
    let rust = private_copy(&rust_example("bigsweep"), dir.path());
    let mut cmd = Command::new(&rust);
    cluster.env(cmd.arg(DATA_MIB).env("DLM_MEMFILE", &memfile));
    check_remote_run(&cluster, &mut cmd, &rust, &["dlmh1", "dlmh2", "dlmh3"], dir.path());
}

#[test]
fn under_mpirun_with_remote_servers() {
    let _heavy = one_at_a_time();
    require("an emulated cluster", cannot_make_a_cluster());
    let cluster = Cluster::up(2, None);
    let dir = tempfile::tempdir().unwrap();
    // The server rank takes the memfile line naming its host: its capacity shows it ran on
    // dlmh2 under that name (a server here would take no line and get half this host's memory).
    let memfile = memfile(dir.path(), "dlmh1 20M\ndlmh2 28M\n");
    let c = dlmcc(dir.path(), "examples/c/bigarray.c");
    let mut cmd = cluster.mpirun(&["dlmh2"]);
    cmd.arg(&c).arg(DATA_MIB).env("DLM_MEMFILE", &memfile);
    let stats = check_remote_run(&cluster, &mut cmd, &c, &["dlmh2"], dir.path());
    assert_eq!(stat(&stats, "server_capacity_bytes"), (28u64 << 20) as f64, "{stats}");
    // The Rust example with its options in the classic form; one server rank on each host.
    let rust = private_copy(&rust_example("bigsweep"), dir.path());
    let mut cmd = cluster.mpirun(&["dlmh1", "dlmh2"]);
    cmd.arg(&rust).args([DATA_MIB, "--"]).arg(&memfile);
    let stats = check_remote_run(&cluster, &mut cmd, &rust, &["dlmh1", "dlmh2"], dir.path());
    assert_eq!(stat(&stats, "server_capacity_bytes"), (48u64 << 20) as f64, "{stats}");
}

/// A job started for a failure test: output to files, so nothing blocks on a full pipe.
struct Job {
    child: Child,
    dir: tempfile::TempDir,
    exe: PathBuf,
}

impl Job {
    fn start(cmd: &mut Command, exe: &Path) -> Job {
        let dir = tempfile::tempdir().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("out")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("err")).unwrap())
            .spawn()
            .expect("spawn");
        Job { child, dir, exe: exe.to_path_buf() }
    }

    fn output(&self) -> (String, String) {
        let read = |name| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        (read("out"), read("err"))
    }

    /// The server on `host` once it is resident in 64 MiB or more: it starts with about 20 MiB
    /// of its own (MPI and UCX included), so pages are arriving then and the job is paging.
    fn server_paging_on(&mut self, host: &str) -> u32 {
        let namespace = std::fs::metadata(format!("/run/netns/{host}")).expect("namespace").ino();
        let resident = |pid: u32| {
            let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
            statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
        };
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the job ended ({status}) before its server on {host} was paging: {:?}", self.output());
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no server paging on {host}: {:?}", self.output());
            let server = live_processes(&self.exe).into_iter().find(|&p| net_namespace(p) == Some(namespace));
            if let Some(pid) = server.filter(|&pid| resident(pid) >= 64 << 20) {
                return pid;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to FAILURE_DEADLINE for the job to end. If it does not, fails with what the
    /// program (rank 0, here) is doing, after killing everything.
    fn ends_soon(&mut self, what: &str) -> (ExitStatus, String, String) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let (out, err) = self.output();
                return (status, out, err);
            }
            if started.elapsed() > FAILURE_DEADLINE {
                let here = net_namespace(std::process::id());
                let compute = live_processes(&self.exe).into_iter().find(|&p| net_namespace(p) == here);
                let stacks = compute.map(backtrace).unwrap_or_else(|| "(the program has ended)".into());
                let _ = self.child.kill();
                let _ = self.child.wait();
                kill_all(&live_processes(&self.exe));
                let (out, err) = self.output();
                panic!(
                    "the job did not end within {FAILURE_DEADLINE:?} of {what}\nstdout:\n{out}\nstderr:\n{err}\n\
                     the program (pid {compute:?}) was at:\n{stacks}"
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Job {
    /// A failed test leaves no job behind (the cluster's `down` ends what runs on its hosts).
    /// Only at the end of the test: the checks for leftovers come before.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        kill_all(&live_processes(&self.exe));
    }
}

/// Every thread's stack of `pid`, through gdb when it is installed.
fn backtrace(pid: u32) -> String {
    match Command::new("gdb").args(["-p", &pid.to_string(), "-batch", "-ex", "thread apply all bt 12"]).output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("Thread") || l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("(no backtrace: gdb: {e})"),
    }
}

#[derive(Clone, Copy, Debug)]
enum Launch {
    /// The program spawns its server onto the memfile's host.
    Standalone,
    /// `mpirun --host COMPUTE,dlmh1`: the server is rank 1 there.
    Mpirun,
}

#[derive(Clone, Copy, Debug)]
enum Loss {
    /// `kill -9` of the server process, inside its host.
    Kill,
    /// `ip link set dlmv1 down`: the host stays up, nothing reaches it any more.
    LinkCut,
}

/// The toolchain as a user installs it (scripts/install.sh into a fresh prefix), with a home
/// directory of its own: the user's MCA parameter file gets DLM's Open MPI defaults there,
/// and every emulated host sees the same home (the agent passes `HOME` on, like a cluster's
/// shared home directory), so the remote daemons read them too.
struct Installed {
    prefix: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Installed {
    fn new() -> Installed {
        let installed = Installed { prefix: tempfile::tempdir().unwrap(), home: tempfile::tempdir().unwrap() };
        install(&repo_dir(), installed.prefix.path(), installed.home.path(), None);
        installed
    }

    /// Compiles `source` (relative to the repo) into `dir` with the installed dlmcc.
    fn dlmcc(&self, dir: &Path, source: &str) -> PathBuf {
        let out = dir.join(Path::new(source).file_stem().expect("file name"));
        succeed(
            Command::new(self.prefix.path().join("bin/dlmcc"))
                .args(["-O2", "-o"])
                .arg(&out)
                .arg(repo_dir().join(source)),
        );
        out
    }
}

/// Starts a long job with its one server on dlmh1, does `loss` to that server once it holds
/// pages (the job is paging then), and checks that the job ends within FAILURE_DEADLINE with a
/// message naming the host (and the killed server's pid), leaving no DLM process on any host
/// (nor any other process on the emulated host). Under `mpirun`, the toolchain is installed
/// and the job started as the README writes it, `mpirun -np 2 --host HERE,dlmh1 ./bigarray N`,
/// with no keepalive variable set: the installed defaults must do it.
fn lose_the_remote_server(launch: Launch, loss: Loss) {
    let cluster = Cluster::up(1, None);
    let dir = tempfile::tempdir().unwrap();
    let memfile = memfile(dir.path(), "dlmh1 2G\n");
    let installed;
    let (exe, mut cmd) = match launch {
        Launch::Standalone => {
            let exe = dlmcc(dir.path(), "examples/c/bigarray.c");
            let cmd = Command::new(&exe);
            (exe, cmd)
        }
        Launch::Mpirun => {
            installed = Installed::new();
            let exe = installed.dlmcc(dir.path(), "examples/c/bigarray.c");
            let mut cmd = cluster.mpirun(&["dlmh1"]);
            cmd.arg("./bigarray").current_dir(dir.path()).env("HOME", installed.home.path());
            (exe, cmd)
        }
    };
    cluster.env(cmd.arg(LONG_DATA_MIB).env("DLM_MEMFILE", &memfile).env("DLM_LOCAL_MEM", "16M"));
    let mut job = Job::start(&mut cmd, &exe);
    let server = job.server_paging_on("dlmh1");
    let mut names = vec!["dlmh1".to_string()];
    match loss {
        Loss::Kill => {
            kill_all(&[server]);
            names.push(server.to_string());
        }
        Loss::LinkCut => {
            assert!(Command::new("ip").args(["link", "set", "dlmv1", "down"]).status().unwrap().success());
        }
    }
    let lost = Instant::now();
    let what = format!("{loss:?} of the server on dlmh1 ({launch:?})");
    let (status, out, err) = job.ends_soon(&what);
    eprintln!("the job ended {:.1} s after the {what}", lost.elapsed().as_secs_f64());
    assert!(!status.success(), "the job succeeded after {what}\n{out}\n{err}");
    assert!(!out.contains("checksum:"), "the job finished its work before {what}: {out}");
    for name in &names {
        assert!(err.contains(name.as_str()), "the message after {what} does not name {name}:\n{err}");
    }
    // The server behind a cut link exits when the program has been silent long enough, and
    // Open MPI's daemons with their job (behind a cut link: once TCP keepalive gives up, within
    // seconds with DLM's defaults).
    assert_no_survivors(&exe);
    cluster.assert_empty();
    eprintln!("nothing left on any host {:.1} s after the {what}", lost.elapsed().as_secs_f64());
}

#[test]
fn a_remote_server_killed_mid_run_ends_the_job_naming_its_host() {
    let _heavy = one_at_a_time();
    require("an emulated cluster", cannot_make_a_cluster());
    lose_the_remote_server(Launch::Standalone, Loss::Kill);
}

#[test]
fn a_remote_server_rank_killed_mid_run_ends_the_job_naming_its_host() {
    let _heavy = one_at_a_time();
    require("an emulated cluster", cannot_make_a_cluster());
    lose_the_remote_server(Launch::Mpirun, Loss::Kill);
}

#[test]
fn a_cut_link_mid_run_ends_the_job_naming_its_host() {
    let _heavy = one_at_a_time();
    require("an emulated cluster", cannot_make_a_cluster());
    lose_the_remote_server(Launch::Standalone, Loss::LinkCut);
}

#[test]
fn a_cut_link_to_a_server_rank_mid_run_ends_the_job_naming_its_host() {
    let _heavy = one_at_a_time();
    require("an emulated cluster", cannot_make_a_cluster());
    lose_the_remote_server(Launch::Mpirun, Loss::LinkCut);
}
