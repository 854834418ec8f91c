//! `dlmcc`: a C compiler driver that builds programs against the DLM runtime and MPI.
//!
//! Like `mpicc`, it forwards every argument to the underlying compiler (`cc`, or `$DLMCC_CC`)
//! and adds what DLM needs: the `dlm.h` include directory and MPI's compile flags, and when it
//! links, the runtime library `libdlm.a` (found beside this executable) and MPI's link flags.
//! `--showme` prints the command instead of running it (`--showme:compile`, `--showme:link`
//! print only the added flags).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The header directory of the runtime in this source tree.
const INCLUDE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../dlm-rt/include");
/// System libraries that Rust's standard library needs when linked statically into C.
const RUST_SYSTEM_LIBS: [&str; 6] = ["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl"];

const USAGE: &str = "\
usage: dlmcc [compiler arguments...]
       dlmcc --showme[:compile|:link] [compiler arguments...]

Compiles and links C programs that use DLM (#include <dlm.h>) like mpicc: every argument goes to
the C compiler ($DLMCC_CC, default cc); dlmcc adds the DLM and MPI include and link flags.
  --showme           print the full compiler command instead of running it
  --showme:compile   print the flags dlmcc adds when compiling
  --showme:link      print the flags dlmcc adds when linking
  --help             print this text
";

enum Showme {
    Command,
    Compile,
    Link,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dlmcc: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode> {
    let mut showme = None;
    let mut args = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--showme" => showme = Some(Showme::Command),
            "--showme:compile" => showme = Some(Showme::Compile),
            "--showme:link" => showme = Some(Showme::Link),
            "--help" => {
                print!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other if other.starts_with("--showme") => bail!("unknown option `{other}`\n{USAGE}"),
            _ => args.push(arg),
        }
    }
    let compiler = std::env::var("DLMCC_CC").unwrap_or_else(|_| "cc".into());
    let compile_flags = compile_flags()?;
    match showme {
        Some(Showme::Compile) => {
            println!("{}", compile_flags.join(" "));
            return Ok(ExitCode::SUCCESS);
        }
        Some(Showme::Link) => {
            println!("{}", link_flags()?.join(" "));
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    if args.is_empty() {
        bail!("no input files\n{USAGE}");
    }
    let mut command = compile_flags;
    command.extend(args.iter().cloned());
    if links(&args) {
        command.extend(link_flags()?);
    }
    if let Some(Showme::Command) = showme {
        println!("{compiler} {}", command.join(" "));
        return Ok(ExitCode::SUCCESS);
    }
    let status = Command::new(&compiler)
        .args(&command)
        .status()
        .with_context(|| format!("cannot run the C compiler `{compiler}` (set DLMCC_CC to choose another)"))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(code.clamp(1, 255) as u8),
        None => ExitCode::from(1),
    })
}

/// Whether the compiler will link (no `-c`, `-S`, `-E`, or dependency-only `-M`/`-MM`).
fn links(args: &[String]) -> bool {
    !args.iter().any(|a| matches!(a.as_str(), "-c" | "-S" | "-E" | "-M" | "-MM"))
}

fn compile_flags() -> Result<Vec<String>> {
    let mut flags = vec![format!("-I{}", Path::new(INCLUDE_DIR).display())];
    flags.extend(mpicc_showme("compile")?);
    Ok(flags)
}

fn link_flags() -> Result<Vec<String>> {
    let mut flags = vec![runtime_library()?.display().to_string()];
    flags.extend(mpicc_showme("link")?);
    flags.extend(RUST_SYSTEM_LIBS.iter().map(|s| s.to_string()));
    Ok(flags)
}

/// `libdlm.a`, built by cargo into the same directory as this executable.
fn runtime_library() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the dlmcc executable")?;
    let lib = exe.with_file_name("libdlm.a");
    if !lib.is_file() {
        bail!(
            "the DLM runtime library {} is missing; build it with `cargo build --release` in the DLM source tree",
            lib.display()
        );
    }
    Ok(lib)
}

/// MPI's own flags, as Open MPI's wrapper compiler reports them.
fn mpicc_showme(what: &str) -> Result<Vec<String>> {
    let output = Command::new("mpicc").arg(format!("--showme:{what}")).output().context(
        "cannot run `mpicc --showme` to find MPI's flags; install Open MPI (apt-get install libopenmpi-dev)",
    )?;
    if !output.status.success() {
        bail!("`mpicc --showme:{what}` failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).split_whitespace().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compile_only_flags_skip_linking() {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(links(&args(&["a.c", "b.o", "-o", "prog"])));
        assert!(!links(&args(&["-c", "a.c"])));
        assert!(!links(&args(&["-E", "a.c"])));
    }
}
