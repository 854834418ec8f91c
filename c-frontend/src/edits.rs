//! Edits as data (a byte range of the original text and its replacement), applied in one pass.

use std::ops::Range;

use crate::Error;

/// One change to the original file: replace the bytes in `range` by `replacement`.
///
/// An empty range is an insertion before the byte at `range.start`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edit {
    /// Byte range in the original text.
    pub range: Range<usize>,
    /// The text that takes its place.
    pub replacement: String,
}

impl Edit {
    pub(crate) fn insert(at: usize, text: impl Into<String>) -> Edit {
        Edit { range: at..at, replacement: text.into() }
    }

    pub(crate) fn replace(range: Range<usize>, text: impl Into<String>) -> Edit {
        Edit { range, replacement: text.into() }
    }
}

/// Applies `edits` to `source` in one pass, copying untouched text through.
///
/// The edits may come in any order; they are sorted by range (insertions at the same place keep
/// their given order). Identical duplicates are applied once. Two edits whose ranges overlap are
/// an [`Error::Overlap`], a range outside `source` or not on a character boundary an
/// [`Error::OutOfBounds`].
pub fn apply(source: &str, edits: &[Edit]) -> Result<String, Error> {
    for e in edits {
        let r = &e.range;
        if r.start > r.end
            || r.end > source.len()
            || !source.is_char_boundary(r.start)
            || !source.is_char_boundary(r.end)
        {
            return Err(Error::OutOfBounds { range: r.clone(), len: source.len() });
        }
    }
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| (e.range.start, e.range.end));
    sorted.dedup();

    let mut out = String::with_capacity(source.len() + sorted.iter().map(|e| e.replacement.len()).sum::<usize>());
    let mut pos = 0;
    let mut last: Option<&Edit> = None;
    for e in sorted {
        if let Some(prev) = last {
            if e.range.start < prev.range.end {
                return Err(Error::Overlap { first: prev.range.clone(), second: e.range.clone() });
            }
        }
        out.push_str(&source[pos..e.range.start]);
        out.push_str(&e.replacement);
        pos = e.range.end;
        last = Some(e);
    }
    out.push_str(&source[pos..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_in_order_and_merges_duplicates() {
        let edits = vec![
            Edit::replace(4..5, "B"),
            Edit::insert(0, "<"),
            Edit::replace(4..5, "B"),
            Edit::insert(9, ">"),
            Edit::insert(0, "!"),
        ];
        assert_eq!(apply("abcdefghi", &edits).unwrap(), "<!abcdBfghi>");
    }

    #[test]
    fn rejects_overlaps_and_bad_ranges() {
        let overlap = [Edit::replace(1..4, "x"), Edit::replace(3..5, "y")];
        assert!(matches!(apply("abcdef", &overlap), Err(Error::Overlap { .. })));
        let inside = [Edit::replace(1..4, "x"), Edit::insert(2, "y")];
        assert!(matches!(apply("abcdef", &inside), Err(Error::Overlap { .. })));
        assert!(matches!(apply("abc", &[Edit::insert(4, "x")]), Err(Error::OutOfBounds { .. })));
        assert!(matches!(apply("é", &[Edit::insert(1, "x")]), Err(Error::OutOfBounds { .. })));
    }
}
