//! The checks of `dlm doctor`, one file each, in the order they are printed:
//! `userfaultfd` (fault mode, write-protect, page moves), `huge_pages` (transparent huge pages),
//! `mpi` (Open MPI, its UCX transport, mpirun), `options` (the `DLM_*` variables),
//! `memfile` (syntax and host names), `memory` (available memory on every server host
//! against what the memfile asks) and, when `DLM_POOL` is set, `pool` (the memory pool's
//! manager, servers and rendezvous).

mod huge_pages;
mod memfile;
mod memory;
mod mpi;
mod options;
mod pool;
mod userfaultfd;

use crate::report::Finding;
use std::path::{Path, PathBuf};

/// Where the memfile to check comes from.
#[derive(Debug, Clone)]
pub enum MemfileSource {
    /// `dlm doctor --memfile FILE`.
    Argument(PathBuf),
    /// `DLM_MEMFILE`, as a DLM program would read it.
    Environment(PathBuf),
    /// None: a DLM program started alone spawns one memory server on localhost.
    Default,
}

impl MemfileSource {
    /// The memfile given on the command line, else the one a DLM program would use.
    pub fn choose(argument: Option<PathBuf>) -> Self {
        match (argument, std::env::var_os("DLM_MEMFILE")) {
            (Some(path), _) => MemfileSource::Argument(path),
            (None, Some(path)) => MemfileSource::Environment(path.into()),
            (None, None) => MemfileSource::Default,
        }
    }

    fn path(&self) -> Option<&Path> {
        match self {
            MemfileSource::Argument(path) | MemfileSource::Environment(path) => Some(path),
            MemfileSource::Default => None,
        }
    }
}

/// Runs every check; the findings in the order they should be printed.
pub fn run_all(source: &MemfileSource) -> Vec<Finding> {
    let mut findings = userfaultfd::check();
    findings.push(huge_pages::check());
    let mpi = mpi::check();
    findings.extend(mpi.findings);
    let environment = options::DlmEnvironment::read();
    let (options_finding, config) = options::check(&environment);
    findings.push(options_finding);
    let (memfile_findings, servers) = memfile::check(source, &environment);
    findings.extend(memfile_findings);
    findings.extend(memory::check(&servers, &config, mpi.mpirun.as_deref()));
    findings.extend(pool::check());
    findings
}

/// Whether this process runs as root (effective user id 0).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .is_some_and(|ids| ids.split_whitespace().nth(1) == Some("0"))
    })
}
