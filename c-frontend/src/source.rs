//! The main file as text plus its raw tokens (from `clang_tokenize`, so preprocessor directives
//! and the text of skipped `#if` blocks appear too), with byte offsets and line numbers.

use std::ops::Range;

use clang::source::File;
use clang::token::TokenKind;
use clang::TranslationUnit;

/// One raw token of the main file.
#[derive(Clone, Debug)]
pub(crate) struct Tok {
    pub kind: TokenKind,
    pub text: String,
    pub start: usize,
    pub end: usize,
    /// Whether the token belongs to a preprocessor directive line or to a skipped `#if` block.
    pub in_directive: bool,
}

impl Tok {
    pub fn is(&self, text: &str) -> bool {
        self.text == text
    }
}

/// The main file: its text, line starts, tokens and directive lines.
pub(crate) struct MainFile<'tu> {
    pub file: File<'tu>,
    pub text: String,
    pub display_name: String,
    /// The path as clang names the file.
    pub path: String,
    line_starts: Vec<usize>,
    pub tokens: Vec<Tok>,
    /// Byte ranges of directive lines (`#` to the end of the logical line, newline excluded).
    pub directives: Vec<Range<usize>>,
    /// Byte ranges of `#if` blocks the preprocessor skipped.
    pub skipped: Vec<Range<usize>>,
}

impl<'tu> MainFile<'tu> {
    pub fn new(tu: &'tu TranslationUnit<'tu>, file: File<'tu>, text: String, display_name: &str) -> MainFile<'tu> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let mut skipped: Vec<Range<usize>> = tu
            .get_skipped_ranges()
            .iter()
            .filter(|r| r.get_start().get_file_location().file.as_ref() == Some(&file))
            .map(|r| r.get_start().get_file_location().offset as usize..r.get_end().get_file_location().offset as usize)
            .collect();
        skipped.sort_by_key(|r| r.start);
        let range =
            clang::source::SourceRange::new(file.get_offset_location(0), file.get_offset_location(text.len() as u32));
        let mut tokens: Vec<Tok> = range
            .tokenize()
            .into_iter()
            .filter(|t| t.get_kind() != TokenKind::Comment)
            .map(|t| {
                let r = t.get_range();
                Tok {
                    kind: t.get_kind(),
                    text: t.get_spelling(),
                    start: r.get_start().get_file_location().offset as usize,
                    end: r.get_end().get_file_location().offset as usize,
                    in_directive: false,
                }
            })
            .filter(|t| t.end <= text.len())
            .collect();
        let mut directives = Vec::new();
        for t in &tokens {
            if t.is("#") && text[line_start_before(&text, t.start)..t.start].trim().is_empty() {
                directives.push(t.start..logical_line_end(&text, t.start));
            }
        }
        // Both lists are sorted and their ranges disjoint: a binary search each.
        let within = |ranges: &[Range<usize>], at: usize| {
            let i = ranges.partition_point(|r| r.start <= at);
            i > 0 && ranges[i - 1].contains(&at)
        };
        for t in &mut tokens {
            t.in_directive = within(&directives, t.start) || within(&skipped, t.start);
        }
        MainFile {
            path: file.get_path().display().to_string(),
            file,
            text,
            display_name: display_name.to_owned(),
            line_starts,
            tokens,
            directives,
            skipped,
        }
    }

    /// 1-based line of a byte offset.
    pub fn line(&self, offset: usize) -> u32 {
        self.line_starts.partition_point(|&s| s <= offset) as u32
    }

    /// Index of the first token starting at or after `offset`.
    pub fn token_at(&self, offset: usize) -> usize {
        self.tokens.partition_point(|t| t.start < offset)
    }

    /// Index of the first code token (outside directives) at or after token index `i`.
    pub fn next_code(&self, mut i: usize) -> Option<usize> {
        while i < self.tokens.len() {
            if !self.tokens[i].in_directive {
                return Some(i);
            }
            i += 1;
        }
        None
    }

    /// Whether `name` is spelled at `offset` in the text (as a whole identifier).
    pub fn spells(&self, offset: usize, name: &str) -> bool {
        self.text.get(offset..offset + name.len()) == Some(name)
            && !self.text[offset + name.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
    }
}

fn line_start_before(text: &str, offset: usize) -> usize {
    text[..offset].rfind('\n').map_or(0, |i| i + 1)
}

/// End of the logical line containing `offset` (backslash-newline continues it), before the
/// newline (and before a `\r` of a `\r\n`).
fn logical_line_end(text: &str, offset: usize) -> usize {
    let bytes = text.as_bytes();
    let mut i = offset;
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            let mut j = i;
            if j > 0 && bytes[j - 1] == b'\r' {
                j -= 1;
            }
            if j > 0 && bytes[j - 1] == b'\\' {
                i += 1;
                continue;
            }
            return j;
        }
        i += 1;
    }
    bytes.len()
}
