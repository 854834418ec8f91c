//! The manager's wire format: every request and reply body of the HTTP API, as JSON, and the
//! ids they use. The manager (`api`), the blocking client (`client`) and, later, the resident
//! servers and the runtime share these types, so both ends always agree.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The payload every DLM pool credential carries (`munge -s dlm-pool`): the manager refuses a
/// credential made for another service.
pub const MUNGE_PAYLOAD: &str = "dlm-pool";

/// The scheme of the `Authorization` header over TCP: `Authorization: MUNGE <credential>`.
pub const MUNGE_SCHEME: &str = "MUNGE";

/// A server's id: the index of its line among the POOLCONF's server lines, so it is the same
/// after the manager restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServerId(pub u32);

/// A client's id: 16 random hex digits. Random rather than counted so that a restarted manager
/// never hands out an id that a running client (known to the servers) already has; a string so
/// that JSON readers with only doubles (jq, JavaScript) keep every digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientId(pub String);

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a server is in its life in the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    /// Registered and reporting: takes new clients.
    Up,
    /// Takes no new clients; its clients move their pages elsewhere, then it leaves.
    Draining,
    /// Not in the pool: see [`DownReason`].
    Down,
}

/// Why a server is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownReason {
    /// Its POOLCONF line has had no server register yet (since the manager started).
    NotRegistered,
    /// It stopped reporting: it died, or its host or network did.
    Silent,
    /// It was drained and holds nothing more.
    Drained,
    /// The pool is stopping (`dlm pool down`).
    Stopping,
}

/// Bytes a client holds (or is to hold) on one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub server: ServerId,
    pub bytes: u64,
}

/// `POST /v1/clients`: a program asks for memory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    /// Bytes the program wants paged to the pool.
    pub bytes: u64,
    /// The program's page size: every share is a multiple of it (default 4096).
    #[serde(default)]
    pub page_bytes: Option<u64>,
    /// The program's pid. Over the Unix socket the manager takes the pid from the socket's
    /// peer credentials instead; over TCP this is shown in the status but trusted for nothing.
    #[serde(default)]
    pub pid: Option<u32>,
    /// The cluster manager's job this program is (`DLM_JOB`, set when the manager started it
    /// for DLM-WAN): the manager matches its jobs to their clients by it. Trusted for nothing.
    #[serde(default)]
    pub job: Option<String>,
}

/// One share of an assignment: a server, how to reach it and the bytes it holds for the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub server: ServerId,
    pub host: String,
    /// The server's opaque endpoint (its MPI port name), as it registered it.
    pub endpoint: String,
    pub bytes: u64,
}

/// The reply to a join: where the client's pages go, and its lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Assignment {
    pub client: ClientId,
    /// The lease's secret: renewals and leaves must carry it; servers admit the client with it.
    pub lease: String,
    /// Renew before this many milliseconds pass, or the lease expires and the pages are freed.
    pub lease_ms: u64,
    pub shares: Vec<Share>,
    /// The MPI rendezvous (the ompi-server URI, `ID;tcp://ADDR:PORT;…`): the runtime puts it in
    /// `OMPI_MCA_pmix_server_uri` before `MPI_Init`, so that it can `MPI_Comm_connect` to the
    /// shares' endpoints (two separately started Open MPI jobs meet only through it).
    pub rendezvous: String,
}

/// `POST /v1/clients/{id}/renew` and `/leave`: the lease's secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseRequest {
    pub lease: String,
}

/// The reply to a renewal: the lease's new term and anything the client must act on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Renewed {
    pub lease_ms: u64,
    /// Servers that hold some of the client's pages and are down: the client must end, naming
    /// them.
    pub lost: Vec<Lost>,
    /// Pages the client must move (a server is draining): copy `from`'s pages to the shares in
    /// `to`, then call `POST /v1/clients/{id}/moved`.
    pub moves: Vec<Move>,
}

/// A server a client had pages on and that is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lost {
    pub server: ServerId,
    pub host: String,
    pub reason: DownReason,
}

/// Pages to move off a draining server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    pub from: ServerId,
    pub to: Vec<Share>,
}

/// `POST /v1/clients/{id}/moved`: the client no longer holds anything on `from`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MovedRequest {
    pub lease: String,
    pub from: ServerId,
}

/// `POST /v1/servers`: a resident server joins the pool (also after a manager restart).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterRequest {
    pub host: String,
    pub pid: u32,
    /// The most the server itself will hold; the manager uses the lesser of this and the
    /// POOLCONF's cap.
    pub cap_bytes: u64,
    /// Opaque to the manager: handed to clients so they can connect (an MPI port name).
    pub endpoint: String,
    /// The id the server had before (it re-registers after a manager restart): the manager
    /// gives it the same POOLCONF line back if that line is free.
    #[serde(default)]
    pub server: Option<ServerId>,
}

/// The reply to a registration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registered {
    pub server: ServerId,
    pub cap_bytes: u64,
    /// Report at least this often; a server silent for a few periods is marked down.
    pub report_ms: u64,
}

/// One host sample: memory the host could give and its load average.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HostSample {
    /// `MemFree` of `/proc/meminfo`, in bytes.
    pub mem_free_bytes: u64,
    /// `Inactive` of `/proc/meminfo`, in bytes.
    pub inactive_bytes: u64,
    /// `/proc/loadavg`: 1, 5 and 15 minutes.
    pub loadavg: [f64; 3],
}

/// `POST /v1/servers/{id}/report`: a server's periodic report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub pid: u32,
    pub host: HostSample,
    /// Every client the server holds pages for: what a restarted manager rebuilds from.
    pub clients: Vec<HeldClient>,
}

/// A client as a server knows it: the record the manager sent it, plus what it really holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldClient {
    #[serde(flatten)]
    pub client: ValidClient,
    /// Bytes of pages the server holds for the client now (at most `granted_bytes`).
    pub held_bytes: u64,
}

/// A client a server must serve: whom to admit and how much it may store there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidClient {
    pub client: ClientId,
    /// The lease's secret, which the client presents when it connects.
    pub lease: String,
    pub uid: u32,
    pub user: String,
    pub host: String,
    pub pid: u32,
    /// Seconds since the Unix epoch when the client joined.
    pub since: u64,
    /// Bytes the manager granted the client on this server.
    pub granted_bytes: u64,
}

/// The reply to a report: the server's state and the clients it must serve. A client the server
/// holds pages for and that is not in `clients` has ended: free its pages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportReply {
    /// `down` tells the server to leave the pool (drained, or the pool is stopping).
    pub state: ServerState,
    pub clients: Vec<ValidClient>,
}

/// `POST /v1/admin/drain`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrainRequest {
    pub host: String,
}

/// The reply to a drain: the servers now draining and the clients told to move.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Drained {
    pub servers: Vec<ServerId>,
    pub clients: Vec<ClientId>,
}

/// `POST /v1/admin/down`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DownRequest {
    #[serde(default)]
    pub force: bool,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// `rebuilding` for a while after the manager starts (accounting comes back from the
    /// servers' reports; joins wait), then `serving`; `stopping` after `dlm pool down`.
    pub phase: Phase,
    pub servers: Vec<ServerStatus>,
    pub clients: Vec<ClientStatus>,
    /// The MPI rendezvous handed to clients (the ompi-server URI); `null` when the manager was
    /// started alone (`dlm pool manager`), which then refuses joins.
    #[serde(default)]
    pub rendezvous: Option<String>,
}

/// The manager's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Rebuilding,
    Serving,
    Stopping,
}

/// One server in the status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerStatus {
    pub id: ServerId,
    pub host: String,
    pub pid: Option<u32>,
    pub endpoint: Option<String>,
    pub state: ServerState,
    pub down_reason: Option<DownReason>,
    pub cap_bytes: u64,
    /// Bytes granted to clients on this server (never more than `cap_bytes`).
    pub used_bytes: u64,
    /// Bytes of pages the server reported holding.
    pub held_bytes: u64,
    /// What a new client could get here: the cap's rest, or the host's smoothed free memory
    /// less what was granted and not yet written, whichever is smaller.
    pub available_bytes: u64,
    /// The host's MemFree + Inactive, smoothed (EWMA); `null` before the first report.
    pub mem_available_bytes: Option<u64>,
    /// The weighted client count: each client counts its share of its bytes that are here.
    pub load: f64,
    pub loadavg: Option<[f64; 3]>,
    pub clients: Vec<ClientId>,
}

/// One client in the status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientStatus {
    pub id: ClientId,
    pub host: String,
    pub pid: u32,
    pub user: String,
    pub uid: u32,
    /// Bytes granted per server.
    pub bytes: Vec<ServerBytes>,
    pub total_bytes: u64,
    /// Seconds since the Unix epoch when the client joined.
    pub since: u64,
    pub lease_expires_in_ms: u64,
    /// The cluster manager's job it said it is, if any (see [`JoinRequest::job`]).
    #[serde(default)]
    pub job: Option<String>,
}

/// A client's bytes on one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerBytes {
    pub server: ServerId,
    pub host: String,
    pub bytes: u64,
}

/// The body of every error reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// A cluster manager's job id (DLM-WAN's jobs on the cluster's compute nodes): 16 random hex
/// digits, so a restarted manager never reuses one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeJobId(pub String);

impl fmt::Display for NodeJobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `POST /v1/jobs`: run a program on a compute node (then `PUT /v1/jobs/{id}/files` sends its
/// files, a tar archive that is unpacked in the job's directory on the node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRequest {
    /// A compute node of the POOLCONF.
    pub node: String,
    /// The account it runs as there.
    pub user: String,
    /// Its local budget (`DLM_LOCAL_MEM`): reserved on the node while it runs.
    pub local_bytes: u64,
    /// What it pages to this cluster's pool (`DLM_POOL_MEM` is local + pool); 0: local memory
    /// only, no pool.
    pub pool_bytes: u64,
    /// Run before the program, in its directory (e.g. `dlmcc -O2 prog.c -o prog`); its output
    /// goes to the job's standard error.
    #[serde(default)]
    pub build: Option<Vec<String>>,
    /// The program and its arguments (e.g. `./prog 10`), run in the job's directory.
    pub command: Vec<String>,
    /// Files (relative to the job's directory) kept when it ends.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Who asked, for the manager's log (e.g. `wan job 7`).
    #[serde(default)]
    pub label: String,
}

/// Where a cluster manager's job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeJobState {
    /// Created; its files have not come yet.
    AwaitingFiles,
    /// Its files are going to the node.
    Staging,
    Building,
    Running,
    /// It ended; its exit status and outputs are being fetched from the node.
    Collecting,
    Done,
    Failed,
    Cancelled,
}

impl NodeJobState {
    /// Nothing changes any more.
    pub fn is_final(self) -> bool {
        matches!(self, NodeJobState::Done | NodeJobState::Failed | NodeJobState::Cancelled)
    }
}

/// A cluster manager's job, as `GET /v1/jobs/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeJobStatus {
    pub id: NodeJobId,
    pub node: String,
    pub user: String,
    pub state: NodeJobState,
    pub exit_code: Option<i32>,
    /// Why it failed or was cancelled.
    pub reason: Option<String>,
    pub local_bytes: u64,
    pub pool_bytes: u64,
    /// The pool client it joined as (`DLM_JOB`), once it did.
    pub client: Option<ClientId>,
    /// The memory-server hosts its pool client has pages on.
    pub servers: Vec<String>,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    /// Outputs it was asked for and did not write.
    pub missing_outputs: Vec<String>,
}

/// A compute node in `GET /v1/cluster`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeReport {
    pub host: String,
    pub cap_bytes: u64,
    /// What a new job could have here judged by MemFree: the cap's rest, or the node's memory
    /// not used by the manager's jobs (smoothed) less what they reserve, whichever is smaller.
    pub free_bytes: u64,
    /// The same judged by MemFree + Inactive.
    pub available_bytes: u64,
    pub loadavg: Option<[f64; 3]>,
    pub cpus: u32,
    /// The manager's jobs there.
    pub jobs: u32,
    /// Why the node could not be sampled (then it takes no job).
    pub error: Option<String>,
    /// Milliseconds since its last sample.
    pub sampled_ms_ago: Option<u64>,
}

/// `GET /v1/cluster`: the cluster as DLM-WAN places jobs on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterReport {
    pub nodes: Vec<NodeReport>,
    pub servers: Vec<ServerStatus>,
    /// What the servers can still give: their available memory, summed, less what jobs started
    /// here will ask of the pool and have not joined for yet.
    pub pool_available_bytes: u64,
    /// DLM clients: the pool's and the manager's jobs not in it.
    pub clients: u32,
}

/// One line of a running DLM program's live statistics, as its runtime writes it every half
/// second to `DLM_STATS_LIVE` (the cluster's manager points that at `stats.jsonl` in the job's
/// directory) and as `GET /v1/jobs/{id}/stats` lists them. The runtime writes this very type,
/// so both ends agree; DLM-WAN's `StatSample` has the same fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatLine {
    /// Milliseconds since the program's runtime started.
    pub t_ms: u64,
    /// Bytes of DLM pages resident in the program, and its local budget.
    pub resident_bytes: u64,
    pub local_budget_bytes: u64,
    /// Counters since the start.
    pub faults: u64,
    pub bytes_fetched: u64,
    pub bytes_written_back: u64,
    /// Bytes of the program's pages each memory server holds, by host (servers on one host
    /// summed), in the order the program met them.
    pub servers: Vec<HeldBytes>,
}

/// Bytes of a program's pages on the memory servers of one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldBytes {
    pub host: String,
    pub bytes: u64,
}
