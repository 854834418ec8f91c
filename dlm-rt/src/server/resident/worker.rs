//! A pool client's worker (`dlm pool worker`): the process that holds one program's pages on a
//! resident server's host. The server starts it as the program's own user when the program
//! knocks (Open MPI connects only processes of one user, and the pages then count against that
//! user), and it ends with the program: when it leaves, dies or goes silent, or when the server
//! ends it because the manager no longer lists the program.
//!
//! It starts MPI as a singleton with the pool's rendezvous, opens a port, writes the port's
//! name on stdout (the server hands it to the program), accepts the one connection, and serves
//! it as a job's own server serves its program.

use crate::server::tenant::{self, Ended, Tenant};
use crate::sys;
use crate::transport::{self, Hello, Port};
use std::io::Write;

/// Serves one program with a store of at most `capacity` bytes; exits 0 when it leaves.
pub fn worker(rendezvous: &str, capacity: u64) -> ! {
    let (universe, _) = transport::start_unlinked(rendezvous);
    let port = Port::open().unwrap_or_else(|code| fail(&format!("MPI_Open_port failed (MPI error {code})")));
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "{}", port.name()).and_then(|()| stdout.flush()).is_err() {
        fail("its server is gone");
    }
    let job = port.accept().unwrap_or_else(|code| fail(&format!("MPI_Comm_accept failed (MPI error {code})"))).link();
    job.return_errors();
    let hello = Hello { host: sys::hostname(), pid: std::process::id(), available_memory: 0 };
    let setup = job.hello(&hello);
    if setup.capacity > capacity || setup.page_size == 0 {
        fail(&format!("the program asked to store {} bytes; it was granted {capacity}", setup.capacity));
    }
    let mut tenant = Tenant::new(job, setup.capacity, setup.page_size)
        .unwrap_or_else(|e| fail(&format!("cannot reserve {} bytes: {e}", setup.capacity)));
    sys::tighten_timer_slack();
    let ended = loop {
        match tenant.step() {
            Ok(true) => {}
            Ok(false) => tenant::pause(tenant.busy(), tenant.quiet()),
            Err(ended) => break ended,
        }
    };
    if ended != Ended::Left {
        fail(&why(&ended));
    }
    tenant.job.acknowledge_shutdown();
    drop(tenant);
    drop(port);
    transport::finalize_server(universe);
    sys::end_server(0)
}

fn fail(why: &str) -> ! {
    sys::exit_now(1, &format!("pool worker (pid {}) on {}: {why}", std::process::id(), sys::hostname()))
}

fn why(ended: &Ended) -> String {
    match ended {
        Ended::Left => "the program left".into(),
        Ended::Lost(code) => format!("the link to the program failed (MPI error {code}): it died or its host did"),
        Ended::Silent => "the program has been silent for 10 s".into(),
        Ended::OutOfBounds { at, len, capacity } => {
            format!("refused a request for bytes {at}..+{len} beyond the {capacity} bytes granted, and ends")
        }
        Ended::Unordered { at } => format!("refused a write at {at} whose pieces overlap, and ends"),
    }
}
