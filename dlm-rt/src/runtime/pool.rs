//! Joining a memory pool (`DLM_POOL=HOST`, or `-s HOST -m TOTAL -l LOCAL` after `--`): the
//! manager is asked for the bytes beyond the local budget and answers with servers, their MPI
//! ports and the pool's rendezvous; MPI starts with that rendezvous and the program connects to
//! each server, which admits it on its lease. A thread renews the lease about every second
//! ([`Membership`]): a server the manager reports lost ends the program with a message naming
//! it, and a server that drains has the pager move the program's pages off it (the program
//! runs on meanwhile). At shutdown the program leaves the pool.

use super::watchdog::Watchdog;
use crate::config::{Config, PoolRequest};
use crate::error::Error;
use crate::pager::{Command, Destination, Mailbox};
use crate::sys;
use crate::transport::{self, Admission, ConnectError, Hello, Job, Setup};
use dlm_pool::client::{Address, ClientError, PoolClient};
use dlm_pool::proto::{Assignment, ClientId, JoinRequest, Lost, Move, ServerId};
use mpi::environment::Universe;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// A program's place in a pool, from its join until it leaves: its lease and the thread that
/// renews it.
pub struct Membership {
    renewal: Arc<Renewal>,
    renewer: Option<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>,
}

/// The lease and what the lease thread knows: the pool's ids of the job's servers, in the job's
/// order (the pager numbers them alike), the servers whose pages are moving off now, and where
/// to hand the pager those moves once it runs.
struct Renewal {
    pool: PoolClient,
    client: ClientId,
    lease: String,
    servers: Mutex<Vec<ServerId>>,
    evacuating: Mutex<HashSet<ServerId>>,
    pager: OnceLock<Arc<Mailbox>>,
}

/// What joining gives startup: MPI, the job linked to every server, their hellos and the bytes
/// each holds for this program.
pub struct Joined {
    pub universe: Universe,
    pub job: Job,
    pub hellos: Vec<Hello>,
    pub capacities: Vec<u64>,
    pub membership: Membership,
}

/// How long connecting to one server may take (a port that nobody accepts on never answers).
const CONNECT_LIMIT: Duration = Duration::from_secs(30);

/// Joins the pool `request` names for `budget` bytes of local memory.
pub fn join(config: &Config, request: &PoolRequest, budget: u64) -> Result<Joined, Error> {
    let total = request.total.unwrap_or(4 * budget);
    let Some(bytes) = total.checked_sub(budget).filter(|&b| b > 0) else {
        return Err(Error::PoolTotal { total, budget });
    };
    let pool = PoolClient::new(Address::parse(&request.manager));
    let unreachable = |source| Error::PoolJoin { manager: request.manager.clone(), source };
    // MPI first: it needs the rendezvous before MPI_Init.
    let rendezvous = pool.status().map_err(unreachable)?.rendezvous.unwrap_or_default();
    if rendezvous.is_empty() {
        return Err(Error::PoolRendezvous { manager: request.manager.clone() });
    }
    let (universe, mut job) = transport::start_unlinked(&rendezvous);
    let join = JoinRequest {
        bytes,
        page_bytes: Some(config.page_size as u64),
        pid: Some(std::process::id()),
        job: request.job.clone(),
    };
    let assignment = pool.join(&join).map_err(|source| Error::PoolJoin { manager: request.manager.clone(), source })?;
    let renewal = Renewal {
        pool,
        client: assignment.client.clone(),
        lease: assignment.lease.clone(),
        servers: Mutex::new(assignment.shares.iter().map(|s| s.server).collect()),
        evacuating: Mutex::default(),
        pager: OnceLock::new(),
    };
    let mut membership = Membership { renewal: Arc::new(renewal), renewer: None };
    let hellos = match connect_all(&mut job, &assignment, config.page_size as u64) {
        Ok(hellos) => hellos,
        Err(e) => {
            membership.leave();
            return Err(e);
        }
    };
    membership.start_renewing(Duration::from_millis(assignment.lease_ms));
    let page = config.page_size as u64;
    let capacities = assignment.shares.iter().map(|s| s.bytes - s.bytes % page).collect();
    Ok(Joined { universe, job, hellos, capacities, membership })
}

/// Connects to every server of the assignment, in order; each one's hello. Each is told at once
/// the page size, its share (whole pages) and this program's pid if it shares the host.
fn connect_all(job: &mut Job, assignment: &Assignment, page: u64) -> Result<Vec<Hello>, Error> {
    let local = sys::hostname();
    let admission = Admission { client: assignment.client.0.clone(), lease: assignment.lease.clone() };
    let mut hellos = Vec::with_capacity(assignment.shares.len());
    for share in &assignment.shares {
        let watchdog = Watchdog::start(
            CONNECT_LIMIT,
            format!(
                "error: the pool's memory server on {} did not answer within {} s; `dlm pool status` shows the pool",
                share.host,
                CONNECT_LIMIT.as_secs()
            ),
        );
        let capacity = share.bytes - share.bytes % page;
        let setup = |hello: &Hello| Setup {
            page_size: page as usize,
            capacity,
            compute_pid: if hello.host == local { std::process::id() } else { 0 },
        };
        let connected = job.connect(&share.endpoint, &admission, setup);
        drop(watchdog);
        let (_, hello) = connected.map_err(|e| Error::PoolConnect { host: share.host.clone(), reason: reason(e) })?;
        hellos.push(hello);
    }
    Ok(hellos)
}

fn reason(e: ConnectError) -> String {
    match e {
        ConnectError::BadEndpoint(endpoint) => format!("its endpoint `{endpoint}` is not `HOST:PORT MPI-PORT`"),
        ConnectError::Door(door, e) => format!("its door {door} does not answer ({e})"),
        ConnectError::Connect(code) => format!("MPI_Comm_connect failed (MPI error {code})"),
        ConnectError::Refused(why) => format!("it refused this program: {why}"),
    }
}

impl Membership {
    /// Renews the lease about four times per term on a thread of its own, until [`leave`].
    ///
    /// [`leave`]: Membership::leave
    fn start_renewing(&mut self, term: Duration) {
        let period = (term / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let stop = Arc::new(AtomicBool::new(false));
        let (renewal, stopping) = (self.renewal.clone(), stop.clone());
        let renewer = std::thread::Builder::new()
            .name("dlm-lease".into())
            .spawn(move || {
                while !stopping.load(Ordering::Acquire) {
                    std::thread::sleep(period);
                    renewal.renew_once();
                }
            })
            .expect("cannot start the pool lease thread");
        self.renewer = Some((stop, renewer));
    }

    /// From now on the pager carries out the moves the manager asks for.
    pub fn hand_moves_to(&self, mailbox: Arc<Mailbox>) {
        let _ = self.renewal.pager.set(mailbox);
    }

    /// Stops renewing and tells the manager the program has left (its pages on the servers
    /// are freed at once rather than when the lease runs out).
    pub fn leave(&mut self) {
        if let Some((stop, renewer)) = self.renewer.take() {
            stop.store(true, Ordering::Release);
            let _ = renewer.join();
        }
        let Renewal { pool, client, lease, .. } = &*self.renewal;
        if let Err(e) = pool.leave(client, lease) {
            eprintln!("dlm: could not tell the pool manager that this program left ({e}); its lease runs out instead");
        }
    }
}

impl Renewal {
    /// One renewal: a lost server or a lease the manager no longer knows ends the program; a
    /// manager that cannot be reached now is tried again (the pages do not go through it).
    fn renew_once(self: &Arc<Self>) {
        let (pool, client, lease) = (&self.pool, &self.client, self.lease.as_str());
        match pool.renew(client, lease) {
            Ok(renewed) => {
                if let Some(lost) = renewed.lost.first() {
                    sys::exit_now(1, &lost_message(lost, renewed.lost.len()));
                }
                for evacuation in renewed.moves {
                    self.evacuate(evacuation);
                }
            }
            Err(ClientError::Refused { code: 404, message, .. }) => sys::exit_now(
                1,
                &format!(
                    "the pool manager no longer knows this program ({message}): its lease ran out, so its servers \
                     have freed its pages; the program cannot go on"
                ),
            ),
            Err(_) => {}
        }
    }

    /// Has the pager move the pages off a draining server (on a thread of its own: the lease
    /// goes on being renewed meanwhile), then tells the manager they have moved.
    fn evacuate(self: &Arc<Self>, evacuation: Move) {
        let Some(mailbox) = self.pager.get().cloned() else { return };
        if !lock(&self.evacuating).insert(evacuation.from) {
            return;
        }
        let from = {
            let mut servers = lock(&self.servers);
            let Some(from) = servers.iter().position(|&s| s == evacuation.from) else { return };
            servers.extend(evacuation.to.iter().map(|s| s.server));
            from
        };
        let to = evacuation
            .to
            .iter()
            .map(|s| Destination { endpoint: s.endpoint.clone(), host: s.host.clone(), bytes: s.bytes })
            .collect();
        let admission = Admission { client: self.client.0.clone(), lease: self.lease.clone() };
        let renewal = self.clone();
        std::thread::spawn(move || match mailbox.call(Command::Evacuate { from, to, admission }) {
            Ok(()) => {
                if let Err(e) = renewal.pool.moved(&renewal.client, &renewal.lease, evacuation.from) {
                    eprintln!(
                        "dlm: pages moved off pool server {}, but the manager was not told: {e}",
                        evacuation.from
                    );
                }
            }
            Err(e) => eprintln!("dlm: {e}"),
        });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn lost_message(lost: &Lost, count: usize) -> String {
    format!(
        "the pool's memory server {} on {} is down ({:?}){}; the DLM pages it held are lost, so the program cannot go on",
        lost.server,
        lost.host,
        lost.reason,
        if count > 1 { format!(", and {} more", count - 1) } else { String::new() }
    )
}
