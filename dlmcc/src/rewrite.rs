//! Runs each C source of a command through `c-frontend` and keeps the rewritten files in a
//! temporary directory for as long as the compiler needs them.

use anyhow::{Context, Result};
use c_frontend::{Frontend, Options, Summary};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What the `--dlm-*` options ask for.
#[derive(Debug, Clone)]
pub struct DlmOptions {
    pub threshold: u64,
    pub off: bool,
    pub report: bool,
    pub emit_rewritten: bool,
}

/// The rewritten sources of one command, by original path.
pub struct Rewritten {
    _dir: tempfile::TempDir,
    files: HashMap<PathBuf, PathBuf>,
}

/// Why a source could not be rewritten.
pub enum Refusal {
    /// The front end could not parse it; its diagnostics, for the user.
    Unparsable { source: PathBuf, diagnostics: String },
}

impl Rewritten {
    /// The rewritten copy of `source`, if it changed.
    pub fn get(&self, source: &Path) -> Option<&Path> {
        self.files.get(source).map(PathBuf::as_path)
    }
}

/// Rewrites every source; prints the report (ending with the totals of all the sources) and the
/// rewritten text when asked.
pub fn rewrite_all<'a>(
    sources: impl Iterator<Item = &'a PathBuf>,
    parse_flags: &[String],
    options: &DlmOptions,
) -> Result<Result<Rewritten, Refusal>> {
    let dir = tempfile::Builder::new().prefix("dlmcc-").tempdir().context("cannot create a temporary directory")?;
    let frontend = Frontend::new().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut files = HashMap::new();
    let mut summary = Summary::new(options.threshold);
    for (index, source) in sources.enumerate() {
        let display = source.display().to_string();
        let rewritten = match frontend.rewrite(source, &display, parse_flags, &Options { threshold: options.threshold })
        {
            Ok(rewritten) => rewritten,
            Err(c_frontend::Error::Diagnostics(diagnostics)) => {
                return Ok(Err(Refusal::Unparsable { source: source.clone(), diagnostics }))
            }
            Err(e) => return Err(anyhow::anyhow!("{display}: {e}")),
        };
        if options.report {
            for entry in &rewritten.report {
                eprintln!("{entry}");
            }
            summary.merge(rewritten.summary.clone());
        }
        if options.emit_rewritten {
            print!("{}", rewritten.text);
        }
        if rewritten.changed {
            // Same file name, own directory: the compiler names its outputs after it.
            let name = source.file_name().context("a C source without a file name")?;
            let copy = dir.path().join(index.to_string()).join(name);
            std::fs::create_dir_all(copy.parent().expect("joined above"))?;
            std::fs::write(&copy, &rewritten.text).with_context(|| format!("cannot write {}", copy.display()))?;
            files.insert(source.clone(), copy);
        }
    }
    if options.report {
        eprint!("{summary}");
    }
    Ok(Ok(Rewritten { _dir: dir, files }))
}
