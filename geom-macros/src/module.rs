//! The module declaration `#[geom_class]` adds to an `impl GeomClass`: a call of
//! `geom_core::declare_geom_class!` with FreeBSD's names for the class's module.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::Parser;
use syn::{Expr, ImplItem, ItemImpl, Lit, LitCStr};

/// `#[geom_class(module = "g_x", kld = "geom_x", version = 0)]`, or `#[geom_class(no_module)]`.
#[derive(Default)]
pub struct ModuleOptions {
    module: Option<String>,
    kld: Option<String>,
    version: Option<i32>,
    none: bool,
}

impl ModuleOptions {
    pub fn parse(attr: TokenStream) -> syn::Result<Self> {
        let mut o = ModuleOptions::default();
        let parser = syn::meta::parser(|m| {
            if m.path.is_ident("module") {
                o.module = Some(m.value()?.parse::<syn::LitStr>()?.value());
            } else if m.path.is_ident("kld") {
                o.kld = Some(m.value()?.parse::<syn::LitStr>()?.value());
            } else if m.path.is_ident("version") {
                o.version = Some(m.value()?.parse::<syn::LitInt>()?.base10_parse()?);
            } else if m.path.is_ident("no_module") {
                o.none = true;
            } else {
                return Err(m.error("expected `module = \"g_..\"`, `kld = \"geom_..\"`, `version = N` or `no_module`"));
            }
            Ok(())
        });
        parser.parse2(attr)?;
        Ok(o)
    }
}

/// The class name from `const NAME: &'static CStr = c"NAME";`.
fn class_name(imp: &ItemImpl) -> syn::Result<String> {
    for item in &imp.items {
        let ImplItem::Const(c) = item else { continue };
        if c.ident != "NAME" {
            continue;
        }
        if let Expr::Lit(l) = &c.expr {
            if let Lit::CStr(s) = &l.lit {
                return Ok(s.value().to_string_lossy().into_owned());
            }
        }
        return Err(syn::Error::new_spanned(&c.expr, "#[geom_class] needs NAME as a literal: c\"NAME\""));
    }
    Err(syn::Error::new_spanned(&imp.self_ty, "an impl GeomClass needs `const NAME: &'static CStr = c\"...\";`"))
}

fn cstr(s: &str) -> syn::Result<LitCStr> {
    let c =
        std::ffi::CString::new(s).map_err(|_| syn::Error::new(Span::call_site(), "module names cannot hold NUL"))?;
    Ok(LitCStr::new(&c, Span::call_site()))
}

/// The `declare_geom_class!` call for `imp`, or nothing with `no_module`.
pub fn declaration(imp: &ItemImpl, o: ModuleOptions) -> syn::Result<TokenStream> {
    if o.none {
        return Ok(quote!());
    }
    let lower = match (&o.module, &o.kld) {
        (Some(_), Some(_)) => String::new(),
        _ => class_name(imp)?.to_lowercase(),
    };
    let module = cstr(&o.module.unwrap_or_else(|| format!("g_{lower}")))?;
    let kld = cstr(&o.kld.unwrap_or_else(|| format!("geom_{lower}")))?;
    let version = o.version.unwrap_or(0);
    let ty = &imp.self_ty;
    Ok(quote! {
        ::geom_core::declare_geom_class!(#ty, #module, #kld, #version);
    })
}
