//! The C twins of NOP and STRIPE (`csrc/`): loading them into a runtime and making their
//! geoms.
//!
//! `csrc/cnop.c` and `csrc/cstripe.c` are GEOM classes written in C against `csrc/geom_kpi.h`
//! (FreeBSD 15's structures and KPI, declared by hand), built by `build.rs` and linked into
//! this crate. They call the same KPI symbols the Rust classes reach through geom-core, which
//! geom-host defines, so a runtime loads them as raw classes
//! ([`Runtime::load_class_raw`]) and their geoms are made with their own `create` verb:
//!
//! * `CNOP`: `create dev` makes `dev.cnop` (options `offset`, `rfailprob`, `wfailprob`,
//!   `error`, `count_until_fail`: `intmax_t`; `physpath`: a string);
//! * `CSTRIPE`: `create name prov prov ...` makes `cstripe/name` (option `stripesize`, an
//!   `intmax_t`, 64 KiB if left out), with no label on the components.

use std::ffi::{c_char, CStr};

use geom_core::sys::{errno, g_class};
use geom_host::{CtlRequest, CtlValue, Runtime};

/// The C NOP twin's class name.
pub const CNOP_CLASS: &str = "CNOP";
/// The C STRIPE twin's class name.
pub const CSTRIPE_CLASS: &str = "CSTRIPE";

/// `struct twin_layout` (`csrc/geom_kpi.h`): one size or offset, by name.
#[repr(C)]
struct TwinLayout {
    name: *const c_char,
    value: usize,
}

unsafe extern "C" {
    static g_cnop_class: g_class;
    static g_cstripe_class: g_class;
    fn twin_layout() -> *const TwinLayout;
}

/// `kldload` a C class: `EEXIST` (loaded already) is fine.
fn load(rt: &Runtime, mp: *const g_class, name: &str) -> Result<(), String> {
    // SAFETY: mp is one of the C twins' static class tables: G_VERSION, a static name, and
    // methods that keep the KPI's contracts; the statics live as long as the process.
    match unsafe { rt.load_class_raw(mp) } {
        Ok(()) | Err(errno::EEXIST) => Ok(()),
        Err(e) => Err(format!("loading {name}: error {e}")),
    }
}

/// Load the C NOP twin into `rt` (if not yet).
pub fn load_nop(rt: &Runtime) -> Result<(), String> {
    load(rt, &raw const g_cnop_class, CNOP_CLASS)
}

/// Load the C STRIPE twin into `rt` (if not yet).
pub fn load_stripe(rt: &Runtime) -> Result<(), String> {
    load(rt, &raw const g_cstripe_class, CSTRIPE_CLASS)
}

/// Run a ctl request, which must succeed.
fn ctl(rt: &Runtime, req: &CtlRequest) -> Result<(), String> {
    let r = rt.ctl(req);
    if r.error == 0 {
        Ok(())
    } else {
        Err(format!("{} {}: error {}: {}", req.class(), req.verb(), r.error, r.message.unwrap_or_default()))
    }
}

/// Load the C NOP twin into `rt` (if not yet) and put a geom on `provider`; returns the new
/// provider's name, `<provider>.cnop`.
pub fn make_nop(rt: &Runtime, provider: &str) -> Result<String, String> {
    load_nop(rt)?;
    ctl(rt, &CtlRequest::new(CNOP_CLASS, "create").arg(provider))?;
    Ok(format!("{provider}.cnop"))
}

/// Load the C STRIPE twin into `rt` (if not yet) and make stripe `name` over `providers` with
/// `stripesize`; returns the new provider's name, `cstripe/<name>`.
pub fn make_stripe(rt: &Runtime, name: &str, providers: &[&str], stripesize: u64) -> Result<String, String> {
    load_stripe(rt)?;
    let size = i64::try_from(stripesize).map_err(|_| format!("stripe size {stripesize} too large"))?;
    let req = providers.iter().fold(
        CtlRequest::new(CSTRIPE_CLASS, "create").param("stripesize", CtlValue::Intmax(size)).arg(name),
        |r, p| r.arg(p),
    );
    ctl(rt, &req)?;
    Ok(format!("cstripe/{name}"))
}

/// Every size and field offset of the structures `csrc/geom_kpi.h` declares, as the C
/// compiler laid them out: `("bio", 376)`, `("bio.bio_error", 64)`, ...
pub fn c_layout() -> Vec<(String, usize)> {
    let mut out = Vec::new();
    // SAFETY: twin_layout returns a static array of entries with static NUL-terminated names,
    // ended by an entry whose name is NULL.
    unsafe {
        let mut p = twin_layout();
        while !(*p).name.is_null() {
            out.push((CStr::from_ptr((*p).name).to_string_lossy().into_owned(), (*p).value));
            p = p.add(1);
        }
    }
    out
}
