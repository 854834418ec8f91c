//! The small-block heap: blocks smaller than the threshold that code rewritten by dlmcc
//! allocates, packed densely into DLM pages by mimalloc (a well-kept allocator, built from its
//! C source by `libmimalloc-sys`; it replaces no allocator of the process).
//!
//! The DLM range ends with an address range set aside for this heap (`heap::arena`: the limit,
//! up to 15 GiB). The first small allocation hands it to mimalloc as an exclusive arena with a
//! commit function: mimalloc asks to "commit" each span before it touches it, and the commit
//! charges the DLM pages under the span against the limit (budget + servers' capacity) that big
//! blocks are counted against too ([`crate::runtime::charge_small_heap`]). A commit the limit
//! cannot hold fails, mimalloc's allocation returns NULL, and the caller takes the block from
//! the C library instead: the program never fails where it would not fail natively, and the
//! statistics count those blocks (`small_blocks_in_libc`).
//!
//! What mimalloc may do to its memory is narrowed to what the pager allows: the arena is
//! *pinned* (mimalloc never decommits, resets or purges it, so no `MADV_DONTNEED` drops a page
//! the pager counts resident), pages are committed whole (`page_commit_on_demand` 0: every byte
//! mimalloc touches was charged first), and it is *zero* (a DLM page never touched reads as
//! zeros, so mimalloc skips clearing fresh memory for `calloc`). mimalloc's thread heaps are
//! in memory of its own outside the DLM range; the arena's own records (its bitmaps and one
//! record per mimalloc page) are at the arena's start, in DLM memory that is charged and paged
//! like the blocks. The pager thread never calls mimalloc: a program thread may fault on DLM
//! memory while it holds mimalloc's locks.
//!
//! In user-only mode (`held`) small blocks stay in the C library: see [`usable`].
//!
//! Blocks are freed by address: a pointer in the arena's range is mimalloc's, wherever it is
//! freed. After DLM has shut down (its memory is gone) and in a forked child (which has no DLM
//! memory), freeing such a block does nothing.

use crate::heap::arena;
pub use crate::heap::arena::owns;
use crate::runtime;
use libmimalloc_sys as mi;
use std::ffi::{c_int, c_void};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::Mutex;

/// Alignments mimalloc serves inside an arena (it takes larger ones from the OS, which an
/// exclusive arena refuses).
const ALIGN_MAX: usize = 64 << 10;

/// Indices of the mimalloc options set here (`mi_option_t` in the vendored `mimalloc.h`,
/// version 3; the bindings name only the older ones). A unit test checks them by their defaults.
mod option {
    use libmimalloc_sys::mi_option_t;
    pub const PURGE_DELAY: mi_option_t = 15;
    pub const DESTROY_ON_EXIT: mi_option_t = 22;
    pub const PAGE_COMMIT_ON_DEMAND: mi_option_t = 40;
}

/// `mi_commit_fun_t`: commits (`true`) or decommits a span of an arena; false refuses.
type CommitFn = unsafe extern "C" fn(bool, *mut c_void, usize, *mut bool, *mut c_void) -> bool;

extern "C" {
    /// `mi_manage_memory` of mimalloc 3 (not in the bindings): an arena over memory the caller
    /// owns, committed through `commit`.
    fn mi_manage_memory(
        start: *mut c_void,
        size: usize,
        is_committed: bool,
        is_pinned: bool,
        is_zero: bool,
        numa_node: c_int,
        exclusive: bool,
        commit: Option<CommitFn>,
        commit_arg: *mut c_void,
        arena_id: *mut mi::mi_arena_id_t,
    ) -> bool;
}

/// The mimalloc heap over the arena, once made.
static HEAP: AtomicPtr<mi::mi_heap_t> = AtomicPtr::new(std::ptr::null_mut());
/// Whether making the heap was tried (it is tried once), under which it is made.
static SETUP: Mutex<bool> = Mutex::new(false);
/// Set when making the heap failed: small blocks then come from the C library.
static UNAVAILABLE: AtomicBool = AtomicBool::new(false);
/// Whether the first small block that the C library had to take (DLM memory full) was said.
static SAID_FULL: AtomicBool = AtomicBool::new(false);

/// Whether the arena may be used now: DLM runs, this is not a forked child, and the kernel's
/// accesses fault to the pager. In user-only mode they do not: the system calls that take a
/// small block (a path, a `struct stat`, a `pollfd` array, a mutex) are not interposed and
/// would fail with `EFAULT` on a page that is not resident, so small blocks stay in the C
/// library there.
fn usable() -> bool {
    runtime::is_running() && !crate::sys::is_forked_child() && !runtime::holds::kernel_faults_fail()
}

/// The heap over the arena, made on first use; `None` if DLM memory cannot be used now (or
/// mimalloc refused the arena: then the block the caller is about to take from the C library
/// is counted).
fn heap() -> Option<NonNull<mi::mi_heap_t>> {
    if !usable() {
        return None;
    }
    let heap = NonNull::new(HEAP.load(Ordering::Acquire)).or_else(|| {
        if UNAVAILABLE.load(Ordering::Relaxed) {
            None
        } else {
            make_heap()
        }
    });
    if heap.is_none() {
        crate::stats::note_small_block_in_libc();
    }
    heap
}

#[cold]
fn make_heap() -> Option<NonNull<mi::mi_heap_t>> {
    let mut tried = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    if *tried {
        return NonNull::new(HEAP.load(Ordering::Acquire));
    }
    *tried = true;
    let range = arena::range()?;
    let (start, len) = (range.start, range.len());
    // SAFETY: options are set before the arena exists, under SETUP; the arena is a range of the
    // DLM mapping that nothing else uses, mapped read-write for as long as the process lives.
    let heap = unsafe {
        mi::mi_process_init();
        // Pages committed whole through `commit_dlm_pages`, so every byte touched is charged.
        mi::mi_option_set(option::PAGE_COMMIT_ON_DEMAND, 0);
        // Never purge (the arena is pinned too): the pager owns residency in the DLM range.
        mi::mi_option_set(option::PURGE_DELAY, -1);
        // No exit-time collection: mimalloc's destructor runs before the program's own, which
        // may still free small blocks, and DLM memory is gone after DLM's.
        mi::mi_option_set(option::DESTROY_ON_EXIT, 2);
        let mut arena: mi::mi_arena_id_t = std::ptr::null_mut();
        let managed = mi_manage_memory(
            start as *mut c_void,
            len,
            false, // is_committed: each span is committed (charged) on first use
            true,  // is_pinned: never decommitted, reset or purged
            true,  // is_zero: never touched, so it reads as zeros
            -1,    // numa_node: any
            true,  // exclusive: only the heap made for it allocates there
            Some(commit_dlm_pages),
            std::ptr::null_mut(),
            &mut arena,
        );
        if managed {
            mi::mi_heap_new_in_arena(arena)
        } else {
            std::ptr::null_mut()
        }
    };
    if heap.is_null() {
        UNAVAILABLE.store(true, Ordering::Relaxed);
        eprintln!("dlm: mimalloc refused the small-block heap's arena: small blocks come from the C library");
    }
    HEAP.store(heap, Ordering::Release);
    NonNull::new(heap)
}

/// mimalloc's commit function for the arena: charges the DLM pages under a span before
/// mimalloc touches it. Decommits are never asked for (the arena is pinned) and are refused.
unsafe extern "C" fn commit_dlm_pages(
    commit: bool,
    start: *mut c_void,
    len: usize,
    _is_zero: *mut bool,
    _arg: *mut c_void,
) -> bool {
    commit && runtime::charge_small_heap(start as usize, len).is_ok()
}

/// Counts a small block that the C library had to take, saying why the first time.
fn note_in_libc() {
    crate::stats::note_small_block_in_libc();
    if !SAID_FULL.swap(true, Ordering::Relaxed) {
        eprintln!(
            "dlm: DLM memory is full (local budget + memory servers): further small blocks come from the C library"
        );
    }
}

/// A block of `size` bytes from the small-block heap; `None` if the C library must take it
/// (DLM not running, or full: then counted).
pub fn allocate(size: usize) -> Option<NonNull<c_void>> {
    let heap = heap()?;
    // SAFETY: a live mimalloc heap.
    let block = NonNull::new(unsafe { mi::mi_heap_malloc(heap.as_ptr(), size) });
    block.or_else(|| {
        note_in_libc();
        None
    })
}

/// A zeroed block of `count * size` bytes (the caller checked the product), as [`allocate`].
pub fn allocate_zeroed(count: usize, size: usize) -> Option<NonNull<c_void>> {
    let heap = heap()?;
    // SAFETY: a live mimalloc heap.
    let block = NonNull::new(unsafe { mi::mi_heap_calloc(heap.as_ptr(), count, size) });
    block.or_else(|| {
        note_in_libc();
        None
    })
}

/// A block of `size` bytes aligned to `align` (a power of two), as [`allocate`]; alignments of
/// 64 KiB and more are left to the C library.
pub fn allocate_aligned(align: usize, size: usize) -> Option<NonNull<c_void>> {
    if align >= ALIGN_MAX {
        return None;
    }
    let heap = heap()?;
    // SAFETY: a live mimalloc heap; `align` is a power of two below mimalloc's arena limit.
    let block = NonNull::new(unsafe { mi::mi_heap_malloc_aligned(heap.as_ptr(), size, align) });
    block.or_else(|| {
        note_in_libc();
        None
    })
}

/// Resizes the small block `ptr` to `size` (> 0) bytes within the heap, keeping its data;
/// `None` (the block unchanged) if the heap cannot hold the new size.
///
/// # Safety
/// `ptr` is a live block of this heap ([`owns`]) and DLM runs.
pub unsafe fn reallocate(ptr: NonNull<c_void>, size: usize) -> Option<NonNull<c_void>> {
    let heap = heap()?;
    // SAFETY: a live mimalloc heap and one of its live blocks, by the caller's guarantee.
    let block = NonNull::new(unsafe { mi::mi_heap_realloc(heap.as_ptr(), ptr.as_ptr(), size) });
    block.or_else(|| {
        note_in_libc();
        None
    })
}

/// Frees the small block `ptr`; nothing once DLM memory is gone or in a forked child.
///
/// # Safety
/// `ptr` is a block of this heap ([`owns`]), not freed before.
pub unsafe fn free(ptr: NonNull<c_void>) {
    if usable() {
        // SAFETY: a live mimalloc block, by the caller's guarantee.
        unsafe { mi::mi_free(ptr.as_ptr()) };
    }
}

/// How many bytes the small block `ptr` can hold; 0 once DLM memory is gone.
///
/// # Safety
/// `ptr` is a live block of this heap ([`owns`]).
pub unsafe fn usable_size(ptr: NonNull<c_void>) -> usize {
    if !runtime::is_running() {
        return 0;
    }
    // SAFETY: a live mimalloc block, by the caller's guarantee.
    unsafe { mi::mi_usable_size(ptr.as_ptr()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_the_vendored_mimalloc() {
        // SAFETY: plain getters.
        unsafe {
            assert_eq!(arena::ARENA_UNIT, mi::mi_arena_min_size());
            // The options' defaults (mimalloc's options.c) identify their indices.
            assert_eq!(mi::mi_option_get(option::PURGE_DELAY), 1000);
            assert_eq!(mi::mi_option_get(option::PAGE_COMMIT_ON_DEMAND - 4), 2); // page_full_retain
            assert_eq!(mi::mi_option_get(option::PAGE_COMMIT_ON_DEMAND - 3), 4); // page_max_candidates
            assert_eq!(mi::mi_option_get(option::DESTROY_ON_EXIT - 3), 32); // max_errors
            assert_eq!(mi::mi_option_get(option::DESTROY_ON_EXIT - 4), 100); // os_tag
            assert_eq!(mi::_mi_option_last, 47);
        }
    }

    #[test]
    fn mimalloc_takes_the_largest_arena() {
        unsafe extern "C" fn commit(_: bool, _: *mut c_void, _: usize, _: *mut bool, _: *mut c_void) -> bool {
            true
        }
        let len = arena::arena_len(u64::MAX);
        let mapping = crate::sys::Mapping::reserve(len + arena::ARENA_ALIGN).unwrap();
        let start = (mapping.base() as usize).next_multiple_of(arena::ARENA_ALIGN);
        let mut arena: mi::mi_arena_id_t = std::ptr::null_mut();
        // SAFETY: a fresh mapping that nothing else uses, kept for the rest of the process (the
        // arena cannot be handed back), the commit function a stand-in that touches nothing.
        let managed = unsafe {
            mi_manage_memory(
                start as *mut c_void,
                len,
                false,
                true,
                true,
                -1,
                true,
                Some(commit),
                std::ptr::null_mut(),
                &mut arena,
            )
        };
        std::mem::forget(mapping);
        assert!(managed, "mimalloc refused an arena of {len} bytes");
    }
}
