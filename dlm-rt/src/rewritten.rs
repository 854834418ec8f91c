//! The ABI that C code rewritten by `dlmcc` calls (declared in the prelude `c-frontend` puts at
//! the top of each rewritten file): static arrays registered by constructors, DLM started
//! before `main`, and the allocation functions: a block of at least the threshold gets DLM
//! pages of its own (`heap`), a smaller one a place in the small-block heap (`small`), and the
//! C library takes what DLM cannot (before DLM starts, after it stops, when it is full).

use crate::config;
use crate::error::Error;
use crate::runtime;
use crate::size::Bytes;
use crate::small;
use std::collections::BTreeSet;
use std::ffi::{c_char, c_int, c_ulong, c_void, CStr};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
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
            Err(e) => runtime::exit_with(&e),
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

/// A DLM block of its own (whole DLM pages) for `size` bytes if DLM runs and `size` reaches the
/// threshold; `None` if the C library must take it: below the threshold, DLM not running, or
/// DLM memory full (said once: the program never fails where its native build would not).
fn dlm_block(size: usize, threshold: usize) -> Option<*mut c_void> {
    if size == 0 || size < threshold || !runtime::is_running() || crate::sys::is_forked_child() {
        return None;
    }
    match runtime::allocate(size) {
        Ok(ptr) => Some(ptr.as_ptr().cast()),
        Err(e) => {
            static SAID: AtomicBool = AtomicBool::new(false);
            if !SAID.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "dlm: cannot allocate {} in DLM memory ({e}); it and later blocks that do not fit come from \
                     the C library",
                    Bytes(size as u64)
                );
            }
            None
        }
    }
}

fn set_errno(code: c_int) {
    // SAFETY: __errno_location returns this thread's errno.
    unsafe { *libc::__errno_location() = code };
}

/// `malloc` of rewritten code: a block of at least the threshold gets DLM pages of its own, a
/// smaller one a place in the small-block heap (DLM pages shared with other small blocks); the
/// C library takes it when DLM is not running, or is full.
#[no_mangle]
pub extern "C" fn __dlm_rt_malloc(size: usize, threshold: usize) -> *mut c_void {
    let small = || (size < threshold).then(|| small::allocate(size)).flatten().map(NonNull::as_ptr);
    // SAFETY: plain libc call.
    dlm_block(size, threshold).or_else(small).unwrap_or_else(|| unsafe { libc::malloc(size) })
}

/// `calloc` of rewritten code, as `malloc` (DLM memory reads as zeros until written).
#[no_mangle]
pub extern "C" fn __dlm_rt_calloc(count: usize, size: usize, threshold: usize) -> *mut c_void {
    let Some(total) = count.checked_mul(size) else {
        set_errno(libc::ENOMEM);
        return std::ptr::null_mut();
    };
    let small = || (total < threshold).then(|| small::allocate_zeroed(count, size)).flatten().map(NonNull::as_ptr);
    // SAFETY: plain libc call.
    dlm_block(total, threshold).or_else(small).unwrap_or_else(|| unsafe { libc::calloc(count, size) })
}

/// `free` of rewritten code: DLM blocks go back to DLM, anything else to the C library.
///
/// # Safety
/// As for `free`.
#[no_mangle]
pub unsafe extern "C" fn __dlm_rt_free(ptr: *mut c_void) {
    // SAFETY: as the caller's.
    unsafe { crate::malloc::__dlm_free_any(ptr) }
}

/// `realloc` of rewritten code: the block moves to pages of its own when its new size reaches
/// the threshold (if DLM memory cannot hold them, it grows where it is rather than fail), and
/// from them to the small-block heap when it falls below; a C-library block stays there unless
/// it reaches the threshold.
///
/// # Safety
/// As for `realloc`.
#[no_mangle]
pub unsafe extern "C" fn __dlm_rt_realloc(ptr: *mut c_void, size: usize, threshold: usize) -> *mut c_void {
    let Some(block) = NonNull::new(ptr) else {
        return __dlm_rt_malloc(size, threshold);
    };
    if small::owns(ptr) {
        // SAFETY: the caller passes a live block; its address says it is a small block.
        unsafe { realloc_small(block, size, threshold) }
    } else if runtime::owns(ptr.cast()) {
        // SAFETY: as above, in the DLM range outside the small-block heap.
        unsafe { realloc_own_pages(block, size, threshold) }
    } else {
        // SAFETY: as above, outside the DLM range: the C library's.
        unsafe { realloc_libc(block, size, threshold) }
    }
}

/// `realloc` of a block of the small-block heap.
///
/// # Safety
/// `block` is a live block of the small-block heap.
unsafe fn realloc_small(block: NonNull<c_void>, size: usize, threshold: usize) -> *mut c_void {
    if !runtime::is_running() {
        crate::sys::fatal(&format!("realloc({block:p}): DLM has shut down, and its memory with it"));
    }
    // SAFETY: a live small block, by the caller's guarantee.
    let old_len = unsafe { small::usable_size(block) };
    if size == 0 {
        // SAFETY: as above.
        unsafe { small::free(block) };
        return std::ptr::null_mut();
    }
    if size >= threshold {
        // Pages of its own if DLM memory holds them; if not, the block stays small (or goes to
        // the C library) rather than fail where the native build would not.
        if let Ok(pages) = runtime::allocate(size) {
            // SAFETY: as above; the new block is distinct.
            return unsafe { move_block(block, old_len, pages.as_ptr().cast(), size) };
        }
    }
    // SAFETY: as above.
    match unsafe { small::reallocate(block, size) } {
        Some(resized) => resized.as_ptr(),
        // SAFETY: as above; plain libc call for the new block.
        None => unsafe { move_block(block, old_len, libc::malloc(size), size) },
    }
}

/// `realloc` of a block with DLM pages of its own.
///
/// # Safety
/// `block` is in the DLM range, outside the small-block heap.
unsafe fn realloc_own_pages(block: NonNull<c_void>, size: usize, threshold: usize) -> *mut c_void {
    let Some(old_len) = runtime::block_len(block.as_ptr().cast()) else {
        crate::sys::fatal(&format!("realloc({block:p}): not the start of a live DLM block"));
    };
    if size == 0 {
        // SAFETY: a live DLM block.
        unsafe { __dlm_rt_free(block.as_ptr()) };
        return std::ptr::null_mut();
    }
    if size <= old_len && size >= threshold {
        return block.as_ptr(); // shrinks in place
    }
    // SAFETY: the old block holds old_len bytes; the new one is distinct.
    unsafe { move_block(block, old_len, __dlm_rt_malloc(size, threshold), size) }
}

/// `realloc` of a block of the C library: it moves to DLM pages of its own when it reaches the
/// threshold, if DLM memory holds them (if not, it grows where it is rather than fail).
///
/// # Safety
/// `block` is a live block of the C library.
unsafe fn realloc_libc(block: NonNull<c_void>, size: usize, threshold: usize) -> *mut c_void {
    let pages =
        (size >= threshold && size > 0 && runtime::is_running()).then(|| runtime::allocate(size).ok()).flatten();
    match pages {
        // SAFETY: the caller passes a pointer from the C library's allocator.
        None => unsafe { libc::realloc(block.as_ptr(), size) },
        Some(pages) => {
            // SAFETY: as above; the usable size is what the program may have written.
            let old_len = unsafe { libc::malloc_usable_size(block.as_ptr()) };
            // SAFETY: as above; the new block is distinct.
            unsafe { move_block(block, old_len, pages.as_ptr().cast(), size) }
        }
    }
}

/// Copies what fits of `old` (`old_len` bytes) into `new` (at least `size` bytes) and frees
/// `old`, unless `new` is NULL (an allocation that failed: `old` stays). Returns `new`.
///
/// # Safety
/// `old` is a live block of any kind holding `old_len` bytes; `new` is NULL or a distinct block.
unsafe fn move_block(old: NonNull<c_void>, old_len: usize, new: *mut c_void, size: usize) -> *mut c_void {
    if !new.is_null() {
        // SAFETY: both blocks hold at least the bytes copied and do not overlap; `old` is live.
        unsafe {
            std::ptr::copy_nonoverlapping(old.as_ptr().cast::<u8>(), new.cast::<u8>(), old_len.min(size));
            crate::malloc::__dlm_free_any(old.as_ptr());
        }
    }
    new
}

/// `posix_memalign` of rewritten code. Blocks with pages of their own are aligned to the DLM
/// page; small blocks take alignments below 64 KiB.
///
/// # Safety
/// `out` must be writable.
#[no_mangle]
pub unsafe extern "C" fn __dlm_rt_posix_memalign(
    out: *mut *mut c_void,
    align: usize,
    size: usize,
    threshold: usize,
) -> c_int {
    if !align.is_power_of_two() || !align.is_multiple_of(size_of::<*mut c_void>()) {
        return libc::EINVAL;
    }
    let Some(block) = aligned_dlm_block(align, size, threshold) else {
        // SAFETY: plain libc call with the caller's arguments.
        return unsafe { libc::posix_memalign(out, align, size) };
    };
    // SAFETY: the caller guarantees `out` is writable.
    unsafe { *out = block };
    0
}

/// `aligned_alloc` of rewritten code.
#[no_mangle]
pub extern "C" fn __dlm_rt_aligned_alloc(align: usize, size: usize, threshold: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        // SAFETY: plain libc call (it rejects the alignment).
        return unsafe { libc::aligned_alloc(align, size) };
    }
    // SAFETY: plain libc call.
    aligned_dlm_block(align, size, threshold).unwrap_or_else(|| unsafe { libc::aligned_alloc(align, size) })
}

/// A DLM block aligned to `align` (a power of two): pages of its own from the threshold (if
/// the DLM page is aligned enough), else the small-block heap; `None` if the C library must
/// take it.
fn aligned_dlm_block(align: usize, size: usize, threshold: usize) -> Option<*mut c_void> {
    if size >= threshold {
        if runtime::page_size().is_some_and(|page| align <= page) {
            return dlm_block(size, threshold);
        }
        return None;
    }
    small::allocate_aligned(align, size).map(NonNull::as_ptr)
}
