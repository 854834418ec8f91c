//! DLM-WAN on the emulated WAN (scripts/cluster.sh wan): three clusters of different memory,
//! each with its own manager host running a real pool (`dlm pool up`: ompi-server, the manager
//! and a resident server on every memory node), compute nodes that see only their own memory
//! and load, and links between clusters shaped to a WAN rate. The WAN manager runs here (the
//! user's machine); `dlm submit` sends Himeno-style jobs (C sources, built by dlmcc on the chosen
//! node) whose result files must equal a native run's byte for byte.
//!
//! The seed's experiment, scaled: one cluster busy (a memory hog and CPU burners on its compute
//! nodes, loaded before submitting); eight jobs in each mode, half fitting a node's local memory,
//! half only through a pool. Then the queue (a job that only one cluster could hold waits for it
//! first come, first served) and a cluster's manager killed mid-run.
//!
//! Root, munged and Open MPI's ompi-server (scripts/setup.sh): a missing one fails the test.

use crate::cluster::script;
use crate::support::*;
use crate::wan_cluster::Wan;
use dlm_wan::proto::{JobId, JobState, JobStatus, Reach, Through, WanStatus};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Three clusters, `COMPUTE x MEMORY + SERVERS x MEMORY` each: the busy one, a small one, a big one.
const CLUSTERS: [&str; 3] = ["2x384M+2x512M", "3x384M+3x512M", "3x384M+4x512M"];
const WAN_RATE: &str = "100mbit";
/// What DLM may use on each cluster's compute nodes and memory servers (POOLCONF caps): every
/// cluster a different memory.
const CAPS: [(&str, &str); 3] = [("160M", "256M"), ("96M", "128M"), ("128M", "192M")];
const BUSY: usize = 1;
/// Ports of their own, so that a pool or WAN manager an administrator runs is not in the way.
const LAN_PORT: u16 = 7464;
pub(crate) const WAN_PORT: u16 = 7463;
const LIMIT: Duration = Duration::from_secs(120);
/// The pools' leases: eight jobs building and paging at once with nine servers and three
/// managers sampling their nodes load these 2 cores so that a 5 s lease once ran out before its
/// program's renewal got through (the program ended: "the pool manager no longer knows this
/// program"); an administrator of such a busy pool would lengthen it the same way.
const LEASE_SECONDS: u32 = 15;
/// How long a batch of jobs may take, all of them.
const BATCH_LIMIT: Duration = Duration::from_secs(300);

/// A Himeno-style job: its grid, sweeps and the memory it asks for.
#[derive(Debug, Clone, Copy)]
struct Stencil {
    /// `-DNX=.. -DNY=.. -DNZ=..`
    grid: [u32; 3],
    sweeps: u32,
    memory: &'static str,
}

/// Two 16 MiB grids in 48 MiB: fits a node's local memory.
const SMALL: Stencil = Stencil { grid: [64, 64, 1024], sweeps: 4, memory: "48M" };
/// Two 64 MiB grids in 256 MiB: more than any compute node may give, so through a pool.
const LARGE: Stencil = Stencil { grid: [128, 128, 1024], sweeps: 2, memory: "256M" };

impl Stencil {
    fn cflags(&self) -> String {
        let [x, y, z] = self.grid;
        format!("-DNX={x} -DNY={y} -DNZ={z}")
    }
}

pub(crate) fn dlm() -> PathBuf {
    let path = target_dir().join("dlm");
    assert!(path.is_file(), "{} is missing: run `cargo build --release --workspace` first", path.display());
    path
}

pub(crate) fn stencil_source() -> PathBuf {
    repo_dir().join("tests/c/wan/stencil_job.c")
}

/// The three pools and the WAN manager over an emulated WAN, stopped (and checked gone) on drop.
pub(crate) struct Deployment {
    pub(crate) wan: Wan,
    pub(crate) dir: tempfile::TempDir,
}

impl Deployment {
    pub(crate) fn up() -> Deployment {
        let wan = Wan::up(&CLUSTERS, Some(WAN_RATE));
        let deployment = Deployment { wan, dir: tempfile::tempdir().unwrap() };
        for k in 1..=CLUSTERS.len() {
            deployment.start_pool(k);
        }
        deployment.start_wan_manager();
        deployment
    }

    fn cluster_dir(&self, k: usize) -> PathBuf {
        self.dir.path().join(format!("c{k}"))
    }

    /// `dlm pool up` on cluster K's manager host, its POOLCONF naming its compute nodes too.
    fn start_pool(&self, k: usize) {
        let dir = self.cluster_dir(k);
        std::fs::create_dir_all(&dir).unwrap();
        let (compute_cap, server_cap) = CAPS[k - 1];
        let mut conf = String::new();
        for host in self.wan.servers(k) {
            conf.push_str(&format!("{host} {server_cap}\n"));
        }
        for host in self.wan.compute(k) {
            conf.push_str(&format!("compute {host} {compute_cap}\n"));
        }
        std::fs::write(dir.join("pool.conf"), conf).unwrap();
        let line = format!(
            "{env}; exec {dlm} pool up {dir}/pool.conf --listen 0.0.0.0:{LAN_PORT} --socket {dir}/pool.sock --run-dir {dir}/run --timeout 60 --lease {LEASE_SECONDS}",
            env = host_env(),
            dlm = dlm().display(),
            dir = dir.display(),
        );
        let out = run(&mut self.wan.on(self.wan.manager(k), &line), LIMIT);
        assert!(out.status.success(), "cluster {k}'s pool did not come up:\n{}\n{}", out.stdout, out.stderr);
    }

    fn start_wan_manager(&self) {
        let hostconf = self.dir.path().join("hostconf");
        let lines: String =
            (1..=CLUSTERS.len()).map(|k| format!("c{k} {}:{LAN_PORT}\n", self.wan.manager(k))).collect();
        std::fs::write(&hostconf, lines).unwrap();
        let mut up = Command::new(dlm());
        up.args(["wan", "up"]).arg(&hostconf).args(["--listen", &format!("0.0.0.0:{WAN_PORT}"), "--spool"]);
        up.arg(self.dir.path().join("wan"));
        let out = run(&mut up, LIMIT);
        assert!(out.status.success(), "dlm wan up failed:\n{}\n{}", out.stdout, out.stderr);
        for k in 1..=CLUSTERS.len() {
            assert!(out.stdout.contains(&format!("cluster c{k}: manager")), "{}", out.stdout);
        }
    }

    /// A `dlm` command that talks to the WAN manager.
    fn dlm(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(dlm());
        cmd.args(args).env("DLM_WAN", format!("localhost:{WAN_PORT}"));
        cmd
    }

    fn status(&self) -> WanStatus {
        let out = run(&mut self.dlm(&["wan", "status", "--json"]), LIMIT);
        assert!(out.status.success(), "{}", out.stderr);
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
    }

    pub(crate) fn jobs(&self) -> BTreeMap<JobId, JobStatus> {
        let out = run(&mut self.dlm(&["jobs", "--json"]), LIMIT);
        assert!(out.status.success(), "{}", out.stderr);
        let jobs: Vec<JobStatus> = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
        jobs.into_iter().map(|j| (j.id, j)).collect()
    }

    /// Submits the stencil (its C source, built on the node) and returns its id.
    fn submit_stencil(&self, stencil: Stencil, mode: &str) -> JobId {
        let source = stencil_source();
        let cflags = stencil.cflags();
        let sweeps = stencil.sweeps.to_string();
        let args = ["submit", "-m", stencil.memory, "--mode", mode, "--dlmcc", "--cflags", &cflags];
        let mut cmd = self.dlm(&args);
        cmd.args(["--out", "result.txt", "--detach", "--"]).arg(&source).args([&sweeps, "result.txt"]);
        submitted(run(&mut cmd, LIMIT))
    }

    /// Submits a shell script as the program.
    fn submit_script(&self, name: &str, script: &str, memory: &str) -> JobId {
        let path = self.dir.path().join(name);
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut cmd = self.dlm(&["submit", "-m", memory, "--detach", "--"]);
        submitted(run(cmd.arg(&path), LIMIT))
    }

    /// Waits until every job in `ids` has ended; returns them.
    fn wait_all(&self, ids: &[JobId]) -> BTreeMap<JobId, JobStatus> {
        let started = Instant::now();
        loop {
            let jobs = self.jobs();
            if ids.iter().all(|id| jobs[id].state.is_final()) {
                return jobs;
            }
            assert!(started.elapsed() < BATCH_LIMIT, "jobs still not ended: {:#?}", pending(&jobs, ids));
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn wait_for(&self, what: &str, limit: Duration, mut done: impl FnMut(&Self) -> bool) {
        let started = Instant::now();
        while !done(self) {
            assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// `dlm fetch JOB` into a directory of its own; returns the result file's bytes.
    fn fetch_result(&self, id: JobId) -> Vec<u8> {
        let dir = self.dir.path().join(format!("fetched-{id}"));
        let out = run(&mut self.dlm(&["fetch", &id.to_string(), "--dir", &dir.to_string_lossy()]), LIMIT);
        assert!(out.status.success(), "dlm fetch {id}: {}", out.stderr);
        std::fs::read(dir.join("result.txt")).unwrap_or_else(|e| panic!("job {id} has no result.txt: {e}"))
    }

    /// The job's standard error as `dlm fetch` writes it.
    fn stderr_of(&self, id: JobId) -> String {
        let dir = self.dir.path().join(format!("fetched-{id}"));
        let _ = run(&mut self.dlm(&["fetch", &id.to_string(), "--dir", &dir.to_string_lossy()]), LIMIT);
        std::fs::read_to_string(dir.join(format!("job-{id}.stderr"))).unwrap_or_else(|e| format!("(none: {e})"))
    }

    /// The pid of `dlm pool manager` on cluster K's manager host.
    fn cluster_manager_pid(&self, k: usize) -> u32 {
        let out = Command::new("ip").args(["netns", "pids", self.wan.manager(k)]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .find(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(" pool manager ")
            })
            .unwrap_or_else(|| panic!("no `dlm pool manager` on {}", self.wan.manager(k)))
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = run(&mut self.dlm(&["wan", "down", "--force"]), LIMIT);
        for k in 1..=CLUSTERS.len() {
            let socket = self.cluster_dir(k).join("pool.sock");
            let mut down = Command::new(dlm());
            down.args(["pool", "down", "--force", "-s"]).arg(&socket);
            let _ = run(&mut down, LIMIT);
        }
        // The WAN's own drop then checks that nothing is left on its hosts.
    }
}

/// What the pool's launcher needs on a host to reach the others, and the toolchain on PATH (the
/// cluster's manager passes PATH on to its jobs, which build with dlmcc).
fn host_env() -> String {
    format!(
        "export OMPI_MCA_plm_rsh_agent={agent} OMPI_MCA_plm_rsh_no_tree_spawn=1 OMPI_MCA_hwloc_base_binding_policy=none \
         OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 PATH={bin}:$PATH",
        agent = script("cluster-agent").display(),
        bin = target_dir().display(),
    )
}

fn submitted(out: Output) -> JobId {
    assert!(out.status.success(), "dlm submit failed:\n{}\n{}", out.stdout, out.stderr);
    JobId(out.stdout.trim().parse().unwrap_or_else(|_| panic!("dlm submit --detach printed `{}`", out.stdout)))
}

fn pending(jobs: &BTreeMap<JobId, JobStatus>, ids: &[JobId]) -> Vec<JobStatus> {
    ids.iter().filter(|id| !jobs[id].state.is_final()).map(|id| jobs[id].clone()).collect()
}

/// The native run's result file of each stencil, built with cc and the same flags.
fn native_results(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut results = BTreeMap::new();
    for stencil in [SMALL, LARGE] {
        let exe = dir.join(format!("native-{}", stencil.grid[0]));
        let mut cc = Command::new("cc");
        cc.arg("-O2").args(stencil.cflags().split_whitespace()).arg(stencil_source()).arg("-o").arg(&exe);
        run(&mut cc, LIMIT).assert_success();
        let result = dir.join(format!("native-{}.txt", stencil.grid[0]));
        run(Command::new(&exe).arg(stencil.sweeps.to_string()).arg(&result), LIMIT).assert_success();
        results.insert(stencil.cflags(), std::fs::read(&result).unwrap());
    }
    results
}

pub(crate) fn require_wan_prerequisites() {
    require("an emulated WAN", crate::cluster::cannot_make_a_cluster());
    let munge = Command::new("munge").arg("-n").output();
    require(
        "munged",
        munge.map_or_else(|e| Some(e.to_string()), |o| (!o.status.success()).then(|| "munge -n failed".into())),
    );
    let ompi_server = Command::new("ompi-server").arg("--help").output();
    require("Open MPI's ompi-server", ompi_server.err().map(|e| e.to_string()));
}

/// Loads cluster `k`'s compute nodes (a memory hog and CPU burners) and waits until the WAN
/// manager sees every one of them busy.
fn make_busy(d: &Deployment, k: usize) {
    for host in d.wan.compute(k) {
        d.wan.load(host, Some("260M"), 4);
    }
    let name = format!("c{k}");
    d.wait_for("the loaded cluster's nodes all busy", Duration::from_secs(90), |d| {
        let status = d.status();
        let cluster = status.clusters.iter().find(|c| c.name == name).unwrap();
        !cluster.nodes.is_empty() && cluster.nodes.iter().all(|n| n.busy)
    });
}

/// Eight stencils, small and large in turn, in `mode`; every one done, byte-exact, and listed
/// with where it ran. Returns the cluster of each.
fn batch(d: &Deployment, mode: &str, native: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let stencils: Vec<Stencil> = (0..8).map(|i| if i % 2 == 0 { SMALL } else { LARGE }).collect();
    let ids: Vec<JobId> = stencils.iter().map(|s| d.submit_stencil(*s, mode)).collect();
    let jobs = d.wait_all(&ids);
    let listing = run(&mut d.dlm(&["jobs"]), LIMIT);
    eprintln!("{mode}:\n{}", listing.stdout);
    let mut clusters = Vec::new();
    for (id, stencil) in ids.iter().zip(&stencils) {
        let job = &jobs[id];
        if (job.state, job.exit_code) != (JobState::Done, Some(0)) {
            panic!("job {id} ({mode}): {job:#?}\nits stderr:\n{}", d.stderr_of(*id));
        }
        assert_eq!(d.fetch_result(*id), native[&stencil.cflags()], "job {id}'s result differs from the native run's");
        let placement = job.placement.as_ref().unwrap_or_else(|| panic!("job {id} has no placement"));
        let through = if stencil.memory == LARGE.memory { Through::Pool } else { Through::LocalMemory };
        assert_eq!(placement.through, through, "job {id}: {placement:?}");
        match through {
            Through::Pool => {
                assert!(!placement.servers.is_empty(), "pool job {id} lists no servers: {placement:?}");
                assert!(placement.local_ratio > 0.0 && placement.local_ratio < 1.0, "{placement:?}");
            }
            Through::LocalMemory => assert_eq!(placement.local_ratio, 1.0, "{placement:?}"),
        }
        let place = format!("{}/{}", placement.cluster, placement.node);
        let line = listing.stdout.lines().find(|l| l.split_whitespace().next() == Some(&id.to_string()));
        assert!(
            line.is_some_and(|l| l.contains(&place)),
            "`dlm jobs` does not show job {id} on {place}:\n{}",
            listing.stdout
        );
        clusters.push(placement.cluster.clone());
    }
    clusters
}

/// A job only one cluster could ever hold waits while that cluster holds another such job,
/// and starts when it ends.
fn queue_until_a_cluster_frees(d: &Deployment) {
    // 700M: only c3 (128M node + 768M of servers) could ever give it.
    let holder = d.submit_script("hold.sh", "#!/bin/sh\nsleep 8\necho held\n", "700M");
    d.wait_for("the holder running", LIMIT, |d| d.jobs()[&holder].state == JobState::Running);
    let waiting = d.submit_script("next.sh", "#!/bin/sh\necho next\n", "700M");
    std::thread::sleep(Duration::from_secs(2));
    let jobs = d.jobs();
    assert_eq!(jobs[&waiting].state, JobState::Queued, "{:#?}", jobs[&waiting]);
    assert_eq!(jobs[&waiting].queue_position, Some(1));
    assert_eq!(jobs[&holder].state, JobState::Running, "{:#?}", jobs[&holder]);
    let jobs = d.wait_all(&[holder, waiting]);
    for id in [holder, waiting] {
        assert_eq!((jobs[&id].state, jobs[&id].exit_code), (JobState::Done, Some(0)), "{:#?}", jobs[&id]);
        assert_eq!(jobs[&id].placement.as_ref().map(|p| p.cluster.as_str()), Some("c3"));
    }
    assert!(jobs[&waiting].started >= jobs[&holder].ended, "{:#?}", jobs);
    // An impossible request fails at once, with the numbers.
    let mut cmd = d.dlm(&["submit", "-m", "2G", "--detach", "--"]);
    let out = run(cmd.arg(d.dir.path().join("next.sh")), LIMIT);
    assert!(!out.status.success());
    assert!(out.stderr.contains("2 GiB") && out.stderr.contains("896 MiB"), "{}", out.stderr);
}

/// A node the user names (`--on`, the portal's Interactive mode) runs the job, busy or not;
/// a node its cluster does not have is refused, naming the ones it has.
fn a_job_on_a_chosen_node(d: &Deployment) {
    let node = d.wan.compute(BUSY)[1].clone();
    let place = format!("c{BUSY}/{node}");
    let script = d.dir.path().join("chosen.sh");
    std::fs::write(&script, "#!/bin/sh\necho chosen\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let id = submitted(run(d.dlm(&["submit", "-m", "48M", "--on", &place, "--detach", "--"]).arg(&script), LIMIT));
    let job = d.wait_all(&[id])[&id].clone();
    assert_eq!(job.state, JobState::Done, "{job:#?}");
    let placement = job.placement.expect("placed");
    assert_eq!(format!("{}/{}", placement.cluster, placement.node), place);
    let out = run(d.dlm(&["submit", "-m", "48M", "--on", "c2/no-such-node", "--detach", "--"]).arg(&script), LIMIT);
    assert!(!out.status.success());
    assert!(out.stderr.contains("cluster c2 has no compute node no-such-node (it has dlmw2-n1"), "{}", out.stderr);
}

/// Cluster 3's manager killed while a job runs there: the WAN says so within seconds, new jobs
/// go elsewhere, the job there fails naming the cluster, and its program does not live on.
fn a_cluster_manager_killed_mid_run(d: &Deployment) {
    let long = d.submit_script("long.sh", "#!/bin/sh\necho started\nsleep 120\n", "700M");
    d.wait_for("the long job running on c3", LIMIT, |d| d.jobs()[&long].state == JobState::Running);
    let killed = Instant::now();
    let pid = d.cluster_manager_pid(3);
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    d.wait_for("c3 unreachable in `dlm wan status`", Duration::from_secs(10), |d| {
        d.status().clusters.iter().any(|c| c.name == "c3" && c.reach == Reach::Unreachable)
    });
    let noticed = killed.elapsed();
    assert!(noticed < Duration::from_secs(5), "c3 was marked unreachable only after {noticed:?}");
    let elsewhere = d.submit_script("small.sh", "#!/bin/sh\necho elsewhere\n", "48M");
    let jobs = d.wait_all(&[elsewhere, long]);
    let placed = jobs[&elsewhere].placement.as_ref().map(|p| p.cluster.clone());
    assert_eq!(jobs[&elsewhere].state, JobState::Done, "{:#?}", jobs[&elsewhere]);
    assert_ne!(placed.as_deref(), Some("c3"));
    assert_eq!(jobs[&long].state, JobState::Failed, "{:#?}", jobs[&long]);
    let reason = jobs[&long].reason.clone().unwrap_or_default();
    assert!(reason.contains("cluster c3"), "{reason}");
    d.wait_for("the long job's program gone from c3", Duration::from_secs(15), |d| {
        !d.wan.processes_inside().iter().any(|p| p.contains("long.sh") || p.contains("sleep"))
    });
}

#[test]
fn wan_places_jobs_by_memory_across_clusters_queues_and_survives_a_lost_cluster() {
    let _serial = one_at_a_time();
    require_wan_prerequisites();
    let d = Deployment::up();
    let native = native_results(d.dir.path());
    make_busy(&d, BUSY);

    let local_first = batch(&d, "local-first", &native);
    assert!(
        !local_first.contains(&format!("c{BUSY}")),
        "local-first placed a job on the busy cluster: {local_first:?}"
    );

    let equalize = batch(&d, "equalize", &native);
    for k in 1..=CLUSTERS.len() {
        assert!(equalize.contains(&format!("c{k}")), "equalize left cluster c{k} out: {equalize:?}");
    }

    a_job_on_a_chosen_node(&d);
    queue_until_a_cluster_frees(&d);
    a_cluster_manager_killed_mid_run(&d);
}
