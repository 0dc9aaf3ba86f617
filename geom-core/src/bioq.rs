//! [`BioQueue`]: an intrusive queue of owned requests, in the spirit of `bioq(9)`.
//!
//! A class that cannot serve a request at once (a journal waiting for its worker, a disk
//! whose device is busy) keeps it on a queue. FreeBSD's `bioq_*` functions link a bio through
//! its own `bio_queue` field (`TAILQ_ENTRY(bio)`, two pointers), so queuing never allocates;
//! this queue does the same, through an [`intrusive_collections`] linked list whose links are
//! that field. It can therefore be used in start and done, which must not allocate with
//! waiting and may not fail for lack of memory.
//!
//! # Invariants
//!
//! * A bio is on at most one queue. The queue holds the [`Request`] it was given (pushing
//!   consumes it, popping gives it back), and a `Request` is the only owner of its bio, so no
//!   second queue, and no other code, can reach the bio's `bio_queue` field meanwhile.
//! * While we own a request, its `bio_queue` field is ours. In FreeBSD the field belongs to
//!   whoever currently holds the bio: the issuer stops using it when it calls `g_io_request`,
//!   GEOM's own `g_down`/`g_up` queues are done with it before start or done runs, and the
//!   provider that received the bio queues it through this very field (`bioq_insert_tail`
//!   in `subr_disk.c` links `bio_queue`, as do the queues of gmirror, gjournal and md).
//!   A [`crate::Fanout`] uses the field of its clones, not of the request, so the two never
//!   meet.
//! * Links follow `TAILQ` inside the queue: `tqe_next` points at the next bio and `tqe_prev`
//!   at the previous bio's `tqe_next`. The queue's head is not a `TAILQ_HEAD`, so the first
//!   bio's `tqe_prev` is NULL (where `TAILQ` would point at the head). A bio taken off the
//!   queue has both pointers cleared.
//! * [`BioQueue::len`] counts the bios on the queue (kept by every operation, so it is O(1)).
//!
//! Dropping a queue that still holds requests drops them, and a dropped [`Request`] is
//! delivered with `EIO` (see [`crate::bio`]): no issuer is left waiting.

use core::fmt;
use core::mem::ManuallyDrop;
use core::ops::Deref;
use core::ptr::{self, NonNull};

use intrusive_collections::linked_list::{LinkedList, LinkedListOps};
use intrusive_collections::{Adapter, LinkOps, PointerOps};

use crate::bio::Request;
use crate::sys::{self, bio, TailqEntry};

/// The link operations over `struct bio`'s `bio_queue` field.
#[derive(Clone, Copy, Default)]
struct BioLinkOps;

/// Turns the raw bio the list stores back into the owned [`Request`] it came from.
#[derive(Clone, Copy, Default)]
struct RequestOps;

/// The adapter that puts requests on an intrusive list through `bio_queue`.
#[derive(Clone, Copy, Default)]
struct BioAdapter {
    link_ops: BioLinkOps,
    pointer_ops: RequestOps,
}

type Link = NonNull<TailqEntry<bio>>;

/// The bio whose `bio_queue` field `link` is.
fn bio_of(link: Link) -> *mut bio {
    link.as_ptr().wrapping_byte_sub(core::mem::offset_of!(bio, bio_queue)).cast()
}

/// The `bio_queue` field of `bp`.
fn link_of(bp: *mut bio) -> Link {
    // SAFETY: bp is a live bio (callers pass only bios owned by the queue or being pushed),
    // so the address of its field is not NULL.
    unsafe { NonNull::new_unchecked(sys::links::bio_in_queue(bp)) }
}

// SAFETY: a bio's bio_queue field is used by at most one queue at a time: the queue owns
// the Request (see the module's invariants), so acquiring always succeeds and the list has
// exclusive use of the link until it releases it.
unsafe impl LinkOps for BioLinkOps {
    type LinkPtr = Link;

    unsafe fn acquire_link(&mut self, _ptr: Link) -> bool {
        true
    }

    unsafe fn release_link(&mut self, ptr: Link) {
        // SAFETY: the list still owns the bio when it releases the link.
        unsafe {
            (*ptr.as_ptr()).tqe_next = ptr::null_mut();
            (*ptr.as_ptr()).tqe_prev = ptr::null_mut();
        }
    }
}

// SAFETY: next and prev read back exactly what set_next and set_prev stored, on links of
// bios the list owns.
unsafe impl LinkedListOps for BioLinkOps {
    unsafe fn next(&self, ptr: Link) -> Option<Link> {
        // SAFETY: ptr is the link of a bio on the list (caller); tqe_next is NULL or a bio
        // on the same list.
        let next = unsafe { (*ptr.as_ptr()).tqe_next };
        (!next.is_null()).then(|| link_of(next))
    }

    unsafe fn prev(&self, ptr: Link) -> Option<Link> {
        // SAFETY: as above. tqe_prev points at the previous bio's tqe_next, the first word of
        // its bio_queue entry, so it is that entry's address.
        let prev = unsafe { (*ptr.as_ptr()).tqe_prev };
        NonNull::new(prev.cast::<TailqEntry<bio>>())
    }

    unsafe fn set_next(&mut self, ptr: Link, next: Option<Link>) {
        // SAFETY: the list owns ptr's bio (caller).
        unsafe { (*ptr.as_ptr()).tqe_next = next.map_or(ptr::null_mut(), bio_of) };
    }

    unsafe fn set_prev(&mut self, ptr: Link, prev: Option<Link>) {
        // SAFETY: as above; a previous entry's tqe_next is at offset 0 of the entry.
        unsafe {
            (*ptr.as_ptr()).tqe_prev = prev.map_or(ptr::null_mut(), |p| (&raw mut (*p.as_ptr()).tqe_next));
        }
    }
}

// SAFETY: from_raw rebuilds the Request that into_raw took apart, exactly once per push.
unsafe impl PointerOps for RequestOps {
    type Value = bio;
    type Pointer = Request;

    unsafe fn from_raw(&self, value: *const bio) -> Request {
        // SAFETY: value came from into_raw below: a live bio owned by the queue until now.
        unsafe { Request::from_raw(value.cast_mut()) }
    }

    fn into_raw(&self, req: Request) -> *const bio {
        req.into_raw()
    }
}

// SAFETY: get_link and get_value are inverse (the field's offset is added and removed).
unsafe impl Adapter for BioAdapter {
    type LinkOps = BioLinkOps;
    type PointerOps = RequestOps;

    unsafe fn get_value(&self, link: Link) -> *const bio {
        bio_of(link)
    }

    unsafe fn get_link(&self, value: *const bio) -> Link {
        link_of(value.cast_mut())
    }

    fn link_ops(&self) -> &BioLinkOps {
        &self.link_ops
    }

    fn link_ops_mut(&mut self) -> &mut BioLinkOps {
        &mut self.link_ops
    }

    fn pointer_ops(&self) -> &RequestOps {
        &self.pointer_ops
    }
}

/// A FIFO of owned [`Request`]s linked through their own `bio_queue` field: pushing and
/// popping never allocate, so a queue can be used anywhere, start and done included.
///
/// Besides FIFO order ([`BioQueue::insert_tail`], [`BioQueue::remove_first`]) it can jump a
/// request to the front ([`BioQueue::insert_head`], to retry it first) and keep requests in
/// ascending offset order ([`BioQueue::insert_sorted`], a one-way elevator).
///
/// ```
/// use geom_core::{BioQueue, Request};
///
/// /// Writes a class parks in start, in offset order, for its worker to write out.
/// struct Parked {
///     queue: BioQueue,
/// }
///
/// impl Parked {
///     fn park(&mut self, req: Request) {
///         self.queue.insert_sorted(req);
///     }
///
///     fn next(&mut self) -> Option<Request> {
///         self.queue.remove_first()
///     }
/// }
/// ```
pub struct BioQueue {
    list: LinkedList<BioAdapter>,
    len: usize,
}

// A queue may move to another thread with its requests (the list is Send because Request is).
static_assertions::assert_impl_all!(BioQueue: Send);

impl Default for BioQueue {
    fn default() -> Self {
        BioQueue::new()
    }
}

impl fmt::Debug for BioQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BioQueue").field("len", &self.len).finish()
    }
}

impl BioQueue {
    /// An empty queue.
    pub fn new() -> BioQueue {
        BioQueue { list: LinkedList::new(BioAdapter::default()), len: 0 }
    }

    /// How many requests are queued. O(1).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Is the queue empty?
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Append `req` (`bioq_insert_tail`).
    pub fn insert_tail(&mut self, req: Request) {
        self.list.push_back(req);
        self.len += 1;
    }

    /// Put `req` in front of every queued request (`bioq_insert_head`): it is the next one
    /// [`BioQueue::remove_first`] returns.
    pub fn insert_head(&mut self, req: Request) {
        self.list.push_front(req);
        self.len += 1;
    }

    /// Insert `req` after every queued request whose offset is lower or equal: a queue filled
    /// only this way is in ascending `bio_offset` order, and requests with equal offsets keep
    /// the order they were inserted in (so two writes to the same place are not swapped).
    /// The search starts at the tail, so appending in ascending order costs O(1).
    pub fn insert_sorted(&mut self, req: Request) {
        let off = req.offset();
        let mut cur = self.list.back_mut();
        loop {
            match cur.get() {
                Some(b) if b.bio_offset > off => cur.move_prev(),
                // At a request with offset <= off, or past the front (the null position,
                // after which insert_after puts the request first).
                _ => break,
            }
        }
        cur.insert_after(req);
        self.len += 1;
    }

    /// Take the first request off the queue (`bioq_takefirst`).
    pub fn remove_first(&mut self) -> Option<Request> {
        let r = self.list.pop_front();
        if r.is_some() {
            self.len -= 1;
        }
        r
    }

    /// Look at the first request without taking it (`bioq_first`).
    pub fn peek(&self) -> Option<Peek<'_>> {
        let bp = self.list.front().get()?;
        // SAFETY: the bio is owned by the queue, which the borrow keeps from changing; the
        // Request is never dropped (ManuallyDrop), so it cannot deliver the bio.
        let req = unsafe { Request::from_raw(ptr::from_ref(bp).cast_mut()) };
        Some(Peek { req: ManuallyDrop::new(req), _queue: core::marker::PhantomData })
    }

    /// Move every request of `other` to the end of this queue, leaving `other` empty. O(1).
    pub fn append(&mut self, other: &mut BioQueue) {
        let taken = other.list.take();
        self.len += core::mem::replace(&mut other.len, 0);
        self.list.back_mut().splice_after(taken);
    }

    /// Take every request, leaving this queue empty. O(1): what a worker does under its lock
    /// to handle a whole batch after dropping it.
    pub fn take(&mut self) -> BioQueue {
        BioQueue { list: self.list.take(), len: core::mem::replace(&mut self.len, 0) }
    }

    /// Take the requests off the queue one by one, first to last. Requests the iterator has
    /// not returned when it is dropped stay queued.
    pub fn drain(&mut self) -> Drain<'_> {
        Drain { queue: self }
    }
}

/// The first request of a [`BioQueue`], lent by [`BioQueue::peek`]: every read-only
/// [`Request`] accessor works through it; delivering needs [`BioQueue::remove_first`].
pub struct Peek<'q> {
    req: ManuallyDrop<Request>,
    _queue: core::marker::PhantomData<&'q BioQueue>,
}

impl Deref for Peek<'_> {
    type Target = Request;
    fn deref(&self) -> &Request {
        &self.req
    }
}

/// The iterator of [`BioQueue::drain`].
pub struct Drain<'q> {
    queue: &'q mut BioQueue,
}

impl Iterator for Drain<'_> {
    type Item = Request;

    fn next(&mut self) -> Option<Request> {
        self.queue.remove_first()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.queue.len, Some(self.queue.len))
    }
}

impl ExactSizeIterator for Drain<'_> {}

impl IntoIterator for BioQueue {
    type Item = Request;
    type IntoIter = IntoIter;

    /// The requests, first to last; those not taken are dropped (failed with `EIO`) with
    /// the iterator.
    fn into_iter(self) -> IntoIter {
        IntoIter { queue: self }
    }
}

/// The owning iterator of a [`BioQueue`].
pub struct IntoIter {
    queue: BioQueue,
}

impl Iterator for IntoIter {
    type Item = Request;

    fn next(&mut self) -> Option<Request> {
        self.queue.remove_first()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.queue.len, Some(self.queue.len))
    }
}

impl ExactSizeIterator for IntoIter {}
