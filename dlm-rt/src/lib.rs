/*!
DLM (Distributed Large Memory) runtime: lets a sequential program use more memory than its
machine has. DLM memory is a range of the program's address space registered with Linux
`userfaultfd`; a pager thread serves each fault from memory servers that run as MPI ranks and
evicts pages when the local budget is used up.

# Rust programs: two attributes

```
use dlm::dlm;

const N: usize = 1024;

#[dlm]
static GRID: [[f64; N]; N]; // zero-initialized, lives in DLM memory

#[dlm::main]
fn main() {
    #[dlm]
    let mut big = vec![0u64; 1 << 20]; // a DLM-backed vector, derefs to [u64]
    #[dlm]
    let mut rows = [[0u32; 512]; 512]; // a DLM-backed array, never built on the stack

    GRID.write()[3][4] = 1.0; // guards deref to the array type
    let g = GRID.read();
    big[7] = 9;
    rows[1][2] = big[7] as u32 + g[3][4] as u32;
    assert_eq!(rows[1][2], 10);
}
```

`#[dlm::main]` starts DLM before the body and shuts it down after it (servers exit), under
`mpirun` or alone (it then spawns its servers); it works on `fn main() -> Result<…>` too.
`#[dlm] static` takes any array type with `Copy` elements that are valid as zero bytes
([`Zeroable`]), or `= CONST_INIT`. Two live write guards panic instead of aliasing.
Without the attributes: [`start`] gives a guard, [`DlmBox`] and [`DlmVec`] allocate.

# How the parts fit
Each folder is one concern, and dependencies run one way:
`sys` → `transport` → `server` / `pager` → `runtime` → `abi` (C) and `api` (Rust).

- `sys`: every raw system call and ioctl, behind owning types (mappings, userfaultfd, fds,
  signals, /proc, the exit policy).
- `config`: the `DLM_*` options, the options after `--`, and the memfile.
- `transport`: MPI: launch (under `mpirun`, or a singleton that spawns its servers), the page
  protocol, and knowing that the other side is alive.
- `server`: the memory server's loop and its store.
- `pager`: the thread that serves faults and keeps the budget (fetch, evict, staging, holds).
- `heap`: the layout and accounting of the DLM range (big blocks, the small-block arena).
- `runtime`: DLM's state in this process: start (named steps), shutdown, holds in user-only
  mode, allocation within the limit, the live statistics' writer thread (`DLM_STATS_LIVE`).
- `abi`: the C ABI (`include/dlm.h`), rewritten code's hooks, allocation routing by address,
  the small-block heap (mimalloc), the interposed C functions.
- `api`: the Rust API ([`DlmBox`], [`DlmVec`], `#[dlm]` statics, [`read_exact`], [`write_all`]).
- `error` the typed errors, `stats` the counters, [`Stats`] and the live line, `probe` the pager's kernel
  features tried on a small range (for `dlm doctor`); `bench` (feature `bench`) the
  benchmark's raw fault-path ceiling.
*/

mod abi;
mod api;
#[cfg(feature = "bench")]
pub mod bench;
pub mod config;
mod error;
mod heap;
mod pager;
pub mod probe;
mod runtime;
pub mod server;
mod stats;
mod sys;
mod transport;

pub use api::{read_exact, write_all, DlmBox, DlmReadGuard, DlmStatic, DlmVec, DlmWriteGuard};
/// Element types of zero-initialized DLM arrays must be valid as all zero bytes.
pub use bytemuck::Zeroable;
pub use config::memfile::MemfileError;
pub use config::ConfigError;
pub use dlm_macros::{dlm, main};
pub use dlm_units::SizeError;
pub use error::Error;
pub use pager::Advice;
pub use stats::Stats;

/// Used by the code that `#[dlm]` generates; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub fn allocation_failed(error: crate::Error) -> ! {
        panic!("DLM allocation failed: {error}")
    }

    /// Implemented by array types only: `#[dlm]` checks a static's type alias with it.
    #[diagnostic::on_unimplemented(
        message = "#[dlm] needs an array type such as `[[f64; N]; N]`, found `{Self}`",
        label = "not an array type"
    )]
    pub trait Array {}
    impl<T, const N: usize> Array for [T; N] {}
}

/// DLM is running while this guard lives; dropping it shuts DLM down (servers exit).
pub struct Dlm {
    args: Vec<String>,
}

/// Starts DLM with the options from the environment and from the arguments after `--`.
///
/// In memory-server processes (ranks 1.. under `mpirun`, or spawned servers) this never
/// returns. Options that do not parse give [`Error::Config`].
pub fn start() -> Result<Dlm, Error> {
    let argv: Vec<String> = std::env::args().collect();
    let started = runtime::start(&argv)?;
    runtime::shut_down_at_exit();
    Ok(Dlm { args: argv[..started.program_argc].to_vec() })
}

/// Like [`start`], but prints the error and exits (status 2; 0 for `-- --help`) on bad options.
pub fn start_or_exit() -> Dlm {
    start().unwrap_or_else(|e| e.exit())
}

/// Tells the pager how `data`, DLM memory, will be used (see [`Advice`]); an error if DLM is not
/// running or `data` is not DLM memory.
pub fn advise<T>(data: &[T], advice: Advice) -> Result<(), Error> {
    runtime::advise(data.as_ptr() as usize, size_of_val(data), advice)
}

impl Dlm {
    /// The program's own arguments (program name first), without the DLM options after `--`.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Paging statistics so far.
    pub fn stats(&self) -> Stats {
        runtime::stats().unwrap_or_default()
    }
}

impl Drop for Dlm {
    fn drop(&mut self) {
        runtime::shutdown();
    }
}
