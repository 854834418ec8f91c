//! The start and end of a program rewritten by `dlmcc` (declared in the prelude `c-frontend`
//! puts at the top of each rewritten file): its static arrays registered by constructors and
//! adopted as DLM memory in place, DLM started before `main` and stopped after the last
//! destructor. Its allocation functions are `alloc` and `routing`.

use crate::config;
use crate::error::Error;
use crate::runtime;
use dlm_units::Bytes;
use std::collections::BTreeSet;
use std::ffi::{c_char, c_int, c_ulong, CStr};
use std::sync::{Mutex, OnceLock};

/// One static array that dlmcc placed in DLM memory (`struct __dlm_static` in the prelude).
/// Aligned to 64 bytes so that the records' stride in the section does not depend on how the
/// compiler aligns aggregates.
#[repr(C, align(64))]
pub struct StaticRecord {
    addr: *mut u8,
    size: usize,
    name: *const c_char,
    site: *const c_char,
    flags: c_ulong,
}

/// `flags` bit: the array has an initializer, so its data must be kept.
const INITIALIZED: c_ulong = 1;

/// Record tables handed in by constructors, not yet adopted.
struct Pending {
    tables: Vec<(usize, usize)>,
    adopted: BTreeSet<usize>,
    program_calls_startup: bool,
}

static PENDING: Mutex<Pending> =
    Mutex::new(Pending { tables: Vec::new(), adopted: BTreeSet::new(), program_calls_startup: false });

/// How many of `argv` belong to the program, when DLM started before `main` and read them.
static AUTOSTART: OnceLock<Option<usize>> = OnceLock::new();

/// Remembers the static arrays of one linked object (`[start, stop)` of its `dlm_statics`
/// section). `calls_startup` says the file calls `dlm_startup`, so DLM options after `--`
/// are meant for DLM. Adopts the arrays at once if DLM already runs (a library loaded later).
///
/// # Safety
/// `[start, stop)` is NULL..NULL or an array of records that lives as long as the program.
#[no_mangle]
pub unsafe extern "C" fn __dlm_register(start: *const StaticRecord, stop: *const StaticRecord, calls_startup: c_int) {
    let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    pending.program_calls_startup |= calls_startup != 0;
    let table = (start as usize, stop as usize);
    if !start.is_null() && start < stop && !pending.tables.contains(&table) {
        pending.tables.push(table);
    }
    if runtime::is_running() {
        adopt_pending(&mut pending);
    }
}

/// Starts DLM before `main` (under mpirun, ranks other than 0 become memory servers here) and
/// adopts the registered static arrays. Errors end the program with a message.
#[no_mangle]
pub extern "C" fn __dlm_autostart() {
    if crate::sys::is_forked_child() {
        return;
    }
    let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    if !runtime::is_running() && AUTOSTART.get().is_none() {
        let mut args: Vec<String> = std::env::args().collect();
        if !pending.program_calls_startup {
            // The program's own arguments, even after `--`, are not DLM's.
            args.truncate(1);
        }
        match runtime::start(&args) {
            Ok(started) => {
                let _ = AUTOSTART.set(pending.program_calls_startup.then_some(started.program_argc));
            }
            Err(e) => e.exit(),
        }
    }
    adopt_pending(&mut pending);
}

/// Shuts DLM down at exit, from the last destructor of a program built by dlmcc: after its
/// `atexit` handlers and its own destructors, which may still read and free DLM blocks.
#[no_mangle]
pub extern "C" fn __dlm_exit() {
    runtime::shutdown();
}

/// What `dlm_startup` does when DLM already started before `main`: returns how many of `argv`
/// belong to the program, or `None` if DLM was not started that way.
pub fn program_argc_after_autostart(argv: &[String]) -> Option<Result<usize, Error>> {
    let read_argv = *AUTOSTART.get()?;
    Some(match read_argv {
        Some(program_argc) => Ok(program_argc.min(argv.len())),
        None => match config::from_env_and_args(std::env::vars(), argv) {
            Ok((_, program_argc)) if program_argc < argv.len() => Err(Error::LateOptions),
            Ok(_) => Ok(argv.len()),
            Err(e) => Err(e.into()),
        },
    })
}

fn adopt_pending(pending: &mut Pending) {
    let page = crate::sys::system_page_size();
    for (start, stop) in std::mem::take(&mut pending.tables) {
        let count = (stop - start) / size_of::<StaticRecord>();
        // SAFETY: the linker's __start/__stop symbols bound an array of records (see
        // __dlm_register).
        let records = unsafe { std::slice::from_raw_parts(start as *const StaticRecord, count) };
        for record in records {
            if !pending.adopted.insert(record.addr as usize) {
                continue; // a tentative definition registered by several files
            }
            // Whole system pages inside the array; dlmcc aligns its start, a short tail stays.
            let first = (record.addr as usize).next_multiple_of(page);
            let end = (record.addr as usize + record.size) / page * page;
            if end <= first {
                continue;
            }
            if let Err(e) = runtime::adopt_static(first, end - first, record.flags & INITIALIZED != 0) {
                // SAFETY: dlmcc writes both as string literals.
                let (name, site) = unsafe { (CStr::from_ptr(record.name), CStr::from_ptr(record.site)) };
                eprintln!(
                    "dlm: error: static array `{}` ({}, {}) cannot be placed in DLM memory: {e}",
                    name.to_string_lossy(),
                    site.to_string_lossy(),
                    Bytes(record.size as u64)
                );
                std::process::exit(1);
            }
        }
    }
}
