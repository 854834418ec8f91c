//! Starting DLM, as named steps: how this process was launched (`mpirun` rank, singleton that
//! spawns its servers, or a server, which never returns), then for the compute process the
//! handshake, the sizes (budget, capacities, limit), the DLM range and its userfaultfd, the
//! staging slots, and the pager thread. A step that fails after the handshake stops the
//! servers first ([`ServersGuard`]), so none is left waiting.

use super::live::LiveStats;
use super::watchdog::Watchdog;
use super::{holds, state, Runtime, State, RUNNING};
use crate::config::memfile::{Memfile, ServerLine};
use crate::config::{self, Config};
use crate::error::Error;
use crate::heap::arena::{self, ChargedPages};
use crate::heap::Heap;
use crate::pager::{self, Limits, Mailbox, Pager, Staging};
use crate::stats::Counters;
use crate::sys::{self, FaultFd, FaultMode, Mapping};
use crate::transport::{self, Hello, Job, Launch, Setup};
use mpi::environment::Universe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

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
    let started = Instant::now();
    let runtime = match pool_config(argv) {
        Some((config, program_argc)) => {
            let runtime = join_pool(argv, config, started)?;
            (runtime, program_argc)
        }
        None => start_own_servers(argv, started)?,
    };
    let (runtime, program_argc) = runtime;
    if runtime.fault_mode == FaultMode::UserOnly {
        let page = runtime.config.page_size;
        holds::enable((runtime.budget as usize / 4).max(page) / page * page);
    }
    *state() = State::Running(Box::new(runtime));
    RUNNING.store(true, Ordering::Release);
    Ok(Started { program_argc })
}

/// The options, if they name a pool (parsed before MPI starts: the pool's rendezvous must be
/// set before then). Options that do not parse are left to the usual path, which reports them.
fn pool_config(argv: &[String]) -> Option<(Config, usize)> {
    config::from_env_and_args(std::env::vars(), argv).ok().filter(|(config, _)| config.pool.is_some())
}

/// The compute process of a job that spawned its servers or was started with them by `mpirun`.
/// `started`: when DLM began starting (live statistics count their time from it).
fn start_own_servers(argv: &[String], started: Instant) -> Result<(Runtime, usize), Error> {
    let (universe, launch) = transport::start();
    let spawned = matches!(launch, Launch::Singleton);
    let (mut job, (config, program_argc)) = match launch {
        Launch::MpirunServer(job) | Launch::SpawnedServer(job) => crate::server::serve(universe, job),
        Launch::MpirunCompute(job) => configure_under_mpirun(job, argv)?,
        Launch::Singleton => spawn_servers(argv)?,
    };
    let hellos = job.gather_hellos();
    job.watch_servers(&hellos);
    let capacities = capacities(&config, &hellos, spawned);
    send_setups(&job, &config, &hellos, &capacities);
    let servers = Servers { job, hellos, capacities, membership: None };
    Ok((start_compute(universe, servers, config, started)?, program_argc))
}

/// A program that joins a pool: as a singleton (under `mpirun -np 1` it first runs itself again
/// outside mpirun's job), connected to the servers the manager assigns.
fn join_pool(argv: &[String], config: Config, started: Instant) -> Result<Runtime, Error> {
    match transport::mpirun_ranks().as_deref() {
        None => {}
        Some("1") => return Err(Error::PoolLeaveMpirun(transport::leave_mpirun_job(argv))),
        Some(ranks) => return Err(Error::PoolRanks { ranks: ranks.to_string() }),
    }
    let request = config.pool.clone().expect("pool_config chose a pool");
    let joined = super::pool::join(&config, &request, Sizes::budget(&config))?;
    let mut job = joined.job;
    job.watch_servers(&joined.hellos);
    let servers =
        Servers { job, hellos: joined.hellos, capacities: joined.capacities, membership: Some(joined.membership) };
    start_compute(joined.universe, servers, config, started)
}

/// The servers a compute process starts with: linked, said hello, told their setup, and their
/// capacities.
struct Servers {
    job: Job,
    hellos: Vec<Hello>,
    capacities: Vec<u64>,
    membership: Option<super::pool::Membership>,
}

/// Rank 0 of `mpirun`: the options, or (if they are wrong) the servers told to exit before the
/// error is returned.
fn configure_under_mpirun(job: Job, argv: &[String]) -> Result<(Job, (Config, usize)), Error> {
    match config::from_env_and_args(std::env::vars(), argv) {
        Ok(parsed) => Ok((job, parsed)),
        Err(e) => {
            job.gather_hellos();
            for server in 0..job.servers() {
                job.send_setup(server, Setup { page_size: 0, capacity: 0, compute_pid: 0 });
            }
            Err(e.into())
        }
    }
}

/// A singleton: the options, then one server spawned on each memfile host (one on localhost
/// without a memfile).
fn spawn_servers(argv: &[String]) -> Result<(Job, (Config, usize)), Error> {
    let (config, program_argc) = config::from_env_and_args(std::env::vars(), argv)?;
    let hosts: Vec<String> = match &config.memfile {
        Some(memfile) => {
            check_hosts(memfile)?;
            memfile.servers.iter().map(|s| s.host.clone()).collect()
        }
        None => vec!["localhost".into()],
    };
    // A host that resolves but cannot start processes leaves MPI_Comm_spawn waiting forever.
    let seconds = config.spawn_timeout;
    let watchdog = Watchdog::start(
        std::time::Duration::from_secs(seconds),
        format!(
            "error: memory servers on {} did not start within {seconds} s; check that MPI can start processes \
             there (ssh, Open MPI installed), or raise DLM_SPAWN_TIMEOUT",
            hosts.join(", ")
        ),
    );
    let job = transport::spawn_servers(&hosts, &argv[1..]).map_err(Error::Spawn)?;
    drop(watchdog);
    Ok((job, (config, program_argc)))
}

/// Every memfile host must resolve: MPI would otherwise wait for a daemon that never starts.
fn check_hosts(memfile: &Memfile) -> Result<(), Error> {
    use std::net::ToSocketAddrs;
    for line in &memfile.servers {
        if let Err(e) = (line.host.as_str(), 0).to_socket_addrs() {
            return Err(Error::UnknownHost {
                path: memfile.path.clone(),
                line: line.line,
                host: line.host.clone(),
                source: e,
            });
        }
    }
    Ok(())
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

/// The job while startup may still fail: dropped before [`ServersGuard::keep`], it tells the
/// servers to exit (they would otherwise wait for the program's silence to end them).
/// A pool's program also leaves the pool.
struct ServersGuard(Option<Job>, Option<super::pool::Membership>);

impl ServersGuard {
    fn keep(mut self) -> (Job, Option<super::pool::Membership>) {
        (self.0.take().expect("the guard holds the job until it is kept"), self.1.take())
    }
}

impl Drop for ServersGuard {
    fn drop(&mut self) {
        if let Some(job) = &self.0 {
            job.shut_down_servers();
        }
        if let Some(membership) = &mut self.1 {
            membership.leave();
        }
    }
}

/// The sizes startup decides: the page, the local budget, and each server's capacity.
struct Sizes {
    page: u64,
    budget: u64,
    capacities: Vec<u64>,
    /// How many hosts the servers are on.
    server_hosts: usize,
}

impl Sizes {
    fn new(config: &Config, hellos: &[Hello], capacities: Vec<u64>) -> Self {
        let server_hosts = hellos.iter().map(|h| h.host.as_str()).collect::<std::collections::HashSet<_>>().len();
        Sizes { page: config.page_size as u64, budget: Self::budget(config), capacities, server_hosts }
    }

    /// The local budget: as asked, else a quarter of this host's available memory; whole pages,
    /// at least two.
    fn budget(config: &Config) -> u64 {
        let page = config.page_size as u64;
        let budget = config.local_budget.unwrap_or_else(|| sys::available_memory().unwrap_or(1 << 30) / 4);
        (budget - budget % page).max(2 * page)
    }

    fn capacity(&self) -> u64 {
        self.capacities.iter().sum()
    }
}

/// Where the DLM range's parts lie: the big blocks' part, then the small-block heap's arena.
struct Layout {
    heap_len: usize,
    arena_len: usize,
    range_len: usize,
}

impl Layout {
    /// Twice the limit for the big blocks leaves room for fragmentation (the limit itself is
    /// enforced by the heap); the arena is charged as it is used.
    fn new(limit: u64, page: u64) -> Self {
        let heap_len = (limit * 2).next_multiple_of(page) as usize;
        let arena_len = arena::arena_len(limit);
        let range_len = ((heap_len + arena::ARENA_ALIGN + arena_len) as u64).next_multiple_of(page) as usize;
        Layout { heap_len, arena_len, range_len }
    }
}

fn start_compute(universe: Universe, servers: Servers, config: Config, started: Instant) -> Result<Runtime, Error> {
    let Servers { job, hellos, capacities, membership } = servers;
    let sizes = Sizes::new(&config, &hellos, capacities);
    job.return_errors();
    let servers = ServersGuard(Some(job), membership);
    let layout = Layout::new(sizes.budget + sizes.capacity(), sizes.page);
    let region = reserve_range(&config, &layout)?;
    let uffd = FaultFd::register(&region).map_err(Error::Userfaultfd)?;
    let fault_mode = uffd.mode();
    keep_out_of_forks(&region)?;
    sys::explain_termination_signals();
    let mailbox =
        Arc::new(Mailbox::new().map_err(|source| Error::PagerSetup { step: "creating its eventfd", source })?);
    let small_pages = place_arena(&region, &layout, config.page_size);
    let staging = staging_slots(&config, &sizes, uffd)?;
    let region = Arc::new(region);
    let counters = Arc::new(Counters::default());
    for (server, hello) in hellos.iter().enumerate() {
        counters.held.name(server, &hello.host);
    }
    let limits = Limits {
        page_size: config.page_size,
        resident_budget: sizes.budget as usize,
        capacities: sizes.capacities.iter().map(|&c| (c / sizes.page).min(u32::MAX as u64) as u32).collect(),
        server_hosts: sizes.server_hosts,
        panic_at: config.pager_panic_at,
    };
    let (job, membership) = servers.keep();
    if let Some(membership) = &membership {
        membership.hand_moves_to(mailbox.clone());
    }
    let pager = Pager::new(region.clone(), job, mailbox.clone(), counters.clone(), staging, limits);
    let pager = std::thread::Builder::new()
        .name("dlm-pager".into())
        .spawn(move || pager.run())
        .expect("cannot start the pager thread");
    let live =
        config.stats_live.clone().and_then(|path| LiveStats::start(path, counters.clone(), sizes.budget, started));
    Ok(Runtime {
        pager: Some(pager),
        membership,
        live,
        universe: Some(universe),
        heap: Heap::new(layout.heap_len, config.page_size, sizes.budget, sizes.capacity()),
        fault_mode,
        small_pages,
        region,
        mailbox,
        counters,
        budget: sizes.budget,
        servers: sizes.capacities.len() as u64,
        capacity: sizes.capacity(),
        config,
    })
}

/// Tells each server its page size and capacity, and the program's pid if it shares the host.
fn send_setups(job: &Job, config: &Config, hellos: &[Hello], capacities: &[u64]) {
    let local = sys::hostname();
    for (server, (&capacity, hello)) in capacities.iter().zip(hellos).enumerate() {
        let compute_pid = if hello.host == local { std::process::id() } else { 0 };
        job.send_setup(server, Setup { page_size: config.page_size, capacity, compute_pid });
    }
}

/// The DLM range, of huge pages when DLM pages are whole huge pages.
fn reserve_range(config: &Config, layout: &Layout) -> Result<Mapping, Error> {
    let len = layout.range_len;
    let region = if config.page_size.is_multiple_of(sys::HUGE_PAGE) {
        Mapping::reserve_huge(len)
    } else {
        Mapping::reserve(len)
    };
    region.map_err(|source| Error::Reserve { bytes: len as u64, source })
}

/// DLM memory stays with this process across `fork`; a child that touches it is told why it fails.
fn keep_out_of_forks(region: &Mapping) -> Result<(), Error> {
    region
        .exclude_from_fork()
        .map_err(|source| Error::PagerSetup { step: "keeping DLM memory out of forked children", source })?;
    sys::explain_dlm_faults_after_fork(region);
    Ok(())
}

/// Sets the small-block heap's arena at the end of the range; its DLM pages, none charged yet.
fn place_arena(region: &Mapping, layout: &Layout, page_size: usize) -> ChargedPages {
    let arena_start = (region.base() as usize + layout.heap_len).next_multiple_of(arena::ARENA_ALIGN);
    arena::set_range(arena_start, layout.arena_len);
    let offset = arena_start - region.base() as usize;
    ChargedPages::new(offset / page_size..(offset + layout.arena_len).div_ceil(page_size))
}

/// The pager's staging slots, on top of the budget (docs/DESIGN.md says how many). With swap
/// on, pages are copied, not moved (`sys::swap_is_on`).
fn staging_slots(config: &Config, sizes: &Sizes, uffd: FaultFd) -> Result<Staging, Error> {
    let count = pager::staging_slots((sizes.budget / sizes.page) as usize, sizes.server_hosts);
    Staging::new(count, config.page_size, uffd, config.move_pages && !sys::swap_is_on())
        .map_err(|source| Error::PagerSetup { step: "setting up its staging slots", source })
}
