//! The server's door: a thread that answers knocks (TCP) and admits a compute process only if
//! the manager lists it as a client of this server with the lease it presents; it then accepts
//! that process on the MPI port. Anything else is refused and logged; an admitted client
//! becomes a [`Tenant`] with a store of at most the bytes the manager granted it here.

use super::roster::Shared;
use crate::server::tenant::Tenant;
use crate::sys;
use crate::transport::{Admission, Door, Hello, Knock, Port};
use dlm_pool::proto::ValidClient;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

/// How long to wait for the manager to list a client that has just joined (it learns of it in
/// its next report's reply).
const LISTING_LIMIT: Duration = Duration::from_secs(3);

/// A client admitted: who the manager says it is, and its tenant.
pub struct Admitted {
    pub client: ValidClient,
    pub tenant: Tenant,
}

/// Answers knocks for as long as the server runs: a knock whose client and lease the manager
/// lists for this server is let in and accepted on the MPI port, one at a time (the serving
/// thread stays out of MPI meanwhile: Open MPI 4.1 loses a connection being made while another
/// thread makes progress, measured); any other knock is refused and logged.
pub fn keep_door(door: &Door, port: &Port, shared: &Shared, admitted: Sender<Admitted>) {
    loop {
        let knock = match door.next() {
            Ok(knock) => knock,
            Err(e) => sys::exit_now(1, &format!("resident memory server: its door (TCP) failed: {e}")),
        };
        let client = match listed(shared, &knock.admission) {
            Ok(client) => client,
            Err(reason) => {
                eprintln!("dlm pool server: refused a connection claiming client {}: {reason}", knock.admission.client);
                knock.refuse(&reason);
                continue;
            }
        };
        let Some(tenant) = let_in(knock, port, shared, &client) else { continue };
        eprintln!(
            "dlm pool server: admitted client {} (user {}, pid {} on {}), {} bytes",
            client.client,
            client.user,
            client.pid,
            client.host,
            tenant.capacity()
        );
        if admitted.send(Admitted { client, tenant }).is_err() {
            return;
        }
    }
}

/// Lets a listed client in: `go` on its knock, then its MPI connection accepted, greeted and
/// made a tenant with the store its setup asks for (at most its grant here).
fn let_in(knock: Knock, port: &Port, shared: &Shared, client: &ValidClient) -> Option<Tenant> {
    let _mpi = shared.mpi();
    let Ok(_knocked) = knock.let_in() else { return None };
    shared.set_accepting(true);
    let accepted = port.accept();
    shared.set_accepting(false);
    let job = match accepted {
        Ok(accepted) => accepted.link(),
        Err(code) => sys::exit_now(1, &format!("resident memory server: MPI_Comm_accept failed (MPI error {code})")),
    };
    job.return_errors();
    let hello = Hello { host: sys::hostname(), pid: std::process::id(), available_memory: 0 };
    let setup = job.greet(&hello);
    if setup.capacity > client.granted_bytes || setup.page_size == 0 {
        eprintln!(
            "dlm pool server: refused client {} ({}): it asked to store {} bytes, the manager granted it {}",
            client.client, client.user, setup.capacity, client.granted_bytes
        );
        return None;
    }
    Tenant::new(job, setup.capacity, setup.page_size)
        .map_err(|e| eprintln!("dlm pool server: cannot reserve a store for client {}: {e}", client.client))
        .ok()
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
