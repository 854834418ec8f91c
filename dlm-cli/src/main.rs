//! `dlm`: the DLM command for the users of a machine.
//!
//! `dlm doctor [--memfile FILE]` checks what DLM needs here and on the memfile's hosts — the
//! userfaultfd mode and kernel features the pager uses, transparent huge pages, Open MPI with
//! its UCX transport, the `DLM_*` options, the memfile's syntax and hosts, and available memory
//! against what the memfile asks — and says for each problem what to do. It exits 1 when
//! something would stop a DLM run; warnings (slower, but works) keep status 0.
//! `dlm pool up POOLCONF` starts a memory pool (the MPI rendezvous, a resident server on every
//! POOLCONF line's host, and the manager, detached) and returns once every server is up;
//! `dlm pool manager POOLCONF` runs a manager alone in the foreground;
//! `dlm pool status [--json]`, `dlm pool drain HOST` and `dlm pool down [--force]` talk to it
//! (see docs/POOL.md). `dlm --version` prints the version, as `dlmcc --version` does.
//!
//! Modules: `checks` (one file per check, run in order by `checks::run_all`), `report`
//! (findings, and how they are printed), `pool` (the `dlm pool` subcommands) and `launch`
//! (what `dlm pool up` starts and how it stops).

mod checks;
mod launch;
mod pool;
mod report;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "dlm",
    version = concat!("(DLM) ", env!("CARGO_PKG_VERSION")),
    about = "DLM (Distributed Large Memory): programs that use more memory than their machine has"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check what DLM needs on this machine and on the memfile's hosts, and say what to do
    /// about each problem; exit status 1 when something would stop a run
    Doctor {
        /// The memfile to check [default: $DLM_MEMFILE, else none: one server on localhost]
        #[arg(long, value_name = "FILE")]
        memfile: Option<PathBuf>,
    },
    /// A memory pool: resident memory servers shared by many programs, and their manager
    #[command(subcommand)]
    Pool(PoolCommand),
}

#[derive(Debug, Subcommand)]
enum PoolCommand {
    /// Start the pool: the MPI rendezvous (ompi-server), one resident server per POOLCONF line
    /// (mpirun onto its host) and the manager, detached; returns once every server is up
    Up {
        /// Lines `HOST SIZE`: a memory-server host and the most DLM may use there
        poolconf: PathBuf,
        /// TCP address the manager listens on (the servers and remote callers use it, with MUNGE)
        #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:7450")]
        listen: SocketAddr,
        /// Unix socket the manager listens on [default: RUNDIR's default/pool.sock, i.e.
        /// /run/dlm/pool.sock for root]
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
        /// Seconds a client's lease lasts after its last keep-alive
        #[arg(long, value_name = "SECONDS", default_value_t = 5)]
        lease: u64,
        /// The name the servers reach the manager by [default: this host's name]
        #[arg(long, value_name = "HOST")]
        advertise: Option<String>,
        /// Where the logs, ompi-server's URI file and the manager's pid go
        /// [default: /run/dlm for root, else $XDG_RUNTIME_DIR/dlm]
        #[arg(long, value_name = "DIR")]
        run_dir: Option<PathBuf>,
        /// Seconds to wait for every server to come up before stopping it all
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        timeout: u64,
    },
    /// Run the pool's manager in the foreground for the servers that POOLCONF names
    Manager {
        /// Lines `HOST SIZE`: a memory-server host and the most DLM may use there
        poolconf: PathBuf,
        /// TCP address to listen on (callers there need MUNGE credentials)
        #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:7450")]
        listen: SocketAddr,
        /// Unix socket to listen on (callers there are known by their peer credentials)
        #[arg(long, value_name = "PATH", default_value = dlm_pool::client::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Seconds a client's lease lasts after its last keep-alive
        #[arg(long, value_name = "SECONDS", default_value_t = 5)]
        lease: u64,
        /// Also start and supervise ompi-server and the servers (what `dlm pool up` runs)
        #[arg(long)]
        launch: bool,
        /// With --launch: the name the servers reach the manager by [default: this host's name]
        #[arg(long, value_name = "HOST", requires = "launch")]
        advertise: Option<String>,
        /// With --launch: where the logs and ompi-server's URI file go
        #[arg(long, value_name = "DIR", requires = "launch")]
        run_dir: Option<PathBuf>,
    },
    /// Run one resident memory server (what `dlm pool up` starts through mpirun onto each host)
    Serve {
        /// The manager to register with: HOST[:PORT] or a Unix socket's path
        #[arg(long, value_name = "MANAGER")]
        manager: String,
        /// The pool's MPI rendezvous (`ompi-server`'s URI), which the workers need
        #[arg(long, value_name = "URI")]
        rendezvous: String,
        /// The POOLCONF line (server id) this server takes
        #[arg(long, value_name = "N")]
        line: Option<u32>,
        /// The most this server holds (the manager also applies its POOLCONF cap)
        #[arg(long, value_name = "SIZE", value_parser = dlm_units::parse_size)]
        cap: Option<u64>,
    },
    /// One program's worker on a server's host (started by `dlm pool serve`)
    #[command(hide = true)]
    Worker {
        #[arg(long, value_name = "URI")]
        rendezvous: String,
        /// The most bytes the program may store
        #[arg(long, value_name = "BYTES")]
        capacity: u64,
    },
    /// Show each server (cap, use, load, host memory, state) and each client
    Status {
        /// Print the manager's JSON instead of tables
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        at: ManagerAddress,
    },
    /// Stop new assignments to HOST's servers and move their clients' pages elsewhere
    Drain {
        host: String,
        #[command(flatten)]
        at: ManagerAddress,
    },
    /// Stop the pool; refused while clients run unless --force
    Down {
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        at: ManagerAddress,
    },
}

#[derive(Debug, clap::Args)]
struct ManagerAddress {
    /// The manager: HOST[:PORT] (TCP, with a MUNGE credential) or a socket path
    /// [default: $DLM_POOL, else /run/dlm/pool.sock]
    #[arg(short = 's', long = "server", value_name = "HOST")]
    server: Option<String>,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Doctor { memfile } => doctor(memfile),
        Command::Pool(command) => match pool_command(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                // The pool's errors already say what failed and why (their sources included).
                eprintln!("dlm pool: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn pool_command(command: PoolCommand) -> anyhow::Result<()> {
    match command {
        PoolCommand::Up { poolconf, listen, socket, lease, advertise, run_dir, timeout } => {
            let socket = socket.unwrap_or_else(|| launch::default_run_dir().join("pool.sock"));
            let run_dir = run_dir.unwrap_or_else(launch::default_run_dir);
            let timeout = std::time::Duration::from_secs(timeout);
            launch::up(&launch::UpOptions { poolconf, listen, socket, lease, advertise, run_dir, timeout })
        }
        PoolCommand::Manager { poolconf, listen, socket, lease, launch, advertise, run_dir } => {
            let launch = launch.then(|| pool::LaunchOptions {
                advertise: advertise.unwrap_or_else(dlm::probe::hostname),
                run_dir: run_dir.unwrap_or_else(launch::default_run_dir),
            });
            pool::manager(&poolconf, Some(listen), Some(socket), lease, launch)
        }
        PoolCommand::Serve { manager, rendezvous, line, cap } => {
            dlm::server::resident::serve(&manager, &rendezvous, line, cap)
        }
        PoolCommand::Worker { rendezvous, capacity } => dlm::server::resident::worker(&rendezvous, capacity),
        PoolCommand::Status { json, at } => pool::status(&pool::client(at.server), json),
        PoolCommand::Drain { host, at } => pool::drain(&pool::client(at.server), &host),
        PoolCommand::Down { force, at } => pool::down(&pool::client(at.server), force),
    }
}

fn doctor(memfile: Option<PathBuf>) -> ExitCode {
    let source = checks::MemfileSource::choose(memfile);
    println!("dlm doctor: what DLM needs on {} and on the memfile's hosts\n", dlm::probe::hostname());
    let findings = checks::run_all(&source);
    print!("{}", report::render(&findings));
    if report::any_failure(&findings) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
