//! [`Mapping`]: an anonymous `MAP_NORESERVE` mapping owned by the runtime; ranges of the
//! program's own memory (static arrays) turned into DLM memory in place.

use super::host::HUGE_PAGE;
use std::io;
use std::ptr::NonNull;

/// An anonymous private mapping reserved with `MAP_NORESERVE`: it costs no memory until touched.
pub struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory; who may touch which byte is decided by its users.
unsafe impl Send for Mapping {}
// SAFETY: as above; the type itself only hands out addresses.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// A private anonymous mapping of `len` bytes that never uses transparent huge pages.
    pub fn reserve(len: usize) -> io::Result<Self> {
        Self::reserve_with(len, false)
    }

    /// A private anonymous mapping of `len` bytes, [`HUGE_PAGE`]-aligned, advised to use
    /// transparent huge pages, so that a 2 MiB-aligned DLM page can be a PMD moved whole.
    pub fn reserve_huge(len: usize) -> io::Result<Self> {
        Self::reserve_with(len, true)
    }

    fn reserve_with(len: usize, huge: bool) -> io::Result<Self> {
        let slack = if huge { HUGE_PAGE } else { 0 };
        // SAFETY: a fresh anonymous mapping at a kernel-chosen address aliases nothing.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len + slack,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let start = (ptr as usize).next_multiple_of(slack.max(1));
        // SAFETY: the head and tail cut off lie inside the mapping just created and are unused.
        unsafe {
            if start > ptr as usize {
                libc::munmap(ptr, start - ptr as usize);
            }
            let end = start + len;
            let tail = ptr as usize + len + slack - end;
            if tail > 0 {
                libc::munmap(end as *mut libc::c_void, tail);
            }
        }
        // SAFETY: [start, start+len) is the mapping just created. Without huge pages a small
        // DLM page could be split out of a huge one by the kernel; the advice only fails on
        // kernels without THP, where nothing needs to be done.
        unsafe { libc::madvise(start as *mut libc::c_void, len, huge_advice(huge)) };
        Ok(Mapping { base: NonNull::new(start as *mut u8).expect("mmap never returns NULL"), len })
    }

    pub fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Ends the mapping's use but keeps its addresses: fresh zero pages replace it, reserved
    /// (`MAP_NORESERVE`) and never given back. After DLM shuts down its blocks are still freed
    /// or grown by address, so no other mapping of the C library's may land there.
    pub fn retire(self) {
        // SAFETY: the mapping is ours and nobody uses its data any more; MAP_FIXED replaces it
        // in place with fresh anonymous memory of the same length.
        unsafe {
            libc::mmap(
                self.base().cast(),
                self.len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        std::mem::forget(self);
    }

    /// Leaves the mapping out of `fork` children: their pages could only read as zeros there
    /// (the pager serves the parent), so a child's access must fault instead.
    pub fn exclude_from_fork(&self) -> io::Result<()> {
        // SAFETY: the range is this mapping; MADV_DONTFORK changes only what fork copies.
        let rc = unsafe { libc::madvise(self.base.as_ptr().cast(), self.len, libc::MADV_DONTFORK) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Drops the pages of `[offset, offset+len)`: the memory goes back to the kernel and the
    /// next touch sees zeros (or, in a userfaultfd-registered mapping, a missing fault).
    pub fn discard(&self, offset: usize, len: usize) {
        assert!(offset.checked_add(len).is_some_and(|end| end <= self.len), "discard out of range");
        // SAFETY: the range lies inside this mapping.
        unsafe { discard(self.base.as_ptr().add(offset), len) };
    }
}

/// Drops the pages of `[start, start+len)` (see [`Mapping::discard`]).
///
/// # Safety
/// The range must be private anonymous memory whose contents nobody needs any more.
pub unsafe fn discard(start: *mut u8, len: usize) {
    // SAFETY: the caller owns the range; MADV_DONTNEED only drops page contents.
    let rc = unsafe { libc::madvise(start.cast(), len, libc::MADV_DONTNEED) };
    assert_eq!(rc, 0, "madvise(MADV_DONTNEED) failed: {}", io::Error::last_os_error());
}

/// Turns `[start, start+len)` of the program's own memory (a static array) into DLM memory:
/// fresh anonymous pages, excluded from `fork` like the DLM range. With `keep_contents`, the
/// old pages are first moved (not copied) to a new mapping that is returned, so the pager can
/// install each page's initial data on its first fault.
///
/// # Safety
/// The range must be page-aligned, lie inside one static object, and nothing may touch it until
/// it has been registered with the pager's userfaultfd.
/// With `huge`, the new pages may be transparent huge pages (see [`Mapping::reserve_huge`]).
pub unsafe fn adopt_range(start: *mut u8, len: usize, keep_contents: bool, huge: bool) -> io::Result<Option<Mapping>> {
    let stash = if keep_contents {
        let stash = Mapping::reserve(len)?;
        // SAFETY: both ranges are page-aligned and `len` long; the destination is our own
        // mapping, which MREMAP_FIXED replaces.
        let moved = unsafe {
            libc::mremap(
                start.cast(),
                len,
                len,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                stash.base().cast::<libc::c_void>(),
            )
        };
        if moved == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Some(stash)
    } else {
        None
    };
    // SAFETY: the caller hands over the range; MAP_FIXED replaces exactly those pages.
    let ptr = unsafe {
        libc::mmap(
            start.cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the range is the mapping just made; see Mapping::reserve and exclude_from_fork.
    unsafe {
        libc::madvise(ptr, len, huge_advice(huge));
        if libc::madvise(ptr, len, libc::MADV_DONTFORK) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(stash)
}

fn huge_advice(huge: bool) -> libc::c_int {
    if huge {
        libc::MADV_HUGEPAGE
    } else {
        libc::MADV_NOHUGEPAGE
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: we own the mapping; nobody may use its addresses after the owner is dropped.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}
