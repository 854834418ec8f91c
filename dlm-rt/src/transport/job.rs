//! [`Job`]: the MPI links between one compute process and its servers, and the non-blocking
//! page transfers ([`Transfer`]) between them. A failed transfer on the compute side ends the
//! program with a message naming the server (`liveness`).
//!
//! A link is a communicator and the peer's rank in it. The servers a job spawned or that
//! `mpirun` started share one communicator (the compute process is rank 0, server `s` rank
//! `s + 1`); each server of a pool has a communicator of its own, made when the compute process
//! connected to it (ranks 0 and 1). A server sees one link: its compute process.

use super::protocol::{Request, Run, COMPUTE_RANK, TAG_DATA, TAG_REQUEST, TAG_RUNS};
use mpi::raw::{AsRaw, FromRaw};
use mpi::topology::SimpleCommunicator;
use std::os::fd::OwnedFd;
use std::time::Instant;

/// The links of one compute process and its servers.
pub struct Job {
    /// The communicators the links use; freed on drop.
    comms: Vec<SimpleCommunicator>,
    /// Compute side: each server's link; server side: the compute process's.
    pub(super) links: Vec<Link>,
    /// Compute side: the servers on this host, each with a pidfd that turns readable if it exits.
    pub(super) watched: Vec<Watched>,
    /// Compute side: each server's host and pid, to name it when it fails or stops answering.
    pub(super) peers: Vec<(String, u32)>,
    /// Intercommunicators to disconnect when the job ends: the spawn intercommunicator on the
    /// spawning side (the servers disconnect from their parent when they finalize), and on both
    /// sides of a pool the ones `MPI_Comm_connect` and `MPI_Comm_accept` made.
    connected: Vec<mpi::ffi::MPI_Comm>,
    /// Compute side: when the servers were last told that the program is alive.
    pub(super) last_keep_alive: std::cell::Cell<Instant>,
}

/// One peer: the index of its communicator in [`Job::comms`] and its rank there.
#[derive(Debug, Clone, Copy)]
pub(super) struct Link {
    comm: usize,
    rank: i32,
    pub(super) state: LinkState,
}

/// Whether a peer is still part of the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LinkState {
    Open,
    /// A pool's server the program moved its pages off and told to let it go.
    Released,
}

/// A memory server whose exit the compute process can see.
pub(super) struct Watched {
    pub(super) server: usize,
    pub(super) pid: u32,
    pub(super) host: String,
    pub(super) exited: OwnedFd,
}

impl Drop for Job {
    fn drop(&mut self) {
        for mut intercomm in self.connected.drain(..) {
            // SAFETY: the intercommunicator (from spawn, connect or accept) is live and used by
            // nothing else.
            unsafe { mpi::ffi::MPI_Comm_disconnect(&mut intercomm) };
        }
    }
}

/// A page-data transfer in flight with one peer ([`Job::start_send_data`], [`Job::start_get`]
/// on the compute side; [`Job::start_receive_put`], [`Job::start_reply`] on a server); it must
/// be finished before its buffer is changed or read.
pub struct Transfer {
    pub(super) request: mpi::ffi::MPI_Request,
    /// The peer at the other end: on the compute side the memory server's index.
    pub(super) peer: usize,
}

impl Transfer {
    /// The memory server at the other end (compute side).
    pub(super) fn server(&self) -> usize {
        self.peer
    }
}

/// MPI reported a transfer or the peer behind it as failed (the peer's process or host is
/// gone, as far as the transport can tell).
#[derive(Debug, Clone, Copy)]
pub struct PeerLost {
    pub mpi_error: i32,
}

// SAFETY: a request is only a handle; like the Job, it is used by one thread at a time.
unsafe impl Send for Transfer {}

// SAFETY: MPI runs in MPI_THREAD_SERIALIZED mode and a Job is used by one thread at a time: the
// starting thread hands it to the pager thread, which hands it back when it ends.
unsafe impl Send for Job {}

impl Job {
    /// The job of `comm`, where the compute process is rank 0 and the servers follow, seen from
    /// `rank`; `spawned` is the intercommunicator the servers were spawned through.
    pub(super) fn new(comm: SimpleCommunicator, rank: i32, spawned: Option<mpi::ffi::MPI_Comm>) -> Job {
        use mpi::topology::Communicator;
        let links = if rank == COMPUTE_RANK {
            (1..comm.size()).map(|rank| Link { comm: 0, rank, state: LinkState::Open }).collect()
        } else {
            vec![Link { comm: 0, rank: COMPUTE_RANK, state: LinkState::Open }]
        };
        Job {
            comms: vec![comm],
            links,
            watched: Vec::new(),
            peers: Vec::new(),
            connected: spawned.into_iter().collect(),
            last_keep_alive: Instant::now().into(),
        }
    }

    /// A job with no link yet (a pool client before it connects to its servers).
    pub(super) fn unlinked() -> Job {
        Job {
            comms: Vec::new(),
            links: Vec::new(),
            watched: Vec::new(),
            peers: Vec::new(),
            connected: Vec::new(),
            last_keep_alive: Instant::now().into(),
        }
    }

    /// Adds a link over its own communicator: `merged` (ranks 0 and 1) made from the
    /// intercommunicator `intercomm`, disconnected when the job ends; the peer is `rank`.
    /// Returns the new peer's index.
    pub(super) fn add_link(&mut self, merged: SimpleCommunicator, intercomm: mpi::ffi::MPI_Comm, rank: i32) -> usize {
        self.comms.push(merged);
        self.connected.push(intercomm);
        self.links.push(Link { comm: self.comms.len() - 1, rank, state: LinkState::Open });
        self.links.len() - 1
    }

    /// The servers still in the job (compute side).
    pub(super) fn open_servers(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.links.len()).filter(|&s| self.links[s].state == LinkState::Open)
    }

    /// The communicator and rank of `peer`.
    pub(super) fn route(&self, peer: usize) -> (&SimpleCommunicator, i32) {
        let link = self.links[peer];
        (&self.comms[link.comm], link.rank)
    }

    /// From now on MPI errors on the job are returned, not fatal: a failed transfer ends the
    /// process with a DLM message that names the peer instead of MPI's abort. Called once the
    /// handshake is over: every call after it checks what MPI returns.
    pub fn return_errors(&self) {
        for comm in &self.comms {
            // SAFETY: the communicator is live; the handler is MPI's predefined one.
            let rc = unsafe { mpi::ffi::MPI_Comm_set_errhandler(comm.as_raw(), mpi::ffi::RSMPI_ERRORS_RETURN) };
            if rc != 0 {
                crate::sys::fatal(&format!("MPI refused to return errors on the job's communicator (MPI error {rc})"));
            }
        }
    }

    /// Number of memory servers (compute side).
    pub fn servers(&self) -> usize {
        self.links.len()
    }

    /// Sends a request to `server`; ends the program naming the server if MPI reports it failed.
    pub fn send(&self, server: usize, request: Request) {
        let header = request.encode();
        // SAFETY: the header is 3 live u64 words; the datatype matches them.
        if let Err(lost) = unsafe { self.send_words(server, TAG_REQUEST, &header) } {
            self.failed(server, lost);
        }
    }

    /// A blocking send of `words` to `peer`.
    ///
    /// # Safety
    /// MPI must be usable from this thread (the pager's, or the starting thread's before it).
    pub(super) unsafe fn send_words(&self, peer: usize, tag: i32, words: &[u64]) -> Result<(), PeerLost> {
        use mpi::datatype::Equivalence;
        let (comm, rank) = self.route(peer);
        // SAFETY: `words` is a live slice of `words.len()` u64 values.
        let rc = unsafe {
            mpi::ffi::MPI_Send(
                words.as_ptr().cast(),
                words.len() as i32,
                u64::equivalent_datatype().as_raw(),
                rank,
                tag,
                comm.as_raw(),
            )
        };
        if rc != 0 {
            return Err(PeerLost { mpi_error: rc });
        }
        Ok(())
    }

    /// Starts sending page data (after a [`Request::Put`]) and returns at once; the send goes on
    /// in the server while this thread works.
    ///
    /// # Safety
    /// `[data, data+len)` must stay readable and unchanged until the send is finished.
    pub unsafe fn start_send_data(&self, server: usize, data: *const u8, len: usize) -> Transfer {
        // SAFETY: the caller keeps the buffer valid; the arguments come from `post`.
        let posted = unsafe {
            self.post(server, len, |count, datatype, rank, comm, request| {
                mpi::ffi::MPI_Isend(data.cast(), count, datatype, rank, TAG_DATA, comm, request)
            })
        };
        posted.unwrap_or_else(|lost| self.failed(server, lost))
    }

    /// Sends a [`Request::PutRuns`] of `runs` at `at` and their list, then starts sending each
    /// run's data, packed back to back at `data`, and returns at once. Each run is a message of
    /// its own: a server receives it straight into its store, and runs of a block or two stay
    /// small enough for MPI to deliver them eagerly (one message through an indexed datatype,
    /// or one packed message scattered by the server, kept the server busy while Gets waited:
    /// docs/PERFORMANCE.md).
    ///
    /// # Safety
    /// `[data, data + the runs' total length)` must stay readable and unchanged until every
    /// send is finished.
    pub unsafe fn start_put_runs(&self, server: usize, at: u64, runs: &[Run], data: *const u8) -> Vec<Transfer> {
        self.send(server, Request::PutRuns { at, runs: runs.len() as u64 });
        // SAFETY: the list is live u64 words.
        if let Err(lost) = unsafe { self.send_words(server, TAG_RUNS, runs.as_flattened()) } {
            self.failed(server, lost);
        }
        let mut from = 0;
        let mut sends = Vec::with_capacity(runs.len());
        for &[_, len] in runs {
            // SAFETY: the caller keeps the packed data valid until the sends are finished.
            sends.push(unsafe { self.start_send_data(server, data.add(from), len as usize) });
            from += len as usize;
        }
        sends
    }

    /// Sends a [`Request::Get`] of `len` bytes at `at` and starts receiving them into `into`
    /// without waiting. Replies come in the order of the requests, so every Get's receive is
    /// posted with it.
    ///
    /// # Safety
    /// `[into, into+len)` must stay writable and untouched until the transfer is finished.
    pub unsafe fn start_get(&self, server: usize, at: u64, into: *mut u8, len: usize) -> Transfer {
        // SAFETY: the caller keeps the buffer valid; the arguments come from `post`.
        let posted = unsafe {
            self.post(server, len, |count, datatype, rank, comm, request| {
                mpi::ffi::MPI_Irecv(into.cast(), count, datatype, rank, TAG_DATA, comm, request)
            })
        };
        let transfer = posted.unwrap_or_else(|lost| self.failed(server, lost));
        self.send(server, Request::Get { at, len: len as u64 });
        transfer
    }

    /// Posts a non-blocking page transfer of `len` bytes with `peer` (`MPI_Isend`
    /// or `MPI_Irecv`, given count, datatype, rank, communicator and the request to fill).
    ///
    /// # Safety
    /// `start` must be safe to call with those arguments (its buffer valid until finished).
    pub(super) unsafe fn post(
        &self,
        peer: usize,
        len: usize,
        start: impl FnOnce(i32, mpi::ffi::MPI_Datatype, i32, mpi::ffi::MPI_Comm, *mut mpi::ffi::MPI_Request) -> i32,
    ) -> Result<Transfer, PeerLost> {
        use mpi::datatype::Equivalence;
        let count = i32::try_from(len).expect("a DLM page is smaller than 2 GiB");
        // SAFETY: reading MPI's predefined null request; MPI overwrites it when the post works.
        let mut request = unsafe { mpi::ffi::RSMPI_REQUEST_NULL };
        let (comm, rank) = self.route(peer);
        let rc = start(count, u8::equivalent_datatype().as_raw(), rank, comm.as_raw(), &mut request);
        if rc != 0 {
            return Err(PeerLost { mpi_error: rc });
        }
        Ok(Transfer { request, peer })
    }

    /// Whether the transfer has finished (its buffer may then be used), or failed.
    pub fn test(&self, transfer: &mut Transfer) -> Result<bool, PeerLost> {
        let mut done = 0;
        let mut status = std::mem::MaybeUninit::uninit();
        // SAFETY: the request is live until MPI_Test reports it done (MPI then frees it).
        let rc = unsafe { mpi::ffi::MPI_Test(&mut transfer.request, &mut done, status.as_mut_ptr()) };
        if rc != 0 {
            return Err(PeerLost { mpi_error: rc });
        }
        Ok(done != 0)
    }

    /// Whether the transfer has finished (its buffer may then be used); ends the program with a
    /// message naming the server if MPI reports it failed.
    pub fn finished(&self, transfer: &mut Transfer) -> bool {
        self.test(transfer).unwrap_or_else(|lost| self.failed(transfer.server(), lost))
    }

    /// Whether every one of `transfers` has finished (the first unfinished one ends the test).
    pub fn all_finished(&self, transfers: &mut [Transfer]) -> bool {
        transfers.iter_mut().all(|transfer| self.finished(transfer))
    }

    /// Waits until every one of `transfers` has finished, as [`Job::finish`] does.
    pub fn finish_all(&self, transfers: &mut [Transfer]) {
        transfers.iter_mut().for_each(|transfer| self.finish(transfer));
    }

    /// Waits until the transfer has finished; ends the program with a message naming the server
    /// if it has exited or does not answer within [`UNANSWERED_LIMIT`]. The other servers keep
    /// hearing that the program is alive meanwhile (a page may take seconds on a slow link).
    pub fn finish(&self, transfer: &mut Transfer) {
        self.wait_for(transfer.server(), || {
            self.keep_alive_if_due();
            self.finished(transfer)
        });
    }
}

/// The intracommunicator of an intercommunicator's two sides: the side with `high` false (the
/// compute process) takes the low ranks.
pub(super) fn merge(intercomm: mpi::ffi::MPI_Comm, high: bool) -> SimpleCommunicator {
    // SAFETY: `intercomm` is a live intercommunicator; the merged one is new and owned by the result.
    unsafe {
        let mut merged = mpi::ffi::RSMPI_COMM_NULL;
        mpi::ffi::MPI_Intercomm_merge(intercomm, i32::from(high), &mut merged);
        SimpleCommunicator::from_raw(merged)
    }
}
