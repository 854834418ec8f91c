//! The commands of the program's threads (see `mailbox`): freeing, adopting static arrays,
//! advice, holds, moves off a draining pool server, shutdown.

use super::mailbox::{Advice, Command, Refusal};
use super::page::{Page, State};
use super::Pager;
use crate::transport::Request;

impl Pager {
    /// Carries out the posted commands; true after [`Command::Shutdown`].
    pub(super) fn serve_commands(&mut self) -> bool {
        for (command, done) in self.mailbox.take() {
            let answer = match command {
                Command::Free { offset, len } => {
                    self.free(offset, len);
                    Ok(())
                }
                Command::AddStatic { start, len, keep_contents } => self.add_static(start, len, keep_contents),
                Command::Advise { start, len, advice } => self.advise(start, len, advice),
                Command::Hold { start, len, access } => {
                    self.hold(start, len, access);
                    Ok(())
                }
                Command::Release { start, len } => {
                    self.release(start, len);
                    Ok(())
                }
                Command::Evacuate { from, to, admission } => {
                    // Answered when the pages have moved (`evacuate`).
                    self.start_evacuation(from, to, admission, done);
                    continue;
                }
                Command::Shutdown => {
                    self.drain_transfers();
                    #[cfg(feature = "bench")]
                    self.trace.write();
                    self.job.shut_down_servers();
                    let _ = done.send(Ok(()));
                    return true;
                }
            };
            let _ = done.send(answer);
        }
        false
    }

    /// Forgets the pages of `[offset, offset+len)` of the DLM range, here and on the servers.
    fn free(&mut self, offset: usize, len: usize) {
        let first = offset / self.page_size;
        let range = first..first + len / self.page_size;
        self.finish_cleanings(|i| range.contains(&i));
        self.drop_read_aheads(|i, _| range.contains(&i));
        self.streams.forget(range.clone());
        for index in range.clone() {
            let page = self.pages[index];
            if let Some(home) = page.home() {
                let at = self.home_address(home);
                self.job.send(home.server as usize, Request::Free { at, len: self.page_size as u64 });
                self.slots.give_back(home.server as usize, home.slot);
            }
            self.resident_bytes -= match page.state {
                State::Partial => self.partial.remove(&(index as u32)).map_or(0, |b| b.count * self.block),
                state if state.is_resident() => self.span(index).len,
                _ => 0,
            };
            self.pages[index] = Page::default();
        }
        self.resident.retain(|&i| !range.contains(&(i as usize)));
        self.region.discard(offset, len);
        self.counters.set_resident(self.resident_bytes as u64);
    }

    /// Records `advice` for `[start, start+len)` and acts on will-need and don't-need now;
    /// `Err` if the range does not start in DLM memory.
    fn advise(&mut self, start: usize, len: usize, advice: Advice) -> Result<(), Refusal> {
        let first = self.page_at(start).ok_or(Refusal::NotDlmMemory { addr: start })?;
        let end = start.saturating_add(len);
        let last = self.page_at(end - 1).filter(|&l| l >= first).unwrap_or(first);
        self.advice.retain(|&(s, e, _)| s < start || e > end);
        if advice != Advice::Normal {
            self.advice.push((start, end, advice));
        }
        match advice {
            Advice::WillNeed => {
                self.drop_stale_read_aheads();
                for index in first..=last {
                    if !self.read_ahead(index) {
                        break;
                    }
                }
            }
            Advice::DontNeed => {
                for index in first..=last {
                    if self.pages[index].state.is_resident() && self.can_evict(index, None) {
                        self.resident.retain(|&i| i as usize != index);
                        self.evict(index, None);
                    }
                }
            }
            Advice::Normal | Advice::Sequential | Advice::Random => {}
        }
        Ok(())
    }

    pub(super) fn advice_at(&self, addr: usize) -> Advice {
        self.advice.iter().rev().find(|(s, e, _)| (*s..*e).contains(&addr)).map_or(Advice::Normal, |a| a.2)
    }
}
