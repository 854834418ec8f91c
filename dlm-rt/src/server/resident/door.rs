//! The server's door: a thread that waits in `MPI_Comm_accept` on the server's port and
//! admits a compute process only if the manager lists it as a client of this server with the
//! lease it presents. Anything else is refused and logged; an admitted client becomes a
//! [`Tenant`] with a store of at most the bytes the manager granted it here.

use super::roster::Shared;
use crate::server::tenant::Tenant;
use crate::sys;
use crate::transport::{Admission, Hello, Job, Port};
use dlm_pool::proto::ValidClient;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

/// How long a connection may take to say who it is.
const ADMISSION_LIMIT: Duration = Duration::from_secs(5);

/// How long to wait for the manager to list a client that has just joined (it learns of it in
/// its next report's reply).
const LISTING_LIMIT: Duration = Duration::from_secs(3);

/// A client admitted: who the manager says it is, and its tenant.
pub struct Admitted {
    pub client: ValidClient,
    pub tenant: Tenant,
}

/// Accepts connections until `closing` is set (the serving thread then connects once itself to
/// wake this thread from `MPI_Comm_accept`).
pub fn keep_door(port: &Port, shared: &Shared, closing: &AtomicBool, admitted: Sender<Admitted>) {
    loop {
        let job = match port.accept() {
            Ok(job) => job,
            Err(code) => {
                sys::exit_now(1, &format!("resident memory server: MPI_Comm_accept failed (MPI error {code})"))
            }
        };
        if closing.load(Ordering::Acquire) {
            return;
        }
        if let Some(client) = admit(job, shared) {
            if admitted.send(client).is_err() {
                return;
            }
        }
    }
}

/// The admission of one connection: its claim checked against the roster, then the handshake.
fn admit(job: Job, shared: &Shared) -> Option<Admitted> {
    job.return_errors();
    let Some(claim) = job.receive_admission(ADMISSION_LIMIT) else {
        eprintln!("dlm pool server: refused a connection that did not say which client it is");
        return None;
    };
    let client = match listed(shared, &claim) {
        Ok(client) => client,
        Err(reason) => {
            eprintln!("dlm pool server: refused a connection claiming client {}: {reason}", claim.client);
            job.refuse(&reason);
            return None;
        }
    };
    let hello = Hello { host: sys::hostname(), pid: std::process::id(), available_memory: 0 };
    let setup = job.admit(&hello);
    if setup.capacity > client.granted_bytes || setup.page_size == 0 {
        eprintln!(
            "dlm pool server: refused client {} ({}): it asked to store {} bytes, the manager granted it {}",
            client.client, client.user, setup.capacity, client.granted_bytes
        );
        return None;
    }
    match Tenant::new(job, setup.capacity, setup.page_size) {
        Ok(tenant) => {
            eprintln!(
                "dlm pool server: admitted client {} (user {}, pid {} on {}), {} bytes",
                client.client, client.user, client.pid, client.host, setup.capacity
            );
            Some(Admitted { client, tenant })
        }
        Err(e) => {
            eprintln!("dlm pool server: cannot reserve a store for client {}: {e}", client.client);
            None
        }
    }
}

/// The roster's record of the client `claim` names, if its lease matches; the roster is
/// refreshed once if it does not list the client yet.
fn listed(shared: &Shared, claim: &Admission) -> Result<ValidClient, String> {
    let check = |roster: &super::roster::Roster| match roster.valid.get(&claim.client) {
        Some(client) if client.lease == claim.lease => Ok(Some(client.clone())),
        Some(_) => Err("its lease is not the one the manager gave that client".to_string()),
        None => Ok(None),
    };
    let mut replies = {
        let roster = shared.lock();
        if let Some(client) = check(&roster)? {
            return Ok(client);
        }
        roster.replies
    };
    // A report already on its way may carry the list from before the client joined: wait for
    // the replies that follow it.
    let deadline = Instant::now() + LISTING_LIMIT;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let roster = shared.wait_for_reply(replies, left);
        if let Some(client) = check(&roster)? {
            return Ok(client);
        }
        if roster.leave {
            break;
        }
        replies = roster.replies;
    }
    Err("the manager lists no such client for this server".to_string())
}
