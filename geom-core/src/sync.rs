//! Locks for class state, over the platform seam's `mtx(9)`, `msleep(9)` and `wakeup(9)`.
//!
//! | lock | kernel counterpart | take it in | may hold it while sleeping |
//! |---|---|---|---|
//! | [`Mutex`] | `mtx(9)` (`MTX_DEF`) | any context, start and done included | no |
//! | [`SleepLock`] | `sx(9)` (exclusive) | a [`SleepCtx`] only: [`SleepLock::lock`] takes one | yes |
//!
//! A [`Mutex`] may block for as long as its holder keeps it, which must be short: a holder
//! must not sleep (no synchronous I/O, no waiting allocation, no [`SleepLock::lock`]) before
//! it unlocks. A [`SleepLock`] is what a worker holds across synchronous I/O; because its
//! `lock` asks for a [`SleepCtx`], start and done (which only have an [`IoCtx`]) cannot take
//! it: that is a compile error, not a run-time report. Neither lock is recursive.
//!
//! Both keep their kernel lock in a heap allocation of its own, made once by `new`: FreeBSD's
//! locks must not move once initialised (WITNESS and the turnstiles know them by address),
//! while the Rust value holding them may move freely. Allocating may wait for memory, so
//! `new` takes a [`MayWait`] token.
//!
//! [`IoCtx`]: crate::IoCtx

use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::ffi::{c_void, CStr};
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr;

use crate::context::{MayWait, SleepCtx};
use crate::sys::{self, platform};

/// A kernel mutex (`struct mtx`) at a fixed address.
///
/// Invariants: [`RawMtx::init`] runs once, right after the value reaches the heap address it
/// keeps for the rest of its life and before any other use; the value is never moved after
/// that (it lives in a `Box`, alone or as a field of a boxed structure); dropping it destroys
/// the kernel mutex, which must not be held then.
pub(crate) struct RawMtx {
    m: UnsafeCell<sys::mtx>,
}

// SAFETY: a kernel mutex is made to be shared between threads; all access goes through the
// platform's mtx functions.
unsafe impl Send for RawMtx {}
// SAFETY: as above.
unsafe impl Sync for RawMtx {}

impl RawMtx {
    /// Storage for a mutex, not yet initialised (all zero, as `mtx_init` without `MTX_NEW`
    /// expects).
    pub(crate) const fn uninit() -> RawMtx {
        RawMtx {
            m: UnsafeCell::new(sys::mtx {
                lock_object: sys::lock_object {
                    lo_name: ptr::null(),
                    lo_flags: 0,
                    lo_data: 0,
                    lo_witness: ptr::null_mut(),
                },
                mtx_lock: 0,
            }),
        }
    }

    /// A boxed, initialised mutex named `name`.
    pub(crate) fn boxed(name: &'static CStr) -> Box<RawMtx> {
        let b = Box::new(RawMtx::uninit());
        // SAFETY: the box gives the mutex its final address; `name` lives forever.
        unsafe { b.init(name.as_ptr().cast()) };
        b
    }

    /// `mtx_init(m, name, NULL, MTX_DEF)`.
    ///
    /// # Safety
    /// See the type's invariants: called once, at the final address; `name` stays valid for
    /// as long as the mutex exists.
    pub(crate) unsafe fn init(&self, name: *const u8) {
        // SAFETY: caller's contract.
        unsafe { platform::geom_rs_mtx_init(self.m.get(), name.cast(), sys::MTX_DEF) };
    }

    /// `mtx_lock`.
    pub(crate) fn lock(&self) {
        // SAFETY: initialised and not moved (invariants).
        unsafe { platform::geom_rs_mtx_lock(self.m.get()) };
    }

    /// `mtx_unlock`.
    ///
    /// # Safety
    /// The calling thread holds the mutex.
    pub(crate) unsafe fn unlock(&self) {
        // SAFETY: initialised (invariants), held (caller).
        unsafe { platform::geom_rs_mtx_unlock(self.m.get()) };
    }

    /// `mtx_unlock` through a raw pointer, for a thread whose unlock is its last access to the
    /// memory the mutex lives in: another thread may free that memory as soon as the mutex is
    /// released, so no reference to it may be alive across the call.
    ///
    /// # Safety
    /// `this` points at an initialised `RawMtx` that the calling thread holds.
    pub(crate) unsafe fn unlock_raw(this: *const RawMtx) {
        // SAFETY: caller's contract; only raw pointers reach the mutex.
        unsafe { platform::geom_rs_mtx_unlock(UnsafeCell::raw_get(&raw const (*this).m)) };
    }

    /// `msleep(chan, m, PRIBIO, wmesg, 0)`: release the mutex, sleep until `wakeup(chan)`,
    /// take it back. Wakeups may be spurious: callers re-check their condition.
    ///
    /// # Safety
    /// The calling thread holds the mutex and may sleep.
    pub(crate) unsafe fn sleep(&self, chan: *const c_void, wmesg: &'static CStr) {
        // SAFETY: caller's contract; wmesg is a static string.
        unsafe { platform::geom_rs_msleep(chan, self.m.get(), sys::PRIBIO, wmesg.as_ptr(), 0) };
    }
}

impl Drop for RawMtx {
    fn drop(&mut self) {
        // SAFETY: initialised (invariants) and, being dropped, not held by anyone.
        unsafe { platform::geom_rs_mtx_destroy(self.m.get()) };
    }
}

/// `wakeup(chan)`.
pub(crate) fn wakeup(chan: *const c_void) {
    // SAFETY: wakeup only uses the address as a key; it never dereferences it.
    unsafe { platform::geom_rs_wakeup(chan) };
}

/// `wakeup_one(chan)`.
pub(crate) fn wakeup_one(chan: *const c_void) {
    // SAFETY: as for wakeup.
    unsafe { platform::geom_rs_wakeup_one(chan) };
}

/// `curthread`.
pub(crate) fn curthread() -> *const c_void {
    // SAFETY: no preconditions.
    unsafe { platform::geom_rs_curthread() }
}

/// A value behind a non-sleeping kernel mutex (`mtx(9)`): lockable from any context, start
/// and done included, and never held across a sleep.
///
/// The guard is not `Send`: a mutex is unlocked by the thread that locked it.
///
/// ```
/// use geom_core::{IoCtx, Mutex, Request};
///
/// // Counting requests in start: the Mutex may be taken in the I/O path.
/// fn start(stats: &Mutex<u64>, _cx: &IoCtx, req: Request) {
///     *stats.lock() += 1;
///     req.complete(0);
/// }
/// ```
pub struct Mutex<T: ?Sized> {
    raw: Box<RawMtx>,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached through a guard, which exists on one thread at a time.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above: sharing the Mutex shares access to T one thread at a time.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    /// A mutex named `name` (shown by WITNESS and lock profiling) around `value`. Allocates
    /// the kernel lock, which may wait for memory.
    pub fn new(_cx: &impl MayWait, name: &'static CStr, value: T) -> Mutex<T> {
        Mutex { raw: RawMtx::boxed(name), value: UnsafeCell::new(value) }
    }

    /// The value, lock and all gone.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Lock (`mtx_lock`), waiting while another thread holds it.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.raw.lock();
        MutexGuard { lock: self, _here: PhantomData }
    }

    /// The value, without locking: `&mut self` proves nobody else can reach it.
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }
}

impl<T: ?Sized> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Mutex { .. }")
    }
}

/// The holder of a [`Mutex`]; unlocks when dropped.
#[must_use = "the mutex unlocks as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: ?Sized> {
    lock: &'a Mutex<T>,
    /// Not Send: the thread that locked must unlock.
    _here: PhantomData<*mut ()>,
}

// SAFETY: sharing the guard shares &T only.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no one else reaches the value.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, and &mut self makes this access the only one.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this guard's thread took the lock in Mutex::lock.
        unsafe { self.lock.raw.unlock() };
    }
}

/// The state of a [`SleepLock`]'s kernel side, guarded by its interlock.
struct SleepState {
    /// The thread holding the lock (`curthread`), NULL when free.
    owner: *const c_void,
    /// Threads asleep in `lock`.
    waiters: u32,
}

/// The heap part of a [`SleepLock`]: the interlock and the state it guards. The state's
/// address is also the sleep channel of waiters.
struct SleepInner {
    mtx: RawMtx,
    state: UnsafeCell<SleepState>,
}

/// A value behind a lock that may be held while sleeping (an exclusive `sx(9)`), built from
/// a mutex, an owner word and `msleep`/`wakeup`.
///
/// [`SleepLock::lock`] needs a [`SleepCtx`], so it can be taken by a worker's handler (or in
/// [`crate::Topology::unlocked`]) but not in start or done, which must not wait for a lock
/// whose holder may be asleep. [`SleepLock::try_lock`] never waits and works anywhere.
/// Locking it again from the thread that holds it panics, as `sx(9)` does under
/// `INVARIANTS`, instead of deadlocking.
///
/// ```
/// use geom_core::{Consumer, SleepCtx, SleepLock};
///
/// // A journal's worker appends a record; holding the lock across the synchronous write
/// // keeps two workers from claiming the same slot.
/// fn append(next: &SleepLock<i64>, cx: &SleepCtx, cp: Consumer, record: &[u8]) -> geom_core::Result<()> {
///     let mut at = next.lock(cx);
///     cp.write_data(cx, *at, record)?;
///     *at += record.len() as i64;
///     Ok(())
/// }
/// ```
pub struct SleepLock<T: ?Sized> {
    inner: Box<SleepInner>,
    value: UnsafeCell<T>,
}

// SAFETY: the value is only reached through a guard, which exists on one thread at a time.
unsafe impl<T: ?Sized + Send> Send for SleepLock<T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send> Sync for SleepLock<T> {}

impl<T> SleepLock<T> {
    /// A sleepable lock named `name` around `value`. Allocates, which may wait for memory.
    pub fn new(_cx: &impl MayWait, name: &'static CStr, value: T) -> SleepLock<T> {
        let inner = Box::new(SleepInner {
            mtx: RawMtx::uninit(),
            state: UnsafeCell::new(SleepState { owner: ptr::null(), waiters: 0 }),
        });
        // SAFETY: the box gives the interlock its final address; `name` lives forever.
        unsafe { inner.mtx.init(name.as_ptr().cast()) };
        SleepLock { inner, value: UnsafeCell::new(value) }
    }

    /// The value, lock and all gone.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> SleepLock<T> {
    fn chan(&self) -> *const c_void {
        self.inner.state.get().cast_const().cast()
    }

    /// Lock, sleeping while another thread holds it. Only where sleeping is allowed.
    ///
    /// # Panics
    /// If the calling thread holds it already.
    pub fn lock(&self, _cx: &SleepCtx) -> SleepLockGuard<'_, T> {
        let me = curthread();
        let inner = &*self.inner;
        inner.mtx.lock();
        // SAFETY: the state is only touched with the interlock held, which we hold from here
        // to the unlock below (msleep gives it back before returning).
        unsafe {
            let st = inner.state.get();
            if (*st).owner == me {
                inner.mtx.unlock();
                panic!("SleepLock: recursing on a non-recursive lock");
            }
            while !(*st).owner.is_null() {
                (*st).waiters += 1;
                inner.mtx.sleep(self.chan(), c"slplock");
                (*st).waiters -= 1;
            }
            (*st).owner = me;
            inner.mtx.unlock();
        }
        SleepLockGuard { lock: self, _here: PhantomData }
    }

    /// Lock if nobody holds it; never sleeps, so it works in any context.
    pub fn try_lock(&self) -> Option<SleepLockGuard<'_, T>> {
        let inner = &*self.inner;
        inner.mtx.lock();
        // SAFETY: interlock held until the unlock below.
        let got = unsafe {
            let st = inner.state.get();
            let free = (*st).owner.is_null();
            if free {
                (*st).owner = curthread();
            }
            inner.mtx.unlock();
            free
        };
        got.then_some(SleepLockGuard { lock: self, _here: PhantomData })
    }

    /// The value, without locking: `&mut self` proves nobody else can reach it.
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    fn unlock(&self) {
        let inner = &*self.inner;
        inner.mtx.lock();
        // SAFETY: interlock held until the unlock below; the caller (the guard) owns the lock.
        unsafe {
            let st = inner.state.get();
            (*st).owner = ptr::null();
            if (*st).waiters > 0 {
                wakeup_one(self.chan());
            }
            inner.mtx.unlock();
        }
    }
}

impl<T: ?Sized> fmt::Debug for SleepLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SleepLock { .. }")
    }
}

/// The holder of a [`SleepLock`]; unlocks (and wakes one waiter) when dropped. It may be kept
/// across sleeping calls; it is not `Send` (the locking thread unlocks).
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct SleepLockGuard<'a, T: ?Sized> {
    lock: &'a SleepLock<T>,
    _here: PhantomData<*mut ()>,
}

// SAFETY: sharing the guard shares &T only.
unsafe impl<T: ?Sized + Sync> Sync for SleepLockGuard<'_, T> {}

impl<T: ?Sized> Deref for SleepLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard owns the lock, so no one else reaches the value.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T: ?Sized> DerefMut for SleepLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, and &mut self makes this access the only one.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T: ?Sized> Drop for SleepLockGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}
