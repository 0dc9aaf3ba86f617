//! [`Worker`]: an actor with its own kernel thread, for the work start and done may not do.
//!
//! start and done must never sleep, so a class that has to write synchronously, wait for
//! memory, or serialise work behind a sleepable lock (a journal, a mirror resynchronising)
//! hands that work to a worker. The worker owns a mailbox and a thread (`kproc_create(9)` in
//! the kernel, a thread of the runtime in `geom-host`) that takes mail out of it and gives
//! each piece to the class's [`Handler`] together with a [`SleepCtx`]: the handler may sleep.
//!
//! # The mailbox
//!
//! * Bios ([`Request`]s) go on an intrusive [`BioQueue`], linked through their own
//!   `bio_queue` field: posting one never allocates and cannot fail for lack of room.
//! * Other messages (the handler's [`Handler::Msg`]) go into a fixed-capacity ring of `N`
//!   slots ([`heapless::Deque`]) inside the worker's one allocation: posting never allocates
//!   either, and a full ring gives the message back ([`PostError::Full`]).
//! * Both are guarded by one `mtx(9)` (a sleep mutex, not a spin lock: a spinning lock held
//!   by a preempted thread can stall a CPU), held only to link or unlink, so posting from
//!   start or done costs a short lock hold and a `wakeup` when the thread sleeps.
//!
//! When the mailbox is empty the thread calls [`Handler::idle`] before it sleeps: the place
//! for background work (a journal's group commit and its copying home), one step per call.
//!
//! The thread takes the whole bio queue at once under the lock (O(1)) and hands the batch
//! to the handler one request at a time without the lock. Messages go first: before each
//! batch the thread handles every message already posted, so **a message is handled before
//! every bio posted after it** (a bio posted before a message may be handled before or after
//! it). Bios are handled in the order they were posted, and so are messages.
//!
//! # Stopping
//!
//! [`Worker::stop`], [`Worker::request_stop`] and dropping the worker (for instance when the
//! geom's softc is freed) stop it:
//!
//! 1. Posting is refused from then on ([`Worker::post_bio`] gives the request back).
//! 2. The handler call in progress, if any, finishes.
//! 3. Every bio not yet handed to the handler (queued, or in the batch being handled) is
//!    failed with `ENXIO`, as FreeBSD fails requests to a device going away; every message
//!    not yet handled is dropped (a message holding a `Request` thereby fails it with `EIO`).
//! 4. [`Handler::stopped`] runs once (a journal can flush there), then the handler is dropped,
//!    all on the worker's thread.
//! 5. The thread marks the worker exited and wakes the stopper; [`Worker::stop`] and drop wait
//!    for that mark before returning, and only then is the shared state freed, so the thread
//!    never touches freed memory (its last access is releasing the mailbox mutex).
//!
//! Stopping from the worker's own thread (a handler that calls [`Worker::stop`], or drops the
//! last handle to its own worker) cannot wait for the thread to finish, since it is that
//! thread. It does not deadlock: it marks the worker stopping and returns at once; steps 2 to
//! 5 happen when the handler call returns. If it was the drop of the handle, the thread frees
//! the shared state itself on its way out.
//!
//! Waiting for a stop sleeps, so `stop` takes a [`MayWait`] token, and dropping a running
//! worker must happen where sleeping is allowed (a softc is freed under the topology lock,
//! which allows it). The handler must not, in turn, wait for whatever the stopper holds (an
//! event that needs the topology lock, a [`crate::SleepLock`] the stopper has): that would
//! deadlock as it would in C.
//!
//! # How a class uses it: a journal
//!
//! ```
//! use geom_core::{Cmd, Consumer, Errno, IoCtx, Handler, MayWait, Request, SleepCtx, Worker};
//!
//! /// The worker's side: owns the journal's position, may sleep.
//! struct Journal {
//!     cp: Consumer,
//!     next_record: i64,
//! }
//!
//! impl Handler for Journal {
//!     type Msg = ();
//!
//!     fn bio(&mut self, cx: &SleepCtx, req: Request) {
//!         // Write the record, then the data in place, then acknowledge the write.
//!         let Some(data) = req.data() else { return req.fail(Errno::EINVAL) };
//!         let r = self
//!             .cp
//!             .write_data(cx, self.next_record, data)
//!             .and_then(|()| self.cp.write_data(cx, req.offset(), data));
//!         self.next_record += data.len() as i64;
//!         let n = req.length();
//!         req.finish(r.map(|()| n));
//!     }
//! }
//!
//! /// The softc's side.
//! struct JournalGeom {
//!     cp: Consumer,
//!     worker: Worker<Journal>,
//! }
//!
//! impl JournalGeom {
//!     // Made in taste or ctlreq, which have a Topology token (a MayWait).
//!     fn new(cx: &impl MayWait, cp: Consumer) -> geom_core::Result<JournalGeom> {
//!         let worker = Worker::spawn(cx, c"g_journal md0", Journal { cp, next_record: 0 })?;
//!         Ok(JournalGeom { cp, worker })
//!     }
//!
//!     // Geom::start: writes go to the worker, everything else straight down.
//!     fn start(&self, cx: &IoCtx, req: Request) {
//!         if req.cmd() == Cmd::Write {
//!             if let Err(req) = self.worker.post_bio(req) {
//!                 req.fail(Errno::ENXIO); // the geom is going away
//!             }
//!         } else {
//!             req.pass_down(cx, self.cp);
//!         }
//!     }
//! }
//! ```
//!
//! When the geom goes, its softc is dropped, which stops the worker as described above.

use alloc::boxed::Box;
use core::cell::UnsafeCell;
use core::ffi::{c_void, CStr};
use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use heapless::Deque;

use crate::bio::Request;
use crate::bioq::BioQueue;
use crate::context::{MayWait, SleepCtx};
use crate::error::{Errno, Result};
use crate::sync::{curthread, wakeup, RawMtx};
use crate::sys::platform;

/// What a [`Worker`]'s thread does with its mail. Every method runs on the worker's own
/// thread, one call at a time, with a [`SleepCtx`]: it may sleep.
pub trait Handler: Send + 'static {
    /// The messages the worker takes besides bios. Keep them small (a few words; box big
    /// payloads): the mailbox holds `N` of them in place. Use `()` if there are none.
    type Msg: Send + 'static;

    /// A bio posted with [`Worker::post_bio`]. The handler owns it and must finish it.
    fn bio(&mut self, cx: &SleepCtx, req: Request);

    /// A message posted with [`Worker::post`]. The default drops it.
    fn message(&mut self, cx: &SleepCtx, msg: Self::Msg) {
        let _ = (cx, msg);
    }

    /// The mailbox is empty: do background work (a journal copies records to their home
    /// here, between bursts of requests). Return `true` if there is more to do: the thread
    /// then looks at its mail and calls `idle` again, so new requests are never kept waiting
    /// behind more than one step of background work. Return `false` to sleep until mail
    /// arrives. The default has nothing to do.
    fn idle(&mut self, cx: &SleepCtx) -> bool {
        let _ = cx;
        false
    }

    /// The worker is stopping: every queued bio has been failed and no more mail will come.
    /// Runs once, just before the handler is dropped.
    fn stopped(&mut self, cx: &SleepCtx) {
        let _ = cx;
    }
}

/// Why [`Worker::post`] gave a message back.
#[derive(Debug, PartialEq, Eq)]
pub enum PostError<M> {
    /// The message ring is full; the caller may retry later or fail what it was doing.
    Full(M),
    /// The worker is stopping or stopped.
    Stopped(M),
}

impl<M> PostError<M> {
    /// The message that was not posted.
    pub fn into_inner(self) -> M {
        match self {
            PostError::Full(m) | PostError::Stopped(m) => m,
        }
    }
}

/// Where a worker is in its life.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Running,
    /// Stop requested: posting refused; the thread is finishing.
    Stopping,
    /// The thread is done with the mailbox (it may still be on its way out of the mutex).
    Exited,
}

/// The part of the shared state guarded by the mailbox mutex.
struct Mailbox<M, const N: usize> {
    bios: BioQueue,
    msgs: Deque<M, N>,
    phase: Phase,
    /// The thread is asleep waiting for mail (so posting must wake it).
    asleep: bool,
    /// The worker's thread (`curthread`), NULL until it runs.
    thread: *const c_void,
    /// The handle was dropped on the worker's own thread: the thread frees the shared state.
    detached: bool,
}

/// `MAXCOMLEN + 1`: room for a kernel thread's name.
const NAME_LEN: usize = 20;

/// A worker's state, shared by its handle and its thread.
///
/// Invariants: allocated once by [`Worker::spawn`] and never moved; `mtx` is initialised
/// there (named by `name`, which therefore lives as long); `mail` is only accessed with
/// `mtx` held; `stopping` is set with `mtx` held and read by the thread without it. The
/// state is freed exactly once: by the handle after the thread marked [`Phase::Exited`], or
/// by the thread itself when the handle was dropped on that thread (`detached`).
struct Shared<H: Handler, const N: usize> {
    mtx: RawMtx,
    name: [u8; NAME_LEN],
    mail: UnsafeCell<Mailbox<H::Msg, N>>,
    stopping: AtomicBool,
    /// Taken by the thread when it starts; only dropped from here if the thread never ran.
    handler: UnsafeCell<Option<H>>,
}

impl<H: Handler, const N: usize> Shared<H, N> {
    /// The channel the thread sleeps on, waiting for mail.
    fn mail_chan(&self) -> *const c_void {
        self.mail.get().cast_const().cast()
    }

    /// The channel stoppers sleep on, waiting for the thread to exit.
    fn exit_chan(&self) -> *const c_void {
        core::ptr::from_ref(&self.stopping).cast()
    }

    /// With `mtx` held: mark the worker stopping (once). Returns whether the thread must be
    /// woken to notice.
    ///
    /// # Safety
    /// The caller holds `mtx`.
    unsafe fn begin_stop(&self) -> bool {
        // SAFETY: mtx held (caller).
        let mb = unsafe { &mut *self.mail.get() };
        if mb.phase != Phase::Running {
            return false;
        }
        mb.phase = Phase::Stopping;
        self.stopping.store(true, Ordering::Release);
        true
    }

    /// With `mtx` held: is the calling thread the worker's own?
    ///
    /// # Safety
    /// The caller holds `mtx`.
    unsafe fn on_own_thread(&self) -> bool {
        // SAFETY: mtx held (caller).
        unsafe { (*self.mail.get()).thread == curthread() }
    }

    /// With `mtx` held, and not on the worker's thread: sleep until the thread has exited.
    ///
    /// # Safety
    /// The caller holds `mtx` and may sleep.
    unsafe fn wait_exited(&self) {
        // SAFETY: mtx held (caller); msleep gives it back before returning.
        unsafe {
            while (*self.mail.get()).phase != Phase::Exited {
                self.mtx.sleep(self.exit_chan(), c"gwstop");
            }
        }
    }
}

/// An actor with a typed mailbox and its own thread; see the [module](self) documentation.
///
/// `N` is the capacity of the message ring (bios are not limited: they are linked
/// intrusively).
pub struct Worker<H: Handler, const N: usize = 16> {
    shared: NonNull<Shared<H, N>>,
}

// SAFETY: the handle only reaches the shared state through its mutex (or atomics), messages
// and requests moved in are Send, and the handler itself only ever runs on the worker thread.
unsafe impl<H: Handler, const N: usize> Send for Worker<H, N> {}
// SAFETY: as above: every &self method locks the mailbox mutex.
unsafe impl<H: Handler, const N: usize> Sync for Worker<H, N> {}

impl<H: Handler, const N: usize> fmt::Debug for Worker<H, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (bios, messages) = self.pending();
        f.debug_struct("Worker").field("bios", &bios).field("messages", &messages).finish()
    }
}

impl<H: Handler, const N: usize> Worker<H, N> {
    /// Start a worker named `name` (at most 19 bytes are kept, as for a kernel thread) whose
    /// thread gives its mail to `handler`. Allocates the shared state once (which may wait
    /// for memory, hence the token) and creates the thread; fails with what thread creation
    /// returned.
    pub fn spawn(_cx: &impl MayWait, name: &CStr, handler: H) -> Result<Worker<H, N>> {
        let mut buf = [0u8; NAME_LEN];
        let src = name.to_bytes();
        let n = src.len().min(NAME_LEN - 1);
        buf[..n].copy_from_slice(&src[..n]);
        let shared = Box::new(Shared::<H, N> {
            mtx: RawMtx::uninit(),
            name: buf,
            mail: UnsafeCell::new(Mailbox {
                bios: BioQueue::new(),
                msgs: Deque::new(),
                phase: Phase::Running,
                asleep: false,
                thread: core::ptr::null(),
                detached: false,
            }),
            stopping: AtomicBool::new(false),
            handler: UnsafeCell::new(Some(handler)),
        });
        let p = Box::into_raw(shared);
        // SAFETY: p is the state's final address; the name buffer lives in the same
        // allocation as the mutex. The thread gets the only other pointer to the state; it
        // does not outlive the state (see Shared's invariants).
        unsafe {
            (*p).mtx.init((*p).name.as_ptr());
            let e = platform::geom_rs_kthread_create(worker_main::<H, N>, p.cast(), (*p).name.as_ptr().cast());
            if e != 0 {
                drop(Box::from_raw(p));
                return Err(Errno::new(e).unwrap_or(Errno::ENOMEM));
            }
            Ok(Worker { shared: NonNull::new_unchecked(p) })
        }
    }

    fn shared(&self) -> &Shared<H, N> {
        // SAFETY: the state lives until this handle frees it (or, detached, until the thread
        // frees it, which only happens after the handle is gone).
        unsafe { self.shared.as_ref() }
    }

    /// Queue a bio for the handler. Never sleeps, never allocates: callable from start and
    /// done. Gives the request back if the worker is stopping (fail it, typically with
    /// `ENXIO`).
    pub fn post_bio(&self, req: Request) -> core::result::Result<(), Request> {
        self.enqueue(
            req,
            |mb, req| {
                mb.bios.insert_tail(req);
                Ok(())
            },
            |req| req,
        )
    }

    /// Queue a message for the handler. Never sleeps, never allocates: callable from start
    /// and done. Gives the message back if the ring is full or the worker is stopping.
    pub fn post(&self, msg: H::Msg) -> core::result::Result<(), PostError<H::Msg>> {
        self.enqueue(msg, |mb, msg| mb.msgs.push_back(msg).map_err(PostError::Full), PostError::Stopped)
    }

    /// Put `item` in the mailbox with `push` under the mailbox mutex (or hand it back through
    /// `stopped` if the worker no longer runs), and wake the thread if it sleeps.
    fn enqueue<T, E>(
        &self,
        item: T,
        push: impl FnOnce(&mut Mailbox<H::Msg, N>, T) -> core::result::Result<(), E>,
        stopped: impl FnOnce(T) -> E,
    ) -> core::result::Result<(), E> {
        let sh = self.shared();
        sh.mtx.lock();
        // SAFETY: mtx held until the unlock below.
        let result = unsafe {
            let mb = &mut *sh.mail.get();
            let r = if mb.phase == Phase::Running { push(mb, item).map(|()| mb.asleep) } else { Err(stopped(item)) };
            sh.mtx.unlock();
            r
        };
        if result? {
            wakeup(sh.mail_chan());
        }
        Ok(())
    }

    /// What is queued and not yet taken by the thread: (bios, messages).
    pub fn pending(&self) -> (usize, usize) {
        let sh = self.shared();
        sh.mtx.lock();
        // SAFETY: mtx held until the unlock below.
        unsafe {
            let mb = &*sh.mail.get();
            let r = (mb.bios.len(), mb.msgs.len());
            sh.mtx.unlock();
            r
        }
    }

    /// Is the worker taking mail (no stop requested yet)?
    pub fn is_running(&self) -> bool {
        !self.shared().stopping.load(Ordering::Acquire)
    }

    /// Ask the worker to stop, without waiting: posting is refused from now on, and the
    /// thread finishes as described in the [module](self) documentation. Never sleeps, so it
    /// works in any context; [`Worker::stop`] (or dropping the worker) waits for the end.
    pub fn request_stop(&self) {
        let sh = self.shared();
        sh.mtx.lock();
        // SAFETY: mtx held until the unlock.
        let wake = unsafe {
            let w = sh.begin_stop();
            sh.mtx.unlock();
            w
        };
        if wake {
            wakeup(sh.mail_chan());
        }
    }

    /// Stop the worker and wait until its thread has finished: when this returns, the
    /// handler has run for the last time and every bio it did not get has been failed with
    /// `ENXIO`. Stopping again is a no-op. Called from the worker's own thread it only
    /// requests the stop (it cannot wait for itself) and returns at once.
    pub fn stop(&self, _cx: &impl MayWait) {
        let sh = self.shared();
        sh.mtx.lock();
        // SAFETY: mtx held until the unlock; wait_exited sleeps with it, as msleep does, and
        // we may sleep (token).
        unsafe {
            if sh.begin_stop() {
                wakeup(sh.mail_chan());
            }
            if !sh.on_own_thread() {
                sh.wait_exited();
            }
            sh.mtx.unlock();
        }
    }
}

impl<H: Handler, const N: usize> Drop for Worker<H, N> {
    /// Stop the worker as [`Worker::stop`] does (this may sleep), then free its state. On the
    /// worker's own thread, the stop is only requested and the thread frees the state when it
    /// exits.
    fn drop(&mut self) {
        let p = self.shared.as_ptr();
        // With mtx held we mark the stop, then either leave the freeing to the thread (on its
        // own thread) or wait until the thread is done with the state and free it ourselves.
        // SAFETY: the state is alive (this handle has not freed it); once the thread has
        // exited nothing else references it (the queues are empty, the handler is gone).
        unsafe {
            let sh = &*p;
            sh.mtx.lock();
            if sh.begin_stop() {
                wakeup(sh.mail_chan());
            }
            if sh.on_own_thread() {
                (*sh.mail.get()).detached = true;
                sh.mtx.unlock();
                return;
            }
            sh.wait_exited();
            sh.mtx.unlock();
            drop(Box::from_raw(p));
        }
    }
}

/// The body of a worker's thread.
///
/// # Safety
/// `arg` is the `Shared<H, N>` of a worker made by `spawn`, alive until this function marks
/// it exited (or frees it itself when detached).
unsafe extern "C" fn worker_main<H: Handler, const N: usize>(arg: *mut c_void) {
    let p = arg.cast::<Shared<H, N>>();
    // SAFETY: see the function's contract; every access to the mailbox below holds mtx.
    let sh = unsafe { &*p };
    // SAFETY: this is the worker's own thread: it holds no lock and runs no start or done,
    // so it may sleep; the token never leaves this function except as a borrow.
    let cx = unsafe { SleepCtx::assume() };
    let mb = sh.mail.get();

    sh.mtx.lock();
    // SAFETY: mtx held; the handler was put there by spawn and only this thread takes it.
    let mut handler = unsafe {
        (*mb).thread = curthread();
        (*sh.handler.get()).take()
    };
    // Whether the handler's idle work is done until new mail comes.
    let mut rested = false;
    loop {
        // mtx is held at the top of each round.
        // SAFETY: mtx held for the mailbox accesses; it is released around handler calls
        // and retaken before the mailbox is touched again.
        unsafe {
            if (*mb).phase != Phase::Running {
                break;
            }
            if let Some(msg) = (*mb).msgs.pop_front() {
                sh.mtx.unlock();
                if let Some(h) = handler.as_mut() {
                    h.message(&cx, msg);
                }
                sh.mtx.lock();
                rested = false;
                continue;
            }
            if !(*mb).bios.is_empty() {
                let mut batch = (*mb).bios.take();
                sh.mtx.unlock();
                while let Some(req) = batch.remove_first() {
                    match handler.as_mut() {
                        Some(h) if !sh.stopping.load(Ordering::Acquire) => h.bio(&cx, req),
                        _ => req.fail(Errno::ENXIO),
                    }
                }
                sh.mtx.lock();
                rested = false;
                continue;
            }
            if !rested {
                sh.mtx.unlock();
                rested = !handler.as_mut().is_some_and(|h| h.idle(&cx));
                sh.mtx.lock();
                continue;
            }
            (*mb).asleep = true;
            sh.mtx.sleep(sh.mail_chan(), c"gworker");
            (*mb).asleep = false;
            rested = false;
        }
    }

    // Stopping, mtx held. Posting is refused now, so the queues only shrink.
    // SAFETY: mtx held for each mailbox access, released before running anything else.
    unsafe {
        let left = (*mb).bios.take();
        sh.mtx.unlock();
        for req in left {
            req.fail(Errno::ENXIO);
        }
        loop {
            sh.mtx.lock();
            let msg = (*mb).msgs.pop_front();
            sh.mtx.unlock();
            match msg {
                Some(m) => drop(m),
                None => break,
            }
        }
    }
    if let Some(mut h) = handler.take() {
        h.stopped(&cx);
    }

    sh.mtx.lock();
    // SAFETY: mtx held. After the unlock this thread touches the state no more, except to
    // free it when detached (then no handle exists to wait for or free it).
    unsafe {
        (*mb).phase = Phase::Exited;
        let detached = (*mb).detached;
        wakeup(sh.exit_chan());
        RawMtx::unlock_raw(&raw const (*p).mtx);
        if detached {
            drop(Box::from_raw(p));
        }
    }
}
