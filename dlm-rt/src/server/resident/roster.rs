//! What the resident server and its manager tell each other: the registration, then a report
//! every `report_ms` (the host's memory and load, every client held and its bytes), whose reply
//! lists the clients to serve ([`Roster`]) and says when the server must leave the pool.

use dlm_pool::client::{ClientError, PoolClient};
use dlm_pool::proto::{HeldClient, HostSample, RegisterRequest, Registered, Report, ServerState, ValidClient};
use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// The clients the manager says this server must serve, by id, and what it holds for them.
#[derive(Default)]
pub struct Roster {
    /// From the last report's reply.
    pub valid: HashMap<String, ValidClient>,
    /// How many replies have come: a new client is waited for until the next one.
    pub replies: u64,
    /// What the serving thread holds, for the next report.
    pub held: Vec<HeldClient>,
    /// The manager said `down`: leave the pool.
    pub leave: bool,
    /// Asked for a report now (a client knocked that the roster does not list yet).
    pub report_now: bool,
}

/// The roster, shared by the reporter, the door and the serving thread.
#[derive(Default)]
pub struct Shared {
    roster: Mutex<Roster>,
    changed: Condvar,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Roster> {
        // The roster is plain data: a thread that panicked holding it left nothing half-done
        // that matters more than going on serving.
        self.roster.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits up to `limit` for a reply after `after` replies; the roster then.
    pub fn wait_for_reply(&self, after: u64, limit: Duration) -> MutexGuard<'_, Roster> {
        let mut roster = self.lock();
        roster.report_now = true;
        self.changed.notify_all();
        let (roster, _) = self
            .changed
            .wait_timeout_while(roster, limit, |r| r.replies <= after && !r.leave)
            .unwrap_or_else(|e| e.into_inner());
        roster
    }
}

/// Reports every `period` (or at once when asked) until the manager says `down`. A manager
/// that cannot be reached is tried again next period: the data path does not need it, and a
/// restarted manager rebuilds its accounting from these reports (the server registers again,
/// naming its id, when the manager no longer knows it).
pub fn report_until_down(manager: &PoolClient, shared: &Shared, mut registered: Registered, request: RegisterRequest) {
    loop {
        let report = Report { pid: std::process::id(), host: host_sample(), clients: shared.lock().held.clone() };
        match manager.report(registered.server, &report) {
            Ok(reply) => {
                let mut roster = shared.lock();
                roster.valid = reply.clients.into_iter().map(|c| (c.client.0.clone(), c)).collect();
                roster.replies += 1;
                roster.leave = reply.state == ServerState::Down;
                shared.changed.notify_all();
                if roster.leave {
                    return;
                }
            }
            Err(ClientError::Refused { code: 404, .. }) => {
                let again = RegisterRequest { server: Some(registered.server), ..request.clone() };
                if let Ok(again) = manager.register(&again) {
                    registered = again;
                }
            }
            Err(e) => {
                eprintln!("dlm pool server {}: cannot report to the manager ({e}); trying again", registered.server)
            }
        }
        let period = Duration::from_millis(registered.report_ms.max(100));
        let roster = shared.lock();
        let _ =
            shared.changed.wait_timeout_while(roster, period, |r| !r.report_now).map(|(mut r, _)| r.report_now = false);
    }
}

/// This host's MemFree, Inactive and load averages.
pub fn host_sample() -> HostSample {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| crate::sys::kib_field(&meminfo, name).unwrap_or(0);
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut load = loadavg.split_whitespace().map(|w| w.parse::<f64>().unwrap_or(0.0));
    HostSample {
        mem_free_bytes: field("MemFree"),
        inactive_bytes: field("Inactive"),
        loadavg: [load.next().unwrap_or(0.0), load.next().unwrap_or(0.0), load.next().unwrap_or(0.0)],
    }
}
