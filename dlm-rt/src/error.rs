//! The runtime's typed errors; each message says what happened and what to do.

use crate::config::ConfigError;
use dlm_units::Bytes;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "cannot allocate {} of DLM memory: only {} is available (local budget {} + memory servers {} - {} in use); \
         raise DLM_LOCAL_MEM or give the servers more memory in the memfile",
        Bytes(*requested), Bytes(*available), Bytes(*budget), Bytes(*servers), Bytes(*in_use)
    )]
    OutOfMemory { requested: u64, available: u64, budget: u64, servers: u64, in_use: u64 },
    #[error("cannot allocate {} of DLM memory: the DLM address range is too fragmented; free larger blocks first", Bytes(*requested))]
    Fragmented { requested: u64 },
    #[error("DLM is not running: call dlm_startup (C) or dlm::start (Rust) first")]
    NotStarted,
    #[error("DLM memory is not available in a forked child: it stays with the parent")]
    ForkedChild,
    #[error("DLM was already started in this process")]
    AlreadyStarted,
    #[error("{}:{line}: unknown host `{host}` ({source}); name a host this machine can resolve", path.display())]
    UnknownHost { path: std::path::PathBuf, line: usize, host: String, source: std::io::Error },
    #[error("cannot start memory servers: {0}")]
    Spawn(#[source] crate::transport::SpawnError),
    #[error(
        "cannot serve page faults: userfaultfd failed ({0}); DLM needs a kernel with userfaultfd \
         (Linux 5.11 or later for a user who is not root): `dlm doctor` checks this machine"
    )]
    Userfaultfd(std::io::Error),
    #[error("cannot start the pager: {step} failed ({source}); `dlm doctor` checks this machine")]
    PagerSetup { step: &'static str, source: std::io::Error },
    #[error("cannot serve a static array as DLM memory: {step} failed ({source})")]
    Adopt { step: &'static str, source: std::io::Error },
    #[error(
        "DLM options after `--` cannot apply: DLM was started before main for code that dlmcc rewrote; \
         set them with DLM_* environment variables instead (see --help)"
    )]
    LateOptions,
    #[error("{addr:#x} is not DLM memory: advice applies to memory from dlm_alloc, DlmBox or a DLM array")]
    NotDlmMemory { addr: usize },
    #[error("cannot reserve {} of address space for DLM memory: {source}", Bytes(*bytes))]
    Reserve { bytes: u64, source: std::io::Error },
    #[error(
        "with a pool the total memory (-m, DLM_POOL_MEM: {}) must exceed the local budget (-l, DLM_LOCAL_MEM: {}): \
         the pool is asked for the difference",
        Bytes(*total), Bytes(*budget)
    )]
    PoolTotal { total: u64, budget: u64 },
    #[error("cannot join the memory pool of {manager}: {source}")]
    PoolJoin { manager: String, source: dlm_pool::client::ClientError },
    #[error(
        "the memory pool of {manager} has no MPI rendezvous, so programs cannot reach its servers; start the pool \
         with `dlm pool up POOLCONF`"
    )]
    PoolRendezvous { manager: String },
    #[error("cannot reach the pool's memory server on {host}: {reason}")]
    PoolConnect { host: String, reason: String },
    #[error(
        "a program that joins a pool runs as one process, not {ranks} MPI ranks: the pool's servers are \
         already running; start it alone or with `mpirun -np 1`"
    )]
    PoolRanks { ranks: String },
    #[error("cannot move this program's pages off pool server {server}: no such server, or a move is under way")]
    Evacuate { server: usize },
    #[error("cannot start this program again outside mpirun's job to join the pool: {0}")]
    PoolLeaveMpirun(#[source] std::io::Error),
}

impl Error {
    /// Prints a startup error the way every front end does (`--help` on stdout), then exits:
    /// 0 for `--help`, else 2.
    pub fn exit(&self) -> ! {
        match self {
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
}
