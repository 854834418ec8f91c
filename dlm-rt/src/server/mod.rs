//! Memory servers: processes that hold evicted DLM pages for compute processes, never more
//! than they were given.
//!
//! - this file: a job's own server (spawned, or a rank of `mpirun`), which serves one compute
//!   process until told to shut down, or until it has been silent for [`SILENCE_LIMIT`] (it is
//!   gone, or its link is).
//! - `tenant`: one compute process as a server serves it ([`Tenant`]): its store, transfers,
//!   and the ways it ends.
//! - `resident`: a pool's resident server, which the pool manager tells whom to admit and which
//!   starts a worker process for each program it admits.

pub mod resident;
mod tenant;

use crate::sys;
use crate::transport::{Hello, Job, SILENCE_LIMIT};
use mpi::environment::Universe;
use tenant::{Ended, Tenant};

/// Serves until the compute process says shutdown, then finalizes MPI and exits 0.
pub fn serve(universe: Universe, job: Job) -> ! {
    let hello = Hello {
        host: sys::hostname(),
        pid: std::process::id(),
        available_memory: sys::available_memory().unwrap_or(0),
    };
    let setup = job.hello(&hello);
    job.return_errors();
    explain_a_dead_program(&hello, setup.compute_pid);
    if setup.page_size == 0 {
        // The compute process rejected its options; it reports why and exits non-zero. Exiting
        // 0 here lets mpirun wait for it instead of killing it before it has printed.
        drop(job);
        crate::transport::finalize_server(universe);
        sys::end_server(0);
    }
    let mut tenant = match Tenant::new(job, setup.capacity, setup.page_size) {
        Ok(tenant) => tenant,
        Err(e) => sys::fatal(&format!("memory server on {} cannot reserve its capacity: {e}", hello.host)),
    };
    sys::tighten_timer_slack();
    serve_until_shutdown(&hello, &mut tenant);
    tenant.job.acknowledge_shutdown();
    drop(tenant);
    crate::transport::finalize_server(universe);
    sys::end_server(0)
}

/// Serves the one tenant until it leaves; any other end of it ends the server.
fn serve_until_shutdown(hello: &Hello, tenant: &mut Tenant) {
    loop {
        match tenant.step() {
            Ok(true) => {}
            Ok(false) => tenant::pause(tenant.busy(), tenant.quiet()),
            Err(Ended::Left) => return,
            Err(Ended::Lost(mpi_error)) => compute_lost(hello, mpi_error),
            Err(Ended::Silent) => compute_silent(hello),
            Err(Ended::OutOfBounds { at, len, capacity }) => {
                sys::fatal(&format!("request for bytes {at}..+{len} beyond this server's capacity of {capacity}"))
            }
            Err(Ended::Unordered { at }) => sys::fatal(&format!("request to write pieces at {at} that overlap")),
        }
    }
}

/// If the transport gives up because the program on this host died (UCX aborts when the
/// process it copies from is gone), the server ends with one line saying so.
fn explain_a_dead_program(hello: &Hello, compute_pid: u32) {
    if compute_pid == 0 {
        return;
    }
    let Ok(program) = sys::watch_process(compute_pid) else { return };
    let message = format!(
        "dlm: memory server on {} (pid {}): the program it served (pid {compute_pid} on this host) has ended \
         without shutting DLM down; this server exits\n",
        hello.host, hello.pid
    );
    sys::exit_on_abort_if_ended(program, message);
}

fn compute_silent(hello: &Hello) -> ! {
    sys::exit_now(
        1,
        &format!(
            "memory server on {} (pid {}): the program has not been heard from for {} s: it ended without \
             shutting DLM down, or the link to its host is down; this server exits and gives its memory back",
            hello.host,
            hello.pid,
            SILENCE_LIMIT.as_secs()
        ),
    )
}

fn compute_lost(hello: &Hello, mpi_error: i32) -> ! {
    sys::exit_now(
        1,
        &format!(
            "memory server on {} (pid {}): the transfer with the program failed (MPI error {mpi_error}): the \
             program has ended or the link to its host broke; this server exits and gives its memory back",
            hello.host, hello.pid
        ),
    )
}
