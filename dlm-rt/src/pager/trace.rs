//! The fault trace for the benchmark (feature `bench`): with `DLMBENCH_FAULT_TRACE=PATH` the
//! pager records the page of every missing fault it serves and writes them at shutdown, one
//! little-endian `u32` page index each. `bench/loops.py` computes from it the traffic of the
//! optimal (Belady) replacement, which DLM's own traffic is compared against. The variable
//! does not start with `DLM_`, so builds without the feature do not reject it as a typo.

use std::path::PathBuf;

pub struct FaultTrace {
    path: Option<PathBuf>,
    pages: Vec<u32>,
}

impl FaultTrace {
    pub fn from_env() -> Self {
        FaultTrace { path: std::env::var_os("DLMBENCH_FAULT_TRACE").map(PathBuf::from), pages: Vec::new() }
    }

    pub fn record(&mut self, index: usize) {
        if self.path.is_some() {
            self.pages.push(index as u32);
        }
    }

    /// Writes the trace (at shutdown: the program no longer faults, so no lock it holds is
    /// in the way); a failure is reported, not fatal, since it only spoils a measurement.
    pub fn write(&self) {
        let Some(path) = &self.path else { return };
        let bytes: Vec<u8> = self.pages.iter().flat_map(|p| p.to_le_bytes()).collect();
        if let Err(e) = std::fs::write(path, bytes) {
            crate::sys::write_stderr(&format!("dlm: writing the fault trace {}: {e}\n", path.display()));
        }
    }
}
