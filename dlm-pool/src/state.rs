//! The manager's accounting: servers, clients and their leases, and every change the API
//! makes to them, as plain methods that take the current time (`now`), so tests drive the
//! clock.
//!
//! - A **server** is a POOLCONF line. It is `down (not_registered)` until a resident server
//!   registers for it, `up` while it reports, `draining` after `dlm pool drain`, and `down`
//!   again when it stops reporting for `Timing::server_timeout` (`silent`), when drained and
//!   empty (`drained`), or when the pool stops (`stopping`).
//! - A **client** holds grants (bytes per server) and a lease that expires `Timing::lease`
//!   after its last renewal; [`Pool::tick`] drops expired clients, so their grants return to
//!   zero, and the servers learn it from their next report's reply (the client is no longer
//!   listed) and free its pages. Nothing here stops at zero clients.
//! - Available memory: each report's MemFree + Inactive is smoothed with an EWMA ([`Ewma`]);
//!   what a server can still take is the lesser of its cap's rest and that smoothed value less
//!   the bytes granted there and not yet written (they will take that memory).
//! - After a restart the manager is `rebuilding` for `Timing::rebuild_grace`: servers
//!   re-register and report the clients they hold, and the manager adopts those clients and
//!   grants; joins wait (the accounting is incomplete) and a renewal of a client not yet
//!   reported is told to retry.

use crate::assign::{self, AssignError, Holding, ServerView, Snapshot};
use crate::conf::PoolConf;
use crate::proto::{
    Assignment, ClientId, ClientStatus, DownReason, Drained, Grant, HeldClient, JoinRequest, Lost, Move, Phase,
    RegisterRequest, Registered, Renewed, Report, ReportReply, ServerBytes, ServerId, ServerState, ServerStatus, Share,
    Status, ValidClient,
};
use std::collections::BTreeMap;
use std::io::Read;
use std::time::{Duration, Instant, SystemTime};

/// The weight of a new sample in the smoothed available memory: a fifth, so one odd sample
/// moves it little and a lasting change shows within a few reports.
pub const SMOOTHING: f64 = 0.2;

/// A page size for clients that name none.
const DEFAULT_PAGE_BYTES: u64 = 4096;

/// The manager's clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// A client's lease runs this long after its last renewal.
    pub lease: Duration,
    /// Servers report this often.
    pub report_every: Duration,
    /// A server silent this long is marked down.
    pub server_timeout: Duration,
    /// How long after a start the manager rebuilds its accounting before it takes joins.
    pub rebuild_grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease: Duration::from_secs(5),
            report_every: Duration::from_secs(1),
            server_timeout: Duration::from_secs(5),
            rebuild_grace: Duration::from_secs(3),
        }
    }
}

/// An exponentially weighted moving average.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ewma {
    value: f64,
}

impl Ewma {
    /// Starts at the first sample, so a new server is not taken for empty.
    pub fn new(first: f64) -> Self {
        Ewma { value: first }
    }

    /// Folds in a sample with weight [`SMOOTHING`].
    pub fn update(&mut self, sample: f64) {
        self.value += SMOOTHING * (sample - self.value);
    }

    pub fn value(&self) -> f64 {
        self.value
    }
}

/// Who a client is, as the identity layer established it (never what the client claimed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub user: String,
    pub host: String,
    pub pid: u32,
}

/// Why the pool refused a request.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("the manager is rebuilding its accounting from the servers' reports; retry in {retry_ms} ms")]
    Rebuilding { retry_ms: u64 },
    #[error("the pool is stopping")]
    Stopping,
    #[error("this pool has no MPI rendezvous (ompi-server): its manager was started with `dlm pool manager`, not `dlm pool up`, so programs cannot connect to its servers; restart the pool with `dlm pool up POOLCONF`")]
    NoRendezvous,
    #[error(transparent)]
    Full(#[from] AssignError),
    #[error("a client must ask for at least one byte")]
    ZeroBytes,
    #[error("no client {0}: its lease expired or it left")]
    UnknownClient(ClientId),
    #[error("wrong lease for client {0}")]
    WrongLease(ClientId),
    #[error("client {client} belongs to uid {owner}, not to uid {caller}")]
    NotYours { client: ClientId, owner: u32, caller: u32 },
    #[error("client {client} has nothing to move off server {from}")]
    NoMove { client: ClientId, from: ServerId },
    #[error("no server {0}: register first")]
    UnknownServer(ServerId),
    #[error("server {server} is registered to pid {pid}: a report must come from that process")]
    NotThatServer { server: ServerId, pid: u32 },
    #[error("the POOLCONF has no line for host {0}")]
    NoLine(String),
    #[error("every POOLCONF line for host {host} has a running server (pids {pids:?}); a dead one is freed after it stays silent for {timeout_ms} ms")]
    LinesTaken { host: String, pids: Vec<u32>, timeout_ms: u64 },
    #[error("no server up on host {0} to drain")]
    NothingToDrain(String),
    #[error("cannot drain {host}: {source}")]
    DrainFull { host: String, source: AssignError },
    #[error("{count} clients are running; stop them or use --force")]
    ClientsRunning { count: usize },
    #[error("cannot read random bytes for an id: {0}")]
    Entropy(std::io::Error),
}

/// Where a server is in its life (the enum keeps "down" and its reason together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Up,
    Draining,
    Down(DownReason),
}

/// A process that registered for a POOLCONF line.
#[derive(Debug, Clone)]
struct Process {
    pid: u32,
    endpoint: String,
    last_heard: Instant,
}

/// One POOLCONF line and the server on it.
#[derive(Debug, Clone)]
struct Server {
    id: ServerId,
    host: String,
    conf_cap: u64,
    cap: u64,
    standing: Standing,
    process: Option<Process>,
    mem: Option<Ewma>,
    loadavg: Option<[f64; 3]>,
    /// Bytes the server reported holding, per client.
    held: BTreeMap<ClientId, u64>,
}

/// A program using the pool.
#[derive(Debug, Clone)]
struct Client {
    owner: Owner,
    lease: String,
    since: u64,
    page_bytes: u64,
    expires: Instant,
    grants: BTreeMap<ServerId, u64>,
    /// Moves off draining servers that the client has not confirmed yet.
    moves: Vec<Move>,
    /// Servers whose process was replaced while the client had pages there.
    lost: Vec<Lost>,
    /// The cluster manager's job it said it is.
    job: Option<String>,
}

/// The manager's phase, with when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PhaseState {
    Rebuilding { until: Instant },
    Serving,
    Stopping,
}

/// The whole pool.
#[derive(Debug)]
pub struct Pool {
    timing: Timing,
    phase: PhaseState,
    servers: Vec<Server>,
    clients: BTreeMap<ClientId, Client>,
    /// The ompi-server URI that clients put in `OMPI_MCA_pmix_server_uri` to reach the servers'
    /// MPI ports; none when the manager was started alone (then joins are refused).
    rendezvous: Option<String>,
}

impl Pool {
    /// A pool with the POOLCONF's servers, all down until they register, rebuilding until
    /// `now + timing.rebuild_grace`.
    pub fn new(conf: &PoolConf, timing: Timing, now: Instant) -> Self {
        let servers = conf
            .servers
            .iter()
            .enumerate()
            .map(|(i, line)| Server {
                id: ServerId(i as u32),
                host: line.host.clone(),
                conf_cap: line.cap_bytes,
                cap: line.cap_bytes,
                standing: Standing::Down(DownReason::NotRegistered),
                process: None,
                mem: None,
                loadavg: None,
                held: BTreeMap::new(),
            })
            .collect();
        let phase = PhaseState::Rebuilding { until: now + timing.rebuild_grace };
        Pool { timing, phase, servers, clients: BTreeMap::new(), rendezvous: None }
    }

    /// The pool with `rendezvous` as its MPI rendezvous (the ompi-server URI handed to clients).
    pub fn with_rendezvous(mut self, rendezvous: Option<String>) -> Self {
        self.rendezvous = rendezvous;
        self
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// The periodic step: ends the rebuilding phase, expires leases, marks silent servers
    /// down and drained servers gone. Runs whether or not any client is there.
    pub fn tick(&mut self, now: Instant) {
        if let PhaseState::Rebuilding { until } = self.phase {
            if now >= until {
                self.phase = PhaseState::Serving;
            }
        }
        self.clients.retain(|_, c| c.expires > now);
        let timeout = self.timing.server_timeout;
        for server in &mut self.servers {
            let silent = server.process.as_ref().is_some_and(|p| now.duration_since(p.last_heard) >= timeout);
            if matches!(server.standing, Standing::Up | Standing::Draining) && silent {
                server.standing = Standing::Down(DownReason::Silent);
            }
        }
        self.finish_drains();
    }

    /// A draining server on which no client has grants any more leaves the pool.
    fn finish_drains(&mut self) {
        for server in &mut self.servers {
            let granted = self.clients.values().any(|c| c.grants.contains_key(&server.id));
            if server.standing == Standing::Draining && !granted {
                server.standing = Standing::Down(DownReason::Drained);
            }
        }
    }

    /// A resident server joins (or re-joins after a restart of either side).
    pub fn register(&mut self, request: &RegisterRequest, now: Instant) -> Result<Registered, PoolError> {
        if self.phase == PhaseState::Stopping {
            return Err(PoolError::Stopping);
        }
        let index = self.line_for(request)?;
        let same_process = self.servers[index].process.as_ref().is_some_and(|p| p.pid == request.pid);
        if !same_process && self.servers[index].process.is_some() {
            self.forget_replaced(index);
        }
        let server = &mut self.servers[index];
        if !same_process {
            server.held.clear();
            server.mem = None;
            server.loadavg = None;
        }
        server.process = Some(Process { pid: request.pid, endpoint: request.endpoint.clone(), last_heard: now });
        server.cap = server.conf_cap.min(request.cap_bytes);
        if !(same_process && server.standing == Standing::Draining) {
            server.standing = Standing::Up;
        }
        Ok(Registered { server: server.id, cap_bytes: server.cap, report_ms: millis(self.timing.report_every) })
    }

    /// A new process takes the line of one that died: the pages the old one held are gone, so
    /// its clients' grants there go (the new process must not admit them) and each client
    /// hears of the loss in its renewals.
    fn forget_replaced(&mut self, index: usize) {
        let server = &self.servers[index];
        let reason = match server.standing {
            Standing::Down(reason) => reason,
            Standing::Up | Standing::Draining => DownReason::Silent,
        };
        let lost = Lost { server: server.id, host: server.host.clone(), reason };
        for client in self.clients.values_mut() {
            if client.grants.remove(&lost.server).is_some() {
                client.lost.push(lost.clone());
            }
        }
    }

    /// The POOLCONF line a registering server gets: the one it names if it may have it, else
    /// the first free one for its host.
    fn line_for(&self, request: &RegisterRequest) -> Result<usize, PoolError> {
        let free = |s: &Server| {
            s.host == request.host
                && (matches!(s.standing, Standing::Down(_)) || s.process.as_ref().is_some_and(|p| p.pid == request.pid))
        };
        if let Some(id) = request.server {
            if let Some(i) = self.servers.iter().position(|s| s.id == id && free(s)) {
                return Ok(i);
            }
        }
        if let Some(i) = self.servers.iter().position(free) {
            return Ok(i);
        }
        let pids: Vec<u32> = self
            .servers
            .iter()
            .filter(|s| s.host == request.host)
            .filter_map(|s| s.process.as_ref().map(|p| p.pid))
            .collect();
        if pids.is_empty() {
            return Err(PoolError::NoLine(request.host.clone()));
        }
        Err(PoolError::LinesTaken { host: request.host.clone(), pids, timeout_ms: millis(self.timing.server_timeout) })
    }

    /// A server's periodic report: its host's numbers and the clients it holds. Replies with
    /// the server's state and the clients it must serve.
    pub fn report(&mut self, id: ServerId, report: &Report, now: Instant) -> Result<ReportReply, PoolError> {
        let rebuilding = matches!(self.phase, PhaseState::Rebuilding { .. });
        let server = self.server_mut(id)?;
        match &mut server.process {
            Some(p) if p.pid == report.pid => p.last_heard = now,
            Some(p) => return Err(PoolError::NotThatServer { server: id, pid: p.pid }),
            None => return Err(PoolError::UnknownServer(id)),
        }
        if server.standing == Standing::Down(DownReason::Silent) {
            server.standing = Standing::Up;
        }
        let sample = (report.host.mem_free_bytes + report.host.inactive_bytes) as f64;
        match &mut server.mem {
            Some(ewma) => ewma.update(sample),
            None => server.mem = Some(Ewma::new(sample)),
        }
        server.loadavg = Some(report.host.loadavg);
        server.held = report.clients.iter().map(|h| (h.client.client.clone(), h.held_bytes)).collect();
        if rebuilding {
            self.adopt(id, &report.clients, now);
        }
        Ok(self.report_reply(id))
    }

    /// Takes back, while rebuilding, the clients and grants a server reports.
    fn adopt(&mut self, server: ServerId, held: &[HeldClient], now: Instant) {
        for h in held {
            let record = &h.client;
            let client = self.clients.entry(record.client.clone()).or_insert_with(|| Client {
                owner: Owner { uid: record.uid, user: record.user.clone(), host: record.host.clone(), pid: record.pid },
                lease: record.lease.clone(),
                since: record.since,
                page_bytes: DEFAULT_PAGE_BYTES,
                expires: now + self.timing.lease,
                grants: BTreeMap::new(),
                moves: Vec::new(),
                lost: Vec::new(),
                job: None,
            });
            client.grants.insert(server, record.granted_bytes);
        }
    }

    fn report_reply(&self, id: ServerId) -> ReportReply {
        let server = &self.servers[id.0 as usize];
        let clients = self
            .clients
            .iter()
            .filter_map(|(cid, c)| {
                c.grants.get(&id).map(|&granted_bytes| ValidClient {
                    client: cid.clone(),
                    lease: c.lease.clone(),
                    uid: c.owner.uid,
                    user: c.owner.user.clone(),
                    host: c.owner.host.clone(),
                    pid: c.owner.pid,
                    since: c.since,
                    granted_bytes,
                })
            })
            .collect();
        ReportReply { state: public_state(server.standing).0, clients }
    }

    /// A program asks for memory: assigns it servers and gives it a lease.
    pub fn join(&mut self, owner: Owner, request: &JoinRequest, now: Instant) -> Result<Assignment, PoolError> {
        self.check_serving(now)?;
        let rendezvous = self.rendezvous.clone().ok_or(PoolError::NoRendezvous)?;
        if request.bytes == 0 {
            return Err(PoolError::ZeroBytes);
        }
        let page_bytes = request.page_bytes.unwrap_or(DEFAULT_PAGE_BYTES).max(1);
        let grants = assign::assign(&self.snapshot(), request.bytes, page_bytes)?;
        let id = ClientId(random_hex(8).map_err(PoolError::Entropy)?);
        let lease = random_hex(16).map_err(PoolError::Entropy)?;
        let shares = grants.iter().map(|g| self.share(g)).collect();
        let client = Client {
            owner,
            lease: lease.clone(),
            since: unix_seconds(),
            page_bytes,
            expires: now + self.timing.lease,
            grants: grants.iter().map(|g| (g.server, g.bytes)).collect(),
            moves: Vec::new(),
            lost: Vec::new(),
            job: request.job.clone(),
        };
        self.clients.insert(id.clone(), client);
        Ok(Assignment { client: id, lease, lease_ms: millis(self.timing.lease), shares, rendezvous })
    }

    fn check_serving(&self, now: Instant) -> Result<(), PoolError> {
        match self.phase {
            PhaseState::Serving => Ok(()),
            PhaseState::Stopping => Err(PoolError::Stopping),
            PhaseState::Rebuilding { until } => {
                Err(PoolError::Rebuilding { retry_ms: millis(until.saturating_duration_since(now)).max(1) })
            }
        }
    }

    fn share(&self, grant: &Grant) -> Share {
        let server = &self.servers[grant.server.0 as usize];
        let endpoint = server.process.as_ref().map(|p| p.endpoint.clone()).unwrap_or_default();
        Share { server: grant.server, host: server.host.clone(), endpoint, bytes: grant.bytes }
    }

    /// A client's keep-alive: extends its lease and tells it what it must act on.
    pub fn renew(&mut self, uid: u32, id: &ClientId, lease: &str, now: Instant) -> Result<Renewed, PoolError> {
        let term = self.timing.lease;
        let client = self.owned_client(uid, id, lease, now)?;
        client.expires = now + term;
        let moves = client.moves.clone();
        let mut lost = client.lost.clone();
        let on: Vec<ServerId> = client.grants.keys().copied().collect();
        lost.extend(on.iter().map(|&s| &self.servers[s.0 as usize]).filter_map(|s| match s.standing {
            Standing::Down(reason) => Some(Lost { server: s.id, host: s.host.clone(), reason }),
            _ => None,
        }));
        Ok(Renewed { lease_ms: millis(term), lost, moves })
    }

    /// A client ends: its grants return to the pool at once.
    pub fn leave(&mut self, uid: u32, id: &ClientId, lease: &str, now: Instant) -> Result<(), PoolError> {
        self.owned_client(uid, id, lease, now)?;
        self.clients.remove(id);
        self.finish_drains();
        Ok(())
    }

    /// A client confirms that it moved everything off draining server `from`.
    pub fn moved(
        &mut self,
        uid: u32,
        id: &ClientId,
        lease: &str,
        from: ServerId,
        now: Instant,
    ) -> Result<(), PoolError> {
        let client = self.owned_client(uid, id, lease, now)?;
        let Some(index) = client.moves.iter().position(|m| m.from == from) else {
            return Err(PoolError::NoMove { client: id.clone(), from });
        };
        client.moves.remove(index);
        client.grants.remove(&from);
        self.finish_drains();
        Ok(())
    }

    /// The client `id`, if `uid` owns it and `lease` is its lease.
    fn owned_client(&mut self, uid: u32, id: &ClientId, lease: &str, now: Instant) -> Result<&mut Client, PoolError> {
        let rebuilding = self.check_serving(now);
        let Some(client) = self.clients.get_mut(id) else {
            return Err(match rebuilding {
                Err(e @ PoolError::Rebuilding { .. }) => e,
                _ => PoolError::UnknownClient(id.clone()),
            });
        };
        if client.owner.uid != uid {
            return Err(PoolError::NotYours { client: id.clone(), owner: client.owner.uid, caller: uid });
        }
        if client.lease != lease {
            return Err(PoolError::WrongLease(id.clone()));
        }
        Ok(client)
    }

    /// Stops new assignments to the servers on `host` and plans where their clients' pages go
    /// (reserving that room now); the clients learn their moves from their next renewal.
    pub fn drain(&mut self, host: &str) -> Result<Drained, PoolError> {
        let drained: Vec<ServerId> =
            self.servers.iter().filter(|s| s.host == host && s.standing == Standing::Up).map(|s| s.id).collect();
        if drained.is_empty() {
            return Err(PoolError::NothingToDrain(host.to_string()));
        }
        let mut snapshot = self.snapshot();
        for view in snapshot.servers.iter_mut().filter(|v| drained.contains(&v.id)) {
            view.state = ServerState::Draining;
        }
        let plan = self
            .plan_moves(&mut snapshot, &drained)
            .map_err(|source| PoolError::DrainFull { host: host.into(), source })?;
        for &id in &drained {
            self.servers[id.0 as usize].standing = Standing::Draining;
        }
        let mut clients = Vec::new();
        for (client, from, to) in plan {
            let shares = to.iter().map(|g| self.share(g)).collect();
            let Some(record) = self.clients.get_mut(&client) else { continue };
            for g in &to {
                *record.grants.entry(g.server).or_default() += g.bytes;
            }
            record.moves.push(Move { from, to: shares });
            if !clients.contains(&client) {
                clients.push(client);
            }
        }
        self.finish_drains();
        Ok(Drained { servers: drained, clients })
    }

    /// For every grant on a drained server, where it goes; all or nothing.
    fn plan_moves(
        &self,
        snapshot: &mut Snapshot,
        drained: &[ServerId],
    ) -> Result<Vec<(ClientId, ServerId, Vec<Grant>)>, AssignError> {
        let mut plan = Vec::new();
        for (id, client) in &self.clients {
            for (&from, &bytes) in client.grants.iter().filter(|(s, _)| drained.contains(s)) {
                let to = assign::assign(snapshot, bytes, client.page_bytes)?;
                snapshot.holdings.extend(to.iter().map(|g| Holding {
                    client: id.clone(),
                    server: g.server,
                    bytes: g.bytes,
                }));
                plan.push((id.clone(), from, to));
            }
        }
        Ok(plan)
    }

    /// `dlm pool down`: refused while clients run unless `force`; then every server is told
    /// to leave on its next report.
    pub fn down(&mut self, force: bool) -> Result<(), PoolError> {
        if !self.clients.is_empty() && !force {
            return Err(PoolError::ClientsRunning { count: self.clients.len() });
        }
        self.phase = PhaseState::Stopping;
        for server in &mut self.servers {
            server.standing = Standing::Down(DownReason::Stopping);
        }
        Ok(())
    }

    /// The pool as the assignment rule reads it.
    pub fn snapshot(&self) -> Snapshot {
        let holdings: Vec<Holding> = self
            .clients
            .iter()
            .flat_map(|(id, c)| c.grants.iter().map(|(&server, &bytes)| Holding { client: id.clone(), server, bytes }))
            .collect();
        let servers = self.servers.iter().map(|s| self.view(s, &holdings)).collect();
        Snapshot { servers, holdings }
    }

    /// A server as the assignment rule reads it: granted bytes not yet written will take
    /// host memory, so they come off the smoothed free memory.
    fn view(&self, server: &Server, holdings: &[Holding]) -> ServerView {
        let granted: u64 = holdings.iter().filter(|h| h.server == server.id).map(|h| h.bytes).sum();
        let held: u64 = server.held.values().sum();
        let unwritten = granted.saturating_sub(held);
        ServerView {
            id: server.id,
            state: public_state(server.standing).0,
            cap_bytes: server.cap,
            host_room_bytes: server.mem.map(|m| (m.value().max(0.0) as u64).saturating_sub(unwritten)),
        }
    }

    /// `GET /v1/status`.
    pub fn status(&self, now: Instant) -> Status {
        let snapshot = self.snapshot();
        let loads = assign::loads(&snapshot);
        let servers = self
            .servers
            .iter()
            .zip(&snapshot.servers)
            .map(|(s, view)| {
                let (state, down_reason) = public_state(s.standing);
                ServerStatus {
                    id: s.id,
                    host: s.host.clone(),
                    pid: s.process.as_ref().map(|p| p.pid),
                    endpoint: s.process.as_ref().map(|p| p.endpoint.clone()),
                    state,
                    down_reason,
                    cap_bytes: s.cap,
                    used_bytes: assign::used_bytes(&snapshot, s.id),
                    held_bytes: s.held.values().sum(),
                    available_bytes: assign::available_bytes(&snapshot, view),
                    mem_available_bytes: s.mem.map(|m| m.value().max(0.0) as u64),
                    load: loads.get(&s.id).copied().unwrap_or(0.0),
                    loadavg: s.loadavg,
                    clients: self
                        .clients
                        .iter()
                        .filter(|(_, c)| c.grants.contains_key(&s.id))
                        .map(|(id, _)| id.clone())
                        .collect(),
                }
            })
            .collect();
        let clients = self.clients.iter().map(|(id, c)| self.client_status(id, c, now)).collect();
        Status { phase: public_phase(self.phase), servers, clients, rendezvous: self.rendezvous.clone() }
    }

    fn client_status(&self, id: &ClientId, c: &Client, now: Instant) -> ClientStatus {
        let bytes: Vec<ServerBytes> = c
            .grants
            .iter()
            .map(|(&server, &bytes)| ServerBytes { server, host: self.servers[server.0 as usize].host.clone(), bytes })
            .collect();
        ClientStatus {
            id: id.clone(),
            host: c.owner.host.clone(),
            pid: c.owner.pid,
            user: c.owner.user.clone(),
            uid: c.owner.uid,
            total_bytes: bytes.iter().map(|b| b.bytes).sum(),
            bytes,
            since: c.since,
            lease_expires_in_ms: millis(c.expires.saturating_duration_since(now)),
            job: c.job.clone(),
        }
    }

    fn server_mut(&mut self, id: ServerId) -> Result<&mut Server, PoolError> {
        self.servers.get_mut(id.0 as usize).ok_or(PoolError::UnknownServer(id))
    }

    /// Whether the pool was told to stop.
    pub fn stopping(&self) -> bool {
        self.phase == PhaseState::Stopping
    }
}

fn public_state(standing: Standing) -> (ServerState, Option<DownReason>) {
    match standing {
        Standing::Up => (ServerState::Up, None),
        Standing::Draining => (ServerState::Draining, None),
        Standing::Down(reason) => (ServerState::Down, Some(reason)),
    }
}

fn public_phase(phase: PhaseState) -> Phase {
    match phase {
        PhaseState::Rebuilding { .. } => Phase::Rebuilding,
        PhaseState::Serving => Phase::Serving,
        PhaseState::Stopping => Phase::Stopping,
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

fn unix_seconds() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `bytes` random bytes from the kernel, in hex: ids and lease secrets must not be guessable.
pub(crate) fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::HostSample;
    use std::path::Path;

    const G: u64 = 1 << 30;
    const SECOND: Duration = Duration::from_secs(1);
    const RENDEZVOUS: &str = "1523253248.0;tcp://192.0.2.2:48469";

    fn conf(text: &str) -> PoolConf {
        PoolConf::parse(Path::new("pool.conf"), text).unwrap()
    }

    fn owner(uid: u32) -> Owner {
        Owner { uid, user: format!("u{uid}"), host: "here".into(), pid: 1000 + uid }
    }

    fn sample(free: u64) -> HostSample {
        HostSample { mem_free_bytes: free, inactive_bytes: 0, loadavg: [0.5, 0.25, 0.125] }
    }

    fn report(pid: u32, free: u64, clients: Vec<HeldClient>) -> Report {
        Report { pid, host: sample(free), clients }
    }

    fn register(pool: &mut Pool, host: &str, pid: u32, now: Instant) -> ServerId {
        let request = RegisterRequest {
            host: host.into(),
            pid,
            cap_bytes: u64::MAX,
            endpoint: format!("port-{pid}"),
            server: None,
        };
        pool.register(&request, now).unwrap().server
    }

    /// A serving pool of `hosts`, each server registered (pid 100 + line) and reporting
    /// `free` bytes of host memory.
    fn serving(text: &str, free: u64) -> (Pool, Instant) {
        let start = Instant::now();
        let conf = conf(text);
        let mut pool = Pool::new(&conf, Timing::default(), start).with_rendezvous(Some(RENDEZVOUS.into()));
        for (i, line) in conf.servers.iter().enumerate() {
            let id = register(&mut pool, &line.host, 100 + i as u32, start);
            pool.report(id, &report(100 + i as u32, free, vec![]), start).unwrap();
        }
        let now = start + Timing::default().rebuild_grace;
        pool.tick(now);
        (pool, now)
    }

    fn join(pool: &mut Pool, uid: u32, bytes: u64, now: Instant) -> Assignment {
        pool.join(owner(uid), &JoinRequest { bytes, page_bytes: None, pid: None, job: None }, now).unwrap()
    }

    fn used(pool: &Pool, now: Instant) -> Vec<u64> {
        pool.status(now).servers.iter().map(|s| s.used_bytes).collect()
    }

    #[test]
    fn joins_get_the_rendezvous_and_need_one() {
        let (mut pool, now) = serving("a 8G\n", 64 * G);
        assert_eq!(join(&mut pool, 1, G, now).rendezvous, RENDEZVOUS);
        assert_eq!(pool.status(now).rendezvous.as_deref(), Some(RENDEZVOUS));
        let mut alone =
            std::mem::replace(&mut pool, Pool::new(&conf("a 8G\n"), Timing::default(), now)).with_rendezvous(None);
        let err =
            alone.join(owner(1), &JoinRequest { bytes: G, page_bytes: None, pid: None, job: None }, now).unwrap_err();
        assert!(matches!(err, PoolError::NoRendezvous));
        assert!(err.to_string().contains("`dlm pool up"), "{err}");
        assert_eq!(alone.status(now).rendezvous, None);
    }

    #[test]
    fn ewma_moves_a_fifth_of_the_way() {
        let mut e = Ewma::new(100.0);
        e.update(200.0);
        assert_eq!(e.value(), 120.0);
        e.update(120.0);
        assert_eq!(e.value(), 120.0);
    }

    #[test]
    fn a_lease_expires_unless_renewed_and_its_bytes_return() {
        let (mut pool, t0) = serving("a 8G\nb 8G\n", 64 * G);
        let first = join(&mut pool, 1, 2 * G, t0);
        let second = join(&mut pool, 2, G, t0);
        assert_eq!(used(&pool, t0).iter().sum::<u64>(), 3 * G);
        // The first renews at 4 s; at 6 s only the second has expired.
        pool.renew(1, &first.client, &first.lease, t0 + 4 * SECOND).unwrap();
        pool.tick(t0 + 6 * SECOND);
        let status = pool.status(t0 + 6 * SECOND);
        assert_eq!(status.clients.iter().map(|c| &c.id).collect::<Vec<_>>(), [&first.client]);
        assert_eq!(used(&pool, t0).iter().sum::<u64>(), 2 * G);
        assert!(matches!(
            pool.renew(2, &second.client, &second.lease, t0 + 6 * SECOND),
            Err(PoolError::UnknownClient(_))
        ));
        pool.tick(t0 + 10 * SECOND);
        assert_eq!(used(&pool, t0), [0, 0]);
    }

    #[test]
    fn servers_learn_of_ended_clients_from_the_report_reply() {
        let (mut pool, t0) = serving("a 8G\n", 64 * G);
        let a = join(&mut pool, 1, G, t0);
        let reply = pool.report(ServerId(0), &report(100, 64 * G, vec![]), t0).unwrap();
        assert_eq!(reply.clients.len(), 1);
        assert_eq!((reply.clients[0].lease.as_str(), reply.clients[0].granted_bytes), (a.lease.as_str(), G));
        pool.leave(1, &a.client, &a.lease, t0).unwrap();
        assert!(pool.report(ServerId(0), &report(100, 64 * G, vec![]), t0).unwrap().clients.is_empty());
    }

    #[test]
    fn the_monitor_runs_with_zero_clients() {
        // No client ever joins: a silent server is still marked down, smoothing still updates.
        let (mut pool, t0) = serving("a 8G\nb 8G\n", 10 * G);
        pool.report(ServerId(1), &report(101, 5 * G, vec![]), t0 + 4 * SECOND).unwrap();
        pool.tick(t0 + 6 * SECOND);
        let status = pool.status(t0 + 6 * SECOND);
        assert_eq!(status.servers[0].state, ServerState::Down);
        assert_eq!(status.servers[0].down_reason, Some(DownReason::Silent));
        assert_eq!(status.servers[1].state, ServerState::Up);
        assert_eq!(status.servers[1].mem_available_bytes, Some(9 * G));
    }

    #[test]
    fn only_the_owner_with_the_lease_renews_or_leaves() {
        let (mut pool, t0) = serving("a 8G\n", 64 * G);
        let a = join(&mut pool, 1, G, t0);
        assert!(matches!(pool.renew(2, &a.client, &a.lease, t0), Err(PoolError::NotYours { owner: 1, caller: 2, .. })));
        assert!(matches!(pool.leave(1, &a.client, "guess", t0), Err(PoolError::WrongLease(_))));
        pool.leave(1, &a.client, &a.lease, t0).unwrap();
    }

    #[test]
    fn available_memory_counts_granted_bytes_not_yet_written() {
        // Host has 6 GiB free, cap 8 GiB: a 2 GiB grant not yet written leaves 4 GiB; once the
        // server holds it (and MemFree has dropped by it) it is still 4 GiB.
        let (mut pool, t0) = serving("a 8G\n", 6 * G);
        let a = join(&mut pool, 1, 2 * G, t0);
        assert_eq!(pool.status(t0).servers[0].available_bytes, 4 * G);
        let mut record = pool.report(ServerId(0), &report(100, 6 * G, vec![]), t0).unwrap().clients.remove(0);
        record.granted_bytes = 2 * G;
        let held = HeldClient { client: record, held_bytes: 2 * G };
        pool.report(ServerId(0), &report(100, 4 * G, vec![held]), t0).unwrap();
        let s = &pool.status(t0).servers[0];
        // EWMA: 6 GiB then 4 GiB → 5.6 GiB free, nothing unwritten; the cap's rest is 6 GiB.
        assert_eq!(s.available_bytes, (5.6 * G as f64) as u64);
        assert_eq!(s.held_bytes, 2 * G);
        pool.leave(1, &a.client, &a.lease, t0).unwrap();
    }

    #[test]
    fn a_restarted_manager_rebuilds_from_the_reports() {
        let (mut old, t0) = serving("a 8G\nb 8G\n", 64 * G);
        let a = pool_join_spread(&mut old, t0);
        let held: Vec<Vec<HeldClient>> = (0..2)
            .map(|s| {
                let reply = old.report(ServerId(s), &report(100 + s, 64 * G, vec![]), t0).unwrap();
                reply.clients.into_iter().map(|client| HeldClient { client, held_bytes: 0 }).collect()
            })
            .collect();
        // A new manager: joins and unknown renewals wait while it rebuilds.
        let t1 = t0 + SECOND;
        let mut pool = Pool::new(&conf("a 8G\nb 8G\n"), Timing::default(), t1).with_rendezvous(Some(RENDEZVOUS.into()));
        assert!(matches!(join_err(&mut pool, t1), PoolError::Rebuilding { retry_ms: 3000 }));
        assert!(matches!(pool.renew(1, &a.client, &a.lease, t1), Err(PoolError::Rebuilding { .. })));
        for s in 0..2u32 {
            let request = RegisterRequest {
                host: ["a", "b"][s as usize].into(),
                pid: 100 + s,
                cap_bytes: 8 * G,
                endpoint: "p".into(),
                server: Some(ServerId(s)),
            };
            assert_eq!(pool.register(&request, t1).unwrap().server, ServerId(s));
            pool.report(ServerId(s), &report(100 + s, 64 * G, held[s as usize].clone()), t1).unwrap();
        }
        pool.renew(1, &a.client, &a.lease, t1).unwrap();
        pool.tick(t1 + 3 * SECOND);
        let status = pool.status(t1 + 3 * SECOND);
        assert_eq!(status.phase, Phase::Serving);
        assert_eq!(status.clients.len(), 1);
        assert_eq!(status.clients[0].total_bytes, 12 * G);
        assert_eq!(used(&pool, t1), [8 * G, 4 * G]);
        // Once serving, a client a server still reports but the manager does not know (it
        // ended) is not brought back.
        let mut stale = held[0].clone();
        stale[0].client.client = ClientId("0123456789abcdef".into());
        let reply = pool.report(ServerId(0), &report(100, 64 * G, stale), t1 + 3 * SECOND).unwrap();
        assert!(reply.clients.iter().all(|c| c.client.0 != "0123456789abcdef"));
    }

    /// A 12 GiB client over two 8 GiB servers.
    fn pool_join_spread(pool: &mut Pool, now: Instant) -> Assignment {
        let a = join(pool, 1, 12 * G, now);
        assert_eq!(a.shares.iter().map(|s| s.bytes).collect::<Vec<_>>(), [8 * G, 4 * G]);
        a
    }

    fn join_err(pool: &mut Pool, now: Instant) -> PoolError {
        pool.join(owner(1), &JoinRequest { bytes: G, page_bytes: None, pid: None, job: None }, now).unwrap_err()
    }

    #[test]
    fn a_dead_server_is_down_and_its_clients_hear_of_it() {
        let (mut pool, t0) = serving("a 8G\nb 8G\nc 8G\n", 64 * G);
        let a = pool_join_spread(&mut pool, t0);
        for s in [0, 2] {
            pool.report(ServerId(s), &report(100 + s, 64 * G, vec![]), t0 + 4 * SECOND).unwrap();
        }
        pool.renew(1, &a.client, &a.lease, t0 + 4 * SECOND).unwrap();
        pool.tick(t0 + 5 * SECOND);
        let renewed = pool.renew(1, &a.client, &a.lease, t0 + 5 * SECOND).unwrap();
        assert_eq!(renewed.lost, [Lost { server: ServerId(1), host: "b".into(), reason: DownReason::Silent }]);
        // A new client goes to the live server with room, not to the dead one (less loaded).
        let b = join(&mut pool, 2, G, t0 + 5 * SECOND);
        assert_eq!(b.shares.iter().map(|s| s.server).collect::<Vec<_>>(), [ServerId(2)]);
    }

    #[test]
    fn drain_plans_moves_and_the_server_leaves_when_empty() {
        let (mut pool, t0) = serving("a 8G\nb 8G\nc 8G\n", 64 * G);
        let a = join(&mut pool, 1, 6 * G, t0);
        assert_eq!(a.shares[0].server, ServerId(0));
        let drained = pool.drain("a").unwrap();
        assert_eq!((drained.servers, drained.clients), (vec![ServerId(0)], vec![a.client.clone()]));
        assert_eq!(pool.status(t0).servers[0].state, ServerState::Draining);
        // No new client goes to the draining server, and the move's room is reserved.
        let b = join(&mut pool, 2, 8 * G, t0);
        assert!(b.shares.iter().all(|s| s.server != ServerId(0)));
        let renewed = pool.renew(1, &a.client, &a.lease, t0).unwrap();
        assert_eq!(renewed.moves.len(), 1);
        assert_eq!(renewed.moves[0].from, ServerId(0));
        assert_eq!(renewed.moves[0].to.iter().map(|s| s.bytes).sum::<u64>(), 6 * G);
        pool.moved(1, &a.client, &a.lease, ServerId(0), t0).unwrap();
        let status = pool.status(t0);
        assert_eq!(status.servers[0].down_reason, Some(DownReason::Drained));
        let mut totals: Vec<u64> = status.clients.iter().map(|c| c.total_bytes).collect();
        totals.sort();
        assert_eq!(totals, [6 * G, 8 * G]);
        assert!(status.servers.iter().all(|s| s.used_bytes <= s.cap_bytes));
        assert!(matches!(pool.drain("a"), Err(PoolError::NothingToDrain(_))));
    }

    #[test]
    fn drain_refuses_when_the_rest_cannot_hold_the_pages() {
        let (mut pool, t0) = serving("a 8G\nb 2G\n", 64 * G);
        join(&mut pool, 1, 6 * G, t0);
        let err = pool.drain("a").unwrap_err().to_string();
        assert!(err.starts_with("cannot drain a: the pool cannot hold 6442450944 bytes: 2147483648"), "{err}");
        assert_eq!(pool.status(t0).servers[0].state, ServerState::Up);
    }

    #[test]
    fn down_refuses_while_clients_run_unless_forced() {
        let (mut pool, t0) = serving("a 8G\n", 64 * G);
        join(&mut pool, 1, G, t0);
        assert!(matches!(pool.down(false), Err(PoolError::ClientsRunning { count: 1 })));
        pool.down(true).unwrap();
        assert!(pool.stopping());
        assert_eq!(pool.report(ServerId(0), &report(100, G, vec![]), t0).unwrap().state, ServerState::Down);
    }

    #[test]
    fn a_line_belongs_to_one_live_server() {
        let (mut pool, t0) = serving("a 8G\na 4G\n", 64 * G);
        let other = RegisterRequest { host: "a".into(), pid: 7, cap_bytes: G, endpoint: "p".into(), server: None };
        assert!(matches!(pool.register(&other, t0), Err(PoolError::LinesTaken { .. })));
        let unknown = RegisterRequest { host: "z".into(), ..other.clone() };
        assert!(matches!(pool.register(&unknown, t0), Err(PoolError::NoLine(_))));
        assert!(matches!(
            pool.report(ServerId(1), &report(7, G, vec![]), t0),
            Err(PoolError::NotThatServer { pid: 101, .. })
        ));
        // Line 1 falls silent: a new process takes it, with the lesser cap.
        pool.report(ServerId(0), &report(100, G, vec![]), t0 + 5 * SECOND).unwrap();
        pool.tick(t0 + 5 * SECOND);
        let registered = pool.register(&other, t0 + 5 * SECOND).unwrap();
        assert_eq!((registered.server, registered.cap_bytes), (ServerId(1), G));
    }

    #[test]
    fn a_replaced_server_does_not_serve_the_old_ones_clients() {
        let (mut pool, t0) = serving("a 8G\nb 8G\nc 8G\n", 64 * G);
        let a = pool_join_spread(&mut pool, t0);
        for s in [0, 2] {
            pool.report(ServerId(s), &report(100 + s, 64 * G, vec![]), t0 + 4 * SECOND).unwrap();
        }
        pool.renew(1, &a.client, &a.lease, t0 + 4 * SECOND).unwrap();
        pool.tick(t0 + 5 * SECOND);
        // Server 1 died (silent); a new process takes its line before the client renews.
        let t1 = t0 + 5 * SECOND;
        let new = RegisterRequest { host: "b".into(), pid: 9, cap_bytes: 8 * G, endpoint: "new".into(), server: None };
        assert_eq!(pool.register(&new, t1).unwrap().server, ServerId(1));
        assert!(pool.report(ServerId(1), &report(9, 64 * G, vec![]), t1).unwrap().clients.is_empty());
        let renewed = pool.renew(1, &a.client, &a.lease, t1).unwrap();
        assert_eq!(renewed.lost, [Lost { server: ServerId(1), host: "b".into(), reason: DownReason::Silent }]);
        assert_eq!(used(&pool, t1), [8 * G, 0, 0]);
    }
}
