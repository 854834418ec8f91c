//! [`FaultFd`]: a userfaultfd in missing + write-protect mode, opened in the widest mode this
//! process may have, with `UFFDIO_MOVE` when the kernel has it.

use super::mapping::Mapping;
use std::ffi::c_void;
use std::io;
use std::os::fd::IntoRawFd;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use userfaultfd::{Event, EventBuffer, FaultKind, FeatureFlags, ReadWrite, RegisterMode, Uffd};

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
        Ok(FaultFd { uffd, can_move, mode })
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

    /// Registers one more range (a static array adopted with `adopt_range`).
    pub fn register_range(&self, start: *mut u8, len: usize) -> io::Result<()> {
        self.uffd
            .register_with_mode(start.cast(), len, RegisterMode::MISSING | RegisterMode::WRITE_PROTECT)
            .map_err(crate_error_to_io)?;
        Ok(())
    }

    pub fn raw_fd(&self) -> i32 {
        self.uffd.as_raw_fd()
    }

    /// Reads every pending fault into `out` (none if nothing is pending), through `events`.
    pub fn read_faults(&self, events: &mut FaultEvents, out: &mut Vec<Fault>) -> io::Result<()> {
        for event in self.uffd.read_events(&mut events.0).map_err(crate_error_to_io)? {
            if let Event::Pagefault { kind, rw, addr, .. } = event.map_err(crate_error_to_io)? {
                out.push(Fault {
                    addr: addr as usize,
                    write: rw == ReadWrite::Write,
                    write_protected: kind == FaultKind::WriteProtected,
                });
            }
        }
        Ok(())
    }

    /// Installs `len` bytes from `src` at the missing range `dst` and wakes its waiters
    /// (`UFFDIO_COPY`); with `write_protect` the new pages are mapped write-protected.
    ///
    /// An error of kind `AlreadyExists` means the range was already populated.
    ///
    /// # Safety
    /// `src` must be readable for `len` bytes and `dst..dst+len` must lie in the registered mapping.
    pub unsafe fn install(&self, src: *const u8, dst: *mut u8, len: usize, write_protect: bool) -> io::Result<()> {
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
                return Ok(());
            }
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                // Interrupted part-way: continue after the bytes already copied.
                Some(libc::EAGAIN) if copy.copy > 0 => {
                    let done = copy.copy as u64;
                    copy.dst += done;
                    copy.src += done;
                    copy.len -= done;
                    copy.copy = 0;
                }
                Some(libc::EAGAIN) => continue,
                _ => return Err(error),
            }
        }
    }

    /// Moves the pages of `[src, src+len)` to the missing range at `dst` without copying them
    /// (`UFFDIO_MOVE`); `src` is then missing. With `wake`, threads waiting on `dst` retry.
    ///
    /// An error of kind [`MoveError::NotMoved`] means nothing was moved: `EEXIST` if `dst` was
    /// populated, `EBUSY` if a page is pinned or shared (e.g. by a transport that registered
    /// it); the caller copies instead. [`MoveError::PartWay`] would leave one page in two
    /// places: the caller cannot go on.
    ///
    /// # Safety
    /// Both ranges must lie in registered mappings of this process and be page-aligned; nobody
    /// may need `src`'s contents at its old address.
    pub unsafe fn move_pages(&self, src: *mut u8, dst: *mut u8, len: usize, wake: bool) -> Result<(), MoveError> {
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
                    return Err(MoveError::PartWay(error));
                }
                return Err(MoveError::NotMoved(error));
            }
            // Interrupted part-way: continue after the bytes already moved.
            request.dst += done;
            request.src += done;
            request.len -= done;
            request.moved = 0;
        }
    }

    /// Write-protects a resident range: later writes fault to the pager.
    pub fn protect(&self, start: *mut u8, len: usize) -> io::Result<()> {
        self.uffd.write_protect(start.cast::<c_void>(), len).map_err(crate_error_to_io)
    }

    /// Lifts write protection from a resident range and wakes the writers.
    pub fn unprotect(&self, start: *mut u8, len: usize) -> io::Result<()> {
        self.uffd.remove_write_protection(start.cast::<c_void>(), len, true).map_err(crate_error_to_io)
    }

    /// Wakes threads waiting on a range so that they retry their access.
    pub fn wake(&self, start: *mut u8, len: usize) -> io::Result<()> {
        self.uffd.wake(start.cast::<c_void>(), len).map_err(crate_error_to_io)
    }
}

/// Why [`FaultFd::move_pages`] failed.
#[derive(Debug)]
pub enum MoveError {
    /// Nothing was moved.
    NotMoved(io::Error),
    /// Some bytes were moved and others not: a page is now in two places.
    PartWay(io::Error),
}

/// The buffer that [`FaultFd::read_faults`] reads the kernel's events into (the pager's own).
pub struct FaultEvents(EventBuffer);

impl FaultEvents {
    pub fn new() -> Self {
        FaultEvents(EventBuffer::new(64))
    }
}
