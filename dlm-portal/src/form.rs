//! A job's form (the Autorun and Interactive pages) read into a job description and the files
//! of its bundle, or refused with a message that says what to change. Nothing here talks to
//! anything: the parts of the multipart upload come in, a [`JobForm`] or a [`FormError`] comes
//! out.
//!
//! The form's fields:
//!
//! | field      | what                                                                   |
//! |------------|------------------------------------------------------------------------|
//! | `program`  | files: one executable, or with `dlmcc` C sources (`.c`) and headers (`.h`) |
//! | `dlmcc`    | checkbox: build the sources with dlmcc on the node                      |
//! | `cflags`   | dlmcc's flags, split at white space (never through a shell)             |
//! | `inputs`   | files placed beside the program                                         |
//! | `memory`   | all the memory the program needs (`4G`: `dlm_units::parse_size`)        |
//! | `args`     | the program's arguments, one per line, each exactly as written          |
//! | `outputs`  | names of files the program writes, one per line (or separated by spaces)|
//! | `mode`     | `local-first` or `equalize` (Autorun)                                   |
//! | `place`    | `CLUSTER/NODE` (Interactive)                                            |
//! | `csrf`     | the session's token (checked by the router, before this)                |
//!
//! Every file name (as the browser sends it) and output name must be a flat name
//! (`dlm_wan::bundle::is_flat_name`); one with `/` or `\`, `..` or an absolute path is refused
//! by name, never cut down to its last part.

use dlm_units::SizeError;
use dlm_wan::bundle::is_flat_name;
use dlm_wan::proto::{JobSpec, Mode, Place, Program, JOB_MEMBER};
use std::collections::HashSet;

/// One part of the upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: String,
    /// The browser's name of an uploaded file (a file field), else `None`.
    pub file_name: Option<String>,
    pub data: Vec<u8>,
}

impl Part {
    /// A text field.
    pub fn text(name: &str, value: &str) -> Part {
        Part { name: name.into(), file_name: None, data: value.as_bytes().to_vec() }
    }

    /// A file field.
    pub fn file(name: &str, file_name: &str, data: &[u8]) -> Part {
        Part { name: name.into(), file_name: Some(file_name.into()), data: data.to_vec() }
    }
}

/// A file of the job's bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub name: String,
    pub data: Vec<u8>,
    /// The program itself (mode 0755 in the bundle).
    pub executable: bool,
}

/// A valid form: the job's description and its files (program first, then inputs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobForm {
    pub spec: JobSpec,
    pub files: Vec<Upload>,
}

/// Which page's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The WAN manager chooses the place by the mode.
    Autorun,
    /// The user chose a cluster's node (`place`).
    Interactive,
}

/// What the user typed, to fill the form in again after a refusal (files cannot be: a browser
/// lets no page choose them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Typed {
    pub memory: String,
    pub args: String,
    pub outputs: String,
    pub cflags: String,
    pub dlmcc: bool,
    pub mode: Mode,
    pub place: Option<String>,
}

/// Why a form was refused: each message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormError {
    #[error("{0} is missing; fill it in")]
    Missing(&'static str),
    #[error("memory needed: {0}")]
    BadMemory(SizeError),
    #[error("memory needed is 0; give the memory the program needs (e.g. 4G)")]
    NoMemory,
    #[error(
        "{role} `{name}`: a name may not hold `/` or `\\`, be `..` or `.`, or be an absolute path; \
         give the file's own name"
    )]
    UnsafeName { role: &'static str, name: String },
    #[error("{role} `{name}`: use only letters, digits and `._+-`, not starting with `-`; rename the file")]
    BadName { role: &'static str, name: String },
    #[error("{role} `{name}`: `{JOB_MEMBER}` is the job's own description; rename the file")]
    Reserved { role: &'static str, name: String },
    #[error("two files would both be `{0}` beside the program; rename one of them")]
    Duplicate(String),
    #[error("give one program file (the executable), not {0}; or tick \"recompile with dlmcc\" for C sources")]
    OneProgram(usize),
    #[error("`{0}` is a C source: tick \"recompile with dlmcc\" to build it on the node, or upload the executable")]
    SourceWithoutDlmcc(String),
    #[error("with \"recompile with dlmcc\", the program files are C sources (`.c`) and headers (`.h`), not `{0}`")]
    NotSource(String),
    #[error("with \"recompile with dlmcc\", give at least one C source (`.c`)")]
    NoSource,
    #[error("mode `{0}` is not one of local-first and equalize")]
    BadMode(String),
    #[error("choose a node in the table above")]
    NoPlace,
    #[error("`{0}` is not a node of the table (CLUSTER/NODE)")]
    BadPlace(String),
    #[error("the form's field `{0}` is not text (UTF-8)")]
    NotText(&'static str),
}

/// The text of field `name` (the last one sent), if any.
fn text<'a>(parts: &'a [Part], name: &'static str) -> Result<Option<&'a str>, FormError> {
    match parts.iter().rev().find(|p| p.name == name && p.file_name.is_none()) {
        None => Ok(None),
        Some(part) => std::str::from_utf8(&part.data).map(Some).map_err(|_| FormError::NotText(name)),
    }
}

/// The files of field `name` that were chosen (a file input with nothing chosen sends a part
/// with an empty name: it is not a file).
fn files<'a>(parts: &'a [Part], name: &'a str) -> impl Iterator<Item = (&'a str, &'a [u8])> {
    parts
        .iter()
        .filter(move |p| p.name == name)
        .filter_map(|p| p.file_name.as_deref().filter(|f| !f.is_empty()).map(|f| (f, p.data.as_slice())))
}

/// What the user typed, whatever its validity.
pub fn typed(parts: &[Part]) -> Typed {
    let get = |name| text(parts, name).ok().flatten().unwrap_or_default().to_string();
    Typed {
        memory: get("memory"),
        args: get("args"),
        outputs: get("outputs"),
        cflags: get("cflags"),
        dlmcc: text(parts, "dlmcc").ok().flatten().is_some(),
        mode: parse_mode(&get("mode")).unwrap_or_default(),
        place: text(parts, "place").ok().flatten().map(String::from),
    }
}

/// Checks a file or output name: [`FormError::UnsafeName`] for what could point elsewhere
/// (`/`, `\`, `.`, `..`, absolute), [`FormError::BadName`] for other characters.
pub fn check_name(role: &'static str, name: &str) -> Result<(), FormError> {
    let unsafe_name = name.contains('/') || name.contains('\\') || name == "." || name == "..";
    if unsafe_name {
        return Err(FormError::UnsafeName { role, name: name.into() });
    }
    if name == JOB_MEMBER {
        return Err(FormError::Reserved { role, name: name.into() });
    }
    if !is_flat_name(name) {
        return Err(FormError::BadName { role, name: name.into() });
    }
    Ok(())
}

/// The arguments of the `args` field: one per line, exactly as written (no quoting, no
/// shell); blank lines are left out; a `\r\n` line end counts as `\n`.
pub fn arguments(text: &str) -> Vec<String> {
    text.split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .filter(|line| !line.trim().is_empty())
        .map(String::from)
        .collect()
}

fn parse_mode(text: &str) -> Option<Mode> {
    match text {
        "" | "local-first" => Some(Mode::LocalFirst),
        "equalize" => Some(Mode::Equalize),
        _ => None,
    }
}

/// `CLUSTER/NODE`.
pub fn parse_place(text: &str) -> Result<Place, FormError> {
    match text.split_once('/') {
        Some((cluster, node)) if !cluster.is_empty() && !node.is_empty() && !node.contains('/') => {
            Ok(Place { cluster: cluster.into(), node: node.into() })
        }
        _ => Err(FormError::BadPlace(text.into())),
    }
}

/// The job the form describes, run as `user`.
pub fn parse(parts: &[Part], user: &str, page: Page) -> Result<JobForm, FormError> {
    let memory = text(parts, "memory")?.map(str::trim).filter(|m| !m.is_empty());
    let memory_bytes =
        dlm_units::parse_size(memory.ok_or(FormError::Missing("memory needed"))?).map_err(FormError::BadMemory)?;
    if memory_bytes == 0 {
        return Err(FormError::NoMemory);
    }
    let dlmcc = text(parts, "dlmcc")?.is_some();
    let programs: Vec<(&str, &[u8])> = files(parts, "program").collect();
    for (name, _) in &programs {
        check_name("program file", name)?;
    }
    let inputs: Vec<(&str, &[u8])> = files(parts, "inputs").collect();
    for (name, _) in &inputs {
        check_name("input file", name)?;
    }
    let mut uploads = Vec::new();
    let mut input_names = Vec::new();
    let program = if dlmcc {
        let mut sources = Vec::new();
        for (name, data) in &programs {
            if name.ends_with(".c") {
                sources.push(name.to_string());
                uploads.push(Upload { name: name.to_string(), data: data.to_vec(), executable: false });
            } else if name.ends_with(".h") {
                // Headers go beside the sources, where dlmcc finds them.
                input_names.push(name.to_string());
            } else {
                return Err(FormError::NotSource(name.to_string()));
            }
        }
        let first = sources.first().ok_or(if programs.is_empty() {
            FormError::Missing("the program (C sources)")
        } else {
            FormError::NoSource
        })?;
        let name = first.strip_suffix(".c").unwrap_or(first).to_string();
        if name.is_empty() {
            return Err(FormError::BadName { role: "C source", name: first.clone() });
        }
        let cflags = text(parts, "cflags")?.unwrap_or_default().split_whitespace().map(String::from).collect();
        Program::Dlmcc { sources, cflags, name }
    } else {
        let [(name, data)] = programs[..] else {
            return Err(match programs.len() {
                0 => FormError::Missing("the program file"),
                n => FormError::OneProgram(n),
            });
        };
        if name.ends_with(".c") {
            return Err(FormError::SourceWithoutDlmcc(name.to_string()));
        }
        uploads.push(Upload { name: name.to_string(), data: data.to_vec(), executable: true });
        Program::Executable { file: name.to_string() }
    };
    for (name, data) in programs.iter().filter(|(n, _)| dlmcc && n.ends_with(".h")).chain(&inputs) {
        uploads.push(Upload { name: name.to_string(), data: data.to_vec(), executable: false });
    }
    input_names.extend(inputs.iter().map(|(n, _)| n.to_string()));
    let mut seen = HashSet::new();
    let built = match &program {
        Program::Dlmcc { name, .. } => Some(name.as_str()),
        Program::Executable { .. } => None,
    };
    for name in uploads.iter().map(|u| u.name.as_str()).chain(built) {
        if !seen.insert(name) {
            return Err(FormError::Duplicate(name.to_string()));
        }
    }
    let outputs: Vec<String> =
        text(parts, "outputs")?.unwrap_or_default().split_whitespace().map(String::from).collect();
    for name in &outputs {
        check_name("output", name)?;
    }
    let args = arguments(text(parts, "args")?.unwrap_or_default());
    let (mode, place) = match page {
        Page::Autorun => {
            let mode = text(parts, "mode")?.unwrap_or_default();
            (parse_mode(mode).ok_or_else(|| FormError::BadMode(mode.into()))?, None)
        }
        Page::Interactive => {
            let place = text(parts, "place")?.filter(|p| !p.is_empty()).ok_or(FormError::NoPlace)?;
            (Mode::LocalFirst, Some(parse_place(place)?))
        }
    };
    let spec = JobSpec {
        program,
        args,
        memory_bytes,
        mode,
        user: Some(user.to_string()),
        inputs: input_names,
        outputs,
        place,
    };
    Ok(JobForm { spec, files: uploads })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<Part> {
        vec![
            Part::text("csrf", "t"),
            Part::file("program", "sim", b"\x7fELF"),
            Part::file("inputs", "grid.dat", b"1 2 3"),
            Part::file("inputs", "", b""),
            Part::text("memory", " 4G "),
            Part::text("args", "-n\r\n64\n\nhello world\n"),
            Part::text("outputs", "result.dat\nlog.txt  final.dat\n"),
            Part::text("mode", "equalize"),
        ]
    }

    fn with(mut parts: Vec<Part>, part: Part) -> Vec<Part> {
        parts.retain(|p| p.name != part.name);
        parts.push(part);
        parts
    }

    #[test]
    fn an_autorun_form_becomes_a_spec_and_its_files() {
        let form = parse(&base(), "alice", Page::Autorun).unwrap();
        assert_eq!(form.spec.program, Program::Executable { file: "sim".into() });
        assert_eq!(form.spec.args, ["-n", "64", "hello world"]);
        assert_eq!(form.spec.memory_bytes, 4 << 30);
        assert_eq!(form.spec.mode, Mode::Equalize);
        assert_eq!(form.spec.user.as_deref(), Some("alice"));
        assert_eq!(form.spec.inputs, ["grid.dat"]);
        assert_eq!(form.spec.outputs, ["result.dat", "log.txt", "final.dat"]);
        assert_eq!(form.spec.place, None);
        assert_eq!(
            form.files,
            [
                Upload { name: "sim".into(), data: b"\x7fELF".to_vec(), executable: true },
                Upload { name: "grid.dat".into(), data: b"1 2 3".to_vec(), executable: false },
            ]
        );
    }

    #[test]
    fn sources_are_built_with_dlmcc_and_headers_travel_as_inputs() {
        let mut parts = with(base(), Part::file("program", "stencil.c", b"int main(){}"));
        parts.push(Part::file("program", "grid.h", b"#define N 8"));
        parts.push(Part::file("program", "util.c", b""));
        parts.push(Part::text("dlmcc", "on"));
        parts.push(Part::text("cflags", " -DN=64   -O3 "));
        let form = parse(&parts, "alice", Page::Autorun).unwrap();
        assert_eq!(
            form.spec.program,
            Program::Dlmcc {
                sources: vec!["stencil.c".into(), "util.c".into()],
                cflags: vec!["-DN=64".into(), "-O3".into()],
                name: "stencil".into()
            }
        );
        assert_eq!(form.spec.inputs, ["grid.h", "grid.dat"]);
        let names: Vec<&str> = form.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["stencil.c", "util.c", "grid.h", "grid.dat"]);
        assert!(form.files.iter().all(|f| !f.executable));

        let only_header = with(with(base(), Part::text("dlmcc", "on")), Part::file("program", "grid.h", b""));
        assert_eq!(parse(&only_header, "alice", Page::Autorun), Err(FormError::NoSource));
        let binary = with(base(), Part::text("dlmcc", "on"));
        assert_eq!(parse(&binary, "alice", Page::Autorun), Err(FormError::NotSource("sim".into())));
        let source = with(base(), Part::file("program", "sim.c", b""));
        assert_eq!(parse(&source, "alice", Page::Autorun), Err(FormError::SourceWithoutDlmcc("sim.c".into())));
        // The built program's name is taken too.
        let mut clash = with(with(base(), Part::text("dlmcc", "on")), Part::file("program", "grid.dat.c", b""));
        clash = with(clash, Part::file("inputs", "grid.dat", b""));
        assert_eq!(parse(&clash, "alice", Page::Autorun), Err(FormError::Duplicate("grid.dat".into())));
    }

    #[test]
    fn names_that_could_point_elsewhere_are_refused_by_name() {
        for bad in ["../etc/passwd", "/etc/passwd", "..", ".", "a/b", "C:\\Users\\x\\sim"] {
            let err = check_name("input file", bad).unwrap_err();
            assert!(matches!(err, FormError::UnsafeName { .. }), "{bad}: {err}");
            assert!(err.to_string().contains("may not hold `/`"), "{err}");
            let parts = with(base(), Part::file("inputs", bad, b""));
            assert!(matches!(parse(&parts, "alice", Page::Autorun), Err(FormError::UnsafeName { .. })));
            let parts = with(base(), Part::text("outputs", &format!("ok.dat\n{bad}")));
            assert_eq!(
                parse(&parts, "alice", Page::Autorun),
                Err(FormError::UnsafeName { role: "output", name: bad.into() })
            );
        }
        assert!(matches!(check_name("program file", "-rf"), Err(FormError::BadName { .. })));
        assert!(matches!(check_name("program file", "a b"), Err(FormError::BadName { .. })));
        assert!(matches!(check_name("input file", "job.json"), Err(FormError::Reserved { .. })));
        assert_eq!(check_name("output", "a..b"), Ok(()));
        let twice = with(base(), Part::file("inputs", "sim", b""));
        assert_eq!(parse(&twice, "alice", Page::Autorun), Err(FormError::Duplicate("sim".into())));
    }

    #[test]
    fn missing_and_malformed_fields_are_named() {
        let no_memory: Vec<Part> = base().into_iter().filter(|p| p.name != "memory").collect();
        assert_eq!(parse(&no_memory, "a", Page::Autorun), Err(FormError::Missing("memory needed")));
        assert_eq!(
            parse(&with(base(), Part::text("memory", "  ")), "a", Page::Autorun),
            Err(FormError::Missing("memory needed"))
        );
        let err = parse(&with(base(), Part::text("memory", "1.5G")), "a", Page::Autorun).unwrap_err();
        assert!(err.to_string().starts_with("memory needed: invalid size `1.5G`"), "{err}");
        assert_eq!(parse(&with(base(), Part::text("memory", "0")), "a", Page::Autorun), Err(FormError::NoMemory));
        let no_program = with(base(), Part::file("program", "", b""));
        assert_eq!(parse(&no_program, "a", Page::Autorun), Err(FormError::Missing("the program file")));
        let mut two = base();
        two.push(Part::file("program", "other", b""));
        assert_eq!(parse(&two, "a", Page::Autorun), Err(FormError::OneProgram(2)));
        assert_eq!(
            parse(&with(base(), Part::text("mode", "fastest")), "a", Page::Autorun),
            Err(FormError::BadMode("fastest".into()))
        );
        let latin1 = with(base(), Part { name: "args".into(), file_name: None, data: vec![0xe9] });
        assert_eq!(parse(&latin1, "a", Page::Autorun), Err(FormError::NotText("args")));
    }

    #[test]
    fn the_interactive_form_names_its_node() {
        assert_eq!(parse(&base(), "a", Page::Interactive), Err(FormError::NoPlace));
        let form = parse(&with(base(), Part::text("place", "osaka/node01")), "a", Page::Interactive).unwrap();
        assert_eq!(form.spec.place, Some(Place { cluster: "osaka".into(), node: "node01".into() }));
        assert_eq!(form.spec.mode, Mode::LocalFirst);
        for bad in ["osaka", "/node01", "osaka/", "a/b/c"] {
            let parts = with(base(), Part::text("place", bad));
            assert_eq!(parse(&parts, "a", Page::Interactive), Err(FormError::BadPlace(bad.into())));
        }
    }

    #[test]
    fn what_was_typed_fills_the_form_again() {
        let mut parts = with(base(), Part::text("place", "osaka/node01"));
        parts.push(Part::text("dlmcc", "on"));
        let typed = typed(&parts);
        assert_eq!(typed.memory, " 4G ");
        assert_eq!(typed.outputs, "result.dat\nlog.txt  final.dat\n");
        assert_eq!(typed.mode, Mode::Equalize);
        assert!(typed.dlmcc);
        assert_eq!(typed.place.as_deref(), Some("osaka/node01"));
        assert_eq!(arguments("a\n\n  \nb c\r\n"), ["a", "b c"]);
    }
}
