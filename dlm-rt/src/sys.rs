//! Every raw system call and ioctl of the runtime, behind owning types.
//!
//! [`Mapping`] owns an anonymous `MAP_NORESERVE` mapping, [`FaultFd`] owns a userfaultfd
//! registered in missing + write-protect mode, [`EventFd`] wakes the pager thread.

use std::ffi::c_void;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use userfaultfd::{Event, EventBuffer, FaultKind, FeatureFlags, ReadWrite, RegisterMode, Uffd, UffdBuilder};

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
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| io::Error::other("no MemAvailable in /proc/meminfo"))
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

impl Mapping {
    pub fn reserve(len: usize) -> io::Result<Self> {
        // SAFETY: a fresh anonymous mapping at a kernel-chosen address aliases nothing.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: [ptr, ptr+len) is the mapping just created. Huge pages would make a DLM page
        // partly resident when the kernel splits or collapses them; the advice only fails on
        // kernels without THP, where nothing needs to be done.
        unsafe { libc::madvise(ptr, len, libc::MADV_NOHUGEPAGE) };
        Ok(Mapping { base: NonNull::new(ptr.cast()).expect("mmap never returns NULL"), len })
    }

    pub fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Drops the pages of `[offset, offset+len)`: the memory goes back to the kernel and the
    /// next touch sees zeros (or, in a userfaultfd-registered mapping, a missing fault).
    pub fn discard(&self, offset: usize, len: usize) {
        assert!(offset.checked_add(len).is_some_and(|end| end <= self.len), "discard out of range");
        // SAFETY: the range lies inside this mapping; MADV_DONTNEED only drops page contents.
        let rc = unsafe { libc::madvise(self.base.as_ptr().add(offset).cast(), len, libc::MADV_DONTNEED) };
        assert_eq!(rc, 0, "madvise(MADV_DONTNEED) failed: {}", io::Error::last_os_error());
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

/// A userfaultfd that serves a mapping in missing + write-protect mode.
///
/// Created in kernel-and-user mode so that system calls (`read(2)` into DLM memory) fault too.
pub struct FaultFd {
    uffd: Uffd,
    events: EventBuffer,
}

impl FaultFd {
    /// Creates the userfaultfd and registers `mapping` with it.
    pub fn register(mapping: &Mapping) -> Result<Self, userfaultfd::Error> {
        let uffd = UffdBuilder::new()
            .close_on_exec(true)
            .non_blocking(true)
            .user_mode_only(false)
            .require_features(FeatureFlags::PAGEFAULT_FLAG_WP)
            .create()?;
        uffd.register_with_mode(
            mapping.base().cast(),
            mapping.len(),
            RegisterMode::MISSING | RegisterMode::WRITE_PROTECT,
        )?;
        Ok(FaultFd { uffd, events: EventBuffer::new(64) })
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
        unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Resets the counter so that `poll` blocks again.
    pub fn drain(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64; EAGAIN (nothing pending) is fine.
        unsafe { libc::read(self.0.as_raw_fd(), (&mut value as *mut u64).cast(), 8) };
    }

    pub fn raw_fd(&self) -> i32 {
        self.0.as_raw_fd()
    }
}

/// Which of the two descriptors is readable after [`poll_two`].
pub struct Ready {
    pub first: bool,
    pub second: bool,
}

/// Waits until `first` or `second` is readable, or `timeout_ms` passes (-1: forever).
pub fn poll_two(first: i32, second: i32, timeout_ms: i32) -> Ready {
    let mut fds = [
        libc::pollfd { fd: first, events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: second, events: libc::POLLIN, revents: 0 },
    ];
    // SAFETY: fds is a live array of two pollfd structures.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
    if rc < 0 {
        return Ready { first: false, second: false };
    }
    Ready { first: fds[0].revents != 0, second: fds[1].revents != 0 }
}

/// Writes a message on stderr without taking Rust's stderr lock, then aborts the process.
///
/// The pager thread must never block on a lock that a faulting program thread may hold.
pub fn fatal(message: &str) -> ! {
    let text = format!("dlm: fatal: {message}\n");
    // SAFETY: writes from a live buffer to fd 2.
    unsafe { libc::write(2, text.as_ptr().cast(), text.len()) };
    std::process::abort()
}
