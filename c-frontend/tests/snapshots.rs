//! The rewritten text and report of each input, compared with the stored snapshot.

mod common;

use c_frontend::Options;

/// The snapshot body: the report, then the text with the prelude folded to one line (its full
/// text is checked once, in `prelude_text`).
fn render(name: &str) -> String {
    let path = common::inputs_dir().join(name);
    let r = common::rewrite(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut out = String::from("--- report\n");
    for e in &r.report {
        out.push_str(&format!("{e}\n"));
    }
    out.push_str(&format!("--- changed: {}\n", r.changed));
    let text = match r.text.find("#line 1 ") {
        Some(i) if r.changed => {
            let startup = if r.text[..i].contains("__stop_dlm_statics, 1)") { 1 } else { 0 };
            format!("<prelude startup={startup}>\n{}", &r.text[i..])
        }
        _ => r.text.clone(),
    };
    out.push_str(&text);
    out
}

macro_rules! snapshot_tests {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            insta::assert_snapshot!(render(concat!(stringify!($name), ".c")));
        }
    )*};
}

snapshot_tests!(
    macro_dims,
    element_types,
    multi_declarators,
    initialized_tables,
    static_locals,
    tentative,
    extern_decls,
    define_malloc,
    implicit_malloc,
    user_malloc,
    pragma_on,
    pragma_off,
    attribute_dlm,
    thread_local,
    macro_declared,
    c89_pedantic,
    header_macro,
    startup,
    nothing,
);

#[test]
fn every_input_has_a_snapshot_test() {
    let snaps = common::inputs_dir().join("../snapshots");
    for input in common::inputs() {
        let stem = input.file_stem().unwrap().to_str().unwrap().to_owned();
        assert!(snaps.join(format!("snapshots__{stem}.snap")).exists(), "no snapshot for {stem}");
    }
}

#[test]
fn prelude_text() {
    let path = common::inputs_dir().join("startup.c");
    let r = common::rewrite_with(&path, &common::args_of(&path), &Options { threshold: 65536 }).unwrap();
    let i = r.text.find("#line 1 ").unwrap();
    insta::assert_snapshot!(&r.text[..i + r.text[i..].find('\n').unwrap() + 1]);
}
