//! The DLM range as the whole process knows it (recorded at startup, kept after shutdown), and
//! what a forked child, which has no DLM memory, is told when it touches it.

use super::exit::write_stderr_bytes;
use super::mapping::Mapping;

/// The DLM range, for the explanation a forked child gets when it touches it.
static DLM_RANGE: [std::sync::atomic::AtomicUsize; 2] =
    [std::sync::atomic::AtomicUsize::new(0), std::sync::atomic::AtomicUsize::new(0)];
/// Set in the child of a `fork`: DLM memory and the servers belong to the parent.
static FORKED_CHILD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// The SIGSEGV action that was in place before the child installed its explanation.
static mut PREVIOUS_SEGV: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::uninit();

/// Whether `addr` lies in the DLM range (recorded at startup, kept after shutdown).
pub fn in_dlm_range(addr: usize) -> bool {
    use std::sync::atomic::Ordering::{Acquire, Relaxed};
    // The end is stored before the base (Release), so a base seen means its end is there too.
    let base = DLM_RANGE[0].load(Acquire);
    base != 0 && (base..DLM_RANGE[1].load(Relaxed)).contains(&addr)
}

/// Whether `[start, end)` has bytes in the DLM range.
pub fn overlaps_dlm_range(start: usize, end: usize) -> bool {
    use std::sync::atomic::Ordering::{Acquire, Relaxed};
    let base = DLM_RANGE[0].load(Acquire);
    base != 0 && base < end && start < DLM_RANGE[1].load(Relaxed)
}

/// Whether this process is the child of a `fork` of a DLM program.
pub fn is_forked_child() -> bool {
    FORKED_CHILD.load(std::sync::atomic::Ordering::Relaxed)
}

/// In the child of a `fork`, a touch of DLM memory (left out of the child) prints why it fails
/// before the SIGSEGV takes its course; other faults go to the handler that was there before.
pub fn explain_dlm_faults_after_fork(mapping: &Mapping) {
    use std::sync::atomic::Ordering::{Relaxed, Release};
    DLM_RANGE[1].store(mapping.base() as usize + mapping.len(), Relaxed);
    DLM_RANGE[0].store(mapping.base() as usize, Release);
    extern "C" fn on_segv(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo for SIGSEGV.
        let addr = unsafe { (*info).si_addr() } as usize;
        if in_dlm_range(addr) {
            let message: &[u8] = b"dlm: this process was forked from a DLM program and touched DLM memory, which \
                stays with the parent; a child may only exec (system, popen) or use ordinary memory\n";
            write_stderr_bytes(message);
        }
        // Return with the previous action restored: the access faults again and gets it.
        // SAFETY: PREVIOUS_SEGV was written before this handler was installed.
        unsafe { libc::sigaction(libc::SIGSEGV, (&raw const PREVIOUS_SEGV).cast(), std::ptr::null_mut()) };
    }
    extern "C" fn in_child() {
        FORKED_CHILD.store(true, Relaxed);
        // SAFETY: sigaction is async-signal-safe; the child has only this thread.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction =
                on_segv as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigaction(libc::SIGSEGV, &action, (&raw mut PREVIOUS_SEGV).cast());
        }
    }
    // SAFETY: registers a child handler that only stores a flag and installs a signal handler.
    unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
}
