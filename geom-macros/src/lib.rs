//! # geom-macros
//!
//! The code generators of geom-rs. Classes use them through `geom_core`'s re-exports.
//!
//! * `#[geom_class]` goes on a class's `impl GeomClass for ...` and `impl Geom for ...`
//!   blocks. It reads which methods the impl actually writes and records them in the impl's
//!   `IMPLEMENTED` constant, so `geom_core::class_table` fills exactly those `g_class` slots
//!   and leaves the others NULL, as a C class would. On the `impl GeomClass` it also emits
//!   the module declaration C's `DECLARE_GEOM_CLASS(g_x_class, g_x)` and
//!   `MODULE_VERSION(geom_x, 0)` produce (through `geom_core::declare_geom_class!`): the
//!   static `g_class`, the `moduledata_t`, the kernel dependency, module and version records
//!   in `set_modmetadata_set`, and the registration `SYSINIT`. Arguments override FreeBSD's
//!   naming: `#[geom_class(module = "g_x", kld = "geom_x", version = 1)]`, or
//!   `#[geom_class(no_module)]` for a class that is never a module of its own.
//! * `#[derive(VerbArgs)]` and `#[derive(Verbs)]` turn one declaration of a class's geom(8)
//!   verbs into their parsers and tables (see `geom_core::verbs`).
//!
//! ```ignore
//! #[geom_class]
//! impl GeomClass for Nop {
//!     const NAME: &'static CStr = c"NOP";
//!     const VERSION: Option<u32> = Some(4);
//!     type Softc = NopGeom;
//!     type Verb = NopVerb;
//!     fn init(_: &mut Topology) -> Self { Nop }
//!     fn ctlreq(cls: &Class<Self>, topo: &mut Topology, req: &mut Gctl<'_>, verb: NopVerb) { ... }
//! }
//! ```
#![warn(missing_docs)]

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, DeriveInput, ImplItem, ItemImpl};

mod module;
mod verbs;

/// Derive `geom_core::verbs::VerbArgs` for a struct of one verb's options (`#[opt(short =
/// 'x', default = ..)]`) and positional arguments (`#[args(min = .., max = .., name = "..",
/// dev)]`). See `geom_core::verbs`.
#[proc_macro_derive(VerbArgs, attributes(opt, args))]
pub fn derive_verb_args(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    verbs::derive_verb_args(input).unwrap_or_else(|e| e.to_compile_error()).into()
}

/// Derive `geom_core::verbs::Verbs` for an enum with one variant per verb, each holding its
/// `VerbArgs` struct (`#[verb(name = "..")]` renames one, `#[verb(local)]` marks one handled
/// in userland). See `geom_core::verbs`.
#[proc_macro_derive(Verbs, attributes(verb))]
pub fn derive_verbs(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    verbs::derive_verbs(input).unwrap_or_else(|e| e.to_compile_error()).into()
}

/// Record the methods an impl of `GeomClass` or `Geom` writes in its `IMPLEMENTED` constant.
#[proc_macro_attribute]
pub fn geom_class(attr: TokenStream, item: TokenStream) -> TokenStream {
    let opts = match module::ModuleOptions::parse(attr.into()) {
        Ok(o) => o,
        Err(e) => return e.to_compile_error().into(),
    };
    let mut imp = parse_macro_input!(item as ItemImpl);
    let Some((_, trait_path, _)) = &imp.trait_ else {
        let e = syn::Error::new_spanned(
            &imp.self_ty,
            "#[geom_class] goes on `impl GeomClass for ...` or `impl Geom for ...`",
        );
        return e.to_compile_error().into();
    };
    let trait_name = trait_path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default();
    if trait_name != "GeomClass" && trait_name != "Geom" {
        let e = syn::Error::new_spanned(
            trait_path,
            "#[geom_class] goes on `impl GeomClass for ...` or `impl Geom for ...`",
        );
        return e.to_compile_error().into();
    }
    let names: Vec<String> = imp
        .items
        .iter()
        .filter_map(|i| match i {
            ImplItem::Fn(f) => Some(f.sig.ident.to_string()),
            _ => None,
        })
        .collect();
    let konst: ImplItem = syn::parse_quote! {
        const IMPLEMENTED: ::geom_core::Methods = ::geom_core::Methods::from_names(&[#(#names),*]);
    };
    imp.items.push(konst);
    if trait_name != "GeomClass" {
        return quote!(#imp).into();
    }
    let module = match module::declaration(&imp, opts) {
        Ok(m) => m,
        Err(e) => return e.to_compile_error().into(),
    };
    quote!(#imp #module).into()
}
