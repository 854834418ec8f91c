//! [`Tenant`]: one compute process as a server serves it — its store, the transfers in flight
//! and when it was last heard from — and the ways it ends ([`Ended`]). A job's own server and a
//! pool's worker each serve one tenant.
//!
//! Transfers overlap: a tenant starts each one and takes the next request at once, so a page
//! being written back and pages being fetched cross a network link in both directions together.
//! Only transfers that touch the same bytes of the store wait for each other. Write-backs'
//! data is taken in when no request waits: MPI holds a small message that arrived before its
//! receive, so a Get queued behind a partial page's hundreds of written blocks is answered
//! first instead of after all of them.

use crate::sys::Mapping;
use crate::transport::{Job, Request, Run, Transfer, SILENCE_LIMIT};
use std::collections::VecDeque;
use std::ops::Range;
use std::time::{Duration, Instant};

/// After this long without a request the server stops spinning and sleeps between polls:
/// MPI's blocking receive would keep a core busy that the compute process needs.
const SPIN: Duration = Duration::from_micros(100);
/// How many waiting write-backs' receives are posted per step without a request (each copies
/// its data in, a block's at least, while a Get arriving meanwhile waits).
const RECEIVES_PER_STEP: usize = 8;
/// After this long idle the sleeps between polls grow from 20 µs to 500 µs.
const SHORT_IDLE: Duration = Duration::from_millis(50);

/// Why a tenant is served no more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// It sent [`Request::Shutdown`]; every transfer has finished.
    Left,
    /// A transfer with it failed (MPI error): its process or its link is gone.
    Lost(i32),
    /// Not heard from for [`SILENCE_LIMIT`].
    Silent,
    /// It asked for bytes outside its store (a bug, or a forged request).
    OutOfBounds { at: u64, len: u64, capacity: u64 },
    /// It sent runs of a [`Request::PutRuns`] that are not ascending and disjoint.
    Unordered { at: u64 },
}

/// Which way a transfer moves the store's bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// A Put's data arriving: the bytes are being written.
    Receiving,
    /// A Get's answer leaving: the bytes are being read.
    Sending,
}

struct InFlight {
    transfer: Transfer,
    bytes: Range<usize>,
    direction: Direction,
}

/// One compute process being served.
pub struct Tenant {
    pub job: Job,
    store: Mapping,
    capacity: u64,
    in_flight: Vec<InFlight>,
    /// Bytes of `Put`s and `PutRuns` whose data is announced but not received yet, in request
    /// order (the order in which their data arrives).
    waiting: VecDeque<Range<usize>>,
    /// When the compute process was last heard from: a request, or a transfer that moved.
    last_heard: Instant,
}

impl Tenant {
    /// A tenant with a store of `capacity` bytes (at least `page` reserved).
    pub fn new(job: Job, capacity: u64, page: usize) -> std::io::Result<Tenant> {
        let store = Mapping::reserve((capacity as usize).max(page))?;
        Ok(Tenant { job, store, capacity, in_flight: Vec::new(), waiting: VecDeque::new(), last_heard: Instant::now() })
    }

    /// Whether a transfer is in flight or waits (the server then pauses briefly between polls).
    pub fn busy(&self) -> bool {
        !self.in_flight.is_empty() || !self.waiting.is_empty()
    }

    /// How long since the compute process was last heard from.
    pub fn quiet(&self) -> Duration {
        self.last_heard.elapsed()
    }

    /// Progresses the transfers and starts what the next request asks, if one has arrived, or
    /// else takes in some waiting write-backs; true if it did either.
    pub fn step(&mut self) -> Result<bool, Ended> {
        self.progress()?;
        let Some(request) = self.job.poll_request().map_err(|lost| Ended::Lost(lost.mpi_error))? else {
            if !self.waiting.is_empty() {
                self.receive_waiting(RECEIVES_PER_STEP)?;
                return Ok(true);
            }
            if self.quiet() > SILENCE_LIMIT {
                return Err(Ended::Silent);
            }
            return Ok(false);
        };
        self.last_heard = Instant::now();
        self.serve(request)?;
        Ok(true)
    }

    /// Starts what `request` asks; [`Ended::Left`] after [`Request::Shutdown`].
    fn serve(&mut self, request: Request) -> Result<(), Ended> {
        match request {
            Request::Put { at, len } => {
                let bytes = self.bytes(at, len)?;
                // Concurrent receives into the same bytes, or a send of them, would mix data.
                self.finish_overlapping(&bytes, |_| true)?;
                self.waiting.push_back(bytes);
            }
            Request::PutRuns { at, runs } => {
                let runs = self.job.receive_runs(runs).map_err(|lost| Ended::Lost(lost.mpi_error))?;
                let covered = self.runs_bytes(at, &runs)?;
                self.finish_overlapping(&covered, |_| true)?;
                let runs = runs.iter().map(|&[offset, len]| (at + offset) as usize..(at + offset + len) as usize);
                self.waiting.extend(runs);
            }
            Request::Get { at, len } => {
                let bytes = self.bytes(at, len)?;
                // A Get after a Put of the same bytes must answer with the Put's data.
                self.finish_overlapping(&bytes, |d| d == Direction::Receiving)?;
                // SAFETY: the bytes lie inside the store and nothing writes them until this
                // send is finished (a later Put of them waits for it).
                let transfer = unsafe { self.job.start_reply(self.store.base().add(bytes.start), bytes.len()) };
                let transfer = transfer.map_err(|lost| Ended::Lost(lost.mpi_error))?;
                self.in_flight.push(InFlight { transfer, bytes, direction: Direction::Sending });
            }
            Request::Free { at, len } => {
                let bytes = self.bytes(at, len)?;
                self.finish_overlapping(&bytes, |_| true)?;
                self.store.discard(bytes.start, bytes.len());
            }
            Request::KeepAlive => {}
            Request::Shutdown => {
                self.finish_overlapping(&(0..usize::MAX), |_| true)?;
                return Err(Ended::Left);
            }
        }
        Ok(())
    }

    /// The store's bytes that a request names.
    fn bytes(&self, at: u64, len: u64) -> Result<Range<usize>, Ended> {
        if at.checked_add(len).is_none_or(|end| end > self.capacity) {
            return Err(Ended::OutOfBounds { at, len, capacity: self.capacity });
        }
        Ok(at as usize..(at + len) as usize)
    }

    /// The store's bytes from the first to the end of the last of `runs` at `at`, each checked
    /// against the capacity, and the runs ascending and disjoint.
    fn runs_bytes(&self, at: u64, runs: &[Run]) -> Result<Range<usize>, Ended> {
        let mut end = 0;
        for &[offset, len] in runs {
            if offset < end {
                return Err(Ended::Unordered { at });
            }
            let start =
                at.checked_add(offset).ok_or(Ended::OutOfBounds { at, len: offset, capacity: self.capacity })?;
            self.bytes(start, len)?;
            end = offset + len;
        }
        let first = runs.first().map_or(0, |&[offset, _]| offset);
        Ok((at + first) as usize..(at + end) as usize)
    }

    /// Posts the receives of the oldest `count` waiting write-backs, in the order their data
    /// comes.
    fn receive_waiting(&mut self, count: usize) -> Result<(), Ended> {
        for _ in 0..count {
            let Some(bytes) = self.waiting.pop_front() else { break };
            // SAFETY: the bytes lie inside the store (checked with their request) and no other
            // transfer uses them: one that overlapped was finished before they were queued, and
            // later ones wait for this one.
            let transfer = unsafe { self.job.start_receive_put(self.store.base().add(bytes.start), bytes.len()) };
            let transfer = transfer.map_err(|lost| Ended::Lost(lost.mpi_error))?;
            self.in_flight.push(InFlight { transfer, bytes, direction: Direction::Receiving });
        }
        Ok(())
    }

    /// Drops the transfers that have finished.
    fn progress(&mut self) -> Result<(), Ended> {
        let before = self.in_flight.len();
        let job = &self.job;
        let mut failed = None;
        self.in_flight.retain_mut(|f| match job.test(&mut f.transfer) {
            Ok(done) => !done,
            Err(lost) => {
                failed = Some(lost.mpi_error);
                true
            }
        });
        if let Some(mpi_error) = failed {
            return Err(Ended::Lost(mpi_error));
        }
        if self.in_flight.len() < before {
            self.last_heard = Instant::now();
        }
        Ok(())
    }

    /// Waits until no transfer in `direction`s that `matches` overlaps `bytes`, receiving the
    /// waiting write-backs first if one of them does (every waiting one is a receive).
    fn finish_overlapping(&mut self, bytes: &Range<usize>, matches: impl Fn(Direction) -> bool) -> Result<(), Ended> {
        let overlaps = |other: &Range<usize>| other.start < bytes.end && bytes.start < other.end;
        if matches(Direction::Receiving) && self.waiting.iter().any(overlaps) {
            self.receive_waiting(self.waiting.len())?;
        }
        let blocking = |f: &InFlight| matches(f.direction) && f.bytes.start < bytes.end && bytes.start < f.bytes.end;
        while self.in_flight.iter().any(blocking) {
            self.progress()?;
            if self.quiet() > SILENCE_LIMIT {
                return Err(Ended::Silent);
            }
            pause(true, self.quiet());
        }
        Ok(())
    }
}

/// One pause between polls. While transfers are in flight it sleeps 20 µs between polls (the
/// kernel's socket buffers carry the data meanwhile, and the core is free for the program,
/// other servers and the network stack: three servers on two cores fetched 1.7 times as fast as
/// when they yielded); idle, it spins right after a request and then sleeps longer the longer it
/// waits.
pub fn pause(busy: bool, quiet: Duration) {
    if busy || (SPIN..SHORT_IDLE).contains(&quiet) {
        std::thread::sleep(Duration::from_micros(20));
    } else if quiet < SPIN {
        std::hint::spin_loop();
    } else {
        std::thread::sleep(Duration::from_micros(500));
    }
}
