//! Static-storage arrays defined in the program's own headers (`static double u[5][KMAX][JMAX]`
//! in `header.h`, sizes from a generated `npbparams.h`). A header is never edited: the main
//! file that includes it gets the array's registration record appended at its end, where the
//! array is in scope. A `static` array has its own copy in every file that includes the header,
//! and each copy is registered by its file; a non-static one (a tentative definition shared
//! with `-fcommon`) is one array, registered by every file that includes the header, which the
//! runtime adopts once (by address).

use clang::{Entity, EntityKind, StorageClass, TypeKind};

use crate::edits::Edit;
use crate::prelude::c_string;
use crate::report::{Decision, Linkage, Reason, ReportEntry, Rule, Subject};
use crate::source::MainFile;

/// Records and report entries for the header arrays in `vars` that are not also declared in
/// the main file (those are the main file's to decide about): the arrays that reach
/// `threshold` move; the others are reported as kept, with the reason.
pub(crate) fn plan(
    main: &MainFile,
    vars: &[Entity],
    main_keys: &[String],
    threshold: u64,
) -> (Vec<Edit>, Vec<ReportEntry>) {
    let mut records = String::new();
    let mut moved = 0;
    let mut report = Vec::new();
    let mut done: Vec<String> = main_keys.to_vec();
    for &e in vars {
        let Some(array) = HeaderArray::of(e) else { continue };
        let key = crate::arrays::canonical_key(e);
        if done.contains(&key) {
            continue;
        }
        done.push(key);
        let decision = match array.kept_because(threshold) {
            Some(reason) => Decision::Kept(reason),
            None => {
                let site = c_string(&format!("{}:{}", array.file, array.line));
                records.push_str(&format!(
                    " static const struct __dlm_static __dlm_rec_h{} __attribute__((section(\"dlm_statics\"), used)) = \
                     {{ (void *)&{name}, sizeof {name}, \"{name}\", {site}, {flags}UL }};",
                    moved,
                    name = array.name,
                    flags = u8::from(array.initialized),
                ));
                moved += 1;
                Decision::Moved(Rule::Threshold(threshold))
            }
        };
        let linkage = if array.is_static { Linkage::Internal } else { Linkage::External };
        report.push(ReportEntry {
            file: array.file,
            line: array.line,
            subject: Subject::Array { name: array.name, type_name: array.type_name, bytes: array.bytes, linkage },
            decision,
        });
    }
    if records.is_empty() {
        return (Vec::new(), report);
    }
    // On a line of its own after everything, so that no line of the file moves.
    let end = main.text.len();
    let newline = if main.text.ends_with('\n') { "" } else { "\n" };
    (vec![Edit::insert(end, format!("{newline}{}\n", records.trim_start()))], report)
}

/// A file-scope, static-storage, constant-size array defined in a header.
struct HeaderArray {
    name: String,
    file: String,
    line: u32,
    type_name: String,
    bytes: u64,
    initialized: bool,
    is_static: bool,
    thread_local: bool,
    in_system_header: bool,
}

impl HeaderArray {
    /// `e` if it is a file-scope, static-storage, constant-size array defined (not only
    /// declared `extern`) in a header.
    fn of(e: Entity) -> Option<HeaderArray> {
        if e.get_kind() != EntityKind::VarDecl || e.get_storage_class() == Some(StorageClass::Extern) {
            return None;
        }
        let ty = e.get_type()?;
        if ty.get_canonical_type().get_kind() != TypeKind::ConstantArray {
            return None;
        }
        let location = e.get_location()?.get_file_location();
        let path = location.file?.get_path();
        Some(HeaderArray {
            name: e.get_name()?,
            file: path.strip_prefix("./").unwrap_or(&path).display().to_string(),
            line: location.line,
            type_name: ty.get_display_name(),
            bytes: ty.get_sizeof().ok()? as u64,
            initialized: has_initializer(e),
            is_static: e.get_storage_class() == Some(StorageClass::Static),
            thread_local: e.get_tls_kind().is_some(),
            in_system_header: e.is_in_system_header(),
        })
    }

    /// Why it stays in ordinary memory, or `None` if it moves.
    fn kept_because(&self, threshold: u64) -> Option<Reason> {
        if self.in_system_header {
            Some(Reason::SystemHeader)
        } else if self.bytes < threshold {
            Some(Reason::BelowThreshold(threshold))
        } else if self.thread_local {
            Some(Reason::ThreadLocal)
        } else {
            None
        }
    }
}

/// Whether the declaration has `=` at its top level after the name: an initializer.
fn has_initializer(e: Entity) -> bool {
    let Some(range) = e.get_range() else { return false };
    let name = e.get_name().unwrap_or_default();
    let mut depth = 0i32;
    let mut after_name = false;
    for token in range.tokenize() {
        let text = token.get_spelling();
        match text.as_str() {
            "[" | "(" | "{" => depth += 1,
            "]" | ")" | "}" => depth -= 1,
            "=" if depth == 0 && after_name => return true,
            _ if text == name => after_name = true,
            _ => {}
        }
    }
    false
}
