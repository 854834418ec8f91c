//! What the rewrite decided for each array and each heap call: data plus a one-line `Display`
//! for `dlmcc`'s report.

use dlm_units::Bytes;
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
        /// Whether files that define it share one array (which counts once in a [`Summary`]).
        ///
        /// [`Summary`]: crate::Summary
        linkage: Linkage,
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
    Kept(Reason),
}

/// Whether the definitions of an array in several files are one array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linkage {
    /// A non-static file-scope array: one array for the whole program, named by its name.
    External,
    /// A `static` array (file scope or local): each file that defines it has its own.
    Internal,
}

/// Why an array or a heap call stays in ordinary memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A static-storage array smaller than the threshold (bytes), not marked for DLM. Counted
    /// in the summary, not listed.
    BelowThreshold(u64),
    /// `#pragma dlm off` before it.
    PragmaOff,
    /// `__thread` / `_Thread_local`: one copy per thread.
    ThreadLocal,
    /// Defined in a system header, which is not the program's. Counted, not listed.
    SystemHeader,
    /// A marked array that is not a static-storage one.
    AutomaticStorage,
    /// A marked variable that is not a constant-size array.
    NotConstantSize,
    /// Its declarator comes out of a macro expansion, which dlmcc cannot edit.
    DeclaredByMacro,
    /// A marked array whose initializer comes out of a macro expansion.
    InitializerByMacro,
    /// A call whose name is spelled in a macro of this header.
    CallInHeader { header: String, allocates: bool },
    /// A call whose name is spelled nowhere dlmcc finds (token pasting, ...).
    CallNotSpelled { allocates: bool },
}

impl Reason {
    /// Whether the report lists the subject on a line of its own (else only the summary counts it).
    pub fn is_listed(&self) -> bool {
        !matches!(self, Reason::BelowThreshold(_) | Reason::SystemHeader)
    }
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

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Threshold(t) => write!(f, "size >= threshold {}", Bytes(*t)),
            Rule::Pragma => f.write_str("#pragma dlm"),
            Rule::Attribute => f.write_str("__attribute__((dlm))"),
            Rule::AllocationSite => {
                f.write_str("allocation site (from the threshold pages of their own, below it the small-block heap)")
            }
        }
    }
}

/// What a call that stays as written does: the runtime's `free`/`realloc` serve every block of
/// the process, so only where new blocks come from changes.
fn kept_call_effect(allocates: bool) -> &'static str {
    if allocates {
        "; new blocks it makes come from the C library"
    } else {
        "; harmless: every free in the process returns DLM blocks to DLM"
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::BelowThreshold(t) => write!(f, "below the threshold {}", Bytes(*t)),
            Reason::PragmaOff => f.write_str("#pragma dlm off"),
            Reason::ThreadLocal => f.write_str("thread-local"),
            Reason::SystemHeader => f.write_str("in a system header"),
            Reason::AutomaticStorage => f.write_str("automatic storage (only static-storage arrays move)"),
            Reason::NotConstantSize => f.write_str("not a constant-size array"),
            Reason::DeclaredByMacro => f.write_str("declared by a macro"),
            Reason::InitializerByMacro => f.write_str("initializer spelled by a macro"),
            Reason::CallInHeader { header, allocates } => {
                write!(f, "spelled in header {header}{}", kept_call_effect(*allocates))
            }
            Reason::CallNotSpelled { allocates } => {
                write!(f, "name not spelled in the file (token pasting?){}", kept_call_effect(*allocates))
            }
        }
    }
}

impl fmt::Display for ReportEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        match &self.subject {
            Subject::Array { name, type_name, bytes, .. } => {
                write!(f, "array '{name}' ({type_name}, {})", Bytes(*bytes))?
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
            subject: Subject::Array {
                name: "a".into(),
                type_name: "double[512][512]".into(),
                bytes: 2 << 20,
                linkage: Linkage::External,
            },
            decision: Decision::Moved(Rule::Threshold(1 << 20)),
        };
        assert_eq!(e.to_string(), "prog.c:7: array 'a' (double[512][512], 2 MiB) -> DLM: size >= threshold 1 MiB");
        let k = ReportEntry {
            file: "prog.c".into(),
            line: 9,
            subject: Subject::Allocation { function: "malloc".into() },
            decision: Decision::Kept(Reason::PragmaOff),
        };
        assert_eq!(k.to_string(), "prog.c:9: call to 'malloc' kept: #pragma dlm off");
    }
}
