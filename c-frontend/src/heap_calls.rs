//! References to the C library's allocation functions: renamed to the `__dlm_*` wrappers of the
//! prelude where the name is spelled in the main file (also inside a `#define` there).

use std::collections::{BTreeMap, HashMap, HashSet};

use clang::{Entity, EntityKind, TranslationUnit};

use crate::edits::Edit;
use crate::markers::Markers;
use crate::report::{Decision, Reason, ReportEntry, Rule, Subject};
use crate::source::MainFile;

/// The functions that are renamed, and whether they allocate (reported as allocation sites).
const FUNCTIONS: [(&str, bool); 6] = [
    ("malloc", true),
    ("calloc", true),
    ("realloc", true),
    ("free", false),
    ("posix_memalign", true),
    ("aligned_alloc", true),
];

/// Where a reference's name is written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Spelling {
    /// At these offsets of the main file.
    Main(Vec<usize>),
    /// In a macro defined in this header.
    Header(String),
    /// Nowhere we can find (token pasting, ...).
    Unknown,
}

/// Macro definitions by name, and the definition used by each macro expansion in the main file.
pub(crate) struct Macros<'tu> {
    pub definitions: HashMap<String, Vec<Entity<'tu>>>,
    pub expansions: HashMap<usize, Entity<'tu>>,
}

impl<'tu> Macros<'tu> {
    pub fn new(tu: &'tu TranslationUnit<'tu>, main: &MainFile<'tu>) -> Macros<'tu> {
        let mut definitions: HashMap<String, Vec<Entity>> = HashMap::new();
        let mut expansions = HashMap::new();
        for e in tu.get_entity().get_children() {
            match e.get_kind() {
                EntityKind::MacroDefinition => {
                    if let Some(n) = e.get_name() {
                        definitions.entry(n).or_default().push(e);
                    }
                }
                EntityKind::MacroExpansion => {
                    let Some(loc) = e.get_location().map(|l| l.get_expansion_location()) else { continue };
                    if loc.file.as_ref() == Some(&main.file) {
                        if let Some(def) = e.get_reference() {
                            expansions.insert(loc.offset as usize, def);
                        }
                    }
                }
                _ => {}
            }
        }
        Macros { definitions, expansions }
    }

    /// Where `name` is spelled in the body of `def` or of the macros it uses.
    fn spelling(&self, main: &MainFile, def: Entity, name: &str, seen: &mut HashSet<String>) -> Spelling {
        let Some(macro_name) = def.get_name() else { return Spelling::Unknown };
        if !seen.insert(macro_name) {
            return Spelling::Unknown;
        }
        let Some(range) = def.get_range() else { return Spelling::Unknown };
        let file = range.get_start().get_file_location().file;
        // Skip the macro's name and, for a function-like macro, its parameters.
        let tokens = range.tokenize();
        let mut body = &tokens[1.min(tokens.len())..];
        if def.is_function_like_macro() {
            if let Some(close) = body.iter().position(|t| t.get_spelling() == ")") {
                body = &body[close + 1..];
            }
        }
        let hits: Vec<usize> = body
            .iter()
            .filter(|t| t.get_spelling() == name)
            .map(|t| t.get_range().get_start().get_file_location().offset as usize)
            .collect();
        if !hits.is_empty() {
            return match file {
                Some(f) if f == main.file => Spelling::Main(hits),
                Some(f) => Spelling::Header(f.get_path().display().to_string()),
                None => Spelling::Unknown,
            };
        }
        for t in body {
            if let Some(inner) = self.definitions.get(&t.get_spelling()).and_then(|d| d.last()) {
                let s = self.spelling(main, *inner, name, seen);
                if s != Spelling::Unknown {
                    return s;
                }
            }
        }
        Spelling::Unknown
    }
}

/// One reference to a C library allocation function.
struct Site {
    function: &'static str,
    allocates: bool,
    line: u32,
    off: bool,
    spelling: Spelling,
}

/// Renames the references in `refs` (`DeclRefExpr`s of the main file) and reports the allocation
/// sites. Also returns whether the file references `dlm_startup`.
pub(crate) fn plan(
    main: &MainFile,
    refs: &[Entity],
    macros: &Macros,
    markers: &Markers,
) -> (Vec<Edit>, Vec<ReportEntry>, bool) {
    let mut calls_startup = false;
    let mut sites = Vec::new();
    for r in refs {
        let Some(name) = r.get_name() else { continue };
        if name == "dlm_startup" {
            calls_startup = true;
            continue;
        }
        let Some(&(function, allocates)) = FUNCTIONS.iter().find(|(f, _)| *f == name) else { continue };
        let Some(decl) = r.get_reference() else { continue };
        if decl.get_kind() != EntityKind::FunctionDecl || user_defined(decl) {
            continue;
        }
        let Some(loc) = r.get_location() else { continue };
        let exp = loc.get_expansion_location().offset as usize;
        // For a macro argument the file location is where the argument is written; for a token
        // of a macro body it is the expansion, and the body has to be looked up.
        let file_loc = loc.get_file_location();
        let spelling = if file_loc.file.as_ref() == Some(&main.file) && main.spells(file_loc.offset as usize, function)
        {
            Spelling::Main(vec![file_loc.offset as usize])
        } else if let Some(def) = macros.expansions.get(&exp) {
            macros.spelling(main, *def, function, &mut HashSet::new())
        } else {
            Spelling::Unknown
        };
        sites.push(Site { function, allocates, line: main.line(exp), off: markers.off_at(exp), spelling });
    }

    // A spelling shared by several expansions (a `#define` body) is renamed unless all are off.
    let mut renamed: BTreeMap<&Spelling, bool> = BTreeMap::new();
    for s in &sites {
        *renamed.entry(&s.spelling).or_insert(false) |= !s.off;
    }
    let mut edits = Vec::new();
    let mut report: Vec<ReportEntry> = Vec::new();
    for s in &sites {
        let decision = match &s.spelling {
            Spelling::Main(offsets) if renamed[&s.spelling] => {
                for &o in offsets {
                    edits.push(Edit::replace(o..o + s.function.len(), format!("__dlm_{}", s.function)));
                }
                if !s.allocates {
                    continue;
                }
                Decision::Moved(Rule::AllocationSite)
            }
            Spelling::Main(_) => Decision::Kept(Reason::PragmaOff),
            Spelling::Header(h) => Decision::Kept(Reason::CallInHeader { header: h.clone(), allocates: s.allocates }),
            Spelling::Unknown => Decision::Kept(Reason::CallNotSpelled { allocates: s.allocates }),
        };
        let entry = ReportEntry {
            file: main.display_name.clone(),
            line: s.line,
            subject: Subject::Allocation { function: s.function.to_owned() },
            decision,
        };
        if !report.contains(&entry) {
            report.push(entry);
        }
    }
    (edits, report, calls_startup)
}

/// Whether `decl` (a function named like a C library one) has a body outside system headers.
fn user_defined(decl: Entity) -> bool {
    decl.get_definition().is_some_and(|d| !d.is_in_system_header())
}
