//! `#[dlm::main] fn main() { … }`: DLM starts before the body and shuts down after it; the
//! body's `#[dlm] let` statements become DLM allocations.

use crate::local;
use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{ItemFn, ReturnType};

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut function = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let error = syn::Error::new(e.span(), "#[dlm::main] goes on `fn main()`").into_compile_error();
            return quote! { #error #item };
        }
    };
    let mut errors = Vec::new();
    if !args.is_empty() {
        errors.push(syn::Error::new(args.span(), "#[dlm::main] takes no arguments"));
    }
    if let Some(a) = &function.sig.asyncness {
        errors.push(syn::Error::new(a.span(), "#[dlm::main] cannot be async"));
    }
    if !function.sig.inputs.is_empty() || !function.sig.generics.params.is_empty() {
        errors.push(syn::Error::new(function.sig.span(), "#[dlm::main] goes on `fn main()`, which takes no arguments"));
    }
    let mut rewriter = local::Rewriter { errors: Vec::new() };
    rewriter.visit_block_mut(&mut function.block);
    errors.extend(rewriter.errors);

    let ItemFn { attrs, vis, sig, block } = function;
    let output = match &sig.output {
        ReturnType::Default => quote! { () },
        ReturnType::Type(_, ty) => quote! { #ty },
    };
    let errors = errors.into_iter().map(syn::Error::into_compile_error);
    quote! {
        #(#errors)*
        #(#attrs)* #vis #sig {
            let __dlm_runtime = ::dlm::start_or_exit();
            #[allow(clippy::redundant_closure_call)]
            let __dlm_result = (|| -> #output #block)();
            ::core::mem::drop(__dlm_runtime);
            __dlm_result
        }
    }
}
