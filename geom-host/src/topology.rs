//! The topology KPI (`geom_subr.c`): classes, geoms, providers, consumers, attach and
//! detach, access counting, spoiling, orphaning, withering and destruction, with FreeBSD's
//! rules and its `KASSERT`s turned into reported violations.

use std::ffi::{CStr, CString};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64};

use geom_core::sys::links::*;
use geom_core::sys::{
    self, c_char, c_int, c_void, errno, g_class, g_consumer, g_geom, g_geom_alias, g_provider, list_insert_head,
    list_iter, list_remove, malloc_type, module_t, off_t, sx, tailq_insert_tail, tailq_remove, KernelCell,
};

use crate::events::EventFn;
use crate::gctl::{CtlReply, CtlRequest};
use crate::invariants::ViolationKind;
use crate::runtime::{kernel, ConsumerInfo, GeomInfo, Kernel, ProviderInfo, Runtime};

/// `struct sx topology_lock`: only its address matters; the lock itself is per runtime.
#[no_mangle]
pub static topology_lock: KernelCell<[u8; 32]> = KernelCell::new([0; 32]);

/// `M_GEOM`: GEOM's malloc type.
#[no_mangle]
pub static M_GEOM: KernelCell<[malloc_type; 1]> = KernelCell::new([malloc_type::new(c"GEOM".as_ptr())]);

/// `maxphys`: the largest I/O, 1 MiB as on FreeBSD amd64. Like `kern.maxphys`, a loader
/// tunable: [`crate::set_maxphys`] changes it before the first runtime of the process starts,
/// never after (classes read it without synchronisation, as the kernel's code does).
#[no_mangle]
pub static maxphys: AtomicU64 = AtomicU64::new(1024 * 1024);

/// Whether a runtime has started in this process (after which `maxphys` is fixed).
pub(crate) static BOOTED: AtomicBool = AtomicBool::new(false);

fn zalloc<T>() -> *mut T {
    // SAFETY: every GEOM structure is plain C data for which all-zero bytes are valid (NULL
    // pointers, None function pointers, zero counts).
    Box::into_raw(Box::new(unsafe { std::mem::zeroed::<T>() }))
}

/// # Safety
/// `p` came from `zalloc::<T>()` and is no longer referenced.
unsafe fn zfree<T>(p: *mut T) {
    // SAFETY: caller's contract.
    drop(unsafe { Box::from_raw(p) });
}

/// A C string for display.
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub(crate) unsafe fn name_of(p: *const c_char) -> String {
    if p.is_null() {
        return "(null)".into();
    }
    // SAFETY: caller's contract.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn kassert(k: &Kernel, ok: bool, msg: impl FnOnce() -> String) -> bool {
    if !ok {
        k.inv.report(ViolationKind::Kassert, msg());
    }
    ok
}

// ---------------------------------------------------------------------------------------
// Classes

/// A loaded class by name (this runtime's copy), or NULL. Topology lock held.
pub(crate) fn class_by_name(name: &CStr) -> *mut g_class {
    class_by_name_in(kernel(), name)
}

/// [`class_by_name`] in a given kernel.
pub(crate) fn class_by_name_in(k: &Kernel, name: &CStr) -> *mut g_class {
    // SAFETY: callers hold the topology lock; the class list links live copies.
    unsafe {
        list_iter(&k.topo().classes, class_in_classes)
            .find(|&mp| CStr::from_ptr((*mp).name) == name)
            .unwrap_or(ptr::null_mut())
    }
}

/// `g_load_class`: link this runtime's copy of the class, call `init`, offer it every
/// provider. Runs on the event thread.
pub(crate) fn load_class(k: &Kernel, origin: *const g_class) -> Result<(), i32> {
    // SAFETY: the caller of load_class_raw promised `origin` is a valid class; we hold the
    // topology lock for everything below.
    unsafe {
        let name = name_of((*origin).name);
        if (*origin).version != sys::G_VERSION {
            k.console(&format!(
                "GEOM class {name} has Wrong version {:x} (expected {:x})",
                (*origin).version,
                sys::G_VERSION
            ));
            return Err(errno::EINVAL);
        }
        let st = k.topo();
        if st.class_origins.iter().any(|&(o, _)| o == origin) {
            k.console(&format!("The GEOM class {name} is already loaded."));
            return Err(errno::EEXIST);
        }
        if !class_by_name(CStr::from_ptr((*origin).name)).is_null() {
            k.console(&format!("A GEOM class {name} is already loaded."));
            return Err(errno::EEXIST);
        }
        let mp = Box::into_raw(Box::new(ptr::read(origin)));
        (*mp).class = sys::ListEntry::new();
        (*mp).geom = sys::ListHead::new();
        st.class_copies.push(mp);
        st.class_origins.push((origin, mp));
        list_insert_head(&raw mut st.classes, mp, class_in_classes);
        if let Some(init) = (*mp).init {
            init(mp);
        }
        let Some(taste) = (*mp).taste else { return Ok(()) };
        let providers: Vec<*mut g_provider> =
            all_providers(k).into_iter().filter(|&pp| (*(*pp).geom).class != mp).collect();
        for pp in providers {
            taste(mp, pp, 0);
            k.assert_topology("a taste method (on return)");
        }
    }
    Ok(())
}

/// Every provider, walking classes, geoms and providers. Topology lock held.
fn all_providers(k: &Kernel) -> Vec<*mut g_provider> {
    let mut out = Vec::new();
    // SAFETY: topology lock held by the caller; the lists link live objects.
    unsafe {
        for mp in list_iter(&k.topo().classes, class_in_classes) {
            for gp in list_iter(&raw const (*mp).geom, geom_in_class) {
                out.extend(list_iter(&raw const (*gp).provider, provider_in_geom));
            }
        }
    }
    out
}

/// `g_unload_class`: refuse while anything is open, destroy each geom through the class's
/// `destroy_geom`, wait for withering to finish, then `fini` and unlink.
pub(crate) fn unload_class(rt: &Runtime, name: &str) -> Result<(), i32> {
    let Ok(cname) = CString::new(name) else { return Err(errno::EINVAL) };
    let first = cname.clone();
    rt.run(move |t| {
        let mp = class_by_name(&first);
        if mp.is_null() {
            return Err(errno::ENOENT);
        }
        // SAFETY: topology lock held; mp and its geoms are live.
        unsafe {
            for gp in list_iter(&raw const (*mp).geom, geom_in_class) {
                let open_pp = list_iter(&raw const (*gp).provider, provider_in_geom)
                    .any(|pp| (*pp).acr != 0 || (*pp).acw != 0 || (*pp).ace != 0);
                let open_cp = list_iter(&raw const (*gp).consumer, consumer_in_geom)
                    .any(|cp| (*cp).acr != 0 || (*cp).acw != 0 || (*cp).ace != 0);
                if open_pp || open_cp {
                    return Err(errno::EBUSY);
                }
            }
            // Bar new tastes while the geoms go away.
            (*mp).taste = None;
            for gp in list_iter(&raw const (*mp).geom, geom_in_class) {
                if (*gp).flags & sys::G_GEOM_WITHER != 0 {
                    continue;
                }
                let Some(destroy) = (*mp).destroy_geom else { return Err(errno::EOPNOTSUPP) };
                let error = destroy(ptr::null_mut(), mp, gp);
                t.k.assert_topology("a destroy_geom method (on return)");
                if error != 0 {
                    return Err(error);
                }
            }
        }
        Ok(())
    })?;
    // Withering finishes asynchronously on the event thread.
    for _ in 0..5000 {
        rt.wait_idle();
        let c = cname.clone();
        let empty = rt.run(move |_| {
            let mp = class_by_name(&c);
            // SAFETY: topology lock held.
            mp.is_null() || unsafe { (*mp).geom.is_empty() }
        });
        if empty {
            break;
        }
        rt.k.sleepq.pause(std::time::Duration::from_millis(1));
    }
    rt.run(move |t| {
        let mp = class_by_name(&cname);
        if mp.is_null() {
            return Ok(());
        }
        // SAFETY: topology lock held; mp is a live copy on the class list.
        unsafe {
            if !(*mp).geom.is_empty() {
                return Err(errno::EBUSY);
            }
            if let Some(fini) = (*mp).fini {
                fini(mp);
            }
            list_remove(mp, class_in_classes);
            t.k.topo().class_origins.retain(|&(_, copy)| copy != mp);
        }
        Ok(())
    })
}

/// `g_retaste(mp)`: offer every provider not already consumed by the class to its taste.
#[no_mangle]
pub unsafe extern "C" fn g_retaste(mp: *mut g_class) -> c_int {
    let k = kernel();
    if !k.assert_topology("g_retaste") {
        return errno::EINVAL;
    }
    // SAFETY: topology lock held; mp is a loaded class.
    unsafe {
        if (*mp).taste.is_none() {
            return errno::EINVAL;
        }
        for pp in all_providers(k) {
            if (*(*pp).geom).class == mp {
                continue;
            }
            let (mpu, ppu) = (mp as usize, pp as usize);
            k.post(
                EventFn::Rust(Box::new(move |t| taste_one(t.k, mpu as *mut g_class, ppu as *mut g_provider))),
                vec![ppu, mpu],
                None,
            );
        }
    }
    0
}

fn taste_one(k: &Kernel, mp: *mut g_class, pp: *mut g_provider) {
    // SAFETY: runs on the event thread under the topology lock; the event is cancelled if pp
    // or mp goes away first.
    unsafe {
        if let Some(taste) = (*mp).taste {
            if !consumed_by(pp, mp) {
                taste(mp, pp, 0);
                k.assert_topology("a taste method (on return)");
            }
        }
    }
}

/// Does a geom of class `mp` already consume `pp` (with a consumer that is not orphaned)?
///
/// # Safety
/// Topology lock held; pp live.
unsafe fn consumed_by(pp: *mut g_provider, mp: *mut g_class) -> bool {
    // SAFETY: caller's contract.
    unsafe {
        list_iter(&raw const (*pp).consumers, consumer_in_provider)
            .any(|cp| (*(*cp).geom).class == mp && (*cp).flags & sys::G_CF_ORPHAN == 0)
    }
}

/// `g_modevent`: what `DECLARE_GEOM_CLASS` installs as the module's event handler.
#[no_mangle]
pub unsafe extern "C" fn g_modevent(_m: module_t, what: c_int, arg: *mut c_void) -> c_int {
    let k = crate::runtime::kernel_arc();
    let mp = arg as *const g_class;
    let rt = Runtime::non_owning(k);
    let r = match what {
        // SAFETY: the module passes its own valid class.
        sys::MOD_LOAD => unsafe { rt.load_class_raw(mp) },
        // SAFETY: as above; the name is the class's own.
        sys::MOD_UNLOAD => unload_class(&rt, &unsafe { name_of((*mp).name) }),
        _ => Err(errno::EOPNOTSUPP),
    };
    match r {
        Ok(()) => 0,
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------
// Geoms

/// The Rust side of `g_new_geomf`.
///
/// # Safety
/// Topology lock held; `mp` is a loaded class; `name` is a valid C string.
#[no_mangle]
pub unsafe extern "C" fn geom_host_new_geom(mp: *mut g_class, name: *const c_char) -> *mut g_geom {
    let k = kernel();
    k.assert_topology("g_new_geomf");
    if name.is_null() {
        // The C wrapper could not format the name (out of memory); g_new_geomf cannot fail
        // in FreeBSD, so this is as fatal as a failed M_WAITOK allocation.
        kassert(k, false, || "g_new_geomf: the name could not be formatted".into());
        return ptr::null_mut();
    }
    let gp = zalloc::<g_geom>();
    // SAFETY: gp is fresh; mp is valid (caller); the topology lock protects the lists.
    unsafe {
        (*gp).name = CString::from(CStr::from_ptr(name)).into_raw();
        (*gp).class = mp;
        (*gp).rank = 1;
        list_insert_head(&raw mut (*mp).geom, gp, geom_in_class);
        sys::tailq_insert_head(&raw mut k.topo().geoms, gp, geom_in_geoms);
        (*gp).start = (*mp).start;
        (*gp).spoiled = (*mp).spoiled;
        (*gp).attrchanged = (*mp).attrchanged;
        (*gp).providergone = (*mp).providergone;
        (*gp).dumpconf = (*mp).dumpconf;
        (*gp).access = (*mp).access;
        (*gp).orphan = (*mp).orphan;
        (*gp).ioctl = (*mp).ioctl;
        (*gp).resize = (*mp).resize;
    }
    gp
}

/// `g_destroy_geom`: free a geom with no consumers and no providers.
#[no_mangle]
pub unsafe extern "C" fn g_destroy_geom(gp: *mut g_geom) {
    let k = kernel();
    if !k.assert_topology("g_destroy_geom") {
        return;
    }
    // SAFETY: topology lock held; gp is a live geom (caller).
    unsafe {
        let name = name_of((*gp).name);
        if !kassert(k, (*gp).consumer.is_empty(), || format!("g_destroy_geom({name}) with consumer(s)"))
            || !kassert(k, (*gp).provider.is_empty(), || format!("g_destroy_geom({name}) with provider(s)"))
        {
            return;
        }
        k.cancel_events(gp as usize);
        list_remove(gp, geom_in_class);
        tailq_remove(&raw mut k.topo().geoms, gp, geom_in_geoms);
        drop(CString::from_raw((*gp).name));
        zfree(gp);
    }
}

/// `g_wither_geom`: mark the geom withering and orphan its providers; the event thread
/// destroys what becomes unused.
#[no_mangle]
pub unsafe extern "C" fn g_wither_geom(gp: *mut g_geom, error: c_int) {
    let k = kernel();
    if !k.assert_topology("g_wither_geom") {
        return;
    }
    // SAFETY: topology lock held; gp live.
    unsafe {
        if (*gp).flags & sys::G_GEOM_WITHER == 0 {
            (*gp).flags |= sys::G_GEOM_WITHER;
            for pp in list_iter(&raw const (*gp).provider, provider_in_geom) {
                if (*pp).flags & sys::G_PF_ORPHAN == 0 {
                    g_orphan_provider(pp, error);
                }
            }
        }
    }
    k.do_wither();
}

/// `g_wither_geom_close`: close every consumer, then wither.
#[no_mangle]
pub unsafe extern "C" fn g_wither_geom_close(gp: *mut g_geom, error: c_int) {
    let k = kernel();
    if !k.assert_topology("g_wither_geom_close") {
        return;
    }
    // SAFETY: topology lock held; gp live.
    unsafe {
        for cp in list_iter(&raw const (*gp).consumer, consumer_in_geom) {
            if (*cp).acr != 0 || (*cp).acw != 0 || (*cp).ace != 0 {
                g_access(cp, -(*cp).acr, -(*cp).acw, -(*cp).ace);
            }
        }
        g_wither_geom(gp, error);
    }
}

/// `g_wither_washer`: destroy withered providers without consumers, and the consumers and
/// geoms of withering geoms once they are closed and empty.
pub(crate) fn wither_washer(k: &Kernel) {
    // SAFETY: runs on the event thread with the topology lock held; the SAFE iteration reads
    // each next pointer before the element can be destroyed.
    unsafe {
        let classes: Vec<*mut g_class> = list_iter(&k.topo().classes, class_in_classes).collect();
        for mp in classes {
            let geoms: Vec<*mut g_geom> = list_iter(&raw const (*mp).geom, geom_in_class).collect();
            for gp in geoms {
                for pp in list_iter(&raw const (*gp).provider, provider_in_geom) {
                    if (*pp).flags & sys::G_PF_WITHER != 0 && (*pp).consumers.is_empty() {
                        g_destroy_provider(pp);
                    }
                }
                if (*gp).flags & sys::G_GEOM_WITHER == 0 {
                    continue;
                }
                for pp in list_iter(&raw const (*gp).provider, provider_in_geom) {
                    if (*pp).consumers.is_empty() {
                        g_destroy_provider(pp);
                    }
                }
                for cp in list_iter(&raw const (*gp).consumer, consumer_in_geom) {
                    if (*cp).acr != 0 || (*cp).acw != 0 || (*cp).ace != 0 {
                        continue;
                    }
                    if !(*cp).provider.is_null() {
                        g_detach(cp);
                    }
                    g_destroy_consumer(cp);
                }
                if (*gp).provider.is_empty() && (*gp).consumer.is_empty() {
                    g_destroy_geom(gp);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Consumers

/// `g_new_consumer`.
#[no_mangle]
pub unsafe extern "C" fn g_new_consumer(gp: *mut g_geom) -> *mut g_consumer {
    let k = kernel();
    k.assert_topology("g_new_consumer");
    // SAFETY: topology lock held; gp live (caller).
    unsafe {
        let name = name_of((*gp).name);
        kassert(k, (*gp).flags & sys::G_GEOM_WITHER == 0, || format!("g_new_consumer on WITHERing geom({name})"));
        if !kassert(k, (*gp).orphan.is_some(), || format!("g_new_consumer on geom({name}) without orphan")) {
            return ptr::null_mut();
        }
        let cp = zalloc::<g_consumer>();
        (*cp).geom = gp;
        list_insert_head(&raw mut (*gp).consumer, cp, consumer_in_geom);
        cp
    }
}

/// `g_destroy_consumer`: free a detached, closed consumer.
#[no_mangle]
pub unsafe extern "C" fn g_destroy_consumer(cp: *mut g_consumer) {
    let k = kernel();
    if !k.assert_topology("g_destroy_consumer") {
        return;
    }
    // SAFETY: topology lock held; cp live (caller).
    unsafe {
        let ok = kassert(k, (*cp).provider.is_null(), || "g_destroy_consumer but attached".into())
            && kassert(k, (*cp).acr == 0 && (*cp).acw == 0 && (*cp).ace == 0, || {
                format!("g_destroy_consumer with access r{}w{}e{}", (*cp).acr, (*cp).acw, (*cp).ace)
            });
        if !ok {
            return;
        }
        k.cancel_events(cp as usize);
        let gp = (*cp).geom;
        list_remove(cp, consumer_in_geom);
        zfree(cp);
        if (*gp).flags & sys::G_GEOM_WITHER != 0 {
            k.do_wither();
        }
    }
}

/// Recompute ranks after an attach or detach (`redo_rank`); `ELOOP` if `gp` would sit on a
/// cycle.
///
/// # Safety
/// Topology lock held.
unsafe fn redo_rank(k: &Kernel, gp: *mut g_geom) -> c_int {
    // SAFETY: caller holds the topology lock; every geom on the queue is live.
    unsafe {
        let geoms = &raw mut k.topo().geoms;
        let mut gp1 = (*geom_in_geoms(gp)).tqe_next;
        if !gp1.is_null() {
            (*gp).rank = 0;
            tailq_remove(geoms, gp, geom_in_geoms);
            tailq_insert_tail(geoms, gp, geom_in_geoms);
        } else {
            gp1 = gp;
        }
        while !gp1.is_null() {
            (*gp1).rank = 0;
            let mut m = 1;
            for cp in list_iter(&raw const (*gp1).consumer, consumer_in_geom) {
                if (*cp).provider.is_null() {
                    continue;
                }
                let n = (*(*(*cp).provider).geom).rank;
                if n == 0 {
                    m = 0;
                    break;
                } else if n >= m {
                    m = n + 1;
                }
            }
            (*gp1).rank = m;
            let gp2 = (*geom_in_geoms(gp1)).tqe_next;
            if m == 0 {
                if gp1 == gp {
                    return errno::ELOOP;
                }
                tailq_remove(geoms, gp1, geom_in_geoms);
                tailq_insert_tail(geoms, gp1, geom_in_geoms);
            }
            gp1 = gp2;
        }
    }
    0
}

/// `g_attach`: link a consumer to a provider (no access yet); `ELOOP` on a cycle.
#[no_mangle]
pub unsafe extern "C" fn g_attach(cp: *mut g_consumer, pp: *mut g_provider) -> c_int {
    let k = kernel();
    if !k.assert_topology("g_attach") {
        return errno::EINVAL;
    }
    // SAFETY: topology lock held; cp and pp live (caller).
    unsafe {
        if !kassert(k, (*cp).provider.is_null(), || "g_attach but attached".into()) {
            return errno::EINVAL;
        }
        (*cp).provider = pp;
        list_insert_head(&raw mut (*pp).consumers, cp, consumer_in_provider);
        let error = redo_rank(k, (*cp).geom);
        if error != 0 {
            list_remove(cp, consumer_in_provider);
            (*cp).provider = ptr::null_mut();
            redo_rank(k, (*cp).geom);
        }
        error
    }
}

/// `g_detach`: unlink a closed consumer with no I/O outstanding.
#[no_mangle]
pub unsafe extern "C" fn g_detach(cp: *mut g_consumer) {
    let k = kernel();
    if !k.assert_topology("g_detach") {
        return;
    }
    // SAFETY: topology lock held; cp live (caller).
    unsafe {
        let ok = kassert(k, !(*cp).provider.is_null(), || "g_detach but not attached".into())
            && kassert(k, (*cp).acr == 0 && (*cp).acw == 0 && (*cp).ace == 0, || {
                format!("g_detach with access r{}w{}e{}", (*cp).acr, (*cp).acw, (*cp).ace)
            })
            && kassert(k, (*cp).nstart == (*cp).nend, || {
                format!("g_detach with active requests ({} started, {} ended)", (*cp).nstart, (*cp).nend)
            });
        if !ok {
            return;
        }
        let pp = (*cp).provider;
        list_remove(cp, consumer_in_provider);
        (*cp).provider = ptr::null_mut();
        if (*(*cp).geom).flags & sys::G_GEOM_WITHER != 0
            || (*(*pp).geom).flags & sys::G_GEOM_WITHER != 0
            || (*pp).flags & sys::G_PF_WITHER != 0
        {
            k.do_wither();
        }
        redo_rank(k, (*cp).geom);
    }
}

// ---------------------------------------------------------------------------------------
// Access

/// `g_access`: change a consumer's open counts by the deltas, with FreeBSD's rules: no
/// exclusive open while someone else writes, no write while someone else holds exclusive, no
/// new opens of a provider in error; the provider's geom's access method may refuse; the first
/// write-open spoils the other consumers and the last write-close schedules a retaste.
#[no_mangle]
pub unsafe extern "C" fn g_access(cp: *mut g_consumer, dcr: c_int, dcw: c_int, dce: c_int) -> c_int {
    let k = kernel();
    if !k.assert_topology("g_access") {
        return errno::EINVAL;
    }
    // SAFETY: topology lock held; cp live and attached (checked), pp live.
    unsafe {
        let pp = (*cp).provider;
        if !kassert(k, !pp.is_null(), || "g_access but not attached".into()) {
            return errno::EINVAL;
        }
        let pname = name_of((*pp).name);
        if (*cp).acr + dcr < 0 || (*cp).acw + dcw < 0 || (*cp).ace + dce < 0 {
            k.inv.report(
                ViolationKind::AccessCountNegative,
                format!(
                    "g_access on {pname}: consumer r{}w{}e{} with delta r{dcr}w{dcw}e{dce} would go below zero",
                    (*cp).acr,
                    (*cp).acw,
                    (*cp).ace
                ),
            );
            return errno::EINVAL;
        }
        if !kassert(k, dcr != 0 || dcw != 0 || dce != 0, || format!("NOP access request on {pname}")) {
            return errno::EINVAL;
        }
        let Some(access) = (*(*pp).geom).access else {
            kassert(k, false, || format!("NULL geom->access on {pname}"));
            return errno::EINVAL;
        };
        let opening = dcr > 0 || dcw > 0 || dce > 0;
        if (*(*cp).geom).spoiled.is_some() && (*cp).flags & sys::G_CF_SPOILED != 0 && opening {
            return errno::ENXIO;
        }
        // What the provider would hold if this consumer held nothing.
        let pw = (*pp).acw - (*cp).acw;
        let pe = (*pp).ace - (*cp).ace;
        // No exclusive open while someone else writes; no write while someone else holds
        // exclusive; no new opens of a provider in error.
        if (dce > 0 && pw > 0) || (dcw > 0 && pe > 0) {
            return errno::EPERM;
        }
        if opening && (*pp).error != 0 {
            return (*pp).error;
        }
        let error = access(pp, dcr, dcw, dce);
        k.assert_topology("an access method (on return)");
        kassert(k, opening || error == 0, || format!("geom provider {pname} failed closing ->access()"));
        if error == 0 {
            if (*pp).acw == 0 && dcw != 0 {
                g_spoil(pp, cp);
            } else if (*pp).acw != 0
                && (*pp).acw == -dcw
                && (*pp).error == 0
                && (*(*pp).geom).flags & sys::G_GEOM_WITHER == 0
            {
                post_new_provider(k, pp);
            }
            (*pp).acr += dcr;
            (*pp).acw += dcw;
            (*pp).ace += dce;
            (*cp).acr += dcr;
            (*cp).acw += dcw;
            (*cp).ace += dce;
            if (*pp).acr != 0 || (*pp).acw != 0 || (*pp).ace != 0 {
                kassert(k, (*pp).sectorsize > 0, || format!("provider {pname} lacks sectorsize"));
            }
            if (*(*cp).geom).flags & sys::G_GEOM_WITHER != 0 && (*cp).acr == 0 && (*cp).acw == 0 && (*cp).ace == 0 {
                k.do_wither();
            }
        }
        error
    }
}

/// `g_std_access`: the default access method; allows everything.
#[no_mangle]
pub unsafe extern "C" fn g_std_access(_pp: *mut g_provider, _dr: c_int, _dw: c_int, _de: c_int) -> c_int {
    kernel().assert_topology("g_std_access");
    0
}

// ---------------------------------------------------------------------------------------
// Spoiling

/// `g_spoil`: mark every other consumer of `pp` spoiled and queue the spoil event.
#[no_mangle]
pub unsafe extern "C" fn g_spoil(pp: *mut g_provider, cp: *mut g_consumer) {
    let k = kernel();
    if !k.assert_topology("g_spoil") {
        return;
    }
    // SAFETY: topology lock held; pp live.
    unsafe {
        for cp2 in list_iter(&raw const (*pp).consumers, consumer_in_provider) {
            if cp2 == cp {
                continue;
            }
            kassert(k, (*cp2).ace == 0, || {
                format!("spoiling a consumer of {} with ace={}", name_of((*pp).name), (*cp2).ace)
            });
            (*cp2).flags |= sys::G_CF_SPOILED;
        }
    }
    let ppu = pp as usize;
    k.post(EventFn::Rust(Box::new(move |t| spoil_event(t.k, ppu as *mut g_provider))), vec![ppu], None);
}

fn spoil_event(k: &Kernel, pp: *mut g_provider) {
    // SAFETY: event thread, topology lock held; the event is cancelled if pp is destroyed.
    unsafe {
        for cp in list_iter(&raw const (*pp).consumers, consumer_in_provider) {
            if (*cp).flags & sys::G_CF_SPOILED == 0 {
                continue;
            }
            (*cp).flags &= !sys::G_CF_SPOILED;
            if let Some(spoiled) = (*(*cp).geom).spoiled {
                spoiled(cp);
                k.assert_topology("a spoiled method (on return)");
            }
        }
    }
}

/// `g_std_spoiled`: detach, orphan everything above, and destroy what can go.
#[no_mangle]
pub unsafe extern "C" fn g_std_spoiled(cp: *mut g_consumer) {
    let k = kernel();
    if !k.assert_topology("g_std_spoiled") {
        return;
    }
    // SAFETY: topology lock held; cp live.
    unsafe {
        (*cp).flags |= sys::G_CF_ORPHAN;
        g_detach(cp);
        let gp = (*cp).geom;
        for pp in list_iter(&raw const (*gp).provider, provider_in_geom) {
            g_orphan_provider(pp, errno::ENXIO);
        }
        g_destroy_consumer(cp);
        if (*gp).provider.is_empty() && (*gp).consumer.is_empty() {
            g_destroy_geom(gp);
        } else {
            (*gp).flags |= sys::G_GEOM_WITHER;
        }
    }
}

/// Mark every consumer of `pp` spoiled (the spoil event then tells their geoms).
fn mark_spoiled(pp: *mut g_provider) {
    // SAFETY: pp is live (the KPI callers' contract); the flags are read by the event thread.
    unsafe {
        for cp in list_iter(&raw const (*pp).consumers, consumer_in_provider) {
            (*cp).flags |= sys::G_CF_SPOILED;
        }
    }
}

/// `g_media_changed`: spoil the consumers and retaste once the event runs.
#[no_mangle]
pub unsafe extern "C" fn g_media_changed(pp: *mut g_provider, _flag: c_int) -> c_int {
    let k = kernel();
    mark_spoiled(pp);
    let ppu = pp as usize;
    k.post(
        EventFn::Rust(Box::new(move |t| {
            let pp = ppu as *mut g_provider;
            // SAFETY: event thread under the topology lock; cancelled if pp goes away.
            let retaste =
                unsafe { (*pp).acw == 0 && (*pp).error == 0 && (*(*pp).geom).flags & sys::G_GEOM_WITHER == 0 };
            spoil_event(t.k, pp);
            if retaste {
                post_new_provider(t.k, pp);
            }
        })),
        vec![ppu],
        None,
    );
    0
}

/// `g_media_gone`: spoil every consumer of `pp`.
#[no_mangle]
pub unsafe extern "C" fn g_media_gone(pp: *mut g_provider, _flag: c_int) -> c_int {
    let k = kernel();
    mark_spoiled(pp);
    let ppu = pp as usize;
    k.post(EventFn::Rust(Box::new(move |t| spoil_event(t.k, ppu as *mut g_provider))), vec![ppu], None);
    0
}

/// `g_attr_changed`: tell the geoms above that an attribute changed.
#[no_mangle]
pub unsafe extern "C" fn g_attr_changed(pp: *mut g_provider, attr: *const c_char, _flag: c_int) -> c_int {
    let k = kernel();
    // SAFETY: attr is a valid string (caller); copied so the event owns it.
    let attr = unsafe { CStr::from_ptr(attr) }.to_owned();
    let ppu = pp as usize;
    k.post(
        EventFn::Rust(Box::new(move |t| {
            let pp = ppu as *mut g_provider;
            // SAFETY: event thread under the topology lock; cancelled if pp goes away.
            unsafe {
                for cp in list_iter(&raw const (*pp).consumers, consumer_in_provider) {
                    if (*cp).flags & sys::G_CF_ORPHAN == 0 {
                        if let Some(f) = (*(*cp).geom).attrchanged {
                            f(cp, attr.as_ptr());
                            t.k.assert_topology("an attrchanged method (on return)");
                        }
                    }
                }
            }
        })),
        vec![ppu],
        None,
    );
    0
}

// ---------------------------------------------------------------------------------------
// Providers

/// The Rust side of `g_new_providerf`: a provider in error `ENXIO`, announced to every class
/// by a "new provider" event.
///
/// # Safety
/// Topology lock held; gp live; name a valid C string.
#[no_mangle]
pub unsafe extern "C" fn geom_host_new_provider(gp: *mut g_geom, name: *const c_char) -> *mut g_provider {
    let k = kernel();
    k.assert_topology("g_new_providerf");
    if name.is_null() {
        kassert(k, false, || "g_new_providerf: the name could not be formatted".into());
        return ptr::null_mut();
    }
    // SAFETY: caller's contract; pp is fresh.
    unsafe {
        let gname = name_of((*gp).name);
        let ok = kassert(k, (*gp).access.is_some(), || format!("new provider on geom({gname}) without ->access"))
            && kassert(k, (*gp).start.is_some(), || format!("new provider on geom({gname}) without ->start"))
            && kassert(k, (*gp).flags & sys::G_GEOM_WITHER == 0, || format!("new provider on WITHERing geom({gname})"));
        if !ok {
            return ptr::null_mut();
        }
        let pp = zalloc::<g_provider>();
        (*pp).name = CString::from(CStr::from_ptr(name)).into_raw();
        (*pp).error = errno::ENXIO;
        (*pp).geom = gp;
        list_insert_head(&raw mut (*gp).provider, pp, provider_in_geom);
        post_new_provider_refs(k, pp, vec![pp as usize, gp as usize]);
        pp
    }
}

fn post_new_provider(k: &Kernel, pp: *mut g_provider) {
    post_new_provider_refs(k, pp, vec![pp as usize]);
}

fn post_new_provider_refs(k: &Kernel, pp: *mut g_provider, refs: Vec<usize>) {
    let ppu = pp as usize;
    k.post(EventFn::Rust(Box::new(move |t| new_provider_event(t.k, ppu as *mut g_provider))), refs, None);
}

/// `g_new_provider_event`: tell consumers the media may have changed, then offer the
/// provider to every class that does not already consume it.
fn new_provider_event(k: &Kernel, pp: *mut g_provider) {
    // SAFETY: event thread, topology lock held; the event is cancelled if pp is destroyed.
    unsafe {
        if k.topo().shutdown {
            return;
        }
        if !kassert(k, (*pp).flags & sys::G_PF_WITHER == 0, || {
            format!("new provider event for withered {}", name_of((*pp).name))
        }) {
            return;
        }
        for cp in list_iter(&raw const (*pp).consumers, consumer_in_provider) {
            if (*cp).flags & sys::G_CF_ORPHAN == 0 {
                if let Some(f) = (*(*cp).geom).attrchanged {
                    f(cp, c"GEOM::media".as_ptr());
                }
            }
        }
        let classes: Vec<*mut g_class> = list_iter(&k.topo().classes, class_in_classes).collect();
        for mp in classes {
            let Some(taste) = (*mp).taste else { continue };
            if consumed_by(pp, mp) {
                continue;
            }
            taste(mp, pp, 0);
            k.assert_topology("a taste method (on return)");
        }
    }
}

/// The Rust side of `g_provider_add_alias`.
///
/// # Safety
/// pp live; name a valid C string.
#[no_mangle]
pub unsafe extern "C" fn geom_host_provider_add_alias(pp: *mut g_provider, name: *const c_char) {
    if name.is_null() {
        kassert(kernel(), false, || "g_provider_add_alias: the alias could not be formatted".into());
        return;
    }
    let ga = zalloc::<g_geom_alias>();
    // SAFETY: caller's contract; ga is fresh.
    unsafe {
        (*ga).ga_alias = CString::from(CStr::from_ptr(name)).into_raw();
        list_insert_head(&raw mut (*pp).aliases, ga, alias_in_provider);
    }
}

/// `g_error_provider`: set the error new requests and opens get.
#[no_mangle]
pub unsafe extern "C" fn g_error_provider(pp: *mut g_provider, error: c_int) {
    // SAFETY: pp live (caller). FreeBSD also writes this without the topology lock.
    unsafe { (*pp).error = error };
}

/// `g_orphan_provider`: tell every consumer above (on the event thread) that `pp` is gone.
#[no_mangle]
pub unsafe extern "C" fn g_orphan_provider(pp: *mut g_provider, error: c_int) {
    let k = kernel();
    // SAFETY: pp live (caller); the event queue mutex serialises the orphan doorstep.
    unsafe {
        let name = name_of((*pp).name);
        if !kassert(k, error != 0, || format!("g_orphan_provider({name}, 0): error must be non-zero")) {
            return;
        }
        if !kassert(k, (*pp).flags & sys::G_PF_ORPHAN == 0, || format!("g_orphan_provider({name}): already an orphan"))
        {
            return;
        }
        (*pp).error = error;
        (*pp).flags |= sys::G_PF_ORPHAN;
    }
    k.post_orphan(pp);
}

/// `g_orphan_register`: run each consumer's orphan method; destroy a withered provider left
/// without consumers.
pub(crate) fn orphan_register(k: &Kernel, pp: *mut g_provider) {
    // SAFETY: event thread, topology lock held; pp is on the doorstep, so still alive.
    unsafe {
        k.cancel_events(pp as usize);
        let wf = (*pp).flags & sys::G_PF_WITHER;
        (*pp).flags &= !sys::G_PF_WITHER;
        for cp in list_iter(&raw const (*pp).consumers, consumer_in_provider) {
            if (*cp).flags & sys::G_CF_ORPHAN != 0 {
                continue;
            }
            let Some(orphan) = (*(*cp).geom).orphan else {
                kassert(k, false, || format!("geom {} has no orphan method", name_of((*(*cp).geom).name)));
                continue;
            };
            (*cp).flags |= sys::G_CF_ORPHAN;
            orphan(cp);
            k.assert_topology("an orphan method (on return)");
        }
        if (*pp).consumers.is_empty() && wf != 0 {
            g_destroy_provider(pp);
        } else {
            (*pp).flags |= wf;
        }
    }
}

/// `g_wither_provider`: mark the provider for destruction and orphan it.
#[no_mangle]
pub unsafe extern "C" fn g_wither_provider(pp: *mut g_provider, error: c_int) {
    // SAFETY: pp live (caller).
    unsafe {
        (*pp).flags |= sys::G_PF_WITHER;
        if (*pp).flags & sys::G_PF_ORPHAN == 0 {
            g_orphan_provider(pp, error);
        }
    }
}

/// `g_destroy_provider`: free a closed provider with no consumers.
#[no_mangle]
pub unsafe extern "C" fn g_destroy_provider(pp: *mut g_provider) {
    let k = kernel();
    if !k.assert_topology("g_destroy_provider") {
        return;
    }
    // SAFETY: topology lock held; pp live (caller).
    unsafe {
        let name = name_of((*pp).name);
        let ok = kassert(k, (*pp).consumers.is_empty(), || format!("g_destroy_provider({name}) but attached"))
            && kassert(k, (*pp).acr == 0 && (*pp).acw == 0 && (*pp).ace == 0, || {
                format!("g_destroy_provider({name}) with access r{}w{}e{}", (*pp).acr, (*pp).acw, (*pp).ace)
            });
        if !ok {
            return;
        }
        k.cancel_events(pp as usize);
        list_remove(pp, provider_in_geom);
        let gp = (*pp).geom;
        if let Some(gone) = (*gp).providergone {
            gone(pp);
        }
        for ga in list_iter(&raw const (*pp).aliases, alias_in_provider) {
            drop(CString::from_raw((*ga).ga_alias as *mut c_char));
            zfree(ga);
        }
        drop(CString::from_raw((*pp).name));
        zfree(pp);
        if (*gp).flags & sys::G_GEOM_WITHER != 0 {
            k.do_wither();
        }
    }
}

/// `g_resize_provider`: change the size on the event thread; consumers without a resize
/// method are orphaned when it shrinks; the provider is retasted.
#[no_mangle]
pub unsafe extern "C" fn g_resize_provider(pp: *mut g_provider, size: off_t) {
    let k = kernel();
    // SAFETY: pp live (caller).
    if unsafe { (*pp).mediasize } == size {
        return;
    }
    let ppu = pp as usize;
    k.post(
        EventFn::Rust(Box::new(move |t| {
            let pp = ppu as *mut g_provider;
            // SAFETY: event thread, topology lock held; cancelled if pp goes away.
            unsafe {
                for cp in list_iter(&raw const (*pp).consumers, consumer_in_provider) {
                    if (*(*cp).geom).resize.is_none() && size < (*pp).mediasize {
                        (*cp).flags |= sys::G_CF_ORPHAN;
                        if let Some(orphan) = (*(*cp).geom).orphan {
                            orphan(cp);
                        }
                    }
                }
                (*pp).mediasize = size;
                for cp in list_iter(&raw const (*pp).consumers, consumer_in_provider) {
                    if let Some(resize) = (*(*cp).geom).resize {
                        resize(cp);
                    }
                }
            }
            new_provider_event(t.k, pp);
        })),
        vec![ppu],
        None,
    );
}

/// `g_provider_by_name`: look a provider up by name; a leading "/dev/" is ignored.
#[no_mangle]
pub unsafe extern "C" fn g_provider_by_name(name: *const c_char) -> *mut g_provider {
    let k = kernel();
    // SAFETY: name is a valid string (caller); the walk needs the topology lock, which the
    // KPI requires of its callers.
    unsafe {
        let mut want = CStr::from_ptr(name).to_bytes();
        if let Some(rest) = want.strip_prefix(b"/dev/") {
            want = rest;
        }
        all_providers(k)
            .into_iter()
            .find(|&pp| CStr::from_ptr((*pp).name).to_bytes() == want)
            .unwrap_or(ptr::null_mut())
    }
}

/// Snapshot of every geom for the host API, classes in load order. Topology lock held.
pub(crate) fn geom_infos(k: &Kernel) -> Vec<GeomInfo> {
    let mut out = Vec::new();
    // SAFETY: topology lock held; the lists link live objects.
    unsafe {
        let mut classes: Vec<*mut g_class> = list_iter(&k.topo().classes, class_in_classes).collect();
        classes.reverse();
        for mp in classes {
            let mut geoms: Vec<*mut g_geom> = list_iter(&raw const (*mp).geom, geom_in_class).collect();
            geoms.reverse();
            for gp in geoms {
                let consumers = list_iter(&raw const (*gp).consumer, consumer_in_geom)
                    .map(|cp| ConsumerInfo {
                        provider: if (*cp).provider.is_null() { None } else { Some(name_of((*(*cp).provider).name)) },
                        access: ((*cp).acr, (*cp).acw, (*cp).ace),
                        flags: (*cp).flags,
                    })
                    .collect();
                let providers =
                    list_iter(&raw const (*gp).provider, provider_in_geom).map(|pp| provider_info(pp)).collect();
                out.push(GeomInfo {
                    class: name_of((*mp).name),
                    name: name_of((*gp).name),
                    rank: (*gp).rank,
                    flags: (*gp).flags,
                    providers,
                    consumers,
                });
            }
        }
    }
    out
}

/// # Safety
/// Topology lock held; pp live.
unsafe fn provider_info(pp: *mut g_provider) -> ProviderInfo {
    // SAFETY: caller's contract; the provider's geom and class are live too.
    unsafe {
        let gp = (*pp).geom;
        ProviderInfo {
            name: name_of((*pp).name),
            geom: name_of((*gp).name),
            class: name_of((*(*gp).class).name),
            mediasize: (*pp).mediasize,
            sectorsize: (*pp).sectorsize,
            stripesize: (*pp).stripesize,
            stripeoffset: (*pp).stripeoffset,
            access: ((*pp).acr, (*pp).acw, (*pp).ace),
            error: (*pp).error,
            flags: (*pp).flags,
        }
    }
}

/// Snapshot of every provider for the host API. Topology lock held.
pub(crate) fn provider_infos(k: &Kernel) -> Vec<ProviderInfo> {
    all_providers(k)
        .into_iter()
        // SAFETY: topology lock held (caller); the walk yields live providers.
        .map(|pp| unsafe { provider_info(pp) })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The topology lock as an sx

fn check_sx(k: &Kernel, s: *mut sx) -> bool {
    kassert(k, std::ptr::eq(s.cast::<u8>(), topology_lock.get().cast::<u8>()), || {
        "an sx lock other than topology_lock was used; geom-host provides only the topology lock".into()
    })
}

/// `_sx_xlock`: behind `g_topology_lock()`.
#[no_mangle]
pub unsafe extern "C" fn _sx_xlock(s: *mut sx, _opts: c_int, _file: *const c_char, _line: c_int) -> c_int {
    let k = kernel();
    if check_sx(k, s) {
        if k.topology.held() {
            k.inv.report(
                ViolationKind::Kassert,
                "g_topology_lock: the topology lock is already held by this thread".into(),
            );
            return 0;
        }
        k.topology.lock();
    }
    0
}

/// `_sx_xunlock`: behind `g_topology_unlock()`.
#[no_mangle]
pub unsafe extern "C" fn _sx_xunlock(s: *mut sx, _file: *const c_char, _line: c_int) {
    let k = kernel();
    if check_sx(k, s) && k.assert_topology("g_topology_unlock") {
        k.topology.unlock();
    }
}

// ---------------------------------------------------------------------------------------
// geom(8) requests

/// Run a geom(8) request as `g_ctl_req` does: find the class, require a verb, answer the
/// built-in `getxml`, refuse classes without ctlreq, otherwise call ctlreq with the verb.
pub(crate) fn dispatch_ctl(rt: &Runtime, req: &CtlRequest) -> CtlReply {
    let mut raw = match req.to_raw() {
        Ok(raw) => raw,
        Err(reply) => return reply,
    };
    let rp = raw.as_ptr() as usize;
    rt.run(move |_| {
        let req = rp as *mut sys::gctl_req;
        // SAFETY: the request outlives this call (the caller waits for it); topology lock
        // held for the class lookup and the ctlreq call.
        unsafe {
            let mp = sys::gctl_get_class(req, c"class".as_ptr());
            if mp.is_null() {
                return;
            }
            // The verb is used as a C string (compared here, read by ctlreq), so it must be
            // one: a caller may send any bytes, and an unterminated "verb" was read past its
            // end. gctl_get_asciiparam says "Unterminated argument (verb)" for those.
            let verb = sys::gctl_get_asciiparam(req, c"verb".as_ptr());
            if verb.is_null() {
                sys::gctl_error(req, c"Verb missing".as_ptr());
                return;
            }
            // GEOM answers "getxml" itself, for any class.
            if CStr::from_ptr(verb) == c"getxml" {
                crate::gctl::getxml(req, mp, &kernel().topo().classes);
                return;
            }
            let Some(ctlreq) = (*mp).ctlreq else {
                sys::gctl_error(req, c"Class takes no requests".as_ptr());
                return;
            };
            ctlreq(req, mp, verb);
            kernel().assert_topology("a ctlreq method (on return)");
        }
    });
    raw.finish()
}
