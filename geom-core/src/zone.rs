//! UMA zones: caches of same-sized objects (`uma_zcreate(9)`).
//!
//! A [`Zone<T>`] hands out [`ZoneBox<T>`]s, each one `T` in an item of the zone; dropping the
//! box drops the value and gives the item back (`uma_zfree`, which never sleeps). Freed items
//! stay cached in the zone, so a class that allocates per-request state in start gets it
//! quickly and, with [`Zone::try_alloc`], without ever waiting.
//!
//! | call | takes | flag | on shortage |
//! |---|---|---|---|
//! | [`Zone::new`] | `&impl MayWait` | (`uma_zcreate` may sleep) | — |
//! | [`Zone::try_alloc`] | `&IoCtx` | `M_NOWAIT` | `Err(Errno::ENOMEM)` |
//! | [`Zone::alloc`] | `&impl MayWait` | `M_WAITOK` | sleeps |
//! | [`Zone::destroy`] | `&impl MayWait` | (`uma_zdestroy` may sleep) | refused while items are out |
//!
//! # Destroying a zone that still has items out
//!
//! FreeBSD's `uma_zdestroy` on a zone with items allocated prints a warning and loses them;
//! freeing one of them afterwards is a use after free. Here the zone counts the boxes it has
//! handed out, and every box points at that count. So:
//!
//! * [`Zone::destroy`] destroys the zone only when no box is out; otherwise it gives the zone
//!   back (`Err(zone)`) and nothing happens.
//! * Dropping a `Zone` destroys it the same way when it is empty. If boxes are still out, the
//!   zone is *not* destroyed: it stays alive (leaked) with a console warning, so those boxes
//!   can still be dropped safely later.
//!
//! This works with the lifetimes GEOM imposes: the zone may live in the class's state and
//! its items in geoms' softcs, or in flight with bios. GEOM destroys every geom (and so every
//! softc) before the class's `fini`, after which the class state (and the zone) is dropped, by
//! then empty. Both drops happen with the topology lock held, where `uma_zdestroy` may sleep.
//! A `Zone` must not be dropped in start or done (the host runtime reports it if it is).
//!
//! ```no_run
//! use geom_core::{IoCtx, Result, Topology, Zone, ZoneBox};
//!
//! struct Pending { offset: i64, retries: u32 }
//!
//! struct MyClass { pending: Zone<Pending> }
//!
//! fn init(topo: &mut Topology) -> MyClass {
//!     MyClass { pending: Zone::new(topo, c"myclass_pending") }
//! }
//!
//! fn start(cls: &MyClass, cx: &IoCtx, offset: i64) -> Result<ZoneBox<Pending>> {
//!     cls.pending.try_alloc(cx, Pending { offset, retries: 0 })
//! }
//! ```

use alloc::boxed::Box;
use alloc::ffi::CString;
use core::ffi::CStr;
use core::fmt;
use core::marker::PhantomData;
use core::mem::{align_of, size_of, ManuallyDrop};
use core::ops::{Deref, DerefMut};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::context::{IoCtx, MayWait};
use crate::error::{Errno, Result};
use crate::malloc::die;
use crate::sys::{self, c_int};

/// The largest alignment a zone can give its items: UMA lays items out from the start of
/// page-aligned slabs.
pub const ZONE_MAX_ALIGN: usize = 4096;

/// What a zone and its boxes share.
///
/// Invariant: `zone` is a live UMA zone (NULL for a zero-sized item type, which needs no
/// memory) whose name is `name`'s bytes; `live` counts the boxes handed out and not yet
/// dropped. The value is freed only by the zone's owner, and only while `live` is 0.
struct Shared {
    zone: sys::uma_zone_t,
    live: AtomicUsize,
    name: CString,
}

/// A UMA zone of `T`-sized, `T`-aligned items.
///
/// Invariant: `shared` points at a live `Shared` allocated by [`Zone::new`] and owned by
/// this zone (boxes only touch its count).
pub struct Zone<T> {
    shared: NonNull<Shared>,
    _items: PhantomData<fn() -> T>,
}

// SAFETY: the zone holds no T; UMA zones are used from any thread, and the shared count is
// atomic.
unsafe impl<T> Send for Zone<T> {}
// SAFETY: as above; allocation through &Zone is what UMA is for.
unsafe impl<T> Sync for Zone<T> {}

impl<T> Zone<T> {
    /// UMA can align items as `T` needs: checked when the zone type is used.
    const FITS: () = assert!(align_of::<T>() <= ZONE_MAX_ALIGN, "a UMA zone aligns items to at most a page");

    /// `uma_zcreate(name, sizeof(T), NULL, NULL, NULL, NULL, UMA_ALIGNOF(T), 0)`. May sleep.
    /// The name is copied (UMA keeps a pointer to it for the zone's life).
    pub fn new(_cx: &impl MayWait, name: &CStr) -> Zone<T> {
        let () = Self::FITS;
        let name = CString::from(name);
        let zone = if size_of::<T>() == 0 {
            ptr::null_mut()
        } else {
            // SAFETY: we may sleep (token); the name lives in `Shared` as long as the zone;
            // no constructors, so UMA never calls back into us.
            unsafe {
                sys::uma_zcreate(name.as_ptr(), size_of::<T>(), None, None, None, None, sys::uma_alignof::<T>(), 0)
            }
        };
        if size_of::<T>() != 0 && zone.is_null() {
            die(b"geom-rs: uma_zcreate returned NULL\n");
        }
        let shared = Box::new(Shared { zone, live: AtomicUsize::new(0), name });
        Zone { shared: NonNull::from(Box::leak(shared)), _items: PhantomData }
    }

    fn shared(&self) -> &Shared {
        // SAFETY: live while the zone is (invariant).
        unsafe { self.shared.as_ref() }
    }

    /// The zone's name.
    pub fn name(&self) -> &CStr {
        &self.shared().name
    }

    /// How many boxes are out.
    pub fn live(&self) -> usize {
        self.shared().live.load(Ordering::Acquire)
    }

    /// An item holding `value`, without sleeping (`M_NOWAIT`): for start and done.
    /// `Err(ENOMEM)` when memory is short; `value` is dropped then.
    pub fn try_alloc(&self, cx: &IoCtx, value: T) -> Result<ZoneBox<T>> {
        self.try_alloc_or_back(cx, value).map_err(|_| Errno::ENOMEM)
    }

    /// Like [`Zone::try_alloc`], but a failure hands `value` back.
    pub fn try_alloc_or_back(&self, _cx: &IoCtx, value: T) -> core::result::Result<ZoneBox<T>, T> {
        match self.item(sys::M_NOWAIT) {
            Some(p) => Ok(self.place(p, value)),
            None => Err(value),
        }
    }

    /// An item holding `value`, waiting for memory if need be (`M_WAITOK`).
    pub fn alloc(&self, _cx: &impl MayWait, value: T) -> ZoneBox<T> {
        match self.item(sys::M_WAITOK) {
            Some(p) => self.place(p, value),
            None => die(b"geom-rs: uma_zalloc(M_WAITOK) returned NULL\n"),
        }
    }

    /// `uma_zalloc(zone, flags)`: a fresh item, or a dangling pointer for a zero-sized `T`.
    fn item(&self, flags: c_int) -> Option<NonNull<T>> {
        if size_of::<T>() == 0 {
            return Some(NonNull::dangling());
        }
        // SAFETY: a live zone (invariant); M_WAITOK only reaches here from alloc(), which
        // holds a MayWait token.
        NonNull::new(unsafe { sys::uma_zalloc(self.shared().zone, flags) }.cast::<T>())
    }

    fn place(&self, p: NonNull<T>, value: T) -> ZoneBox<T> {
        // Counted before the box exists, so the zone cannot be destroyed under it.
        self.shared().live.fetch_add(1, Ordering::AcqRel);
        // SAFETY: p is a fresh item of size_of::<T>() bytes aligned to T (the zone was made
        // with UMA_ALIGNOF(T)), or dangling for a ZST.
        unsafe { p.as_ptr().write(value) };
        ZoneBox { ptr: p, shared: self.shared, _owns: PhantomData }
    }

    /// `uma_zdestroy`, if no box is out; otherwise the zone comes back unchanged.
    pub fn destroy(self, _cx: &impl MayWait) -> core::result::Result<(), Zone<T>> {
        if self.live() != 0 {
            return Err(self);
        }
        let this = ManuallyDrop::new(self);
        // SAFETY: we own the zone and no box is out (no box can appear: we hold the zone by
        // value), and we may sleep (token).
        unsafe { this.free_empty() };
        Ok(())
    }

    /// Destroy the UMA zone and free the shared part.
    ///
    /// # Safety
    /// Called once, by the owner, with no box out; sleeping allowed.
    unsafe fn free_empty(&self) {
        // SAFETY: caller's contract; the shared part was leaked from a Box by new().
        unsafe {
            let shared = Box::from_raw(self.shared.as_ptr());
            if !shared.zone.is_null() {
                sys::uma_zdestroy(shared.zone);
            }
            drop(shared);
        }
    }
}

impl<T> Drop for Zone<T> {
    /// Destroy the zone if it is empty; otherwise leave it (and the boxes still out) alive
    /// and say so on the console.
    fn drop(&mut self) {
        let live = self.live();
        if live == 0 {
            // SAFETY: we own the zone, no box is out, and the zone is being dropped.
            unsafe { self.free_empty() };
            return;
        }
        let mut msg = alloc::string::String::new();
        let _ = fmt::write(
            &mut msg,
            format_args!(
                "geom-rs: zone {} dropped with {live} item(s) still allocated; it is kept so they can be freed\n",
                self.name().to_string_lossy()
            ),
        );
        // SAFETY: printing a message we own.
        unsafe { sys::platform::geom_rs_print(msg.as_ptr(), msg.len()) };
    }
}

impl<T> fmt::Debug for Zone<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Zone({:?}, {} live)", self.name(), self.live())
    }
}

/// One `T` in an item of a [`Zone`]. Dropping it drops the value and returns the item to the
/// zone (`uma_zfree`, which never sleeps: fine in start and done).
///
/// Invariant: `ptr` points at an initialised `T` in an item of the zone `shared` describes,
/// owned by this box (dangling for a zero-sized `T`); the zone counted this box in `live`.
pub struct ZoneBox<T> {
    ptr: NonNull<T>,
    shared: NonNull<Shared>,
    _owns: PhantomData<T>,
}

// SAFETY: the box owns its T; the zone's count is atomic and its UMA zone usable anywhere.
unsafe impl<T: Send> Send for ZoneBox<T> {}
// SAFETY: as above; &ZoneBox only gives &T.
unsafe impl<T: Sync> Sync for ZoneBox<T> {}

impl<T> ZoneBox<T> {
    /// Move the value out and return the item to the zone.
    pub fn into_inner(this: ZoneBox<T>) -> T {
        let this = ManuallyDrop::new(this);
        // SAFETY: an initialised T owned by the box, read once; then the item is returned
        // once (the box is not dropped).
        unsafe {
            let v = this.ptr.as_ptr().read();
            this.release();
            v
        }
    }

    /// Return the item and uncount the box.
    ///
    /// # Safety
    /// The value was moved out or dropped; called once.
    unsafe fn release(&self) {
        // SAFETY: the zone is alive while this box is counted (Shared's invariant); the item
        // goes back before the count drops, and the count is the last thing touched, so the
        // zone may be destroyed as soon as it reaches 0.
        unsafe {
            let shared = self.shared.as_ptr();
            if size_of::<T>() != 0 {
                sys::uma_zfree((*shared).zone, self.ptr.as_ptr().cast());
            }
            (*shared).live.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl<T> Deref for ZoneBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: an initialised T owned by the box (invariant).
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for ZoneBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above; &mut self makes the access exclusive.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for ZoneBox<T> {
    fn drop(&mut self) {
        // SAFETY: the value is dropped once, then the item returned once.
        unsafe {
            ptr::drop_in_place(self.ptr.as_ptr());
            self.release();
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for ZoneBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
