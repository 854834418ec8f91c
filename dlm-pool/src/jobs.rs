//! The jobs a cluster's manager runs on its compute nodes for DLM-WAN: their records, what
//! they reserve, and how each is shown. The steps that run one (`runner`) update these records.
//!
//! A job is created by `POST /v1/jobs` (`AwaitingFiles`), starts when its files come
//! (`PUT /v1/jobs/{id}/files`), and stays listed once final until the WAN manager deletes it
//! (it fetches the logs and outputs first). A job whose files never come is dropped after
//! [`FILES_DEADLINE`].
//!
//! A DLM program's live statistics (`DLM_STATS_LIVE`, [`LIVE_STATS`] in the job's directory)
//! come with each sample of its node, one line per sample, and a last one when it ends; each
//! job keeps the newest [`MAX_SAMPLES`] for `GET /v1/jobs/{id}/stats`.

use crate::nodes::{Nodes, Reservation};
use crate::proto::{ClientId, NodeJobId, NodeJobState, NodeJobStatus, RunRequest, StatLine, Status};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a created job waits for its files.
pub const FILES_DEADLINE: Duration = Duration::from_secs(60);

/// The live statistics' file in a job's directory on its node (its `DLM_STATS_LIVE`).
pub const LIVE_STATS: &str = "stats.jsonl";

/// The most samples of live statistics kept per job (at about one a second, an hour): older
/// ones go first. DLM-WAN copies them as they come.
pub const MAX_SAMPLES: usize = 3600;

/// Why a job was refused.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{0} is not a compute node of this cluster (a `compute HOST SIZE` line of its POOLCONF)")]
    NotANode(String),
    #[error("the job runs nothing: give its command")]
    NoCommand,
    #[error("this cluster's manager runs as {manager} and can run jobs only as that user (or as anyone when it runs as root), not as {user}")]
    OtherUser { manager: String, user: String },
    #[error("user name `{0}` is not a plain account name")]
    BadUser(String),
    #[error("the job pages to the pool, but this manager has no TCP address its programs can reach; start it with `dlm pool up` (which gives one)")]
    NoPoolAddress,
    #[error("no job {0} here")]
    Unknown(NodeJobId),
    #[error("job {0} has its files already")]
    FilesTwice(NodeJobId),
    #[error("job {id} is {state:?}; its outputs come when it has ended")]
    NotEnded { id: NodeJobId, state: NodeJobState },
    #[error("cannot keep job {id}'s logs in {path}: {source}")]
    Spool { id: NodeJobId, path: PathBuf, source: std::io::Error },
    #[error("cannot read random bytes for a job id: {0}")]
    Entropy(std::io::Error),
}

/// One job.
#[derive(Debug)]
pub struct NodeJob {
    pub request: RunRequest,
    pub state: NodeJobState,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub missing_outputs: Vec<String>,
    /// Its directory on the node.
    pub dir: String,
    /// Its logs and outputs here.
    pub spool: PathBuf,
    /// The pool client it joined as, and the server hosts it had, as last seen (kept after it
    /// leaves the pool, for the job's record).
    client: Option<ClientId>,
    servers: Vec<String>,
    /// Its live statistics so far.
    pub samples: Samples,
    created: Instant,
    /// Set to ask the runner to stop it.
    cancel: watch::Sender<bool>,
}

/// A job's samples of live statistics, numbered from 0 in the order they came; only the
/// newest [`MAX_SAMPLES`] are kept, the numbers go on.
#[derive(Debug, Default)]
pub struct Samples {
    /// The number of the oldest one kept.
    first: u64,
    kept: VecDeque<StatLine>,
}

impl Samples {
    /// Keeps the lines of `read` (the newest lines of the file, oldest first) that come after
    /// the last one kept: each sample of the node reads the file's last lines, most of which
    /// the one before read too. A job that runs several DLM programs one after another has
    /// each one's lines, `t_ms` starting again with each.
    pub fn extend(&mut self, read: Vec<StatLine>) {
        let seen = self.kept.back().and_then(|last| read.iter().rposition(|line| line == last));
        let new = seen.map_or(0, |i| i + 1);
        for line in read.into_iter().skip(new) {
            self.push(line);
        }
    }

    fn push(&mut self, line: StatLine) {
        self.kept.push_back(line);
        if self.kept.len() > MAX_SAMPLES {
            self.kept.pop_front();
            self.first += 1;
        }
    }

    /// The samples numbered `from` and after (of those still kept).
    pub fn from(&self, from: u64) -> Vec<StatLine> {
        let skip = from.saturating_sub(self.first).try_into().unwrap_or(usize::MAX);
        self.kept.iter().skip(skip).cloned().collect()
    }
}

/// The manager's jobs.
#[derive(Debug)]
pub struct NodeJobs {
    jobs: BTreeMap<NodeJobId, NodeJob>,
    spool: PathBuf,
    /// The user the manager runs as, and whether it is root (then jobs may run as anyone).
    own_user: String,
    root: bool,
}

impl NodeJobs {
    pub fn new(spool: PathBuf, own_user: String, root: bool) -> Self {
        NodeJobs { jobs: BTreeMap::new(), spool, own_user, root }
    }

    /// Records a job after checking what it asks; it waits for its files.
    pub fn create(
        &mut self,
        request: RunRequest,
        nodes: &Nodes,
        pool_address: Option<&str>,
        now: Instant,
    ) -> Result<NodeJobId, JobError> {
        if !nodes.contains(&request.node) {
            return Err(JobError::NotANode(request.node));
        }
        if request.command.is_empty() {
            return Err(JobError::NoCommand);
        }
        self.check_user(&request.user)?;
        if request.pool_bytes > 0 && pool_address.is_none() {
            return Err(JobError::NoPoolAddress);
        }
        let id = NodeJobId(crate::state::random_hex(8).map_err(JobError::Entropy)?);
        let spool = self.spool.join(&id.0);
        std::fs::create_dir_all(&spool).map_err(|source| JobError::Spool {
            id: id.clone(),
            path: spool.clone(),
            source,
        })?;
        let job = NodeJob {
            dir: format!("/tmp/dlm-job-{id}"),
            request,
            state: NodeJobState::AwaitingFiles,
            exit_code: None,
            reason: None,
            missing_outputs: Vec::new(),
            spool,
            client: None,
            servers: Vec::new(),
            samples: Samples::default(),
            created: now,
            cancel: watch::channel(false).0,
        };
        self.jobs.insert(id.clone(), job);
        Ok(id)
    }

    fn check_user(&self, user: &str) -> Result<(), JobError> {
        let plain = !user.is_empty() && user.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !plain || user.starts_with('-') {
            return Err(JobError::BadUser(user.to_string()));
        }
        if !self.root && user != self.own_user {
            return Err(JobError::OtherUser { manager: self.own_user.clone(), user: user.to_string() });
        }
        Ok(())
    }

    /// Whether the manager runs jobs as another user through `runuser`.
    pub fn switches_user(&self, user: &str) -> bool {
        self.root && user != self.own_user
    }

    pub fn get(&self, id: &NodeJobId) -> Result<&NodeJob, JobError> {
        self.jobs.get(id).ok_or_else(|| JobError::Unknown(id.clone()))
    }

    pub fn get_mut(&mut self, id: &NodeJobId) -> Result<&mut NodeJob, JobError> {
        self.jobs.get_mut(id).ok_or_else(|| JobError::Unknown(id.clone()))
    }

    /// Marks the job's files as come (it is staged next) and gives the runner its cancel flag.
    pub fn start(&mut self, id: &NodeJobId) -> Result<watch::Receiver<bool>, JobError> {
        let job = self.get_mut(id)?;
        if job.state != NodeJobState::AwaitingFiles {
            return Err(JobError::FilesTwice(id.clone()));
        }
        job.state = NodeJobState::Staging;
        Ok(job.cancel.subscribe())
    }

    /// Asks the runner to stop the job (a job still waiting for files ends at once).
    pub fn cancel(&mut self, id: &NodeJobId) -> Result<(), JobError> {
        let job = self.get_mut(id)?;
        if job.state == NodeJobState::AwaitingFiles {
            job.state = NodeJobState::Cancelled;
            job.reason = Some("cancelled before it started".into());
        }
        job.cancel.send_replace(true);
        Ok(())
    }

    /// Forgets a job and its logs here; a job still running is cancelled first.
    pub fn remove(&mut self, id: &NodeJobId) -> Result<(), JobError> {
        self.cancel(id)?;
        if let Some(job) = self.jobs.remove(id) {
            let _ = std::fs::remove_dir_all(&job.spool);
        }
        Ok(())
    }

    /// Drops jobs whose files never came.
    pub fn expire(&mut self, now: Instant) {
        let late: Vec<NodeJobId> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.state == NodeJobState::AwaitingFiles && now.duration_since(j.created) >= FILES_DEADLINE)
            .map(|(id, _)| id.clone())
            .collect();
        for id in late {
            let _ = self.remove(&id);
        }
    }

    /// What the jobs not yet ended hold on their nodes.
    pub fn reservations(&self) -> Vec<Reservation> {
        self.active()
            .map(|(id, j)| Reservation {
                job: id.clone(),
                node: j.request.node.clone(),
                local_bytes: j.request.local_bytes,
            })
            .collect()
    }

    /// The jobs not yet ended.
    pub fn active(&self) -> impl Iterator<Item = (&NodeJobId, &NodeJob)> {
        self.jobs.iter().filter(|(_, j)| !j.state.is_final())
    }

    /// The running jobs on `node` and their directories (the node's sample reads their size).
    pub fn running_on(&self, node: &str) -> Vec<(NodeJobId, String)> {
        self.active().filter(|(_, j)| j.request.node == node).map(|(id, j)| (id.clone(), j.dir.clone())).collect()
    }

    /// The nodes where programs run now (their live statistics come with each sample).
    pub fn running_nodes(&self) -> BTreeSet<String> {
        let running = self.jobs.values().filter(|j| j.state == NodeJobState::Running);
        running.map(|j| j.request.node.clone()).collect()
    }

    /// Keeps the lines of live statistics a node's sample read (oldest first), of the jobs not
    /// yet ended.
    pub fn record_stats(&mut self, lines: BTreeMap<NodeJobId, Vec<StatLine>>) {
        for (id, lines) in lines {
            if let Some(job) = self.jobs.get_mut(&id).filter(|j| !j.state.is_final()) {
                job.samples.extend(lines);
            }
        }
    }

    /// Job `id`'s samples from number `from` on.
    pub fn stats(&self, id: &NodeJobId, from: u64) -> Result<Vec<StatLine>, JobError> {
        Ok(self.get(id)?.samples.from(from))
    }

    /// Bytes the pool still owes jobs that have not joined it yet, and how many active jobs
    /// are not pool clients (both for the cluster's report).
    pub fn outside_pool(&self, pool: &Status) -> (u64, u32) {
        let joined = |id: &NodeJobId| pool.clients.iter().any(|c| c.job.as_deref() == Some(id.0.as_str()));
        let waiting: Vec<&NodeJob> = self.active().filter(|(id, _)| !joined(id)).map(|(_, j)| j).collect();
        (waiting.iter().map(|j| j.request.pool_bytes).sum(), waiting.len() as u32)
    }

    /// Notes the pool client that job `id` just became and the servers it was given, at its
    /// join: a short program can join and leave between two of the monitor's turns, and its
    /// record must still say where its pages were.
    pub fn note_join(&mut self, id: &NodeJobId, client: &ClientId, hosts: Vec<String>) {
        if let Some(job) = self.jobs.get_mut(id).filter(|j| !j.state.is_final()) {
            job.client = Some(client.clone());
            job.servers = hosts;
        }
    }

    /// Notes which pool client each running job is and where its pages are.
    pub fn note_clients(&mut self, pool: &Status) {
        for (id, job) in self.jobs.iter_mut().filter(|(_, j)| !j.state.is_final()) {
            if let Some(client) = pool.clients.iter().find(|c| c.job.as_deref() == Some(id.0.as_str())) {
                job.client = Some(client.id.clone());
                job.servers = client.bytes.iter().map(|b| b.host.clone()).collect();
            }
        }
    }

    /// The job as `GET /v1/jobs/{id}` shows it.
    pub fn status(&self, id: &NodeJobId, pool: &Status) -> Result<NodeJobStatus, JobError> {
        let job = self.get(id)?;
        let client = pool.clients.iter().find(|c| c.job.as_deref() == Some(id.0.as_str()));
        let servers = match client {
            Some(client) => client.bytes.iter().map(|b| b.host.clone()).collect(),
            None => job.servers.clone(),
        };
        Ok(NodeJobStatus {
            id: id.clone(),
            node: job.request.node.clone(),
            user: job.request.user.clone(),
            state: job.state,
            exit_code: job.exit_code,
            reason: job.reason.clone(),
            local_bytes: job.request.local_bytes,
            pool_bytes: job.request.pool_bytes,
            client: client.map(|c| c.id.clone()).or_else(|| job.client.clone()),
            servers,
            stdout_bytes: file_len(&job.spool.join(STDOUT)),
            stderr_bytes: file_len(&job.spool.join(STDERR)),
            missing_outputs: job.missing_outputs.clone(),
        })
    }
}

/// The spool's file names for a job's streams and outputs.
pub const STDOUT: &str = "stdout";
pub const STDERR: &str = "stderr";
pub const OUTPUTS: &str = "outputs.tar";

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(t_ms: u64) -> StatLine {
        StatLine {
            t_ms,
            resident_bytes: 0,
            local_budget_bytes: 1,
            faults: t_ms,
            bytes_fetched: 0,
            bytes_written_back: 0,
            servers: Vec::new(),
        }
    }

    fn times(lines: &[StatLine]) -> Vec<u64> {
        lines.iter().map(|l| l.t_ms).collect()
    }

    #[test]
    fn lines_read_again_are_kept_once_and_numbers_count_from_the_first() {
        let mut samples = Samples::default();
        for read in [vec![0], vec![0, 500], vec![0, 500], vec![500, 1000, 1500], vec![1500]] {
            samples.extend(read.into_iter().map(line).collect());
        }
        assert_eq!(times(&samples.from(0)), [0, 500, 1000, 1500]);
        assert_eq!(times(&samples.from(2)), [1000, 1500]);
        assert!(samples.from(4).is_empty() && samples.from(99).is_empty());
        // A second program in the same job starts its clock again, even with a line equal to
        // one of the first program's.
        samples.extend(vec![line(1500), line(0), line(500)]);
        assert_eq!(times(&samples.from(4)), [0, 500]);
    }

    #[test]
    fn only_the_newest_samples_are_kept_and_their_numbers_stay() {
        let mut samples = Samples::default();
        for t in 0..MAX_SAMPLES as u64 + 10 {
            samples.push(line(t));
        }
        assert_eq!(samples.from(0).len(), MAX_SAMPLES);
        assert_eq!(samples.from(0)[0].t_ms, 10);
        assert_eq!(times(&samples.from(MAX_SAMPLES as u64 + 8)), [MAX_SAMPLES as u64 + 8, MAX_SAMPLES as u64 + 9]);
    }
}
