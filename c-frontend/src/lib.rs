/*!
DLM's C front end: rewrites one C file so that a legacy program puts its big arrays and big heap
allocations into DLM memory, for the `dlmcc` compiler driver.

[`Frontend::rewrite`] parses the file with libclang under the user's own flags, then returns the
changes as data ([`Edit`]: a byte range of the original file and its replacement), the rewritten
text (all edits applied in one pass by [`apply`]) and a [`ReportEntry`] per decision:

- `arrays`: static-storage arrays of at least [`Options::threshold`] bytes, or marked with
  `#pragma dlm` / `__attribute__((dlm))`, get `__attribute__((aligned(4096)))` and a registration
  record (section `dlm_statics`) that the runtime reads at start-up; `header_arrays`: such
  arrays defined in the program's headers get their record at the end of the main file;
- `heap_calls`: references to the C library's `malloc`, `calloc`, `realloc`, `free`,
  `posix_memalign` and `aligned_alloc` are renamed to the `__dlm_*` wrappers of the prelude;
- `markers`: finds `#pragma dlm [on|off]` and `__attribute__((dlm))` in the raw tokens and
  removes them from the text;
- `prelude`: the declarations put before a changed file, then `#line 1 "file"` so diagnostics and
  `__FILE__` keep the user's file and lines;
- `source`: the main file's text, tokens and lines; `edits` and `report`: the data returned;
  `summary`: the totals of one or more rewrites that end the report ([`Summary`]): bytes moved
  from `.c` files and from headers, allocation sites, and what stayed and why.

Only the main file is edited, never a header, and no edit adds or removes a line before the
main file's end.
*/

mod arrays;
mod edits;
mod header_arrays;
mod heap_calls;
mod markers;
mod prelude;
mod report;
mod source;
mod summary;

use std::ops::Range;
use std::path::{Path, PathBuf};

use clang::diagnostic::Severity;
use clang::{Clang, Entity, EntityKind, EntityVisitResult, Index};

pub use edits::{apply, Edit};
pub use report::{Decision, Linkage, Reason, ReportEntry, Rule, Subject};
pub use summary::Summary;

use source::MainFile;

/// What the rewrite moves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Arrays of at least this many bytes move into DLM memory; also passed to the runtime's
    /// allocation wrappers, which decide by size at run time.
    pub threshold: u64,
}

impl Default for Options {
    fn default() -> Options {
        Options { threshold: 1 << 20 }
    }
}

/// The result of [`Frontend::rewrite`].
#[derive(Clone, Debug)]
pub struct Rewritten {
    /// The whole rewritten file (the original text when nothing changed).
    pub text: String,
    /// The edits that turn the original text into `text`, sorted, prelude first.
    pub edits: Vec<Edit>,
    /// One entry per big or marked array and per call decided about (what the report lists).
    pub report: Vec<ReportEntry>,
    /// Every decision, the small arrays and those of system headers included, for the totals.
    pub summary: Summary,
    /// Whether `text` differs from the original.
    pub changed: bool,
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// libclang could not be loaded or could not parse at all.
    #[error("libclang: {0}")]
    Libclang(String),
    /// The file has errors (clang's, or an unknown `#pragma dlm` form), one per line as
    /// `file:line:col: error: message`.
    #[error("{0}")]
    Diagnostics(String),
    /// Two edits change overlapping text.
    #[error("overlapping edits at bytes {first:?} and {second:?}")]
    Overlap {
        /// The earlier edit's range.
        first: Range<usize>,
        /// The range that overlaps it.
        second: Range<usize>,
    },
    /// An edit's range is outside the text or not on a character boundary.
    #[error("edit at bytes {range:?} does not fit a text of {len} bytes")]
    OutOfBounds {
        /// The edit's range.
        range: Range<usize>,
        /// The text's length.
        len: usize,
    },
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not UTF-8 text.
    #[error("{path} is not UTF-8 text")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
}

/// Owns libclang. Only one may exist in a process at a time ([`Frontend::new`] fails while
/// another one lives).
pub struct Frontend {
    clang: Clang,
}

impl Frontend {
    /// Loads libclang.
    pub fn new() -> Result<Frontend, Error> {
        Ok(Frontend { clang: Clang::new().map_err(Error::Libclang)? })
    }

    /// Rewrites the C file at `path`.
    ///
    /// `display_name` is the path as the user wrote it (used in `#line`, the report and the
    /// records' site strings); `clang_args` are the user's flags that matter for parsing (`-I`,
    /// `-D`, `-std=`, ...).
    pub fn rewrite(
        &self,
        path: &Path,
        display_name: &str,
        clang_args: &[String],
        options: &Options,
    ) -> Result<Rewritten, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
        let text = String::from_utf8(bytes).map_err(|_| Error::NotUtf8 { path: path.to_owned() })?;
        let index = Index::new(&self.clang, false, false);
        let tu = index
            .parser(path)
            .arguments(clang_args)
            .detailed_preprocessing_record(true)
            .parse()
            .map_err(|e| Error::Libclang(format!("{}: {e}", path.display())))?;
        let main_file = tu.get_file(path).ok_or_else(|| Error::Libclang(format!("{} not parsed", path.display())))?;
        check_diagnostics(&tu, &main_file, display_name)?;

        let main = MainFile::new(&tu, main_file, text, display_name);
        let markers = markers::scan(&main)?;
        let Collected { vars, refs, header_vars } = collect(&tu, &main);
        let macros = heap_calls::Macros::new(&tu, &main);
        let (array_edits, mut report) = arrays::plan(&main, &vars, &markers, options.threshold);
        let main_keys: Vec<String> = vars.iter().map(|v| arrays::canonical_key(*v)).collect();
        let (header_edits, header_report) = header_arrays::plan(&main, &header_vars, &main_keys, options.threshold);
        let (call_edits, call_report, calls_startup) = heap_calls::plan(&main, &refs, &macros, &markers);
        report.extend(call_report);
        report.sort_by_key(|r| r.line);
        report.extend(header_report);
        let summary = Summary::of_file(display_name, &report, options.threshold);
        report.retain(|entry| !matches!(&entry.decision, Decision::Kept(reason) if !reason.is_listed()));

        let mut edits: Vec<Edit> =
            markers.edits.into_iter().chain(array_edits).chain(header_edits).chain(call_edits).collect();
        if edits.is_empty() {
            return Ok(Rewritten { text: main.text, edits, report, summary, changed: false });
        }
        edits.insert(0, Edit::insert(0, prelude::prelude(display_name, options.threshold, calls_startup)));
        edits.sort_by_key(|e| (e.range.start, e.range.end));
        edits.dedup();
        let text = apply(&main.text, &edits)?;
        Ok(Rewritten { text, edits, report, summary, changed: true })
    }
}

/// Fails with every error or fatal diagnostic of the translation unit, except errors inside
/// system headers: those are written for the compiler that dlmcc drives (gcc's own `omp.h` uses
/// attributes that libclang rejects), which accepted them; what the program's own file needs
/// from them still fails here if it does not parse.
fn check_diagnostics(
    tu: &clang::TranslationUnit,
    main_file: &clang::source::File,
    display_name: &str,
) -> Result<(), Error> {
    let mut errors = Vec::new();
    for d in tu.get_diagnostics() {
        let severity = match d.get_severity() {
            Severity::Error if d.get_location().is_in_system_header() => continue,
            Severity::Error => "error",
            Severity::Fatal => "fatal error",
            _ => continue,
        };
        let loc = d.get_location().get_file_location();
        let file = match &loc.file {
            Some(f) if f == main_file => display_name.to_owned(),
            Some(f) => f.get_path().display().to_string(),
            None => "<command line>".to_owned(),
        };
        errors.push(format!("{file}:{}:{}: {severity}: {}", loc.line, loc.column, d.get_text()));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Diagnostics(errors.join("\n")))
    }
}

/// What the rewrite looks at: the variable declarations and declaration references whose
/// expansion lies in the main file, and the file-scope variables declared in headers.
struct Collected<'tu> {
    vars: Vec<Entity<'tu>>,
    refs: Vec<Entity<'tu>>,
    header_vars: Vec<Entity<'tu>>,
}

fn collect<'tu>(tu: &'tu clang::TranslationUnit<'tu>, main: &MainFile<'tu>) -> Collected<'tu> {
    let mut vars = Vec::new();
    let mut refs = Vec::new();
    let mut header_vars = Vec::new();
    tu.get_entity().visit_children(|e, parent| {
        let in_main = e.get_location().and_then(|l| l.get_expansion_location().file).is_some_and(|f| f == main.file);
        match e.get_kind() {
            EntityKind::VarDecl if in_main => vars.push(e),
            EntityKind::DeclRefExpr if in_main => refs.push(e),
            EntityKind::VarDecl if parent.get_kind() == EntityKind::TranslationUnit => header_vars.push(e),
            _ => {}
        }
        if !in_main && parent.get_kind() == EntityKind::TranslationUnit {
            // A top-level declaration of a header: nothing of the main file inside.
            EntityVisitResult::Continue
        } else {
            EntityVisitResult::Recurse
        }
    });
    Collected { vars, refs, header_vars }
}
