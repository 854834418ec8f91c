//! The C ABI declared in `include/dlm.h`.

use crate::pager::Advice;
use crate::runtime::{self, ReleaseError};
use crate::stats::Stats;
use std::ffi::{c_char, c_int, c_void, CStr};

/// Starts DLM. In memory-server processes it does not return. On bad options it prints the
/// reason and exits with status 2. Removes the DLM options after `--` from `argv`.
///
/// # Safety
/// `argc` and `argv` are either both NULL or `main`'s arguments (or pointers to copies of them).
#[no_mangle]
pub unsafe extern "C" fn dlm_startup(argc: *mut c_int, argv: *mut *mut *mut c_char) -> c_int {
    let args: Vec<String> = if argc.is_null() || argv.is_null() {
        Vec::new()
    } else {
        // SAFETY: the caller passes main's argc/argv: argc strings, each NUL-terminated.
        unsafe { (0..*argc as usize).map(|i| CStr::from_ptr(*(*argv).add(i)).to_string_lossy().into_owned()).collect() }
    };
    let args = if args.is_empty() { std::env::args().collect() } else { args };
    let started = match super::rewritten::program_argc_after_autostart(&args) {
        Some(after_autostart) => after_autostart,
        None => runtime::start(&args).map(|started| {
            runtime::shut_down_at_exit();
            started.program_argc
        }),
    };
    match started {
        Ok(program_argc) => {
            if !argc.is_null() && !argv.is_null() {
                // SAFETY: program_argc <= argc, and argv[argc] exists (it is NULL) in main's array.
                unsafe {
                    if program_argc < *argc as usize {
                        *(*argv).add(program_argc) = std::ptr::null_mut();
                        *argc = program_argc as c_int;
                    }
                }
            }
            0
        }
        Err(e) => e.exit(),
    }
}

/// Allocates `size` bytes of DLM memory, page-aligned and zeroed; NULL (with a message on stderr)
/// when it does not fit in the local budget plus the servers' capacity.
#[no_mangle]
pub extern "C" fn dlm_alloc(size: usize) -> *mut c_void {
    match runtime::allocate(size) {
        Ok(ptr) => ptr.as_ptr().cast(),
        Err(e) => {
            eprintln!("dlm_alloc: {e}");
            std::ptr::null_mut()
        }
    }
}

/// Frees memory from `dlm_alloc`. NULL is ignored; any other pointer aborts with a message.
///
/// # Safety
/// No thread may use the block after this call.
#[no_mangle]
pub unsafe extern "C" fn dlm_free(ptr: *mut c_void) {
    if ptr.is_null() {
        return;
    }
    match runtime::release(ptr.cast()) {
        Ok(()) => {}
        Err(ReleaseError::NotDlm) => {
            eprintln!("dlm_free: {ptr:p} was not returned by dlm_alloc");
            std::process::abort();
        }
        Err(ReleaseError::NotStarted) => {
            eprintln!("dlm_free: DLM is not running (call dlm_startup first)");
            std::process::abort();
        }
    }
}

/// Tells the pager how `[addr, addr+len)` of DLM memory will be used (`DLM_ADVICE_*` in
/// `dlm.h`); returns 0, or -1 with a message on stderr (not DLM memory, unknown advice, DLM not
/// running).
#[no_mangle]
pub extern "C" fn dlm_advise(addr: *mut c_void, len: usize, advice: c_int) -> c_int {
    let advice = match advice {
        0 => Advice::Normal,
        1 => Advice::Sequential,
        2 => Advice::Random,
        3 => Advice::WillNeed,
        4 => Advice::DontNeed,
        other => {
            eprintln!("dlm_advise: unknown advice {other}; use one of the DLM_ADVICE_* values of dlm.h");
            return -1;
        }
    };
    match runtime::advise(addr as usize, len, advice) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("dlm_advise: {e}");
            -1
        }
    }
}

/// Stops DLM: memory servers exit, DLM memory is unmapped. Also runs at exit.
#[no_mangle]
pub extern "C" fn dlm_shutdown() {
    runtime::shutdown();
}

/// Fills `out` with the paging statistics; returns 0, or -1 if DLM is not running.
///
/// # Safety
/// `out` must point to a writable `struct dlm_stats`.
#[no_mangle]
pub unsafe extern "C" fn dlm_get_stats(out: *mut Stats) -> c_int {
    let Some(s) = runtime::stats() else { return -1 };
    if out.is_null() {
        return -1;
    }
    // SAFETY: the caller guarantees `out` is writable; Stats is laid out as `struct dlm_stats`.
    unsafe { out.write(s) };
    0
}
