//! `#pragma dlm [on|off]` and `__attribute__((dlm))`, found in the main file's raw tokens (clang
//! drops unknown pragmas and attributes from the AST). Both are removed from the rewritten text,
//! so gcc does not warn about them.

use std::ops::Range;

use clang::token::TokenKind;

use crate::edits::Edit;
use crate::source::MainFile;
use crate::Error;

/// `#pragma dlm` / `#pragma dlm on` (move) or `#pragma dlm off` (keep).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PragmaKind {
    On,
    Off,
}

/// One `#pragma dlm` and the code it governs.
#[derive(Clone, Debug)]
pub(crate) struct Pragma {
    pub kind: PragmaKind,
    /// From the first code token after the pragma to the end of the next `;` (outside parentheses).
    pub region: Range<usize>,
}

/// The markers of a file and the edits that remove them.
#[derive(Debug, Default)]
pub(crate) struct Markers {
    pub pragmas: Vec<Pragma>,
    /// Byte ranges of `__attribute__((dlm))` token sequences outside directives.
    pub attributes: Vec<Range<usize>>,
    pub edits: Vec<Edit>,
}

impl Markers {
    /// The pragma that governs a declaration starting at `stmt_start` whose declarator name is at
    /// `name`, if any.
    pub fn pragma_for_decl(&self, stmt_start: usize, name: usize) -> Option<PragmaKind> {
        self.pragmas.iter().find(|p| p.region.start == stmt_start || p.region.contains(&name)).map(|p| p.kind)
    }

    /// Whether a `#pragma dlm off` governs the code at `offset`.
    pub fn off_at(&self, offset: usize) -> bool {
        self.pragmas.iter().any(|p| p.kind == PragmaKind::Off && p.region.contains(&offset))
    }
}

/// Finds the markers of the main file; an unknown `#pragma dlm` form is an error.
pub(crate) fn scan(main: &MainFile) -> Result<Markers, Error> {
    let mut markers = Markers::default();
    for d in &main.directives {
        let first = main.token_at(d.start);
        let toks: Vec<_> = main.tokens[first..].iter().take_while(|t| t.start < d.end).collect();
        if toks.len() < 3 || !toks[1].is("pragma") || !toks[2].is("dlm") {
            continue;
        }
        // Directives inside skipped `#if` blocks are not compiled: leave them alone.
        if is_skipped(main, d) {
            continue;
        }
        let kind = match toks.get(3).map(|t| t.text.as_str()) {
            None | Some("on") if toks.len() <= 4 => PragmaKind::On,
            Some("off") if toks.len() == 4 => PragmaKind::Off,
            _ => {
                let line = main.line(d.start);
                let col = d.start - main.text[..d.start].rfind('\n').map_or(0, |i| i + 1) + 1;
                return Err(Error::Diagnostics(format!(
                    "{}:{line}:{col}: error: unknown form '{}' (expected '#pragma dlm', '#pragma dlm on' or '#pragma dlm off')",
                    main.display_name,
                    main.text[d.clone()].trim_end()
                )));
            }
        };
        // Remove the line's text (with its indentation) but keep the newline.
        let line_start = main.text[..d.start].rfind('\n').map_or(0, |i| i + 1);
        let start = if main.text[line_start..d.start].trim().is_empty() { line_start } else { d.start };
        markers.edits.push(Edit::replace(start..d.end, ""));
        let after = main.token_at(d.end);
        let Some(start) = main.next_code(after) else { continue };
        let mut depth = 0i32;
        let mut end = main.text.len();
        for t in main.tokens[start..].iter().filter(|t| !t.in_directive) {
            match t.text.as_str() {
                "(" => depth += 1,
                ")" => depth -= 1,
                ";" if depth <= 0 => {
                    end = t.end;
                    break;
                }
                _ => {}
            }
        }
        markers.pragmas.push(Pragma { kind, region: main.tokens[start].start..end });
    }

    let toks = &main.tokens;
    for i in 0..toks.len() {
        let seq = &toks[i..(i + 6).min(toks.len())];
        let is_attr = seq.len() == 6
            && !seq[0].in_directive
            && seq[0].is("__attribute__")
            && seq[1].is("(")
            && seq[2].is("(")
            && (seq[3].is("dlm") || seq[3].is("__dlm__"))
            && seq[3].kind == TokenKind::Identifier
            && seq[4].is(")")
            && seq[5].is(")");
        if is_attr {
            let range = seq[0].start..seq[5].end;
            // Also drop one blank after it when it follows a blank, so no double space remains.
            let before = main.text[..range.start].chars().next_back();
            let after = main.text[range.end..].chars().next();
            let removed = if matches!(before, None | Some(' ' | '\t' | '\n')) && matches!(after, Some(' ' | '\t')) {
                range.start..range.end + 1
            } else {
                range.clone()
            };
            markers.edits.push(Edit::replace(removed, ""));
            markers.attributes.push(range);
        }
    }
    Ok(markers)
}

/// Whether a directive lies in a skipped `#if` block.
fn is_skipped(main: &MainFile, d: &Range<usize>) -> bool {
    main.skipped.iter().any(|s| s.start < d.start && d.end <= s.end)
}
