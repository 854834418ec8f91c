//! Stopping DLM: the pager drains its transfers and stops the servers, MPI is finalized, the
//! statistics are reported if asked (the live ones get their last line), and the DLM range is
//! retired (its addresses kept).

use super::{holds, state, State, RUNNING};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Shuts DLM down when the program exits without doing it (a return from `main`, `exit`), as
/// an `atexit` handler: for programs that start DLM themselves (`dlm_startup`, `dlm::start`).
/// Programs built by dlmcc shut down later, after their destructors (`__dlm_exit`).
pub fn shut_down_at_exit() {
    extern "C" fn shutdown_at_exit() {
        shutdown();
    }
    // SAFETY: registering a plain extern "C" function with no preconditions.
    unsafe { libc::atexit(shutdown_at_exit) };
}

/// Stops the pager and the memory servers and finalizes MPI; reports statistics if asked.
/// Does nothing if DLM is not running. Afterwards DLM memory is unmapped.
pub fn shutdown() {
    // A forked child has no pager thread and no servers of its own: they are the parent's.
    if crate::sys::is_forked_child() {
        return;
    }
    let mut rt = {
        let mut guard = state();
        RUNNING.store(false, Ordering::Release);
        holds::disable();
        match std::mem::replace(&mut *guard, State::ShutDown) {
            State::Running(rt) => rt,
            other => {
                *guard = other;
                return;
            }
        }
    };
    let _ = rt.mailbox.call(crate::pager::Command::Shutdown);
    let job = rt.pager.take().map(|p| p.join());
    if let Some(membership) = &mut rt.membership {
        membership.leave();
    }
    if let Some(live) = rt.live.take() {
        live.finish();
    }
    let stats = rt.stats();
    if rt.config.stats {
        eprint!("{}", stats.summary());
    }
    if let Some(path) = &rt.config.stats_json {
        if let Err(e) = std::fs::write(path, stats.to_json()) {
            eprintln!("dlm: cannot write statistics to {}: {e}", path.display());
        }
    }
    drop(job);
    drop(rt.universe.take());
    let region = rt.region.clone();
    drop(rt);
    // The pager thread has ended, so this is the range's last owner: keep its addresses.
    if let Ok(region) = Arc::try_unwrap(region) {
        region.retire();
    }
}
