//! Where dlmcc finds the DLM runtime: in an installed prefix (`PREFIX/bin/dlmcc` beside
//! `PREFIX/lib/libdlm.a` and `PREFIX/include/dlm.h`, as `scripts/install.sh` lays it out), or in
//! the build tree (`target/release/dlmcc` beside `libdlm.a`, the header in the source tree).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The header directory of the runtime in this source tree.
const SOURCE_INCLUDE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../dlm-rt/include");

/// The runtime's static library and header directory.
pub struct Runtime {
    pub library: PathBuf,
    pub include_dir: PathBuf,
}

/// The runtime that goes with this dlmcc executable (followed through symbolic links, so a
/// link to it from a directory on `PATH` works).
pub fn locate() -> Result<Runtime> {
    let exe = std::env::current_exe().context("cannot locate the dlmcc executable")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let dir = exe.parent().context("the dlmcc executable has no directory")?;
    if let Some(installed) = dir.parent().map(installed_in).filter(|r| r.library.is_file()) {
        return Ok(installed);
    }
    let built = Runtime { library: dir.join("libdlm.a"), include_dir: PathBuf::from(SOURCE_INCLUDE_DIR) };
    if !built.library.is_file() {
        bail!(
            "the DLM runtime library is missing: neither {} nor {} exists; build it with `cargo build --release` \
             in the DLM source tree, or install the toolchain with scripts/install.sh",
            installed_in(dir.parent().unwrap_or(dir)).library.display(),
            built.library.display()
        );
    }
    Ok(built)
}

fn installed_in(prefix: &Path) -> Runtime {
    Runtime { library: prefix.join("lib/libdlm.a"), include_dir: prefix.join("include") }
}
