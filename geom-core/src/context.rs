//! Contexts as tokens: what a piece of class code may do depends on where it runs, and the
//! token it receives says so.
//!
//! | token | handed to | may |
//! |---|---|---|
//! | [`Topology`] | taste, ctlreq, access, orphan, spoiled, dumpconf, init, fini, destroy_geom | change the topology; allocate waiting for memory |
//! | [`IoCtx`] | start and done | allocate without waiting, send and deliver bios; never sleep |
//! | [`SleepCtx`] | a worker's handler, a section with the topology lock dropped | sleep: synchronous I/O, waiting allocation, sleepable locks |
//!
//! Anything that may sleep takes `&SleepCtx`, so calling it from start, which only has an
//! [`IoCtx`], does not compile. None of the tokens can be sent to another thread, stored, or
//! made by class code.

use core::marker::PhantomData;

use crate::sys;

/// Not `Send`, not `Sync`: a token belongs to the call that received it.
type Here = PhantomData<*mut ()>;

/// Proof that the topology lock is held.
pub struct Topology {
    _here: Here,
}

/// The context of start and done: must not sleep.
pub struct IoCtx {
    _here: Here,
}

/// A context that may sleep.
pub struct SleepCtx {
    _here: Here,
}

impl Topology {
    /// # Safety
    /// The calling thread holds the topology lock for as long as the token lives.
    pub unsafe fn assume_locked() -> Topology {
        Topology { _here: PhantomData }
    }

    /// Drop the topology lock around `f`, which may sleep (a taste reading metadata does
    /// this), and take it back. Other topology events may run meanwhile: objects looked up
    /// before may have changed when `f` returns.
    pub fn unlocked<R>(&mut self, f: impl FnOnce(&SleepCtx) -> R) -> R {
        // SAFETY: the token proves we hold the lock; we release it, run f, take it back before
        // the token can be used again (it is borrowed mutably meanwhile).
        unsafe { sys::g_topology_unlock() };
        let r = f(&SleepCtx { _here: PhantomData });
        // SAFETY: as above.
        unsafe { sys::g_topology_lock() };
        r
    }
}

impl IoCtx {
    /// # Safety
    /// The caller is start or done (or another path that must not sleep).
    pub unsafe fn assume() -> IoCtx {
        IoCtx { _here: PhantomData }
    }
}

impl SleepCtx {
    /// # Safety
    /// The calling thread may sleep: it holds no spin lock and is not in start or done.
    pub unsafe fn assume() -> SleepCtx {
        SleepCtx { _here: PhantomData }
    }

    /// `pause(9)`: sleep for `ms` milliseconds (at least 1).
    pub fn pause(&self, ms: u32) {
        let chan = 0u8;
        let ms = ms.clamp(1, i32::MAX as u32) as i32;
        // SAFETY: the token says we may sleep; the channel is a local nobody wakes, so the
        // sleep ends at the timeout; no mutex is held or passed.
        unsafe {
            sys::platform::geom_rs_msleep(
                (&raw const chan).cast(),
                core::ptr::null_mut(),
                sys::PRIBIO,
                c"pause".as_ptr(),
                ms,
            );
        }
    }
}

/// Nanoseconds on a monotonic clock (`sbinuptime(9)`), for deadlines and rates.
pub fn uptime_ns() -> u64 {
    // SAFETY: reading the clock has no preconditions.
    unsafe { sys::platform::geom_rs_uptime_ns() }
}

/// Contexts that may wait for memory (`M_WAITOK`): the topology lock is an sx lock, which
/// FreeBSD lets a thread hold while it sleeps for memory, and a sleepable context.
pub trait MayWait: sealed::Sealed {}
impl MayWait for Topology {}
impl MayWait for SleepCtx {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Topology {}
    impl Sealed for super::SleepCtx {}
}
