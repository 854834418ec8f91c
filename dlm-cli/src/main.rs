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
//! (see docs/POOL.md).
//! DLM-WAN: `dlm submit -m MEMORY PROGRAM…` sends a program (or a C source, `--dlmcc`) and its
//! input files to the WAN manager, which runs it on a cluster node that can give it MEMORY, and
//! follows it (its output here, its exit status as dlm submit's); `dlm jobs`, `dlm fetch JOB`
//! and `dlm cancel JOB` list, collect and end jobs; `dlm wan up HOSTCONF` starts a WAN manager
//! (detached), `dlm wan manager HOSTCONF` runs one in the foreground, `dlm wan status [--json]`
//! and `dlm wan down [--force]` talk to it. `dlm portal -w WANHOST` serves the web portal (as
//! root): users log in with their cluster account and run, follow and collect their jobs in a
//! browser (docs/PORTAL.md). `dlm --version` prints the version, as `dlmcc --version` does.
//!
//! Modules: `checks` (one file per check, run in order by `checks::run_all`), `report`
//! (findings, and how they are printed), `pool` (the `dlm pool` subcommands), `launch`
//! (what `dlm pool up` starts and how it stops), `jobs` (`dlm submit`, `jobs`, `fetch`,
//! `cancel`), `wan` (the `dlm wan` subcommands, and the WAN manager's address for all) and
//! `portal` (`dlm portal`, with PAM logins).

mod checks;
mod jobs;
mod launch;
mod pool;
mod portal;
mod report;
mod wan;

use clap::{Parser, Subcommand};
use dlm_wan::proto::{JobId, Mode, Place};
use std::io::Write as _;
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
    /// Run a program on the cluster node that the WAN manager finds for MEMORY, and follow it:
    /// its place on stderr as it changes, its output here as it grows, its exit status as ours
    #[command(
        override_usage = "dlm submit [-w WANHOST] -m MEMORY [-u USER] [--mode MODE] [--in FILE]... [--out NAME]... \
                          [--dlmcc [--cflags FLAGS]] [--detach] [--] PROGRAM [ARGS]..."
    )]
    #[command(after_help = "Ctrl-C stops following the job, not the job: a batch job outlives its terminal. \
                            `dlm jobs` shows it, `dlm fetch JOB` writes its outputs and logs once it has \
                            ended, `dlm cancel JOB` ends it.")]
    Submit(SubmitArgs),
    /// List your jobs at the WAN manager (root: everyone's)
    Jobs {
        /// Print the WAN manager's JSON instead of a table
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        at: WanAddress,
    },
    /// Write an ended job's outputs, and its whole stdout and stderr (job-JOB.stdout,
    /// job-JOB.stderr), into DIR; print each path written
    Fetch {
        /// The job's number (`dlm jobs` lists them)
        #[arg(value_name = "JOB")]
        job: u64,
        /// Where to write them (made if missing)
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        #[command(flatten)]
        at: WanAddress,
    },
    /// Cancel a job: out of the queue, or stopped where it runs
    Cancel {
        /// The job's number (`dlm jobs` lists them)
        #[arg(value_name = "JOB")]
        job: u64,
        #[command(flatten)]
        at: WanAddress,
    },
    /// DLM-WAN: the WAN manager that places jobs on the clusters of a HOSTCONF
    #[command(subcommand)]
    Wan(WanCommand),
    /// The web portal, in the foreground: users log in with their cluster account (PAM) and
    /// run, follow and download their jobs through the WAN manager (run it as root)
    Portal(PortalArgs),
}

#[derive(Debug, clap::Args)]
struct PortalArgs {
    /// TCP address to serve HTTP on (put a TLS proxy in front for use beyond this host)
    #[arg(long, value_name = "ADDR", default_value = dlm_portal::DEFAULT_LISTEN)]
    listen: SocketAddr,
    #[command(flatten)]
    at: WanAddress,
    /// Minutes a session lasts without a page being opened (polling does not count)
    #[arg(long, value_name = "MINUTES", default_value_t = dlm_portal::DEFAULT_SESSION_IDLE.as_secs() / 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    session_minutes: u64,
    /// The largest job form taken, all its files together (e.g. 256M, 2G)
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = dlm_units::parse_size)]
    max_upload: u64,
    /// The PAM service whose policy checks passwords (/etc/pam.d/NAME)
    #[arg(long, value_name = "NAME", default_value = dlm_portal::DEFAULT_PAM_SERVICE)]
    pam_service: String,
    /// Mark the cookies Secure: the browser sends them over HTTPS only (behind a TLS proxy)
    #[arg(long)]
    secure_cookies: bool,
}

#[derive(Debug, clap::Args)]
struct SubmitArgs {
    #[command(flatten)]
    at: WanAddress,
    /// All the memory the program needs, local and far (e.g. 4G): the WAN manager finds a node
    /// with that much, or a cluster whose pool makes up the rest
    #[arg(short = 'm', long = "memory", value_name = "MEMORY", value_parser = dlm_units::parse_size)]
    memory: u64,
    /// The account to run as on the cluster (root only) [default: yours]
    #[arg(short = 'u', long, value_name = "USER")]
    user: Option<String>,
    /// How the WAN manager picks a cluster: local-first (a node with the memory free, else the
    /// best-fitting pool) or equalize (the cluster with the fewest DLM clients)
    #[arg(long, value_enum, value_name = "MODE", default_value_t = SubmitMode::LocalFirst)]
    mode: SubmitMode,
    /// An input file, placed beside the program on the node (repeat for more)
    #[arg(long = "in", value_name = "FILE")]
    inputs: Vec<PathBuf>,
    /// A file the program writes in its directory, kept for `dlm fetch` (repeat for more)
    #[arg(long = "out", value_name = "NAME")]
    outputs: Vec<String>,
    /// PROGRAM is a C source (.c): the node builds it with dlmcc first
    #[arg(long)]
    dlmcc: bool,
    /// With --dlmcc: the compiler's flags, split at spaces (e.g. "-DN=64 -O3")
    #[arg(long, value_name = "FLAGS", requires = "dlmcc", allow_hyphen_values = true)]
    cflags: Option<String>,
    /// Run on this cluster's compute node instead of where MODE would choose (see `dlm wan
    /// status` for the nodes); the job waits until that node (and its pool) has the memory
    #[arg(long, value_name = "CLUSTER/NODE", value_parser = parse_place)]
    on: Option<Place>,
    /// Print the job's number on stdout and return once it is submitted, without following it
    #[arg(long)]
    detach: bool,
    /// The program (a local executable file, or with --dlmcc a C source) and its arguments
    #[arg(value_name = "PROGRAM", required = true, trailing_var_arg = true, num_args = 1..)]
    command: Vec<String>,
}

/// `--on CLUSTER/NODE`.
fn parse_place(text: &str) -> Result<Place, String> {
    match text.split_once('/') {
        Some((cluster, node)) if !cluster.is_empty() && !node.is_empty() && !node.contains('/') => {
            Ok(Place { cluster: cluster.into(), node: node.into() })
        }
        _ => Err(format!("`{text}`: give a cluster and one of its compute nodes as CLUSTER/NODE (e.g. osaka/node01)")),
    }
}

/// `dlm submit --mode`, as `dlm_wan::proto::Mode` spells it.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SubmitMode {
    LocalFirst,
    Equalize,
}

#[derive(Debug, Subcommand)]
enum WanCommand {
    /// Start the WAN manager detached (its output in SPOOL/manager.log); returns once it has
    /// asked every cluster's manager once, printing the status
    Up {
        /// The clusters: each one's pool manager and compute nodes
        hostconf: PathBuf,
        /// TCP address to listen on (callers need MUNGE credentials)
        #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:7460")]
        listen: SocketAddr,
        /// Where jobs' files, logs and outputs are kept [default: /var/spool/dlm-wan for root,
        /// else /var/tmp/dlm-wan-UID]
        #[arg(long, value_name = "DIR")]
        spool: Option<PathBuf>,
        /// Seconds to wait for the manager before stopping it
        #[arg(long, value_name = "SECONDS", default_value_t = 20)]
        timeout: u64,
    },
    /// Run the WAN manager in the foreground for the clusters that HOSTCONF names
    Manager {
        /// The clusters: each one's pool manager and compute nodes
        hostconf: PathBuf,
        /// TCP address to listen on (callers need MUNGE credentials)
        #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:7460")]
        listen: SocketAddr,
        /// Where jobs' files, logs and outputs are kept [default: /var/spool/dlm-wan for root,
        /// else /var/tmp/dlm-wan-UID]
        #[arg(long, value_name = "DIR")]
        spool: Option<PathBuf>,
    },
    /// Show each cluster (its manager, reach, clients, pool; each node and memory server) and
    /// the queue
    Status {
        /// Print the WAN manager's JSON instead of tables
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        at: WanAddress,
    },
    /// Stop the WAN manager; refused while jobs are queued or running unless --force (which
    /// cancels them)
    Down {
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        at: WanAddress,
    },
}

#[derive(Debug, clap::Args)]
struct WanAddress {
    /// The WAN manager: HOST[:PORT] (TCP, port 7460 by default, with a MUNGE credential)
    /// [default: $DLM_WAN, else localhost]
    #[arg(short = 'w', long = "wan", value_name = "WANHOST")]
    wan: Option<String>,
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
        Command::Submit(args) => report("submit", submit(args)),
        Command::Jobs { json, at } => {
            report("jobs", jobs::jobs(&wan::client(at.wan), json).map(|()| ExitCode::SUCCESS))
        }
        Command::Fetch { job, dir, at } => {
            report("fetch", jobs::fetch(&wan::client(at.wan), JobId(job), &dir).map(|()| ExitCode::SUCCESS))
        }
        Command::Cancel { job, at } => {
            report("cancel", jobs::cancel(&wan::client(at.wan), JobId(job)).map(|()| ExitCode::SUCCESS))
        }
        Command::Wan(command) => report("wan", wan_command(command).map(|()| ExitCode::SUCCESS)),
        Command::Portal(args) => {
            let config = dlm_portal::PortalConfig {
                listen: args.listen,
                wan: wan::client(args.at.wan),
                session_idle: std::time::Duration::from_secs(args.session_minutes * 60),
                max_upload: args.max_upload,
                secure_cookies: args.secure_cookies,
            };
            report("portal", portal::run(config, &args.pam_service).map(|()| ExitCode::SUCCESS))
        }
    }
}

/// A command's exit status; its error on stderr after `dlm COMMAND:` (the errors already say
/// what failed and why, their sources included; a stderr that is gone is no reason to panic).
fn report(command: &str, result: anyhow::Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|e| {
        let _ = writeln!(std::io::stderr(), "dlm {command}: {e}");
        ExitCode::FAILURE
    })
}

fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let mut command = args.command.into_iter();
    let submission = jobs::Submission {
        memory_bytes: args.memory,
        user: args.user,
        mode: match args.mode {
            SubmitMode::LocalFirst => Mode::LocalFirst,
            SubmitMode::Equalize => Mode::Equalize,
        },
        inputs: args.inputs,
        outputs: args.outputs,
        dlmcc: args.dlmcc,
        cflags: args.cflags.as_deref().unwrap_or_default().split_whitespace().map(String::from).collect(),
        detach: args.detach,
        place: args.on,
        program: command.next().map(PathBuf::from).unwrap_or_default(),
        args: command.collect(),
    };
    jobs::submit(&wan::client(args.at.wan), &submission)
}

fn wan_command(command: WanCommand) -> anyhow::Result<()> {
    match command {
        WanCommand::Up { hostconf, listen, spool, timeout } => wan::up(&wan::UpOptions {
            hostconf,
            listen,
            spool: spool.unwrap_or_else(wan::default_spool),
            timeout: std::time::Duration::from_secs(timeout),
        }),
        WanCommand::Manager { hostconf, listen, spool } => {
            wan::manager(&hostconf, listen, &spool.unwrap_or_else(wan::default_spool))
        }
        WanCommand::Status { json, at } => wan::status(&wan::client(at.wan), json),
        WanCommand::Down { force, at } => wan::down(&wan::client(at.wan), force),
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
