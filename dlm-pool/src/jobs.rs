//! The jobs a cluster's manager runs on its compute nodes for DLM-WAN: their records, what
//! they reserve, and how each is shown. The steps that run one (`runner`) update these records.
//!
//! A job is created by `POST /v1/jobs` (`AwaitingFiles`), starts when its files come
//! (`PUT /v1/jobs/{id}/files`), and stays listed once final until the WAN manager deletes it
//! (it fetches the logs and outputs first). A job whose files never come is dropped after
//! [`FILES_DEADLINE`].

use crate::nodes::{Nodes, Reservation};
use crate::proto::{ClientId, NodeJobId, NodeJobState, NodeJobStatus, RunRequest, Status};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a created job waits for its files.
pub const FILES_DEADLINE: Duration = Duration::from_secs(60);

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
    created: Instant,
    /// Set to ask the runner to stop it.
    cancel: watch::Sender<bool>,
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

    /// Bytes the pool still owes jobs that have not joined it yet, and how many active jobs
    /// are not pool clients (both for the cluster's report).
    pub fn outside_pool(&self, pool: &Status) -> (u64, u32) {
        let joined = |id: &NodeJobId| pool.clients.iter().any(|c| c.job.as_deref() == Some(id.0.as_str()));
        let waiting: Vec<&NodeJob> = self.active().filter(|(id, _)| !joined(id)).map(|(_, j)| j).collect();
        (waiting.iter().map(|j| j.request.pool_bytes).sum(), waiting.len() as u32)
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
