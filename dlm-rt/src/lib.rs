/*!
DLM (Distributed Large Memory) runtime: lets a sequential program use more memory than its
machine has. DLM memory is a range of the program's address space registered with Linux
`userfaultfd`; a pager thread serves each fault from memory servers that run as MPI ranks and
evicts pages when the local budget is used up.

How the parts fit:
- [`runtime`](crate::start) starts the job: under `mpirun` rank 0 runs the program and the other
  ranks become memory servers (`server`); started alone, the program spawns its servers
  (`transport`, hosts from the memfile). It then hands the DLM range to the `pager` thread.
- `heap` hands out page-aligned blocks within the limit (local budget + servers' capacity).
- `config`, `memfile` and `size` read the options; `sys` holds every raw syscall and ioctl.
- The C ABI (`dlm_startup`, `dlm_alloc`, `dlm_free`, `dlm_shutdown`, `dlm_get_stats`) lives in
  `capi` and `include/dlm.h`; the Rust API is [`start`], [`DlmBox`] and [`DlmVec`].

```no_run
let dlm = dlm::start().expect("DLM options");
let mut grid = dlm::DlmBox::<[f64]>::new_zeroed_slice(1 << 28)?; // 2 GiB
grid[12345] = 1.0;
# Ok::<(), dlm::Error>(())
```
*/

mod boxed;
mod capi;
mod config;
mod error;
mod heap;
mod memfile;
mod pager;
mod runtime;
mod server;
mod size;
mod stats;
mod sys;
mod transport;
mod vec;

pub use boxed::DlmBox;
pub use config::ConfigError;
pub use error::Error;
pub use memfile::MemfileError;
pub use size::SizeError;
pub use stats::Stats;
pub use vec::DlmVec;

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
    Ok(Dlm { args: argv[..started.program_argc].to_vec() })
}

/// Like [`start`], but prints the error and exits (status 2; 0 for `-- --help`) on bad options.
pub fn start_or_exit() -> Dlm {
    start().unwrap_or_else(|e| runtime::exit_with(&e))
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
