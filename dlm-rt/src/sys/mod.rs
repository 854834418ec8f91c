//! Every raw system call and ioctl of the runtime, behind owning types; the layer everything
//! else stands on (it imports nothing of the crate). Failures are `io::Result`s: what to do
//! about them is the caller's decision.
//!
//! - `mapping`: [`Mapping`], an anonymous `MAP_NORESERVE` mapping; static arrays adopted in place.
//! - `uffd`: [`FaultFd`], a userfaultfd in missing + write-protect mode (copy, move, protect).
//! - `fds`: [`EventFd`] to wake the pager, pidfds of watched processes, `poll` over them.
//! - `host`: this host's name, page size, memory (and `/proc` kB fields), swap, transparent
//!   huge pages, and a user's primary group.
//! - `range`: the DLM range as the whole process knows it, and forked children's view of it.
//! - `signals`: handlers that say why the program ends (SIGINT, SIGTERM, SIGABRT).
//! - `exit`: the exit policy: messages on fd 2 without locks, `fatal`, `exit_now`.

mod exit;
mod fds;
mod host;
mod mapping;
mod range;
mod signals;
mod uffd;

#[cfg(feature = "bench")]
pub(crate) use exit::write_stderr;
pub use exit::{end_server, exit_now, fatal};
pub use fds::{poll_readable, watch_process, EventFd};
pub use host::{
    available_memory, hostname, huge_pages_available, kib_field, mem_available, primary_group, swap_is_on,
    system_page_size, tighten_timer_slack, HUGE_PAGE,
};
pub use mapping::{adopt_range, discard, Mapping};
pub use range::{explain_dlm_faults_after_fork, in_dlm_range, is_forked_child, overlaps_dlm_range};
pub use signals::{end_with_parent, exit_on_abort_if_ended, explain_abort, explain_termination_signals};
pub use uffd::{Fault, FaultEvents, FaultFd, FaultMode, MoveError};
