/*!
Attributes that put Rust arrays in DLM memory; use them through the `dlm` crate
(package `dlm-rt`), which re-exports them:

- `#[dlm]` on `static NAME: [T; N];` (any nesting, optional `= CONST_INIT`) makes a
  `dlm::DlmStatic` reached through `.read()` / `.write()` guards ([`item_static`]).
- `#[dlm::main]` on `fn main` starts DLM before the body and shuts it down after
  ([`main_fn`]); inside it, `#[dlm] let x = [VALUE; N];` and `#[dlm] let v = vec![VALUE; n];`
  allocate in DLM memory ([`local`]).

Every failure is a `syn::Error` at the user's span; the item is still emitted so editors keep
working.
*/

use proc_macro::TokenStream;

mod item_static;
mod local;
mod main_fn;

/// Puts an array in DLM memory: `#[dlm] static GRID: [[f64; N]; N];` (see the `dlm` crate).
#[proc_macro_attribute]
pub fn dlm(args: TokenStream, item: TokenStream) -> TokenStream {
    item_static::expand(args.into(), item.into()).into()
}

/// Runs `main` under DLM (see the `dlm` crate).
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    main_fn::expand(args.into(), item.into()).into()
}
