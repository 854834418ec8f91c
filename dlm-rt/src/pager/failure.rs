//! The pager thread's one failure policy: it never unwinds. If it unwound, its userfaultfd
//! would be closed, the kernel would unregister the DLM range, and threads waiting in a fault
//! would go on reading fresh zero pages instead of their data. A panic there ends the process
//! with the panic's message, written straight to fd 2 (no lock a faulting thread may hold).

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
