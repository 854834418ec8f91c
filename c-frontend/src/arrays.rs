//! Static-storage arrays: which ones move into DLM memory (size, `#pragma dlm`,
//! `__attribute__((dlm))`) and why the others stay, the registration record after each
//! declaration statement, and for marked arrays the `aligned(4096)` attribute after the
//! declarator.
//!
//! The runtime adopts the whole 4 KiB pages inside an array. An array chosen by size keeps the
//! linker's placement, so its cache behaviour is the native build's (fourteen grids all starting
//! on a page boundary alias in the cache); it loses at most two partial pages to ordinary
//! memory. A marked array may be small, so it is aligned to lose nothing.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use clang::{Entity, EntityKind, StorageClass, TypeKind};

use crate::edits::Edit;
use crate::markers::{Markers, PragmaKind};
use crate::prelude::c_string;
use crate::report::{Decision, Linkage, Reason, ReportEntry, Rule, Subject};
use crate::source::{MainFile, Tok};

/// The text inserted after each marked declarator.
pub(crate) const ALIGNED: &str = " __attribute__((aligned(4096)))";

/// One array variable declaration of the main file.
struct Var<'tu> {
    entity: Entity<'tu>,
    name: String,
    /// Offset of the declarator's name (expansion location).
    name_off: usize,
    /// Offset where the declaration statement starts.
    stmt_start: usize,
    in_macro: bool,
    /// Identifies the variable across redeclarations.
    key: String,
}

/// The tokens of one declarator, from its name to the end of its statement.
#[derive(Clone, Debug)]
struct Declarator {
    /// Where the `aligned` attribute goes: the end of the declarator's last token.
    insert_at: usize,
    has_eq: bool,
    /// Start of the `,` or `;` that ends this declarator.
    end: usize,
    /// End of the `;` that ends the statement.
    stmt_end: usize,
    /// `[...]` ranges of the declarator (array bounds).
    brackets: Vec<Range<usize>>,
}

/// Decides about every array variable in `vars` and returns the edits and the report.
pub(crate) fn plan(
    main: &MainFile,
    vars: &[Entity],
    markers: &Markers,
    threshold: u64,
) -> (Vec<Edit>, Vec<ReportEntry>) {
    let vars: Vec<Var> = vars.iter().filter_map(|e| var(main, *e)).collect();
    let decls: Vec<Option<Declarator>> = vars
        .iter()
        .map(|v| if v.in_macro { None } else { declarator(main, v.name_off, &markers.attributes) })
        .collect();
    let mut edits = Vec::new();
    let mut report = Vec::new();
    let mut records: BTreeMap<usize, String> = BTreeMap::new();
    let mut record_names = HashSet::new();
    let mut done: HashSet<String> = HashSet::new();
    let mut small: HashSet<String> = HashSet::new();

    for (i, v) in vars.iter().enumerate() {
        let e = v.entity;
        let Some(ty) = e.get_type() else { continue };
        let storage = e.get_storage_class();
        if storage == Some(StorageClass::Extern) {
            continue;
        }
        let attribute = markers.attributes.iter().any(|a| attribute_applies(main, a, &vars, &decls, i));
        let pragma = markers.pragma_for_decl(v.stmt_start, v.name_off);
        let marked = attribute || pragma == Some(PragmaKind::On);
        let line = main.line(v.name_off);
        let is_array = ty.get_canonical_type().get_kind() == TypeKind::ConstantArray;
        let bytes = ty.get_sizeof().map_or(0, |s| s as u64);
        let file_scope = e.get_semantic_parent().is_some_and(|p| p.get_kind() == EntityKind::TranslationUnit);
        let is_static = match storage {
            Some(StorageClass::Static) => true,
            Some(StorageClass::None) | None => file_scope,
            _ => false,
        };
        let linkage =
            if file_scope && storage != Some(StorageClass::Static) { Linkage::External } else { Linkage::Internal };
        // An unnamed struct's type names the file it is in: show the user's name for it.
        let type_name = ty.get_display_name().replace(&main.path, &main.display_name);
        let subject = Subject::Array { name: v.name.clone(), type_name, bytes, linkage };
        let mut keep = |why: Reason| {
            report.push(ReportEntry {
                file: main.display_name.clone(),
                line,
                subject: subject.clone(),
                decision: Decision::Kept(why),
            })
        };
        if !is_array {
            if marked {
                keep(Reason::NotConstantSize);
            }
            continue;
        }
        if !(marked || bytes >= threshold) {
            // Counted once per array, however often it is declared.
            if is_static && small.insert(v.key.clone()) {
                keep(Reason::BelowThreshold(threshold));
            }
            continue;
        }
        if pragma == Some(PragmaKind::Off) {
            keep(Reason::PragmaOff);
            continue;
        }
        if !is_static {
            if marked {
                keep(Reason::AutomaticStorage);
            }
            continue;
        }
        if e.get_tls_kind().is_some() {
            keep(Reason::ThreadLocal);
            continue;
        }
        let Some(d) = decls[i].clone() else {
            keep(Reason::DeclaredByMacro);
            continue;
        };
        let has_init = e.get_children().iter().any(|c| {
            let off = c.get_location().map(|l| l.get_expansion_location().offset as usize);
            c.is_expression()
                && off.is_some_and(|o| o > v.name_off && o < d.stmt_end && !d.brackets.iter().any(|b| b.contains(&o)))
        });
        if marked && has_init && !d.has_eq {
            keep(Reason::InitializerByMacro);
            continue;
        }
        // A file-scope array may be declared (tentatively) more than once: move it once, at the
        // declaration with the initializer, else the first.
        if done.contains(&v.key) {
            continue;
        }
        if !has_init && file_scope && vars[i + 1..].iter().any(|w| w.key == v.key && w.entity.is_definition()) {
            continue;
        }
        done.insert(v.key.clone());

        let rule = if attribute {
            Rule::Attribute
        } else if pragma == Some(PragmaKind::On) {
            Rule::Pragma
        } else {
            Rule::Threshold(threshold)
        };
        if marked {
            edits.push(Edit::insert(d.insert_at, ALIGNED));
        }
        let mut rec = format!("__dlm_rec_{}_{line}", v.name);
        let mut n = 1;
        while !record_names.insert(rec.clone()) {
            n += 1;
            rec = format!("__dlm_rec_{}_{line}_{n}", v.name);
        }
        let site = c_string(&format!("{}:{line}", main.display_name));
        records.entry(d.stmt_end).or_default().push_str(&format!(
            " static const struct __dlm_static {rec} __attribute__((section(\"dlm_statics\"), used)) = \
             {{ (void *)&{name}, sizeof {name}, \"{name}\", {site}, {flags}UL }};",
            name = v.name,
            flags = u8::from(has_init),
        ));
        report.push(ReportEntry { file: main.display_name.clone(), line, subject, decision: Decision::Moved(rule) });
    }
    edits.extend(records.into_iter().map(|(at, text)| Edit::insert(at, text)));
    (edits, report)
}

fn var<'tu>(main: &MainFile, e: Entity<'tu>) -> Option<Var<'tu>> {
    let name = e.get_name()?;
    let loc = e.get_location()?;
    let exp = loc.get_expansion_location().offset as usize;
    let file = loc.get_file_location().offset as usize;
    let range = e.get_range()?;
    let end = range.get_end();
    let in_macro = exp != file
        || !main.spells(exp, &name)
        || end.get_expansion_location().offset != end.get_file_location().offset;
    Some(Var {
        entity: e,
        name,
        name_off: exp,
        stmt_start: range.get_start().get_expansion_location().offset as usize,
        in_macro,
        key: canonical_key(e),
    })
}

/// Scans the tokens from a declarator's name to the end of its statement, skipping the
/// `__attribute__((dlm))`s (which are removed).
fn declarator(main: &MainFile, name_off: usize, dlm_attributes: &[Range<usize>]) -> Option<Declarator> {
    let first = main.token_at(name_off);
    if main.tokens.get(first)?.start != name_off {
        return None;
    }
    let mut depth = 0i32;
    let mut open_brackets = Vec::new();
    let mut brackets = Vec::new();
    let mut insert_at = None;
    let mut has_eq = false;
    let mut end = None;
    let mut prev_end = main.tokens[first].end;
    let code = |t: &&Tok| !t.in_directive && !dlm_attributes.iter().any(|a| a.contains(&t.start));
    for t in main.tokens[first + 1..].iter().filter(code) {
        match t.text.as_str() {
            "(" | "{" => depth += 1,
            "[" => {
                depth += 1;
                open_brackets.push(t.start);
            }
            ")" | "}" => depth -= 1,
            "]" => {
                depth -= 1;
                if let Some(s) = open_brackets.pop() {
                    if insert_at.is_none() {
                        brackets.push(s..t.end);
                    }
                }
            }
            "=" | "," if depth <= 0 && insert_at.is_none() => {
                insert_at = Some(prev_end);
                has_eq = t.is("=");
                if t.is(",") {
                    end = Some(t.start);
                }
            }
            "," if depth <= 0 && end.is_none() => end = Some(t.start),
            ";" if depth <= 0 => {
                return Some(Declarator {
                    insert_at: insert_at.unwrap_or(prev_end),
                    has_eq,
                    end: end.unwrap_or(t.start),
                    stmt_end: t.end,
                    brackets,
                });
            }
            _ => {}
        }
        prev_end = t.end;
    }
    None
}

/// Whether the `__attribute__((dlm))` at `a` marks `vars[i]`: written in its declarator (after
/// the `,` before it), or leading the statement before its first declarator's name.
fn attribute_applies(main: &MainFile, a: &Range<usize>, vars: &[Var], decls: &[Option<Declarator>], i: usize) -> bool {
    let v = &vars[i];
    let Some(d) = &decls[i] else { return false };
    let group = || (0..vars.len()).filter(|&j| vars[j].stmt_start == v.stmt_start);
    let first = group().map(|j| vars[j].name_off).min().unwrap_or(v.name_off);
    if a.start >= v.stmt_start && a.start < first {
        return true;
    }
    if a.start < v.stmt_start {
        // `__attribute__((dlm)) static int a[N];` when the statement's extent starts after it.
        return main.next_code(main.token_at(a.end)).is_some_and(|n| main.tokens[n].start == v.stmt_start);
    }
    // The declarator starts after the end of the previous one (its `,`).
    let start = group()
        .filter(|&j| vars[j].name_off < v.name_off)
        .filter_map(|j| decls[j].as_ref().map(|p| p.end))
        .max()
        .unwrap_or(first);
    a.start > start && a.start < d.end
}

pub(crate) fn canonical_key(e: Entity) -> String {
    let c = e.get_canonical_entity();
    let loc = c.get_location().map(|l| {
        let l = l.get_expansion_location();
        (l.file.map(|f| f.get_path()), l.offset)
    });
    format!("{:?}{:?}", c.get_name(), loc)
}
