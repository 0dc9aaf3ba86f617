//! `#[derive(VerbArgs)]` and `#[derive(Verbs)]`: a class's geom(8) verbs from one
//! declaration (see `geom_core::verbs`).

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Expr, Fields, GenericArgument, Lit, LitCStr, LitStr, PathArguments, Type};

/// The doc comment of an item, joined into one line.
fn doc(attrs: &[Attribute]) -> String {
    let mut lines = Vec::new();
    for a in attrs {
        if !a.path().is_ident("doc") {
            continue;
        }
        if let syn::Meta::NameValue(nv) = &a.meta {
            if let Expr::Lit(syn::ExprLit { lit: Lit::Str(s), .. }) = &nv.value {
                lines.push(s.value().trim().to_string());
            }
        }
    }
    lines.join(" ").trim().to_string()
}

fn cstr(s: &str, span: Span) -> syn::Result<LitCStr> {
    let c = std::ffi::CString::new(s).map_err(|_| syn::Error::new(span, "names cannot contain NUL"))?;
    Ok(LitCStr::new(&c, span))
}

/// What a field of a `VerbArgs` struct is.
enum FieldKind {
    Bool,
    Number { optional: bool },
    String { optional: bool },
}

/// `T` of `Option<T>`, if `ty` is an `Option`.
fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let seg = p.path.segments.last()?;
    if seg.ident != "Option" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &seg.arguments else { return None };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}

fn last_ident(ty: &Type) -> String {
    match ty {
        Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default(),
        _ => String::new(),
    }
}

fn kind_of(ty: &Type) -> syn::Result<FieldKind> {
    let (inner, optional) = match option_inner(ty) {
        Some(t) => (t, true),
        None => (ty, false),
    };
    match last_ident(inner).as_str() {
        "bool" if !optional => Ok(FieldKind::Bool),
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "isize" | "usize" => {
            Ok(FieldKind::Number { optional })
        }
        "CString" => Ok(FieldKind::String { optional }),
        _ => Err(syn::Error::new(
            ty.span(),
            "an option is a bool, an integer, a CString, or an Option of an integer or CString",
        )),
    }
}

/// The contents of `#[opt(...)]`.
#[derive(Default)]
struct OptAttr {
    short: Option<char>,
    name: Option<String>,
    default: Option<Lit>,
}

/// The contents of `#[args(...)]`.
struct ArgsAttr {
    min: u32,
    max: u32,
    name: String,
    dev: bool,
}

fn parse_opt(a: &Attribute) -> syn::Result<OptAttr> {
    let mut o = OptAttr::default();
    a.parse_nested_meta(|m| {
        if m.path.is_ident("short") {
            let c: syn::LitChar = m.value()?.parse()?;
            o.short = Some(c.value());
        } else if m.path.is_ident("name") {
            let s: LitStr = m.value()?.parse()?;
            o.name = Some(s.value());
        } else if m.path.is_ident("default") {
            let e: Expr = m.value()?.parse()?;
            o.default = Some(match e {
                Expr::Lit(l) => l.lit,
                Expr::Unary(syn::ExprUnary { op: syn::UnOp::Neg(_), expr, .. }) => match *expr {
                    Expr::Lit(syn::ExprLit { lit: Lit::Int(i), .. }) => {
                        let v: i64 = i.base10_parse::<i64>().map(|v| -v)?;
                        Lit::Int(syn::LitInt::new(&v.to_string(), i.span()))
                    }
                    other => return Err(syn::Error::new(other.span(), "a default is a literal")),
                },
                other => return Err(syn::Error::new(other.span(), "a default is a literal")),
            });
        } else {
            return Err(m.error("expected `short`, `name` or `default`"));
        }
        Ok(())
    })?;
    Ok(o)
}

fn parse_args(a: &Attribute) -> syn::Result<ArgsAttr> {
    let mut r = ArgsAttr { min: 0, max: u32::MAX, name: String::new(), dev: false };
    a.parse_nested_meta(|m| {
        if m.path.is_ident("min") {
            r.min = m.value()?.parse::<syn::LitInt>()?.base10_parse()?;
        } else if m.path.is_ident("max") {
            r.max = m.value()?.parse::<syn::LitInt>()?.base10_parse()?;
        } else if m.path.is_ident("name") {
            r.name = m.value()?.parse::<LitStr>()?.value();
        } else if m.path.is_ident("dev") {
            r.dev = true;
        } else {
            return Err(m.error("expected `min`, `max`, `name` or `dev`"));
        }
        Ok(())
    })?;
    Ok(r)
}

/// `#[derive(VerbArgs)]`.
pub fn derive_verb_args(input: DeriveInput) -> syn::Result<TokenStream> {
    let ident = &input.ident;
    let Data::Struct(s) = &input.data else {
        return Err(syn::Error::new(input.span(), "VerbArgs is derived for a struct with named fields"));
    };
    let Fields::Named(fields) = &s.fields else {
        return Err(syn::Error::new(input.span(), "VerbArgs is derived for a struct with named fields"));
    };
    let mut specs = Vec::new();
    let mut reads = Vec::new();
    let mut args_spec = None;
    let mut args_name = String::new();
    let mut shorts = Vec::new();
    // (letter, is a flag, name) of each option, for the usage line.
    let mut usage_opts: Vec<(char, bool, String)> = Vec::new();
    for f in &fields.named {
        let fname = f.ident.as_ref().expect("named fields have names");
        let opt_attr = f.attrs.iter().find(|a| a.path().is_ident("opt"));
        let args_attr = f.attrs.iter().find(|a| a.path().is_ident("args"));
        let help = doc(&f.attrs);
        match (opt_attr, args_attr) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(syn::Error::new(f.span(), "each field needs exactly one of #[opt(...)] or #[args(...)]"));
            }
            (None, Some(a)) => {
                if args_spec.is_some() {
                    return Err(syn::Error::new(a.span(), "only one field holds the positional arguments"));
                }
                if last_ident(&f.ty) != "Vec" {
                    return Err(syn::Error::new(f.ty.span(), "the positional arguments are a Vec<CString>"));
                }
                let ArgsAttr { min, max, name, dev } = parse_args(a)?;
                args_name = name.clone();
                if min > max {
                    return Err(syn::Error::new(a.span(), "min is larger than max"));
                }
                args_spec = Some(quote! {
                    ::geom_core::verbs::ArgSpec { min: #min, max: #max, name: #name, dev: #dev }
                });
                reads.push(quote! {
                    #fname: ::geom_core::verbs::positional(req, &<Self as ::geom_core::verbs::VerbArgs>::ARGS)?
                });
            }
            (Some(a), None) => {
                let o = parse_opt(a)?;
                let name = o.name.unwrap_or_else(|| fname.to_string().trim_start_matches("r#").to_string());
                let Some(short) = o.short else {
                    return Err(syn::Error::new(a.span(), "an option needs its letter: #[opt(short = 'x')]"));
                };
                if shorts.contains(&short) {
                    return Err(syn::Error::new(a.span(), format!("option letter '{short}' is used twice")));
                }
                shorts.push(short);
                let cname = cstr(&name, a.span())?;
                let kind = kind_of(&f.ty)?;
                usage_opts.push((short, matches!(kind, FieldKind::Bool), name.clone()));
                let c_default = match &o.default {
                    Some(Lit::Int(i)) => {
                        let v: i64 = i.base10_parse()?;
                        let c = cstr(&v.to_string(), a.span())?;
                        quote!(::core::option::Option::Some(#c))
                    }
                    Some(Lit::Str(st)) => {
                        let c = cstr(&st.value(), a.span())?;
                        quote!(::core::option::Option::Some(#c))
                    }
                    _ => quote!(::core::option::Option::None),
                };
                let (kind_tokens, default_tokens, read) = match (kind, &o.default) {
                    (FieldKind::Bool, None) => {
                        (quote!(Bool), quote!(Absent), quote!(::geom_core::verbs::opt_bool(req, #cname)?))
                    }
                    (FieldKind::Number { optional: true }, None) => {
                        (quote!(Number), quote!(Absent), quote!(::geom_core::verbs::opt_number_maybe(req, #cname)?))
                    }
                    (FieldKind::Number { optional: false }, Some(Lit::Int(i))) => {
                        let v: i64 = i.base10_parse()?;
                        (quote!(Number), quote!(Number(#v)), quote!(::geom_core::verbs::opt_number(req, #cname, #v)?))
                    }
                    (FieldKind::String { optional: true }, None) => {
                        (quote!(String), quote!(Absent), quote!(::geom_core::verbs::opt_string_maybe(req, #cname)?))
                    }
                    (FieldKind::String { optional: false }, Some(Lit::Str(s))) => {
                        (quote!(String), quote!(Str(#s)), quote!(::geom_core::verbs::opt_string(req, #cname, #s)?))
                    }
                    (FieldKind::Bool, Some(_)) => {
                        return Err(syn::Error::new(a.span(), "a flag has no default (it is false unless given)"));
                    }
                    (FieldKind::Number { optional: false }, _) => {
                        return Err(syn::Error::new(
                            a.span(),
                            "a number option needs `default = <integer>` or Option<_>",
                        ));
                    }
                    (FieldKind::String { optional: false }, _) => {
                        return Err(syn::Error::new(
                            a.span(),
                            "a string option needs `default = \"...\"` or Option<_>",
                        ));
                    }
                    (_, Some(_)) => {
                        return Err(syn::Error::new(a.span(), "an Option<_> option has no default (absent is None)"));
                    }
                };
                specs.push(quote! {
                    ::geom_core::verbs::OptSpec {
                        short: #short,
                        name: #name,
                        c_name: #cname,
                        kind: ::geom_core::verbs::OptKind::#kind_tokens,
                        default: ::geom_core::verbs::OptDefault::#default_tokens,
                        c_default: #c_default,
                        help: #help,
                    }
                });
                reads.push(quote!(#fname: #read));
            }
        }
    }
    // Without an #[args] field, still insist there are no stray positional arguments.
    let reads_no_args = match args_spec {
        Some(_) => quote!(),
        None => quote!(let _ = ::geom_core::verbs::positional(req, &<Self as ::geom_core::verbs::VerbArgs>::ARGS)?;),
    };
    let args_spec = args_spec.unwrap_or_else(|| quote!(::geom_core::verbs::ArgSpec::NONE));
    let struct_help = doc(&input.attrs);
    let usage = cstr(&usage_line(&usage_opts, &args_name), input.span())?;
    Ok(quote! {
        impl ::geom_core::verbs::VerbArgs for #ident {
            const HELP: &'static str = #struct_help;
            const OPTIONS: &'static [::geom_core::verbs::OptSpec] = &[#(#specs),*];
            const ARGS: ::geom_core::verbs::ArgSpec = #args_spec;
            const USAGE: &'static ::core::ffi::CStr = #usage;
            fn from_gctl(req: &mut ::geom_core::Gctl<'_>) -> ::core::option::Option<Self> {
                #reads_no_args
                ::core::option::Option::Some(#ident { #(#reads),* })
            }
        }
    })
}

/// The usage line geom(8) prints for a verb, as lib/geom's tables spell it: the flags
/// together in letter order (`[-fv]`), then each option with a value in letter order
/// (`[-s stripesize]`, lower case before upper case), then the positional arguments.
fn usage_line(options: &[(char, bool, String)], args: &str) -> String {
    let mut flags: Vec<char> = options.iter().filter(|o| o.1).map(|o| o.0).collect();
    flags.sort_unstable();
    let mut valued: Vec<&(char, bool, String)> = options.iter().filter(|o| !o.1).collect();
    valued.sort_by_key(|o| (o.0.to_ascii_lowercase(), o.0.is_ascii_uppercase()));
    let mut parts = Vec::new();
    if !flags.is_empty() {
        parts.push(format!("[-{}]", flags.into_iter().collect::<String>()));
    }
    parts.extend(valued.into_iter().map(|(c, _, name)| format!("[-{c} {name}]")));
    if !args.is_empty() {
        parts.push(args.to_string());
    }
    parts.join(" ")
}

/// `#[derive(Verbs)]`.
pub fn derive_verbs(input: DeriveInput) -> syn::Result<TokenStream> {
    let ident = &input.ident;
    let Data::Enum(e) = &input.data else {
        return Err(syn::Error::new(input.span(), "Verbs is derived for an enum, one variant per verb"));
    };
    let mut specs = Vec::new();
    let mut arms = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut name_arms = Vec::new();
    for v in &e.variants {
        let Fields::Unnamed(f) = &v.fields else {
            return Err(syn::Error::new(v.span(), "each verb variant holds one VerbArgs struct: `Create(Create)`"));
        };
        if f.unnamed.len() != 1 {
            return Err(syn::Error::new(v.span(), "each verb variant holds one VerbArgs struct: `Create(Create)`"));
        }
        let ty = &f.unnamed[0].ty;
        let mut name = v.ident.to_string().to_lowercase();
        let mut local = false;
        let mut loadkld = false;
        for a in v.attrs.iter().filter(|a| a.path().is_ident("verb")) {
            a.parse_nested_meta(|m| {
                if m.path.is_ident("name") {
                    name = m.value()?.parse::<LitStr>()?.value();
                } else if m.path.is_ident("local") {
                    local = true;
                } else if m.path.is_ident("loadkld") {
                    loadkld = true;
                } else {
                    return Err(m.error("expected `name = \"...\"`, `local` or `loadkld`"));
                }
                Ok(())
            })?;
        }
        if names.contains(&name) {
            return Err(syn::Error::new(v.span(), format!("verb \"{name}\" is declared twice")));
        }
        names.push(name.clone());
        let help = doc(&v.attrs);
        let vident = &v.ident;
        let bytes = syn::LitByteStr::new(name.as_bytes(), v.span());
        let c_name = cstr(&name, v.span())?;
        specs.push(quote! {
            ::geom_core::verbs::VerbSpec {
                name: #name,
                c_name: #c_name,
                options: <#ty as ::geom_core::verbs::VerbArgs>::OPTIONS,
                args: <#ty as ::geom_core::verbs::VerbArgs>::ARGS,
                local: #local,
                loadkld: #loadkld,
                c_usage: <#ty as ::geom_core::verbs::VerbArgs>::USAGE,
                help: if #help.is_empty() { <#ty as ::geom_core::verbs::VerbArgs>::HELP } else { #help },
            }
        });
        arms.push(quote! {
            #bytes => <#ty as ::geom_core::verbs::VerbArgs>::from_gctl(req).map(#ident::#vident)
        });
        name_arms.push(quote! { #ident::#vident(_) => #name });
    }
    Ok(quote! {
        impl ::geom_core::verbs::Verbs for #ident {
            const VERBS: &'static [::geom_core::verbs::VerbSpec] = &[#(#specs),*];
            fn from_gctl(req: &mut ::geom_core::Gctl<'_>, verb: &::core::ffi::CStr) -> ::core::option::Option<Self> {
                match verb.to_bytes() {
                    #(#arms,)*
                    _ => ::geom_core::verbs::unknown_verb(req),
                }
            }
            fn name(&self) -> &'static str {
                match self {
                    #(#name_arms,)*
                }
            }
        }
    })
}
