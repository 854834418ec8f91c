//! Every input compiles with gcc after rewriting exactly as well as before: an input that is clean
//! under `-Wall -Wextra -Werror` (its `dlm` markers aside, which the rewrite removes) stays clean,
//! the others still compile. Moved arrays land in the `dlm_statics` section.

mod common;

use std::path::Path;
use std::process::Command;

use c_frontend::{Decision, Subject};

const STRICT: [&str; 3] = ["-Wall", "-Wextra", "-Werror"];

fn gcc(file: &Path, args: &[String], extra: &[&str], out: &Path) -> Result<(), String> {
    let o =
        Command::new("gcc").arg("-c").args(extra).args(args).arg(file).arg("-o").arg(out).output().expect("gcc runs");
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

#[test]
fn inputs_compile_the_same_after_rewriting() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = common::inputs();
    let orig_dir = std::fs::canonicalize(common::inputs_dir()).unwrap();
    let iquote = format!("-iquote{}", orig_dir.display());
    let mut strict_count = 0;
    for input in &inputs {
        let name = input.file_name().unwrap();
        let args = common::args_of(input);
        let obj = tmp.path().join("orig.o");
        let strict_before =
            gcc(input, &args, &[&STRICT[..], &["-Wno-unknown-pragmas", "-Wno-attributes"]].concat(), &obj);
        if strict_before.is_err() {
            gcc(input, &args, &[], &obj).unwrap_or_else(|e| panic!("{name:?} does not compile before rewriting:\n{e}"));
        }

        let r = common::rewrite(input).unwrap_or_else(|e| panic!("{name:?}: {e}"));
        let rewritten = tmp.path().join(name);
        std::fs::write(&rewritten, &r.text).unwrap();
        let obj = tmp.path().join("new.o");
        let flags: Vec<&str> =
            if strict_before.is_ok() { [&STRICT[..], &[iquote.as_str()]].concat() } else { vec![iquote.as_str()] };
        gcc(&rewritten, &args, &flags, &obj)
            .unwrap_or_else(|e| panic!("{name:?} no longer compiles with {flags:?} after rewriting:\n{e}\n{}", r.text));
        if strict_before.is_ok() {
            strict_count += 1;
        }

        let moved_arrays =
            r.report.iter().any(|e| matches!((&e.subject, &e.decision), (Subject::Array { .. }, Decision::Moved(_))));
        if moved_arrays {
            let h = Command::new("objdump").arg("-h").arg(&obj).output().expect("objdump runs");
            assert!(String::from_utf8_lossy(&h.stdout).contains("dlm_statics"), "{name:?}: no dlm_statics section");
        }
    }
    assert!(strict_count >= inputs.len() - 2, "most inputs should be warning-clean: {strict_count}");
}

/// Diagnostics and `__FILE__` still name the user's file and line after the prelude.
#[test]
fn line_directive_keeps_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("warn.c");
    std::fs::write(&src, "static double big[1 << 18];\nint f(void) { int unused; return (int)big[0]; }\n").unwrap();
    let r = {
        let _g = common::lock();
        let fe = c_frontend::Frontend::new().unwrap();
        fe.rewrite(&src, "dir/warn.c", &[], &c_frontend::Options::default()).unwrap()
    };
    let out = tmp.path().join("rewritten.c");
    std::fs::write(&out, &r.text).unwrap();
    let e = gcc(&out, &[], &["-Wall", "-Werror"], &tmp.path().join("w.o")).unwrap_err();
    assert!(e.contains("dir/warn.c:2:"), "{e}");
}
