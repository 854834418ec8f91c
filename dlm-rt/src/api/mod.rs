//! DLM's Rust API besides the attributes: [`DlmBox`] (a value or slice in DLM memory),
//! [`DlmVec`] (a growable vector), [`DlmStatic`] (what `#[dlm] static` makes), and
//! [`read_exact`]/[`write_all`] (I/O into DLM memory in any fault mode). Stands on `runtime`.

mod boxed;
mod io;
mod statics;
mod vec;

pub use boxed::DlmBox;
pub use io::{read_exact, write_all};
pub use statics::{DlmReadGuard, DlmStatic, DlmWriteGuard};
pub use vec::DlmVec;
