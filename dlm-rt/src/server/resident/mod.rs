//! A pool's resident memory server (`dlm pool serve`): started once by the administrator
//! (`dlm pool up` runs it through mpirun onto its host), it serves many programs at once until
//! the manager tells it to leave.
//!
//! Each admitted program gets a worker process of its own (`worker`), started as the program's
//! user: Open MPI connects only processes of one user, a program's pages count against its own
//! user on that host, and no request can reach another program's pages (they are in another
//! process). The server itself uses no MPI: a reporter thread talks to the manager (`roster`),
//! the door thread answers knocks and starts workers (`door`), and this thread supervises the
//! workers — a worker whose program left, died or went silent ends on its own; one whose program
//! the manager no longer lists (its lease ended) is ended here.
//!
//! - `roster`: registration, reports and the manager's list of clients to serve.
//! - `door`: knocks, admission and the start of each worker.
//! - `worker`: one program's worker, an MPI singleton that serves its pages.

mod door;
mod roster;
mod worker;

pub use worker::worker;

use crate::sys;
use crate::transport::Door;
use dlm_pool::client::{Address, PoolClient};
use dlm_pool::proto::{HeldClient, RegisterRequest};
use door::Worker;
use roster::Shared;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::Duration;

/// How often the supervisor reaps workers, compares its clients with the manager's list and
/// tells the reporter what they hold.
const BOOKKEEPING: Duration = Duration::from_millis(200);

/// Registers with the manager at `manager`, then serves until the manager says the server
/// leaves the pool (drained, or the pool stopping); exits 0 then, 1 with a message if it
/// cannot start. `rendezvous` is the pool's `ompi-server` URI, which the workers need.
pub fn serve(manager: &str, rendezvous: &str, line: Option<u32>, cap: Option<u64>) -> ! {
    let door = Door::open().unwrap_or_else(|e| cannot_start(&format!("cannot open its door (TCP): {e}")));
    let pool = PoolClient::new(Address::parse(manager));
    let request = RegisterRequest {
        host: sys::hostname(),
        pid: std::process::id(),
        cap_bytes: cap.unwrap_or_else(|| sys::available_memory().unwrap_or(0)),
        endpoint: door.endpoint(&sys::hostname()).unwrap_or_else(|e| cannot_start(&e.to_string())),
        server: line.map(dlm_pool::proto::ServerId),
    };
    let registered = pool
        .register(&request)
        .unwrap_or_else(|e| cannot_start(&format!("cannot register with the pool at {manager}: {e}")));
    eprintln!(
        "dlm pool server {} on {} (pid {}): serving up to {} bytes",
        registered.server, request.host, request.pid, registered.cap_bytes
    );
    let shared = Arc::new(Shared::default());
    let (started, workers) = mpsc::channel();
    let reporter = {
        let shared = shared.clone();
        std::thread::spawn(move || roster::report_until_down(&pool, &shared, registered, request))
    };
    {
        let (shared, rendezvous) = (shared.clone(), rendezvous.to_string());
        // Not joined: it waits for the next knock and ends with the process.
        std::thread::spawn(move || door::keep_door(&door, &rendezvous, &shared, started));
    }
    let mut supervisor = Supervisor { workers: Vec::new(), shared: &shared, started: workers };
    supervisor.run();
    let _ = reporter.join();
    eprintln!("dlm pool server: the manager says this server leaves the pool; it exits");
    supervisor.end_all();
    sys::end_server(0)
}

fn cannot_start(why: &str) -> ! {
    sys::exit_now(1, &format!("resident memory server on {}: {why}", sys::hostname()))
}

/// The workers of the admitted clients and where new ones arrive.
struct Supervisor<'a> {
    workers: Vec<Worker>,
    shared: &'a Shared,
    started: Receiver<Worker>,
}

impl Supervisor<'_> {
    /// Supervises until the manager says leave.
    fn run(&mut self) {
        loop {
            while let Ok(worker) = self.started.try_recv() {
                self.workers.push(worker);
            }
            self.reap();
            if self.keep_books() {
                return;
            }
            std::thread::sleep(BOOKKEEPING);
        }
    }

    /// Forgets the workers that have ended, saying how.
    fn reap(&mut self) {
        self.workers.retain_mut(|w| match w.process.try_wait() {
            Ok(None) => true,
            Ok(Some(exit)) => {
                let how =
                    if exit.success() { "left the pool".to_string() } else { format!("its worker ended ({exit})") };
                eprintln!(
                    "dlm pool server: client {} (user {}): {how}; its pages are freed",
                    w.client.client, w.client.user
                );
                false
            }
            Err(_) => false,
        });
    }

    /// Ends the workers of clients the manager no longer lists and tells the reporter what is
    /// held; true when the manager says this server leaves.
    fn keep_books(&mut self) -> bool {
        let mut roster = self.shared.lock();
        if roster.replies > 0 {
            self.workers.retain_mut(|w| {
                let listed = roster.valid.contains_key(&w.client.client.0);
                if !listed {
                    eprintln!(
                        "dlm pool server: client {} is no longer in the pool (its lease ended); its pages are freed",
                        w.client.client
                    );
                    end(&mut w.process);
                }
                listed
            });
        }
        roster.held = self
            .workers
            .iter()
            .map(|w| {
                let held_bytes = resident_bytes(w.process.id()).min(w.client.granted_bytes);
                HeldClient { client: w.client.clone(), held_bytes }
            })
            .collect();
        roster.leave
    }

    /// Ends every worker (the server leaves the pool).
    fn end_all(&mut self) {
        for worker in &mut self.workers {
            end(&mut worker.process);
        }
    }
}

/// Ends a worker at once (its program is gone, or the pool is) and reaps it.
fn end(process: &mut std::process::Child) {
    let _ = process.kill();
    let _ = process.wait();
}

/// Bytes of anonymous memory the process `pid` holds: what a worker holds for its client (its
/// pages, and MPI's own memory, which the report caps at the grant).
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    sys::kib_field(&status, "RssAnon").unwrap_or(0)
}
