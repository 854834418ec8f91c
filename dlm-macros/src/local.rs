//! `#[dlm] let x = [VALUE; N];` (nested arrays too) and `#[dlm] let v = vec![VALUE; n];`
//! inside a #[dlm::main] function become DLM allocations filled in place, never on the stack.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{Expr, GenericArgument, Local, PathArguments, Token, Type};

/// Rewrites every `#[dlm] let` it visits and collects the errors.
pub(crate) struct Rewriter {
    pub errors: Vec<syn::Error>,
}

impl VisitMut for Rewriter {
    fn visit_local_mut(&mut self, local: &mut Local) {
        let before = local.attrs.len();
        local.attrs.retain(|a| !is_dlm(a));
        if local.attrs.len() != before {
            if let Err(e) = rewrite(local) {
                self.errors.push(e);
            }
        }
        syn::visit_mut::visit_local_mut(self, local);
    }
}

fn is_dlm(attr: &syn::Attribute) -> bool {
    let path = attr.path();
    path.is_ident("dlm") || (path.segments.len() == 2 && path.segments.iter().all(|s| s.ident == "dlm"))
}

/// Rejects array lengths that are plainly run-time values (lowercase names): a DLM array's
/// size is fixed at compile time.
pub(crate) fn check_lengths(ty: &Type) -> syn::Result<()> {
    let mut ty = ty;
    while let Type::Array(array) = ty {
        check_length(&array.len)?;
        ty = &array.elem;
    }
    Ok(())
}

fn check_length(len: &Expr) -> syn::Result<()> {
    if let Expr::Path(p) = len {
        if let Some(name) = p.path.get_ident() {
            if name.to_string().starts_with(|c: char| c.is_lowercase()) {
                return Err(syn::Error::new(
                    len.span(),
                    format!(
                        "array length `{name}` must be a constant; for a length known at run time use \
                         `#[dlm] let v = vec![VALUE; {name}];`"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn rewrite(local: &mut Local) -> syn::Result<()> {
    let Some(init) = &mut local.init else {
        return Err(syn::Error::new(local.span(), "#[dlm] let needs a value: `[VALUE; N]` or `vec![VALUE; LEN]`"));
    };
    if let Some((else_token, _)) = &init.diverge {
        return Err(syn::Error::new(else_token.span(), "#[dlm] let cannot have an `else` block"));
    }
    let (expr, kind) = match &*init.expr {
        Expr::Repeat(_) => (array(&init.expr)?, Kind::Array),
        Expr::Macro(m) if m.mac.path.segments.last().is_some_and(|s| s.ident == "vec") => {
            (vector(m.mac.tokens.clone(), m.mac.span())?, Kind::Vec)
        }
        other => {
            return Err(syn::Error::new(
                other.span(),
                "#[dlm] let needs `[VALUE; N]` (arrays may nest) or `vec![VALUE; LEN]`",
            ))
        }
    };
    *init.expr = syn::parse2(expr)?;
    if let syn::Pat::Type(typed) = &mut local.pat {
        *typed.ty = annotation(&typed.ty, kind)?;
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Kind {
    Array,
    Vec,
}

/// `let x: [T; N]` becomes `let x: DlmBox<[T; N]>`, `let v: Vec<T>` becomes `let v: DlmVec<T>`.
fn annotation(ty: &Type, kind: Kind) -> syn::Result<Type> {
    match (kind, ty) {
        (Kind::Array, Type::Array(_)) => syn::parse2(quote! { ::dlm::DlmBox<#ty> }),
        (Kind::Vec, Type::Path(p)) if p.path.segments.last().is_some_and(|s| s.ident == "Vec") => {
            let last = p.path.segments.last().expect("checked");
            match &last.arguments {
                PathArguments::AngleBracketed(a) if a.args.len() == 1 => match &a.args[0] {
                    GenericArgument::Type(elem) => syn::parse2(quote! { ::dlm::DlmVec<#elem> }),
                    other => Err(syn::Error::new(other.span(), "expected an element type")),
                },
                _ => syn::parse2(quote! { ::dlm::DlmVec<_> }),
            }
        }
        (Kind::Array, _) => Err(syn::Error::new(ty.span(), "#[dlm] let of `[VALUE; N]` needs an array type here")),
        (Kind::Vec, _) => Err(syn::Error::new(ty.span(), "#[dlm] let of `vec![VALUE; LEN]` needs `Vec<T>` here")),
    }
}

/// `[[VALUE; A]; B]` → a DlmBox of that array type, filled with VALUE in place.
fn array(expr: &Expr) -> syn::Result<TokenStream> {
    let mut lengths = Vec::new();
    let mut value = expr;
    while let Expr::Repeat(repeat) = value {
        check_length(&repeat.len)?;
        lengths.push(repeat.len.to_token_stream());
        value = &repeat.expr;
    }
    let elem = format_ident!("__DlmElem");
    let mut ty = quote! { #elem };
    for len in lengths.iter().rev() {
        ty = quote! { [#ty; #len] };
    }
    let span = expr.span();
    Ok(quote_spanned! {span=>
        {
            fn __dlm_array<#elem: ::core::marker::Copy>(value: #elem) -> ::dlm::DlmBox<#ty> {
                // SAFETY: the array type is built from the element type alone.
                unsafe { ::dlm::DlmBox::<#ty>::__filled(value) }
                    .unwrap_or_else(|e| ::dlm::__private::allocation_failed(e))
            }
            __dlm_array(#value)
        }
    })
}

/// `vec![VALUE; LEN]` → a DlmVec of LEN copies of VALUE.
fn vector(tokens: TokenStream, span: proc_macro2::Span) -> syn::Result<TokenStream> {
    let parts = Punctuated::<Expr, Token![;]>::parse_separated_nonempty.parse2(tokens);
    let parts = parts
        .ok()
        .filter(|p| p.len() == 2 && !p.trailing_punct())
        .ok_or_else(|| syn::Error::new(span, "#[dlm] let needs the `vec![VALUE; LEN]` form"))?;
    let (value, len) = (&parts[0], &parts[1]);
    Ok(quote! {
        ::dlm::DlmVec::from_elem(#value, #len).unwrap_or_else(|e| ::dlm::__private::allocation_failed(e))
    })
}
