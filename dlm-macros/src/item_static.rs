//! `#[dlm] static NAME: [T; N];` → `static NAME: ::dlm::DlmStatic<[T; N]> = …;`

use crate::local::check_lengths;
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Ident, Token, Type, Visibility};

/// A static item, with the initializer optional (`static X: T;` is what users write).
struct StaticItem {
    attrs: Vec<Attribute>,
    vis: Visibility,
    static_token: Token![static],
    mutability: Option<Token![mut]>,
    ident: Ident,
    ty: Type,
    init: Option<Expr>,
}

impl Parse for StaticItem {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let static_token = input.parse()?;
        let mutability = input.parse()?;
        let ident = input.parse()?;
        input.parse::<Token![:]>()?;
        let ty = input.parse()?;
        let init = if input.parse::<Option<Token![=]>>()?.is_some() { Some(input.parse()?) } else { None };
        input.parse::<Token![;]>()?;
        Ok(StaticItem { attrs, vis, static_token, mutability, ident, ty, init })
    }
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    // Rust runs attribute macros on statements too (and rejects them there).
    if let Some(proc_macro2::TokenTree::Ident(first)) = item.clone().into_iter().next() {
        if first == "let" {
            let error =
                syn::Error::new(first.span(), "`#[dlm] let` works only inside a function marked `#[dlm::main]`")
                    .into_compile_error();
            return quote! { #error #item };
        }
    }
    let parsed = syn::parse2::<StaticItem>(item.clone()).map_err(|e| {
        syn::Error::new(
            e.span(),
            "#[dlm] goes on `static NAME: [T; N];` (optionally `= CONST_INIT`), \
             or on a `let` inside a #[dlm::main] function",
        )
    });
    let item = match parsed {
        Ok(item) => item,
        Err(e) => {
            let error = e.into_compile_error();
            return quote! { #error #item };
        }
    };
    let checked =
        if args.is_empty() { generate(&item) } else { Err(syn::Error::new(args.span(), "#[dlm] takes no arguments")) };
    checked.unwrap_or_else(|e| {
        // Still declare the static, so that its uses do not add errors of their own.
        let error = e.into_compile_error();
        let StaticItem { attrs, vis, static_token, ident, ty, .. } = item;
        let name = ident.to_string();
        quote! {
            #error
            // SAFETY: this code never runs: the error above stops the compilation.
            #(#attrs)* #vis #static_token #ident: ::dlm::DlmStatic<#ty> = unsafe { ::dlm::DlmStatic::__zeroed_unchecked(#name) };
        }
    })
}

fn generate(s: &StaticItem) -> syn::Result<TokenStream> {
    if let Some(m) = &s.mutability {
        return Err(syn::Error::new(
            m.span(),
            "#[dlm] static cannot be `mut`: it is shared through `.read()` and `.write()` guards; remove `mut`",
        ));
    }
    let StaticItem { attrs, vis, static_token, ident, ty, init, .. } = s;
    let array_check = match ty {
        Type::Array(_) => {
            check_lengths(ty)?;
            quote! {}
        }
        // A type alias: whether it names an array is checked by the compiler, at the type.
        Type::Path(_) => quote_spanned! {ty.span()=>
            const _: () = {
                const fn __dlm_needs_an_array<T: ::dlm::__private::Array>() {}
                __dlm_needs_an_array::<#ty>()
            };
        },
        _ => {
            return Err(syn::Error::new(
                ty.span(),
                format!(
                    "#[dlm] needs an array type such as `[[f64; N]; N]`, found `{}`",
                    ty.to_token_stream().to_string().replace(' ', "")
                ),
            ))
        }
    };
    let name = ident.to_string();
    let value = match init {
        None => {
            // The zero bytes must be a valid value: ask for bytemuck's Zeroable, at the type.
            let check = quote_spanned! {ty.span()=>
                const _: () = {
                    const fn __dlm_elements_must_be_zeroable<T: ::dlm::Zeroable>() {}
                    __dlm_elements_must_be_zeroable::<#ty>()
                };
            };
            return Ok(quote! {
                #array_check
                #check
                // SAFETY: the check above proves that zero bytes are a valid value of the type.
                #(#attrs)* #vis #static_token #ident: ::dlm::DlmStatic<#ty> = unsafe { ::dlm::DlmStatic::__zeroed_unchecked(#name) };
            });
        }
        Some(init) => quote! { { static __DLM_INIT: #ty = #init; &__DLM_INIT } },
    };
    Ok(quote! {
        #array_check
        #(#attrs)* #vis #static_token #ident: ::dlm::DlmStatic<#ty> = ::dlm::DlmStatic::with_init(#name, #value);
    })
}
