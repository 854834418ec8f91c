//! The process-wide runtime: startup (launch detection, servers, pager thread), allocation,
//! shutdown (also at exit), statistics.

use crate::config::{self, Config, ConfigError};
use crate::error::Error;
use crate::heap::Heap;
use crate::memfile::ServerLine;
use crate::pager::{self, Advice, Command, KernelAccess, Limits, Mailbox, Pager};
use crate::small::{self, ChargedPages};
use crate::staging::Staging;
use crate::stats::{Counters, Stats};
use crate::sys::{self, FaultFd, FaultMode, Mapping};
use crate::transport::{self, Hello, Job, Launch, Setup};
use mpi::environment::Universe;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

enum State {
    NotStarted,
    Running(Box<Runtime>),
    ShutDown,
}

static STATE: Mutex<State> = Mutex::new(State::NotStarted);
/// Mirrors `State::Running` for checks that must not take the lock.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Whether `ptr` lies in the DLM range (a block from [`allocate`], live or not; also after
/// shutdown, so that a late `free` of a DLM block is not handed to the C library).
pub fn owns(ptr: *const u8) -> bool {
    sys::in_dlm_range(ptr as usize)
}

/// Whether DLM memory can be used now.
pub fn is_running() -> bool {
    RUNNING.load(Ordering::Acquire)
}

fn state() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

struct Runtime {
    // Dropped in this order at shutdown: pager (and its job), then MPI, then the DLM range.
    pager: Option<JoinHandle<Job>>,
    universe: Option<Universe>,
    region: Arc<Mapping>,
    mailbox: Arc<Mailbox>,
    counters: Arc<Counters>,
    heap: Heap,
    /// Which faults reach the pager: in user-only mode I/O calls hold their buffers.
    fault_mode: FaultMode,
    /// The DLM pages of the small-block heap's arena charged against the limit.
    small_pages: ChargedPages,
    config: Config,
    budget: u64,
    servers: u64,
    capacity: u64,
}

/// What a successful start tells the program.
pub struct Started {
    /// How many leading arguments belong to the program (the DLM options after `--` do not).
    pub program_argc: usize,
}

/// Starts DLM for this process. Memory-server processes never return from here: they serve and
/// exit 0 at shutdown. `argv` is the full command line, program name first.
pub fn start(argv: &[String]) -> Result<Started, Error> {
    if !matches!(*state(), State::NotStarted) {
        return Err(Error::AlreadyStarted);
    }
    let (universe, launch) = transport::start();
    let spawned = matches!(launch, Launch::Singleton);
    let (job, parsed) = match launch {
        Launch::MpirunServer(job) | Launch::SpawnedServer(job) => crate::server::serve(universe, job),
        Launch::MpirunCompute(job) => {
            let config = match config::from_env_and_args(std::env::vars(), argv) {
                Ok(parsed) => parsed,
                Err(e) => {
                    job.gather_hellos();
                    for server in 0..job.servers() {
                        job.send_setup(server, Setup { page_size: 0, capacity: 0, compute_pid: 0 });
                    }
                    return Err(e.into());
                }
            };
            (job, config)
        }
        Launch::Singleton => {
            let (config, keep) = config::from_env_and_args(std::env::vars(), argv)?;
            let hosts: Vec<String> = match &config.memfile {
                Some(mf) => {
                    check_hosts(mf)?;
                    mf.servers.iter().map(|s| s.host.clone()).collect()
                }
                None => vec!["localhost".into()],
            };
            let watchdog = SpawnWatchdog::start(&hosts, config.spawn_timeout);
            let job = transport::spawn_servers(&hosts, &argv[1..]).map_err(Error::Spawn)?;
            drop(watchdog);
            (job, (config, keep))
        }
    };
    let (config, program_argc) = parsed;
    let runtime = start_compute(universe, job, config, spawned)?;
    if runtime.fault_mode == FaultMode::UserOnly {
        let page = runtime.config.page_size;
        crate::held::enable((runtime.budget as usize / 4).max(page) / page * page);
    }
    *state() = State::Running(Box::new(runtime));
    RUNNING.store(true, Ordering::Release);
    Ok(Started { program_argc })
}

/// Every memfile host must resolve: MPI would otherwise wait for a daemon that never starts.
fn check_hosts(memfile: &crate::memfile::Memfile) -> Result<(), Error> {
    use std::net::ToSocketAddrs;
    for line in &memfile.servers {
        if let Err(e) = (line.host.as_str(), 0).to_socket_addrs() {
            return Err(Error::UnknownHost {
                path: memfile.path.clone(),
                line: line.line,
                host: line.host.clone(),
                reason: e.to_string(),
            });
        }
    }
    Ok(())
}

/// Ends the program with a message if spawning the servers takes too long: a host that
/// resolves but cannot start processes leaves MPI_Comm_spawn waiting forever.
struct SpawnWatchdog(Option<std::sync::mpsc::Sender<()>>);

impl SpawnWatchdog {
    fn start(hosts: &[String], seconds: u64) -> Self {
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let hosts = hosts.join(", ");
        std::thread::spawn(move || {
            let limit = std::time::Duration::from_secs(seconds);
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
                sys::exit_now(
                    1,
                    &format!(
                        "error: memory servers on {hosts} did not start within {seconds} s; check that MPI can \
                         start processes there (ssh, Open MPI installed), or raise DLM_SPAWN_TIMEOUT"
                    ),
                );
            }
        });
        SpawnWatchdog(Some(done))
    }
}

impl Drop for SpawnWatchdog {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            let _ = done.send(());
        }
    }
}

/// Shuts DLM down when the program exits without doing it (a return from `main`, `exit`), as
/// an `atexit` handler: for programs that start DLM themselves (`dlm_startup`, `dlm::start`).
/// Programs built by dlmcc shut down later, after their destructors (`__dlm_exit`).
pub fn shut_down_at_exit() {
    extern "C" fn shutdown_at_exit() {
        shutdown();
    }
    // SAFETY: registering a plain extern "C" function with no preconditions.
    unsafe { libc::atexit(shutdown_at_exit) };
}

/// Capacity of each server: its memfile line when it has one, else `DLM_SERVER_MEM`, else half
/// of its host's available memory shared by the servers on that host.
fn capacities(config: &Config, hellos: &[Hello], spawned: bool) -> Vec<u64> {
    let local = sys::hostname();
    let mut unused: Vec<&ServerLine> = config.memfile.iter().flat_map(|m| &m.servers).collect();
    hellos
        .iter()
        .enumerate()
        .map(|(i, hello)| {
            let line = if spawned {
                config.memfile.as_ref().map(|m| &m.servers[i])
            } else {
                let is_local = |h: &str| h == "localhost" || h == "127.0.0.1" || h == local;
                let found =
                    unused.iter().position(|l| l.host == hello.host || (is_local(&l.host) && is_local(&hello.host)));
                found.map(|p| unused.remove(p))
            };
            let sharing = hellos.iter().filter(|h| h.host == hello.host).count() as u64;
            let capacity =
                line.map(|l| l.capacity).or(config.server_mem).unwrap_or(hello.available_memory / 2 / sharing);
            capacity - capacity % config.page_size as u64
        })
        .collect()
}

fn start_compute(universe: Universe, mut job: Job, config: Config, spawned: bool) -> Result<Runtime, Error> {
    let hellos = job.gather_hellos();
    job.watch_servers(&hellos);
    let capacities = capacities(&config, &hellos, spawned);
    let page = config.page_size as u64;
    let budget = config.local_budget.unwrap_or_else(|| sys::available_memory().unwrap_or(1 << 30) / 4);
    let budget = (budget - budget % page).max(2 * page);
    let capacity: u64 = capacities.iter().sum();
    let abort = |job: &Job, e: Error| {
        job.shut_down_servers();
        e
    };
    let local = sys::hostname();
    for (server, (&capacity, hello)) in capacities.iter().zip(&hellos).enumerate() {
        let compute_pid = if hello.host == local { std::process::id() } else { 0 };
        job.send_setup(server, Setup { page_size: config.page_size, capacity, compute_pid });
    }
    job.return_errors();
    // The big blocks' part: twice the limit leaves room for fragmentation; the limit itself is
    // enforced by the heap. Then the small-block heap's arena, which is charged as it is used.
    let limit = budget + capacity;
    let heap_len = (limit * 2).next_multiple_of(page) as usize;
    let arena_len = small::arena_len(limit);
    let range = ((heap_len + small::ARENA_ALIGN + arena_len) as u64).next_multiple_of(page);
    let region = if config.page_size.is_multiple_of(sys::HUGE_PAGE) {
        Mapping::reserve_huge(range as usize)
    } else {
        Mapping::reserve(range as usize)
    };
    let region = region.map_err(|source| abort(&job, Error::Reserve { bytes: range, source }))?;
    let uffd = FaultFd::register(&region).map_err(|e| abort(&job, Error::Userfaultfd(e)))?;
    let fault_mode = uffd.mode();
    region.exclude_from_fork().map_err(|source| {
        abort(&job, Error::PagerSetup { step: "keeping DLM memory out of forked children", source })
    })?;
    sys::explain_dlm_faults_after_fork(&region);
    sys::explain_termination_signals();
    let mailbox =
        Mailbox::new().map_err(|source| abort(&job, Error::PagerSetup { step: "creating its eventfd", source }))?;
    let mailbox = Arc::new(mailbox);
    let arena_start = (region.base() as usize + heap_len).next_multiple_of(small::ARENA_ALIGN);
    small::set_range(arena_start, arena_len);
    let arena_offset = arena_start - region.base() as usize;
    let small_pages =
        ChargedPages::new(arena_offset / config.page_size..(arena_offset + arena_len).div_ceil(config.page_size));
    let region = Arc::new(region);
    let counters = Arc::new(Counters::default());
    let slots: Vec<u32> = capacities.iter().map(|&c| (c / page).min(u32::MAX as u64) as u32).collect();
    let servers = job.servers() as u64;
    // The staging slots come on top of the budget (docs/DESIGN.md says how much).
    let server_hosts = hellos.iter().map(|h| h.host.as_str()).collect::<std::collections::HashSet<_>>().len();
    let staging_slots = pager::staging_slots((budget / page) as usize, server_hosts);
    let limits = Limits {
        page_size: config.page_size,
        resident_budget: budget as usize,
        capacities: slots,
        server_hosts,
        panic_at: config.pager_panic_at,
    };
    // With swap on, pages are copied, not moved (`sys::swap_is_on`).
    let staging = Staging::new(staging_slots, config.page_size, &uffd, config.move_pages && !sys::swap_is_on())
        .map_err(|source| abort(&job, Error::PagerSetup { step: "setting up its staging slots", source }))?;
    let pager = Pager::new(region.clone(), uffd, job, mailbox.clone(), counters.clone(), staging, limits);
    let pager = std::thread::Builder::new()
        .name("dlm-pager".into())
        .spawn(move || pager.run())
        .expect("cannot start the pager thread");
    Ok(Runtime {
        pager: Some(pager),
        universe: Some(universe),
        heap: Heap::new(heap_len, config.page_size, budget, capacity),
        fault_mode,
        small_pages,
        region,
        mailbox,
        counters,
        config,
        budget,
        servers,
        capacity,
    })
}

/// Allocates `bytes` of DLM memory (page-aligned, reads as zero).
pub fn allocate(bytes: usize) -> Result<NonNull<u8>, Error> {
    if sys::is_forked_child() {
        return Err(Error::ForkedChild);
    }
    let mut guard = state();
    let State::Running(rt) = &mut *guard else { return Err(Error::NotStarted) };
    let offset = rt.heap.allocate(bytes)?;
    // SAFETY: the heap only hands out offsets inside the region.
    Ok(unsafe { NonNull::new_unchecked(rt.region.base().add(offset)) })
}

/// Why [`release`] refused a pointer.
#[derive(Debug, PartialEq, Eq)]
pub enum ReleaseError {
    NotDlm,
    NotStarted,
}

/// Frees a block from [`allocate`]: its pages are dropped locally and on the servers.
pub fn release(ptr: *mut u8) -> Result<(), ReleaseError> {
    if sys::is_forked_child() {
        return Ok(());
    }
    let mut guard = state();
    let rt = match &mut *guard {
        State::Running(rt) => rt,
        // After shutdown every block is gone with the DLM range.
        State::ShutDown => return Ok(()),
        State::NotStarted => return Err(ReleaseError::NotStarted),
    };
    let offset = (ptr as usize).wrapping_sub(rt.region.base() as usize);
    if offset >= rt.region.len() {
        return Err(ReleaseError::NotDlm);
    }
    let len = rt.heap.release(offset).ok_or(ReleaseError::NotDlm)?;
    // Freeing cannot fail in the pager; an error only means it is gone at shutdown.
    let _ = rt.mailbox.call(Command::Free { offset, len });
    Ok(())
}

/// The length of the live block at `ptr` (whole pages), if `ptr` starts one.
pub fn block_len(ptr: *const u8) -> Option<usize> {
    let guard = state();
    let State::Running(rt) = &*guard else { return None };
    rt.heap.block_len((ptr as usize).checked_sub(rt.region.base() as usize)?)
}

/// Passes `advice` about `[start, start+len)` of DLM memory to the pager.
pub fn advise(start: usize, len: usize, advice: Advice) -> Result<(), Error> {
    let guard = state();
    let State::Running(rt) = &*guard else { return Err(Error::NotStarted) };
    if len == 0 {
        return Ok(());
    }
    rt.mailbox.call(Command::Advise { start, len, advice }).map_err(|_| Error::NotDlmMemory { addr: start })
}

/// The DLM page size, if DLM is running.
pub fn page_size() -> Option<usize> {
    match &*state() {
        State::Running(rt) => Some(rt.config.page_size),
        _ => None,
    }
}

/// Makes `[start, start+len)`, a page-aligned part of a static array, DLM memory: it counts
/// against the limit like an allocation and is paged from now on. With `keep_contents` its
/// current data is kept; otherwise it must be all zeros (it reads as zeros afterwards).
pub fn adopt_static(start: usize, len: usize, keep_contents: bool) -> Result<(), Error> {
    let mut guard = state();
    let State::Running(rt) = &mut *guard else { return Err(Error::NotStarted) };
    // The pager's pages are aligned in the address space, so an array that starts inside a
    // page spans one more page than its length alone: charge every page it touches.
    let page = rt.config.page_size;
    rt.heap.reserve(start % page + len)?;
    rt.mailbox.call(Command::AddStatic { start, len, keep_contents }).map_err(Error::Adopt)?;
    crate::held::add_static(start..start + len);
    Ok(())
}

/// Has the pager bring the DLM memory in `[start, start+len)` in and keep it resident until
/// [`release_hold`], so that the kernel can `access` it in user-only mode (see `held`).
pub fn hold(start: usize, len: usize, access: KernelAccess) {
    if let Some(mailbox) = running_mailbox() {
        let _ = mailbox.call(Command::Hold { start, len, access });
    }
}

/// Ends a [`hold`] of the same range.
pub fn release_hold(start: usize, len: usize) {
    if let Some(mailbox) = running_mailbox() {
        let _ = mailbox.call(Command::Release { start, len });
    }
}

/// The pager's mailbox while DLM runs (taken out of the lock: the call may wait for data).
fn running_mailbox() -> Option<Arc<Mailbox>> {
    match &*state() {
        State::Running(rt) => Some(rt.mailbox.clone()),
        _ => None,
    }
}

/// Charges the DLM pages under `[start, start+len)` of the small-block heap's arena against the
/// limit, each page once, before the heap touches them.
pub fn charge_small_heap(start: usize, len: usize) -> Result<(), Error> {
    let mut guard = state();
    let State::Running(rt) = &mut *guard else { return Err(Error::NotStarted) };
    let page = rt.config.page_size;
    let offset = start - rt.region.base() as usize;
    let rt = &mut **rt;
    let charged =
        rt.small_pages.charge(offset / page..(offset + len).div_ceil(page), |pages| rt.heap.reserve(pages * page))?;
    Counters::add(&rt.counters.small_heap_bytes, (charged * page) as u64);
    Ok(())
}

/// The current statistics, if DLM is running.
pub fn stats() -> Option<Stats> {
    match &*state() {
        State::Running(rt) => Some(rt.stats()),
        _ => None,
    }
}

impl Runtime {
    fn stats(&self) -> Stats {
        let mut stats =
            Stats::capture(&self.counters, self.budget, self.config.page_size as u64, self.servers, self.capacity);
        stats.user_mode_only = u64::from(self.fault_mode == FaultMode::UserOnly);
        stats
    }
}

/// Stops the pager and the memory servers and finalizes MPI; reports statistics if asked.
/// Does nothing if DLM is not running. Afterwards DLM memory is unmapped.
pub fn shutdown() {
    // A forked child has no pager thread and no servers of its own: they are the parent's.
    if sys::is_forked_child() {
        return;
    }
    let mut rt = {
        let mut guard = state();
        RUNNING.store(false, Ordering::Release);
        crate::held::disable();
        match std::mem::replace(&mut *guard, State::ShutDown) {
            State::Running(rt) => rt,
            other => {
                *guard = other;
                return;
            }
        }
    };
    let _ = rt.mailbox.call(Command::Shutdown);
    let job = rt.pager.take().map(|p| p.join());
    let stats = rt.stats();
    if rt.config.stats {
        eprint!("{}", stats.summary());
    }
    if let Some(path) = &rt.config.stats_json {
        if let Err(e) = std::fs::write(path, stats.to_json()) {
            eprintln!("dlm: cannot write statistics to {}: {e}", path.display());
        }
    }
    drop(job);
    drop(rt.universe.take());
    let region = rt.region.clone();
    drop(rt);
    // The pager thread has ended, so this is the range's last owner: keep its addresses.
    if let Ok(region) = Arc::try_unwrap(region) {
        region.retire();
    }
}

/// Prints a startup error the way every front end does, then exits: 0 for `--help`, else 2.
pub fn exit_with(error: &Error) -> ! {
    match error {
        Error::Config(ConfigError::HelpRequested(help)) => {
            print!("{help}");
            std::process::exit(0)
        }
        Error::Config(ConfigError::Usage(usage)) => {
            eprint!("dlm: {usage}");
        }
        other => eprintln!("dlm: error: {other}"),
    }
    std::process::exit(2)
}
