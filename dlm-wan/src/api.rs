//! The WAN manager: its HTTP + JSON API (axum, over TCP with MUNGE, docs/API.md) and the tasks
//! behind it.
//!
//! - The **poller** asks every cluster's manager for its report each second, all at once; a
//!   cluster that does not answer is marked unreachable (and skipped) until it answers again.
//! - After each round the **scheduler** places the head of the queue (first come, first
//!   served) by its job's policy, again and again until the head must wait; a job that no
//!   cluster could ever hold fails at once. Each placement asks that cluster for a fresh
//!   report before the next decision (its manager has reserved the job's memory by then).
//! - A **follower** per placed job sends its files, then polls its cluster's manager: it
//!   copies the job's streams here as they grow, and its new samples of live statistics
//!   (kept in memory for the job, and in its spool's `stats.jsonl`), and its outputs when it
//!   ends. A cluster that stops answering for [`LOST_AFTER`] fails its jobs, naming it.
//!
//! | method and path                 | body → reply                              |
//! |---------------------------------|-------------------------------------------|
//! | `GET /v1/clusters`              | → `WanStatus`                             |
//! | `POST /v1/jobs`                 | a job bundle (tar) → 201 `JobStatus`      |
//! | `GET /v1/jobs`                  | → `[JobStatus]` (the caller's; root: all) |
//! | `GET /v1/jobs/{id}`             | → `JobStatus`                             |
//! | `GET /v1/jobs/{id}/stdout`, `/stderr` | `?offset=N` → the bytes from N      |
//! | `GET /v1/jobs/{id}/stats`       | → `JobStats` (its live statistics so far) |
//! | `GET /v1/jobs/{id}/outputs`     | → a tar of its outputs (once ended)       |
//! | `POST /v1/jobs/{id}/cancel`     | → `JobStatus`                             |
//! | `POST /v1/admin/down`           | `DownRequest` → 204, then it exits        |

use crate::bundle;
use crate::client::Stream;
use crate::hostconf::HostConf;
use crate::lan::Lan;
use crate::policy::{Chosen, Decision};
use crate::proto::{
    DownRequest, ErrorBody, JobId, JobSpec, JobState, JobStats, JobStatus, Placement, Program, StatSample, Through,
    WanStatus,
};
use crate::state::{self, Job, Owner, Samples, Wan, BUNDLE, OUTPUTS, STATS};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dlm_pool::client::ClientError;
use dlm_pool::identity::{Caller, IdentityError, Peer, Verifier};
use dlm_pool::proto::{NodeJobId, NodeJobState, NodeJobStatus, RunRequest};
use dlm_units::Bytes as Size;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// How often every cluster is asked for its report.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// How often a follower asks after its job.
const FOLLOW_EVERY: Duration = Duration::from_millis(400);

/// A cluster silent this long loses its jobs (they are marked failed, naming it).
pub const LOST_AFTER: Duration = Duration::from_secs(10);

/// The largest job bundle taken.
const MAX_BUNDLE_BYTES: usize = 4 << 30;

/// What the WAN manager serves and how.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    pub hostconf: HostConf,
    pub listen: SocketAddr,
    /// Where the jobs' bundles, logs and outputs are kept.
    pub spool: PathBuf,
    pub munge_socket: Option<PathBuf>,
}

/// Why the WAN manager could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("cannot listen on {addr}: {source}")]
    Tcp { addr: SocketAddr, source: io::Error },
    #[error("cannot keep jobs in {path}: {source}; give another directory with --spool")]
    Spool { path: PathBuf, source: io::Error },
    #[error("cannot start the WAN manager's event loop or signal handlers: {0}")]
    Runtime(io::Error),
    #[error("serving the API failed: {0}")]
    Serve(io::Error),
}

/// What every handler and task shares.
struct Shared {
    wan: Mutex<Wan>,
    lans: Vec<Lan>,
    verifier: Verifier,
    /// The uid the WAN manager runs as: it, and root, may stop it.
    admin_uid: u32,
    spool: PathBuf,
    /// `dlm wan down` was accepted: stop once no job is active.
    stopping: AtomicBool,
    stop: watch::Sender<bool>,
}

type AppState = Arc<Shared>;

/// Runs the WAN manager in the foreground until SIGINT or SIGTERM, or until `dlm wan down`.
/// `ready` is called with the bound address.
pub fn run_foreground(config: ManagerConfig, ready: impl FnOnce(SocketAddr)) -> Result<(), ManagerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ManagerError::Runtime)?;
    runtime.block_on(async {
        std::fs::create_dir_all(&config.spool)
            .map_err(|source| ManagerError::Spool { path: config.spool.clone(), source })?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ManagerError::Tcp { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(ManagerError::Serve)?;
        let shared = Arc::new(Shared {
            wan: Mutex::new(Wan::new(&config.hostconf)),
            lans: config.hostconf.clusters.iter().map(|c| Lan::new(&c.manager)).collect(),
            verifier: Verifier::new(config.munge_socket),
            // SAFETY: geteuid has no preconditions and cannot fail.
            admin_uid: unsafe { libc::geteuid() },
            spool: config.spool,
            stopping: AtomicBool::new(false),
            stop: watch::channel(false).0,
        });
        let mut terminate = signal(SignalKind::terminate()).map_err(ManagerError::Runtime)?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(ManagerError::Runtime)?;
        ready(addr);
        let rounds = tokio::spawn(poll_and_schedule(shared.clone()));
        let mut stop = shared.stop.subscribe();
        let service = router(shared.clone()).into_make_service_with_connect_info::<Peer>();
        let served = axum::serve(listener, service).with_graceful_shutdown(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
                _ = stop.wait_for(|s| *s) => {}
            }
        });
        let result = served.await.map_err(ManagerError::Serve);
        rounds.abort();
        result
    })
}

fn lock(shared: &Shared) -> MutexGuard<'_, Wan> {
    shared.wan.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The poller and the scheduler, one round a second, clusters or jobs or not.
async fn poll_and_schedule(shared: AppState) {
    let mut interval = tokio::time::interval(POLL_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        poll_all(&shared).await;
        if shared.stopping.load(Ordering::SeqCst) {
            let active = lock(&shared).jobs.values().any(|j| !j.state.is_final());
            if !active {
                shared.stop.send_replace(true);
                return;
            }
            continue;
        }
        schedule(&shared).await;
    }
}

/// Asks every cluster for its report at once.
async fn poll_all(shared: &AppState) {
    let mut asks = tokio::task::JoinSet::new();
    for (index, lan) in shared.lans.iter().enumerate() {
        let lan = lan.clone();
        asks.spawn(async move { (index, lan.report().await) });
    }
    while let Some(Ok((index, answer))) = asks.join_next().await {
        lock(shared).heard(index, answer.map_err(|e| e.to_string()), Instant::now());
    }
}

async fn poll_one(shared: &AppState, index: usize) {
    let answer = shared.lans[index].report().await.map_err(|e| e.to_string());
    lock(shared).heard(index, answer, Instant::now());
}

/// Places queued jobs, head first, until the head must wait.
async fn schedule(shared: &AppState) {
    loop {
        let Some((id, decision, indices)) = lock(shared).decide_head() else { return };
        match decision {
            Decision::Wait => return,
            Decision::Never { largest_bytes } => {
                let reason = never_reason(lock(shared).jobs[&id].spec.memory_bytes, largest_bytes);
                lock(shared).finish(id, JobState::Failed, Some(reason));
            }
            Decision::Place(chosen) => {
                let cluster = indices[chosen.cluster];
                if !place(shared, id, cluster, chosen).await {
                    return;
                }
                poll_one(shared, cluster).await;
            }
        }
    }
}

fn never_reason(request: u64, largest: u64) -> String {
    format!(
        "it asks for {} and the most any cluster could ever give one job is {} (its largest compute node's cap and every memory server's); ask for less or add memory servers",
        Size(request),
        Size(largest)
    )
}

/// Creates the job at its cluster and starts its follower; `false` when the cluster refused
/// (the job stays at the head of the queue for the next round).
async fn place(shared: &AppState, id: JobId, cluster: usize, chosen: Chosen) -> bool {
    let (request, spec) = {
        let wan = lock(shared);
        let job = &wan.jobs[&id];
        let (views, _) = wan.views();
        let node =
            views.iter().find(|v| v.name == wan.clusters[cluster].line.name).map(|v| v.nodes[chosen.node].host.clone());
        let Some(node) = node else { return false };
        (run_request(id, job, &node, chosen), job.spec.clone())
    };
    let lan = &shared.lans[cluster];
    let created = match lan.create(&request).await {
        Ok(created) => created,
        Err(e) => {
            let name = lock(shared).clusters[cluster].line.name.clone();
            eprintln!("dlm wan manager: cluster {name} refused job {id}: {e}; it stays queued");
            return false;
        }
    };
    {
        let mut wan = lock(shared);
        let name = wan.clusters[cluster].line.name.clone();
        wan.queue.retain(|q| *q != id);
        let job = wan.jobs.get_mut(&id).expect("a queued job is recorded");
        job.state = JobState::Staging;
        job.started = Some(state::unix_seconds());
        job.on = Some((cluster, created.id.clone()));
        job.placement = Some(Placement {
            cluster: name.clone(),
            node: request.node.clone(),
            through: chosen.through,
            local_bytes: chosen.local_bytes,
            pool_bytes: chosen.pool_bytes,
            local_ratio: chosen.local_bytes as f64 / spec.memory_bytes.max(1) as f64,
            servers: Vec::new(),
        });
        eprintln!("dlm wan manager: job {id} placed on {name}/{} ({:?})", request.node, chosen.through);
    }
    tokio::spawn(follow(shared.clone(), id, cluster, created.id));
    true
}

/// The cluster manager's request for a placed job.
fn run_request(id: JobId, job: &Job, node: &str, chosen: Chosen) -> RunRequest {
    let args = job.spec.args.iter().cloned();
    let (build, command) = match &job.spec.program {
        Program::Executable { file } => (None, std::iter::once(format!("./{file}")).chain(args).collect()),
        Program::Dlmcc { sources, cflags, name } => {
            let mut build = vec!["dlmcc".to_string(), "-O2".into()];
            build.extend(cflags.iter().cloned());
            build.extend(sources.iter().cloned());
            build.extend(["-o".into(), name.clone()]);
            (Some(build), std::iter::once(format!("./{name}")).chain(args).collect())
        }
    };
    RunRequest {
        node: node.to_string(),
        user: job.run_as.clone(),
        local_bytes: chosen.local_bytes,
        pool_bytes: if chosen.through == Through::Pool { chosen.pool_bytes } else { 0 },
        build,
        command,
        outputs: job.spec.outputs.clone(),
        label: format!("wan job {id} of {}", job.owner.user),
    }
}

/// Sends a placed job's files, then follows it to its end (see the module's doc).
async fn follow(shared: AppState, id: JobId, cluster: usize, remote: NodeJobId) {
    let lan = shared.lans[cluster].clone();
    let name = lock(&shared).clusters[cluster].line.name.clone();
    let spool = lock(&shared).jobs[&id].spool.clone();
    let bundle = std::fs::read(spool.join(BUNDLE)).unwrap_or_default();
    if let Err(e) = lan.send_files(&remote, bundle).await {
        lock(&shared).finish(id, JobState::Failed, Some(format!("cannot send its files to cluster {name}: {e}")));
        let _ = lan.delete(&remote).await;
        return;
    }
    let mut silent_since: Option<Instant> = None;
    let mut cancel_sent = false;
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        if !cancel_sent && lock(&shared).jobs[&id].cancel_asked {
            cancel_sent = lan.cancel(&remote).await.is_ok();
        }
        match lan.job(&remote).await {
            Ok(status) => {
                silent_since = None;
                copy_logs(&lan, &remote, &spool).await;
                // After the status: a final job's last sample is there by then.
                copy_stats(&shared, id, &lan, &remote, &spool).await;
                if status.state.is_final() {
                    end(&shared, id, &lan, &remote, &name, status, &spool).await;
                    return;
                }
                follow_state(&shared, id, &status);
            }
            Err(ClientError::Refused { code: 404, .. }) => {
                let reason =
                    format!("cluster {name}'s manager no longer knows the job (it was restarted): the job is lost");
                lock(&shared).finish(id, JobState::Failed, Some(reason));
                return;
            }
            Err(e) => {
                let since = *silent_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= LOST_AFTER {
                    let reason = format!(
                        "cluster {name}'s manager has not answered for {} s ({e}): the job is lost with it",
                        LOST_AFTER.as_secs()
                    );
                    lock(&shared).finish(id, JobState::Failed, Some(reason));
                    return;
                }
            }
        }
    }
}

/// A running job's state and servers, as its cluster says.
fn follow_state(shared: &Shared, id: JobId, status: &NodeJobStatus) {
    let mut wan = lock(shared);
    let Some(job) = wan.jobs.get_mut(&id) else { return };
    job.state = match status.state {
        NodeJobState::AwaitingFiles | NodeJobState::Staging | NodeJobState::Building => JobState::Staging,
        _ => JobState::Running,
    };
    note_servers(job, status);
}

/// The servers the cluster says hold the job's pages (a job that ended between two polls
/// names them only in its final status).
fn note_servers(job: &mut Job, status: &NodeJobStatus) {
    if let Some(placement) = job.placement.as_mut() {
        if !status.servers.is_empty() {
            placement.servers = status.servers.clone();
        }
    }
}

/// Appends what the cluster has of the job's streams beyond what is here.
async fn copy_logs(lan: &Lan, remote: &NodeJobId, spool: &std::path::Path) {
    for stream in [Stream::Stdout, Stream::Stderr] {
        let path = spool.join(stream.name());
        let offset = std::fs::metadata(&path).map_or(0, |m| m.len());
        if let Ok(bytes) = lan.log(remote, stream, offset).await {
            if !bytes.is_empty() {
                use std::io::Write;
                let file = std::fs::OpenOptions::new().create(true).append(true).open(&path);
                let _ = file.and_then(|mut f| f.write_all(&bytes));
            }
        }
    }
}

/// Copies the job's samples of live statistics that its cluster has beyond those here, into
/// its record and its spool's `stats.jsonl`. A cluster that cannot say (an older manager)
/// leaves the job without any.
async fn copy_stats(shared: &Shared, id: JobId, lan: &Lan, remote: &NodeJobId, spool: &std::path::Path) {
    let Some(from) = lock(shared).jobs.get(&id).map(|j| j.stats.taken) else { return };
    let Ok(lines) = lan.stats(remote, from).await else { return };
    if lines.is_empty() {
        return;
    }
    let samples: Vec<StatSample> = lines.into_iter().map(StatSample::from).collect();
    let mut text = String::new();
    for sample in &samples {
        text += &serde_json::to_string(sample).unwrap_or_default();
        text.push('\n');
    }
    use std::io::Write;
    let file = std::fs::OpenOptions::new().create(true).append(true).open(spool.join(STATS));
    let _ = file.and_then(|mut f| f.write_all(text.as_bytes()));
    if let Some(job) = lock(shared).jobs.get_mut(&id) {
        job.stats.add(samples);
    }
}

/// A job ended on its cluster: its outputs come here, its record there goes.
async fn end(
    shared: &Shared,
    id: JobId,
    lan: &Lan,
    remote: &NodeJobId,
    cluster: &str,
    status: NodeJobStatus,
    spool: &std::path::Path,
) {
    let outputs = lan.outputs(remote).await;
    let (state, reason) = match (status.state, &outputs) {
        (_, Err(e)) => {
            (JobState::Failed, Some(format!("its outputs could not be fetched from cluster {cluster}: {e}")))
        }
        (NodeJobState::Done, Ok(_)) if !status.missing_outputs.is_empty() => {
            (JobState::Done, Some(format!("it did not write {}", status.missing_outputs.join(", "))))
        }
        (NodeJobState::Done, Ok(_)) => (JobState::Done, None),
        (NodeJobState::Cancelled, Ok(_)) => (JobState::Cancelled, status.reason.clone()),
        (_, Ok(_)) => {
            let why = status.reason.clone().unwrap_or_else(|| "it failed".into());
            (JobState::Failed, Some(format!("on {cluster}/{}: {why}", status.node)))
        }
    };
    if let Ok(archive) = &outputs {
        let _ = std::fs::write(spool.join(OUTPUTS), archive);
    }
    {
        let mut wan = lock(shared);
        if let Some(job) = wan.jobs.get_mut(&id) {
            job.exit_code = status.exit_code;
            note_servers(job, &status);
        }
        wan.finish(id, state, reason);
    }
    let _ = lan.delete(remote).await;
}

fn router(shared: AppState) -> Router {
    Router::new()
        .route("/v1/clusters", get(clusters))
        .route("/v1/jobs", get(jobs).post(submit).layer(DefaultBodyLimit::max(MAX_BUNDLE_BYTES)))
        .route("/v1/jobs/{id}", get(job))
        .route("/v1/jobs/{id}/stdout", get(stdout))
        .route("/v1/jobs/{id}/stderr", get(stderr))
        .route("/v1/jobs/{id}/stats", get(stats))
        .route("/v1/jobs/{id}/outputs", get(outputs))
        .route("/v1/jobs/{id}/cancel", post(cancel))
        .route("/v1/admin/down", post(down))
        .with_state(shared)
}

/// An error reply.
#[derive(Debug)]
enum ApiError {
    Identity(IdentityError),
    BadBundle(String),
    OtherUser { caller: String, user: String },
    TooLarge(String),
    BadPlace(String),
    NoJob(JobId),
    NotEnded { id: JobId, state: JobState },
    NotAdmin { uid: u32 },
    Active { count: usize },
    Stopping,
    Spool(io::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::Identity(e) if e.is_internal() => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            ApiError::Identity(e) => (StatusCode::UNAUTHORIZED, e.to_string()),
            ApiError::BadBundle(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::OtherUser { caller, user } => (
                StatusCode::FORBIDDEN,
                format!("{caller} may not run jobs as {user} (only root may name another user)"),
            ),
            ApiError::TooLarge(m) => (StatusCode::INSUFFICIENT_STORAGE, m),
            ApiError::BadPlace(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::NoJob(id) => (StatusCode::NOT_FOUND, format!("no job {id} of yours")),
            ApiError::NotEnded { id, state } => {
                (StatusCode::CONFLICT, format!("job {id} is {state:?}; its outputs come when it has ended"))
            }
            ApiError::NotAdmin { uid } => {
                (StatusCode::FORBIDDEN, format!("uid {uid} may not stop the WAN manager (root or its own user may)"))
            }
            ApiError::Active { count } => (
                StatusCode::CONFLICT,
                format!("{count} jobs are queued or running; wait for them, cancel them or use --force"),
            ),
            ApiError::Stopping => (StatusCode::SERVICE_UNAVAILABLE, "the WAN manager is stopping".into()),
            ApiError::Spool(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot keep the job: {e}")),
        };
        (status, Json(ErrorBody { error: message })).into_response()
    }
}

/// The caller, as MUNGE vouches for it.
struct Who(Caller);

impl FromRequestParts<AppState> for Who {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<Peer>>().cloned() else {
            return Err(ApiError::Identity(IdentityError::NoPeerCredentials));
        };
        state.verifier.identify(&peer, &parts.headers).await.map(Who).map_err(ApiError::Identity)
    }
}

async fn clusters(State(shared): State<AppState>, _who: Who) -> Json<WanStatus> {
    let wan = lock(&shared);
    Json(WanStatus {
        clusters: wan.status(Instant::now()),
        queue: wan.queue.iter().copied().collect(),
        since: wan.since,
    })
}

async fn submit(State(shared): State<AppState>, Who(caller): Who, body: Bytes) -> Result<impl IntoResponse, ApiError> {
    if shared.stopping.load(Ordering::SeqCst) {
        return Err(ApiError::Stopping);
    }
    let spec = bundle::read_spec(&body).map_err(|e| ApiError::BadBundle(e.to_string()))?;
    let owner = owner_of(&caller, spec.user.as_deref())?;
    let run_as = owner.user.clone();
    match &spec.place {
        Some(place) => lock(&shared).check_place(place, spec.memory_bytes).map_err(ApiError::BadPlace)?,
        None => {
            if let Some(largest) = lock(&shared).largest_job_bytes() {
                if spec.memory_bytes > largest {
                    return Err(ApiError::TooLarge(never_reason(spec.memory_bytes, largest)));
                }
            }
        }
    }
    let id = lock(&shared).next_id();
    let spool = shared.spool.join(id.to_string());
    std::fs::create_dir_all(&spool)
        .and_then(|()| std::fs::write(spool.join(BUNDLE), &body))
        .map_err(ApiError::Spool)?;
    let job = new_job(owner, run_as, spec, spool);
    let mut wan = lock(&shared);
    wan.jobs.insert(id, job);
    wan.queue.push_back(id);
    eprintln!("dlm wan manager: job {id} queued");
    Ok((StatusCode::CREATED, Json(wan.job_status(id).expect("just recorded"))))
}

/// Whose job it is: the caller's own, or, when root names a user (`dlm submit -u`, the
/// portal acting for the user who logged in), that user's, who then sees and owns it.
fn owner_of(caller: &Caller, user: Option<&str>) -> Result<Owner, ApiError> {
    match user {
        None => Ok(Owner { uid: caller.uid, user: caller.user.clone() }),
        Some(user) if user == caller.user => Ok(Owner { uid: caller.uid, user: user.to_string() }),
        Some(user) if caller.uid == 0 => match dlm_pool::identity::uid_of(user) {
            Some(uid) => Ok(Owner { uid, user: user.to_string() }),
            None => Err(ApiError::BadBundle(format!("no user {user} on the WAN manager's host"))),
        },
        Some(user) => Err(ApiError::OtherUser { caller: caller.user.clone(), user: user.to_string() }),
    }
}

fn new_job(owner: Owner, run_as: String, spec: JobSpec, spool: PathBuf) -> Job {
    Job {
        owner,
        run_as,
        spec,
        state: JobState::Queued,
        reason: None,
        exit_code: None,
        placement: None,
        on: None,
        submitted: state::unix_seconds(),
        started: None,
        ended: None,
        spool,
        cancel_asked: false,
        stats: Samples::default(),
    }
}

/// Whether `caller` may see job `id` (its owner and root may).
fn visible(wan: &Wan, caller: &Caller, id: JobId) -> Result<(), ApiError> {
    match wan.jobs.get(&id) {
        Some(job) if caller.uid == 0 || job.owner.uid == caller.uid => Ok(()),
        _ => Err(ApiError::NoJob(id)),
    }
}

async fn jobs(State(shared): State<AppState>, Who(caller): Who) -> Json<Vec<JobStatus>> {
    let wan = lock(&shared);
    let mine = wan.jobs.iter().filter(|(_, j)| caller.uid == 0 || j.owner.uid == caller.uid);
    Json(mine.filter_map(|(id, _)| wan.job_status(*id)).collect())
}

async fn job(
    State(shared): State<AppState>,
    Who(caller): Who,
    Path(id): Path<u64>,
) -> Result<Json<JobStatus>, ApiError> {
    let wan = lock(&shared);
    visible(&wan, &caller, JobId(id))?;
    wan.job_status(JobId(id)).map(Json).ok_or(ApiError::NoJob(JobId(id)))
}

/// `?offset=N` of a log.
#[derive(Debug, serde::Deserialize)]
struct Offset {
    #[serde(default)]
    offset: u64,
}

async fn stdout(
    State(shared): State<AppState>,
    Who(caller): Who,
    Path(id): Path<u64>,
    Query(at): Query<Offset>,
) -> Result<Vec<u8>, ApiError> {
    log_from(&shared, &caller, JobId(id), Stream::Stdout, at.offset)
}

async fn stderr(
    State(shared): State<AppState>,
    Who(caller): Who,
    Path(id): Path<u64>,
    Query(at): Query<Offset>,
) -> Result<Vec<u8>, ApiError> {
    log_from(&shared, &caller, JobId(id), Stream::Stderr, at.offset)
}

fn log_from(shared: &Shared, caller: &Caller, id: JobId, stream: Stream, offset: u64) -> Result<Vec<u8>, ApiError> {
    let path = {
        let wan = lock(shared);
        visible(&wan, caller, id)?;
        wan.jobs[&id].spool.join(stream.name())
    };
    let bytes = std::fs::read(path).unwrap_or_default();
    Ok(bytes.get(offset as usize..).unwrap_or_default().to_vec())
}

/// A job's live statistics so far (none before its program's first sample, or for a program
/// that is not a DLM program).
async fn stats(
    State(shared): State<AppState>,
    Who(caller): Who,
    Path(id): Path<u64>,
) -> Result<Json<JobStats>, ApiError> {
    let wan = lock(&shared);
    visible(&wan, &caller, JobId(id))?;
    Ok(Json(JobStats { samples: wan.jobs[&JobId(id)].stats.kept.clone() }))
}

async fn outputs(State(shared): State<AppState>, Who(caller): Who, Path(id): Path<u64>) -> Result<Vec<u8>, ApiError> {
    let id = JobId(id);
    let path = {
        let wan = lock(&shared);
        visible(&wan, &caller, id)?;
        let job = &wan.jobs[&id];
        if !job.state.is_final() {
            return Err(ApiError::NotEnded { id, state: job.state });
        }
        job.spool.join(OUTPUTS)
    };
    Ok(std::fs::read(path).unwrap_or_default())
}

async fn cancel(
    State(shared): State<AppState>,
    Who(caller): Who,
    Path(id): Path<u64>,
) -> Result<Json<JobStatus>, ApiError> {
    let id = JobId(id);
    let mut wan = lock(&shared);
    visible(&wan, &caller, id)?;
    cancel_job(&mut wan, id);
    wan.job_status(id).map(Json).ok_or(ApiError::NoJob(id))
}

/// A queued job ends at once; a placed one's follower passes the cancel to its cluster.
fn cancel_job(wan: &mut Wan, id: JobId) {
    let state = wan.jobs[&id].state;
    if state == JobState::Queued {
        wan.finish(id, JobState::Cancelled, Some("cancelled while queued".into()));
    } else if !state.is_final() {
        if let Some(job) = wan.jobs.get_mut(&id) {
            job.cancel_asked = true;
        }
    }
}

async fn down(
    State(shared): State<AppState>,
    Who(caller): Who,
    Json(request): Json<DownRequest>,
) -> Result<StatusCode, ApiError> {
    if caller.uid != 0 && caller.uid != shared.admin_uid {
        return Err(ApiError::NotAdmin { uid: caller.uid });
    }
    let mut wan = lock(&shared);
    let active: Vec<JobId> = wan.jobs.iter().filter(|(_, j)| !j.state.is_final()).map(|(id, _)| *id).collect();
    if !active.is_empty() && !request.force {
        return Err(ApiError::Active { count: active.len() });
    }
    for id in active {
        cancel_job(&mut wan, id);
    }
    shared.stopping.store(true, Ordering::SeqCst);
    Ok(StatusCode::NO_CONTENT)
}
