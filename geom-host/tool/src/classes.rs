//! The classes this tool knows, by geom(8)'s lowercase name: what `geom CLASS ...` runs, and
//! what `geom load CLASS` loads (the tool is linked with every class, as a kernel with the
//! modules in /boot/kernel can kldload them).

use geom_class_journal::Journal;
use geom_class_nop::Nop;
use geom_class_stripe::Stripe;
use geom_host::command::{self, Output};
use geom_host::Runtime;

/// The classes, by the name geom(8) takes (`geom stripe ...` is class `STRIPE`).
pub const KNOWN: &[&str] = &["nop", "stripe", "journal"];

/// Run `geom CLASS argv...` on `rt`; `None` if the class is unknown.
pub fn run(rt: &Runtime, class: &str, argv: &[&str]) -> Option<Output> {
    Some(match class {
        "nop" => command::run::<Nop>(rt, argv),
        "stripe" => command::run::<Stripe>(rt, argv),
        "journal" => command::run::<Journal>(rt, argv),
        _ => return None,
    })
}

/// `kldload geom_CLASS`: `Ok(false)` if it was loaded already; `Err` with a message for an
/// unknown class or a refused load.
pub fn load(rt: &Runtime, class: &str) -> Result<bool, String> {
    let upper = class.to_uppercase();
    if rt.classes().contains(&upper) {
        return Ok(false);
    }
    let r = match class {
        "nop" => rt.load::<Nop>(),
        "stripe" => rt.load::<Stripe>(),
        "journal" => rt.load::<Journal>(),
        _ => return Err(format!("geom_{class} module not available!")),
    };
    r.map(|()| true).map_err(|e| format!("geom_{class} module not available! ({})", geom_core::sys::errno::strerror(e)))
}

/// `kldunload geom_CLASS`: refused (`EBUSY`) while the class has geoms.
pub fn unload(rt: &Runtime, class: &str) -> Result<(), String> {
    let r = match class {
        "nop" => rt.unload::<Nop>(),
        "stripe" => rt.unload::<Stripe>(),
        "journal" => rt.unload::<Journal>(),
        _ => return Err(format!("Unknown class: {class}.")),
    };
    r.map_err(|e| format!("Cannot unload geom_{class}: {}.", geom_core::sys::errno::strerror(e)))
}

/// The usage lines of every class, for `geom help`.
pub fn usage() -> Vec<String> {
    let mut lines = Vec::new();
    lines.extend(command::usage::<Nop>("nop"));
    lines.extend(command::usage::<Stripe>("stripe"));
    lines.extend(command::usage::<Journal>("journal"));
    lines
}

/// The usage lines of one class (its own verbs, then geom(8)'s standard ones), for `geom
/// CLASS help`.
pub fn usage_of(class: &str) -> Vec<String> {
    let mut lines = match class {
        "nop" => command::usage::<Nop>("nop"),
        "stripe" => command::usage::<Stripe>("stripe"),
        "journal" => command::usage::<Journal>("journal"),
        _ => Vec::new(),
    };
    for std in ["help", "list [-a] [name ...]", "status [-ags] [name ...]", "load [-v]", "unload [-v]"] {
        lines.push(format!("geom {class} {std}"));
    }
    lines
}

/// Whether `verb` of `class` runs in userland (geom(8)'s class library: `label`, `clear`,
/// `dump`), so it works on disk images without a running host.
pub fn is_local(class: &str, verb: &str) -> bool {
    fn local<C: geom_core::GeomClass>(verb: &str) -> bool {
        <C::Verb as geom_core::Verbs>::spec(verb.as_bytes()).is_some_and(|s| s.local)
    }
    match class {
        "nop" => local::<Nop>(verb),
        "stripe" => local::<Stripe>(verb),
        "journal" => local::<Journal>(verb),
        _ => false,
    }
}
