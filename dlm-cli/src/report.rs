//! What a check found, and how the findings are printed: one line each, with what to do under
//! every warning and failure, then a summary that decides the exit status.

use std::fmt::Write as _;

/// How a finding bears on running a DLM program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Not checked, with the reason: neither a pass nor a problem.
    NotChecked,
    /// DLM works, but slower or with a limit worth knowing.
    Warning,
    /// Something that would stop a run.
    Failure,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::NotChecked => "skipped",
            Status::Warning => "warning",
            Status::Failure => "FAILED",
        }
    }
}

/// One thing a check found.
#[derive(Debug, Clone)]
pub struct Finding {
    pub status: Status,
    /// What was checked (`userfaultfd`, `memfile`, `memory on node03`).
    pub topic: String,
    /// What was found.
    pub detail: String,
    /// What to do about it (warnings and failures).
    pub advice: Option<String>,
}

impl Finding {
    pub fn ok(topic: impl Into<String>, detail: impl Into<String>) -> Self {
        Finding { status: Status::Ok, topic: topic.into(), detail: detail.into(), advice: None }
    }

    pub fn not_checked(topic: impl Into<String>, why: impl Into<String>) -> Self {
        Finding { status: Status::NotChecked, topic: topic.into(), detail: why.into(), advice: None }
    }

    pub fn warning(topic: impl Into<String>, detail: impl Into<String>, advice: impl Into<String>) -> Self {
        Finding { status: Status::Warning, topic: topic.into(), detail: detail.into(), advice: Some(advice.into()) }
    }

    pub fn failure(topic: impl Into<String>, detail: impl Into<String>, advice: impl Into<String>) -> Self {
        Finding { status: Status::Failure, topic: topic.into(), detail: detail.into(), advice: Some(advice.into()) }
    }
}

/// Width of the status column.
const LABEL_WIDTH: usize = 9;

/// The report: one line per finding, its advice indented below it, and a summary line.
pub fn render(findings: &[Finding]) -> String {
    let mut out = String::new();
    for finding in findings {
        let _ = writeln!(out, "{:<LABEL_WIDTH$}{}: {}", finding.status.label(), finding.topic, finding.detail);
        if let Some(advice) = &finding.advice {
            let _ = writeln!(out, "{:<LABEL_WIDTH$}what to do: {advice}", "");
        }
    }
    let _ = writeln!(out, "\n{}", summary(findings));
    out
}

fn summary(findings: &[Finding]) -> String {
    let count = |status| findings.iter().filter(|f| f.status == status).count();
    let (failures, warnings, skipped) = (count(Status::Failure), count(Status::Warning), count(Status::NotChecked));
    let mut parts = Vec::new();
    if failures > 0 {
        parts.push(format!("{failures} problem(s) would stop a DLM run (FAILED above)"));
    } else {
        parts.push("nothing here would stop a DLM run".to_string());
    }
    if warnings > 0 {
        parts.push(format!("{warnings} warning(s)"));
    }
    if skipped > 0 {
        parts.push(format!("{skipped} check(s) skipped"));
    }
    parts.join("; ")
}

/// Whether any finding would stop a run: the command then exits non-zero.
pub fn any_failure(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.status == Status::Failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_advice_under_problems_and_counts_them() {
        let findings = [
            Finding::ok("userfaultfd", "kernel-and-user mode"),
            Finding::warning("transparent huge pages", "off", "enable them"),
            Finding::failure("memfile", "mf:2: bad line", "fix line 2"),
        ];
        let text = render(&findings);
        assert!(text.starts_with("ok       userfaultfd: kernel-and-user mode\n"), "{text}");
        assert!(text.contains("FAILED   memfile: mf:2: bad line\n         what to do: fix line 2\n"), "{text}");
        assert!(text.ends_with("1 problem(s) would stop a DLM run (FAILED above); 1 warning(s)\n"), "{text}");
        assert!(any_failure(&findings));
        assert!(!any_failure(&findings[..2]));
    }
}
