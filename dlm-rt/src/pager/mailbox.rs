//! How the program's threads hand work to the pager thread: a [`Command`] posted in the
//! [`Mailbox`], a doorbell (eventfd) rung, and the caller waits for the answer.

use super::hold::KernelAccess;
use crate::sys::EventFd;
use std::io;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Mutex;

/// What a program declared about a range of DLM memory (`dlm_advise`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advice {
    /// Back to the pager's own guesses.
    Normal,
    /// Read in order: whole pages, fetched ahead.
    Sequential,
    /// Touched at random: only the blocks touched, never fetched ahead.
    Random,
    /// Needed soon: fetch it now.
    WillNeed,
    /// Not needed for a while: evict it now (its data is kept).
    DontNeed,
}

/// Work the program's threads hand to the pager thread.
pub enum Command {
    /// Forget the pages of `[offset, offset+len)` of the DLM range, locally and on the servers.
    Free { offset: usize, len: usize },
    /// Serve `[start, start+len)`, a page-aligned static array, as DLM memory from now on; with
    /// `keep_contents` its current data is kept (else it reads as zeros).
    AddStatic { start: usize, len: usize, keep_contents: bool },
    /// Take `advice` for the DLM memory in `[start, start+len)`.
    Advise { start: usize, len: usize, advice: Advice },
    /// Bring `[start, start+len)` in and keep it resident until [`Command::Release`]: the
    /// kernel will access it (see [`hold`]).
    Hold { start: usize, len: usize, access: KernelAccess },
    /// End a [`Command::Hold`] of the same range.
    Release { start: usize, len: usize },
    /// Move every page held on server `from` to the servers `to` (a pool server is draining);
    /// answered when none is left there.
    Evacuate { from: usize, to: Vec<super::evacuate::Destination>, admission: crate::transport::Admission },
    /// Stop the servers and end the pager thread.
    Shutdown,
}

/// Where the pager answers a command: `Err` says why it could not be done.
pub(super) type Reply = SyncSender<Result<(), Refusal>>;

/// Why the pager could not carry out a command.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{addr:#x} is not DLM memory")]
    NotDlmMemory { addr: usize },
    #[error("{step} failed: {source}")]
    Adopt { step: &'static str, source: io::Error },
    #[error("pages cannot move off server {server}: no such server, or a move is already under way")]
    Evacuate { server: usize },
}

/// Where program threads post [`Command`]s; each call waits for the pager to finish it.
pub struct Mailbox {
    queue: Mutex<Vec<(Command, Reply)>>,
    pub(super) doorbell: EventFd,
}

impl Mailbox {
    pub fn new() -> std::io::Result<Self> {
        Ok(Mailbox { queue: Mutex::new(Vec::new()), doorbell: EventFd::new()? })
    }

    /// Posts `command` and returns the pager's answer (an error says why it could not be done).
    pub fn call(&self, command: Command) -> Result<(), Refusal> {
        let (done, wait) = sync_channel(1);
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).push((command, done));
        self.doorbell.notify();
        // A closed channel means the pager thread is gone, which only happens at shutdown.
        wait.recv().unwrap_or(Ok(()))
    }

    pub(super) fn take(&self) -> Vec<(Command, Reply)> {
        self.doorbell.drain();
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
