//! Transparent huge pages: with them a 2 MiB DLM page is one page table entry that moves whole;
//! without them DLM pages are at most 256 KiB and move (or are copied) as 4 KiB pieces.

use crate::report::Finding;

const THP_MODE: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

pub fn check() -> Finding {
    const TOPIC: &str = "transparent huge pages";
    let Ok(modes) = std::fs::read_to_string(THP_MODE) else {
        return Finding::warning(
            TOPIC,
            format!("this kernel has none ({THP_MODE} is missing): DLM pages are at most 256 KiB; slower, but works"),
            "a kernel with CONFIG_TRANSPARENT_HUGEPAGE gives DLM 2 MiB pages",
        );
    };
    match selected_mode(&modes) {
        Some(mode @ ("always" | "madvise")) => Finding::ok(
            TOPIC,
            format!("{mode}: DLM pages are 2 MiB huge pages where the local budget holds 64 of them"),
        ),
        mode => Finding::warning(
            TOPIC,
            format!("{}: DLM pages are at most 256 KiB; slower, but works", mode.unwrap_or(modes.trim())),
            format!("as root: echo madvise > {THP_MODE}"),
        ),
    }
}

/// The bracketed mode of `always [madvise] never`.
fn selected_mode(modes: &str) -> Option<&str> {
    let start = modes.find('[')? + 1;
    let end = start + modes[start..].find(']')?;
    Some(&modes[start..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_bracketed_mode() {
        assert_eq!(selected_mode("always [madvise] never\n"), Some("madvise"));
        assert_eq!(selected_mode("always madvise [never]\n"), Some("never"));
        assert_eq!(selected_mode("garbage"), None);
    }
}
