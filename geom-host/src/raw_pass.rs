//! `PASS`: a pass-through class written directly against `geom_core::sys`, the way a C class
//! is written against `geom.h`, with raw pointers and `extern "C"` methods.
//!
//! It exists to prove the runtime before any safe API sits on top: every request is cloned
//! once and sent to the provider below (`g_clone_bio` + `g_std_done`), opens are forwarded,
//! an orphaned provider below withers the geom. A geom is made two ways:
//! * `create` verb: `geom pass create PROVIDER` makes `PROVIDER.pass`, the same size;
//! * tasting: a provider whose last sector starts with [`RAW_PASS_MAGIC`] gets a
//!   `PROVIDER.pass` one sector smaller (the label is hidden, as real classes hide theirs).
//!
//! `destroy [-f] NAME` withers one (refused with `EBUSY` while open, unless forced).
//!
//! Safe class code never looks like this; it is the baseline the safe API is measured against.

use std::ffi::CStr;
use std::ptr;

use geom_core::sys::{
    self, bio, c_char, c_int, errno, g_class, g_consumer, g_geom, g_provider, gctl_req, links, sbuf, KernelCell,
};

/// The label the taste method looks for at the start of a provider's last sector.
pub const RAW_PASS_MAGIC: &[u8; 16] = b"GEOM::RAWPASS\0\0\0";

unsafe extern "C" fn pass_start(bp: *mut bio) {
    // SAFETY: GEOM hands start a live bio aimed at our provider; our geom has one consumer.
    unsafe {
        let gp = (*(*bp).bio_to).geom;
        let cp = (*gp).consumer.lh_first;
        let cbp = sys::g_clone_bio(bp);
        if cbp.is_null() {
            sys::g_io_deliver(bp, errno::ENOMEM);
            return;
        }
        (*cbp).bio_done = Some(sys::g_std_done);
        sys::g_io_request(cbp, cp);
    }
}

unsafe extern "C" fn pass_access(pp: *mut g_provider, dr: c_int, dw: c_int, de: c_int) -> c_int {
    // SAFETY: access runs under the topology lock on one of our providers.
    unsafe {
        let cp = (*(*pp).geom).consumer.lh_first;
        if cp.is_null() {
            return if dr <= 0 && dw <= 0 && de <= 0 { 0 } else { errno::ENXIO };
        }
        sys::g_access(cp, dr, dw, de)
    }
}

unsafe extern "C" fn pass_orphan(cp: *mut g_consumer) {
    // SAFETY: orphan runs under the topology lock with our live consumer.
    unsafe { sys::g_wither_geom((*cp).geom, errno::ENXIO) };
}

unsafe extern "C" fn pass_dumpconf(
    sb: *mut sbuf,
    indent: *const c_char,
    gp: *mut g_geom,
    cp: *mut g_consumer,
    pp: *mut g_provider,
) {
    if pp.is_null() || !cp.is_null() {
        return;
    }
    // SAFETY: dumpconf runs under the topology lock with live objects and a valid sbuf.
    unsafe {
        let lower = (*gp).consumer.lh_first;
        let labeled =
            !lower.is_null() && !(*lower).provider.is_null() && (*pp).mediasize < (*(*lower).provider).mediasize;
        sys::sbuf_printf(
            sb,
            c"%s<Labeled>%s</Labeled>\n".as_ptr(),
            indent,
            if labeled { c"yes".as_ptr() } else { c"no".as_ptr() },
        );
    }
}

/// Make `PP.pass` on top of `pp`, hiding the last sector when `labeled`.
///
/// # Safety
/// Topology lock held; mp is this class; pp live.
unsafe fn pass_create(mp: *mut g_class, pp: *mut g_provider, labeled: bool) -> Result<*mut g_geom, c_int> {
    // SAFETY: caller's contract.
    unsafe {
        let gp = sys::g_new_geomf(mp, c"%s.pass".as_ptr(), (*pp).name);
        let cp = sys::g_new_consumer(gp);
        (*cp).flags |= sys::G_CF_DIRECT_SEND | sys::G_CF_DIRECT_RECEIVE;
        let error = sys::g_attach(cp, pp);
        if error != 0 {
            sys::g_destroy_consumer(cp);
            sys::g_destroy_geom(gp);
            return Err(error);
        }
        let newpp = sys::g_new_providerf(gp, c"%s".as_ptr(), (*gp).name);
        (*newpp).mediasize = (*pp).mediasize - if labeled { (*pp).sectorsize as i64 } else { 0 };
        (*newpp).sectorsize = (*pp).sectorsize;
        (*newpp).stripesize = (*pp).stripesize;
        (*newpp).stripeoffset = (*pp).stripeoffset;
        (*newpp).flags |= sys::G_PF_DIRECT_SEND | sys::G_PF_DIRECT_RECEIVE;
        sys::g_error_provider(newpp, 0);
        Ok(gp)
    }
}

unsafe extern "C" fn pass_taste(mp: *mut g_class, pp: *mut g_provider, _flags: c_int) -> *mut g_geom {
    // SAFETY: taste runs under the topology lock with live mp and pp; we drop the lock only
    // around the synchronous read, as FreeBSD classes do.
    unsafe {
        if (*(*pp).geom).class == mp || (*pp).sectorsize == 0 || (*pp).mediasize < (*pp).sectorsize as i64 * 2 {
            return ptr::null_mut();
        }
        let gp = sys::g_new_geomf(mp, c"pass:taste".as_ptr());
        let cp = sys::g_new_consumer(gp);
        let mut found = false;
        if sys::g_attach(cp, pp) == 0 {
            if sys::g_access(cp, 1, 0, 0) == 0 {
                sys::g_topology_unlock();
                let mut error = 0;
                let ss = (*pp).sectorsize as i64;
                let buf = sys::g_read_data(cp, (*pp).mediasize - ss, ss, &mut error);
                sys::g_topology_lock();
                if !buf.is_null() {
                    found = std::slice::from_raw_parts(buf.cast::<u8>(), RAW_PASS_MAGIC.len()) == RAW_PASS_MAGIC;
                    sys::platform::geom_rs_free(buf, (&raw mut sys::M_GEOM).cast());
                }
                sys::g_access(cp, -1, 0, 0);
            }
            sys::g_detach(cp);
        }
        sys::g_destroy_consumer(cp);
        sys::g_destroy_geom(gp);
        if !found {
            return ptr::null_mut();
        }
        pass_create(mp, pp, true).unwrap_or(ptr::null_mut())
    }
}

/// The geom of this class named `name`, or NULL.
///
/// # Safety
/// Topology lock held.
unsafe fn find_geom(mp: *mut g_class, name: &CStr) -> *mut g_geom {
    // SAFETY: caller's contract.
    unsafe {
        sys::list_iter(&raw const (*mp).geom, links::geom_in_class)
            .find(|&gp| CStr::from_ptr((*gp).name) == name && (*gp).flags & sys::G_GEOM_WITHER == 0)
            .unwrap_or(ptr::null_mut())
    }
}

unsafe extern "C" fn pass_destroy_geom(_req: *mut gctl_req, _mp: *mut g_class, gp: *mut g_geom) -> c_int {
    // SAFETY: topology lock held; gp is ours.
    unsafe {
        let pp = (*gp).provider.lh_first;
        if !pp.is_null() && ((*pp).acr != 0 || (*pp).acw != 0 || (*pp).ace != 0) {
            return errno::EBUSY;
        }
        sys::g_wither_geom(gp, errno::ENXIO);
    }
    0
}

unsafe extern "C" fn pass_ctlreq(req: *mut gctl_req, mp: *mut g_class, verb: *const c_char) {
    // SAFETY: ctlreq runs under the topology lock with a valid request.
    unsafe {
        let nargs = sys::gctl_get_paraml(req, c"nargs".as_ptr(), size_of::<c_int>() as c_int) as *const c_int;
        if nargs.is_null() {
            return;
        }
        if *nargs != 1 {
            sys::gctl_error(req, c"Exactly one argument expected.".as_ptr());
            return;
        }
        let arg0 = sys::gctl_get_asciiparam(req, c"arg0".as_ptr());
        if arg0.is_null() {
            sys::gctl_error(req, c"No 'arg%d' argument.".as_ptr(), 0 as c_int);
            return;
        }
        match CStr::from_ptr(verb).to_bytes() {
            b"create" => {
                let pp = sys::g_provider_by_name(arg0);
                if pp.is_null() {
                    sys::gctl_error(req, c"Provider %s is invalid.".as_ptr(), arg0);
                    return;
                }
                if let Err(e) = pass_create(mp, pp, false) {
                    sys::gctl_error(req, c"Cannot attach to %s (error=%d).".as_ptr(), arg0, e);
                }
            }
            b"destroy" => {
                let force =
                    sys::gctl_get_paraml_opt(req, c"force".as_ptr(), size_of::<c_int>() as c_int) as *const c_int;
                let force = !force.is_null() && *force != 0;
                let gp = find_geom(mp, CStr::from_ptr(arg0));
                if gp.is_null() {
                    sys::gctl_error(req, c"Device %s is invalid.".as_ptr(), arg0);
                    return;
                }
                let pp = (*gp).provider.lh_first;
                if !pp.is_null() && ((*pp).acr != 0 || (*pp).acw != 0 || (*pp).ace != 0) && !force {
                    sys::gctl_error(req, c"Device %s is still open, so it can't be definitely removed.".as_ptr(), arg0);
                    return;
                }
                sys::g_wither_geom(gp, errno::ENXIO);
            }
            _ => {
                sys::gctl_error(req, c"Unknown verb.".as_ptr());
            }
        }
    }
}

/// The `PASS` class's static `g_class`; runtimes copy it when they load it.
static PASS_CLASS: KernelCell<g_class> = KernelCell::new(g_class {
    taste: Some(pass_taste),
    ctlreq: Some(pass_ctlreq),
    destroy_geom: Some(pass_destroy_geom),
    start: Some(pass_start),
    access: Some(pass_access),
    orphan: Some(pass_orphan),
    dumpconf: Some(pass_dumpconf),
    ..g_class::named(c"PASS")
});

/// The `PASS` class, for [`crate::Runtime::load_class_raw`].
pub fn class() -> *const g_class {
    PASS_CLASS.get()
}

impl crate::Runtime {
    /// Load the raw `PASS` class.
    pub fn load_raw_pass(&self) -> Result<(), i32> {
        // SAFETY: PASS_CLASS is a valid static class whose methods keep the KPI contracts.
        unsafe { self.load_class_raw(class()) }
    }
}
