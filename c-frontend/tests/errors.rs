//! Errors: clang's diagnostics with the user's file:line, unknown `#pragma dlm` forms, overlapping
//! edits, one libclang at a time.

mod common;

use c_frontend::{apply, Edit, Error, Frontend, Options};

fn rewrite_text(text: &str, args: &[&str]) -> Result<c_frontend::Rewritten, Error> {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.c");
    std::fs::write(&path, text).unwrap();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let _g = common::lock();
    let frontend = Frontend::new()?;
    let r = frontend.rewrite(&path, "src/bad.c", &args, &Options::default());
    drop(frontend);
    r
}

#[test]
fn syntax_error_names_file_and_line() {
    let e = rewrite_text("int main(void) {\n  int x = ;\n  return 0;\n}\n", &[]).unwrap_err();
    let Error::Diagnostics(msg) = e else { panic!("{e:?}") };
    assert!(msg.starts_with("src/bad.c:2:11: error: "), "{msg}");
}

#[test]
fn missing_include_is_an_error() {
    let e = rewrite_text("#include \"no_such_header.h\"\nint x;\n", &[]).unwrap_err();
    let Error::Diagnostics(msg) = e else { panic!("{e:?}") };
    assert!(msg.starts_with("src/bad.c:1:10: fatal error: 'no_such_header.h' file not found"), "{msg}");
}

#[test]
fn flags_are_used() {
    rewrite_text("#ifndef OK\n#error not ok\n#endif\n", &["-DOK"]).unwrap();
    let e = rewrite_text("#ifndef OK\n#error not ok\n#endif\n", &[]).unwrap_err();
    assert!(e.to_string().contains("src/bad.c:2:2: error: not ok"), "{e}");
}

#[test]
fn unknown_pragma_dlm_form() {
    let e = rewrite_text("int a;\n#pragma dlm bogus\nstatic double b[4];\n", &[]).unwrap_err();
    let Error::Diagnostics(msg) = e else { panic!("{e:?}") };
    assert!(msg.starts_with("src/bad.c:2:1: error: unknown form '#pragma dlm bogus'"), "{msg}");
}

#[test]
fn unchanged_file_is_returned_as_is() {
    let text = "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n";
    let r = rewrite_text(text, &[]).unwrap();
    assert!(!r.changed);
    assert!(r.edits.is_empty());
    assert_eq!(r.text, text);
}

#[test]
fn edits_reproduce_the_text() {
    let text = "#include <stdlib.h>\nstatic double a[1 << 18];\nvoid *f(void) { return malloc(4); }\n";
    let r = rewrite_text(text, &[]).unwrap();
    assert_eq!(apply(text, &r.edits).unwrap(), r.text);
    assert_eq!(r.text.lines().count(), text.lines().count() + r.edits[0].replacement.lines().count());
}

#[test]
fn apply_rejects_overlapping_edits() {
    let edits = [Edit { range: 0..4, replacement: "x".into() }, Edit { range: 2..6, replacement: "y".into() }];
    assert!(matches!(apply("abcdefgh", &edits), Err(Error::Overlap { .. })));
    let same = [Edit { range: 0..4, replacement: "x".into() }, Edit { range: 0..4, replacement: "x".into() }];
    assert_eq!(apply("abcdefgh", &same).unwrap(), "xefgh");
    let differ = [Edit { range: 0..4, replacement: "x".into() }, Edit { range: 0..4, replacement: "y".into() }];
    assert!(matches!(apply("abcdefgh", &differ), Err(Error::Overlap { .. })));
}

#[test]
fn one_frontend_at_a_time() {
    let _g = common::lock();
    let first = Frontend::new().unwrap();
    assert!(matches!(Frontend::new(), Err(Error::Libclang(_))));
    drop(first);
    Frontend::new().unwrap();
}

#[test]
fn pragmas_in_skipped_blocks_are_left_alone() {
    let text = "#if 0\n#pragma dlm bogus\n#pragma dlm\n#endif\nstatic double small[4];\nint get(void) { return (int)small[0]; }\n";
    let r = rewrite_text(text, &[]).unwrap();
    assert!(!r.changed, "{}", r.text);
}
