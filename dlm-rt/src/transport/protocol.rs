//! The page protocol's words: every request is a header of three words on [`TAG_REQUEST`];
//! page data travels separately on [`TAG_DATA`] so that it is sent from and received into page
//! memory without extra copies. MPI's non-overtaking rule (same source, same tag, same
//! communicator) keeps requests ordered.

/// The compute process's rank in the job communicator.
pub const COMPUTE_RANK: i32 = 0;
pub(super) const TAG_REQUEST: i32 = 11;
pub(super) const TAG_DATA: i32 = 12;
pub(super) const TAG_HELLO: i32 = 13;
pub(super) const TAG_SETUP: i32 = 14;
pub(super) const TAG_BYE: i32 = 15;
/// The run list of a [`Request::PutRuns`], sent right after its header.
pub(super) const TAG_RUNS: i32 = 16;

/// One run of a [`Request::PutRuns`]: `[offset from at, length]` in bytes.
pub type Run = [u64; 2];

/// What the compute process asks of a memory server. `at` and `len` are bytes of the server's
/// store: a whole DLM page is one slot, and a part of it (a block fetched on its own) is a
/// range inside its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Store `len` bytes at `at`; the data follows on [`TAG_DATA`].
    Put { at: u64, len: u64 },
    /// Store `runs` pieces at `at`: their list (`runs` [`Run`]s, ascending and disjoint) follows
    /// on [`TAG_RUNS`], then each run's data on [`TAG_DATA`], in order. The written blocks of a
    /// partial page go home with one request instead of one `Put` each.
    PutRuns { at: u64, runs: u64 },
    /// Send back `len` bytes from `at` on [`TAG_DATA`].
    Get { at: u64, len: u64 },
    /// Forget `len` bytes at `at` and give their memory back to the host.
    Free { at: u64, len: u64 },
    /// Answer on `TAG_BYE` and exit.
    Shutdown,
    /// Nothing to do: the compute process is alive (sent when it has been quiet for a while, so
    /// that a server can tell a quiet program from one that is gone).
    KeepAlive,
}

pub(super) type Header = [u64; 3];

impl Request {
    pub(super) fn encode(self) -> Header {
        match self {
            Request::Put { at, len } => [1, at, len],
            Request::Get { at, len } => [2, at, len],
            Request::Free { at, len } => [3, at, len],
            Request::Shutdown => [4, 0, 0],
            Request::KeepAlive => [5, 0, 0],
            Request::PutRuns { at, runs } => [6, at, runs],
        }
    }

    pub(super) fn decode(h: Header) -> Option<Self> {
        match h[0] {
            1 => Some(Request::Put { at: h[1], len: h[2] }),
            2 => Some(Request::Get { at: h[1], len: h[2] }),
            3 => Some(Request::Free { at: h[1], len: h[2] }),
            4 => Some(Request::Shutdown),
            5 => Some(Request::KeepAlive),
            6 => Some(Request::PutRuns { at: h[1], runs: h[2] }),
            _ => None,
        }
    }
}

/// What a server tells the compute process when the job starts.
#[derive(Debug, Clone)]
pub struct Hello {
    pub host: String,
    pub pid: u32,
    pub available_memory: u64,
}

/// What the compute process tells each server: the page size, how much it may hold, and the
/// compute process's pid if it runs on the server's host (0 otherwise), so that the server can
/// tell when the program has died.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub page_size: usize,
    pub capacity: u64,
    pub compute_pid: u32,
}
