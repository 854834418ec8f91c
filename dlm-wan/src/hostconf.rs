//! HOSTCONF: the clusters the WAN manager places programs on, and each one's pool manager.
//!
//! ```text
//! # cluster   its manager (HOST[:PORT], the pool manager's TCP address)
//! osaka       dlmw1-m
//! kyoto       dlmw2-m:7451
//! ```
//! The memfile's grammar: `#` starts a comment, blank lines are skipped, every other line holds
//! two words. A cluster's name (letters, digits, `.`, `_`, `-`) is how jobs and messages name
//! it; its manager is the TCP address of the cluster's DLM pool manager, on the pool's default
//! port unless the line names one. Each cluster has one line, and no two clusters share a
//! manager, so the WAN manager asks each pool once and counts its memory once. The clusters'
//! order is the placement policies' last tie-break.

use dlm_pool::client::DEFAULT_PORT;
use std::path::{Path, PathBuf};

/// One cluster: its name and its pool manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterLine {
    pub name: String,
    /// `HOST:PORT`, with the pool's default port when the line names none.
    pub manager: String,
    /// The line number in the file, for messages.
    pub line: usize,
}

/// A parsed HOSTCONF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConf {
    pub path: PathBuf,
    pub clusters: Vec<ClusterLine>,
}

/// Why a HOSTCONF was rejected; every variant names the file (and line) and what to write.
#[derive(Debug, thiserror::Error)]
pub enum HostConfError {
    #[error("cannot read HOSTCONF {path}: {source}")]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: expected `CLUSTER MANAGER` (e.g. `osaka dlmw1-m:7450`), found `{text}`")]
    Malformed { path: PathBuf, line: usize, text: String },
    #[error(
        "{path}:{line}: `{name}` is not a cluster name; use only letters, digits, `.`, `_` and `-` (e.g. `osaka`)"
    )]
    BadName { path: PathBuf, line: usize, name: String },
    #[error(
        "{path}:{line}: `{host}` is not a manager host; write a host name or IPv4 address, optionally with `:PORT` \
         (e.g. `dlmw1-m:7450`)"
    )]
    BadHost { path: PathBuf, line: usize, host: String },
    #[error(
        "{path}:{line}: `{port}` is not a TCP port; write a number from 1 to 65535 after the `:`, or leave `:PORT` \
         out for {DEFAULT_PORT}"
    )]
    BadPort { path: PathBuf, line: usize, port: String },
    #[error(
        "{path}:{line}: cluster `{name}` is already on line {first_line}; give each cluster one line and its own name"
    )]
    DuplicateName { path: PathBuf, line: usize, name: String, first_line: usize },
    #[error(
        "{path}:{line}: manager {manager} already serves cluster `{cluster}` (line {first_line}); write this \
         cluster's own pool manager, or remove the line if it is the same cluster"
    )]
    DuplicateManager { path: PathBuf, line: usize, manager: String, cluster: String, first_line: usize },
    #[error("{path}: names no cluster; add a line such as `osaka dlmw1-m`")]
    Empty { path: PathBuf },
}

impl HostConf {
    /// Reads and parses the HOSTCONF at `path`.
    pub fn load(path: &Path) -> Result<Self, HostConfError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| HostConfError::Unreadable { path: path.to_path_buf(), source })?;
        Self::parse(path, &text)
    }

    /// Parses HOSTCONF text; `path` is only used in messages. The first bad line, in file
    /// order, is the one reported.
    pub fn parse(path: &Path, text: &str) -> Result<Self, HostConfError> {
        let mut clusters: Vec<ClusterLine> = Vec::new();
        for (line, content) in content_lines(text) {
            let cluster = cluster_line(path, line, content)?;
            check_unique(path, &clusters, &cluster)?;
            clusters.push(cluster);
        }
        if clusters.is_empty() {
            return Err(HostConfError::Empty { path: path.into() });
        }
        Ok(HostConf { path: path.to_path_buf(), clusters })
    }
}

/// The lines of `text` that hold something, numbered from 1, without comment and outer blanks.
/// (`dlm_units::host_lines` reads the same grammar but takes the second word for a size.)
fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(index, raw)| {
        let content = raw.split('#').next().unwrap_or("").trim();
        (!content.is_empty()).then_some((index + 1, content))
    })
}

/// One `CLUSTER MANAGER` line, its name and manager checked.
fn cluster_line(path: &Path, line: usize, content: &str) -> Result<ClusterLine, HostConfError> {
    let fields: Vec<&str> = content.split_whitespace().collect();
    let [name, manager] = fields[..] else {
        return Err(HostConfError::Malformed { path: path.into(), line, text: content.into() });
    };
    if !is_name(name) {
        return Err(HostConfError::BadName { path: path.into(), line, name: name.into() });
    }
    let manager = manager_address(path, line, manager)?;
    Ok(ClusterLine { name: name.into(), manager, line })
}

/// `HOST[:PORT]` as `HOST:PORT`.
fn manager_address(path: &Path, line: usize, text: &str) -> Result<String, HostConfError> {
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, parse_port(path, line, port)?),
        None => (text, DEFAULT_PORT),
    };
    // The same characters as a cluster name: a host name or an IPv4 address, never an IPv6
    // literal, whose colons would be mistaken for the port's.
    if !is_name(host) {
        return Err(HostConfError::BadHost { path: path.into(), line, host: host.into() });
    }
    Ok(format!("{host}:{port}"))
}

/// A TCP port a manager can listen on (1 to 65535).
fn parse_port(path: &Path, line: usize, text: &str) -> Result<u16, HostConfError> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(HostConfError::BadPort { path: path.into(), line, port: text.into() }),
    }
}

/// Letters, digits, `.`, `_` and `-`, at least one.
fn is_name(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b))
}

/// Rejects `cluster` if an earlier line has its name or its manager. Managers compare without
/// case, as host names do.
fn check_unique(path: &Path, earlier: &[ClusterLine], cluster: &ClusterLine) -> Result<(), HostConfError> {
    if let Some(first) = earlier.iter().find(|c| c.name == cluster.name) {
        return Err(HostConfError::DuplicateName {
            path: path.into(),
            line: cluster.line,
            name: cluster.name.clone(),
            first_line: first.line,
        });
    }
    if let Some(first) = earlier.iter().find(|c| c.manager.eq_ignore_ascii_case(&cluster.manager)) {
        return Err(HostConfError::DuplicateManager {
            path: path.into(),
            line: cluster.line,
            manager: cluster.manager.clone(),
            cluster: first.name.clone(),
            first_line: first.line,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HostConf, HostConfError> {
        HostConf::parse(Path::new("wan.conf"), text)
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn reads_clusters_managers_and_comments() {
        let conf =
            parse("# clusters\nosaka dlmw1-m\n\n  kyoto\tdlmw2-m:7451  # the small one\nnara 10.0.0.7\n").unwrap();
        let lines: Vec<_> = conf.clusters.iter().map(|c| (c.name.as_str(), c.manager.as_str(), c.line)).collect();
        assert_eq!(lines, [("osaka", "dlmw1-m:7450", 2), ("kyoto", "dlmw2-m:7451", 4), ("nara", "10.0.0.7:7450", 5)]);
    }

    #[test]
    fn names_the_malformed_line() {
        assert_eq!(
            error("osaka dlmw1-m\nkyoto\n"),
            "wan.conf:2: expected `CLUSTER MANAGER` (e.g. `osaka dlmw1-m:7450`), found `kyoto`"
        );
        assert!(error("osaka dlmw1-m 7451\n").starts_with("wan.conf:1: expected `CLUSTER MANAGER`"));
    }

    #[test]
    fn rejects_bad_names_and_hosts() {
        assert_eq!(
            error("os/aka dlmw1-m\n"),
            "wan.conf:1: `os/aka` is not a cluster name; use only letters, digits, `.`, `_` and `-` (e.g. `osaka`)"
        );
        for manager in [":7451", "[::1]:7451", "fe80::1"] {
            let err = error(&format!("osaka {manager}\n"));
            assert!(err.contains("is not a manager host; write a host name or IPv4 address"), "{manager}: {err}");
        }
    }

    #[test]
    fn rejects_bad_ports() {
        assert_eq!(
            error("osaka dlmw1-m:0\n"),
            "wan.conf:1: `0` is not a TCP port; write a number from 1 to 65535 after the `:`, or leave `:PORT` out \
             for 7450"
        );
        for port in ["", "70000", "x", "-1"] {
            assert!(matches!(parse(&format!("osaka dlmw1-m:{port}\n")), Err(HostConfError::BadPort { .. })), "{port}");
        }
    }

    #[test]
    fn rejects_a_cluster_named_twice() {
        assert_eq!(
            error("osaka dlmw1-m\nkyoto dlmw2-m\nosaka dlmw3-m\n"),
            "wan.conf:3: cluster `osaka` is already on line 1; give each cluster one line and its own name"
        );
    }

    #[test]
    fn rejects_a_manager_named_twice_however_written() {
        // The default port written out, and the host in capitals, are the same manager.
        assert_eq!(
            error("osaka dlmw1-m\nkyoto dlmw1-m:7450\n"),
            "wan.conf:2: manager dlmw1-m:7450 already serves cluster `osaka` (line 1); write this cluster's own \
             pool manager, or remove the line if it is the same cluster"
        );
        assert!(matches!(parse("osaka dlmw1-m\nkyoto DLMW1-M\n"), Err(HostConfError::DuplicateManager { .. })));
        // Another port on the same host is another manager.
        assert_eq!(parse("osaka dlmw1-m\nkyoto dlmw1-m:7451\n").unwrap().clusters.len(), 2);
    }

    #[test]
    fn the_first_bad_line_is_reported() {
        assert!(error("osaka dlmw1-m\nosaka dlmw2-m\nkyoto\n").starts_with("wan.conf:2: cluster `osaka`"));
    }

    #[test]
    fn a_file_without_clusters_says_what_to_add() {
        assert_eq!(error("# nothing yet\n\n"), "wan.conf: names no cluster; add a line such as `osaka dlmw1-m`");
    }

    #[test]
    fn unreadable_file_names_it() {
        let err = HostConf::load(Path::new("/nonexistent/wan.conf")).unwrap_err().to_string();
        assert!(err.starts_with("cannot read HOSTCONF /nonexistent/wan.conf:"), "{err}");
    }
}
