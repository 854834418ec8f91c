//! `dlmcc`: a C compiler driver that builds programs against the DLM runtime and MPI.
//!
//! Like `mpicc`, it forwards every argument to the underlying compiler (`cc`, or `$DLMCC_CC`)
//! and adds what DLM needs: the `dlm.h` include directory and MPI's compile flags, and when it
//! links, the runtime library `libdlm.a` (beside this executable, or in its installed prefix: `layout`) and MPI's link flags.
//! `--showme` prints the command instead of running it (`--showme:compile`, `--showme:link`
//! print only the added flags).
//!
//! Before compiling, each C source goes through `c-frontend`, which places big static arrays
//! and big heap allocations in DLM memory (see docs/DLMCC.md); the compiler then compiles the
//! rewritten copy, kept in a temporary directory, with the original's directory searched for
//! `#include "..."` first.

mod args;
mod layout;
mod rewrite;
mod search_path;

use anyhow::{bail, Context, Result};
use args::CommandLine;
use rewrite::{DlmOptions, Refusal, Rewritten};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The C library functions that dlmcc links into every program, for the whole process
/// (docs/DLMCC.md): the allocation functions, so that any `free` or `realloc` of a DLM block,
/// rewritten or not, goes to DLM; and the I/O functions, which hold DLM buffers resident for
/// the kernel when the pager sees only user-space faults. They implement the runtime's ABI, so
/// they live with it (`dlm-rt/src/abi`); dlmcc embeds them and compiles them for each link.
const INTERPOSED: [(&str, &str); 2] = [
    ("dlm_interpose", include_str!("../../dlm-rt/src/abi/interpose.c")),
    ("dlm_interpose_io", include_str!("../../dlm-rt/src/abi/interpose_io.c")),
];

/// System libraries that Rust's standard library needs when linked statically into C.
const RUST_SYSTEM_LIBS: [&str; 6] = ["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl"];

const USAGE: &str = "\
usage: dlmcc [--dlm-...] [compiler arguments...]
       dlmcc --showme[:compile|:link] [compiler arguments...]

Compiles and links C programs like mpicc: every other argument goes to the C compiler
($DLMCC_CC, default cc); dlmcc adds the DLM and MPI include and link flags. Each C source is
first rewritten so that its big static arrays and its malloc/calloc/realloc blocks live in DLM
memory; the program then starts DLM before main by itself.
  --dlm-threshold=SIZE  static arrays of at least SIZE go to DLM, and heap blocks of at least
                        SIZE get DLM pages of their own (smaller ones share them) (default 1M)
  --dlm-off             compile the sources unchanged (a program can still call dlm_alloc)
  --dlm-report          list every array and allocation site moved to DLM, and why; end
                        with totals: what moved, what stayed and why
  --dlm-emit-rewritten  print the rewritten sources instead of compiling
  --showme              print the full compiler command instead of running it
  --showme:compile      print the flags dlmcc adds when compiling
  --showme:link         print the flags dlmcc adds when linking
  --help                print this text
  --version             print dlmcc's version
In the source: `#pragma dlm` before a declaration (or `__attribute__((dlm))`) puts its arrays
in DLM whatever their size; `#pragma dlm off` keeps the next declaration or statement out.
";

/// Arrays and allocations of at least this many bytes go to DLM unless told otherwise.
const DEFAULT_THRESHOLD: u64 = 1 << 20;

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
    let mut dlm = DlmOptions { threshold: DEFAULT_THRESHOLD, off: false, report: false, emit_rewritten: false };
    let mut args = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--showme" => showme = Some(Showme::Command),
            "--showme:compile" => showme = Some(Showme::Compile),
            "--showme:link" => showme = Some(Showme::Link),
            "--dlm-off" => dlm.off = true,
            "--dlm-report" => dlm.report = true,
            "--dlm-emit-rewritten" => dlm.emit_rewritten = true,
            "--help" => {
                print!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            "--version" => {
                println!("dlmcc (DLM) {}", env!("CARGO_PKG_VERSION"));
                return Ok(ExitCode::SUCCESS);
            }
            other if other.starts_with("--dlm-threshold=") => {
                let size = &other["--dlm-threshold=".len()..];
                dlm.threshold = dlm_units::parse_size(size).with_context(|| format!("in `{other}`"))?;
            }
            other if other.starts_with("--showme") || other.starts_with("--dlm") => {
                bail!("unknown option `{other}`\n{USAGE}")
            }
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
    let line = CommandLine::parse(&args);
    let scratch =
        tempfile::Builder::new().prefix("dlmcc-link-").tempdir().context("cannot create a temporary directory")?;
    let driver = Driver { compiler, compile_flags, line, scratch };
    if let Some(Showme::Command) = showme {
        println!("{} {}", driver.compiler, driver.whole_command(|_| None)?.join(" "));
        return Ok(ExitCode::SUCCESS);
    }
    let rewrites = !dlm.off && !driver.line.preprocesses_only() && driver.line.sources().next().is_some();
    if !rewrites {
        if dlm.emit_rewritten {
            bail!("--dlm-emit-rewritten needs C sources to rewrite");
        }
        return driver.execute(driver.whole_command(|_| None)?);
    }
    let mut parse_flags = driver.compile_flags.clone();
    parse_flags.extend(driver.line.parse_flags());
    let compiler_dirs = search_path::system_include_dirs(&driver.compiler, &driver.line.parse_flags())?;
    parse_flags.extend(search_path::parse_flags(&compiler_dirs));
    let rewritten = match rewrite::rewrite_all(driver.line.sources(), &parse_flags, &dlm)? {
        Ok(rewritten) => rewritten,
        Err(Refusal::Unparsable { source, diagnostics }) => return driver.explain_unparsable(&source, &diagnostics),
    };
    if dlm.emit_rewritten {
        return Ok(ExitCode::SUCCESS);
    }
    driver.compile_rewritten(&rewritten)
}

/// Runs the C compiler for one command line.
struct Driver {
    compiler: String,
    compile_flags: Vec<String>,
    line: CommandLine,
    /// Where the interposed functions are compiled for a command that links (removed afterwards).
    scratch: tempfile::TempDir,
}

impl Driver {
    /// The whole command with some sources replaced; when it links, the interposed functions
    /// (compiled here) and the link flags are added.
    fn whole_command(&self, replace: impl Fn(&PathBuf) -> Option<String>) -> Result<Vec<String>> {
        let mut command = self.compile_flags.clone();
        command.extend(self.line.with_replacements(replace));
        if self.line.links() {
            for object in self.interposed_objects()? {
                command.push(object.display().to_string());
            }
            command.extend(link_flags()?);
        }
        Ok(command)
    }

    /// The interposed functions compiled for this command's target, with DLM's own language
    /// standard.
    fn interposed_objects(&self) -> Result<Vec<PathBuf>> {
        let mut objects = Vec::new();
        for (name, text) in INTERPOSED {
            let source = self.scratch.path().join(format!("{name}.c"));
            let object = self.scratch.path().join(format!("{name}.o"));
            if !object.exists() {
                std::fs::write(&source, text).with_context(|| format!("cannot write {}", source.display()))?;
                let mut command = self.line.target_flags();
                command.extend(["-std=gnu11", "-O2", "-fPIC", "-c", "-o"].map(String::from));
                command.extend([object.display().to_string(), source.display().to_string()]);
                if self.execute(command)? != ExitCode::SUCCESS {
                    bail!("cannot compile DLM's interposed C library functions with `{}`", self.compiler);
                }
            }
            objects.push(object);
        }
        Ok(objects)
    }

    /// Compiles with the rewritten copies in place of their sources. Each copy is compiled by
    /// itself, so that `#include "..."` searches its original's directory first.
    fn compile_rewritten(&self, rewritten: &Rewritten) -> Result<ExitCode> {
        let sources: Vec<&PathBuf> = self.line.sources().collect();
        let quote_dir = |source: &Path| {
            let dir = source.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            vec!["-iquote".to_string(), dir.display().to_string()]
        };
        if self.line.compiles_only() {
            for source in &sources {
                let mut command = Vec::new();
                let replacement = match rewritten.get(source) {
                    Some(copy) => {
                        command.extend(quote_dir(source));
                        copy.display().to_string()
                    }
                    None => source.display().to_string(),
                };
                command.extend(self.compile_flags.iter().cloned());
                command.extend(self.line.only_source(source, &replacement));
                let code = self.execute(command)?;
                if code != ExitCode::SUCCESS {
                    return Ok(code);
                }
                if let (Some(copy), Some(depfile)) = (rewritten.get(source), self.line.dependency_file(source)) {
                    name_original_in_depfile(&depfile, copy, source)?;
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        let mut objects = std::collections::HashMap::new();
        for source in &sources {
            let Some(copy) = rewritten.get(source) else { continue };
            let object = copy.with_extension("o");
            let mut command = quote_dir(source);
            command.extend(self.compile_flags.iter().cloned());
            command.extend(self.line.single_source_compile(source, &copy.display().to_string()));
            command.extend(["-c".to_string(), "-o".to_string(), object.display().to_string()]);
            let code = self.execute(command)?;
            if code != ExitCode::SUCCESS {
                return Ok(code);
            }
            objects.insert((*source).clone(), object.display().to_string());
        }
        self.execute(self.whole_command(|source| objects.get(source).cloned())?)
    }

    /// The front end could not parse `source`: the compiler says why in its own words; if it
    /// accepts the file, the front end's diagnostics are all there is.
    fn explain_unparsable(&self, source: &PathBuf, diagnostics: &str) -> Result<ExitCode> {
        let mut command = self.compile_flags.clone();
        command.extend(self.line.single_source_compile(source, &source.display().to_string()));
        command.push("-fsyntax-only".into());
        let code = self.execute(command)?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
        eprint!("{diagnostics}");
        eprintln!(
            "dlmcc: error: {} compiles with {} but DLM's C front end (libclang) cannot parse it; \
             compile this file with --dlm-off to leave it unchanged",
            source.display(),
            self.compiler
        );
        Ok(ExitCode::from(1))
    }

    fn execute(&self, command: Vec<String>) -> Result<ExitCode> {
        let status = Command::new(&self.compiler).args(&command).status().with_context(|| {
            format!("cannot run the C compiler `{}` (set DLMCC_CC to choose another)", self.compiler)
        })?;
        Ok(match status.code() {
            Some(0) => ExitCode::SUCCESS,
            Some(code) => ExitCode::from(code.clamp(1, 255) as u8),
            None => ExitCode::from(1),
        })
    }
}

fn compile_flags() -> Result<Vec<String>> {
    let mut flags = vec![format!("-I{}", layout::locate()?.include_dir.display())];
    flags.extend(mpicc_showme("compile")?);
    Ok(flags)
}

fn link_flags() -> Result<Vec<String>> {
    let mut flags = vec![layout::locate()?.library.display().to_string()];
    flags.extend(mpicc_showme("link")?);
    flags.extend(RUST_SYSTEM_LIBS.iter().map(|s| s.to_string()));
    Ok(flags)
}

/// Makes a `-MD` dependency file name the source the user compiled, not its rewritten copy.
fn name_original_in_depfile(depfile: &Path, copy: &Path, source: &Path) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(depfile) else { return Ok(()) };
    let fixed = text.replace(&copy.display().to_string(), &source.display().to_string());
    std::fs::write(depfile, fixed).with_context(|| format!("cannot update {}", depfile.display()))
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
        let line = |list: &[&str]| CommandLine::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(line(&["a.c", "b.o", "-o", "prog"]).links());
        assert!(!line(&["-c", "a.c"]).links());
        assert!(!line(&["-E", "a.c"]).links());
    }
}
