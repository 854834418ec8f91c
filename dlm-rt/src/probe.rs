//! What this machine offers DLM's pager, found out by doing what the pager does on a small
//! range (for `dlm doctor`): open a userfaultfd, register a range in missing + write-protect
//! mode, and move a 2 MiB page into it the way the pager installs a fetched huge page.

use crate::sys::{FaultFd, Mapping, MoveError, HUGE_PAGE};
use std::io;

pub use crate::sys::{available_memory, hostname, huge_pages_available, mem_available, swap_is_on, FaultMode};

/// The byte the probe fills its page with, checked after the move.
const PATTERN: u8 = 0x5a;

/// What the pager can do here.
#[derive(Debug)]
pub struct Userfaultfd {
    /// Which faults the pager would be handed.
    pub mode: FaultMode,
    /// Whether and how pages move into place.
    pub moves: PageMoves,
}

/// How the pager's pages would get into place (`UFFDIO_MOVE`, or copies).
#[derive(Debug)]
pub enum PageMoves {
    /// The kernel has no `UFFDIO_MOVE` (before Linux 6.8): every page is copied into place.
    Unavailable,
    /// The kernel has `UFFDIO_MOVE` but refused the probe's move: pages are copied.
    Refused(io::Error),
    /// Pages move, but the probe's 2 MiB page was not a transparent huge page (none were
    /// given), so it moved as 512 small pages.
    SmallPagesOnly,
    /// A transparent huge page arrived split into small pages.
    HugePageSplit,
    /// A transparent huge page moved whole, as the pager moves 2 MiB DLM pages.
    HugePageWhole,
}

/// Why the probe could not serve faults at all.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot reserve address space for the probe: {source}")]
    Reserve { source: io::Error },
    #[error("userfaultfd in missing + write-protect mode failed: {source}")]
    Userfaultfd { source: io::Error },
    #[error("cannot read /proc/self/smaps: {source}")]
    Smaps { source: io::Error },
}

/// Opens a userfaultfd as the pager does, registers a range in missing + write-protect mode,
/// and moves a 2 MiB page into it where the kernel can.
pub fn userfaultfd() -> Result<Userfaultfd, ProbeError> {
    let target = Mapping::reserve_huge(HUGE_PAGE).map_err(|source| ProbeError::Reserve { source })?;
    let uffd = FaultFd::register(&target).map_err(|source| ProbeError::Userfaultfd { source })?;
    let moves = if uffd.can_move() { move_huge_page(&uffd, &target)? } else { PageMoves::Unavailable };
    Ok(Userfaultfd { mode: uffd.mode(), moves })
}

/// Fills a staging page (a transparent huge page where the kernel gives one) and moves it to
/// the missing page at `target`, as the pager installs a fetched page.
fn move_huge_page(uffd: &FaultFd, target: &Mapping) -> Result<PageMoves, ProbeError> {
    let source = Mapping::reserve_huge(HUGE_PAGE).map_err(|source| ProbeError::Reserve { source })?;
    if let Err(refusal) = uffd.register_staging(&source) {
        return Ok(PageMoves::Refused(refusal));
    }
    // SAFETY: the source mapping is ours and HUGE_PAGE long; it faults normally (write-protect
    // registration only, nothing protected).
    unsafe { std::ptr::write_bytes(source.base(), PATTERN, HUGE_PAGE) };
    let source_was_huge = huge_bytes_at(source.base())? >= HUGE_PAGE as u64;
    // SAFETY: both ranges are registered with `uffd`, 2 MiB-aligned and HUGE_PAGE long; the
    // target is missing and nobody needs the source's contents at its old address.
    let moved = unsafe { uffd.move_pages(source.base(), target.base(), HUGE_PAGE, true) };
    if let Err(MoveError::NotMoved(refusal) | MoveError::PartWay(refusal)) = moved {
        return Ok(PageMoves::Refused(refusal));
    }
    // SAFETY: the move succeeded, so the target's pages are present and hold the pattern.
    let arrived = unsafe { std::slice::from_raw_parts(target.base(), HUGE_PAGE) };
    if arrived.iter().any(|&b| b != PATTERN) {
        let wrong = io::Error::other("the moved page's contents differ from the source's");
        return Ok(PageMoves::Refused(wrong));
    }
    let target_is_huge = huge_bytes_at(target.base())? >= HUGE_PAGE as u64;
    Ok(match (source_was_huge, target_is_huge) {
        (false, _) => PageMoves::SmallPagesOnly,
        (true, false) => PageMoves::HugePageSplit,
        (true, true) => PageMoves::HugePageWhole,
    })
}

/// Bytes of transparent huge pages (`AnonHugePages`) in the mapping of this process that holds
/// `addr`.
fn huge_bytes_at(addr: *const u8) -> Result<u64, ProbeError> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").map_err(|source| ProbeError::Smaps { source })?;
    Ok(anon_huge_bytes(&smaps, addr as usize).unwrap_or(0))
}

/// `AnonHugePages` of the mapping containing `addr` in the text of `/proc/PID/smaps`.
fn anon_huge_bytes(smaps: &str, addr: usize) -> Option<u64> {
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((start, end)) = mapping_range(line) {
            inside = (start..end).contains(&addr);
        } else if inside {
            if let Some(kib) = line.strip_prefix("AnonHugePages:") {
                return kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok().map(|k| k * 1024);
            }
        }
    }
    None
}

/// The address range of a mapping's header line in smaps (`7f..-7f.. rw-p …`).
fn mapping_range(line: &str) -> Option<(usize, usize)> {
    let range = line.split_whitespace().next()?;
    let (start, end) = range.split_once('-')?;
    Some((usize::from_str_radix(start, 16).ok()?, usize::from_str_radix(end, 16).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_anon_huge_pages_of_the_mapping_holding_an_address() {
        let smaps = "\
7f0000000000-7f0000200000 rw-p 00000000 00:00 0
Size:               2048 kB
AnonHugePages:         0 kB
7f0000400000-7f0000600000 rw-p 00000000 00:00 0
Size:               2048 kB
AnonHugePages:      2048 kB
";
        assert_eq!(anon_huge_bytes(smaps, 0x7f00_0000_1000), Some(0));
        assert_eq!(anon_huge_bytes(smaps, 0x7f00_0040_0000), Some(2 << 20));
        assert_eq!(anon_huge_bytes(smaps, 0x7f00_0030_0000), None);
    }
}
