//! Descriptors the pager waits on: an eventfd that wakes it, pidfds of processes it watches,
//! and `poll` over them.

use super::exit::write_syscall;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

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
