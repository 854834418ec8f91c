//! Evacuating a draining pool server: the program's pages there are moved, while the program runs: the
//! new servers are connected and join the slots, the old one gets no new slot, and between
//! faults a few pages at a time are copied from the old server to slots on the new ones. When
//! none is left on it, the old server is let go and the caller's answer is sent.

use super::mailbox::{Refusal, Reply};
use super::page::Home;
use super::Pager;
use crate::transport::{Admission, Request, Setup};

/// How many pages one turn of the pager's loop moves: faults are served between turns.
const PAGES_PER_TURN: usize = 8;

/// A server the pages move to: its MPI port, host and the bytes the manager granted there.
#[derive(Debug, Clone)]
pub struct Destination {
    pub endpoint: String,
    pub host: String,
    pub bytes: u64,
}

/// An evacuation under way.
pub(super) struct Evacuation {
    from: usize,
    /// The next page to look at.
    next: usize,
    done: Reply,
}

impl Pager {
    /// Starts moving the pages held on `from` to `to`; `done` is answered when they are all
    /// there. The new servers are connected first (a refusal ends the program: the manager
    /// reserved that room for it).
    pub(super) fn start_evacuation(&mut self, from: usize, to: Vec<Destination>, admission: Admission, done: Reply) {
        if self.evacuation.is_some() || from >= self.job.servers() {
            let _ = done.send(Err(Refusal::Evacuate { server: from }));
            return;
        }
        for destination in to {
            let capacity = destination.bytes - destination.bytes % self.page_size as u64;
            let setup = |_: &crate::transport::Hello| Setup { page_size: self.page_size, capacity, compute_pid: 0 };
            let (server, _) = self.job.connect(&destination.endpoint, &admission, setup).unwrap_or_else(|e| {
                crate::sys::exit_now(
                    1,
                    &format!(
                        "cannot reach the pool's memory server on {} to move pages there: {e:?}",
                        destination.host
                    ),
                )
            });
            self.job.return_errors();
            let slots = (capacity / self.page_size as u64).min(u64::from(u32::MAX)) as u32;
            let added = self.slots.add_server(slots);
            debug_assert_eq!(added, server, "the slots and the job number servers alike");
            self.counters.held.name(added, &destination.host);
        }
        self.slots.retire(from);
        self.evacuation = Some(Evacuation { from, next: 0, done });
    }

    /// Whether pages are being evacuated (the loop then does not sleep).
    pub(super) fn is_evacuating(&self) -> bool {
        self.evacuation.is_some()
    }

    /// Moves the next few pages; at the end lets the old server go and answers.
    pub(super) fn evacuate_some(&mut self) {
        let Some(Evacuation { from, mut next, .. }) = self.evacuation else { return };
        let mut moved = 0;
        while next < self.pages.len() && moved < PAGES_PER_TURN {
            if self.pages[next].home().is_some_and(|h| h.server as usize == from) {
                self.evacuate_page(next, from);
                moved += 1;
            }
            next += 1;
        }
        if next < self.pages.len() {
            if let Some(evacuation) = &mut self.evacuation {
                evacuation.next = next;
            }
            return;
        }
        self.job.release_server(from);
        if let Some(evacuation) = self.evacuation.take() {
            let _ = evacuation.done.send(Ok(()));
        }
    }

    /// Copies page `index`'s slot on `from` to a new slot elsewhere and makes that its home.
    fn evacuate_page(&mut self, index: usize, from: usize) {
        // Its data must be at home and nothing in flight for it.
        self.finish_cleanings(|i| i == index);
        self.drop_read_aheads(|i, _| i == index);
        let Some(old) = self.pages[index].home().filter(|h| h.server as usize == from) else { return };
        let Some((server, slot)) = self.slots.take() else {
            crate::sys::fatal("no slot is left on the servers a draining server's pages move to")
        };
        let new = Home { server: server as u16, slot };
        let len = self.page_size;
        let mut buffer = std::mem::take(&mut self.evacuation_buffer);
        buffer.resize(len, 0);
        // SAFETY: the buffer lives and is untouched until each transfer is finished here.
        unsafe {
            let mut get = self.job.start_get(from, self.home_address(old), buffer.as_mut_ptr(), len);
            self.job.finish(&mut get);
            self.job.send(server, Request::Put { at: self.home_address(new), len: len as u64 });
            let mut put = self.job.start_send_data(server, buffer.as_ptr(), len);
            self.job.finish(&mut put);
        }
        self.evacuation_buffer = buffer;
        self.pages[index].set_home(Some(new));
        self.slots.give_back(from, old.slot);
    }
}
