//! The geom(8) class library runtime (`geom_<class>.so`, built for `x86_64-unknown-freebsd`
//! with the `geom-lib` feature).
//!
//! geom(8) `dlopen`s `/lib/geom/geom_<class>.so`, checks its `lib_version`, sends its
//! `version` with every request, and takes the class's verbs from `class_commands`: for each
//! verb, its options (letter, name, type, default) and usage line, and either a handler
//! (`gc_func`: the verb runs in userland, as `gstripe label` does) or none (geom(8) sends the
//! request to the kernel). [`geom_library!`](crate::geom_library) generates all three from the
//! class's `#[derive(Verbs)]` declaration; [`local_verb`] is the one handler, which runs the
//! class's [`GeomClass::userland`](geom_core::GeomClass::userland) through
//! `geom_core::userland::run_local`, exactly as the host's `geom` command does.

mod env;
mod ffi;
mod runtime;

use alloc::vec::Vec;
use core::ffi::CStr;

use geom_core::ctl::Param;
use geom_core::sys::{c_uint, gctl_req, G_FLAG_VERBOSE};
use geom_core::GeomClass;

/// `gc_func` of every userland verb of class `C`: read the request geom(8) built, run the
/// verb, and leave its error where geom(8) looks (`req->error`, a `malloc`ed string that
/// `gctl_free` frees).
///
/// # Safety
/// `req` is a live userland request built by geom(8)'s `gctl_get_handle` and
/// `gctl_ro_param`: `arg` holds `narg` parameters whose names are C strings and whose values
/// hold `len` bytes.
pub unsafe extern "C" fn local_verb<C: GeomClass>(req: *mut gctl_req, flags: c_uint) {
    // SAFETY: the caller's contract.
    let params = unsafe { params(req) };
    let mut env = env::DevEnv;
    let error = match params {
        Some(params) => geom_core::userland::run_local::<C>(
            &params,
            flags & G_FLAG_VERBOSE != 0,
            &mut env,
            &mut runtime::Stdout,
            &mut runtime::Stderr,
        ),
        None => Some(alloc::string::String::from("Out of memory.")),
    };
    if let Some(msg) = error {
        // SAFETY: the caller's contract; the message is set only if none was.
        unsafe { set_error(req, msg.as_bytes()) };
    }
}

/// The request's parameters (`None` if memory ran out).
///
/// # Safety
/// As for [`local_verb`]; the result borrows from the request.
unsafe fn params<'a>(req: *mut gctl_req) -> Option<Vec<Param<'a>>> {
    // SAFETY: a live request (caller's contract).
    let (narg, args) = unsafe { ((*req).narg as usize, (*req).arg) };
    let mut out = Vec::new();
    out.try_reserve(narg).ok()?;
    for i in 0..narg {
        // SAFETY: arg holds narg entries (caller's contract).
        let a = unsafe { &*args.add(i) };
        if a.name.is_null() || a.value.is_null() || a.len < 0 {
            continue;
        }
        // SAFETY: names are C strings and values hold len bytes, both living with the request.
        let (name, value) =
            unsafe { (CStr::from_ptr(a.name), core::slice::from_raw_parts(a.value.cast::<u8>(), a.len as usize)) };
        out.push(Param { name, value });
    }
    Some(out)
}

/// `gctl_error(req, "%s", msg)` in userland: keep the first error, in memory `gctl_free`
/// releases with `free(3)`.
///
/// # Safety
/// As for [`local_verb`].
unsafe fn set_error(req: *mut gctl_req, msg: &[u8]) {
    // SAFETY: a live request (caller's contract).
    if unsafe { !(*req).error.is_null() } {
        return;
    }
    // SAFETY: malloc(3) takes any size; the copy fits the allocation with its NUL.
    unsafe {
        let p = ffi::malloc(msg.len() + 1).cast::<u8>();
        if p.is_null() {
            return;
        }
        core::ptr::copy_nonoverlapping(msg.as_ptr(), p, msg.len());
        *p.add(msg.len()) = 0;
        (*req).error = p.cast();
    }
}
