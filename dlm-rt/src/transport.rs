//! MPI: bringing up the job (under `mpirun` or as a singleton that spawns its servers) and the
//! page protocol between the compute process (rank 0) and the memory servers (ranks 1..=K).
//!
//! Every request is a [`Header`] on [`TAG_REQUEST`]; page data travels separately on
//! [`TAG_DATA`] so that it is sent from and received into page memory without extra copies.
//! MPI's non-overtaking rule (same source, same tag, same communicator) keeps requests ordered.

use mpi::point_to_point::{Destination, Source};
use mpi::raw::{AsRaw, FromRaw};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::Threading;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// The compute process's rank in the job communicator.
pub const COMPUTE_RANK: i32 = 0;
const TAG_REQUEST: i32 = 11;
const TAG_DATA: i32 = 12;
const TAG_HELLO: i32 = 13;
const TAG_SETUP: i32 = 14;
const TAG_BYE: i32 = 15;

/// What the compute process asks of a memory server. `at` and `len` are bytes of the server's
/// store: a whole DLM page is one slot, and a part of it (a block fetched on its own) is a
/// range inside its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Store `len` bytes at `at`; the data follows on [`TAG_DATA`].
    Put { at: u64, len: u64 },
    /// Send back `len` bytes from `at` on [`TAG_DATA`].
    Get { at: u64, len: u64 },
    /// Forget `len` bytes at `at` and give their memory back to the host.
    Free { at: u64, len: u64 },
    /// Answer on `TAG_BYE` and exit.
    Shutdown,
    /// Nothing to do: the compute process is alive (sent when it has been quiet for a while, so
    /// that a server can tell a quiet program from one that is gone).
    KeepAlive,
}

type Header = [u64; 3];

impl Request {
    fn encode(self) -> Header {
        match self {
            Request::Put { at, len } => [1, at, len],
            Request::Get { at, len } => [2, at, len],
            Request::Free { at, len } => [3, at, len],
            Request::Shutdown => [4, 0, 0],
            Request::KeepAlive => [5, 0, 0],
        }
    }

    fn decode(h: Header) -> Option<Self> {
        match h[0] {
            1 => Some(Request::Put { at: h[1], len: h[2] }),
            2 => Some(Request::Get { at: h[1], len: h[2] }),
            3 => Some(Request::Free { at: h[1], len: h[2] }),
            4 => Some(Request::Shutdown),
            5 => Some(Request::KeepAlive),
            _ => None,
        }
    }
}

/// What a server tells the compute process when the job starts.
#[derive(Debug, Clone)]
pub struct Hello {
    pub host: String,
    pub pid: u32,
    pub available_memory: u64,
}

/// What the compute process tells each server: the page size, how much it may hold, and the
/// compute process's pid if it runs on the server's host (0 otherwise), so that the server can
/// tell when the program has died.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub page_size: usize,
    pub capacity: u64,
    pub compute_pid: u32,
}

/// How this process was started, and so what it must do.
pub enum Launch {
    /// Rank 0 of `mpirun -np K+1`; the servers are the other ranks of the world.
    MpirunCompute(Job),
    /// Rank 1..K of `mpirun`: serve.
    MpirunServer(Job),
    /// Started without `mpirun` (or `mpirun -np 1`): the servers must be spawned.
    Singleton,
    /// Spawned by a singleton: serve.
    SpawnedServer(Job),
}

/// The MPI library, finalized on drop, and the communicator of the job.
pub struct Job {
    pub comm: SimpleCommunicator,
    /// Compute side: the servers on this host, each with a pidfd that turns readable if it exits.
    watched: Vec<Watched>,
    /// Compute side: each server's host and pid, to name it when it fails or stops answering.
    peers: Vec<(String, u32)>,
    /// The spawn intercommunicator, on the spawning side: disconnected when the job ends, as the
    /// servers disconnect from their parent when they finalize.
    spawned: Option<mpi::ffi::MPI_Comm>,
    /// Compute side: when the servers were last told that the program is alive.
    last_keep_alive: std::cell::Cell<Instant>,
}

/// A memory server whose exit the compute process can see.
struct Watched {
    server: usize,
    pid: u32,
    host: String,
    exited: OwnedFd,
}

impl Drop for Job {
    fn drop(&mut self) {
        if let Some(mut intercomm) = self.spawned.take() {
            // SAFETY: the intercommunicator from MPI_Comm_spawn_multiple is live and used by nothing else.
            unsafe { mpi::ffi::MPI_Comm_disconnect(&mut intercomm) };
        }
    }
}

/// A page-data transfer in flight with one peer ([`Job::start_send_data`], [`Job::start_get`]
/// on the compute side; [`Job::start_receive_put`], [`Job::start_reply`] on a server); it must
/// be finished before its buffer is changed or read.
pub struct Transfer {
    request: mpi::ffi::MPI_Request,
    /// The peer's rank in the job communicator.
    rank: i32,
}

impl Transfer {
    /// The memory server at the other end (compute side).
    fn server(&self) -> usize {
        (self.rank - 1) as usize
    }
}

/// MPI reported a transfer or the peer behind it as failed (the peer's process or host is
/// gone, as far as the transport can tell).
#[derive(Debug, Clone, Copy)]
pub struct PeerLost {
    pub mpi_error: i32,
}

/// How long a transfer may wait without an answer before the server counts as unreachable: a
/// cut link or a hung host never answers, and MPI would wait forever. A 2 MiB page behind a
/// full pipeline of them takes well under a second even on a 1 Gbit/s link.
const UNANSWERED_LIMIT: Duration = Duration::from_secs(5);

/// How often the compute process tells its servers that it is alive (whether or not it is
/// paging: a request to one server says nothing to the others).
pub const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// How long a server waits without hearing from the compute process (no request, no transfer
/// finishing) before it counts the program as gone (killed, or behind a cut link) and exits
/// rather than hold its memory forever. A program stopped for longer (in a debugger, by
/// SIGSTOP) loses its servers.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(10);

// SAFETY: a request is only a handle; like the Job, it is used by one thread at a time.
unsafe impl Send for Transfer {}

// SAFETY: MPI runs in MPI_THREAD_SERIALIZED mode and a Job is used by one thread at a time: the
// starting thread hands it to the pager thread, which hands it back when it ends.
unsafe impl Send for Job {}

impl Job {
    fn new(comm: SimpleCommunicator, spawned: Option<mpi::ffi::MPI_Comm>) -> Job {
        Job { comm, watched: Vec::new(), peers: Vec::new(), spawned, last_keep_alive: Instant::now().into() }
    }

    /// From now on MPI errors on the job are returned, not fatal: a failed transfer ends the
    /// process with a DLM message that names the peer instead of MPI's abort. Called once the
    /// handshake is over: every call after it checks what MPI returns.
    pub fn return_errors(&self) {
        // SAFETY: the communicator is live; the handler is MPI's predefined one.
        let rc = unsafe { mpi::ffi::MPI_Comm_set_errhandler(self.comm.as_raw(), mpi::ffi::RSMPI_ERRORS_RETURN) };
        if rc != 0 {
            crate::sys::fatal(&format!("MPI refused to return errors on the job's communicator (MPI error {rc})"));
        }
    }

    /// Number of memory servers (every rank but the compute process).
    pub fn servers(&self) -> usize {
        self.comm.size() as usize - 1
    }

    /// Sends a request to `server`; ends the program naming the server if MPI reports it failed.
    pub fn send(&self, server: usize, request: Request) {
        let header = request.encode();
        // SAFETY: the header is 3 live u64 words; the datatype matches them.
        if let Err(lost) = unsafe { self.send_words(server as i32 + 1, TAG_REQUEST, &header) } {
            self.failed(server, lost);
        }
    }

    /// A blocking send of `words` to the peer of `rank`.
    ///
    /// # Safety
    /// MPI must be usable from this thread (the pager's, or the starting thread's before it).
    unsafe fn send_words(&self, rank: i32, tag: i32, words: &[u64]) -> Result<(), PeerLost> {
        use mpi::datatype::Equivalence;
        // SAFETY: `words` is a live slice of `words.len()` u64 values.
        let rc = unsafe {
            mpi::ffi::MPI_Send(
                words.as_ptr().cast(),
                words.len() as i32,
                u64::equivalent_datatype().as_raw(),
                rank,
                tag,
                self.comm.as_raw(),
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
            self.post(server as i32 + 1, len, |count, datatype, rank, comm, request| {
                mpi::ffi::MPI_Isend(data.cast(), count, datatype, rank, TAG_DATA, comm, request)
            })
        };
        posted.unwrap_or_else(|lost| self.failed(server, lost))
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
            self.post(server as i32 + 1, len, |count, datatype, rank, comm, request| {
                mpi::ffi::MPI_Irecv(into.cast(), count, datatype, rank, TAG_DATA, comm, request)
            })
        };
        let transfer = posted.unwrap_or_else(|lost| self.failed(server, lost));
        self.send(server, Request::Get { at, len: len as u64 });
        transfer
    }

    /// Posts a non-blocking page transfer of `len` bytes with the peer of `rank` (`MPI_Isend`
    /// or `MPI_Irecv`, given count, datatype, rank, communicator and the request to fill).
    ///
    /// # Safety
    /// `start` must be safe to call with those arguments (its buffer valid until finished).
    unsafe fn post(
        &self,
        rank: i32,
        len: usize,
        start: impl FnOnce(i32, mpi::ffi::MPI_Datatype, i32, mpi::ffi::MPI_Comm, *mut mpi::ffi::MPI_Request) -> i32,
    ) -> Result<Transfer, PeerLost> {
        use mpi::datatype::Equivalence;
        let count = i32::try_from(len).expect("a DLM page is smaller than 2 GiB");
        // SAFETY: reading MPI's predefined null request; MPI overwrites it when the post works.
        let mut request = unsafe { mpi::ffi::RSMPI_REQUEST_NULL };
        let rc = start(count, u8::equivalent_datatype().as_raw(), rank, self.comm.as_raw(), &mut request);
        if rc != 0 {
            return Err(PeerLost { mpi_error: rc });
        }
        Ok(Transfer { request, rank })
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

    /// Waits until the transfer has finished; ends the program with a message naming the server
    /// if it has exited or does not answer within [`UNANSWERED_LIMIT`]. The other servers keep
    /// hearing that the program is alive meanwhile (a page may take seconds on a slow link).
    pub fn finish(&self, transfer: &mut Transfer) {
        self.wait_for(transfer.server(), || {
            self.keep_alive_if_due();
            self.finished(transfer)
        });
    }

    /// Polls `done` until it says true, checking `server` as [`Job::finish`] does.
    fn wait_for(&self, server: usize, mut done: impl FnMut() -> bool) {
        let started = Instant::now();
        let mut polls = 0u32;
        while !done() {
            polls += 1;
            if polls.is_multiple_of(4096) {
                self.check_servers();
                if started.elapsed() > UNANSWERED_LIMIT {
                    self.unreachable(server);
                }
            }
        }
    }

    fn host_of(&self, server: usize) -> &str {
        self.peers.get(server).map_or("an unknown host", |(host, _)| host.as_str())
    }

    fn failed(&self, server: usize, lost: PeerLost) -> ! {
        let pid = self.peers.get(server).map_or(0, |(_, pid)| *pid);
        crate::sys::exit_now(
            1,
            &format!(
                "memory server {} of {} (pid {pid} on {}) failed (MPI error {}: its process or host is gone, or the \
                 link to it broke); the DLM pages it held are lost, so the program cannot go on",
                server + 1,
                self.servers(),
                self.host_of(server),
                lost.mpi_error
            ),
        )
    }

    fn unreachable(&self, server: usize) -> ! {
        let host = self.host_of(server);
        crate::sys::exit_now(
            1,
            &format!(
                "memory server {} of {} on {host} has not answered for {} s: the host or the network link to it is down; \
                 the DLM pages it holds cannot be reached, so the program cannot go on",
                server + 1,
                self.servers(),
                UNANSWERED_LIMIT.as_secs()
            ),
        )
    }

    /// Remembers every server's host and starts watching the servers that run on this host
    /// (the compute process's side).
    pub fn watch_servers(&mut self, hellos: &[Hello]) {
        self.peers = hellos.iter().map(|h| (h.host.clone(), h.pid)).collect();
        let local = crate::sys::hostname();
        for (server, hello) in hellos.iter().enumerate().filter(|(_, h)| h.host == local) {
            if let Ok(exited) = crate::sys::watch_process(hello.pid) {
                self.watched.push(Watched { server, pid: hello.pid, host: hello.host.clone(), exited });
            }
        }
        self.watched.truncate(62);
        let hints =
            self.watched.iter().map(|w| (w.exited.as_raw_fd(), format!("dlm: {}\n", self.lost_message(w)))).collect();
        crate::sys::explain_abort(hints);
    }

    fn lost_message(&self, w: &Watched) -> String {
        format!(
            "memory server {} of {} (pid {} on {}) has exited; the DLM pages it held are lost, so the program cannot go on",
            w.server + 1,
            self.servers(),
            w.pid,
            w.host
        )
    }

    pub fn watched_fds(&self) -> impl Iterator<Item = i32> + '_ {
        self.watched.iter().map(|w| w.exited.as_raw_fd())
    }

    /// Ends the program with a message if a watched memory server has exited: the pages it
    /// held are gone, so continuing could only return wrong data or hang.
    pub fn check_servers(&self) {
        // No allocation: this runs while page transfers wait.
        let exited = crate::sys::poll_readable(self.watched_fds(), 0);
        if let Some(w) = self.watched.iter().enumerate().find(|(i, _)| exited >> i & 1 != 0).map(|(_, w)| w) {
            crate::sys::exit_now(1, &self.lost_message(w));
        }
    }

    /// Tells every server that the compute process is alive (see [`Request::KeepAlive`]) if
    /// [`KEEP_ALIVE`] has passed since the last time. Never after [`Job::shut_down_servers`].
    pub fn keep_alive_if_due(&self) {
        if self.last_keep_alive.get().elapsed() < KEEP_ALIVE {
            return;
        }
        for server in 0..self.servers() {
            self.send(server, Request::KeepAlive);
        }
        self.last_keep_alive.set(Instant::now());
    }

    /// Asks every server to exit and waits until each has answered (see [`Job::finish`] for a
    /// server that does not).
    pub fn shut_down_servers(&self) {
        for server in 0..self.servers() {
            self.send(server, Request::Shutdown);
        }
        for server in 0..self.servers() {
            let mut ack = [0u8; 8];
            let ack_ptr = ack.as_mut_ptr();
            // SAFETY: `ack` outlives the receive, which is finished before this block ends.
            let posted = unsafe {
                self.post(server as i32 + 1, ack.len(), |count, datatype, rank, comm, request| {
                    mpi::ffi::MPI_Irecv(ack_ptr.cast(), count, datatype, rank, TAG_BYE, comm, request)
                })
            };
            let mut receive = posted.unwrap_or_else(|lost| self.failed(server, lost));
            // Not `finish`: no keep-alive may follow a Shutdown.
            self.wait_for(server, || self.finished(&mut receive));
        }
    }

    /// Compute side of the handshake: every server's hello, in server order.
    pub fn gather_hellos(&self) -> Vec<Hello> {
        (0..self.servers())
            .map(|server| {
                let from = self.comm.process_at_rank(server as i32 + 1);
                let mut words = [0u64; 2];
                from.receive_into_with_tag(&mut words[..], TAG_HELLO);
                let (host, _) = from.receive_vec_with_tag::<u8>(TAG_HELLO);
                Hello {
                    host: String::from_utf8_lossy(&host).into_owned(),
                    pid: words[1] as u32,
                    available_memory: words[0],
                }
            })
            .collect()
    }

    pub fn send_setup(&self, server: usize, setup: Setup) {
        let words = [setup.page_size as u64, setup.capacity, u64::from(setup.compute_pid)];
        self.comm.process_at_rank(server as i32 + 1).send_with_tag(&words[..], TAG_SETUP);
    }

    // Server side.

    /// Server side of the handshake.
    pub fn hello(&self, hello: &Hello) -> Setup {
        let compute = self.comm.process_at_rank(COMPUTE_RANK);
        compute.send_with_tag(&[hello.available_memory, u64::from(hello.pid)][..], TAG_HELLO);
        compute.send_with_tag(hello.host.as_bytes(), TAG_HELLO);
        let mut words = [0u64; 3];
        compute.receive_into_with_tag(&mut words[..], TAG_SETUP);
        Setup { page_size: words[0] as usize, capacity: words[1], compute_pid: words[2] as u32 }
    }

    /// Returns the next request if one has arrived.
    pub fn poll_request(&self) -> Result<Option<Request>, PeerLost> {
        use mpi::datatype::Equivalence;
        let check = |rc: i32| if rc == 0 { Ok(()) } else { Err(PeerLost { mpi_error: rc }) };
        let mut arrived = 0;
        let mut header: Header = [0; 3];
        let mut status = std::mem::MaybeUninit::uninit();
        // SAFETY: the out-pointers are live locals; the header buffer holds 3 u64 words.
        unsafe {
            check(mpi::ffi::MPI_Iprobe(
                COMPUTE_RANK,
                TAG_REQUEST,
                self.comm.as_raw(),
                &mut arrived,
                status.as_mut_ptr(),
            ))?;
            if arrived == 0 {
                return Ok(None);
            }
            check(mpi::ffi::MPI_Recv(
                header.as_mut_ptr().cast(),
                3,
                u64::equivalent_datatype().as_raw(),
                COMPUTE_RANK,
                TAG_REQUEST,
                self.comm.as_raw(),
                status.as_mut_ptr(),
            ))?;
        }
        match Request::decode(header) {
            Some(request) => Ok(Some(request)),
            None => crate::sys::fatal(&format!("memory server received a malformed request {header:?}")),
        }
    }

    /// Starts receiving the data of a [`Request::Put`] into `into` and returns at once. Puts'
    /// data arrives in the order of their requests, so every Put's receive is posted with it.
    ///
    /// # Safety
    /// `[into, into+len)` must stay writable and untouched until the transfer is finished.
    pub unsafe fn start_receive_put(&self, into: *mut u8, len: usize) -> Result<Transfer, PeerLost> {
        // SAFETY: the caller keeps the buffer valid; the arguments come from `post`.
        unsafe {
            self.post(COMPUTE_RANK, len, |count, datatype, rank, comm, request| {
                mpi::ffi::MPI_Irecv(into.cast(), count, datatype, rank, TAG_DATA, comm, request)
            })
        }
    }

    /// Starts sending the answer to a [`Request::Get`] from `data` and returns at once.
    ///
    /// # Safety
    /// `[data, data+len)` must stay readable and unchanged until the transfer is finished.
    pub unsafe fn start_reply(&self, data: *const u8, len: usize) -> Result<Transfer, PeerLost> {
        // SAFETY: the caller keeps the buffer valid; the arguments come from `post`.
        unsafe {
            self.post(COMPUTE_RANK, len, |count, datatype, rank, comm, request| {
                mpi::ffi::MPI_Isend(data.cast(), count, datatype, rank, TAG_DATA, comm, request)
            })
        }
    }

    /// Answers [`Request::Shutdown`] with 8 bytes on `TAG_BYE` (the compute process waits for
    /// them as bytes, like page data). A failure is ignored: the server exits either way.
    pub fn acknowledge_shutdown(&self) {
        let ack = [0u8; 8];
        // SAFETY: `ack` outlives the send, which is finished (or failed) before this returns.
        let posted = unsafe {
            self.post(COMPUTE_RANK, ack.len(), |count, datatype, rank, comm, request| {
                mpi::ffi::MPI_Isend(ack.as_ptr().cast(), count, datatype, rank, TAG_BYE, comm, request)
            })
        };
        if let Ok(mut send) = posted {
            while let Ok(false) = self.test(&mut send) {}
        }
    }
}

/// Sets the MPI transport that is fast both under `mpirun` and between a singleton and the
/// servers it spawned (Open MPI's shared-memory BTL cannot reach spawned processes; UCX can),
/// lets a small machine run more servers than it has cores, keeps MPI from taking over the
/// program's SIGSEGV/SIGBUS/SIGFPE/SIGILL handlers, UCX from printing a backtrace when it
/// gives up (DLM says what happened in one line) and from hooking the allocation functions
/// (a dlmcc-built program's `free` must stay DLM's), and lets the daemons that a singleton
/// starts on other hosts notice a cut link within seconds (TCP keepalive; the default takes
/// 8 minutes, and until then a daemon behind the cut lives on). A variable the user set wins.
fn prepare_mpi_environment() {
    const DEFAULTS: [(&str, &str); 12] = [
        ("OMPI_MCA_pml", "ucx"),
        ("OMPI_MCA_pml_ucx_tls", "any"),
        ("OMPI_MCA_pml_ucx_devices", "any"),
        ("OMPI_MCA_osc", "ucx"),
        ("OMPI_MCA_rmaps_base_oversubscribe", "1"),
        ("UCX_ERROR_SIGNALS", ""),
        ("OMPI_MCA_opal_signal", ""),
        ("UCX_HANDLE_ERRORS", "none"),
        ("UCX_MEM_MALLOC_HOOKS", "no"),
        ("OMPI_MCA_oob_tcp_keepalive_time", "4"),
        ("OMPI_MCA_oob_tcp_keepalive_intvl", "1"),
        ("OMPI_MCA_oob_tcp_keepalive_probes", "2"),
    ];
    for (name, value) in DEFAULTS {
        if std::env::var_os(name).is_none() {
            // Before MPI_Init: MPI reads its parameters from the environment there.
            std::env::set_var(name, value);
        }
    }
}

/// Starts MPI and tells how this process was launched.
pub fn start() -> (mpi::environment::Universe, Launch) {
    prepare_mpi_environment();
    let Some((universe, _)) = mpi::initialize_with_threading(Threading::Serialized) else {
        crate::sys::fatal("MPI was already initialized; call dlm_startup before any MPI call");
    };
    // SAFETY: MPI is initialized; `parent` is a valid out-pointer; the NULL handle is a constant.
    let (parent, null) = unsafe {
        let mut parent = mpi::ffi::RSMPI_COMM_NULL;
        mpi::ffi::MPI_Comm_get_parent(&mut parent);
        (parent, mpi::ffi::RSMPI_COMM_NULL)
    };
    if parent != null {
        let comm = merge(parent, true);
        return (universe, Launch::SpawnedServer(Job::new(comm, None)));
    }
    let world = universe.world();
    if world.size() == 1 {
        return (universe, Launch::Singleton);
    }
    // SAFETY: duplicating the world gives a communicator that we own and free on drop.
    let comm = unsafe {
        let mut dup = mpi::ffi::RSMPI_COMM_NULL;
        mpi::ffi::MPI_Comm_dup(world.as_raw(), &mut dup);
        SimpleCommunicator::from_raw(dup)
    };
    let job = Job::new(comm, None);
    if job.comm.rank() == COMPUTE_RANK {
        (universe, Launch::MpirunCompute(job))
    } else {
        (universe, Launch::MpirunServer(job))
    }
}

/// Spawns one memory server on each of `hosts`, running this same executable with `args`.
pub fn spawn_servers(hosts: &[String], args: &[String]) -> Result<Job, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program's executable: {e}"))?;
    let command = CString::new(exe.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    let arg_strings: Vec<CString> =
        args.iter().map(|a| CString::new(a.as_bytes())).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    let mut arg_ptrs: Vec<*mut libc::c_char> = arg_strings.iter().map(|a| a.as_ptr().cast_mut()).collect();
    arg_ptrs.push(std::ptr::null_mut());
    let key = CString::new("host").expect("no NUL");
    let host_strings: Vec<CString> =
        hosts.iter().map(|h| CString::new(h.as_bytes())).collect::<Result<_, _>>().map_err(|e| e.to_string())?;

    let n = hosts.len();
    let mut commands: Vec<*mut libc::c_char> = vec![command.as_ptr().cast_mut(); n];
    let mut argvs: Vec<*mut *mut libc::c_char> = vec![arg_ptrs.as_mut_ptr(); n];
    let mut maxprocs: Vec<i32> = vec![1; n];
    let mut errcodes: Vec<i32> = vec![0; n];
    let mut infos = Vec::with_capacity(n);
    // SAFETY: reading MPI's predefined NULL handle after MPI_Init.
    let mut intercomm = unsafe { mpi::ffi::RSMPI_COMM_NULL };
    // SAFETY: every pointer handed to MPI points into a live CString or Vec of this function; the
    // info objects are created and freed here; spawn errors are returned, not fatal.
    let rc = unsafe {
        mpi::ffi::MPI_Comm_set_errhandler(mpi::ffi::RSMPI_COMM_SELF, mpi::ffi::RSMPI_ERRORS_RETURN);
        for host in &host_strings {
            let mut info = std::mem::zeroed();
            mpi::ffi::MPI_Info_create(&mut info);
            mpi::ffi::MPI_Info_set(info, key.as_ptr(), host.as_ptr());
            infos.push(info);
        }
        let rc = mpi::ffi::MPI_Comm_spawn_multiple(
            n as i32,
            commands.as_mut_ptr(),
            argvs.as_mut_ptr(),
            maxprocs.as_mut_ptr(),
            infos.as_mut_ptr(),
            0,
            mpi::ffi::RSMPI_COMM_SELF,
            &mut intercomm,
            errcodes.as_mut_ptr(),
        );
        for info in &mut infos {
            mpi::ffi::MPI_Info_free(info);
        }
        mpi::ffi::MPI_Comm_set_errhandler(mpi::ffi::RSMPI_COMM_SELF, mpi::ffi::RSMPI_ERRORS_ARE_FATAL);
        rc
    };
    if rc != 0 {
        return Err(format!("MPI_Comm_spawn of {n} memory server(s) on {} failed (MPI error {rc})", hosts.join(", ")));
    }
    Ok(Job::new(merge(intercomm, false), Some(intercomm)))
}

/// Merges the spawn intercommunicator so that the compute process is rank 0 and the servers
/// follow in spawn order.
fn merge(intercomm: mpi::ffi::MPI_Comm, high: bool) -> SimpleCommunicator {
    // SAFETY: `intercomm` is a live intercommunicator; the merged one is new and owned by the result.
    unsafe {
        let mut merged = mpi::ffi::RSMPI_COMM_NULL;
        mpi::ffi::MPI_Intercomm_merge(intercomm, i32::from(high), &mut merged);
        SimpleCommunicator::from_raw(merged)
    }
}

/// Ends MPI in a memory server. rsmpi's `Universe` drop disconnects the parent communicator
/// twice (a crash in Open MPI), so a spawned server disconnects once itself and finalizes.
pub fn finalize_server(universe: mpi::environment::Universe) {
    std::mem::forget(universe);
    // SAFETY: MPI is initialized and nothing uses the parent communicator any more; after this
    // no MPI call is made (the process exits).
    unsafe {
        let mut parent = mpi::ffi::RSMPI_COMM_NULL;
        mpi::ffi::MPI_Comm_get_parent(&mut parent);
        if parent != mpi::ffi::RSMPI_COMM_NULL {
            mpi::ffi::MPI_Comm_disconnect(&mut parent);
        }
        mpi::ffi::MPI_Finalize();
    }
}
