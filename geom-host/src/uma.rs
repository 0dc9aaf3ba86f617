//! UMA zones (`uma_core.c`) in userland: `uma_zcreate`, `uma_zalloc_arg`, `uma_zfree_arg`,
//! `uma_zdestroy`.
//!
//! A zone is a cache of same-sized items: its size rounded up to `UMA_SMALLEST_UNIT` and to
//! its alignment (the `align` mask + 1). Freed items go on the zone's free list (up to
//! [`CACHE_MAX`]) and are handed out again, last freed first, as UMA's per-CPU buckets do.
//! Like an `INVARIANTS` kernel (for zones whose memory UMA may scribble on: no `ZINIT`,
//! `NOTOUCH` or `NOFREE`), a freed item is filled with a trash pattern, and the pattern is
//! checked when the item is handed out again, so a write after free is reported. `ZINIT`
//! zones hand out fresh items zeroed. The zone knows which items are out, so a double free
//! or a free into the wrong zone is reported, and destroying a zone with items out prints
//! FreeBSD's "was not empty" warning and loses them (the zone's record stays behind, so a
//! late free is reported instead of touching freed memory).
//!
//! `M_NOWAIT` allocations can be made to fail ([`Runtime::fail_next_zone_allocations`]);
//! `M_WAITOK` ones check that the caller may sleep. Zones belong to the runtime that created
//! them; [`Runtime::zones`] lists them (`vmstat -z`).

use std::alloc::{alloc, alloc_zeroed, dealloc, Layout};
use std::collections::HashSet;
use std::ffi::CStr;
use std::sync::{Arc, Mutex, Weak};

use geom_core::sys::{self, c_char, c_int, c_void, uma_ctor, uma_dtor, uma_fini, uma_init, uma_zone_t};

use crate::invariants::{lock, ViolationKind};
use crate::runtime::{kernel, kernel_arc, Kernel, Runtime};

/// How many freed items a zone keeps for reuse before it gives memory back.
pub const CACHE_MAX: usize = 256;

/// What freed items are filled with.
const TRASH: u8 = 0xde;

/// A zone's counters and cache.
#[derive(Default)]
struct ZoneState {
    /// Freed items kept for reuse (most recently freed last).
    cached: Vec<usize>,
    /// Items handed out and not freed.
    live: HashSet<usize>,
    allocs: u64,
    frees: u64,
    fails: u64,
    destroyed: bool,
}

/// One zone; `uma_zone_t` points at it.
struct HostZone {
    name: String,
    /// The size asked for.
    size: usize,
    /// What each item takes: the size rounded up as UMA rounds it, and the alignment.
    layout: Layout,
    /// Fill freed items with [`TRASH`] and check it on reuse.
    trash: bool,
    /// Zero fresh items (`UMA_ZONE_ZINIT`).
    zinit: bool,
    owner: Weak<Kernel>,
    st: Mutex<ZoneState>,
}

/// Every zone not yet destroyed.
static ZONES: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// A zone's state, as `vmstat -z` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneInfo {
    /// The zone's name.
    pub name: String,
    /// Item size asked for.
    pub size: usize,
    /// Item alignment.
    pub align: usize,
    /// Items allocated and not freed.
    pub live: usize,
    /// Freed items cached for reuse.
    pub cached: usize,
    /// Allocations so far.
    pub allocs: u64,
    /// Frees so far.
    pub frees: u64,
    /// `M_NOWAIT` allocations that failed.
    pub fails: u64,
}

/// # Safety
/// `zone` came from `uma_zcreate` (zones are never freed while items are out or after a
/// report, so a stale pointer from a buggy caller still reaches a readable record, unless
/// the zone was destroyed empty).
unsafe fn host_zone<'a>(zone: uma_zone_t) -> &'a HostZone {
    // SAFETY: caller's contract.
    unsafe { &*zone.cast::<HostZone>() }
}

impl HostZone {
    fn info(&self) -> ZoneInfo {
        let st = lock(&self.st);
        ZoneInfo {
            name: self.name.clone(),
            size: self.size,
            align: self.layout.align(),
            live: st.live.len(),
            cached: st.cached.len(),
            allocs: st.allocs,
            frees: st.frees,
            fails: st.fails,
        }
    }
}

/// `uma_zcreate`: a zone of `size`-byte items aligned to `align + 1`. Constructors and
/// friends are not supported (geom-rs does not use them) and reported if given.
#[no_mangle]
pub unsafe extern "C" fn uma_zcreate(
    name: *const c_char,
    size: usize,
    ctor: Option<uma_ctor>,
    dtor: Option<uma_dtor>,
    uminit: Option<uma_init>,
    fini: Option<uma_fini>,
    align: c_int,
    flags: u32,
) -> uma_zone_t {
    let k = kernel();
    k.assert_sleepable("uma_zcreate");
    // SAFETY: name is NULL or a C string (caller).
    let name =
        if name.is_null() { String::new() } else { unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned() };
    if ctor.is_some() || dtor.is_some() || uminit.is_some() || fini.is_some() {
        k.inv.report(
            ViolationKind::Kassert,
            format!("uma_zcreate({name}): item constructors are not supported on the host"),
        );
    }
    let alignment = usize::try_from(align).ok().and_then(|a| a.checked_add(1)).filter(|a| a.is_power_of_two());
    let Some(alignment) = alignment else {
        k.inv.report(ViolationKind::Kassert, format!("uma_zcreate({name}): alignment mask {align:#x} is not 2^n - 1"));
        return std::ptr::null_mut();
    };
    let rsize = size.max(sys::UMA_SMALLEST_UNIT).next_multiple_of(alignment);
    let Ok(layout) = Layout::from_size_align(rsize, alignment) else {
        k.inv.report(ViolationKind::Kassert, format!("uma_zcreate({name}): impossible item size {size}"));
        return std::ptr::null_mut();
    };
    let z = Box::new(HostZone {
        name,
        size,
        layout,
        trash: flags & (sys::UMA_ZONE_ZINIT | sys::UMA_ZONE_NOTOUCH | sys::UMA_ZONE_NOFREE) == 0,
        zinit: flags & sys::UMA_ZONE_ZINIT != 0,
        owner: Arc::downgrade(&kernel_arc()),
        st: Mutex::new(ZoneState::default()),
    });
    let p = Box::into_raw(z);
    lock(&ZONES).push(p as usize);
    p.cast()
}

/// `uma_zalloc_arg`: an item (zeroed with `M_ZERO`), or NULL with `M_NOWAIT` when memory is
/// short (or a failure is injected).
#[no_mangle]
pub unsafe extern "C" fn uma_zalloc_arg(zone: uma_zone_t, _arg: *mut c_void, flags: c_int) -> *mut c_void {
    let k = kernel();
    // SAFETY: zone came from uma_zcreate (caller).
    let z = unsafe { host_zone(zone) };
    let wait = flags & (sys::M_WAITOK | sys::M_NOWAIT);
    if wait != sys::M_WAITOK && wait != sys::M_NOWAIT {
        k.inv.report(
            ViolationKind::Kassert,
            format!("uma_zalloc({}): flags {flags:#x} name neither M_WAITOK nor M_NOWAIT", z.name),
        );
    }
    if flags & sys::M_WAITOK != 0 {
        k.assert_sleepable("uma_zalloc(M_WAITOK)");
    }
    let nowait = flags & sys::M_WAITOK == 0;
    let mut st = lock(&z.st);
    if st.destroyed {
        drop(st);
        k.inv.report(ViolationKind::Kassert, format!("uma_zalloc from destroyed zone {}", z.name));
        return std::ptr::null_mut();
    }
    if nowait && k.malloc.zone_alloc_fails() {
        st.fails += 1;
        return std::ptr::null_mut();
    }
    let item = match st.cached.pop() {
        Some(p) => {
            // SAFETY: a cached item is the zone's, layout.size() bytes.
            let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, z.layout.size()) };
            if z.trash && bytes.iter().any(|&b| b != TRASH) {
                let at = bytes.iter().position(|&b| b != TRASH).unwrap_or(0);
                k.inv.report(
                    ViolationKind::Kassert,
                    format!("Memory modified after free {p:#x} ({} bytes, zone {}) at offset {at}", z.size, z.name),
                );
            }
            p as *mut u8
        }
        None => {
            // SAFETY: the layout has a non-zero size.
            let p = unsafe {
                if z.zinit {
                    alloc_zeroed(z.layout)
                } else {
                    alloc(z.layout)
                }
            };
            if p.is_null() {
                if !nowait {
                    std::alloc::handle_alloc_error(z.layout);
                }
                st.fails += 1;
                return std::ptr::null_mut();
            }
            p
        }
    };
    if flags & sys::M_ZERO != 0 {
        // SAFETY: the item is ours, layout.size() bytes.
        unsafe { std::ptr::write_bytes(item, 0, z.layout.size()) };
    }
    st.live.insert(item as usize);
    st.allocs += 1;
    item.cast()
}

/// `uma_zfree_arg`: give an item back. NULL is ignored; an item the zone did not hand out
/// (a double free, the wrong zone) is reported and left alone.
#[no_mangle]
pub unsafe extern "C" fn uma_zfree_arg(zone: uma_zone_t, item: *mut c_void, _arg: *mut c_void) {
    if item.is_null() {
        return;
    }
    let k = kernel();
    // SAFETY: zone came from uma_zcreate (caller).
    let z = unsafe { host_zone(zone) };
    let mut st = lock(&z.st);
    if st.destroyed {
        drop(st);
        k.inv.report(ViolationKind::Kassert, format!("uma_zfree of {item:p} into destroyed zone {}", z.name));
        return;
    }
    if !st.live.remove(&(item as usize)) {
        drop(st);
        k.inv.report(
            ViolationKind::Kassert,
            format!("uma_zfree: {item:p} is not an allocated item of zone {} (duplicate free?)", z.name),
        );
        return;
    }
    st.frees += 1;
    if z.trash {
        // SAFETY: the item was the caller's and is now the zone's: layout.size() bytes.
        unsafe { std::ptr::write_bytes(item.cast::<u8>(), TRASH, z.layout.size()) };
    }
    if st.cached.len() < CACHE_MAX {
        st.cached.push(item as usize);
    } else {
        // SAFETY: allocated with this layout by uma_zalloc_arg.
        unsafe { dealloc(item.cast(), z.layout) };
    }
}

/// `uma_zdestroy`: free the zone. With items still out, print FreeBSD's warning and lose
/// them (their memory and the zone's record stay allocated).
#[no_mangle]
pub unsafe extern "C" fn uma_zdestroy(zone: uma_zone_t) {
    let k = kernel();
    k.assert_sleepable("uma_zdestroy");
    // SAFETY: zone came from uma_zcreate (caller).
    let z = unsafe { host_zone(zone) };
    // Unlisted first (and not under the zone's lock: `zones()` takes the list's lock, then
    // each zone's).
    lock(&ZONES).retain(|&p| p != zone as usize);
    let mut st = lock(&z.st);
    if st.destroyed {
        drop(st);
        k.inv.report(ViolationKind::Kassert, format!("uma_zdestroy of zone {} twice", z.name));
        return;
    }
    st.destroyed = true;
    for p in st.cached.drain(..) {
        // SAFETY: cached items were allocated with this layout and are the zone's.
        unsafe { dealloc(p as *mut u8, z.layout) };
    }
    let live = st.live.len();
    drop(st);
    if live == 0 {
        // SAFETY: made by Box::into_raw in uma_zcreate; empty and unlisted, so nothing
        // refers to it any more.
        drop(unsafe { Box::from_raw(zone.cast::<HostZone>()) });
        return;
    }
    let pages = (live * z.layout.size()).div_ceil(4096);
    k.console(&format!("Freed UMA keg ({}) was not empty ({live} items).  Lost {pages} pages of memory.", z.name));
}

impl Runtime {
    /// The zones this runtime created and has not destroyed, by name (`vmstat -z`).
    pub fn zones(&self) -> Vec<ZoneInfo> {
        let zones = lock(&ZONES);
        let mut out: Vec<ZoneInfo> = zones
            .iter()
            .filter_map(|&p| {
                // SAFETY: a listed zone is live: uma_zdestroy unlists it (under this lock,
                // which we hold) before it can free it.
                let z = unsafe { &*(p as *const HostZone) };
                std::ptr::eq(z.owner.as_ptr(), Arc::as_ptr(&self.k)).then(|| z.info())
            })
            .collect();
        drop(zones);
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// One zone of this runtime by name.
    pub fn zone(&self, name: &str) -> Option<ZoneInfo> {
        self.zones().into_iter().find(|z| z.name == name)
    }

    /// Make the next `n` non-waiting zone allocations (`uma_zalloc(M_NOWAIT)`) fail, as
    /// memory pressure would: the I/O path must turn that into `ENOMEM`.
    pub fn fail_next_zone_allocations(&self, n: u64) {
        self.k.malloc.fail_next_zone_allocs(n);
    }
}
