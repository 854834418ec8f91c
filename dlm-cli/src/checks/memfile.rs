//! The memfile, read by the runtime's own parser (`dlm::config::memfile`), and its hosts: each must
//! resolve, since MPI launches a memory server on every line's host.

use super::options::DlmEnvironment;
use super::MemfileSource;
use crate::report::Finding;
use dlm::config::memfile::{Memfile, MemfileError, ServerLine};
use dlm::config::ConfigError;
use dlm_units::Bytes;
use std::io;
use std::net::{IpAddr, ToSocketAddrs};

/// Where a DLM program would run its memory servers.
pub enum Servers {
    /// No memfile: one server on localhost.
    OneOnLocalhost,
    /// One server per memfile line.
    Listed(Memfile),
    /// The memfile was rejected, so where is unknown.
    Unknown,
}

pub fn check(source: &MemfileSource, environment: &DlmEnvironment) -> (Vec<Finding>, Servers) {
    const TOPIC: &str = "memfile";
    let Some(path) = source.path() else {
        let detail = "none given (--memfile, DLM_MEMFILE): a program started alone spawns one memory server on \
                      localhost";
        return (vec![Finding::ok(TOPIC, detail)], Servers::OneOnLocalhost);
    };
    let memfile = match Memfile::load(path) {
        Ok(memfile) => memfile,
        Err(error) => return (vec![Finding::failure(TOPIC, error.to_string(), advice(&error))], Servers::Unknown),
    };
    // The runtime also checks every server against the page size it would use.
    if let Err(ConfigError::Memfile(error)) = environment.parse(Some(path)) {
        return (vec![Finding::failure(TOPIC, error.to_string(), advice(&error))], Servers::Unknown);
    }
    let total: u64 = memfile.servers.iter().map(|s| s.capacity).sum();
    let from = match source {
        MemfileSource::Argument(_) => "--memfile",
        _ => "DLM_MEMFILE",
    };
    let detail = format!(
        "{} ({from}): {} memory server(s) that may hold {} in all",
        path.display(),
        memfile.servers.len(),
        Bytes(total)
    );
    let mut findings = vec![Finding::ok(TOPIC, detail)];
    findings.extend(distinct_hosts(&memfile).into_iter().map(|line| host(&memfile, line)));
    (findings, Servers::Listed(memfile))
}

fn advice(error: &MemfileError) -> &'static str {
    match error {
        MemfileError::Unreadable { .. } => "check the path given with --memfile or DLM_MEMFILE",
        MemfileError::Malformed { .. } | MemfileError::BadSize { .. } => {
            "write one memory server per line as `HOST SIZE` (e.g. `node03 16G`; sizes take K, M, G, T); `#` starts a \
             comment"
        }
        MemfileError::TooSmall { .. } => "give that server at least one DLM page, or a smaller DLM_PAGE_SIZE",
        MemfileError::Empty { .. } => "add a line such as `localhost 4G`",
    }
}

/// The first line naming each host, in the memfile's order.
pub fn distinct_hosts(memfile: &Memfile) -> Vec<&ServerLine> {
    let mut seen = Vec::<&ServerLine>::new();
    for line in &memfile.servers {
        if !seen.iter().any(|s| s.host == line.host) {
            seen.push(line);
        }
    }
    seen
}

fn host(memfile: &Memfile, line: &ServerLine) -> Finding {
    let topic = format!("host {}", line.host);
    match resolve(&line.host) {
        Ok(address) => {
            let place = if is_this_machine(&line.host, address) { " (this machine)" } else { "" };
            Finding::ok(topic, format!("resolves to {address}{place}"))
        }
        Err(error) => Finding::failure(
            topic,
            format!("{}:{}: `{}` does not resolve ({error})", memfile.path.display(), line.line, line.host),
            "name a host that this machine resolves (DNS or /etc/hosts), as MPI starts a server there; `localhost` \
             is this machine",
        ),
    }
}

/// The first address `host` resolves to.
pub fn resolve(host: &str) -> io::Result<IpAddr> {
    (host, 0)
        .to_socket_addrs()?
        .next()
        .map(|a| a.ip())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))
}

/// Whether a memfile host is this machine: its name, `localhost`, or a loopback address.
pub fn is_this_machine(host: &str, address: IpAddr) -> bool {
    host == "localhost" || host == dlm::probe::hostname() || address.is_loopback()
}
