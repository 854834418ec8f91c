//! Knowing that the other side is alive: the compute process watches the servers on its own
//! host (pidfds), gives up on one that does not answer within [`UNANSWERED_LIMIT`], and tells
//! every server it is alive each [`KEEP_ALIVE`]; a server gives up after [`SILENCE_LIMIT`].
//! Each way of losing a server ends the program with a message that names it.

use super::job::{Job, PeerLost, Watched};
use super::protocol::{Hello, Request};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// How long a transfer may wait without an answer before the server counts as unreachable: a
/// cut link or a hung host never answers, and MPI would wait forever. A 2 MiB page behind a
/// full pipeline of them takes well under a second even on a 1 Gbit/s link.
const UNANSWERED_LIMIT: Duration = Duration::from_secs(5);

/// How often the compute process tells its servers that it is alive (whether or not it is
/// paging: a request to one server says nothing to the others).
pub const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// How long a server waits without hearing from the compute process (no request, no transfer
/// finishing) before it counts the program as gone (killed, or behind a cut link) and exits
/// rather than hold its memory forever. A program stopped for longer (in a debugger, by
/// SIGSTOP) loses its servers.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(10);

impl Job {
    /// Polls `done` until it says true, checking `server` as [`Job::finish`] does.
    pub(super) fn wait_for(&self, server: usize, mut done: impl FnMut() -> bool) {
        let started = Instant::now();
        let mut polls = 0u32;
        while !done() {
            polls += 1;
            if polls.is_multiple_of(4096) {
                self.check_servers();
                if started.elapsed() > UNANSWERED_LIMIT {
                    self.unreachable(server);
                }
            }
        }
    }

    fn host_of(&self, server: usize) -> &str {
        self.peers.get(server).map_or("an unknown host", |(host, _)| host.as_str())
    }

    pub(super) fn failed(&self, server: usize, lost: PeerLost) -> ! {
        let pid = self.peers.get(server).map_or(0, |(_, pid)| *pid);
        crate::sys::exit_now(
            1,
            &format!(
                "memory server {} of {} (pid {pid} on {}) failed (MPI error {}: its process or host is gone, or the \
                 link to it broke); the DLM pages it held are lost, so the program cannot go on",
                server + 1,
                self.servers(),
                self.host_of(server),
                lost.mpi_error
            ),
        )
    }

    fn unreachable(&self, server: usize) -> ! {
        let host = self.host_of(server);
        crate::sys::exit_now(
            1,
            &format!(
                "memory server {} of {} on {host} has not answered for {} s: the host or the network link to it is down; \
                 the DLM pages it holds cannot be reached, so the program cannot go on",
                server + 1,
                self.servers(),
                UNANSWERED_LIMIT.as_secs()
            ),
        )
    }

    /// Remembers every server's host and starts watching the servers that run on this host
    /// (the compute process's side).
    pub fn watch_servers(&mut self, hellos: &[Hello]) {
        self.peers = hellos.iter().map(|h| (h.host.clone(), h.pid)).collect();
        let local = crate::sys::hostname();
        for (server, hello) in hellos.iter().enumerate().filter(|(_, h)| h.host == local) {
            if let Ok(exited) = crate::sys::watch_process(hello.pid) {
                self.watched.push(Watched { server, pid: hello.pid, host: hello.host.clone(), exited });
            }
        }
        self.watched.truncate(62);
        let hints =
            self.watched.iter().map(|w| (w.exited.as_raw_fd(), format!("dlm: {}\n", self.lost_message(w)))).collect();
        crate::sys::explain_abort(hints);
    }

    fn lost_message(&self, w: &Watched) -> String {
        format!(
            "memory server {} of {} (pid {} on {}) has exited; the DLM pages it held are lost, so the program cannot go on",
            w.server + 1,
            self.servers(),
            w.pid,
            w.host
        )
    }

    pub fn watched_fds(&self) -> impl Iterator<Item = i32> + '_ {
        self.watched.iter().map(|w| w.exited.as_raw_fd())
    }

    /// Ends the program with a message if a watched memory server has exited: the pages it
    /// held are gone, so continuing could only return wrong data or hang.
    pub fn check_servers(&self) {
        // No allocation: this runs while page transfers wait.
        let exited = crate::sys::poll_readable(self.watched_fds(), 0);
        if let Some(w) = self.watched.iter().enumerate().find(|(i, _)| exited >> i & 1 != 0).map(|(_, w)| w) {
            crate::sys::exit_now(1, &self.lost_message(w));
        }
    }

    /// Tells every server that the compute process is alive (see [`Request::KeepAlive`]) if
    /// [`KEEP_ALIVE`] has passed since the last time. Never after [`Job::shut_down_servers`].
    pub fn keep_alive_if_due(&self) {
        if self.last_keep_alive.get().elapsed() < KEEP_ALIVE {
            return;
        }
        for server in self.open_servers() {
            self.send(server, Request::KeepAlive);
        }
        self.last_keep_alive.set(Instant::now());
    }
}
