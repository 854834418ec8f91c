//! The WAN manager's records: each cluster as its manager last reported it, and every job
//! with its place in the queue. The tasks in `api` change them; the status routes read them.

use crate::hostconf::{ClusterLine, HostConf};
use crate::policy::{self, ClusterView, Decision, NodeView};
use crate::proto::{
    ClusterStatus, JobId, JobSpec, JobState, JobStatus, NodeStatus, Place, Placement, Program, Reach, ServerSummary,
    StatSample,
};
use dlm_pool::proto::{ClusterReport, NodeJobId};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

/// One cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub line: ClusterLine,
    pub reach: Reach,
    pub error: Option<String>,
    pub heard: Option<Instant>,
    /// Its last report (kept while it is unreachable: its caps still bound what could ever fit).
    pub report: Option<ClusterReport>,
}

/// Who submitted a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub user: String,
}

/// One job.
#[derive(Debug, Clone)]
pub struct Job {
    pub owner: Owner,
    /// The account it runs as on the cluster.
    pub run_as: String,
    pub spec: JobSpec,
    pub state: JobState,
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    pub placement: Option<Placement>,
    /// The cluster (index) and its manager's id for the job, once placed.
    pub on: Option<(usize, NodeJobId)>,
    pub submitted: u64,
    pub started: Option<u64>,
    pub ended: Option<u64>,
    /// Its bundle, logs and outputs here.
    pub spool: PathBuf,
    /// Set by a cancel the follower has not passed on yet.
    pub cancel_asked: bool,
    /// Its live statistics, as its follower copied them from its cluster.
    pub stats: Samples,
}

/// The most samples of live statistics a job keeps in memory (at about one a second, an hour
/// of full detail): past it, every other one goes, so a long job keeps its whole run at a
/// coarser step. The spool's `stats.jsonl` keeps every one.
pub const MAX_SAMPLES: usize = 3600;

/// A job's samples of live statistics.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// Oldest first.
    pub kept: Vec<StatSample>,
    /// How many its cluster has given so far: the number of the next one to ask for.
    pub taken: u64,
}

impl Samples {
    /// Keeps the samples just copied from the cluster (thinning the older ones if need be).
    pub fn add(&mut self, samples: Vec<StatSample>) {
        self.taken += samples.len() as u64;
        self.kept.extend(samples);
        if self.kept.len() > MAX_SAMPLES {
            let last = self.kept.len() - 1;
            let mut index = 0;
            self.kept.retain(|_| {
                index += 1;
                index % 2 == 1 || index - 1 == last
            });
        }
    }
}

/// The spool's file names for a job.
pub const BUNDLE: &str = "bundle.tar";
pub const OUTPUTS: &str = "outputs.tar";
/// Its live statistics, one JSON `StatSample` a line.
pub const STATS: &str = "stats.jsonl";

/// Everything the WAN manager knows.
#[derive(Debug)]
pub struct Wan {
    pub clusters: Vec<Cluster>,
    pub jobs: BTreeMap<JobId, Job>,
    pub queue: VecDeque<JobId>,
    next_id: u64,
    pub since: u64,
}

impl Wan {
    pub fn new(hostconf: &HostConf) -> Self {
        let clusters = hostconf
            .clusters
            .iter()
            .map(|line| Cluster { line: line.clone(), reach: Reach::Unknown, error: None, heard: None, report: None })
            .collect();
        Wan { clusters, jobs: BTreeMap::new(), queue: VecDeque::new(), next_id: 1, since: unix_seconds() }
    }

    pub fn next_id(&mut self) -> JobId {
        let id = JobId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Notes a cluster's answer (or why it gave none).
    pub fn heard(&mut self, index: usize, answer: Result<ClusterReport, String>, now: Instant) {
        let cluster = &mut self.clusters[index];
        match answer {
            Ok(report) => {
                cluster.reach = Reach::Reachable;
                cluster.error = None;
                cluster.heard = Some(now);
                cluster.report = Some(report);
            }
            Err(error) => {
                cluster.reach = Reach::Unreachable;
                cluster.error = Some(error);
            }
        }
    }

    /// The reachable clusters as the policies see them, with their indices.
    pub fn views(&self) -> (Vec<ClusterView>, Vec<usize>) {
        let reachable = self.clusters.iter().enumerate().filter(|(_, c)| c.reach == Reach::Reachable);
        reachable.filter_map(|(i, c)| Some((view(c, c.report.as_ref()?), i))).unzip()
    }

    /// What the policy says for the job at the head of the queue (with the cluster indices).
    /// A job placed by its user waits while its cluster is unreachable or its node unsampled.
    pub fn decide_head(&self) -> Option<(JobId, Decision, Vec<usize>)> {
        let id = *self.queue.front()?;
        let job = &self.jobs[&id];
        let (views, indices) = self.views();
        let memory = job.spec.memory_bytes;
        let decision = match &job.spec.place {
            None => policy::decide(&views, memory, job.spec.mode),
            Some(place) => {
                let cluster = views.iter().position(|v| v.name == place.cluster);
                let node = cluster.and_then(|c| views[c].nodes.iter().position(|n| n.host == place.node));
                match (cluster, node) {
                    (Some(c), Some(n)) => policy::decide_on(&views, c, n, memory),
                    _ => Decision::Wait,
                }
            }
        };
        Some((id, decision, indices))
    }

    /// Why a user's chosen place cannot be: an unknown cluster, or a node its report does not
    /// list, or more memory than the node and its pool could ever give.
    pub fn check_place(&self, place: &Place, memory_bytes: u64) -> Result<(), String> {
        let Some(cluster) = self.clusters.iter().find(|c| c.line.name == place.cluster) else {
            let names: Vec<&str> = self.clusters.iter().map(|c| c.line.name.as_str()).collect();
            return Err(format!("no cluster {} (the clusters are {})", place.cluster, names.join(", ")));
        };
        let Some(report) = &cluster.report else { return Ok(()) };
        let Some(node) = report.nodes.iter().find(|n| n.host == place.node) else {
            let names: Vec<&str> = report.nodes.iter().map(|n| n.host.as_str()).collect();
            return Err(format!(
                "cluster {} has no compute node {} (it has {})",
                place.cluster,
                place.node,
                names.join(", ")
            ));
        };
        let largest = node.cap_bytes + view(cluster, report).pool_cap_bytes;
        if memory_bytes > largest {
            return Err(format!(
                "it asks for {} and {}/{} could ever give one job {}",
                dlm_units::Bytes(memory_bytes),
                place.cluster,
                place.node,
                dlm_units::Bytes(largest)
            ));
        }
        Ok(())
    }

    /// The most one job could ever get, from every cluster that has ever reported; `None`
    /// before any has.
    pub fn largest_job_bytes(&self) -> Option<u64> {
        let views: Vec<ClusterView> = self.clusters.iter().filter_map(|c| Some(view(c, c.report.as_ref()?))).collect();
        (!views.is_empty()).then(|| policy::largest_job_bytes(&views))
    }

    /// Ends a job (not the queue's: a queued job leaves the queue too).
    pub fn finish(&mut self, id: JobId, state: JobState, reason: Option<String>) {
        self.queue.retain(|q| *q != id);
        if let Some(job) = self.jobs.get_mut(&id) {
            if !job.state.is_final() {
                job.state = state;
                job.reason = reason;
                job.ended = Some(unix_seconds());
            }
        }
    }

    pub fn status(&self, now: Instant) -> Vec<ClusterStatus> {
        self.clusters.iter().map(|c| cluster_status(c, now)).collect()
    }

    pub fn job_status(&self, id: JobId) -> Option<JobStatus> {
        let job = self.jobs.get(&id)?;
        let position = self.queue.iter().position(|q| *q == id).map(|p| p + 1);
        let len = |name: &str| std::fs::metadata(job.spool.join(name)).map_or(0, |m| m.len());
        Some(JobStatus {
            id,
            user: job.owner.user.clone(),
            uid: job.owner.uid,
            state: job.state,
            reason: job.reason.clone(),
            exit_code: job.exit_code,
            memory_bytes: job.spec.memory_bytes,
            mode: job.spec.mode,
            command: command_of(&job.spec),
            outputs: job.spec.outputs.clone(),
            placement: job.placement.clone(),
            queue_position: position,
            submitted: job.submitted,
            started: job.started,
            ended: job.ended,
            stdout_bytes: len("stdout"),
            stderr_bytes: len("stderr"),
        })
    }
}

/// A cluster's report as the policies see it: nodes that could be sampled, the pool's up
/// servers.
fn view(cluster: &Cluster, report: &ClusterReport) -> ClusterView {
    let nodes = report
        .nodes
        .iter()
        .filter(|n| n.error.is_none())
        .map(|n| NodeView {
            host: n.host.clone(),
            cap_bytes: n.cap_bytes,
            free_bytes: n.free_bytes,
            available_bytes: n.available_bytes,
            load1: n.loadavg.map_or(0.0, |l| l[0]),
            cpus: n.cpus,
        })
        .collect();
    ClusterView {
        name: cluster.line.name.clone(),
        nodes,
        pool_available_bytes: report.pool_available_bytes,
        // Every server of its POOLCONF, up or not: this bounds what it could ever give.
        pool_cap_bytes: report.servers.iter().map(|s| s.cap_bytes).sum(),
        clients: report.clients,
    }
}

fn cluster_status(cluster: &Cluster, now: Instant) -> ClusterStatus {
    let report = cluster.report.as_ref();
    let nodes = report.map(|r| r.nodes.iter().map(node_status).collect()).unwrap_or_default();
    let servers = report
        .map(|r| {
            r.servers
                .iter()
                .map(|s| ServerSummary {
                    host: s.host.clone(),
                    state: serde_json::to_value(s.state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    cap_bytes: s.cap_bytes,
                    available_bytes: s.available_bytes,
                    loadavg: s.loadavg,
                })
                .collect()
        })
        .unwrap_or_default();
    ClusterStatus {
        name: cluster.line.name.clone(),
        manager: cluster.line.manager.clone(),
        reach: cluster.reach,
        error: cluster.error.clone(),
        heard_ms_ago: cluster.heard.map(|t| now.duration_since(t).as_millis().try_into().unwrap_or(u64::MAX)),
        nodes,
        servers,
        pool_available_bytes: report.map_or(0, |r| r.pool_available_bytes),
        clients: report.map_or(0, |r| r.clients),
        max_job_bytes: report.map_or(0, |r| view(cluster, r).max_job_bytes()),
    }
}

fn node_status(node: &dlm_pool::proto::NodeReport) -> NodeStatus {
    let view = NodeView {
        host: node.host.clone(),
        cap_bytes: node.cap_bytes,
        free_bytes: node.free_bytes,
        available_bytes: node.available_bytes,
        load1: node.loadavg.map_or(0.0, |l| l[0]),
        cpus: node.cpus,
    };
    NodeStatus {
        host: node.host.clone(),
        cap_bytes: node.cap_bytes,
        free_bytes: node.free_bytes,
        available_bytes: node.available_bytes,
        loadavg: node.loadavg,
        cpus: node.cpus,
        busy: view.busy(),
        jobs: node.jobs,
        error: node.error.clone(),
    }
}

/// The program's name and arguments, for listings.
pub fn command_of(spec: &JobSpec) -> Vec<String> {
    let program = match &spec.program {
        Program::Executable { file } => file.clone(),
        Program::Dlmcc { sources, .. } => sources.join(" "),
    };
    std::iter::once(program).chain(spec.args.iter().cloned()).collect()
}

pub fn unix_seconds() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_ms: u64) -> StatSample {
        StatSample {
            t_ms,
            resident_bytes: 0,
            local_budget_bytes: 0,
            faults: 0,
            bytes_fetched: t_ms,
            bytes_written_back: 0,
            servers: Vec::new(),
        }
    }

    #[test]
    fn samples_count_what_was_taken_and_a_long_run_is_thinned_keeping_both_ends() {
        let mut samples = Samples::default();
        samples.add((0..3).map(sample).collect());
        samples.add(Vec::new());
        assert_eq!((samples.kept.len(), samples.taken), (3, 3));
        samples.add((3..MAX_SAMPLES as u64 + 1).map(sample).collect());
        assert_eq!(samples.taken, MAX_SAMPLES as u64 + 1);
        assert_eq!(samples.kept.len(), MAX_SAMPLES / 2 + 1);
        let times: Vec<u64> = samples.kept.iter().map(|s| s.t_ms).collect();
        assert_eq!((times[0], times[1], *times.last().unwrap()), (0, 2, MAX_SAMPLES as u64));
        assert!(times.windows(2).all(|w| w[0] < w[1]));
    }
}
