//! The exit policy: messages written to fd 2 without Rust's stderr lock, and ends of the
//! process that run no exit handlers (they would wait for MPI peers that are gone).

/// Writes `message` to fd 2 without Rust's stderr lock. Async-signal-safe.
pub(crate) fn write_stderr(message: &str) {
    write_stderr_bytes(message.as_bytes());
}

pub(super) fn write_stderr_bytes(message: &[u8]) {
    // SAFETY: reads a live buffer.
    unsafe { write_syscall(2, message.as_ptr(), message.len()) };
}

/// The `write` system call itself. In a program built by dlmcc, `write` is the interposed one
/// (`interpose_io.c`), which may look itself up with `dlsym` and take a lock: neither is
/// async-signal-safe, and the pager thread must not ask itself to hold memory.
///
/// # Safety
/// `buf` must be readable for `len` bytes.
pub(super) unsafe fn write_syscall(fd: libc::c_int, buf: *const u8, len: usize) {
    // SAFETY: the caller passes a readable buffer; write(2) is async-signal-safe.
    unsafe { libc::syscall(libc::SYS_write, fd, buf, len) };
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
