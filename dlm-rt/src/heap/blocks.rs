//! Hands out page-aligned blocks of the DLM address range and enforces the capacity limit
//! (local budget + the servers' capacity). Every block starts on a DLM page, so freeing a
//! block frees whole pages.

use crate::error::Error;
use std::collections::BTreeMap;

pub struct Heap {
    page_size: usize,
    /// Offset → length of every free extent, coalesced.
    free: BTreeMap<usize, usize>,
    /// Offset → length of every live block.
    live: BTreeMap<usize, usize>,
    in_use: u64,
    budget: u64,
    servers: u64,
}

impl Heap {
    pub fn new(range_len: usize, page_size: usize, budget: u64, servers: u64) -> Self {
        Heap { page_size, free: BTreeMap::from([(0, range_len)]), live: BTreeMap::new(), in_use: 0, budget, servers }
    }

    /// Bytes that may still be allocated.
    pub fn available(&self) -> u64 {
        (self.budget + self.servers).saturating_sub(self.in_use)
    }

    /// Returns the offset of a new block of at least `bytes` (one page for zero).
    pub fn allocate(&mut self, bytes: usize) -> Result<usize, Error> {
        let len = bytes.max(1).div_ceil(self.page_size).checked_mul(self.page_size);
        let available = self.available();
        let Some(len) = len.filter(|&l| l as u64 <= available) else {
            return Err(self.out_of_memory(bytes));
        };
        let Some((&offset, &extent)) = self.free.iter().find(|(_, &extent)| extent >= len) else {
            return Err(Error::Fragmented { requested: bytes as u64 });
        };
        self.free.remove(&offset);
        if extent > len {
            self.free.insert(offset + len, extent - len);
        }
        self.live.insert(offset, len);
        self.in_use += len as u64;
        Ok(offset)
    }

    fn out_of_memory(&self, requested: usize) -> Error {
        Error::OutOfMemory {
            requested: requested as u64,
            available: self.available(),
            budget: self.budget,
            servers: self.servers,
            in_use: self.in_use,
        }
    }

    /// Counts `bytes` of memory that is not one of its blocks (static arrays adopted by the pager,
    /// the small-block heap's pages) against the limit, in whole pages.
    pub fn reserve(&mut self, bytes: usize) -> Result<(), Error> {
        let len = bytes.div_ceil(self.page_size) as u64 * self.page_size as u64;
        if len > self.available() {
            return Err(self.out_of_memory(bytes));
        }
        self.in_use += len;
        Ok(())
    }

    /// The length of the live block at `offset`.
    pub fn block_len(&self, offset: usize) -> Option<usize> {
        self.live.get(&offset).copied()
    }

    /// Ends the block at `offset` and returns its length, or `None` if no block starts there.
    pub fn release(&mut self, offset: usize) -> Option<usize> {
        let len = self.live.remove(&offset)?;
        self.in_use -= len as u64;
        let (mut start, mut end) = (offset, offset + len);
        if let Some((&prev, &prev_len)) = self.free.range(..offset).next_back() {
            if prev + prev_len == start {
                self.free.remove(&prev);
                start = prev;
            }
        }
        if let Some(next_len) = self.free.remove(&end) {
            end += next_len;
        }
        self.free.insert(start, end - start);
        Some(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_whole_pages_and_coalesces() {
        let mut heap = Heap::new(16 * 4096, 4096, 4 * 4096, 4 * 4096);
        let a = heap.allocate(1).unwrap();
        let b = heap.allocate(4096 + 1).unwrap();
        assert_eq!((a, b), (0, 4096));
        assert_eq!(heap.available(), 5 * 4096);
        assert_eq!(heap.release(a), Some(4096));
        assert_eq!(heap.release(a), None);
        assert_eq!(heap.release(b), Some(8192));
        assert_eq!(heap.allocate(8 * 4096).unwrap(), 0);
    }

    #[test]
    fn refuses_more_than_budget_plus_servers() {
        let mut heap = Heap::new(64 * 4096, 4096, 4 * 4096, 4 * 4096);
        heap.allocate(6 * 4096).unwrap();
        let err = heap.allocate(3 * 4096).unwrap_err().to_string();
        assert!(err.contains("cannot allocate 12 KiB") && err.contains("only 8 KiB is available"), "{err}");
    }
}
