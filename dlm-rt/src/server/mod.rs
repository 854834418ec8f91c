//! A memory server: holds evicted DLM pages for the compute process, never more than its
//! capacity, until told to shut down, or until the compute process has been silent for
//! [`SILENCE_LIMIT`] (it is gone, or its link is).
//!
//! Transfers overlap: the server starts each one and takes the next request at once, so a
//! page being written back and pages being fetched cross a network link in both directions
//! together. Only transfers that touch the same bytes of the store wait for each other.

use crate::sys::{self, Mapping};
use crate::transport::{Hello, Job, Request, Transfer, SILENCE_LIMIT};
use mpi::environment::Universe;
use std::ops::Range;
use std::time::{Duration, Instant};

/// After this long without a request the server stops spinning and sleeps between polls:
/// MPI's blocking receive would keep a core busy that the compute process needs.
const SPIN: Duration = Duration::from_micros(100);
/// After this long idle the sleeps between polls grow from 20 µs to 500 µs.
const SHORT_IDLE: Duration = Duration::from_millis(50);

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
    let store = match Mapping::reserve((setup.capacity as usize).max(setup.page_size)) {
        Ok(store) => store,
        Err(e) => sys::fatal(&format!("memory server on {} cannot reserve its capacity: {e}", hello.host)),
    };
    sys::tighten_timer_slack();
    let mut server = Server {
        job: &job,
        store,
        capacity: setup.capacity,
        hello: &hello,
        in_flight: Vec::new(),
        last_heard: Instant::now(),
    };
    server.run();
    drop(server);
    job.acknowledge_shutdown();
    drop(job);
    crate::transport::finalize_server(universe);
    sys::end_server(0)
}

/// Which way a transfer moves the store's bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// A Put's data arriving: the bytes are being written.
    Receiving,
    /// A Get's answer leaving: the bytes are being read.
    Sending,
}

struct InFlight {
    transfer: Transfer,
    bytes: Range<usize>,
    direction: Direction,
}

struct Server<'a> {
    job: &'a Job,
    store: Mapping,
    capacity: u64,
    hello: &'a Hello,
    in_flight: Vec<InFlight>,
    /// When the compute process was last heard from: a request, or a transfer that moved.
    last_heard: Instant,
}

impl Server<'_> {
    /// Serves requests until [`Request::Shutdown`], every transfer finished.
    fn run(&mut self) {
        loop {
            self.progress();
            let request = match self.job.poll_request() {
                Ok(Some(request)) => request,
                Ok(None) => {
                    self.pause_or_give_up();
                    continue;
                }
                Err(lost) => compute_lost(self.hello, lost.mpi_error),
            };
            self.last_heard = Instant::now();
            if !self.serve(request) {
                return;
            }
        }
    }

    /// Starts what `request` asks; false after [`Request::Shutdown`].
    fn serve(&mut self, request: Request) -> bool {
        match request {
            Request::Put { at, len } => {
                let bytes = self.bytes(at, len);
                // Concurrent receives into the same bytes, or a send of them, would mix data.
                self.finish_overlapping(&bytes, |_| true);
                // SAFETY: the bytes lie inside the store and no other transfer uses them now.
                let transfer = unsafe { self.job.start_receive_put(self.store.base().add(bytes.start), bytes.len()) };
                let transfer = transfer.unwrap_or_else(|lost| compute_lost(self.hello, lost.mpi_error));
                self.in_flight.push(InFlight { transfer, bytes, direction: Direction::Receiving });
            }
            Request::Get { at, len } => {
                let bytes = self.bytes(at, len);
                // A Get after a Put of the same bytes must answer with the Put's data.
                self.finish_overlapping(&bytes, |d| d == Direction::Receiving);
                // SAFETY: the bytes lie inside the store and nothing writes them until this
                // send is finished (a later Put of them waits for it).
                let transfer = unsafe { self.job.start_reply(self.store.base().add(bytes.start), bytes.len()) };
                let transfer = transfer.unwrap_or_else(|lost| compute_lost(self.hello, lost.mpi_error));
                self.in_flight.push(InFlight { transfer, bytes, direction: Direction::Sending });
            }
            Request::Free { at, len } => {
                let bytes = self.bytes(at, len);
                self.finish_overlapping(&bytes, |_| true);
                self.store.discard(bytes.start, bytes.len());
            }
            Request::KeepAlive => {}
            Request::Shutdown => {
                self.finish_overlapping(&(0..usize::MAX), |_| true);
                return false;
            }
        }
        true
    }

    /// The store's bytes that a request names; a request beyond the capacity is a bug.
    fn bytes(&self, at: u64, len: u64) -> Range<usize> {
        if at.checked_add(len).is_none_or(|end| end > self.capacity) {
            sys::fatal(&format!("request for bytes {at}..+{len} beyond this server's capacity of {}", self.capacity));
        }
        at as usize..(at + len) as usize
    }

    /// Drops the transfers that have finished.
    fn progress(&mut self) {
        let before = self.in_flight.len();
        let job = self.job;
        let hello = self.hello;
        self.in_flight.retain_mut(|f| !job.test(&mut f.transfer).unwrap_or_else(|e| compute_lost(hello, e.mpi_error)));
        if self.in_flight.len() < before {
            self.last_heard = Instant::now();
        }
    }

    /// Waits until no transfer in `direction`s that `matches` overlaps `bytes`.
    fn finish_overlapping(&mut self, bytes: &Range<usize>, matches: impl Fn(Direction) -> bool) {
        let blocking = |f: &InFlight| matches(f.direction) && f.bytes.start < bytes.end && bytes.start < f.bytes.end;
        while self.in_flight.iter().any(blocking) {
            self.progress();
            self.pause_or_give_up();
        }
    }

    /// One pause between polls, or the end of the server once the compute process has been
    /// silent for [`SILENCE_LIMIT`]. While transfers are in flight it sleeps 20 µs between
    /// polls (the kernel's socket buffers carry the data meanwhile, and the core is free for the
    /// program, other servers and the network stack: three servers on two cores fetched 1.7
    /// times as fast as when they yielded); idle, it spins right after a request and then
    /// sleeps longer the longer it waits.
    fn pause_or_give_up(&self) {
        let quiet = self.last_heard.elapsed();
        if quiet > SILENCE_LIMIT {
            compute_silent(self.hello);
        }
        if !self.in_flight.is_empty() {
            std::thread::sleep(Duration::from_micros(20));
        } else if quiet < SPIN {
            std::hint::spin_loop();
        } else if quiet < SHORT_IDLE {
            std::thread::sleep(Duration::from_micros(20));
        } else {
            std::thread::sleep(Duration::from_micros(500));
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
