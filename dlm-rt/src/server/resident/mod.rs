//! A pool's resident memory server (`dlm pool serve`): started once by the administrator
//! (`dlm pool up` runs it through `mpirun --ompi-server` onto its host), it serves many compute
//! processes at once until the manager tells it to leave.
//!
//! Three threads, one job each: the reporter talks to the manager (`roster`), the door admits
//! connections (`door`), and this thread serves the admitted clients' page requests, each
//! client a [`Tenant`] with a store of its own, so no request can reach another client's
//! pages. A client that leaves, dies, goes silent or is no longer listed by the manager (its
//! lease ended) is dropped and its memory given back; the others are served on.
//!
//! - `roster`: registration, reports and the manager's list of clients to serve.
//! - `door`: the thread that answers knocks and accepts the clients it lets in.

mod door;
mod roster;

use super::tenant::{self, Ended, Tenant};
use crate::sys;
use crate::transport::{self, Door, Port};
use dlm_pool::client::{Address, PoolClient};
use dlm_pool::proto::{HeldClient, RegisterRequest, ValidClient};
use door::Admitted;
use roster::Shared;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the serving thread compares its clients with the manager's list and tells the
/// reporter what it holds.
const BOOKKEEPING: Duration = Duration::from_millis(200);

/// Registers with the manager at `manager`, then serves until the manager says the server
/// leaves the pool (drained, or the pool stopping); exits 0 then, 1 with a message if it
/// cannot start.
pub fn serve(manager: &str, line: Option<u32>, cap: Option<u64>) -> ! {
    let universe = transport::start_resident();
    let (port, door) = open_port_and_door();
    let pool = PoolClient::new(Address::parse(manager));
    let request = RegisterRequest {
        host: sys::hostname(),
        pid: std::process::id(),
        cap_bytes: cap.unwrap_or_else(|| sys::available_memory().unwrap_or(0)),
        endpoint: door.endpoint(&sys::hostname(), &port).unwrap_or_else(|e| cannot_start(&e.to_string())),
        server: line.map(dlm_pool::proto::ServerId),
    };
    let registered = pool
        .register(&request)
        .unwrap_or_else(|e| cannot_start(&format!("cannot register with the pool at {manager}: {e}")));
    eprintln!(
        "dlm pool server {} on {} (pid {}): serving up to {} bytes",
        registered.server, request.host, request.pid, registered.cap_bytes
    );
    sys::tighten_timer_slack();
    let shared = Arc::new(Shared::default());
    let (admitted, arrivals) = mpsc::channel();
    let reporter = {
        let shared = shared.clone();
        std::thread::spawn(move || roster::report_until_down(&pool, &shared, registered, request))
    };
    let port = Arc::new(port);
    {
        let (port, shared) = (port.clone(), shared.clone());
        // Not joined: it waits for the next knock (TCP, not MPI) and ends with the process.
        std::thread::spawn(move || door::keep_door(&door, &port, &shared, admitted));
    }
    Serving { tenants: Vec::new(), shared: &shared, arrivals }.run();
    let _ = reporter.join();
    leave(universe, &shared)
}

/// The MPI port clients connect to and the door (TCP) where they knock first.
fn open_port_and_door() -> (Port, Door) {
    let port = Port::open().unwrap_or_else(|code| cannot_start(&format!("MPI_Open_port failed (MPI error {code})")));
    let door = Door::open().unwrap_or_else(|e| cannot_start(&format!("cannot open its door (TCP): {e}")));
    (port, door)
}

fn cannot_start(why: &str) -> ! {
    sys::exit_now(1, &format!("resident memory server on {}: {why}", sys::hostname()))
}

/// Leaves the pool: MPI finalized and exit 0, or (a client let in never connected, and
/// MPI_Finalize would hang under the door's MPI_Comm_accept) exit 0 without finalizing. Every
/// client has left or been dropped by now.
fn leave(universe: mpi::environment::Universe, shared: &Shared) -> ! {
    eprintln!("dlm pool server: the manager says this server leaves the pool; it exits");
    if shared.lock().accepting {
        sys::end_server(0)
    }
    transport::finalize_server(universe);
    sys::end_server(0)
}

/// The admitted clients and where new ones arrive.
struct Serving<'a> {
    tenants: Vec<(ValidClient, Tenant)>,
    shared: &'a Shared,
    arrivals: Receiver<Admitted>,
}

impl Serving<'_> {
    /// Serves until the manager says leave.
    fn run(&mut self) {
        let mut last_bookkeeping = Instant::now();
        loop {
            while let Ok(Admitted { client, tenant }) = self.arrivals.try_recv() {
                self.tenants.push((client, tenant));
            }
            let mpi = self.shared.mpi();
            let worked = self.step_all();
            if last_bookkeeping.elapsed() >= BOOKKEEPING {
                last_bookkeeping = Instant::now();
                if self.keep_books() {
                    return;
                }
            }
            drop(mpi);
            if !worked {
                let busy = self.tenants.iter().any(|(_, t)| t.busy());
                let quiet = self.tenants.iter().map(|(_, t)| t.quiet()).min().unwrap_or(Duration::MAX);
                tenant::pause(busy, quiet);
            }
        }
    }

    /// One step of every tenant; the ones that ended are dropped. True if any had a request.
    fn step_all(&mut self) -> bool {
        let mut worked = false;
        self.tenants.retain_mut(|(client, tenant)| match tenant.step() {
            Ok(request) => {
                worked |= request;
                true
            }
            Err(ended) => {
                if ended == Ended::Left {
                    tenant.job.acknowledge_shutdown();
                }
                eprintln!(
                    "dlm pool server: client {} (user {}): {}; its pages are freed",
                    client.client,
                    client.user,
                    why(&ended)
                );
                false
            }
        });
        worked
    }

    /// Drops the clients the manager no longer lists and tells the reporter what is held;
    /// true when the manager says this server leaves.
    fn keep_books(&mut self) -> bool {
        let mut roster = self.shared.lock();
        if roster.replies > 0 {
            self.tenants.retain(|(client, _)| {
                let listed = roster.valid.contains_key(&client.client.0);
                if !listed {
                    eprintln!(
                        "dlm pool server: client {} is no longer in the pool (its lease ended); its pages are freed",
                        client.client
                    );
                }
                listed
            });
        }
        roster.held = self
            .tenants
            .iter()
            .map(|(client, t)| HeldClient { client: client.clone(), held_bytes: t.held_bytes() })
            .collect();
        roster.leave
    }
}

fn why(ended: &Ended) -> String {
    match ended {
        Ended::Left => "left the pool".into(),
        Ended::Lost(code) => format!("its link failed (MPI error {code}): it died or its host did"),
        Ended::Silent => "silent for 10 s".into(),
        Ended::OutOfBounds { at, len, capacity } => {
            format!("refused a request for bytes {at}..+{len} beyond its {capacity} bytes here, and dropped it")
        }
    }
}
