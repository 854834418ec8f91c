//! The memfile: which hosts run memory servers and how many bytes each may give.
//!
//! ```text
//! # host      bytes it may give
//! node03      16G
//! localhost   4G
//! ```
//! One server per line; the same host may appear on several lines (one server each).

use dlm_units::{host_lines, HostLineError, SizeError};
use std::path::{Path, PathBuf};

/// One memory server: where it runs and the most it may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLine {
    pub host: String,
    pub capacity: u64,
    pub line: usize,
}

/// A parsed memfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memfile {
    pub path: PathBuf,
    pub servers: Vec<ServerLine>,
}

/// Why a memfile was rejected; every variant names the file (and line).
#[derive(Debug, thiserror::Error)]
pub enum MemfileError {
    #[error("cannot read memfile {path}: {source}")]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: expected `HOST SIZE` (e.g. `node03 16G`), found `{text}`")]
    Malformed { path: PathBuf, line: usize, text: String },
    #[error("{path}:{line}: {source}")]
    BadSize { path: PathBuf, line: usize, source: SizeError },
    #[error("{path}:{line}: a memory server must be allowed at least one page ({page_size} bytes), found {capacity}")]
    TooSmall { path: PathBuf, line: usize, capacity: u64, page_size: usize },
    #[error("{path}: names no memory server; add a line such as `localhost 4G`")]
    Empty { path: PathBuf },
}

impl Memfile {
    /// Reads and parses the memfile at `path`.
    pub fn load(path: &Path) -> Result<Self, MemfileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| MemfileError::Unreadable { path: path.to_path_buf(), source })?;
        Self::parse(path, &text)
    }

    /// Parses memfile text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, MemfileError> {
        let servers = host_lines(text)
            .map(|line| match line {
                Ok(l) => Ok(ServerLine { host: l.host, capacity: l.bytes, line: l.line }),
                Err(HostLineError::Malformed { line, text }) => {
                    Err(MemfileError::Malformed { path: path.into(), line, text })
                }
                Err(HostLineError::BadSize { line, source }) => {
                    Err(MemfileError::BadSize { path: path.into(), line, source })
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if servers.is_empty() {
            return Err(MemfileError::Empty { path: path.into() });
        }
        Ok(Memfile { path: path.to_path_buf(), servers })
    }

    /// Checks that every server can hold at least one page of `page_size` bytes.
    pub fn check_page_size(&self, page_size: usize) -> Result<(), MemfileError> {
        match self.servers.iter().find(|s| s.capacity < page_size as u64) {
            Some(s) => {
                Err(MemfileError::TooSmall { path: self.path.clone(), line: s.line, capacity: s.capacity, page_size })
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Memfile, MemfileError> {
        Memfile::parse(Path::new("mf"), text)
    }

    #[test]
    fn reads_hosts_sizes_and_comments() {
        let mf = parse("# servers\nnode03 16G\n\n  localhost\t4G  # the local one\n").unwrap();
        let hosts: Vec<_> = mf.servers.iter().map(|s| (s.host.as_str(), s.capacity, s.line)).collect();
        assert_eq!(hosts, [("node03", 16 << 30, 2), ("localhost", 4 << 30, 4)]);
    }

    #[test]
    fn names_the_bad_line() {
        let err = parse("localhost 1G\nnode04\n").unwrap_err().to_string();
        assert_eq!(err, "mf:2: expected `HOST SIZE` (e.g. `node03 16G`), found `node04`");
        let err = parse("localhost 12X\n").unwrap_err().to_string();
        assert!(err.starts_with("mf:1: invalid size `12X`"), "{err}");
        let err = parse("a 1G b\n").unwrap_err().to_string();
        assert!(err.starts_with("mf:1: expected"), "{err}");
        assert!(matches!(parse("# nothing\n"), Err(MemfileError::Empty { .. })));
    }
}
