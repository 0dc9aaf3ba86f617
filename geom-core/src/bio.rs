//! Bios with ownership.
//!
//! A [`Request`] is a bio that arrived at one of our providers. Whoever holds it must finish
//! it exactly once: [`Request::complete`], [`Request::fail`], or hand it to a [`Fanout`],
//! which splits it into clones sent to consumers below and delivers it itself when the last
//! clone is home. Each of those consumes the `Request`, so using a bio after handing it on,
//! or delivering it twice, does not compile.
//!
//! A `Request` dropped without being finished is delivered with `EIO` (and a console line),
//! so a bug in a class never leaves an issuer waiting forever.

use core::ffi::CStr;
use core::marker::PhantomData;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicI32, AtomicI64, AtomicPtr, AtomicU32, Ordering};

use crate::class::Geom;
use crate::context::IoCtx;
use crate::error::{Errno, Result};
use crate::handles::{Consumer, Provider};
use crate::sys::{self, bio, c_void};

/// What a bio asks for (`bio_cmd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmd {
    /// `BIO_READ`.
    Read,
    /// `BIO_WRITE`.
    Write,
    /// `BIO_DELETE`.
    Delete,
    /// `BIO_GETATTR`.
    GetAttr,
    /// `BIO_FLUSH`.
    Flush,
    /// `BIO_ZONE`.
    Zone,
    /// `BIO_SPEEDUP`.
    Speedup,
    /// `BIO_CMD0`, `BIO_CMD1`, `BIO_CMD2`: free for local use.
    Local(u16),
    /// Anything else.
    Other(u16),
}

impl Cmd {
    /// From `bio_cmd`.
    pub const fn from_raw(c: u16) -> Cmd {
        match c {
            sys::BIO_READ => Cmd::Read,
            sys::BIO_WRITE => Cmd::Write,
            sys::BIO_DELETE => Cmd::Delete,
            sys::BIO_GETATTR => Cmd::GetAttr,
            sys::BIO_FLUSH => Cmd::Flush,
            sys::BIO_ZONE => Cmd::Zone,
            sys::BIO_SPEEDUP => Cmd::Speedup,
            sys::BIO_CMD0 | sys::BIO_CMD1 | sys::BIO_CMD2 => Cmd::Local(c),
            _ => Cmd::Other(c),
        }
    }

    /// To `bio_cmd`.
    pub const fn raw(self) -> u16 {
        match self {
            Cmd::Read => sys::BIO_READ,
            Cmd::Write => sys::BIO_WRITE,
            Cmd::Delete => sys::BIO_DELETE,
            Cmd::GetAttr => sys::BIO_GETATTR,
            Cmd::Flush => sys::BIO_FLUSH,
            Cmd::Zone => sys::BIO_ZONE,
            Cmd::Speedup => sys::BIO_SPEEDUP,
            Cmd::Local(c) | Cmd::Other(c) => c,
        }
    }
}

bitflags::bitflags! {
    /// `bio_flags`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct BioFlags: u16 {
        /// `BIO_ERROR`.
        const ERROR = sys::BIO_ERROR;
        /// `BIO_DONE`.
        const DONE = sys::BIO_DONE;
        /// `BIO_ONQUEUE`.
        const ONQUEUE = sys::BIO_ONQUEUE;
        /// `BIO_ORDERED`: a barrier.
        const ORDERED = sys::BIO_ORDERED;
        /// `BIO_UNMAPPED`: data in pages, not at `bio_data`.
        const UNMAPPED = sys::BIO_UNMAPPED;
        /// `BIO_TRANSIENT_MAPPING`.
        const TRANSIENT_MAPPING = sys::BIO_TRANSIENT_MAPPING;
        /// `BIO_VLIST`.
        const VLIST = sys::BIO_VLIST;
        /// `BIO_SWAP`.
        const SWAP = sys::BIO_SWAP;
        /// `BIO_EXTERR`.
        const EXTERR = sys::BIO_EXTERR;
        /// `BIO_SPEEDUP_WRITE`.
        const SPEEDUP_WRITE = sys::BIO_SPEEDUP_WRITE;
        /// `BIO_SPEEDUP_TRIM`.
        const SPEEDUP_TRIM = sys::BIO_SPEEDUP_TRIM;
    }
}

/// A bio received by one of our providers. We own it until it is finished.
#[must_use = "a request must be completed, failed, or handed to a Fanout exactly once"]
pub struct Request {
    bp: NonNull<bio>,
}

// SAFETY: the bio is owned by this handle until delivered; handing it to another thread (a
// worker) moves that ownership, as FreeBSD classes queue bios for their threads.
unsafe impl Send for Request {}

impl Request {
    /// # Safety
    /// `bp` is a live bio handed to our start, not yet delivered, owned by nobody else.
    pub unsafe fn from_raw(bp: *mut bio) -> Request {
        // SAFETY: caller's contract.
        Request { bp: unsafe { NonNull::new_unchecked(bp) } }
    }

    /// Give up ownership without delivering (the caller takes over the raw bio).
    pub fn into_raw(self) -> *mut bio {
        let bp = self.bp.as_ptr();
        core::mem::forget(self);
        bp
    }

    fn raw(&self) -> &bio {
        // SAFETY: we own the bio until it is delivered.
        unsafe { self.bp.as_ref() }
    }

    /// The command.
    pub fn cmd(&self) -> Cmd {
        Cmd::from_raw(self.raw().bio_cmd)
    }

    /// The flags.
    pub fn flags(&self) -> BioFlags {
        BioFlags::from_bits_retain(self.raw().bio_flags)
    }

    /// Byte offset on our provider.
    pub fn offset(&self) -> i64 {
        self.raw().bio_offset
    }

    /// Length in bytes.
    pub fn length(&self) -> i64 {
        self.raw().bio_length
    }

    /// The provider it arrived at.
    pub fn provider(&self) -> Provider {
        // SAFETY: GEOM set bio_to to our live provider before calling start.
        unsafe { Provider::from_raw(self.raw().bio_to) }
    }

    /// The attribute a `BIO_GETATTR` asks for.
    pub fn attribute(&self) -> Option<&CStr> {
        let a = self.raw().bio_attribute;
        // SAFETY: a non-NULL attribute is a NUL-terminated string the issuer keeps alive.
        (!a.is_null()).then(|| unsafe { CStr::from_ptr(a) })
    }

    /// The data buffer (`bio_length` bytes) of a mapped READ, WRITE or GETATTR; `None` for
    /// commands without data and for unmapped bios.
    pub fn data(&self) -> Option<&[u8]> {
        let b = self.raw();
        if b.bio_data.is_null() || b.bio_flags & sys::BIO_UNMAPPED != 0 || b.bio_length < 0 {
            return None;
        }
        // SAFETY: GEOM guarantees bio_data holds bio_length bytes for a mapped bio, and the
        // owner of the request may access them until delivery.
        Some(unsafe { core::slice::from_raw_parts(b.bio_data.cast::<u8>(), b.bio_length as usize) })
    }

    /// The data buffer, writable (where a READ or GETATTR puts its answer).
    pub fn data_mut(&mut self) -> Option<&mut [u8]> {
        let b = self.raw();
        if b.bio_data.is_null() || b.bio_flags & sys::BIO_UNMAPPED != 0 || b.bio_length < 0 {
            return None;
        }
        // SAFETY: as in data(); &mut self makes the access exclusive.
        Some(unsafe { core::slice::from_raw_parts_mut(b.bio_data.cast::<u8>(), b.bio_length as usize) })
    }

    /// Finish successfully, `completed` bytes done.
    pub fn complete(self, completed: i64) {
        let bp = self.into_raw();
        // SAFETY: we owned bp; delivering ends that.
        unsafe {
            (*bp).bio_completed = completed.clamp(0, (*bp).bio_length.max(0));
            sys::g_io_deliver(bp, 0);
        }
    }

    /// Finish with an error. `ENOMEM` makes GEOM re-issue the request later.
    pub fn fail(self, e: Errno) {
        let bp = self.into_raw();
        // SAFETY: we owned bp; delivering ends that.
        unsafe { sys::g_io_deliver(bp, e.get()) };
    }

    /// Finish with a result: `Ok(n)` completes `n` bytes.
    pub fn finish(self, r: Result<i64>) {
        match r {
            Ok(n) => self.complete(n),
            Err(e) => self.fail(e),
        }
    }

    /// Pass the request unchanged to a consumer below (one clone, delivered back by the
    /// framework): what a transparent geom does with requests it does not handle.
    pub fn pass_down(self, cx: &IoCtx, cp: Consumer) {
        let mut f = Fanout::new(self);
        match f.add_whole(cx, cp, 0) {
            Ok(()) => f.send(),
            Err(e) => f.abort(e),
        }
    }

    /// Answer a `BIO_GETATTR` for `name` with `value` (`g_handleattr`). Returns the request
    /// back if it asks for something else.
    pub fn answer_attr(self, name: &CStr, value: &[u8]) -> core::result::Result<(), Request> {
        if self.cmd() != Cmd::GetAttr || self.attribute() != Some(name) {
            return Err(self);
        }
        let bp = self.into_raw();
        // SAFETY: we owned bp; g_handleattr delivers it since the name matches.
        unsafe { sys::g_handleattr(bp, name.as_ptr(), value.as_ptr().cast(), value.len() as i32) };
        Ok(())
    }
}

impl Request {
    /// Answer a `BIO_GETATTR` for `name` with a string (`g_handleattr_str`): copied with its
    /// NUL, `EFAULT` when the issuer's buffer is too small. Returns the request back if it
    /// asks for something else.
    pub fn answer_attr_str(self, name: &CStr, value: &CStr) -> core::result::Result<(), Request> {
        if self.cmd() != Cmd::GetAttr || self.attribute() != Some(name) {
            return Err(self);
        }
        let bp = self.into_raw();
        // SAFETY: we owned bp; g_handleattr delivers it since the name matches; length 0
        // means a NUL-terminated string.
        unsafe { sys::g_handleattr(bp, name.as_ptr(), value.as_ptr().cast(), 0) };
        Ok(())
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        let msg = b"geom-rs: a request was dropped without being delivered; failing it with EIO\n";
        // SAFETY: printing a static message; then delivering the bio we still own.
        unsafe {
            sys::platform::geom_rs_print(msg.as_ptr(), msg.len());
            sys::g_io_deliver(self.bp.as_ptr(), sys::errno::EIO);
        }
    }
}

/// Splits a [`Request`] into clones for the consumers below. The framework counts them and
/// delivers the request once, with the first error and the sum of what the clones
/// completed, when the last one comes back (FreeBSD's `g_std_done`, made safe for clones
/// that complete at the same time on different threads).
///
/// Clones are made first ([`Fanout::add`], which may fail with `ENOMEM` without sleeping) and
/// sent together ([`Fanout::send`]), so no clone can complete before the count is final.
///
/// A request split into a single clone (a transparent geom's pass-through, a stripe request
/// inside one stripe) is completed by that clone alone, like `g_std_done` does: with nothing
/// to share, its completion needs neither atomics nor the list of children.
///
/// The methods on the I/O path are `#[inline]`: a class's start then holds the whole
/// split, with no calls but the KPI's.
pub struct Fanout {
    parent: Option<Request>,
    /// Clones made and not sent yet, chained through their `bio_queue.tqe_next`.
    head: *mut bio,
    tail: *mut bio,
    /// The first clone's consumer; the others keep theirs in `bio_caller2` until sent.
    first_cp: *mut sys::g_consumer,
}

// SAFETY: the clones are ours until sent, like the parent.
unsafe impl Send for Fanout {}

impl Fanout {
    /// Start splitting `req`.
    #[inline]
    pub fn new(req: Request) -> Fanout {
        Fanout { parent: Some(req), head: ptr::null_mut(), tail: ptr::null_mut(), first_cp: ptr::null_mut() }
    }

    /// The request being split.
    #[inline]
    pub fn request(&self) -> &Request {
        self.parent.as_ref().expect("a Fanout holds its request until send or abort")
    }

    /// Clone the request for `offset..offset+length` on `cp`'s provider, with data starting
    /// `data_offset` bytes into the request's buffer (ignored for commands without data).
    /// `ENOMEM` when no bio can be had; the caller then aborts the whole fan-out.
    #[inline]
    pub fn add(&mut self, cx: &IoCtx, cp: Consumer, offset: i64, length: i64, data_offset: usize) -> Result<()> {
        self.add_tagged(cx, cp, offset, length, data_offset, 0)
    }

    /// Clone the whole request for `cp`'s provider, `shift` bytes further on: the same
    /// length and data, at the request's offset plus `shift` (a transparent geom passing a
    /// request down, past what it hides at the start of the provider below). `ENOMEM` when
    /// no bio can be had.
    #[inline]
    pub fn add_whole(&mut self, _cx: &IoCtx, cp: Consumer, shift: i64) -> Result<()> {
        let parent = self.request().bp.as_ptr();
        // SAFETY: we own the parent; g_clone_bio never sleeps and counts the child, which
        // carries the request's range and data.
        unsafe {
            let child = sys::g_clone_bio(parent);
            if child.is_null() {
                return Err(Errno::ENOMEM);
            }
            (*child).bio_offset += shift;
            self.chain(child, cp);
        }
        Ok(())
    }

    /// [`Fanout::add`] with a tag the class's [`Geom::done`] sees on the
    /// clone (a component number, a stripe index).
    #[inline]
    pub fn add_tagged(
        &mut self,
        _cx: &IoCtx,
        cp: Consumer,
        offset: i64,
        length: i64,
        data_offset: usize,
        tag: usize,
    ) -> Result<()> {
        let parent = self.request().bp.as_ptr();
        // SAFETY: we own the parent; g_clone_bio never sleeps and counts the child.
        unsafe {
            let child = sys::g_clone_bio(parent);
            if child.is_null() {
                return Err(Errno::ENOMEM);
            }
            if (*child).bio_flags & sys::BIO_UNMAPPED != 0 {
                // An unmapped request's data is a page array: the clone's window starts
                // data_offset bytes into it, and covers as many pages as its length touches.
                let start = (*child).bio_ma_offset as usize + data_offset;
                let len = usize::try_from(length).unwrap_or(0);
                (*child).bio_ma = (*child).bio_ma.add(start / sys::PAGE_SIZE);
                (*child).bio_ma_offset = (start % sys::PAGE_SIZE) as core::ffi::c_int;
                (*child).bio_ma_n = ((start % sys::PAGE_SIZE) + len).div_ceil(sys::PAGE_SIZE) as core::ffi::c_int;
            } else if !(*child).bio_data.is_null() {
                (*child).bio_data = (*child).bio_data.add(data_offset);
            }
            self.link(child, cp, offset, length, tag);
        }
        Ok(())
    }

    /// Clone the request for `offset..offset+length` on `cp`'s provider with a buffer of its
    /// own (a bounce buffer, allocated without sleeping: `ENOMEM` when memory is short), and
    /// return that buffer: a WRITE fills it before [`Fanout::send_to_done`]; a READ finds
    /// what was read in it in [`Geom::done`]. The buffer is freed with the
    /// clone. This is gstripe's "fast" mode: one bio per component instead of one per stripe.
    pub fn add_bounce(&mut self, _cx: &IoCtx, cp: Consumer, offset: i64, length: i64, tag: usize) -> Result<&mut [u8]> {
        let len = usize::try_from(length).map_err(|_| Errno::EINVAL)?;
        let parent = self.request().bp.as_ptr();
        // SAFETY: M_NOWAIT never sleeps; M_GEOM is the kernel's GEOM malloc type. The buffer
        // is owned by the clone from here (freed by destroy_child), and we own the clone
        // until it is sent, so handing out its buffer for the borrow of self is exclusive.
        unsafe {
            let buf = sys::platform::geom_rs_malloc(len.max(1), (&raw mut sys::M_GEOM).cast(), sys::M_NOWAIT);
            if buf.is_null() {
                return Err(Errno::ENOMEM);
            }
            let child = sys::g_clone_bio(parent);
            if child.is_null() {
                sys::platform::geom_rs_free(buf, (&raw mut sys::M_GEOM).cast());
                return Err(Errno::ENOMEM);
            }
            (*child).bio_data = buf.cast();
            (*child).bio_flags &= !sys::BIO_UNMAPPED;
            (*child).bio_ma = ptr::null_mut();
            (*child).bio_ma_n = 0;
            (*child).bio_ma_offset = 0;
            (*child).bio_cflags |= CFLAG_BOUNCE;
            self.link(child, cp, offset, length, tag);
            Ok(core::slice::from_raw_parts_mut(buf.cast::<u8>(), len))
        }
    }

    /// [`Fanout::add_bounce`], then `fill(request_data, bounce)` with the request's buffer
    /// (empty for requests without mapped data) beside the new bounce buffer: the way a
    /// WRITE gathers its pieces into one component request.
    pub fn add_bounce_with(
        &mut self,
        cx: &IoCtx,
        cp: Consumer,
        offset: i64,
        length: i64,
        tag: usize,
        fill: impl FnOnce(&[u8], &mut [u8]),
    ) -> Result<()> {
        let bounce: *mut [u8] = self.add_bounce(cx, cp, offset, length, tag)?;
        let data = self.request().data().unwrap_or(&[]);
        // SAFETY: the bounce buffer is a fresh allocation owned by the unsent clone, distinct
        // from the request's buffer, and nothing else reaches it until the clone is sent.
        fill(data, unsafe { &mut *bounce });
        Ok(())
    }

    /// Finish a new clone: its range and tag, then [`Fanout::chain`] it.
    ///
    /// # Safety
    /// `child` is a fresh clone of our request, owned by us.
    #[inline]
    unsafe fn link(&mut self, child: *mut bio, cp: Consumer, offset: i64, length: i64, tag: usize) {
        // SAFETY: caller's contract. A clone comes zeroed but for what g_clone_bio copies
        // from the request (command, range, data, attribute), so its caller fields start
        // NULL: only a tag other than 0 needs storing.
        unsafe {
            (*child).bio_offset = offset;
            (*child).bio_length = length;
            if tag != 0 {
                (*child).bio_caller1 = tag as *mut c_void;
            }
            self.chain(child, cp);
        }
    }

    /// Chain a new clone for sending to `cp` (its `bio_done` is chosen when the clones are
    /// sent).
    ///
    /// # Safety
    /// `child` is a fresh clone of our request, owned by us: its queue linkage is NULL, as
    /// g_clone_bio leaves it.
    #[inline]
    unsafe fn chain(&mut self, child: *mut bio, cp: Consumer) {
        // SAFETY: caller's contract; the chained clones are ours.
        unsafe {
            if self.tail.is_null() {
                self.head = child;
                self.first_cp = cp.as_ptr();
            } else {
                (*self.tail).bio_queue.tqe_next = child;
                (*child).bio_caller2 = cp.as_ptr().cast();
            }
            self.tail = child;
        }
    }

    /// How many clones have been made.
    pub fn len(&self) -> u32 {
        self.request().raw().bio_children
    }

    /// No clones made yet?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Send every clone. With no clones, the request completes at once (nothing to do).
    #[inline]
    pub fn send(self) {
        self.send_with(None);
    }

    /// Send every clone, and when the last is home call `G::done` with all of them (and the
    /// request) before the request is delivered: custom completion logic, such as copying
    /// bounce buffers back into the request (see [`Fanout::add_bounce`]).
    #[inline]
    pub fn send_to_done<G: Geom>(self) {
        self.send_with(Some(done_tramp::<G>));
    }

    #[inline]
    fn send_with(self, hook: Option<DoneHook>) {
        // Everything is taken out of the fan-out below, so its Drop has nothing left to do.
        let mut this = core::mem::ManuallyDrop::new(self);
        let Some(parent) = this.parent.take() else { return };
        let (first, last) = (this.head, this.tail);
        if !first.is_null() && first == last && hook.is_none() {
            // From here the clone owns the request: it completes it alone (lone_child_done).
            let _ = parent.into_raw();
            // SAFETY: the only clone is ours until sent, and first_cp its consumer (chain).
            unsafe {
                (*first).bio_done = Some(lone_child_done);
                sys::g_io_request(first, this.first_cp);
            }
            return;
        }
        if !first.is_null() {
            // SAFETY: the clone is ours until sent; from here every clone names its consumer
            // in bio_caller2, which is ours as the issuer.
            unsafe { (*first).bio_caller2 = this.first_cp.cast() };
        }
        send_all(parent, first, hook);
    }

    /// Give up: destroy the clones, wind back the request's child count, and fail it with
    /// `e` (with `ENOMEM`, GEOM re-issues it later).
    pub fn abort(mut self, e: Errno) {
        self.destroy_unsent();
        if let Some(parent) = self.parent.take() {
            parent.fail(e);
        }
    }

    /// Give up on this split but keep the request: destroy the clones made so far, wind back
    /// its child count, and hand it back to be handled another way (gstripe falls back from
    /// its gathering mode to one clone per stripe when it runs short of memory).
    pub fn cancel(mut self) -> Request {
        self.destroy_unsent();
        self.parent.take().expect("a Fanout holds its request until send or abort")
    }

    fn destroy_unsent(&mut self) {
        let mut child = core::mem::replace(&mut self.head, ptr::null_mut());
        self.tail = ptr::null_mut();
        while !child.is_null() {
            // SAFETY: unsent clones are ours; the parent is still ours too.
            unsafe {
                let next = (*child).bio_queue.tqe_next;
                let parent = (*child).bio_parent;
                (*parent).bio_children -= 1;
                destroy_child(child);
                child = next;
            }
        }
    }
}

/// Send a request's clones (none, several, or one with a done hook); the last one home
/// delivers the request.
fn send_all(parent: Request, mut child: *mut bio, hook: Option<DoneHook>) {
    if child.is_null() {
        parent.complete(0);
        return;
    }
    // From here the children own the parent: the last one home delivers it.
    let pbp = parent.into_raw();
    // SAFETY: we owned the parent until this point; bio_driver1/2 are ours as the
    // provider handling it. No clone has been sent yet, so nothing reads them concurrently.
    unsafe {
        (*pbp).bio_driver1 = match hook {
            Some(h) => h as *mut c_void,
            None => ptr::null_mut(),
        };
        (*pbp).bio_driver2 = ptr::null_mut();
    }
    while !child.is_null() {
        // SAFETY: each clone is ours until sent; its consumer was stored by link().
        unsafe {
            let next = (*child).bio_queue.tqe_next;
            (*child).bio_queue.tqe_next = ptr::null_mut();
            (*child).bio_done = Some(fanout_child_done);
            let cp = (*child).bio_caller2.cast::<sys::g_consumer>();
            sys::g_io_request(child, cp);
            child = next;
        }
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        if self.parent.is_some() {
            self.destroy_unsent();
            // Dropping the Request fails it with EIO and says so.
        }
    }
}

/// `bio_cflags` bit of a clone whose buffer is a bounce buffer it owns.
const CFLAG_BOUNCE: u16 = 0x8000;

/// What `bio_driver1` of a fanned-out request holds when the class wants its children.
type DoneHook = unsafe fn(parent: *mut bio);

/// Destroy a clone and the bounce buffer it may own.
///
/// # Safety
/// `child` is a clone made by a [`Fanout`], owned by the caller, not used afterwards.
#[inline]
unsafe fn destroy_child(child: *mut bio) {
    // SAFETY: caller's contract.
    unsafe {
        if (*child).bio_cflags & CFLAG_BOUNCE != 0 {
            destroy_bounce(child);
        } else {
            sys::g_destroy_bio(child);
        }
    }
}

/// [`destroy_child`] for a clone with a bounce buffer (fast mode only: kept out of line).
///
/// # Safety
/// As for [`destroy_child`].
#[cold]
#[inline(never)]
unsafe fn destroy_bounce(child: *mut bio) {
    // SAFETY: caller's contract; a bounce buffer was malloc'ed with M_GEOM by add_bounce.
    unsafe {
        if !(*child).bio_data.is_null() {
            sys::platform::geom_rs_free((*child).bio_data.cast(), (&raw mut sys::M_GEOM).cast());
        }
        sys::g_destroy_bio(child);
    }
}

/// The `bio_done` of a [`Fanout`]'s only clone, sent without a done hook: the request gets
/// its result. Nothing else completes at the same time, so no atomics are needed.
unsafe extern "C" fn lone_child_done(child: *mut bio) {
    // SAFETY: GEOM calls bio_done once for the completed clone; the parent waits for it
    // alone, so it is ours from here until delivered. Like every delivered request, it was
    // sent with no error and nothing completed (g_io_request clears both).
    unsafe {
        let parent = (*child).bio_parent;
        (*parent).set_error((*child).error());
        // GEOM keeps a delivered clone's count within 0..=its length; a clone longer than
        // its request still cannot make the request report more than it asked for.
        (*parent).bio_completed = (*child).bio_completed;
        if (*parent).bio_completed > (*parent).bio_length {
            clamp_completed(parent);
        }
        (*parent).bio_inbed += 1;
        destroy_child(child);
        sys::g_io_deliver(parent, (*parent).error());
    }
}

/// Bring a request's `bio_completed` back within `0..=bio_length` (clones that overlap, or
/// are longer than the request, can report more).
///
/// # Safety
/// `bp` is a live request we own.
#[cold]
#[inline(never)]
unsafe fn clamp_completed(bp: *mut bio) {
    // SAFETY: caller's contract.
    unsafe { (*bp).bio_completed = (*bp).bio_completed.clamp(0, (*bp).bio_length.max(0)) };
}

/// The `bio_done` of each clone a [`Fanout`] sends when there are several, or a done hook.
unsafe extern "C" fn fanout_child_done(child: *mut bio) {
    // The parent's count fields are shared by clones completing on different threads, so they
    // are updated atomically. With a done hook, each clone is pushed on the parent's list
    // (bio_driver2, linked through the clone's bio_queue) before it is counted, so the last
    // one finds them all.
    // SAFETY: GEOM calls bio_done once per completed clone; the parent stays alive until its
    // last child is folded in below (only then is it delivered).
    unsafe {
        let parent = (*child).bio_parent;
        let e = (*child).error();
        if e != 0 {
            let perr = AtomicI32::from_ptr(bio::error_ptr(parent));
            let _ = perr.compare_exchange(0, e, Ordering::AcqRel, Ordering::Acquire);
        }
        AtomicI64::from_ptr(&raw mut (*parent).bio_completed).fetch_add((*child).bio_completed, Ordering::AcqRel);
        let hook = (*parent).bio_driver1;
        if hook.is_null() {
            destroy_child(child);
        } else {
            let head = AtomicPtr::from_ptr((&raw mut (*parent).bio_driver2).cast::<*mut bio>());
            let mut cur = head.load(Ordering::Acquire);
            loop {
                (*child).bio_queue.tqe_next = cur;
                match head.compare_exchange_weak(cur, child, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => break,
                    Err(now) => cur = now,
                }
            }
        }
        let inbed = AtomicU32::from_ptr(&raw mut (*parent).bio_inbed).fetch_add(1, Ordering::AcqRel) + 1;
        if inbed == (*parent).bio_children {
            if !hook.is_null() {
                let hook: DoneHook = core::mem::transmute::<*mut c_void, DoneHook>(hook);
                hook(parent);
                let mut c = core::mem::replace(&mut (*parent).bio_driver2, ptr::null_mut()).cast::<bio>();
                while !c.is_null() {
                    let next = (*c).bio_queue.tqe_next;
                    destroy_child(c);
                    c = next;
                }
                (*parent).bio_driver1 = ptr::null_mut();
            }
            let e = AtomicI32::from_ptr(bio::error_ptr(parent)).load(Ordering::Acquire);
            // Overlapping or bounce clones can sum past the request, with or without an
            // error; g_io_deliver asserts 0 <= bio_completed <= bio_length either way.
            (*parent).bio_completed = (*parent).bio_completed.clamp(0, (*parent).bio_length.max(0));
            sys::g_io_deliver(parent, e);
        }
    }
}

/// Calls `G::done` for a request whose clones are all home.
///
/// # Safety
/// `parent` is a request of one of `G`'s providers, all of whose clones are on its
/// `bio_driver2` list; we are in done context.
unsafe fn done_tramp<G: Geom>(parent: *mut bio) {
    // SAFETY: caller's contract; the geom and its softc live while a request is in flight.
    unsafe {
        let gp = (*(*parent).bio_to).geom;
        let sc = (*gp).softc as *const G;
        let mut children = Children { parent, _life: PhantomData };
        match sc.as_ref() {
            Some(sc) => sc.done(&IoCtx::assume(), &mut children),
            None => children.fail(Errno::ENXIO),
        }
    }
}

/// A request whose clones are all home, as [`Geom::done`] sees it: the request's buffer,
/// and each clone with its tag, range, result and data. Runs in done context.
pub struct Children<'a> {
    parent: *mut bio,
    _life: PhantomData<&'a mut bio>,
}

/// One clone of a [`Children`] set.
pub struct Child<'a> {
    bp: &'a bio,
}

impl Children<'_> {
    /// The request's command.
    pub fn cmd(&self) -> Cmd {
        // SAFETY: the parent is live and ours until delivered (type invariant).
        Cmd::from_raw(unsafe { (*self.parent).bio_cmd })
    }

    /// The request's offset.
    pub fn offset(&self) -> i64 {
        // SAFETY: as above.
        unsafe { (*self.parent).bio_offset }
    }

    /// The request's length.
    pub fn length(&self) -> i64 {
        // SAFETY: as above.
        unsafe { (*self.parent).bio_length }
    }

    /// The first error a clone (or [`Children::fail`]) recorded.
    pub fn error(&self) -> Option<Errno> {
        // SAFETY: as above; every clone is home, so nothing writes the error concurrently.
        Errno::new(unsafe { (*self.parent).error() })
    }

    /// Fail the request with `e` unless it already failed.
    pub fn fail(&mut self, e: Errno) {
        // SAFETY: as above.
        unsafe {
            if (*self.parent).error() == 0 {
                (*self.parent).set_error(e.get());
            }
        }
    }

    /// Visit every clone (in no particular order) with the request's buffer (empty for
    /// requests without mapped data).
    pub fn for_each(&mut self, mut f: impl FnMut(&mut [u8], &Child<'_>)) {
        // SAFETY: all clones are home and on the list; we have the only access to them and
        // to the request until it is delivered (after this returns).
        unsafe {
            let p = &*self.parent;
            let data: &mut [u8] = if p.bio_data.is_null() || p.bio_flags & sys::BIO_UNMAPPED != 0 || p.bio_length <= 0 {
                &mut []
            } else {
                core::slice::from_raw_parts_mut(p.bio_data.cast::<u8>(), p.bio_length as usize)
            };
            let mut c = p.bio_driver2.cast::<bio>();
            while !c.is_null() {
                f(data, &Child { bp: &*c });
                c = (*c).bio_queue.tqe_next;
            }
        }
    }
}

impl Child<'_> {
    /// The tag given to [`Fanout::add_tagged`] or [`Fanout::add_bounce`].
    pub fn tag(&self) -> usize {
        self.bp.bio_caller1 as usize
    }

    /// Offset on the provider below.
    pub fn offset(&self) -> i64 {
        self.bp.bio_offset
    }

    /// Length.
    pub fn length(&self) -> i64 {
        self.bp.bio_length
    }

    /// Bytes done.
    pub fn completed(&self) -> i64 {
        self.bp.bio_completed
    }

    /// Its error.
    pub fn error(&self) -> Option<Errno> {
        Errno::new(self.bp.error())
    }

    /// Its data: its bounce buffer, or its window of the request's buffer.
    pub fn data(&self) -> &[u8] {
        let b = self.bp;
        if b.bio_data.is_null() || b.bio_flags & sys::BIO_UNMAPPED != 0 || b.bio_length <= 0 {
            return &[];
        }
        // SAFETY: a clone's data holds bio_length bytes while we own it.
        unsafe { core::slice::from_raw_parts(b.bio_data.cast::<u8>(), b.bio_length as usize) }
    }

    /// Does it carry its own (bounce) buffer?
    pub fn is_bounce(&self) -> bool {
        self.bp.bio_cflags & CFLAG_BOUNCE != 0
    }
}
