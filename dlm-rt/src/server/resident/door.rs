//! The server's door: a thread that answers knocks (TCP). A knock whose client and lease the
//! manager lists for this server gets a worker of its own, started as the client's user
//! (`worker`), and the worker's MPI port; anything else is refused and logged.

use super::roster::Shared;
use crate::sys;
use crate::transport::{self, Admission, Door, Knock};
use dlm_pool::proto::ValidClient;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

/// How long to wait for the manager to list a client that has just joined (it learns of it in
/// its next report's reply).
const LISTING_LIMIT: Duration = Duration::from_secs(3);

/// A client's worker: who the manager says the client is, and the process.
pub struct Worker {
    pub client: ValidClient,
    pub process: Child,
}

/// Answers knocks for as long as the server runs.
pub fn keep_door(door: &Door, rendezvous: &str, shared: &Shared, started: Sender<Worker>) {
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
        let Some(worker) = start_worker(knock, rendezvous, &client) else { continue };
        eprintln!(
            "dlm pool server: admitted client {} (user {}, pid {} on {}), {} bytes, worker pid {}",
            client.client,
            client.user,
            client.pid,
            client.host,
            client.granted_bytes,
            worker.id()
        );
        if started.send(Worker { client, process: worker }).is_err() {
            return;
        }
    }
}

/// Starts `client`'s worker as the client's user and lets the knocker in with its port.
fn start_worker(knock: Knock, rendezvous: &str, client: &ValidClient) -> Option<Child> {
    let refuse = |knock: Knock, why: String| {
        eprintln!("dlm pool server: cannot serve client {} (user {}): {why}", client.client, client.user);
        knock.refuse(&why);
        None
    };
    if !can_run_as(client.uid) {
        let why = format!(
            "this server runs as uid {} and cannot start a worker as uid {} (Open MPI connects only processes of \
             one user): run the pool as root",
            euid(),
            client.uid
        );
        return refuse(knock, why);
    }
    let mut worker = match worker_command(rendezvous, client).spawn() {
        Ok(worker) => worker,
        Err(e) => return refuse(knock, format!("cannot start its worker: {e}")),
    };
    let Some(port) = read_port(&mut worker) else {
        let _ = worker.kill();
        let _ = worker.wait();
        return refuse(knock, "its worker did not start".into());
    };
    if knock.let_in(&port).is_err() {
        let _ = worker.kill();
        let _ = worker.wait();
        return None;
    }
    Some(worker)
}

/// Whether this server can start a process as `uid`: it is that user, or root.
fn can_run_as(uid: u32) -> bool {
    euid() == 0 || euid() == uid
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// `dlm pool worker` as the client's user, a singleton of its own (mpirun's job variables left
/// out), stdout a pipe for its port's name.
fn worker_command(rendezvous: &str, client: &ValidClient) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| "dlm".into());
    let mut command = Command::new(exe);
    command
        .args(["pool", "worker", "--rendezvous", rendezvous, "--capacity"])
        .arg(client.granted_bytes.to_string())
        .env_clear()
        .envs(transport::singleton_env().filter(|(name, _)| client.uid == euid() || passed_to_users(name)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    sys::end_with_parent(&mut command);
    if client.uid != euid() {
        // The worker is the client's: its user and group, a directory it may use.
        command.uid(client.uid).gid(sys::primary_group(client.uid).unwrap_or(client.uid));
        command.env("HOME", std::env::temp_dir()).current_dir(std::env::temp_dir());
    }
    command
}

/// Whether a variable of this (root's) environment is passed to a worker of another user:
/// what MPI and the program's search path need, nothing else of the administrator's.
fn passed_to_users(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    ["PATH", "LANG", "LC_ALL", "TMPDIR"].contains(&name.as_ref())
        || ["OMPI_MCA_", "UCX_", "PMIX_MCA_"].iter().any(|prefix| name.starts_with(prefix))
}

/// The worker's first line: its MPI port's name (within 30 s).
fn read_port(worker: &mut Child) -> Option<String> {
    let stdout = worker.stdout.take()?;
    let (line, arrived) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut port = String::new();
        let _ = BufReader::new(stdout).read_line(&mut port);
        let _ = line.send(port);
    });
    let port = arrived.recv_timeout(Duration::from_secs(30)).ok()?;
    Some(port.trim().to_string()).filter(|p| !p.is_empty())
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
