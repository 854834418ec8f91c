//! The C text put before a rewritten file: the registration record type, the constructors that
//! hand the records to the runtime and start DLM, the destructor that shuts it down (priority
//! 101: the last to run, after `atexit` handlers and the program's other destructors), and the
//! `__dlm_*` allocation wrappers; then a `#line` back to the user's file.

/// The prelude for a file named `display_name`, with the allocation threshold and whether the
/// file calls `dlm_startup` itself.
pub(crate) fn prelude(display_name: &str, threshold: u64, calls_startup: bool) -> String {
    let t = format!("{threshold}UL");
    let startup = u8::from(calls_startup);
    format!(
        "\
struct __dlm_static {{ void *addr; __SIZE_TYPE__ size; const char *name; const char *site; unsigned long flags; }} __attribute__((aligned(64)));
extern const struct __dlm_static __start_dlm_statics[] __attribute__((weak, visibility(\"hidden\")));
extern const struct __dlm_static __stop_dlm_statics[] __attribute__((weak, visibility(\"hidden\")));
void __dlm_register(const struct __dlm_static *, const struct __dlm_static *, int);
void __dlm_autostart(void);
static void __attribute__((constructor(101), used)) __dlm_ctor_register(void) {{ __dlm_register(__start_dlm_statics, __stop_dlm_statics, {startup}); }}
static void __attribute__((constructor(102), used)) __dlm_ctor_start(void) {{ __dlm_autostart(); }}
void __dlm_exit(void);
static void __attribute__((destructor(101), used)) __dlm_dtor_exit(void) {{ __dlm_exit(); }}
void *__dlm_rt_malloc(__SIZE_TYPE__, __SIZE_TYPE__);
void *__dlm_rt_calloc(__SIZE_TYPE__, __SIZE_TYPE__, __SIZE_TYPE__);
void *__dlm_rt_realloc(void *, __SIZE_TYPE__, __SIZE_TYPE__);
void __dlm_rt_free(void *);
int __dlm_rt_posix_memalign(void **, __SIZE_TYPE__, __SIZE_TYPE__, __SIZE_TYPE__);
void *__dlm_rt_aligned_alloc(__SIZE_TYPE__, __SIZE_TYPE__, __SIZE_TYPE__);
static __inline__ __attribute__((unused)) void *__dlm_malloc(__SIZE_TYPE__ n) {{ return __dlm_rt_malloc(n, {t}); }}
static __inline__ __attribute__((unused)) void *__dlm_calloc(__SIZE_TYPE__ n, __SIZE_TYPE__ s) {{ return __dlm_rt_calloc(n, s, {t}); }}
static __inline__ __attribute__((unused)) void *__dlm_realloc(void *p, __SIZE_TYPE__ n) {{ return __dlm_rt_realloc(p, n, {t}); }}
static __inline__ __attribute__((unused)) void __dlm_free(void *p) {{ __dlm_rt_free(p); }}
static __inline__ __attribute__((unused)) int __dlm_posix_memalign(void **p, __SIZE_TYPE__ a, __SIZE_TYPE__ n) {{ return __dlm_rt_posix_memalign(p, a, n, {t}); }}
static __inline__ __attribute__((unused)) void *__dlm_aligned_alloc(__SIZE_TYPE__ a, __SIZE_TYPE__ n) {{ return __dlm_rt_aligned_alloc(a, n, {t}); }}
#line 1 {name}
",
        name = c_string(display_name),
    )
}

/// `s` as a C string literal: quotes, backslashes and control characters escaped.
pub(crate) fn c_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_names() {
        assert_eq!(c_string(r#"dir\a "b".c"#), r#""dir\\a \"b\".c""#);
        let p = prelude("x.c", 1 << 20, true);
        assert!(p.contains("1048576UL"));
        assert!(p.ends_with("#line 1 \"x.c\"\n"));
    }
}
