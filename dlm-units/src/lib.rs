//! Byte sizes as DLM's users write them (`4096`, `256K`, `4GiB`; `1.5G` is not accepted) and
//! read them (`256 MiB`, `1.50 GiB`): [`parse_size`] and [`Bytes`], and the `HOST SIZE` lines
//! of the files that name hosts and their memory (the runtime's memfile, a pool's POOLCONF):
//! [`host_lines`]. Shared by the runtime, dlmcc, the pool manager and the `dlm` command so that
//! every front end reads and prints them alike. It is its own crate so that dlmcc and the pool
//! manager can read them without linking the runtime (MPI, mimalloc).

use std::fmt;

/// Why a size string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("invalid size `{0}`: expected a whole number with an optional K, M, G or T suffix (e.g. 256M)")]
    Malformed(String),
    #[error("size `{0}` is too large")]
    Overflow(String),
}

/// Parses `N`, `NK`, `NM`, `NG`, `NT` (binary multiples, case-insensitive; `KB`/`KiB` also accepted).
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let trimmed = text.trim();
    let digits_end = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (digits, suffix) = trimmed.split_at(digits_end);
    if digits.is_empty() {
        return Err(SizeError::Malformed(text.to_string()));
    }
    let shift = match suffix.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(SizeError::Malformed(text.to_string())),
    };
    let number: u64 = digits.parse().map_err(|_| SizeError::Overflow(text.to_string()))?;
    number.checked_mul(1u64 << shift).ok_or_else(|| SizeError::Overflow(text.to_string()))
}

/// One `HOST SIZE` line of a memfile or POOLCONF: a host and the bytes DLM may use there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLine {
    pub host: String,
    pub bytes: u64,
    /// Its line number in the file (from 1), for messages.
    pub line: usize,
}

/// Why a `HOST SIZE` line was rejected (the caller adds the file's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostLineError {
    /// Not two fields: `text` is the line as written.
    Malformed {
        line: usize,
        text: String,
    },
    BadSize {
        line: usize,
        source: SizeError,
    },
}

/// The `HOST SIZE` lines of `text`, in order: `#` starts a comment, blank lines are skipped,
/// the same host may stand on several lines.
pub fn host_lines(text: &str) -> impl Iterator<Item = Result<HostLine, HostLineError>> + '_ {
    text.lines().enumerate().filter_map(|(index, raw)| {
        let line = index + 1;
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            return None;
        }
        let fields: Vec<&str> = content.split_whitespace().collect();
        let [host, size] = fields[..] else {
            return Some(Err(HostLineError::Malformed { line, text: raw.trim().into() }));
        };
        Some(match parse_size(size) {
            Ok(bytes) => Ok(HostLine { host: host.to_string(), bytes, line }),
            Err(source) => Err(HostLineError::BadSize { line, source }),
        })
    })
}

/// Displays a byte count the way people read it (`256 MiB`, `1.50 GiB`, `12 B`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut unit = 0;
        while unit + 1 < UNITS.len() && self.0 >= 1u64 << (10 * (unit + 1)) {
            unit += 1;
        }
        if unit == 0 {
            return write!(f, "{} B", self.0);
        }
        let scaled = self.0 as f64 / (1u64 << (10 * unit)) as f64;
        if scaled.fract() == 0.0 {
            write!(f, "{scaled:.0} {}", UNITS[unit])
        } else {
            write!(f, "{scaled:.2} {}", UNITS[unit])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("256K"), Ok(256 << 10));
        assert_eq!(parse_size("256m"), Ok(256 << 20));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size(" 2T "), Ok(2 << 40));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "G", "12X", "-1", "1.5G", "4 G B"] {
            assert!(matches!(parse_size(bad), Err(SizeError::Malformed(_))), "{bad}");
        }
        assert!(matches!(parse_size("99999999T"), Err(SizeError::Overflow(_))));
        assert!(matches!(parse_size("99999999999999999999999"), Err(SizeError::Overflow(_))));
    }

    #[test]
    fn displays_readably() {
        assert_eq!(Bytes(12).to_string(), "12 B");
        assert_eq!(Bytes(256 << 20).to_string(), "256 MiB");
        assert_eq!(Bytes(3 << 29).to_string(), "1.50 GiB");
    }
}
