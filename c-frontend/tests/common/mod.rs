//! Test helpers: one libclang at a time, the inputs and their flags.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use c_frontend::{Error, Frontend, Options, Rewritten};

/// libclang may be loaded once per process at a time; cargo runs tests on threads.
static CLANG: Mutex<()> = Mutex::new(());

pub fn lock() -> MutexGuard<'static, ()> {
    CLANG.lock().unwrap_or_else(|e| e.into_inner())
}

/// `tests/inputs`, relative to the package (the tests' working directory), so that paths in
/// reports do not depend on where the repository is.
pub fn inputs_dir() -> PathBuf {
    assert!(Path::new("tests/inputs").is_dir(), "tests must run in the c-frontend package directory");
    PathBuf::from("tests/inputs")
}

/// Every `.c` file of `tests/inputs`, sorted.
pub fn inputs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(inputs_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    v.sort();
    v
}

/// The flags on an input's first line: `/* args: -std=c99 */`.
pub fn args_of(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let first = text.lines().next().unwrap_or("");
    first
        .strip_prefix("/* args:")
        .and_then(|r| r.strip_suffix("*/"))
        .map(|r| r.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The name an input is shown under: `inputs/x.c`.
pub fn display_name(path: &Path) -> String {
    format!("inputs/{}", path.file_name().unwrap().to_str().unwrap())
}

/// Rewrites an input with its own flags and the default options.
pub fn rewrite(path: &Path) -> Result<Rewritten, Error> {
    rewrite_with(path, &args_of(path), &Options::default())
}

pub fn rewrite_with(path: &Path, args: &[String], options: &Options) -> Result<Rewritten, Error> {
    let _guard = lock();
    let frontend = Frontend::new()?;
    let r = frontend.rewrite(path, &display_name(path), args, options);
    drop(frontend); // before the guard
    r
}
