//! What the rewrite decided for each big or marked array and each heap call: data plus a
//! one-line `Display` for `dlmcc`'s report.

use std::fmt;

/// One decision about one array or one heap call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportEntry {
    /// The file as the user named it (or a header's path).
    pub file: String,
    /// 1-based line of the declaration or call.
    pub line: u32,
    /// What the decision is about.
    pub subject: Subject,
    /// What was decided.
    pub decision: Decision,
}

/// What a [`ReportEntry`] is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A static-storage array.
    Array {
        /// The variable's name.
        name: String,
        /// Its type as clang spells it, e.g. `double[512][512]`.
        type_name: String,
        /// Its `sizeof`.
        bytes: u64,
    },
    /// A reference to a C library allocation function (`malloc`, `free`, ...).
    Allocation {
        /// The function's name.
        function: String,
    },
}

/// Whether the subject goes into DLM memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Moved into DLM memory by this rule.
    Moved(Rule),
    /// Left as it is, for this reason.
    Kept(String),
}

/// Why something was moved into DLM memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Its size is at least this threshold (bytes).
    Threshold(u64),
    /// A `#pragma dlm` before its declaration.
    Pragma,
    /// An `__attribute__((dlm))` on it.
    Attribute,
    /// A heap allocation call: its blocks go to DLM at run time (pages of their own from the
    /// threshold, the small-block heap below it).
    AllocationSite,
}

/// `bytes` in binary units with one decimal (`2.0 MiB`), or exact bytes below 1 KiB.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A threshold in the largest binary unit that divides it (`1 MiB`), else as [`human_size`].
fn threshold_size(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.trailing_zeros() >= shift {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    human_size(bytes)
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Threshold(t) => write!(f, "size >= threshold {}", threshold_size(*t)),
            Rule::Pragma => f.write_str("#pragma dlm"),
            Rule::Attribute => f.write_str("__attribute__((dlm))"),
            Rule::AllocationSite => {
                f.write_str("allocation site (from the threshold pages of their own, below it the small-block heap)")
            }
        }
    }
}

impl fmt::Display for ReportEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        match &self.subject {
            Subject::Array { name, type_name, bytes } => {
                write!(f, "array '{name}' ({type_name}, {})", human_size(*bytes))?
            }
            Subject::Allocation { function } => write!(f, "call to '{function}'")?,
        }
        match &self.decision {
            Decision::Moved(rule) => write!(f, " -> DLM: {rule}"),
            Decision::Kept(why) => write!(f, " kept: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_entry() {
        let e = ReportEntry {
            file: "prog.c".into(),
            line: 7,
            subject: Subject::Array { name: "a".into(), type_name: "double[512][512]".into(), bytes: 2 << 20 },
            decision: Decision::Moved(Rule::Threshold(1 << 20)),
        };
        assert_eq!(e.to_string(), "prog.c:7: array 'a' (double[512][512], 2.0 MiB) -> DLM: size >= threshold 1 MiB");
        let k = ReportEntry {
            file: "prog.c".into(),
            line: 9,
            subject: Subject::Allocation { function: "malloc".into() },
            decision: Decision::Kept("#pragma dlm off".into()),
        };
        assert_eq!(k.to_string(), "prog.c:9: call to 'malloc' kept: #pragma dlm off");
        assert_eq!(human_size(100), "100 B");
        assert_eq!(threshold_size(1536), "1.5 KiB");
    }
}
