//! This host: its name, page size, memory, swap and transparent huge pages, as `/proc` and
//! `/sys` tell them.

use std::io;

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
    kib_field(meminfo, "MemAvailable")
}

/// The bytes on the `NAME: N kB` line of a `/proc/meminfo` or `/proc/PID/status` text.
pub fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

/// The primary group of user `uid` (its password entry's), if it has an entry.
pub fn primary_group(uid: u32) -> Option<u32> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero `passwd` (null pointers, zero ids) is a valid value for getpwuid_r to fill.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: `entry` and `found` are locals and `buf` a live buffer of `buf.len()` bytes.
    let rc = unsafe { libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
    (rc == 0 && !found.is_null()).then_some(entry.pw_gid)
}

/// Lets this thread's short sleeps end on time (the default slack is 50 µs).
pub fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer argument.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
}

/// The size of a transparent huge page (a PMD) on x86-64 and most 64-bit kernels.
pub const HUGE_PAGE: usize = 2 << 20;

/// Whether the kernel gives transparent huge pages to ranges advised `MADV_HUGEPAGE`.
pub fn huge_pages_available() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|mode| mode.contains("[always]") || mode.contains("[madvise]"))
}

/// Whether the machine has swap on (`/proc/swaps` lists a device or file). The kernel may then
/// swap DLM pages out behind the pager, and moving swapped-out pages with `UFFDIO_MOVE` is not
/// reliable (a move was seen to report a swap entry it had moved as not moved).
pub fn swap_is_on() -> bool {
    std::fs::read_to_string("/proc/swaps").is_ok_and(|swaps| swaps.lines().count() > 1)
}
