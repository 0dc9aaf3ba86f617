//! [`Slot`]: a handle a geom keeps for its I/O path (a component's consumer, its own
//! provider), changed only under the topology lock and read from start and done without it.
//!
//! In C a softc holds `struct g_consumer *sc_disks[]` and the I/O path reads it bare,
//! trusting that the topology code changes it only when no I/O can see the change. A slot
//! makes that explicit: writing takes the [`Topology`] token, reading is an atomic load.
//!
//! Invariant: a slot holds a handle only while its object is alive; a class empties the slot
//! (under the topology lock) before it destroys the object, so I/O never reaches a freed one.

use core::marker::PhantomData;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::context::Topology;
use crate::handles::{Consumer, Provider};

/// A handle that fits in a slot (a [`Consumer`] or a [`Provider`]).
pub trait SlotHandle: Copy + sealed::Sealed {
    #[doc(hidden)]
    fn to_raw(self) -> *mut ();
    /// # Safety
    /// `p` came from `to_raw` of a live handle of the same type.
    #[doc(hidden)]
    unsafe fn from_raw_handle(p: NonNull<()>) -> Self;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::handles::Consumer {}
    impl Sealed for crate::handles::Provider {}
}

impl SlotHandle for Consumer {
    fn to_raw(self) -> *mut () {
        self.as_ptr().cast()
    }
    unsafe fn from_raw_handle(p: NonNull<()>) -> Self {
        // SAFETY: caller's contract: p is a live consumer.
        unsafe { Consumer::from_raw(p.as_ptr().cast()) }
    }
}

impl SlotHandle for Provider {
    fn to_raw(self) -> *mut () {
        self.as_ptr().cast()
    }
    unsafe fn from_raw_handle(p: NonNull<()>) -> Self {
        // SAFETY: caller's contract: p is a live provider.
        unsafe { Provider::from_raw(p.as_ptr().cast()) }
    }
}

/// An optional handle set under the topology lock and read lock-free (see the module doc).
pub struct Slot<T: SlotHandle> {
    p: AtomicPtr<()>,
    _t: PhantomData<T>,
}

impl<T: SlotHandle> Default for Slot<T> {
    fn default() -> Self {
        Slot::empty()
    }
}

impl<T: SlotHandle> Slot<T> {
    /// An empty slot.
    pub const fn empty() -> Self {
        Slot { p: AtomicPtr::new(ptr::null_mut()), _t: PhantomData }
    }

    /// What the slot holds.
    pub fn get(&self) -> Option<T> {
        let p = NonNull::new(self.p.load(Ordering::Acquire))?;
        // SAFETY: only `set` stores, with a live handle of type T, and the slot invariant
        // empties it before the object goes.
        Some(unsafe { T::from_raw_handle(p) })
    }

    /// Is it empty?
    pub fn is_empty(&self) -> bool {
        self.p.load(Ordering::Acquire).is_null()
    }

    /// Put `v` in the slot (or empty it).
    pub fn set(&self, _topo: &mut Topology, v: Option<T>) {
        self.p.store(v.map_or(ptr::null_mut(), T::to_raw), Ordering::Release);
    }

    /// Empty the slot, returning what it held.
    pub fn take(&self, _topo: &mut Topology) -> Option<T> {
        let p = NonNull::new(self.p.swap(ptr::null_mut(), Ordering::AcqRel))?;
        // SAFETY: as in `get`.
        Some(unsafe { T::from_raw_handle(p) })
    }
}
