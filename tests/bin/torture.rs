//! torture: long random sequences of DLM operations checked against a shadow copy in ordinary
//! memory. `torture [--seed S] [--ops N] [--threads T] [--batch B]`; prints its seed first, so
//! a failure can be replayed (each thread's operations follow from the seed alone).
//!
//! Operations: allocate (must read as zeros; may be refused at capacity), free, reallocate
//! (copy into a new block), write a range, read a range, memcpy between DLM blocks (and
//! overlapping within one), `write(2)` of DLM memory to a file and `pread(2)` back into DLM
//! memory. Besides its own blocks, every thread owns interleaved 64-byte stripes of one shared
//! block, so threads fault on the same pages at once. Everything is compared after each batch.

use dlm::DlmBox;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const MAX_BLOCKS: usize = 6;
const STRIPE: usize = 64;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// Block sizes: mostly small, sometimes whole pages, sometimes megabytes.
    fn size(&mut self) -> usize {
        match self.below(4) {
            0 => 1 + self.below(5000),
            1 => (1 + self.below(16)) * 65536,
            _ => 1 + self.below(3 << 20),
        }
    }
}

struct Block {
    dlm: DlmBox<[u8]>,
    shadow: Vec<u8>,
}

#[derive(Default)]
struct Counts {
    ops: AtomicU64,
    refused: AtomicU64,
    verified: AtomicU64,
}

fn fail(seed: u64, thread: usize, op: u64, what: &str) -> ! {
    eprintln!("torture FAILED: seed {seed} thread {thread} operation {op}: {what}");
    std::process::exit(1)
}

fn verify(blocks: &[Block], seed: u64, thread: usize, op: u64, counts: &Counts) {
    for (b, block) in blocks.iter().enumerate() {
        if let Some(i) = (0..block.shadow.len()).find(|&i| block.dlm[i] != block.shadow[i]) {
            fail(seed, thread, op, &format!("block {b} byte {i}: expected {} found {}", block.shadow[i], block.dlm[i]));
        }
        counts.verified.fetch_add(block.shadow.len() as u64, Relaxed);
    }
}

/// A range [start, start+len) inside a block of `size` bytes.
fn range(rng: &mut Rng, size: usize) -> (usize, usize) {
    let start = rng.below(size);
    (start, 1 + rng.below(size - start))
}

struct Shared {
    ptr: *mut u8,
    len: usize,
}
// SAFETY: threads touch disjoint stripes of the shared block.
unsafe impl Sync for Shared {}

fn worker(seed: u64, thread: usize, threads: usize, ops: u64, batch: u64, shared: &Shared, counts: &Counts) {
    let mut rng = Rng(seed ^ (thread as u64 + 1).wrapping_mul(0x9e3779b97f4a7c15) | 1);
    let mut blocks: Vec<Block> = Vec::new();
    let mut stripes = vec![0u8; shared.len];
    let mut file = tempfile();
    let mine = |i: usize| (i / STRIPE) % threads == thread;
    for op in 0..ops {
        match rng.below(9) {
            0 | 1 if blocks.len() < MAX_BLOCKS => {
                let size = rng.size();
                match DlmBox::<[u8]>::new_zeroed_slice(size) {
                    Ok(dlm) => {
                        if let Some(i) = dlm.iter().position(|&x| x != 0) {
                            fail(seed, thread, op, &format!("new block of {size} bytes has byte {i} = {}", dlm[i]));
                        }
                        blocks.push(Block { dlm, shadow: vec![0; size] });
                    }
                    Err(dlm::Error::OutOfMemory { .. }) => {
                        counts.refused.fetch_add(1, Relaxed);
                    }
                    Err(e) => fail(seed, thread, op, &format!("allocation failed: {e}")),
                }
            }
            2 if !blocks.is_empty() => {
                blocks.swap_remove(rng.below(blocks.len()));
            }
            3 if !blocks.is_empty() => {
                let b = rng.below(blocks.len());
                let size = rng.size();
                if let Ok(mut dlm) = DlmBox::<[u8]>::new_zeroed_slice(size) {
                    let keep = size.min(blocks[b].shadow.len());
                    dlm[..keep].copy_from_slice(&blocks[b].dlm[..keep]);
                    let mut shadow = std::mem::take(&mut blocks[b].shadow);
                    shadow.resize(size, 0);
                    blocks[b] = Block { dlm, shadow };
                }
            }
            4 if !blocks.is_empty() => {
                let b = rng.below(blocks.len());
                let (start, len) = range(&mut rng, blocks[b].shadow.len());
                let value = rng.next();
                for i in start..start + len {
                    let x = (value >> (8 * (i % 8))) as u8 ^ i as u8;
                    blocks[b].dlm[i] = x;
                    blocks[b].shadow[i] = x;
                }
            }
            5 if !blocks.is_empty() => {
                let b = rng.below(blocks.len());
                let (start, len) = range(&mut rng, blocks[b].shadow.len());
                if blocks[b].dlm[start..start + len] != blocks[b].shadow[start..start + len] {
                    fail(seed, thread, op, &format!("block {b} differs in {start}..{}", start + len));
                }
            }
            6 if blocks.len() >= 2 => {
                // memcpy between blocks, or memmove within one.
                let (s, d) = (rng.below(blocks.len()), rng.below(blocks.len()));
                let (from, len) = range(&mut rng, blocks[s].shadow.len());
                let len = len.min(blocks[d].shadow.len());
                let to = rng.below(blocks[d].shadow.len() - len + 1);
                if s == d {
                    blocks[s].dlm.copy_within(from..from + len, to);
                    blocks[s].shadow.copy_within(from..from + len, to);
                } else {
                    let src: *const u8 = blocks[s].dlm.as_ptr();
                    // SAFETY: distinct blocks; both ranges are in bounds.
                    unsafe { std::ptr::copy_nonoverlapping(src.add(from), blocks[d].dlm.as_mut_ptr().add(to), len) };
                    let data = blocks[s].shadow[from..from + len].to_vec();
                    blocks[d].shadow[to..to + len].copy_from_slice(&data);
                }
            }
            7 if !blocks.is_empty() => {
                // The kernel reads DLM memory (write) and writes into it (pread).
                let (s, d) = (rng.below(blocks.len()), rng.below(blocks.len()));
                let (from, len) = range(&mut rng, blocks[s].shadow.len());
                let len = len.min(blocks[d].shadow.len());
                let to = rng.below(blocks[d].shadow.len() - len + 1);
                let fd = file.as_raw_fd();
                // SAFETY: the ranges are in bounds; the file is ours.
                unsafe {
                    libc::ftruncate(fd, 0);
                    let written = libc::pwrite(fd, blocks[s].dlm.as_ptr().add(from).cast(), len, 0);
                    let read = libc::pread(fd, blocks[d].dlm.as_mut_ptr().add(to).cast(), len, 0);
                    if written != len as isize || read != len as isize {
                        fail(seed, thread, op, &format!("pwrite/pread of {len} bytes gave {written}/{read}"));
                    }
                }
                let data = blocks[s].shadow[from..from + len].to_vec();
                blocks[d].shadow[to..to + len].copy_from_slice(&data);
            }
            _ => {
                // This thread's stripes of the shared block.
                let value = rng.next() as u8;
                let start = rng.below(shared.len);
                for i in (start..shared.len.min(start + 65536)).filter(|&i| mine(i)) {
                    // SAFETY: i is in bounds and only this thread touches its stripes.
                    unsafe { shared.ptr.add(i).write_volatile(value ^ i as u8) };
                    stripes[i] = value ^ i as u8;
                }
            }
        }
        counts.ops.fetch_add(1, Relaxed);
        if op % batch == batch - 1 || op == ops - 1 {
            verify(&blocks, seed, thread, op, counts);
            for i in (0..shared.len).filter(|&i| mine(i)) {
                // SAFETY: as above.
                let found = unsafe { shared.ptr.add(i).read_volatile() };
                if found != stripes[i] {
                    fail(seed, thread, op, &format!("shared byte {i}: expected {} found {found}", stripes[i]));
                }
            }
        }
    }
    file.flush().ok();
}

fn tempfile() -> std::fs::File {
    let path =
        std::env::temp_dir().join(format!("dlm-torture-{}-{:?}", std::process::id(), std::thread::current().id()));
    let file =
        std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).expect("temp file");
    let _ = std::fs::remove_file(&path);
    file
}

fn main() {
    let dlm = dlm::start_or_exit();
    let args = dlm.args().to_vec();
    let value = |name: &str| {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse::<u64>().ok())
    };
    let seed = value("--seed").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    }) | 1;
    let ops = value("--ops").unwrap_or(2000);
    let threads = value("--threads").unwrap_or(1).max(1) as usize;
    let batch = value("--batch").unwrap_or(50).max(1);
    println!("torture seed {seed} threads {threads} ops {ops} (replay: --seed {seed})");
    std::io::stdout().flush().ok();
    let mut shared_block = DlmBox::<[u8]>::new_zeroed_slice(2 << 20).expect("shared block");
    let shared = Shared { ptr: shared_block.as_mut_ptr(), len: shared_block.len() };
    let counts = Counts::default();
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let (shared, counts) = (&shared, &counts);
            scope.spawn(move || worker(seed, thread, threads, ops, batch, shared, counts));
        }
    });
    drop(shared_block);
    let stats = dlm.stats();
    println!(
        "torture ok: {} operations, {} allocations refused at capacity, {} bytes verified, {} pages evicted, {} bytes written back, {} pages moved, {} blocks fetched",
        counts.ops.load(Relaxed),
        counts.refused.load(Relaxed),
        counts.verified.load(Relaxed),
        stats.pages_evicted,
        stats.bytes_written_back,
        stats.pages_moved,
        stats.blocks_fetched
    );
}
