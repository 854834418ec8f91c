//! `dlm`: the DLM command for the users of a machine.
//!
//! `dlm doctor [--memfile FILE]` checks what DLM needs here and on the memfile's hosts — the
//! userfaultfd mode and kernel features the pager uses, transparent huge pages, Open MPI with
//! its UCX transport, the `DLM_*` options, the memfile's syntax and hosts, and available memory
//! against what the memfile asks — and says for each problem what to do. It exits 1 when
//! something would stop a DLM run; warnings (slower, but works) keep status 0.
//! `dlm --version` prints the version, as `dlmcc --version` does.
//!
//! Modules: `checks` (one file per check, run in order by `checks::run_all`) and `report`
//! (findings, and how they are printed).

mod checks;
mod report;

use clap::{Parser, Subcommand};
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
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Doctor { memfile } => doctor(memfile),
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
