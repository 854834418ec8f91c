//! The totals that end `dlmcc --dlm-report`: how many bytes of static arrays, of arrays defined
//! in headers and how many allocation sites moved to DLM memory, and what stayed in ordinary
//! memory, grouped by reason, each with what the user can do about it.

use std::fmt;

use crate::report::{Decision, Linkage, Reason, ReportEntry, Subject};
use dlm_units::Bytes;

/// Every decision of one or more rewrites, listed in the report or not, for the summary.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The size from which arrays and heap blocks move.
    threshold: u64,
    decisions: Vec<Counted>,
}

/// One decision and where it was made.
#[derive(Clone, Debug)]
struct Counted {
    entry: ReportEntry,
    /// An array defined in a header rather than in the `.c` file that was rewritten.
    in_header: bool,
}

impl Summary {
    /// No decisions yet, for rewrites with `threshold`.
    pub fn new(threshold: u64) -> Summary {
        Summary { threshold, decisions: Vec::new() }
    }

    /// The decisions of the rewrite of the file the report calls `main_file`.
    pub(crate) fn of_file(main_file: &str, entries: &[ReportEntry], threshold: u64) -> Summary {
        let decisions = entries
            .iter()
            .map(|entry| Counted {
                in_header: entry.file != main_file && matches!(entry.subject, Subject::Array { .. }),
                entry: entry.clone(),
            })
            .collect();
        Summary { threshold, decisions }
    }

    /// Adds the decisions of another file's rewrite.
    pub fn merge(&mut self, other: Summary) {
        self.decisions.extend(other.decisions);
    }

    /// The decisions with each array counted once: an array with external linkage defined in
    /// several files (a tentative definition, or a header included by several files) is one.
    fn distinct(&self) -> Vec<&Counted> {
        let mut shared: Vec<&str> = Vec::new();
        self.decisions
            .iter()
            .filter(|c| match &c.entry.subject {
                Subject::Array { name, linkage: Linkage::External, .. } => {
                    let first = !shared.contains(&name.as_str());
                    shared.push(name);
                    first
                }
                _ => true,
            })
            .collect()
    }
}

/// Arrays (and their bytes) and allocation sites counted together.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    arrays: usize,
    bytes: u64,
    sites: usize,
}

impl Tally {
    fn add(&mut self, subject: &Subject) {
        match subject {
            Subject::Array { bytes, .. } => {
                self.arrays += 1;
                self.bytes += bytes;
            }
            Subject::Allocation { .. } => self.sites += 1,
        }
    }
}

impl Tally {
    /// Itself in words, or "none".
    fn or_none(&self) -> String {
        if self.arrays + self.sites == 0 {
            "none".into()
        } else {
            self.to_string()
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        if self.arrays > 0 {
            write!(f, "{} array{}, {}", self.arrays, plural(self.arrays), Bytes(self.bytes))?;
        }
        if self.sites > 0 {
            let separator = if self.arrays > 0 { "; " } else { "" };
            write!(f, "{separator}{} allocation site{}", self.sites, plural(self.sites))?;
        }
        Ok(())
    }
}

/// A reason in the summary: its rank (the order of the lines), its words and what to do.
fn group(reason: &Reason) -> (u8, String, &'static str) {
    match reason {
        Reason::BelowThreshold(_) => {
            (0, reason.to_string(), "a lower --dlm-threshold=SIZE moves them; marking one with #pragma dlm moves it")
        }
        Reason::PragmaOff => (1, reason.to_string(), "remove the pragma to move them"),
        Reason::ThreadLocal => (2, reason.to_string(), "each thread has its own copy, which DLM does not page"),
        Reason::SystemHeader => (3, reason.to_string(), "not the program's own"),
        Reason::CallInHeader { .. } => (
            4,
            "spelled in a header's macro".into(),
            "new blocks come from the C library; call it in the .c file to move them",
        ),
        Reason::CallNotSpelled { .. } => {
            (5, "name not spelled in the file".into(), "new blocks come from the C library; spell the call out")
        }
        Reason::DeclaredByMacro => (6, reason.to_string(), "declare them outside the macro to move them"),
        Reason::InitializerByMacro => (7, reason.to_string(), "spell the initializer out to move them"),
        Reason::AutomaticStorage => (8, "marked, but automatic storage".into(), "make them static to move them"),
        Reason::NotConstantSize => {
            (9, "marked, but not constant-size arrays".into(), "allocate them with malloc to move them")
        }
    }
}

impl fmt::Display for Summary {
    /// Lines that start with `summary:`: three for what moved, one per reason something stayed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (mut in_files, mut in_headers, mut sites) = (Tally::default(), Tally::default(), Tally::default());
        let mut kept: Vec<((u8, String, &'static str), Tally)> = Vec::new();
        for c in self.distinct() {
            match &c.entry.decision {
                Decision::Moved(_) => match (&c.entry.subject, c.in_header) {
                    (Subject::Allocation { .. }, _) => sites.add(&c.entry.subject),
                    (_, true) => in_headers.add(&c.entry.subject),
                    (_, false) => in_files.add(&c.entry.subject),
                },
                // A `free` kept as written is harmless: only calls that make blocks count.
                Decision::Kept(Reason::CallInHeader { allocates: false, .. })
                | Decision::Kept(Reason::CallNotSpelled { allocates: false }) => {}
                Decision::Kept(Reason::PragmaOff) if matches!(&c.entry.subject, Subject::Allocation { function } if function == "free") =>
                    {}
                Decision::Kept(reason) => {
                    let key = group(reason);
                    match kept.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, tally)) => tally.add(&c.entry.subject),
                        None => {
                            let mut tally = Tally::default();
                            tally.add(&c.entry.subject);
                            kept.push((key, tally));
                        }
                    }
                }
            }
        }
        writeln!(f, "summary: moved to DLM memory, static arrays of the .c files: {}", in_files.or_none())?;
        writeln!(f, "summary: moved to DLM memory, arrays defined in headers: {}", in_headers.or_none())?;
        writeln!(
            f,
            "summary: moved to DLM memory, allocation sites: {} (their blocks of at least {}, decided at run time)",
            sites.sites,
            Bytes(self.threshold)
        )?;
        kept.sort_by_key(|((rank, ..), _)| *rank);
        for ((_, words, hint), tally) in kept {
            writeln!(f, "summary: kept in ordinary memory, {words}: {tally} ({hint})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Rule;

    fn array(file: &str, name: &str, bytes: u64, linkage: Linkage, decision: Decision) -> ReportEntry {
        let subject = Subject::Array { name: name.into(), type_name: "char[]".into(), bytes, linkage };
        ReportEntry { file: file.into(), line: 1, subject, decision }
    }

    fn call(function: &str, decision: Decision) -> ReportEntry {
        ReportEntry {
            file: "a.c".into(),
            line: 2,
            subject: Subject::Allocation { function: function.into() },
            decision,
        }
    }

    #[test]
    fn a_shared_array_counts_once_and_each_static_copy_counts() {
        let moved = || Decision::Moved(Rule::Threshold(1 << 20));
        let mut summary = Summary::new(1 << 20);
        for file in ["a.c", "b.c"] {
            let entries = [
                array("h.h", "shared", 2 << 20, Linkage::External, moved()),
                array("h.h", "copy", 1 << 20, Linkage::Internal, moved()),
                array(file, "small", 100, Linkage::Internal, Decision::Kept(Reason::BelowThreshold(1 << 20))),
            ];
            summary.merge(Summary::of_file(file, &entries, 1 << 20));
        }
        let entries = [
            call("malloc", Decision::Moved(Rule::AllocationSite)),
            call("free", Decision::Kept(Reason::PragmaOff)),
            call("free", Decision::Kept(Reason::CallInHeader { header: "h.h".into(), allocates: false })),
            call("malloc", Decision::Kept(Reason::PragmaOff)),
        ];
        summary.merge(Summary::of_file("a.c", &entries, 1 << 20));
        let text = summary.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "summary: moved to DLM memory, static arrays of the .c files: none");
        assert_eq!(lines[1], "summary: moved to DLM memory, arrays defined in headers: 3 arrays, 4 MiB");
        assert!(lines[2].starts_with("summary: moved to DLM memory, allocation sites: 1 ("), "{text}");
        assert!(lines[3].starts_with("summary: kept in ordinary memory, below the threshold 1 MiB: 2 arrays, 200 B"));
        // A kept `free` changes nothing the user must act on; a kept `malloc` does.
        assert!(lines[4].starts_with("summary: kept in ordinary memory, #pragma dlm off: 1 allocation site ("));
        assert_eq!(lines.len(), 5, "{text}");
    }
}
