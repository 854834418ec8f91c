//! The pager thread's one failure policy: it never unwinds. If it unwound, its userfaultfd
//! would be closed, the kernel would unregister the DLM range, and threads waiting in a fault
//! would go on reading fresh zero pages instead of their data. A panic there ends the process
//! with the panic's message, written straight to fd 2 (no lock a faulting thread may hold).
//! A failed system call on the pager thread ends it the same way, in one place: [`or_fatal`].

use std::cell::Cell;
use std::panic::PanicHookInfo;
use std::sync::Once;

thread_local! {
    static ON_PAGER_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as the pager thread: from now on a panic on it aborts the process.
/// The returned guard aborts too if the thread unwinds anyway (a later panic hook that does not
/// call ours); keep it alive for the thread's whole life.
pub fn enter_pager_thread() -> AbortOnUnwind {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if ON_PAGER_THREAD.get() {
                abort_with(info);
            }
            previous(info);
        }));
    });
    ON_PAGER_THREAD.set(true);
    AbortOnUnwind
}

/// Whether the calling thread is the pager thread. Its own I/O never asks for a hold (it would
/// wait for itself): its transfers read and write DLM pages it manages itself.
pub fn on_pager_thread() -> bool {
    ON_PAGER_THREAD.get()
}

/// The value of a system call on the pager thread, or the end of the process saying what
/// failed: the pager cannot serve faults with a half-done step behind it.
pub fn or_fatal<T>(result: std::io::Result<T>, step: &str) -> T {
    result.unwrap_or_else(|e| crate::sys::fatal(&format!("{step} failed: {e}")))
}

/// Aborts the process if dropped while its thread unwinds.
pub struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        if std::thread::panicking() {
            crate::sys::fatal("the pager thread panicked; DLM pages cannot be served any more");
        }
    }
}

fn abort_with(info: &PanicHookInfo<'_>) -> ! {
    let payload = info.payload();
    let what = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    let (file, line) = info.location().map_or(("?", 0), |l| (l.file(), l.line()));
    crate::sys::fatal(&format!(
        "the pager thread panicked at {file}:{line}: {what}; DLM pages cannot be served any more"
    ))
}
