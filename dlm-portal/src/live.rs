//! What the pages show, as data: the JSON that the pages' script polls (`/api/clusters`,
//! `/api/jobs/{id}`) and the texts that both it and the HTML print. Every size is printed here,
//! by `dlm_units::Bytes`, so that the script never formats one itself.

use dlm_units::Bytes;
use dlm_wan::proto::{
    ClusterStatus, JobState, JobStats, JobStatus, Mode, Placement, Reach, StatSample, Through, WanStatus,
};
use serde::Serialize;

/// `GET /api/clusters`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClustersLive {
    pub clusters: Vec<ClusterLive>,
    /// Jobs waiting in the WAN manager's queue (everyone's: only their number).
    pub queued: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterLive {
    pub name: String,
    /// `reachable`, `unreachable` or `unknown`.
    pub reach: &'static str,
    pub error: Option<String>,
    /// DLM clients there (its pool's programs and its manager's jobs).
    pub clients: u32,
    pub pool_available: String,
    pub nodes: Vec<NodeLive>,
    pub servers: Vec<ServerLive>,
}

/// A compute node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeLive {
    /// `CLUSTER/NODE`: the value of its radio button, and its key in the page.
    pub place: String,
    pub host: String,
    /// What a job could have here by MemFree + Inactive, and by MemFree.
    pub available: String,
    pub free: String,
    pub cap: String,
    pub load: String,
    pub busy: bool,
    pub jobs: u32,
    pub error: Option<String>,
}

/// A memory server of a cluster's pool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerLive {
    /// `CLUSTER/HOST`: its key in the page.
    pub key: String,
    pub host: String,
    pub state: String,
    /// `3 GiB of 16 GiB`.
    pub used: String,
    pub used_bytes: u64,
    pub cap_bytes: u64,
}

/// The clusters as the Interactive page shows them.
pub fn clusters(status: &WanStatus) -> ClustersLive {
    ClustersLive { clusters: status.clusters.iter().map(cluster).collect(), queued: status.queue.len() }
}

fn cluster(c: &ClusterStatus) -> ClusterLive {
    ClusterLive {
        name: c.name.clone(),
        reach: match c.reach {
            Reach::Reachable => "reachable",
            Reach::Unreachable => "unreachable",
            Reach::Unknown => "unknown",
        },
        error: c.error.clone(),
        clients: c.clients,
        pool_available: Bytes(c.pool_available_bytes).to_string(),
        nodes: c
            .nodes
            .iter()
            .map(|n| NodeLive {
                place: format!("{}/{}", c.name, n.host),
                host: n.host.clone(),
                available: Bytes(n.available_bytes).to_string(),
                free: Bytes(n.free_bytes).to_string(),
                cap: Bytes(n.cap_bytes).to_string(),
                load: match n.loadavg {
                    Some([one, ..]) => format!("{one:.2} on {} CPUs", n.cpus),
                    None => "-".into(),
                },
                busy: n.busy,
                jobs: n.jobs,
                error: n.error.clone(),
            })
            .collect(),
        servers: c
            .servers
            .iter()
            .map(|s| {
                let used = s.cap_bytes.saturating_sub(s.available_bytes);
                ServerLive {
                    key: format!("{}/{}", c.name, s.host),
                    host: s.host.clone(),
                    state: s.state.clone(),
                    used: format!("{} of {}", Bytes(used), Bytes(s.cap_bytes)),
                    used_bytes: used,
                    cap_bytes: s.cap_bytes,
                }
            })
            .collect(),
    }
}

/// `GET /api/jobs/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobLive {
    pub id: u64,
    pub state: &'static str,
    /// Nothing will change any more: the script stops polling.
    #[serde(rename = "final")]
    pub is_final: bool,
    pub elapsed: String,
    pub place: String,
    pub outcome: String,
    /// The last `wan::TAIL_BYTES` of each log, as text (invalid UTF-8 shown as U+FFFD).
    pub stdout: String,
    pub stderr: String,
    pub stats: Option<StatsLive>,
}

/// A job's paging statistics: the points after the page's last one, and the latest values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsLive {
    /// Seconds since the program started, one per new point.
    pub t: Vec<f64>,
    pub faults_per_s: Vec<f64>,
    pub fetched: Vec<u64>,
    pub written_back: Vec<u64>,
    /// The latest sample's time: the page asks for the points after it next (`?after=`).
    pub last_t_ms: u64,
    pub resident: u64,
    pub budget: u64,
    /// `1.50 GiB of 4 GiB local`.
    pub memory: String,
    pub faults: u64,
    pub fetched_text: String,
    pub written_back_text: String,
    pub servers: Vec<HeldLive>,
}

/// What one memory server holds for the job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldLive {
    pub host: String,
    pub bytes: u64,
    pub text: String,
}

/// The statistics' points after `after_ms` (all when `None`), and the latest values; `None`
/// before the first sample.
pub fn stats(stats: &JobStats, after_ms: Option<u64>) -> Option<StatsLive> {
    let last = stats.samples.last()?;
    let mut live = StatsLive {
        t: Vec::new(),
        faults_per_s: Vec::new(),
        fetched: Vec::new(),
        written_back: Vec::new(),
        last_t_ms: last.t_ms,
        resident: last.resident_bytes,
        budget: last.local_budget_bytes,
        memory: format!("{} of {} local", Bytes(last.resident_bytes), Bytes(last.local_budget_bytes)),
        faults: last.faults,
        fetched_text: Bytes(last.bytes_fetched).to_string(),
        written_back_text: Bytes(last.bytes_written_back).to_string(),
        servers: last
            .servers
            .iter()
            .map(|s| HeldLive { host: s.host.clone(), bytes: s.bytes, text: Bytes(s.bytes).to_string() })
            .collect(),
    };
    let mut previous: Option<&StatSample> = None;
    for sample in &stats.samples {
        if after_ms.is_none_or(|after| sample.t_ms > after) {
            live.t.push(sample.t_ms as f64 / 1000.0);
            live.faults_per_s.push(fault_rate(previous, sample));
            live.fetched.push(sample.bytes_fetched);
            live.written_back.push(sample.bytes_written_back);
        }
        previous = Some(sample);
    }
    Some(live)
}

/// Faults per second between two samples (since the start for the first one).
fn fault_rate(previous: Option<&StatSample>, sample: &StatSample) -> f64 {
    let (t0, f0) = previous.map_or((0, 0), |p| (p.t_ms, p.faults));
    let dt = sample.t_ms.saturating_sub(t0);
    if dt == 0 {
        0.0
    } else {
        sample.faults.saturating_sub(f0) as f64 * 1000.0 / dt as f64
    }
}

/// The job page's live view of `job` at `now` (seconds since the epoch).
pub fn job(job: &JobStatus, now: u64, stdout: &[u8], stderr: &[u8], stats: Option<StatsLive>) -> JobLive {
    JobLive {
        id: job.id.0,
        state: state_name(job.state),
        is_final: job.state.is_final(),
        elapsed: elapsed(job, now),
        place: place_long(job),
        outcome: outcome(job),
        stdout: String::from_utf8_lossy(stdout).into_owned(),
        stderr: String::from_utf8_lossy(stderr).into_owned(),
        stats,
    }
}

pub fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "queued",
        JobState::Staging => "staging",
        JobState::Running => "running",
        JobState::Done => "done",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::LocalFirst => "local-first",
        Mode::Equalize => "equalize",
    }
}

/// `CLUSTER/NODE`, or `-` before the job is placed.
pub fn place(job: &JobStatus) -> String {
    job.placement.as_ref().map_or("-".into(), |p| format!("{}/{}", p.cluster, p.node))
}

/// Where and how: `osaka/node01, pool: 8 GiB local, 24 GiB on mem01,mem02`.
pub fn place_long(job: &JobStatus) -> String {
    match &job.placement {
        None if job.state.is_final() => "never placed".into(),
        None => "not placed yet".into(),
        Some(p) => format!("{}/{}, {}", p.cluster, p.node, through(p)),
    }
}

fn through(p: &Placement) -> String {
    match p.through {
        Through::LocalMemory => "in local memory".into(),
        Through::Pool => {
            let on = if p.servers.is_empty() { "in the pool".into() } else { format!("on {}", p.servers.join(", ")) };
            format!("pool: {} local, {} {on}", Bytes(p.local_bytes), Bytes(p.pool_bytes))
        }
    }
}

/// The memory servers a job was given, or `-`.
pub fn servers(job: &JobStatus) -> String {
    match &job.placement {
        Some(p) if !p.servers.is_empty() => p.servers.join(", "),
        _ => "-".into(),
    }
}

/// The share of its memory that is local, or `-` before the job is placed.
pub fn local_ratio(job: &JobStatus) -> String {
    job.placement.as_ref().map_or("-".into(), |p| format!("{:.0}%", p.local_ratio * 100.0))
}

/// The exit code of a job that ran, its place in the queue, or why it failed; as `dlm jobs`
/// shows it.
pub fn outcome(job: &JobStatus) -> String {
    let text = match (job.state, job.exit_code, &job.reason) {
        (JobState::Done, Some(code), None) => format!("exit {code}"),
        (JobState::Done, Some(code), Some(reason)) => format!("exit {code}: {reason}"),
        (JobState::Queued, _, reason) => {
            let position = job.queue_position.map(|p| format!("position {p}"));
            [position, reason.clone()].into_iter().flatten().collect::<Vec<_>>().join(": ")
        }
        (_, _, Some(reason)) => reason.clone(),
        _ => String::new(),
    };
    if text.is_empty() {
        "-".into()
    } else {
        text
    }
}

/// How long the job has run (or ran), or has waited to.
pub fn elapsed(job: &JobStatus, now: u64) -> String {
    match job.started {
        Some(start) => duration(job.ended.unwrap_or(now).saturating_sub(start)),
        None if job.state.is_final() => "did not run".into(),
        None => format!("waiting for {}", duration(now.saturating_sub(job.submitted))),
    }
}

/// `12 s`, `3 min 05 s`, `2 h 07 min`.
pub fn duration(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s} s"),
        (0, _) => format!("{m} min {s:02} s"),
        _ => format!("{h} h {m:02} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlm_wan::proto::{JobId, NodeStatus, ServerHeld, ServerSummary};

    const G: u64 = 1 << 30;

    fn job(state: JobState) -> JobStatus {
        JobStatus {
            id: JobId(7),
            user: "alice".into(),
            uid: 1001,
            state,
            reason: None,
            exit_code: None,
            memory_bytes: 32 * G,
            mode: Mode::LocalFirst,
            command: vec!["sim".into(), "-n".into(), "64".into()],
            outputs: vec![],
            placement: None,
            queue_position: None,
            submitted: 1000,
            started: None,
            ended: None,
            stdout_bytes: 0,
            stderr_bytes: 0,
        }
    }

    fn sample(t_ms: u64, faults: u64, fetched: u64) -> StatSample {
        StatSample {
            t_ms,
            resident_bytes: G,
            local_budget_bytes: 4 * G,
            faults,
            bytes_fetched: fetched,
            bytes_written_back: fetched / 2,
            servers: vec![ServerHeld { host: "mem01".into(), bytes: 3 * G / 2 }],
        }
    }

    #[test]
    fn stats_become_points_and_rates() {
        let stats = JobStats { samples: vec![sample(500, 100, 4096), sample(1000, 300, 8192), sample(2000, 400, G)] };
        let all = super::stats(&stats, None).unwrap();
        assert_eq!(all.t, [0.5, 1.0, 2.0]);
        assert_eq!(all.faults_per_s, [200.0, 400.0, 100.0]);
        assert_eq!(all.fetched, [4096, 8192, G]);
        assert_eq!(all.written_back, [2048, 4096, G / 2]);
        assert_eq!((all.last_t_ms, all.faults), (2000, 400));
        assert_eq!(all.memory, "1 GiB of 4 GiB local");
        assert_eq!(all.fetched_text, "1 GiB");
        assert_eq!(all.servers, [HeldLive { host: "mem01".into(), bytes: 3 * G / 2, text: "1.50 GiB".into() }]);
        // Only the new points, their rate taken from the point before them.
        let new = super::stats(&stats, Some(1000)).unwrap();
        assert_eq!((new.t, new.faults_per_s), (vec![2.0], vec![100.0]));
        assert!(super::stats(&stats, Some(2000)).unwrap().t.is_empty());
        assert_eq!(super::stats(&JobStats::default(), None), None);
    }

    #[test]
    fn jobs_read_as_the_listing_shows_them() {
        let mut queued = job(JobState::Queued);
        queued.queue_position = Some(2);
        queued.reason = Some("no node has 32 GiB".into());
        assert_eq!(outcome(&queued), "position 2: no node has 32 GiB");
        assert_eq!(elapsed(&queued, 1012), "waiting for 12 s");
        assert_eq!((place(&queued), place_long(&queued)), ("-".into(), "not placed yet".into()));
        let mut done = job(JobState::Done);
        done.exit_code = Some(0);
        done.started = Some(1000);
        done.ended = Some(1000 + 3 * 3600 + 7 * 60 + 5);
        done.placement = Some(Placement {
            cluster: "osaka".into(),
            node: "node01".into(),
            through: Through::Pool,
            local_bytes: 8 * G,
            pool_bytes: 24 * G,
            local_ratio: 0.25,
            servers: vec!["mem01".into(), "mem02".into()],
        });
        assert_eq!(outcome(&done), "exit 0");
        assert_eq!(elapsed(&done, 99999), "3 h 07 min");
        assert_eq!(place_long(&done), "osaka/node01, pool: 8 GiB local, 24 GiB on mem01, mem02");
        assert_eq!((servers(&done), local_ratio(&done)), ("mem01, mem02".into(), "25%".into()));
        let mut failed = job(JobState::Failed);
        failed.reason = Some("dlmcc: error".into());
        assert_eq!((outcome(&failed), elapsed(&failed, 5000)), ("dlmcc: error".into(), "did not run".into()));
        assert_eq!(duration(185), "3 min 05 s");
    }

    #[test]
    fn clusters_print_their_sizes() {
        let status = WanStatus {
            clusters: vec![ClusterStatus {
                name: "osaka".into(),
                manager: "lan1:7450".into(),
                reach: Reach::Reachable,
                error: None,
                heard_ms_ago: Some(300),
                nodes: vec![NodeStatus {
                    host: "node01".into(),
                    cap_bytes: 16 * G,
                    free_bytes: 6 * G,
                    available_bytes: 12 * G,
                    loadavg: Some([0.5, 0.4, 0.3]),
                    cpus: 4,
                    busy: false,
                    jobs: 1,
                    error: None,
                }],
                servers: vec![ServerSummary {
                    host: "mem01".into(),
                    state: "up".into(),
                    cap_bytes: 16 * G,
                    available_bytes: 12 * G,
                    loadavg: None,
                }],
                pool_available_bytes: 12 * G,
                clients: 2,
                max_job_bytes: 32 * G,
            }],
            queue: vec![JobId(4), JobId(5)],
            since: 0,
        };
        let live = clusters(&status);
        assert_eq!(live.queued, 2);
        let c = &live.clusters[0];
        assert_eq!((c.reach, c.clients, c.pool_available.as_str()), ("reachable", 2, "12 GiB"));
        let n = &c.nodes[0];
        assert_eq!(
            (n.place.as_str(), n.available.as_str(), n.free.as_str(), n.load.as_str()),
            ("osaka/node01", "12 GiB", "6 GiB", "0.50 on 4 CPUs")
        );
        assert_eq!((c.servers[0].key.as_str(), c.servers[0].used.as_str()), ("osaka/mem01", "4 GiB of 16 GiB"));
    }
}
