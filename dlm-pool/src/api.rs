//! The manager's HTTP + JSON API (axum), served on a TCP listener and on a Unix socket at
//! once, and the monitor that ticks the pool.
//!
//! Every request is first given a [`Caller`] (see `identity`); a request whose caller cannot
//! be established is refused with 401. Servers and the administrator's calls (register,
//! report, drain, down) are allowed to root and to the user the manager runs as (403 for
//! others); clients may renew, leave or confirm moves only for their own uid and with their
//! lease. The routes:
//!
//! | method and path               | body → reply                         |
//! |-------------------------------|--------------------------------------|
//! | `POST /v1/clients`            | `JoinRequest` → 201 `Assignment`     |
//! | `POST /v1/clients/{id}/renew` | `LeaseRequest` → `Renewed`           |
//! | `POST /v1/clients/{id}/leave` | `LeaseRequest` → 204                 |
//! | `POST /v1/clients/{id}/moved` | `MovedRequest` → 204                 |
//! | `POST /v1/servers`            | `RegisterRequest` → `Registered`     |
//! | `POST /v1/servers/{id}/report`| `Report` → `ReportReply`             |
//! | `GET /v1/status`              | → `Status`                           |
//! | `POST /v1/admin/drain`        | `DrainRequest` → `Drained`           |
//! | `POST /v1/admin/down`         | `DownRequest` → 204, then it exits   |
//! | `GET /v1/cluster`             | → `ClusterReport` (samples the nodes)|
//! | `POST /v1/jobs`               | `RunRequest` → 201 `NodeJobStatus`   |
//! | `PUT /v1/jobs/{id}/files`     | a tar archive → 202 `NodeJobStatus`  |
//! | `GET /v1/jobs/{id}`           | → `NodeJobStatus`                    |
//! | `GET /v1/jobs/{id}/stdout`, `/stderr` | `?offset=N` → the bytes from N |
//! | `GET /v1/jobs/{id}/stats`     | `?from=N` → `[StatLine]`, its samples from number N |
//! | `GET /v1/jobs/{id}/outputs`   | → a tar archive of its outputs       |
//! | `POST /v1/jobs/{id}/cancel`   | → `NodeJobStatus`                    |
//! | `DELETE /v1/jobs/{id}`        | → 204 (its logs here go too)         |
//!
//! The job routes are the administrator's (the WAN manager calls them as root); the cluster's
//! report is anyone's.
//!
//! The compute nodes are sampled on demand, one remote shell per node: a cluster report samples
//! those whose samples are older than [`SAMPLE_AGE`], and while jobs run the monitor samples
//! their nodes as often, so that their live statistics keep coming when nobody asks for the
//! report. One sampling runs at a time.
//!
//! Errors are `{"error": "…"}` with a status that says whose fault it is.

use crate::conf::PoolConf;
use crate::identity::{Caller, IdentityError, Peer, Verifier};
use crate::jobs::{JobError, NodeJobs, LIVE_STATS, OUTPUTS, STDERR, STDOUT};
use crate::nodes::{NodeSample, Nodes};
use crate::proto::{
    ClientId, ClusterReport, DownRequest, DrainRequest, ErrorBody, JoinRequest, LeaseRequest, MovedRequest, NodeJobId,
    NodeJobState, RegisterRequest, Report, RunRequest, ServerId, ServerState, StatLine,
};
use crate::runner::{self, Plan};
use crate::state::{Owner, Pool, PoolError, Timing};
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, UnixListener};
use tokio::signal::unix::{Signal, SignalKind};
use tokio::sync::watch;

/// How often the monitor ticks the pool (lease expiry, silent servers, drains).
const TICK: Duration = Duration::from_millis(200);

/// A cluster report samples the compute nodes again when their samples are this old (and so
/// does the monitor, for the nodes where jobs run).
const SAMPLE_AGE: Duration = Duration::from_millis(900);

/// How long sampling one compute node may take before it counts as unreachable.
const SAMPLE_LIMIT: Duration = Duration::from_secs(5);

/// The largest job archive taken (a program, its sources and inputs).
const MAX_FILES_BYTES: usize = 4 << 30;

/// What the manager serves and how.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    pub conf: PoolConf,
    /// The TCP address to listen on (callers need MUNGE credentials there).
    pub listen: Option<SocketAddr>,
    /// The Unix socket to listen on (callers are known by their peer credentials).
    pub socket: Option<PathBuf>,
    pub timing: Timing,
    /// munged's socket, if not the default.
    pub munge_socket: Option<PathBuf>,
    /// The MPI rendezvous (ompi-server URI) handed to every client; without one (a manager not
    /// started by `dlm pool up`) joins are refused with 503.
    pub rendezvous: Option<String>,
    /// `HOST:PORT` by which programs on the compute nodes reach this manager (their
    /// `DLM_POOL`); without it jobs that page to the pool are refused.
    pub advertise: Option<String>,
    /// Where the logs and outputs of the jobs it runs are kept.
    pub spool: PathBuf,
}

/// Why the manager could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("the manager needs a TCP address or a Unix socket to listen on")]
    NoListener,
    #[error("cannot listen on {addr}: {source}")]
    Tcp { addr: SocketAddr, source: io::Error },
    #[error("another manager is listening on {0}; stop it first")]
    SocketInUse(PathBuf),
    #[error("cannot listen on the Unix socket {path}: {source}")]
    Unix { path: PathBuf, source: io::Error },
    #[error("cannot start the manager's event loop or signal handlers: {0}")]
    Runtime(io::Error),
    #[error("serving the API failed: {0}")]
    Serve(io::Error),
}

/// The manager, bound to its listeners and ready to serve.
pub struct Manager {
    tcp: Option<TcpListener>,
    unix: Option<(UnixListener, PathBuf)>,
    shared: Arc<Shared>,
}

/// What every handler shares.
struct Shared {
    pool: Mutex<Pool>,
    verifier: Verifier,
    /// The uid the manager runs as: it, and root, may act as servers and administrator.
    admin_uid: u32,
    /// Set when `dlm pool down` was accepted: the manager exits soon after.
    stop: watch::Sender<bool>,
    /// The compute nodes' samples.
    nodes: Mutex<Nodes>,
    /// The jobs it runs on them (shared with each job's runner).
    jobs: Arc<Mutex<NodeJobs>>,
    advertise: Option<String>,
    /// Held while the nodes are sampled: one sampling at a time.
    sampling: tokio::sync::Mutex<()>,
}

type AppState = Arc<Shared>;

impl Manager {
    /// Binds the listeners of `config` (a stale Unix socket file is replaced; one a live
    /// manager answers on is not).
    pub async fn bind(config: ManagerConfig) -> Result<Self, ManagerError> {
        if config.listen.is_none() && config.socket.is_none() {
            return Err(ManagerError::NoListener);
        }
        let tcp = match config.listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|source| ManagerError::Tcp { addr, source })?),
            None => None,
        };
        let unix = match &config.socket {
            Some(path) => Some((bind_unix(path).await?, path.clone())),
            None => None,
        };
        let pool = Pool::new(&config.conf, config.timing, Instant::now()).with_rendezvous(config.rendezvous);
        // SAFETY: geteuid has no preconditions and cannot fail.
        let admin_uid = unsafe { libc::geteuid() };
        let jobs = NodeJobs::new(config.spool, crate::identity::user_name(admin_uid), admin_uid == 0);
        let shared = Shared {
            pool: Mutex::new(pool),
            verifier: Verifier::new(config.munge_socket),
            admin_uid,
            stop: watch::channel(false).0,
            nodes: Mutex::new(Nodes::new(&config.conf.compute)),
            jobs: Arc::new(Mutex::new(jobs)),
            advertise: config.advertise,
            sampling: tokio::sync::Mutex::new(()),
        };
        Ok(Manager { tcp, unix, shared: Arc::new(shared) })
    }

    /// The TCP address actually bound (useful with port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes or `dlm pool down` was accepted; removes the Unix
    /// socket file on the way out.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ManagerError> {
        let app = router(self.shared.clone());
        let mut stop = self.shared.stop.subscribe();
        let (quit, _) = watch::channel(false);
        let monitor = tokio::spawn(monitor(self.shared.clone()));
        let mut servers = Vec::new();
        if let Some(listener) = self.tcp {
            let service = app.clone().into_make_service_with_connect_info::<Peer>();
            let done = until_true(quit.subscribe());
            servers
                .push(tokio::spawn(async move { axum::serve(listener, service).with_graceful_shutdown(done).await }));
        }
        let socket_path = self.unix.as_ref().map(|(_, p)| p.clone());
        if let Some((listener, _)) = self.unix {
            let service = app.into_make_service_with_connect_info::<Peer>();
            let done = until_true(quit.subscribe());
            servers
                .push(tokio::spawn(async move { axum::serve(listener, service).with_graceful_shutdown(done).await }));
        }
        tokio::select! {
            () = shutdown => {}
            _ = stop.wait_for(|s| *s) => {}
        }
        quit.send_replace(true);
        let mut result = Ok(());
        for server in servers {
            match server.await {
                Ok(Err(e)) => result = Err(ManagerError::Serve(e)),
                Err(e) => result = Err(ManagerError::Serve(io::Error::other(e))),
                Ok(Ok(())) => {}
            }
        }
        monitor.abort();
        if let Some(path) = socket_path {
            let _ = std::fs::remove_file(path);
        }
        result
    }
}

/// Runs the manager in the foreground on a runtime of its own until SIGINT or SIGTERM, or
/// until `dlm pool down` was accepted. `ready` is called once the listeners are bound, with
/// the TCP address (if any).
pub fn run_foreground(config: ManagerConfig, ready: impl FnOnce(Option<SocketAddr>)) -> Result<(), ManagerError> {
    // One thread: every handler is short and holds the pool's lock without awaiting.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(ManagerError::Runtime)?;
    runtime.block_on(async {
        let manager = Manager::bind(config).await?;
        let terminate = signal(SignalKind::terminate())?;
        let interrupt = signal(SignalKind::interrupt())?;
        ready(manager.tcp_addr());
        manager.run(until_signal(terminate, interrupt)).await
    })
}

fn signal(kind: SignalKind) -> Result<Signal, ManagerError> {
    tokio::signal::unix::signal(kind).map_err(ManagerError::Runtime)
}

async fn until_signal(mut terminate: Signal, mut interrupt: Signal) {
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
}

/// Binds the Unix socket, open to every local user (the kernel tells who each one is).
async fn bind_unix(path: &std::path::Path) -> Result<UnixListener, ManagerError> {
    if tokio::net::UnixStream::connect(path).await.is_ok() {
        return Err(ManagerError::SocketInUse(path.to_path_buf()));
    }
    let unix_err = |source| ManagerError::Unix { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(unix_err)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(unix_err(e)),
        _ => {}
    }
    let listener = UnixListener::bind(path).map_err(unix_err)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(unix_err)?;
    Ok(listener)
}

async fn until_true(mut flag: watch::Receiver<bool>) {
    let _ = flag.wait_for(|v| *v).await;
}

/// Ticks the pool forever, clients or not; after an accepted `down`, lets the servers read
/// their "down" in a report or two, then stops the manager.
async fn monitor(shared: AppState) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let (stopping, report_every, status) = {
            let mut pool = lock(&shared);
            pool.tick(Instant::now());
            (pool.stopping(), pool.timing().report_every, pool.status(Instant::now()))
        };
        note_jobs(&shared, &status);
        sample_for_jobs(&shared);
        if stopping {
            tokio::time::sleep(report_every * 2).await;
            shared.stop.send_replace(true);
            return;
        }
    }
}

/// The pool, even if a handler panicked while holding it (its state stays consistent: every
/// method checks before it changes anything).
fn lock(shared: &Shared) -> MutexGuard<'_, Pool> {
    shared.pool.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The monitor's turn on the jobs: drop those whose files never came, note the pool clients
/// of those running.
fn note_jobs(shared: &Shared, pool: &crate::proto::Status) {
    let mut jobs = lock_jobs(shared);
    jobs.expire(Instant::now());
    jobs.note_clients(pool);
}

/// The monitor's turn on the nodes where programs run: those whose samples are old are sampled
/// (on a task of its own, so that the pool's ticks go on meanwhile) unless a sampling is under
/// way. Each costs one remote shell per node, at most about once a second.
fn sample_for_jobs(shared: &AppState) {
    let running = lock_jobs(shared).running_nodes();
    if running.is_empty() {
        return;
    }
    let stale = lock_nodes(shared).stale(Instant::now(), SAMPLE_AGE);
    let due: Vec<String> = stale.into_iter().filter(|host| running.contains(host)).collect();
    if due.is_empty() {
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        let Ok(_turn) = shared.sampling.try_lock() else { return };
        // A cluster report may have sampled them since.
        let stale = lock_nodes(&shared).stale(Instant::now(), SAMPLE_AGE);
        let due: Vec<String> = due.into_iter().filter(|host| stale.contains(host)).collect();
        if !due.is_empty() {
            sample_nodes(&shared, due).await;
        }
    });
}

fn lock_jobs(shared: &Shared) -> MutexGuard<'_, NodeJobs> {
    shared.jobs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lock_nodes(shared: &Shared) -> MutexGuard<'_, Nodes> {
    shared.nodes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn router(shared: AppState) -> Router {
    Router::new()
        .route("/v1/clients", post(join))
        .route("/v1/clients/{id}/renew", post(renew))
        .route("/v1/clients/{id}/leave", post(leave))
        .route("/v1/clients/{id}/moved", post(moved))
        .route("/v1/servers", post(register))
        .route("/v1/servers/{id}/report", post(report))
        .route("/v1/status", get(status))
        .route("/v1/admin/drain", post(drain))
        .route("/v1/admin/down", post(down))
        .route("/v1/cluster", get(cluster))
        .route("/v1/jobs", post(create_job))
        .route("/v1/jobs/{id}", get(job).delete(delete_job))
        .route("/v1/jobs/{id}/files", put(job_files).layer(DefaultBodyLimit::max(MAX_FILES_BYTES)))
        .route("/v1/jobs/{id}/stdout", get(job_stdout))
        .route("/v1/jobs/{id}/stderr", get(job_stderr))
        .route("/v1/jobs/{id}/stats", get(job_stats))
        .route("/v1/jobs/{id}/outputs", get(job_outputs))
        .route("/v1/jobs/{id}/cancel", post(cancel_job))
        .with_state(shared)
}

/// An error reply.
#[derive(Debug)]
enum ApiError {
    Identity(IdentityError),
    NotAdmin { uid: u32 },
    BadBody(String),
    Pool(PoolError),
    Job(JobError),
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        ApiError::Job(e)
    }
}

impl From<PoolError> for ApiError {
    fn from(e: PoolError) -> Self {
        ApiError::Pool(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            ApiError::Identity(e) if e.is_internal() => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            ApiError::Identity(e) => (StatusCode::UNAUTHORIZED, e.to_string()),
            ApiError::NotAdmin { uid } => (
                StatusCode::FORBIDDEN,
                format!("uid {uid} may not act as a server or administrator (root or the manager's user may)"),
            ),
            ApiError::BadBody(m) => (StatusCode::BAD_REQUEST, m.clone()),
            ApiError::Pool(e) => (pool_status(e), e.to_string()),
            ApiError::Job(e) => (job_status(e), e.to_string()),
        };
        let mut response = (status, Json(ErrorBody { error: message })).into_response();
        if let ApiError::Pool(PoolError::Rebuilding { retry_ms }) = self {
            let seconds = retry_ms.div_ceil(1000).to_string();
            if let Ok(value) = HeaderValue::from_str(&seconds) {
                response.headers_mut().insert("retry-after", value);
            }
        }
        response
    }
}

fn pool_status(e: &PoolError) -> StatusCode {
    use PoolError::*;
    match e {
        Rebuilding { .. } | Stopping | NoRendezvous => StatusCode::SERVICE_UNAVAILABLE,
        Full(_) | DrainFull { .. } => StatusCode::INSUFFICIENT_STORAGE,
        ZeroBytes => StatusCode::BAD_REQUEST,
        UnknownClient(_) | UnknownServer(_) | NoLine(_) | NothingToDrain(_) => StatusCode::NOT_FOUND,
        WrongLease(_) | NotYours { .. } => StatusCode::FORBIDDEN,
        NoMove { .. } | NotThatServer { .. } | LinesTaken { .. } | ClientsRunning { .. } => StatusCode::CONFLICT,
        Entropy(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn job_status(e: &JobError) -> StatusCode {
    use JobError::*;
    match e {
        NotANode(_) | NoCommand | BadUser(_) => StatusCode::BAD_REQUEST,
        OtherUser { .. } => StatusCode::FORBIDDEN,
        NoPoolAddress => StatusCode::SERVICE_UNAVAILABLE,
        Unknown(_) => StatusCode::NOT_FOUND,
        FilesTwice(_) | NotEnded { .. } => StatusCode::CONFLICT,
        Spool { .. } | Entropy(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<Peer>>().cloned() else {
            return Err(ApiError::Identity(IdentityError::NoPeerCredentials));
        };
        state.verifier.identify(&peer, &parts.headers).await.map_err(ApiError::Identity)
    }
}

/// A caller allowed to act as a server or administrator.
struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.uid != 0 && caller.uid != state.admin_uid {
            return Err(ApiError::NotAdmin { uid: caller.uid });
        }
        Ok(Admin)
    }
}

/// A JSON body whose rejection is an [`ApiError`] (so every error reply is JSON).
struct Body<T>(T);

impl<T: DeserializeOwned> FromRequest<AppState> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(ApiError::BadBody(rejection_text(rejection))),
        }
    }
}

fn rejection_text(rejection: JsonRejection) -> String {
    format!("bad request body: {}", rejection.body_text())
}

async fn join(
    State(shared): State<AppState>,
    caller: Caller,
    Body(request): Body<JoinRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let owner =
        Owner { uid: caller.uid, user: caller.user, host: caller.host, pid: caller.pid.or(request.pid).unwrap_or(0) };
    let assignment = lock(&shared).join(owner, &request, Instant::now())?;
    if let Some(job) = &request.job {
        let hosts = assignment.shares.iter().map(|s| s.host.clone()).collect();
        lock_jobs(&shared).note_join(&NodeJobId(job.clone()), &assignment.client, hosts);
    }
    Ok((StatusCode::CREATED, Json(assignment)))
}

async fn renew(
    State(shared): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(request): Body<LeaseRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let renewed = lock(&shared).renew(caller.uid, &ClientId(id), &request.lease, Instant::now())?;
    Ok(Json(renewed))
}

async fn leave(
    State(shared): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(request): Body<LeaseRequest>,
) -> Result<StatusCode, ApiError> {
    lock(&shared).leave(caller.uid, &ClientId(id), &request.lease, Instant::now())?;
    Ok(StatusCode::NO_CONTENT)
}

async fn moved(
    State(shared): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(request): Body<MovedRequest>,
) -> Result<StatusCode, ApiError> {
    lock(&shared).moved(caller.uid, &ClientId(id), &request.lease, request.from, Instant::now())?;
    Ok(StatusCode::NO_CONTENT)
}

async fn register(
    State(shared): State<AppState>,
    _admin: Admin,
    Body(request): Body<RegisterRequest>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(lock(&shared).register(&request, Instant::now())?))
}

async fn report(
    State(shared): State<AppState>,
    _admin: Admin,
    Path(id): Path<u32>,
    Body(report): Body<Report>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(lock(&shared).report(ServerId(id), &report, Instant::now())?))
}

async fn status(State(shared): State<AppState>, _caller: Caller) -> impl IntoResponse {
    Json(lock(&shared).status(Instant::now()))
}

async fn drain(
    State(shared): State<AppState>,
    _admin: Admin,
    Body(request): Body<DrainRequest>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(lock(&shared).drain(&request.host)?))
}

async fn down(
    State(shared): State<AppState>,
    _admin: Admin,
    Body(request): Body<DownRequest>,
) -> Result<StatusCode, ApiError> {
    lock(&shared).down(request.force)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The cluster for DLM-WAN: samples the compute nodes first whose samples are old (after the
/// sampling under way, if one is).
async fn cluster(State(shared): State<AppState>, _caller: Caller) -> Json<ClusterReport> {
    {
        let _turn = shared.sampling.lock().await;
        let stale = lock_nodes(&shared).stale(Instant::now(), SAMPLE_AGE);
        if !stale.is_empty() {
            sample_nodes(&shared, stale).await;
        }
    }
    let now = Instant::now();
    let pool = lock(&shared).status(now);
    let jobs = lock_jobs(&shared);
    let (owed, outside) = jobs.outside_pool(&pool);
    let nodes = lock_nodes(&shared).report(&jobs.reservations(), now);
    let up = pool.servers.iter().filter(|s| s.state == ServerState::Up);
    let pool_available_bytes = up.map(|s| s.available_bytes).sum::<u64>().saturating_sub(owed);
    let clients = pool.clients.len() as u32 + outside;
    Json(ClusterReport { nodes, servers: pool.servers, pool_available_bytes, clients })
}

/// Samples these compute nodes at once through the remote shell (see `nodes`); the jobs there
/// keep the lines of live statistics read. The caller holds `sampling`.
async fn sample_nodes(shared: &Shared, hosts: Vec<String>) {
    let mut probes = tokio::task::JoinSet::new();
    for host in hosts {
        let line = crate::nodes::probe_line(&lock_jobs(shared).running_on(&host));
        probes.spawn(async move {
            let sample = sample_node(&host, &line).await;
            (host, sample)
        });
    }
    while let Some(Ok((host, mut sample))) = probes.join_next().await {
        if let Ok(sample) = &mut sample {
            lock_jobs(shared).record_stats(std::mem::take(&mut sample.job_stats));
        }
        lock_nodes(shared).record(&host, sample, Instant::now());
    }
}

async fn sample_node(host: &str, line: &str) -> Result<NodeSample, String> {
    let mut command = tokio::process::Command::from(crate::remote::on_host(host, line));
    command.kill_on_drop(true).stdin(std::process::Stdio::null());
    let output = match tokio::time::timeout(SAMPLE_LIMIT, command.output()).await {
        Err(_) => return Err(format!("no answer within {} s", SAMPLE_LIMIT.as_secs())),
        Ok(Err(e)) => return Err(format!("cannot start the remote shell: {e}")),
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        let why = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(format!("the remote shell failed ({}): {why}", output.status));
    }
    crate::nodes::parse_probe(&String::from_utf8_lossy(&output.stdout))
}

async fn create_job(
    State(shared): State<AppState>,
    _admin: Admin,
    Body(request): Body<RunRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let nodes = lock_nodes(&shared).clone();
    let label = request.label.clone();
    let mut jobs = lock_jobs(&shared);
    let id = jobs.create(request, &nodes, shared.advertise.as_deref(), Instant::now())?;
    eprintln!("dlm pool manager: job {id} ({label}) created");
    let pool = lock(&shared).status(Instant::now());
    Ok((StatusCode::CREATED, Json(jobs.status(&id, &pool)?)))
}

/// A job's files: the job starts.
async fn job_files(
    State(shared): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    files: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let id = NodeJobId(id);
    let (plan, cancel) = {
        let mut jobs = lock_jobs(&shared);
        let cancel = jobs.start(&id)?;
        (plan_for(&shared, &jobs, &id)?, cancel)
    };
    eprintln!("dlm pool manager: job {id} starts on {}", plan.node);
    tokio::spawn(runner::run(shared.jobs.clone(), plan, files.to_vec(), cancel));
    let pool = lock(&shared).status(Instant::now());
    Ok((StatusCode::ACCEPTED, Json(lock_jobs(&shared).status(&id, &pool)?)))
}

/// What the runner needs for job `id`: where, as whom, with which environment.
fn plan_for(shared: &Shared, jobs: &NodeJobs, id: &NodeJobId) -> Result<Plan, JobError> {
    let job = jobs.get(id)?;
    let request = &job.request;
    Ok(Plan {
        id: id.clone(),
        node: request.node.clone(),
        switch_to: jobs.switches_user(&request.user).then(|| request.user.clone()),
        dir: job.dir.clone(),
        env: job_env(id, request, &job.dir, shared.advertise.as_deref()),
        build: request.build.clone(),
        command: request.command.clone(),
        outputs: request.outputs.clone(),
        spool: job.spool.clone(),
    })
}

/// The job's environment: its budget and pool, where its live statistics go (`dir` is its
/// directory on the node), Open MPI's session directory in it, and what this manager's own
/// environment says of MPI (the remote shell passes nothing; what it says comes last and wins).
/// Open MPI 4.1 creates `/tmp/ompi.HOST.UID` racily: of two jobs of one user starting on one
/// node at the same moment, one failed `MPI_Init` with "mkdir: File exists".
fn job_env(id: &NodeJobId, request: &RunRequest, dir: &str, pool: Option<&str>) -> Vec<String> {
    let mut env = vec![
        format!("DLM_JOB={id}"),
        format!("DLM_LOCAL_MEM={}", request.local_bytes),
        format!("DLM_STATS_LIVE={dir}/{LIVE_STATS}"),
        format!("OMPI_MCA_orte_tmpdir_base={dir}"),
    ];
    if let (Some(pool), true) = (pool, request.pool_bytes > 0) {
        env.push(format!("DLM_POOL={pool}"));
        env.push(format!("DLM_POOL_MEM={}", request.local_bytes + request.pool_bytes));
    }
    let passed = |name: &str| {
        ["PATH", "LANG", "LC_ALL"].contains(&name) || ["OMPI_", "UCX_", "PMIX_MCA_"].iter().any(|p| name.starts_with(p))
    };
    env.extend(std::env::vars().filter(|(name, _)| passed(name)).map(|(name, value)| format!("{name}={value}")));
    if request.user == "root" {
        for name in ["OMPI_ALLOW_RUN_AS_ROOT", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] {
            if std::env::var_os(name).is_none() {
                env.push(format!("{name}=1"));
            }
        }
    }
    env
}

async fn job(
    State(shared): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let pool = lock(&shared).status(Instant::now());
    Ok(Json(lock_jobs(&shared).status(&NodeJobId(id), &pool)?))
}

/// `?offset=N` of a log.
#[derive(Debug, serde::Deserialize)]
struct Offset {
    #[serde(default)]
    offset: u64,
}

async fn job_stdout(
    State(shared): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    Query(at): Query<Offset>,
) -> Result<Vec<u8>, ApiError> {
    log_from(&shared, &NodeJobId(id), STDOUT, at.offset)
}

async fn job_stderr(
    State(shared): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    Query(at): Query<Offset>,
) -> Result<Vec<u8>, ApiError> {
    log_from(&shared, &NodeJobId(id), STDERR, at.offset)
}

/// A job's log from `offset` to what has come so far.
fn log_from(shared: &Shared, id: &NodeJobId, log: &str, offset: u64) -> Result<Vec<u8>, ApiError> {
    let path = lock_jobs(shared).get(id)?.spool.join(log);
    let bytes = std::fs::read(path).unwrap_or_default();
    Ok(bytes.get(offset as usize..).unwrap_or_default().to_vec())
}

/// `?from=N` of a job's samples.
#[derive(Debug, serde::Deserialize)]
struct FromSample {
    #[serde(default)]
    from: u64,
}

/// A job's samples of live statistics from number `from` on (none for a program that is not a
/// DLM program).
async fn job_stats(
    State(shared): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    Query(at): Query<FromSample>,
) -> Result<Json<Vec<StatLine>>, ApiError> {
    Ok(Json(lock_jobs(&shared).stats(&NodeJobId(id), at.from)?))
}

async fn job_outputs(
    State(shared): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Vec<u8>, ApiError> {
    let id = NodeJobId(id);
    let jobs = lock_jobs(&shared);
    let job = jobs.get(&id)?;
    if !job.state.is_final() {
        return Err(JobError::NotEnded { id, state: job.state }.into());
    }
    Ok(std::fs::read(job.spool.join(OUTPUTS)).unwrap_or_default())
}

async fn cancel_job(
    State(shared): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = NodeJobId(id);
    lock_jobs(&shared).cancel(&id)?;
    let pool = lock(&shared).status(Instant::now());
    Ok(Json(lock_jobs(&shared).status(&id, &pool)?))
}

async fn delete_job(
    State(shared): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = NodeJobId(id);
    let state = lock_jobs(&shared).get(&id)?.state;
    if state != NodeJobState::AwaitingFiles && !state.is_final() {
        return Err(JobError::NotEnded { id, state }.into());
    }
    lock_jobs(&shared).remove(&id)?;
    Ok(StatusCode::NO_CONTENT)
}
