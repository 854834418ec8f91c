//! The include search path of the compiler dlmcc drives, so that the libclang parse finds
//! every header the compiler finds: gcc keeps `omp.h`, its own `stddef.h`, `stdarg.h` and the
//! intrinsics headers in a private directory that libclang does not search.

use anyhow::{Context, Result};
use std::process::Command;

/// The directories `compiler` searches for `#include <...>`, in its order, as it reports them
/// with `-E -v` (the user's `-std`, `-m32` … in `language_flags` can change them).
pub fn system_include_dirs(compiler: &str, language_flags: &[String]) -> Result<Vec<String>> {
    let output = Command::new(compiler)
        .args(language_flags)
        .args(["-E", "-v", "-x", "c", "/dev/null", "-o", "/dev/null"])
        .output()
        .with_context(|| format!("cannot run the C compiler `{compiler}` to ask for its include directories"))?;
    Ok(parse_search_list(&String::from_utf8_lossy(&output.stderr)))
}

/// The lines between `#include <...> search starts here:` and `End of search list.` of a gcc
/// or clang `-v` report (a framework directory's suffix dropped).
fn parse_search_list(report: &str) -> Vec<String> {
    report
        .lines()
        .skip_while(|l| !l.starts_with("#include <...> search starts here:"))
        .skip(1)
        .take_while(|l| !l.starts_with("End of search list."))
        .map(|l| l.trim().trim_end_matches(" (framework directory)").to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Flags that make the parse search `dirs` after its own directories: libclang's built-in
/// headers (which it must understand) come first, anything else the compiler finds is found.
pub fn parse_flags(dirs: &[String]) -> Vec<String> {
    dirs.iter().flat_map(|d| ["-idirafter".to_string(), d.clone()]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gccs_search_list() {
        let report = "ignoring nonexistent directory \"/usr/local/include/x86_64-linux-gnu\"\n\
                      #include \"...\" search starts here:\n\
                      #include <...> search starts here:\n \
                      /usr/lib/gcc/x86_64-linux-gnu/12/include\n \
                      /usr/local/include\n \
                      /usr/include\n\
                      End of search list.\n";
        assert_eq!(
            parse_search_list(report),
            ["/usr/lib/gcc/x86_64-linux-gnu/12/include", "/usr/local/include", "/usr/include"]
        );
        assert_eq!(parse_flags(&["/a".into()]), ["-idirafter", "/a"]);
    }

    #[test]
    fn the_compiler_here_reports_its_own_directory() {
        let dirs = system_include_dirs("cc", &[]).unwrap();
        assert!(dirs.iter().any(|d| d.ends_with("/include")), "{dirs:?}");
    }
}
