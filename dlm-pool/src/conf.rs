//! POOLCONF: the hosts of a pool's cluster and the most DLM may use on each.
//!
//! ```text
//! # host      the most DLM may use there
//! node03      16G
//! node04      512M
//! # compute nodes: where the cluster's manager runs the jobs DLM-WAN sends it
//! compute node01  8G
//! ```
//! A `HOST SIZE` line is a resident memory server (the memfile's grammar): `#` starts a
//! comment, the same host may appear on several lines (one server each). A server's id in the
//! pool is its line's index among the server lines (0, 1, …), so ids survive a restart of the
//! manager. A `compute HOST SIZE` line is a compute node of the cluster (once per host).

use dlm_units::{host_lines, HostLine, HostLineError, SizeError};
use std::path::{Path, PathBuf};

/// One resident memory server: where it runs and its cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfLine {
    pub host: String,
    pub cap_bytes: u64,
    /// The line number in the file, for messages.
    pub line: usize,
}

/// A parsed POOLCONF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConf {
    pub path: PathBuf,
    pub servers: Vec<ConfLine>,
    /// The cluster's compute nodes (`compute HOST SIZE`), for the jobs of DLM-WAN.
    pub compute: Vec<ConfLine>,
}

/// The word that starts a compute node's line.
const COMPUTE: &str = "compute";

/// Why a POOLCONF was rejected; every variant names the file (and line).
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("cannot read POOLCONF {path}: {source}")]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: expected `HOST SIZE` (e.g. `node03 16G`), found `{text}`")]
    Malformed { path: PathBuf, line: usize, text: String },
    #[error("{path}:{line}: {source}")]
    BadSize { path: PathBuf, line: usize, source: SizeError },
    #[error("{path}:{line}: a cap of 0 bytes gives DLM nothing on {host}; remove the line or give a size")]
    ZeroCap { path: PathBuf, line: usize, host: String },
    #[error(
        "{path}: names no memory server and no compute node; add a line such as `node03 16G` or `compute node01 8G`"
    )]
    Empty { path: PathBuf },
    #[error("{path}:{line}: compute node {host} is already on line {first}; list each compute node once")]
    DuplicateCompute { path: PathBuf, line: usize, host: String, first: usize },
}

impl PoolConf {
    /// Reads and parses the POOLCONF at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfError::Unreadable { path: path.to_path_buf(), source })?;
        Self::parse(path, &text)
    }

    /// Parses POOLCONF text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfError> {
        let (server_text, compute_text) = split_compute_lines(text);
        let servers = host_lines(&server_text).map(|line| server_line(path, line)).collect::<Result<Vec<_>, _>>()?;
        let compute = host_lines(&compute_text).map(|line| server_line(path, line)).collect::<Result<Vec<_>, _>>()?;
        if servers.is_empty() && compute.is_empty() {
            return Err(ConfError::Empty { path: path.into() });
        }
        check_compute_once(path, &compute)?;
        Ok(PoolConf { path: path.to_path_buf(), servers, compute })
    }
}

/// The text's server lines and its compute lines (without the word `compute`) as two texts of
/// the same line count, so that both parse with the memfile's grammar and keep their numbers.
fn split_compute_lines(text: &str) -> (String, String) {
    let (mut servers, mut compute) = (String::new(), String::new());
    for raw in text.lines() {
        let mut words = raw.split('#').next().unwrap_or("").split_whitespace();
        if words.next() == Some(COMPUTE) {
            compute.push_str(&words.collect::<Vec<_>>().join(" "));
        } else {
            servers.push_str(raw);
        }
        servers.push('\n');
        compute.push('\n');
    }
    (servers, compute)
}

/// A compute node is one host: two lines for it would count its memory twice.
fn check_compute_once(path: &Path, compute: &[ConfLine]) -> Result<(), ConfError> {
    for (i, node) in compute.iter().enumerate() {
        if let Some(first) = compute[..i].iter().find(|n| n.host == node.host) {
            let (line, host, first) = (node.line, node.host.clone(), first.line);
            return Err(ConfError::DuplicateCompute { path: path.into(), line, host, first });
        }
    }
    Ok(())
}

/// One server line of the memfile grammar, with a cap of at least one byte.
fn server_line(path: &Path, line: Result<HostLine, HostLineError>) -> Result<ConfLine, ConfError> {
    match line {
        Ok(HostLine { host, bytes: 0, line }) => Err(ConfError::ZeroCap { path: path.into(), line, host }),
        Ok(HostLine { host, bytes, line }) => Ok(ConfLine { host, cap_bytes: bytes, line }),
        Err(HostLineError::Malformed { line, text }) => Err(ConfError::Malformed { path: path.into(), line, text }),
        Err(HostLineError::BadSize { line, source }) => Err(ConfError::BadSize { path: path.into(), line, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PoolConf, ConfError> {
        PoolConf::parse(Path::new("pool.conf"), text)
    }

    #[test]
    fn reads_hosts_caps_and_comments() {
        let conf = parse("# pool\nnode03 16G\n\n  node04\t512M  # small one\nnode03 1G\n").unwrap();
        let lines: Vec<_> = conf.servers.iter().map(|s| (s.host.as_str(), s.cap_bytes, s.line)).collect();
        assert_eq!(lines, [("node03", 16 << 30, 2), ("node04", 512 << 20, 4), ("node03", 1 << 30, 5)]);
    }

    #[test]
    fn names_the_bad_line() {
        let err = parse("node03 1G\nnode04\n").unwrap_err().to_string();
        assert_eq!(err, "pool.conf:2: expected `HOST SIZE` (e.g. `node03 16G`), found `node04`");
        let err = parse("node03 12X\n").unwrap_err().to_string();
        assert!(err.starts_with("pool.conf:1: invalid size `12X`"), "{err}");
        let err = parse("\nnode03 0\n").unwrap_err().to_string();
        assert!(err.starts_with("pool.conf:2: a cap of 0 bytes"), "{err}");
        assert!(matches!(parse("# nothing\n"), Err(ConfError::Empty { .. })));
    }

    #[test]
    fn reads_compute_nodes_beside_servers() {
        let conf = parse("node03 1G\ncompute node01 8G # big\n  compute\tnode02 4G\n").unwrap();
        let servers: Vec<_> = conf.servers.iter().map(|s| (s.host.as_str(), s.line)).collect();
        assert_eq!(servers, [("node03", 1)]);
        let compute: Vec<_> = conf.compute.iter().map(|s| (s.host.as_str(), s.cap_bytes, s.line)).collect();
        assert_eq!(compute, [("node01", 8 << 30, 2), ("node02", 4 << 30, 3)]);
        assert!(parse("compute node01 8G\n").unwrap().servers.is_empty(), "a cluster may have no pool");
        let err = parse("compute node01\n").unwrap_err().to_string();
        assert_eq!(err, "pool.conf:1: expected `HOST SIZE` (e.g. `node03 16G`), found `node01`");
        let err = parse("compute node01 1G\nnode03 1G\ncompute node01 2G\n").unwrap_err().to_string();
        assert!(err.contains(":3: compute node node01 is already on line 1"), "{err}");
    }

    #[test]
    fn unreadable_file_names_it() {
        let err = PoolConf::load(Path::new("/nonexistent/pool.conf")).unwrap_err().to_string();
        assert!(err.starts_with("cannot read POOLCONF /nonexistent/pool.conf:"), "{err}");
    }
}
