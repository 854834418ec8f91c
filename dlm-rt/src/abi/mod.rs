//! DLM's C ABI: what C programs call and what dlmcc links into them. Stands on `runtime`.
//!
//! - `capi`: the functions of `include/dlm.h` (`dlm_startup`, `dlm_alloc`, `dlm_free`,
//!   `dlm_advise`, `dlm_get_stats`, `dlm_shutdown`).
//! - `rewritten`: the start and end of code rewritten by dlmcc: static arrays registered and
//!   adopted in place, DLM started before `main` and stopped after the last destructor.
//! - `alloc`: rewritten code's `malloc` family, by dlmcc's threshold (pages of their own, the
//!   small-block heap, or the C library).
//! - `routing`: `free`, `realloc` and `malloc_usable_size` by address, for rewritten code and
//!   for the whole process (`interpose.c` calls them).
//! - `small`: the small-block heap, mimalloc over the arena of `heap::arena`.
//! - `io`: the hooks of the I/O functions of `interpose_io.c` (holds in user-only mode).
//! - `interpose.c`, `interpose_io.c`: the C library functions dlmcc compiles into every
//!   program it links (dlmcc embeds them).

mod alloc;
mod capi;
mod io;
mod rewritten;
mod routing;
mod small;
