//! userfaultfd: which faults the pager would get, write-protect (dirty-page tracking), and
//! whether pages move into place whole (`UFFDIO_MOVE` of a transparent huge page), found out
//! with the runtime's own probe on a small range.

use crate::report::Finding;
use dlm::probe::{self, FaultMode, PageMoves, ProbeError, Userfaultfd};

pub fn check() -> Vec<Finding> {
    match probe::userfaultfd() {
        Ok(found) => vec![mode(&found), write_protect(), moves(&found.moves)],
        Err(error) => vec![unusable(&error)],
    }
}

fn mode(found: &Userfaultfd) -> Finding {
    const TOPIC: &str = "userfaultfd";
    match found.mode {
        FaultMode::KernelAndUser => Finding::ok(
            TOPIC,
            format!(
                "kernel-and-user mode ({}): the pager serves every fault, also the kernel's (read(2), MPI \
                 receives into DLM memory)",
                who_may_serve_kernel_faults()
            ),
        ),
        FaultMode::UserOnly => Finding::warning(
            TOPIC,
            "user-mode only (not root, no read-write access to /dev/userfaultfd, vm.unprivileged_userfaultfd \
             not 1): DLM works; the I/O calls of programs built by dlmcc (and dlm::read_exact, dlm::write_all) \
             hold DLM buffers resident while the kernel reads or writes them",
            "nothing is needed; for kernel-and-user mode an administrator can give you read-write access to \
             /dev/userfaultfd (a group and a udev rule) or set the sysctl vm.unprivileged_userfaultfd=1",
        ),
    }
}

/// Why this process may serve the kernel's faults too.
fn who_may_serve_kernel_faults() -> &'static str {
    if super::running_as_root() {
        "root"
    } else {
        "read-write access to /dev/userfaultfd, or vm.unprivileged_userfaultfd=1"
    }
}

/// The probe registered its range in missing + write-protect mode, as the pager does.
fn write_protect() -> Finding {
    Finding::ok(
        "write-protect",
        "a range registered in missing + write-protect mode: the pager tracks dirty pages and drops clean ones \
         without writing them back",
    )
}

fn moves(moves: &PageMoves) -> Finding {
    const TOPIC: &str = "page moves";
    const THP_ADVICE: &str = "as root: echo madvise > /sys/kernel/mm/transparent_hugepage/enabled";
    match moves {
        PageMoves::HugePageWhole => {
            Finding::ok(TOPIC, "UFFDIO_MOVE moved a 2 MiB transparent huge page whole, as the pager moves DLM pages")
        }
        PageMoves::Unavailable => Finding::warning(
            TOPIC,
            "this kernel has no UFFDIO_MOVE (Linux 6.8): pages are copied into place; slower, but works",
            "a Linux 6.8 or later kernel moves pages instead of copying them",
        ),
        PageMoves::Refused(error) => Finding::warning(
            TOPIC,
            format!("the kernel refused to move a page ({error}): pages are copied into place; slower, but works"),
            "nothing is needed; DLM_MOVE_PAGES=0 skips the attempt",
        ),
        PageMoves::SmallPagesOnly => Finding::warning(
            TOPIC,
            "UFFDIO_MOVE works, but the kernel gave no transparent huge page: DLM pages move as 4 KiB pieces; \
             slower, but works",
            THP_ADVICE,
        ),
        PageMoves::HugePageSplit => Finding::warning(
            TOPIC,
            "UFFDIO_MOVE split a transparent huge page on the way: DLM pages move as 4 KiB pieces; slower, but works",
            "a Linux 6.8 or later kernel moves huge pages whole",
        ),
    }
}

fn unusable(error: &ProbeError) -> Finding {
    let advice = match error {
        ProbeError::Userfaultfd { source } => match source.raw_os_error() {
            Some(libc::ENOSYS) => {
                "this kernel was built without userfaultfd (CONFIG_USERFAULTFD): DLM needs a kernel that has it"
            }
            Some(libc::EPERM | libc::EACCES) => {
                "this user may use userfaultfd in no mode (user-mode only needs Linux 5.11): ask an administrator \
                 for read-write access to /dev/userfaultfd or the sysctl vm.unprivileged_userfaultfd=1"
            }
            Some(libc::EINVAL) => {
                "the kernel lacks write-protect for anonymous memory (Linux 5.7): DLM needs a newer kernel"
            }
            _ => "DLM cannot page on this machine; check the kernel's userfaultfd support",
        },
        ProbeError::Reserve { .. } | ProbeError::Smaps { .. } => {
            "the address space or /proc is restricted here (ulimit -v, a sandbox): run where they are not"
        }
    };
    Finding::failure("userfaultfd", error.to_string(), advice)
}
