//! Bio allocation (`g_new_bio`, `g_alloc_bio`, `g_clone_bio`, `g_duplicate_bio`,
//! `g_reset_bio`, `g_destroy_bio`) and the lifecycle bookkeeping behind the bio invariants.
//!
//! Each bio lives in a [`BioBox`]: the FreeBSD `struct bio` first (so a `*mut bio` is a
//! `*mut BioBox`), then a state word the runtime moves through
//! idle → in flight → delivered (→ in flight again on a re-request) → freed. Freed boxes sit
//! in a quarantine for a while before their memory is reused (a bounded cache, as UMA keeps)
//! or returned, so a late second delivery or destroy of a bio is reported instead of
//! silently corrupting a reused one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use geom_core::sys::{self, bio};

use crate::invariants::{lock, ViolationKind};
use crate::runtime::{kernel, Kernel};

const IDLE: u32 = 1;
const IN_FLIGHT: u32 = 2;
const DELIVERED: u32 = 3;
const FREED: u32 = 4;

/// How many destroyed bios are kept (unusable) before their memory is reused.
const QUARANTINE: usize = 4096;

/// How many boxes out of quarantine are kept for reuse (UMA's per-zone cache), so the steady
/// state allocates nothing from the heap.
const FREE_CACHE: usize = 1024;

/// A bio and its lifecycle state. `bio` must stay the first field.
///
/// Invariant: `prev`/`next` link the box into [`Lists::live`] exactly while it is allocated
/// (state idle, in flight or delivered); they are read and written only under
/// [`BioRegistry::lists`].
#[repr(C)]
struct BioBox {
    bio: bio,
    state: AtomicU32,
    prev: *mut BioBox,
    next: *mut BioBox,
}

/// The registry's boxes, under one lock: what is allocated, what sits in quarantine, and
/// what is ready for reuse.
struct Lists {
    /// Head of the intrusive list of allocated boxes (linked through `prev`/`next`).
    live: *mut BioBox,
    live_count: usize,
    quarantine: VecDeque<*mut BioBox>,
    free: Vec<*mut BioBox>,
}

// SAFETY: the raw pointers are boxes owned by the registry; they are only followed under
// the registry's mutex (or by the single thread tearing the runtime down).
unsafe impl Send for Lists {}

fn state_name(s: u32) -> &'static str {
    match s {
        IDLE => "idle",
        IN_FLIGHT => "in flight",
        DELIVERED => "delivered",
        FREED => "destroyed",
        _ => "corrupt",
    }
}

fn cmd_name(cmd: u16) -> &'static str {
    match cmd {
        sys::BIO_READ => "READ",
        sys::BIO_WRITE => "WRITE",
        sys::BIO_DELETE => "DELETE",
        sys::BIO_GETATTR => "GETATTR",
        sys::BIO_FLUSH => "FLUSH",
        sys::BIO_ZONE => "ZONE",
        sys::BIO_SPEEDUP => "SPEEDUP",
        0 => "(no command)",
        _ => "CMD",
    }
}

/// One line describing a bio, for reports.
///
/// # Safety
/// `bp` is a live or quarantined bio of this runtime.
pub(crate) unsafe fn describe(bp: *const bio) -> String {
    // SAFETY: caller's contract; only plain fields are read.
    unsafe {
        format!(
            "bio {:p} {}(offset={}, length={}, children={}, inbed={}, parent={:p}, to={:p})",
            bp,
            cmd_name((*bp).bio_cmd),
            (*bp).bio_offset,
            (*bp).bio_length,
            (*bp).bio_children,
            (*bp).bio_inbed,
            (*bp).bio_parent,
            (*bp).bio_to
        )
    }
}

/// A runtime's bios.
pub(crate) struct BioRegistry {
    lists: Mutex<Lists>,
    in_flight: AtomicUsize,
    /// Fault injection: fail this many upcoming non-waiting bio allocations.
    fail_nowait: AtomicU64,
}

impl BioRegistry {
    pub(crate) fn new() -> Self {
        BioRegistry {
            lists: Mutex::new(Lists {
                live: std::ptr::null_mut(),
                live_count: 0,
                quarantine: VecDeque::with_capacity(QUARANTINE + 1),
                free: Vec::with_capacity(FREE_CACHE),
            }),
            in_flight: AtomicUsize::new(0),
            fail_nowait: AtomicU64::new(0),
        }
    }

    pub(crate) fn live(&self) -> usize {
        lock(&self.lists).live_count
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Make the next `n` `M_NOWAIT` bio allocations fail (return NULL).
    pub(crate) fn fail_next_nowait(&self, n: u64) {
        self.fail_nowait.store(n, Ordering::Release);
    }

    fn alloc(&self, nowait: bool) -> *mut bio {
        if nowait && self.fail_nowait.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok() {
            return std::ptr::null_mut();
        }
        let mut l = lock(&self.lists);
        let p = match l.free.pop() {
            Some(p) => {
                // SAFETY: p left quarantine, so nothing refers to it; all-zero is a fresh
                // bio's state.
                unsafe {
                    std::ptr::write_bytes(&raw mut (*p).bio, 0, 1);
                    (*p).state.store(IDLE, Ordering::Relaxed);
                }
                p
            }
            None => Box::into_raw(Box::new(BioBox {
                // SAFETY: struct bio is plain C data; all-zero is its freshly allocated state.
                bio: unsafe { std::mem::zeroed() },
                state: AtomicU32::new(IDLE),
                prev: std::ptr::null_mut(),
                next: std::ptr::null_mut(),
            })),
        };
        // SAFETY: p is ours and unlinked; the live head is a linked box; lists locked.
        unsafe {
            (*p).prev = std::ptr::null_mut();
            (*p).next = l.live;
            if !l.live.is_null() {
                (*l.live).prev = p;
            }
        }
        l.live = p;
        l.live_count += 1;
        p.cast()
    }

    fn state(bp: *mut bio) -> &'static AtomicU32 {
        // SAFETY: every bio of a runtime is the first field of a BioBox that lives (or sits in
        // quarantine) at least as long as the KPI call that names it.
        unsafe { &(*bp.cast::<BioBox>()).state }
    }

    /// `g_io_request` moves a bio in flight. False (after a report) if it already was, or was
    /// destroyed.
    pub(crate) fn start_flight(&self, k: &Kernel, bp: *mut bio) -> bool {
        let st = Self::state(bp);
        match st.compare_exchange(IDLE, IN_FLIGHT, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {}
            Err(DELIVERED)
                if st.compare_exchange(DELIVERED, IN_FLIGHT, Ordering::AcqRel, Ordering::Acquire).is_ok() => {}
            Err(s) => {
                let kind =
                    if s == IN_FLIGHT { ViolationKind::BioRequestedTwice } else { ViolationKind::BioDestroyedBadly };
                // SAFETY: bp is live or quarantined (state word readable).
                let d = unsafe { describe(bp) };
                k.inv.report(kind, format!("g_io_request on a bio that is {}: {d}", state_name(s)));
                return false;
            }
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// `g_io_deliver` ends a bio's flight. False (after a report) on a second delivery.
    pub(crate) fn end_flight(&self, k: &Kernel, bp: *mut bio) -> bool {
        let st = Self::state(bp);
        if let Err(s) = st.compare_exchange(IN_FLIGHT, DELIVERED, Ordering::AcqRel, Ordering::Acquire) {
            // SAFETY: as above.
            let d = unsafe { describe(bp) };
            let what = match s {
                DELIVERED => "delivered twice",
                FREED => "delivered after it was destroyed",
                _ => "delivered but never requested",
            };
            k.inv.report(ViolationKind::BioDeliveredTwice, format!("bio {what}: {d}"));
            return false;
        }
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        true
    }

    /// Is the bio idle (never requested)? Bios created outside GEOM may be delivered without
    /// a request.
    pub(crate) fn is_idle(bp: *mut bio) -> bool {
        Self::state(bp).load(Ordering::Acquire) == IDLE
    }

    fn destroy(&self, k: &Kernel, bp: *mut bio) {
        let st = Self::state(bp);
        let s = st.load(Ordering::Acquire);
        if s == IN_FLIGHT || s == FREED || st.compare_exchange(s, FREED, Ordering::AcqRel, Ordering::Acquire).is_err() {
            // SAFETY: as above.
            let d = unsafe { describe(bp) };
            let what = if s == FREED { "destroyed twice" } else { "destroyed while in flight" };
            k.inv.report(ViolationKind::BioDestroyedBadly, format!("g_destroy_bio: bio {what}: {d}"));
            return;
        }
        let b = bp.cast::<BioBox>();
        let mut l = lock(&self.lists);
        // SAFETY: b was live, so it is linked; its neighbours are live boxes; lists locked.
        unsafe {
            if (*b).prev.is_null() {
                l.live = (*b).next;
            } else {
                (*(*b).prev).next = (*b).next;
            }
            if !(*b).next.is_null() {
                (*(*b).next).prev = (*b).prev;
            }
        }
        l.live_count -= 1;
        l.quarantine.push_back(b);
        if l.quarantine.len() > QUARANTINE {
            if let Some(old) = l.quarantine.pop_front() {
                if l.free.len() < FREE_CACHE {
                    l.free.push(old);
                } else {
                    drop(l);
                    // SAFETY: old came from Box::into_raw in alloc and left quarantine, so
                    // nothing in the runtime refers to it any more.
                    drop(unsafe { Box::from_raw(old) });
                }
            }
        }
    }

    /// Report every bio still allocated (at shutdown).
    pub(crate) fn report_leaks(&self, k: &Kernel) {
        let live: Vec<usize> = {
            let l = lock(&self.lists);
            let mut v = Vec::with_capacity(l.live_count);
            let mut p = l.live;
            while !p.is_null() {
                v.push(p as usize);
                // SAFETY: linked boxes are live; lists locked.
                p = unsafe { (*p).next };
            }
            v
        };
        for bp in live {
            let bp = bp as *mut bio;
            let s = Self::state(bp).load(Ordering::Acquire);
            // SAFETY: live bios are valid.
            let d = unsafe { describe(bp) };
            k.inv.report(ViolationKind::BioLeaked, format!("bio still alive at teardown ({}): {d}", state_name(s)));
        }
    }

    pub(crate) fn free_quarantine(&mut self) {
        let l = self.lists.get_mut().unwrap_or_else(|e| e.into_inner());
        for p in l.quarantine.drain(..).chain(l.free.drain(..)) {
            // SAFETY: as in destroy; the runtime is gone, so nothing refers to them.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// `g_new_bio`: a zeroed bio, or NULL when memory is short. Never sleeps.
#[no_mangle]
pub unsafe extern "C" fn g_new_bio() -> *mut bio {
    kernel().bios.alloc(true)
}

/// `g_alloc_bio`: a zeroed bio; may sleep, never NULL.
#[no_mangle]
pub unsafe extern "C" fn g_alloc_bio() -> *mut bio {
    let k = kernel();
    k.assert_sleepable("g_alloc_bio (M_WAITOK)");
    k.bios.alloc(false)
}

/// Copy what `g_clone_bio` copies from `bp` into the fresh `bp2`, and count the child.
///
/// # Safety
/// Both live; bp2 fresh.
unsafe fn clone_into(bp: *mut bio, bp2: *mut bio) {
    // SAFETY: caller's contract.
    unsafe {
        (*bp2).bio_parent = bp;
        (*bp2).bio_cmd = (*bp).bio_cmd;
        (*bp2).bio_flags = (*bp).bio_flags & (sys::BIO_ORDERED | sys::BIO_UNMAPPED | sys::BIO_VLIST | sys::BIO_SWAP);
        (*bp2).bio_length = (*bp).bio_length;
        (*bp2).bio_offset = (*bp).bio_offset;
        (*bp2).bio_data = (*bp).bio_data;
        (*bp2).bio_ma = (*bp).bio_ma;
        (*bp2).bio_ma_n = (*bp).bio_ma_n;
        (*bp2).bio_ma_offset = (*bp).bio_ma_offset;
        (*bp2).bio_attribute = (*bp).bio_attribute;
        if (*bp).bio_cmd == sys::BIO_ZONE {
            (*bp2).bio_zone = (*bp).bio_zone;
        }
        (*bp).bio_children += 1;
    }
}

/// `g_clone_bio`: a child carrying the parent's command, range and data, or NULL. Never
/// sleeps; bumps the parent's `bio_children`.
#[no_mangle]
pub unsafe extern "C" fn g_clone_bio(bp: *mut bio) -> *mut bio {
    let bp2 = kernel().bios.alloc(true);
    if !bp2.is_null() {
        // SAFETY: bp is live (caller), bp2 is fresh.
        unsafe { clone_into(bp, bp2) };
    }
    bp2
}

/// `g_duplicate_bio`: `g_clone_bio` that may sleep and never fails.
#[no_mangle]
pub unsafe extern "C" fn g_duplicate_bio(bp: *mut bio) -> *mut bio {
    let k = kernel();
    k.assert_sleepable("g_duplicate_bio (M_WAITOK)");
    let bp2 = k.bios.alloc(false);
    // SAFETY: bp is live (caller), bp2 is fresh.
    unsafe { clone_into(bp, bp2) };
    bp2
}

/// `g_reset_bio`: zero a bio for reuse.
#[no_mangle]
pub unsafe extern "C" fn g_reset_bio(bp: *mut bio) {
    // SAFETY: bp is live (caller); all-zero is a valid bio.
    unsafe { std::ptr::write_bytes(bp, 0, 1) };
}

/// `g_destroy_bio`: free a bio that is not in flight.
#[no_mangle]
pub unsafe extern "C" fn g_destroy_bio(bp: *mut bio) {
    let k = kernel();
    k.bios.destroy(k, bp);
}
