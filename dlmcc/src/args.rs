//! Reads a compiler command line the way `cc` does, enough to know its C sources, whether it
//! links, which flags decide how a source parses, and which flags only the linker wants.

use std::path::{Path, PathBuf};

/// Options whose value is the next argument.
const TAKES_VALUE: [&str; 21] = [
    "-o",
    "-MF",
    "-MT",
    "-MQ",
    "-include",
    "-imacros",
    "-I",
    "-isystem",
    "-iquote",
    "-idirafter",
    "-D",
    "-U",
    "-L",
    "-l",
    "-x",
    "-Xlinker",
    "-Xpreprocessor",
    "-Xassembler",
    "-u",
    "-T",
    "--param",
];

/// Flags that change how a file preprocesses or parses, given to the C front end. Values of
/// the options in [`TAKES_VALUE`] among them follow as separate arguments.
const PARSE_PREFIXES: [&str; 15] = [
    "-I",
    "-D",
    "-U",
    "-include",
    "-imacros",
    "-isystem",
    "-iquote",
    "-idirafter",
    "-std=",
    "-O",
    "-m32",
    "-m64",
    "--sysroot",
    "-funsigned-char",
    "-fsigned-char",
];
/// Flags that choose what the compiler produces code for.
const TARGET_PREFIXES: [&str; 4] = ["-m32", "-m64", "--sysroot", "-march="];
const PARSE_FLAGS: [&str; 4] = ["-ansi", "-pthread", "-nostdinc", "-fms-extensions"];

/// Flags that only matter when linking: left out when dlmcc compiles a source on its own.
fn link_only(arg: &str) -> bool {
    ["-l", "-L", "-Wl,", "-shared", "-static", "-rdynamic", "-Xlinker", "-u", "-T", "-pie", "-no-pie", "-s"]
        .iter()
        .any(|p| if p.ends_with(',') || p.len() == 2 { arg.starts_with(p) } else { arg == *p })
}

/// One argument of the command line with what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A C source file.
    Source(PathBuf),
    /// Another input (object, archive, assembly…).
    Input(String),
    /// An option, with its value if it takes one as the next argument.
    Option(String, Option<String>),
}

impl Arg {
    pub fn words(&self) -> Vec<String> {
        match self {
            Arg::Source(path) => vec![path.display().to_string()],
            Arg::Input(input) => vec![input.clone()],
            Arg::Option(flag, None) => vec![flag.clone()],
            Arg::Option(flag, Some(value)) => vec![flag.clone(), value.clone()],
        }
    }

    fn is_option(&self, names: &[&str]) -> bool {
        matches!(self, Arg::Option(flag, _) if names.contains(&flag.as_str()))
    }
}

/// A parsed command line.
#[derive(Debug)]
pub struct CommandLine {
    pub args: Vec<Arg>,
}

impl CommandLine {
    pub fn parse(words: &[String]) -> Self {
        let mut args = Vec::new();
        let mut language_c = false;
        let mut words = words.iter();
        while let Some(word) = words.next() {
            let arg = if TAKES_VALUE.contains(&word.as_str()) {
                let value = words.next().cloned();
                if word == "-x" {
                    language_c = value.as_deref() == Some("c");
                }
                Arg::Option(word.clone(), value)
            } else if word.starts_with('-') && word.len() > 1 {
                if let Some(language) = word.strip_prefix("-x") {
                    language_c = language == "c";
                }
                Arg::Option(word.clone(), None)
            } else if word.ends_with(".c") || (language_c && word != "-") {
                Arg::Source(PathBuf::from(word))
            } else {
                Arg::Input(word.clone())
            };
            args.push(arg);
        }
        CommandLine { args }
    }

    /// Whether the compiler stops before linking.
    pub fn compiles_only(&self) -> bool {
        self.args.iter().any(|a| a.is_option(&["-c", "-S"])) || self.preprocesses_only()
    }

    /// Whether the compiler only preprocesses or lists dependencies (nothing to rewrite).
    pub fn preprocesses_only(&self) -> bool {
        self.args.iter().any(|a| a.is_option(&["-E", "-M", "-MM"]))
    }

    /// The dependency file a compile-only command writes for `source` with `-MD`/`-MMD`.
    pub fn dependency_file(&self, source: &Path) -> Option<PathBuf> {
        let value_of = |name: &str| {
            self.args.iter().find_map(|a| match a {
                Arg::Option(flag, Some(value)) if flag == name => Some(PathBuf::from(value)),
                _ => None,
            })
        };
        if !self.args.iter().any(|a| a.is_option(&["-MD", "-MMD"])) {
            return None;
        }
        value_of("-MF")
            .or_else(|| value_of("-o").map(|out| out.with_extension("d")))
            .or_else(|| source.file_name().map(|name| Path::new(name).with_extension("d")))
    }

    pub fn links(&self) -> bool {
        !self.compiles_only()
    }

    pub fn sources(&self) -> impl Iterator<Item = &PathBuf> {
        self.args.iter().filter_map(|a| match a {
            Arg::Source(path) => Some(path),
            _ => None,
        })
    }

    /// The flags the C front end needs to parse a source as the compiler will.
    pub fn parse_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        for arg in &self.args {
            if let Arg::Option(flag, _) = arg {
                if PARSE_FLAGS.contains(&flag.as_str()) || PARSE_PREFIXES.iter().any(|p| flag.starts_with(p)) {
                    flags.extend(arg.words());
                }
            }
        }
        flags
    }

    /// The flags that choose the target (`-m32`, `--sysroot` …): DLM's own C files are compiled
    /// with these only, so that the program's macros, forced includes and language standard
    /// cannot change them.
    pub fn target_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        for arg in &self.args {
            if let Arg::Option(flag, _) = arg {
                if TARGET_PREFIXES.iter().any(|p| flag.starts_with(p)) {
                    flags.extend(arg.words());
                }
            }
        }
        flags
    }

    /// The words of the command with `source` alone as input and without what only the linker
    /// wants: how one source is compiled by itself (`-o` dropped; the caller adds its own).
    pub fn single_source_compile(&self, source: &PathBuf, replacement: &str) -> Vec<String> {
        let mut words = Vec::new();
        for arg in &self.args {
            match arg {
                Arg::Source(path) if path == source => words.push(replacement.to_string()),
                Arg::Source(_) | Arg::Input(_) => {}
                Arg::Option(flag, _) if flag == "-o" || link_only(flag) => {}
                other => words.extend(other.words()),
            }
        }
        words
    }

    /// The words of the whole command with some sources replaced by other inputs.
    pub fn with_replacements(&self, replace: impl Fn(&PathBuf) -> Option<String>) -> Vec<String> {
        self.args
            .iter()
            .flat_map(|arg| match arg {
                Arg::Source(path) => vec![replace(path).unwrap_or_else(|| path.display().to_string())],
                other => other.words(),
            })
            .collect()
    }

    /// The words of the command with only `source` of all the sources kept (and replaced).
    pub fn only_source(&self, source: &PathBuf, replacement: &str) -> Vec<String> {
        self.args
            .iter()
            .flat_map(|arg| match arg {
                Arg::Source(path) if path == source => vec![replacement.to_string()],
                Arg::Source(_) => vec![],
                other => other.words(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_sources_and_mode() {
        let line = CommandLine::parse(&words(&["-O2", "-I", "inc", "-o", "prog", "a.c", "b.o", "-lm", "-DN=4"]));
        assert_eq!(line.sources().collect::<Vec<_>>(), vec![&PathBuf::from("a.c")]);
        assert!(line.links());
        assert_eq!(line.parse_flags(), words(&["-O2", "-I", "inc", "-DN=4"]));
        assert_eq!(
            line.single_source_compile(&PathBuf::from("a.c"), "/t/a.c"),
            words(&["-O2", "-I", "inc", "/t/a.c", "-DN=4"])
        );
        let line = CommandLine::parse(&words(&["-c", "x.c", "-o", "x.o"]));
        assert!(line.compiles_only());
        let line = CommandLine::parse(&words(&["-x", "c", "prog.src", "-E"]));
        assert_eq!(line.sources().count(), 1);
        assert!(line.preprocesses_only());
    }

    #[test]
    fn value_of_an_option_is_not_a_source() {
        let line = CommandLine::parse(&words(&["-MF", "deps.c", "-include", "pre.c", "main.c"]));
        assert_eq!(line.sources().collect::<Vec<_>>(), vec![&PathBuf::from("main.c")]);
        assert_eq!(line.parse_flags(), words(&["-include", "pre.c"]));
    }
}
