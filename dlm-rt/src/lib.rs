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
- `runtime` starts the job: under `mpirun` rank 0 runs the program and the other ranks become
  memory servers (`server`); started alone, the program spawns its servers (`transport`, hosts
  from the memfile). It then hands the DLM range to the `pager` thread.
- `heap` hands out page-aligned blocks within the limit (local budget + servers' capacity);
  `small` packs smaller blocks of C programs densely into DLM pages (mimalloc over an arena at
  the end of the DLM range, its pages charged against the same limit).
- `config`, `memfile` and `size` read the options; `sys` holds every raw syscall and ioctl;
  `probe` tries the pager's kernel features on a small range (for `dlm doctor`).
- The C ABI (`dlm_startup`, `dlm_alloc`, `dlm_free`, `dlm_advise`, `dlm_shutdown`,
  `dlm_get_stats`) lives in `capi` and `include/dlm.h`; `boxed`, `vec` and `statics` are the
  Rust API, with [`advise`].
- `staging` holds the pager's staging slots (pages received and moved through them), `stats`
  the counters, `error` the typed errors, `ceiling` the benchmark's raw fault-path ceiling, and
  `rewritten` the hooks that code rewritten by dlmcc calls, `malloc` what the allocation
  functions of a dlmcc-built program do with a pointer (DLM blocks go to DLM wherever they are
  freed), and `held` what its I/O functions (and [`read_exact`], [`write_all`]) do when only
  user-space faults reach the pager: hold the buffer's pages resident for the kernel.
*/

mod boxed;
mod capi;
pub mod ceiling;
pub mod config;
mod error;
mod heap;
mod held;
mod malloc;
pub mod memfile;
mod pager;
pub mod probe;
mod rewritten;
mod runtime;
mod server;
pub mod size;
mod small;
mod staging;
mod statics;
mod stats;
mod sys;
mod transport;
mod vec;

pub use boxed::DlmBox;
/// Element types of zero-initialized DLM arrays must be valid as all zero bytes.
pub use bytemuck::Zeroable;
pub use config::ConfigError;
pub use dlm_macros::{dlm, main};
pub use error::Error;
pub use held::{read_exact, write_all};
pub use memfile::MemfileError;
pub use pager::Advice;
pub use size::SizeError;
pub use statics::{DlmReadGuard, DlmStatic, DlmWriteGuard};
pub use stats::Stats;
pub use vec::DlmVec;

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
    start().unwrap_or_else(|e| runtime::exit_with(&e))
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
