//! The memory server's side of the page protocol: requests polled, page data received for a
//! Put and sent for a Get, each transfer started without waiting.

use super::job::{Job, PeerLost, Transfer};
use super::protocol::{Header, Request, Run, TAG_DATA, TAG_REQUEST, TAG_RUNS};
use mpi::raw::AsRaw;

/// A server's one peer, its compute process.
const COMPUTE: usize = 0;

impl Job {
    /// Returns the next request if one has arrived.
    pub fn poll_request(&self) -> Result<Option<Request>, PeerLost> {
        use mpi::datatype::Equivalence;
        let check = |rc: i32| if rc == 0 { Ok(()) } else { Err(PeerLost { mpi_error: rc }) };
        let mut arrived = 0;
        let mut header: Header = [0; 3];
        let mut status = std::mem::MaybeUninit::uninit();
        let (comm, compute) = self.route(COMPUTE);
        // SAFETY: the out-pointers are live locals; the header buffer holds 3 u64 words.
        unsafe {
            check(mpi::ffi::MPI_Iprobe(compute, TAG_REQUEST, comm.as_raw(), &mut arrived, status.as_mut_ptr()))?;
            if arrived == 0 {
                return Ok(None);
            }
            check(mpi::ffi::MPI_Recv(
                header.as_mut_ptr().cast(),
                3,
                u64::equivalent_datatype().as_raw(),
                compute,
                TAG_REQUEST,
                comm.as_raw(),
                status.as_mut_ptr(),
            ))?;
        }
        match Request::decode(header) {
            Some(request) => Ok(Some(request)),
            None => crate::sys::fatal(&format!("memory server received a malformed request {header:?}")),
        }
    }

    /// Starts receiving the data of a [`Request::Put`] into `into` and returns at once. Puts'
    /// data arrives in the order of their requests, so every Put's receive is posted with it.
    ///
    /// # Safety
    /// `[into, into+len)` must stay writable and untouched until the transfer is finished.
    pub unsafe fn start_receive_put(&self, into: *mut u8, len: usize) -> Result<Transfer, PeerLost> {
        // SAFETY: the caller keeps the buffer valid; the arguments come from `post`.
        unsafe {
            self.post(COMPUTE, len, |count, datatype, rank, comm, request| {
                mpi::ffi::MPI_Irecv(into.cast(), count, datatype, rank, TAG_DATA, comm, request)
            })
        }
    }

    /// Receives the run list of a [`Request::PutRuns`] of `count` runs (sent right after it).
    pub fn receive_runs(&self, count: u64) -> Result<Vec<Run>, PeerLost> {
        use mpi::datatype::Equivalence;
        let words = count.checked_mul(2).and_then(|w| i32::try_from(w).ok());
        let Some(words) = words else {
            crate::sys::fatal(&format!("memory server received a PutRuns of {count} runs"));
        };
        let mut runs = vec![[0u64; 2]; count as usize];
        let (comm, compute) = self.route(COMPUTE);
        let mut status = std::mem::MaybeUninit::uninit();
        // SAFETY: the buffer holds `words` u64 words; the datatype matches them.
        let rc = unsafe {
            mpi::ffi::MPI_Recv(
                runs.as_mut_ptr().cast(),
                words,
                u64::equivalent_datatype().as_raw(),
                compute,
                TAG_RUNS,
                comm.as_raw(),
                status.as_mut_ptr(),
            )
        };
        if rc != 0 {
            return Err(PeerLost { mpi_error: rc });
        }
        Ok(runs)
    }

    /// Starts sending the answer to a [`Request::Get`] from `data` and returns at once.
    ///
    /// # Safety
    /// `[data, data+len)` must stay readable and unchanged until the transfer is finished.
    pub unsafe fn start_reply(&self, data: *const u8, len: usize) -> Result<Transfer, PeerLost> {
        // SAFETY: the caller keeps the buffer valid; the arguments come from `post`.
        unsafe {
            self.post(COMPUTE, len, |count, datatype, rank, comm, request| {
                mpi::ffi::MPI_Isend(data.cast(), count, datatype, rank, TAG_DATA, comm, request)
            })
        }
    }
}
