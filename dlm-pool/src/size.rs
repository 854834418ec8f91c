//! Byte sizes as administrators write them in a POOLCONF (`4096`, `512M`, `4G`, `4GiB`) and as
//! the status table prints them.
//!
//! The grammar is the memfile's (`dlm-rt/src/size.rs`); it is repeated here, not imported,
//! because this crate must not depend on `dlm-rt` (which links MPI). Keep the two in step.

use std::fmt;

/// Why a size string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("invalid size `{0}`: expected a whole number with an optional K, M, G or T suffix (e.g. 512M)")]
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
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("4g"), Ok(4 << 30));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size(" 2T "), Ok(2 << 40));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "G", "12X", "-1", "1.5G", "4 G B"] {
            assert!(matches!(parse_size(bad), Err(SizeError::Malformed(_))), "{bad}");
        }
        assert!(matches!(parse_size("99999999T"), Err(SizeError::Overflow(_))));
    }

    #[test]
    fn displays_readably() {
        assert_eq!(Bytes(12).to_string(), "12 B");
        assert_eq!(Bytes(512 << 20).to_string(), "512 MiB");
        assert_eq!(Bytes(3 << 29).to_string(), "1.50 GiB");
    }
}
