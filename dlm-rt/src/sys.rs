//! Every raw system call and ioctl of the runtime, behind owning types.
//!
//! [`Mapping`] owns an anonymous `MAP_NORESERVE` mapping, [`FaultFd`] owns a userfaultfd
//! registered in missing + write-protect mode, [`EventFd`] wakes the pager thread.

use std::ffi::c_void;
use std::io;
use std::os::fd::IntoRawFd;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::ptr::NonNull;
use userfaultfd::{Event, EventBuffer, FaultKind, FeatureFlags, ReadWrite, RegisterMode, Uffd};

/// The kernel's page size.
pub fn system_page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// This host's name, as the memfile would name it.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or fails.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// `MemAvailable` of this host, in bytes.
pub fn available_memory() -> io::Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    mem_available(&text).ok_or_else(|| io::Error::other("no MemAvailable in /proc/meminfo"))
}

/// The bytes on the `MemAvailable:` line of a `/proc/meminfo` text (this host's or another's).
pub fn mem_available(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// Lets this thread's short sleeps end on time (the default slack is 50 µs).
pub fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer argument.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
}

/// An anonymous private mapping reserved with `MAP_NORESERVE`: it costs no memory until touched.
pub struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory; who may touch which byte is decided by its users.
unsafe impl Send for Mapping {}
// SAFETY: as above; the type itself only hands out addresses.
unsafe impl Sync for Mapping {}

/// The size of a transparent huge page (a PMD) on x86-64 and most 64-bit kernels.
pub const HUGE_PAGE: usize = 2 << 20;

/// Whether the kernel gives transparent huge pages to ranges advised `MADV_HUGEPAGE`.
pub fn huge_pages_available() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|mode| mode.contains("[always]") || mode.contains("[madvise]"))
}

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

/// One page fault read from the userfaultfd.
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    pub addr: usize,
    pub write: bool,
    pub write_protected: bool,
}

/// Which faults the kernel hands to a userfaultfd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// Every fault, also one the kernel takes on the program's behalf (`read(2)` into a missing
    /// page waits for the pager). Needs root, read-write access to `/dev/userfaultfd`, or
    /// `vm.unprivileged_userfaultfd=1`.
    KernelAndUser,
    /// Only faults of user-space code (`UFFD_USER_MODE_ONLY`, open to any user): the kernel's
    /// own access to a missing or write-protected page fails with `EFAULT`, so I/O into DLM
    /// memory must hold its pages resident first (the pager's `Hold`).
    UserOnly,
}

/// A userfaultfd that serves a mapping in missing + write-protect mode.
pub struct FaultFd {
    uffd: Uffd,
    events: EventBuffer,
    /// Whether the kernel has `UFFDIO_MOVE` (Linux 6.8).
    can_move: bool,
    mode: FaultMode,
}

/// `UFFD_FEATURE_MOVE` and `UFFDIO_MOVE` (Linux 6.8), which the userfaultfd crates predate.
const UFFD_FEATURE_MOVE: u64 = 1 << 16;
const UFFDIO_MOVE_MODE_DONTWAKE: u64 = 1;
/// `_IOWR(0xAA, 0x05, struct uffdio_move)`.
const UFFDIO_MOVE: libc::c_ulong = 0xC000_0000 | ((size_of::<UffdioMove>() as libc::c_ulong) << 16) | 0xAA05;
/// The `userfaultfd(2)` flag that limits it to faults of user-space code.
const UFFD_USER_MODE_ONLY: libc::c_int = 1;

#[repr(C)]
struct UffdioMove {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    moved: i64,
}

/// A fresh userfaultfd with the features DLM uses, and what it can do.
struct OpenedFaultFd {
    uffd: Uffd,
    can_move: bool,
    mode: FaultMode,
}

/// Opens a userfaultfd: in kernel-and-user mode when this process may, else in user-only mode,
/// with `UFFDIO_MOVE` when the kernel has it.
fn open_fault_fd() -> io::Result<OpenedFaultFd> {
    let with_move = FeatureFlags::PAGEFAULT_FLAG_WP | FeatureFlags::from_bits_retain(UFFD_FEATURE_MOVE);
    let without_move = FeatureFlags::PAGEFAULT_FLAG_WP;
    for mode in [FaultMode::KernelAndUser, FaultMode::UserOnly] {
        let opened = create_fault_fd(mode, with_move)
            .map(|uffd| OpenedFaultFd { uffd, can_move: true, mode })
            .or_else(|_| create_fault_fd(mode, without_move).map(|uffd| OpenedFaultFd { uffd, can_move: false, mode }));
        match opened {
            Err(e) if mode == FaultMode::KernelAndUser && is_permission_error(&e) => continue,
            result => return result,
        }
    }
    unreachable!("user-only mode ends the loop")
}

fn is_permission_error(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EPERM | libc::EACCES))
}

/// One userfaultfd in `mode`, its API handshake done with `features` required.
fn create_fault_fd(mode: FaultMode, features: FeatureFlags) -> io::Result<Uffd> {
    let flags = libc::O_CLOEXEC | libc::O_NONBLOCK;
    let fd = match mode {
        // The system call serves kernel faults for root and, with vm.unprivileged_userfaultfd=1,
        // for every user; the device for whoever may open it.
        FaultMode::KernelAndUser => match userfaultfd_syscall(flags) {
            Err(e) if is_permission_error(&e) => userfaultfd_from_device(flags)?,
            other => other?,
        },
        // Open to every user (Linux 5.11).
        FaultMode::UserOnly => userfaultfd_syscall(flags | UFFD_USER_MODE_ONLY)?,
    };
    // SAFETY: a fresh descriptor that nothing else owns.
    let uffd = unsafe { Uffd::from_raw_fd(fd.into_raw_fd()) };
    let mut api = userfaultfd_sys::uffdio_api { api: userfaultfd_sys::UFFD_API, features: features.bits(), ioctls: 0 };
    // SAFETY: `api` is a valid uffdio_api for this userfaultfd.
    if unsafe { libc::ioctl(uffd.as_raw_fd(), userfaultfd_sys::UFFDIO_API as _, &mut api) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(uffd)
}

/// `userfaultfd(2)` with `flags`.
fn userfaultfd_syscall(flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: userfaultfd(2) takes flags only.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `USERFAULTFD_IOC_NEW`: `_IO(0xAA, 0x00)` on `/dev/userfaultfd`.
const USERFAULTFD_IOC_NEW: libc::c_ulong = 0xAA00;

/// A userfaultfd with `flags` from `/dev/userfaultfd` (Linux 6.1), which its permissions open
/// to chosen users.
fn userfaultfd_from_device(flags: libc::c_int) -> io::Result<OwnedFd> {
    let device =
        std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_CLOEXEC).open("/dev/userfaultfd")?;
    // SAFETY: USERFAULTFD_IOC_NEW takes the flags as its argument and returns a new descriptor.
    let fd = unsafe { libc::ioctl(device.as_raw_fd(), USERFAULTFD_IOC_NEW as _, flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The OS error inside the crate's error.
fn crate_error_to_io(error: userfaultfd::Error) -> io::Error {
    match error {
        userfaultfd::Error::SystemError(errno) => io::Error::from_raw_os_error(errno as i32),
        other => io::Error::other(other),
    }
}

impl FaultFd {
    /// Creates the userfaultfd and registers `mapping` with it.
    pub fn register(mapping: &Mapping) -> io::Result<Self> {
        let OpenedFaultFd { uffd, can_move, mode } = open_fault_fd()?;
        uffd.register_with_mode(
            mapping.base().cast(),
            mapping.len(),
            RegisterMode::MISSING | RegisterMode::WRITE_PROTECT,
        )
        .map_err(crate_error_to_io)?;
        Ok(FaultFd { uffd, events: EventBuffer::new(64), can_move, mode })
    }

    /// Which faults come to the pager.
    pub fn mode(&self) -> FaultMode {
        self.mode
    }

    /// Whether pages can be moved into and out of the registered ranges ([`FaultFd::move_pages`]).
    pub fn can_move(&self) -> bool {
        self.can_move
    }

    /// Registers a mapping the pager keeps its own pages in, so that pages can be moved between
    /// it and the DLM range. It never faults to the pager: write-protect mode only, and the
    /// pager protects none of its pages.
    pub fn register_staging(&self, mapping: &Mapping) -> io::Result<()> {
        self.uffd
            .register_with_mode(mapping.base().cast(), mapping.len(), RegisterMode::WRITE_PROTECT)
            .map_err(crate_error_to_io)?;
        Ok(())
    }

    /// Registers one more range (a static array adopted with [`adopt_range`]).
    pub fn register_range(&self, start: *mut u8, len: usize) -> io::Result<()> {
        self.uffd
            .register_with_mode(start.cast(), len, RegisterMode::MISSING | RegisterMode::WRITE_PROTECT)
            .map_err(crate_error_to_io)?;
        Ok(())
    }

    pub fn raw_fd(&self) -> i32 {
        self.uffd.as_raw_fd()
    }

    /// Reads every pending fault (none if nothing is pending).
    pub fn read_faults(&mut self, out: &mut Vec<Fault>) -> Result<(), userfaultfd::Error> {
        for event in self.uffd.read_events(&mut self.events)? {
            if let Event::Pagefault { kind, rw, addr, .. } = event? {
                out.push(Fault {
                    addr: addr as usize,
                    write: rw == ReadWrite::Write,
                    write_protected: kind == FaultKind::WriteProtected,
                });
            }
        }
        Ok(())
    }

    /// Installs `len` bytes from `src` at the missing range `dst` and wakes its waiters;
    /// with `write_protect` the new pages are mapped write-protected.
    ///
    /// Returns `false` if the range was already populated (another thread's fault won).
    ///
    /// # Safety
    /// `src` must be readable for `len` bytes and `dst..dst+len` must lie in the registered mapping.
    pub unsafe fn install(&self, src: *const u8, dst: *mut u8, len: usize, write_protect: bool) -> bool {
        let mut copy = userfaultfd_sys::uffdio_copy {
            dst: dst as u64,
            src: src as u64,
            len: len as u64,
            mode: if write_protect { userfaultfd_sys::UFFDIO_COPY_MODE_WP } else { 0 },
            copy: 0,
        };
        loop {
            // SAFETY: `copy` is a valid uffdio_copy; the caller guarantees both ranges.
            let rc = unsafe { libc::ioctl(self.uffd.as_raw_fd(), userfaultfd_sys::UFFDIO_COPY as _, &mut copy) };
            if rc == 0 {
                return true;
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EEXIST) => return false,
                // Interrupted part-way: continue after the bytes already copied.
                Some(libc::EAGAIN) if copy.copy > 0 => {
                    let done = copy.copy as u64;
                    copy.dst += done;
                    copy.src += done;
                    copy.len -= done;
                    copy.copy = 0;
                }
                Some(libc::EAGAIN) => continue,
                _ => panic!("UFFDIO_COPY failed: {}", io::Error::last_os_error()),
            }
        }
    }

    /// Moves the pages of `[src, src+len)` to the missing range at `dst` without copying them
    /// (`UFFDIO_MOVE`); `src` is then missing. With `wake`, threads waiting on `dst` retry.
    ///
    /// An error means nothing was moved: `EEXIST` if `dst` was populated, `EBUSY` if a page is
    /// pinned or shared (e.g. by a transport that registered it); the caller copies instead. A
    /// move that fails part-way would leave one page in two places, so it ends the program.
    ///
    /// # Safety
    /// Both ranges must lie in registered mappings of this process and be page-aligned; nobody
    /// may need `src`'s contents at its old address.
    pub unsafe fn move_pages(&self, src: *mut u8, dst: *mut u8, len: usize, wake: bool) -> io::Result<()> {
        let mode = if wake { 0 } else { UFFDIO_MOVE_MODE_DONTWAKE };
        let mut request = UffdioMove { dst: dst as u64, src: src as u64, len: len as u64, mode, moved: 0 };
        loop {
            // SAFETY: `request` is a valid uffdio_move; the caller guarantees both ranges.
            let rc = unsafe { libc::ioctl(self.uffd.as_raw_fd(), UFFDIO_MOVE, &mut request) };
            if rc == 0 {
                return Ok(());
            }
            let error = io::Error::last_os_error();
            let done = request.moved.max(0) as u64;
            if error.raw_os_error() != Some(libc::EAGAIN) {
                if done > 0 || request.len < len as u64 {
                    fatal(&format!("UFFDIO_MOVE failed part-way through a DLM page: {error}"));
                }
                return Err(error);
            }
            // Interrupted part-way: continue after the bytes already moved.
            request.dst += done;
            request.src += done;
            request.len -= done;
            request.moved = 0;
        }
    }

    /// Write-protects a resident range: later writes fault to the pager.
    pub fn protect(&self, start: *mut u8, len: usize) {
        self.uffd.write_protect(start.cast::<c_void>(), len).expect("UFFDIO_WRITEPROTECT failed");
    }

    /// Lifts write protection from a resident range and wakes the writers.
    pub fn unprotect(&self, start: *mut u8, len: usize) {
        self.uffd.remove_write_protection(start.cast::<c_void>(), len, true).expect("UFFDIO_WRITEPROTECT failed");
    }

    /// Wakes threads waiting on a range so that they retry their access.
    pub fn wake(&self, start: *mut u8, len: usize) {
        self.uffd.wake(start.cast::<c_void>(), len).expect("UFFDIO_WAKE failed");
    }
}

/// An eventfd used to wake the pager thread from `poll`.
pub struct EventFd(OwnedFd);

impl EventFd {
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd has no memory-safety preconditions.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64, as eventfd requires.
        unsafe { write_syscall(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Resets the counter so that `poll` blocks again.
    pub fn drain(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64; EAGAIN (nothing pending) is fine. The system
        // call itself, as for `write_syscall`.
        unsafe { libc::syscall(libc::SYS_read, self.0.as_raw_fd(), (&mut value as *mut u64).cast::<u8>(), 8) };
    }

    pub fn raw_fd(&self) -> i32 {
        self.0.as_raw_fd()
    }
}

/// Waits until one of `fds` (at most 64) is readable or `timeout_ms` passes (-1: forever);
/// bit i of the result is set when `fds[i]` is readable or hung up.
pub fn poll_readable(fds: impl IntoIterator<Item = i32>, timeout_ms: i32) -> u64 {
    let mut polled = [libc::pollfd { fd: -1, events: libc::POLLIN, revents: 0 }; 64];
    let mut n = 0;
    for (slot, fd) in polled.iter_mut().zip(fds) {
        slot.fd = fd;
        n += 1;
    }
    // SAFETY: `polled` holds n initialized pollfd structures.
    let rc = unsafe { libc::poll(polled.as_mut_ptr(), n as libc::nfds_t, timeout_ms) };
    if rc <= 0 {
        return 0;
    }
    polled[..n].iter().enumerate().filter(|(_, p)| p.revents != 0).fold(0, |mask, (i, _)| mask | 1 << i)
}

/// A pidfd: readable once the process has exited.
pub fn watch_process(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_long, 0 as libc::c_long) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

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

/// Whether the machine has swap on (`/proc/swaps` lists a device or file). The kernel may then
/// swap DLM pages out behind the pager, and moving swapped-out pages with `UFFDIO_MOVE` is not
/// reliable (a move was seen to report a swap entry it had moved as not moved).
pub fn swap_is_on() -> bool {
    std::fs::read_to_string("/proc/swaps").is_ok_and(|swaps| swaps.lines().count() > 1)
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

/// Writes `message` to fd 2 without Rust's stderr lock. Async-signal-safe.
fn write_stderr(message: &str) {
    write_stderr_bytes(message.as_bytes());
}

fn write_stderr_bytes(message: &[u8]) {
    // SAFETY: reads a live buffer.
    unsafe { write_syscall(2, message.as_ptr(), message.len()) };
}

/// The `write` system call itself. In a program built by dlmcc, `write` is the interposed one
/// (`interpose_io.c`), which may look itself up with `dlsym` and take a lock: neither is
/// async-signal-safe, and the pager thread must not ask itself to hold memory.
///
/// # Safety
/// `buf` must be readable for `len` bytes.
unsafe fn write_syscall(fd: libc::c_int, buf: *const u8, len: usize) {
    // SAFETY: the caller passes a readable buffer; write(2) is async-signal-safe.
    unsafe { libc::syscall(libc::SYS_write, fd, buf, len) };
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

/// Ends a memory server at once, running none of the program's `atexit` handlers and
/// destructors: the server shares the program's executable but never ran its `main`.
pub fn end_server(code: i32) -> ! {
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Writes a message on stderr without taking Rust's stderr lock and ends the process at once
/// with `code`, running no exit handlers (they would wait for MPI peers that are gone).
pub fn exit_now(code: i32, message: &str) -> ! {
    write_stderr(&format!("dlm: {message}\n"));
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Writes a message on stderr without taking Rust's stderr lock, then aborts the process.
///
/// The pager thread must never block on a lock that a faulting program thread may hold.
pub fn fatal(message: &str) -> ! {
    write_stderr(&format!("dlm: fatal: {message}\n"));
    std::process::abort()
}
