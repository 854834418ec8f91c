//! The WAN manager's wire format (docs/API.md): every JSON body of its HTTP API. `dlm submit`,
//! `dlm jobs`, the web portal and the tests all speak it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The payload of the MUNGE credential every call over TCP carries.
pub const MUNGE_PAYLOAD: &str = dlm_pool::proto::MUNGE_PAYLOAD;

/// The WAN manager's TCP port when an address names none.
pub const DEFAULT_PORT: u16 = 7460;

/// The name of the job description inside a submitted bundle (a tar archive); every other
/// member is a file of the job (the program, its C sources, its inputs).
pub const JOB_MEMBER: &str = "job.json";

/// A job's id: a number counted by the WAN manager from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How the WAN manager chooses a cluster (docs/WAN.md, "Placement").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// A node where the program fits in local memory; else the best-fitting cluster's pool.
    #[default]
    LocalFirst,
    /// The cluster with the fewest DLM clients; ties fall back to local-first.
    Equalize,
}

/// How the program is made on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Program {
    /// `file` (a member of the bundle) is the executable: it runs as `./file`.
    Executable { file: String },
    /// `sources` (members of the bundle) are C files: `dlmcc -O2 CFLAGS… SOURCES… -o name` on
    /// the node builds `./name`.
    Dlmcc { sources: Vec<String>, cflags: Vec<String>, name: String },
}

/// `job.json` in a submitted bundle: what to run and with how much memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    pub program: Program,
    pub args: Vec<String>,
    /// All the memory the program needs (local and far), in bytes.
    pub memory_bytes: u64,
    #[serde(default)]
    pub mode: Mode,
    /// The account it runs as on the cluster; the caller's own name when absent. Only root may
    /// name another user.
    #[serde(default)]
    pub user: Option<String>,
    /// Members of the bundle that are inputs (placed beside the program).
    #[serde(default)]
    pub inputs: Vec<String>,
    /// Files the program writes (relative to its directory) that come back for `dlm fetch`.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Run on this cluster and compute node (the portal's Interactive mode) instead of where
    /// the mode's policy would choose.
    #[serde(default)]
    pub place: Option<Place>,
}

/// A cluster and one of its compute nodes, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    pub cluster: String,
    pub node: String,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a cluster to have the memory (first come, first served).
    Queued,
    /// Placed: its files are going to the node (and it is being built there).
    Staging,
    Running,
    /// It ran and exited (see `exit_code`; non-zero is still `done`: the program's own verdict).
    Done,
    /// It could not run or its cluster lost it: `reason` says why.
    Failed,
    Cancelled,
}

impl JobState {
    /// Done, failed or cancelled: nothing will change any more.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed | JobState::Cancelled)
    }
}

/// Whether a placed job pages to its cluster's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Through {
    /// All its memory is the node's own.
    LocalMemory,
    /// Its memory beyond `local_bytes` is on the cluster's memory servers.
    Pool,
}

/// Where a job was placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    pub cluster: String,
    pub node: String,
    pub through: Through,
    /// The program's local budget (`DLM_LOCAL_MEM`).
    pub local_bytes: u64,
    /// What its pool holds for it (0 in local memory).
    pub pool_bytes: u64,
    /// `local_bytes / memory_bytes`.
    pub local_ratio: f64,
    /// The memory-server hosts the pool gave it, once it joined.
    #[serde(default)]
    pub servers: Vec<String>,
}

/// A job as `GET /v1/jobs` and `GET /v1/jobs/{id}` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    pub id: JobId,
    pub user: String,
    pub uid: u32,
    pub state: JobState,
    /// Why it failed, or why it waits.
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    pub memory_bytes: u64,
    pub mode: Mode,
    /// The program's name and arguments, for listings.
    pub command: Vec<String>,
    pub outputs: Vec<String>,
    pub placement: Option<Placement>,
    /// Its place in the queue (1 = next) while queued.
    pub queue_position: Option<usize>,
    /// Seconds since the Unix epoch.
    pub submitted: u64,
    pub started: Option<u64>,
    pub ended: Option<u64>,
    /// Bytes of standard output and error kept so far.
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
}

/// Whether the WAN manager hears from a cluster's manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reach {
    /// Not asked yet (just started).
    Unknown,
    Reachable,
    /// Its last answers failed: jobs go elsewhere; `error` says what failed.
    Unreachable,
}

/// A compute node as the WAN manager last heard of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub host: String,
    pub cap_bytes: u64,
    /// What a job could have here judged by MemFree (smoothed, less what running jobs will still
    /// take, within the cap).
    pub free_bytes: u64,
    /// The same judged by MemFree + Inactive.
    pub available_bytes: u64,
    pub loadavg: Option<[f64; 3]>,
    pub cpus: u32,
    /// The node's 1-minute load per CPU is at or above the busy threshold.
    pub busy: bool,
    /// Jobs of the cluster's manager running there.
    pub jobs: u32,
    /// Why the node could not be sampled, if it could not.
    pub error: Option<String>,
}

/// A memory server of a cluster's pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSummary {
    pub host: String,
    /// `up`, `draining` or `down`.
    pub state: String,
    pub cap_bytes: u64,
    pub available_bytes: u64,
    pub loadavg: Option<[f64; 3]>,
}

/// One cluster in `GET /v1/clusters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub name: String,
    /// Its manager's address, from the HOSTCONF.
    pub manager: String,
    pub reach: Reach,
    pub error: Option<String>,
    /// Milliseconds since its manager last answered.
    pub heard_ms_ago: Option<u64>,
    pub nodes: Vec<NodeStatus>,
    pub servers: Vec<ServerSummary>,
    /// The pool's servers' available memory, summed.
    pub pool_available_bytes: u64,
    /// DLM clients there: its pool's programs and the jobs its manager runs.
    pub clients: u32,
    /// The most one job could ever get there: the largest node cap plus every server's cap.
    pub max_job_bytes: u64,
}

/// `GET /v1/clusters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WanStatus {
    pub clusters: Vec<ClusterStatus>,
    /// Jobs waiting, in order.
    pub queue: Vec<JobId>,
    /// Seconds since the Unix epoch when the WAN manager started.
    pub since: u64,
}

/// `POST /v1/admin/down`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DownRequest {
    /// Stop even though jobs are queued or running (they are cancelled).
    #[serde(default)]
    pub force: bool,
}

/// The body of every error reply.
pub use dlm_pool::proto::ErrorBody;

/// One sample of a running DLM program's paging statistics (`GET /v1/jobs/{id}/stats`), as
/// its runtime writes them every half second (`DLM_STATS_LIVE`) and its cluster's manager
/// reads them on each sample of the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatSample {
    /// Milliseconds since the program started.
    pub t_ms: u64,
    /// Bytes of DLM pages resident in the program, and its local budget.
    pub resident_bytes: u64,
    pub local_budget_bytes: u64,
    /// Counters since the start.
    pub faults: u64,
    pub bytes_fetched: u64,
    pub bytes_written_back: u64,
    /// Bytes of the program's pages each memory server holds.
    pub servers: Vec<ServerHeld>,
}

/// What one memory server holds for a program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHeld {
    pub host: String,
    pub bytes: u64,
}

impl From<dlm_pool::proto::StatLine> for StatSample {
    fn from(line: dlm_pool::proto::StatLine) -> Self {
        StatSample {
            t_ms: line.t_ms,
            resident_bytes: line.resident_bytes,
            local_budget_bytes: line.local_budget_bytes,
            faults: line.faults,
            bytes_fetched: line.bytes_fetched,
            bytes_written_back: line.bytes_written_back,
            servers: line.servers.into_iter().map(|s| ServerHeld { host: s.host, bytes: s.bytes }).collect(),
        }
    }
}

/// `GET /v1/jobs/{id}/stats`: the samples so far, oldest first (none for a program that is
/// not a DLM program, or before its first). A long job's older samples are thinned out (every
/// other one goes each time the WAN manager holds too many); its spool keeps them all.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JobStats {
    pub samples: Vec<StatSample>,
}
