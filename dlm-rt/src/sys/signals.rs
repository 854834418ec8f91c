//! Signal handlers that say in one line why the program ends: SIGINT/SIGTERM, and SIGABRT when
//! MPI's transport gives up on a peer that vanished.

use super::exit::{write_stderr, write_stderr_bytes};
use std::os::fd::{AsRawFd, OwnedFd};

/// Says why the program stops when SIGINT or SIGTERM ends it (the memory servers are then
/// stopped by MPI's runtime). Signals the program already handles or ignores are left alone.
pub fn explain_termination_signals() {
    extern "C" fn on_signal(signal: libc::c_int) {
        let message: &[u8] = if signal == libc::SIGINT {
            b"dlm: interrupted (SIGINT); the program and its memory servers stop\n"
        } else {
            b"dlm: terminated (SIGTERM); the program and its memory servers stop\n"
        };
        write_stderr_bytes(message);
        // SAFETY: signal and raise are async-signal-safe; re-raising with the default action
        // ends the process with the signal's usual status.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    }
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: reads the current action, and replaces it only if it is the default.
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            libc::sigaction(signal, std::ptr::null(), &mut current);
            if current.sa_sigaction == libc::SIG_DFL {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    }
}

/// Messages for [`explain_abort`]: a pidfd and what to print if its process has exited.
static ABORT_HINTS: std::sync::OnceLock<Vec<(i32, String)>> = std::sync::OnceLock::new();

/// When the process aborts (MPI's transport gives up on a peer that vanished mid-transfer),
/// first print the message of every watched process that has exited, so the user learns that
/// a memory server was lost rather than reading only the transport's backtrace.
pub fn explain_abort(hints: Vec<(i32, String)>) {
    if ABORT_HINTS.set(hints).is_err() {
        return;
    }
    extern "C" fn on_abort(_: libc::c_int) {
        for (fd, message) in ABORT_HINTS.get().into_iter().flatten() {
            if readable_soon(*fd) {
                write_stderr(message);
            }
        }
        abort_as_before();
    }
    handle_abort(on_abort);
}

static ENDED_PEER: std::sync::OnceLock<(OwnedFd, String)> = std::sync::OnceLock::new();

/// Makes an abort of this process (the transport giving up) end it with `message` and exit
/// status 1 instead, if the process that `peer` (a pidfd) watches has ended by then.
pub fn exit_on_abort_if_ended(peer: OwnedFd, message: String) {
    if ENDED_PEER.set((peer, message)).is_err() {
        return;
    }
    extern "C" fn on_abort(_: libc::c_int) {
        if let Some((_, message)) = ENDED_PEER.get().filter(|(peer, _)| readable_soon(peer.as_raw_fd())) {
            write_stderr(message);
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(1) };
        }
        abort_as_before();
    }
    handle_abort(on_abort);
}

/// Installs `handler` for SIGABRT; it must only call async-signal-safe functions.
fn handle_abort(handler: extern "C" fn(libc::c_int)) {
    // SAFETY: the handlers of this module only call async-signal-safe functions.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as usize;
        libc::sigaction(libc::SIGABRT, &action, std::ptr::null_mut());
    }
}

/// Whether pidfd `fd` turns readable (its process ended) within half a second: the transport
/// can see a peer vanish a moment before its pidfd does. Async-signal-safe.
fn readable_soon(fd: i32) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: poll is async-signal-safe and reads one live pollfd.
    unsafe { libc::poll(&mut p, 1, 500) == 1 }
}

/// From a SIGABRT handler: ends the process as the abort would have.
fn abort_as_before() {
    // SAFETY: signal and raise are async-signal-safe; with the default action restored, the
    // re-raised SIGABRT ends the process.
    unsafe {
        libc::signal(libc::SIGABRT, libc::SIG_DFL);
        libc::raise(libc::SIGABRT);
    }
}

/// Has the process that `command` starts killed when this one ends (`PR_SET_PDEATHSIG`): a
/// pool server's workers must not outlive it, whatever ends it.
pub fn end_with_parent(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook runs in the child between fork and exec and calls only prctl, which is
    // async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
