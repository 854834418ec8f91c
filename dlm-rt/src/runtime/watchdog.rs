//! [`Watchdog`]: ends the process with a message unless a blocking MPI call it guards returns
//! in time (`MPI_Comm_spawn` onto a host that resolves but cannot start processes, or
//! `MPI_Comm_connect` to a port nobody accepts on, would wait forever).

use crate::sys;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::time::Duration;

/// Armed until dropped.
pub struct Watchdog(Option<Sender<()>>);

impl Watchdog {
    /// Ends the process with exit status 1 and `message` if not dropped within `limit`.
    pub fn start(limit: Duration, message: String) -> Self {
        let (done, wait) = channel::<()>();
        std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = wait.recv_timeout(limit) {
                sys::exit_now(1, &message);
            }
        });
        Watchdog(Some(done))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            let _ = done.send(());
        }
    }
}
