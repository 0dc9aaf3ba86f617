//! Bio queues (`bioq_*`, `sys/kern/subr_disk.c`): a `TAILQ` of bios linked through their
//! `bio_queue` entry, plus FreeBSD's one-way elevator (`bioq_disksort`).
//!
//! The elevator keeps the queue sorted by the distance of each request's offset from the
//! current head position `last_offset`, measured in the scan direction, i.e. by
//! `(bio_offset - last_offset)` as an unsigned number. Requests at or after the head come
//! first in ascending order, then those behind it (they wrap around to the next sweep).
//! `bioq_takefirst`/`bioq_remove` of the head move `last_offset` to the end of the removed
//! request. `bioq_insert_tail` is a barrier: it makes the new tail the `insert_point`, and
//! sorted insertion never goes before it. `bioq_insert_head` moves `last_offset` to the new
//! head's offset so it stays first. `BIO_ORDERED` bios, and commands other than read, write
//! and delete, are queued at the tail as barriers. `batched` counts sorted insertions since
//! the last barrier; when a batch limit is set (`debug.bioq_batchsize`, 0 by default: no
//! limit) and exceeded, new bios go to the tail.
//!
//! NULL queue or bio pointers are ignored (lookups return NULL) instead of faulting.
#![deny(unsafe_op_in_unsafe_fn)]

use std::ptr;
use std::sync::atomic::{AtomicI32, Ordering};

use geom_core::sys::{
    self, bio, bio_queue_head, c_int, devstat, TailqEntry, TailqHead, BIO_DELETE, BIO_ERROR, BIO_ORDERED, BIO_READ,
    BIO_WRITE,
};

/// `debug.bioq_batchsize`: after this many sorted insertions without a barrier, bios are
/// queued at the tail. 0 (the default) means no limit.
static BIOQ_BATCHSIZE: AtomicI32 = AtomicI32::new(0);

/// Set `debug.bioq_batchsize` for the whole process (0: unlimited, FreeBSD's default).
pub fn set_batchsize(n: i32) {
    BIOQ_BATCHSIZE.store(n, Ordering::Relaxed);
}

/// `debug.bioq_batchsize`.
pub fn batchsize() -> i32 {
    BIOQ_BATCHSIZE.load(Ordering::Relaxed)
}

fn entry(bp: *mut bio) -> *mut TailqEntry<bio> {
    // Projecting to a field: no memory is read.
    bp.wrapping_byte_add(std::mem::offset_of!(bio, bio_queue)).cast()
}

fn queue(head: *mut bio_queue_head) -> *mut TailqHead<bio> {
    head.wrapping_byte_add(std::mem::offset_of!(bio_queue_head, queue)).cast()
}

/// `TAILQ_INSERT_AFTER`.
///
/// # Safety
/// `head` is an initialised queue; `after` is on it; `bp` is a live bio not on it.
unsafe fn tailq_insert_after(head: *mut bio_queue_head, after: *mut bio, bp: *mut bio) {
    let q = queue(head);
    let le = entry(after);
    let e = entry(bp);
    // SAFETY: after is linked on head's queue, so its successor (if any) is too.
    unsafe {
        let next = (*le).tqe_next;
        (*e).tqe_next = next;
        if next.is_null() {
            (*q).tqh_last = &raw mut (*e).tqe_next;
        } else {
            (*entry(next)).tqe_prev = &raw mut (*e).tqe_next;
        }
        (*le).tqe_next = bp;
        (*e).tqe_prev = &raw mut (*le).tqe_next;
    }
}

/// `bioq_init(head)`: an empty queue with the head position at 0.
///
/// # Safety
/// `head` is NULL or valid for writes and does not move while the queue is in use.
#[no_mangle]
pub unsafe extern "C" fn bioq_init(head: *mut bio_queue_head) {
    if head.is_null() {
        return;
    }
    // SAFETY: head is valid for writes (caller).
    unsafe {
        sys::tailq_init(queue(head));
        (*head).last_offset = 0;
        (*head).insert_point = ptr::null_mut();
        (*head).total = 0;
        (*head).batched = 0;
    }
}

/// `bioq_remove(head, bp)`: take `bp` off the queue. Removing the head of the queue (with no
/// barrier) moves the head position to the end of `bp`; removing the barrier clears it. A bio
/// that is not on any queue (its `bio_queue` entry unlinked) is ignored.
///
/// # Safety
/// `head` is NULL or an initialised queue; `bp` is NULL, or a live bio that is either on this
/// queue or on none.
#[no_mangle]
pub unsafe extern "C" fn bioq_remove(head: *mut bio_queue_head, bp: *mut bio) {
    if head.is_null() || bp.is_null() {
        return;
    }
    // SAFETY: head is initialised and bp is live (caller); bp is linked iff tqe_prev is set.
    unsafe {
        if (*entry(bp)).tqe_prev.is_null() {
            return;
        }
        if (*head).insert_point.is_null() {
            if bp == (*head).queue.tqh_first {
                (*head).last_offset = (*bp).bio_offset.wrapping_add((*bp).bio_length);
            }
        } else if bp == (*head).insert_point {
            (*head).insert_point = ptr::null_mut();
        }
        sys::tailq_remove(queue(head), bp, entry);
        (*head).total -= 1;
    }
}

/// `bioq_flush(head, stp, error)`: take every bio off the queue and complete it with
/// `biofinish` semantics: a non-zero `error` is stored in `bio_error` with `BIO_ERROR` set,
/// then `biodone`. `stp` (devstat) is not used on the host.
///
/// # Safety
/// `head` is NULL or an initialised queue of live bios that may be completed.
#[no_mangle]
pub unsafe extern "C" fn bioq_flush(head: *mut bio_queue_head, stp: *mut devstat, error: c_int) {
    let _ = stp;
    loop {
        // SAFETY: head is NULL or initialised (caller).
        let bp = unsafe { bioq_takefirst(head) };
        if bp.is_null() {
            break;
        }
        // SAFETY: bp is a live bio just taken off the queue; completing it is the caller's
        // intent.
        unsafe {
            if error != 0 {
                bio::set_error_of(bp, error);
                (*bp).bio_flags |= BIO_ERROR;
            }
            sys::biodone(bp);
        }
    }
}

/// `bioq_insert_head(head, bp)`: queue `bp` first; unless a barrier is set, the head position
/// becomes `bp`'s offset so that sorted insertions stay behind it.
///
/// # Safety
/// `head` is NULL or an initialised queue; `bp` is NULL or a live bio on no queue.
#[no_mangle]
pub unsafe extern "C" fn bioq_insert_head(head: *mut bio_queue_head, bp: *mut bio) {
    if head.is_null() || bp.is_null() {
        return;
    }
    // SAFETY: head is initialised, bp is live and unqueued (caller).
    unsafe {
        if (*head).insert_point.is_null() {
            (*head).last_offset = (*bp).bio_offset;
        }
        sys::tailq_insert_head(queue(head), bp, entry);
        (*head).total += 1;
        (*head).batched = 0;
    }
}

/// `bioq_insert_tail(head, bp)`: queue `bp` last, as a barrier (`insert_point`) that later
/// sorted insertions cannot pass; the head position becomes `bp`'s offset.
///
/// # Safety
/// As for [`bioq_insert_head`].
#[no_mangle]
pub unsafe extern "C" fn bioq_insert_tail(head: *mut bio_queue_head, bp: *mut bio) {
    if head.is_null() || bp.is_null() {
        return;
    }
    // SAFETY: head is initialised, bp is live and unqueued (caller).
    unsafe {
        sys::tailq_insert_tail(queue(head), bp, entry);
        (*head).total += 1;
        (*head).batched = 0;
        (*head).insert_point = bp;
        (*head).last_offset = (*bp).bio_offset;
    }
}

/// `bioq_first(head)`: the first bio, or NULL.
///
/// # Safety
/// `head` is NULL or an initialised queue.
#[no_mangle]
pub unsafe extern "C" fn bioq_first(head: *mut bio_queue_head) -> *mut bio {
    if head.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: head is initialised (caller).
    unsafe { (*head).queue.tqh_first }
}

/// `bioq_takefirst(head)`: remove and return the first bio (see [`bioq_remove`]), or NULL.
///
/// # Safety
/// `head` is NULL or an initialised queue.
#[no_mangle]
pub unsafe extern "C" fn bioq_takefirst(head: *mut bio_queue_head) -> *mut bio {
    // SAFETY: head is NULL or initialised (caller).
    let bp = unsafe { bioq_first(head) };
    if !bp.is_null() {
        // SAFETY: bp is the first bio of head's queue.
        unsafe { bioq_remove(head, bp) };
    }
    bp
}

/// The elevator's sort key: distance from the head position in the scan direction.
///
/// # Safety
/// `head` and `bp` are live.
unsafe fn key(head: *mut bio_queue_head, bp: *mut bio) -> u64 {
    // SAFETY: both are live (caller).
    unsafe { (*bp).bio_offset.wrapping_sub((*head).last_offset) as u64 }
}

/// `bioq_disksort(head, bp)`: insert `bp` in elevator order after the barrier (if any); see
/// the module documentation. Ordered bios and commands without an offset go to the tail.
///
/// # Safety
/// As for [`bioq_insert_head`].
#[no_mangle]
pub unsafe extern "C" fn bioq_disksort(head: *mut bio_queue_head, bp: *mut bio) {
    // SAFETY: forwarded from the caller.
    unsafe { disksort(head, bp, batchsize()) }
}

/// `bioq_disksort` with an explicit batch limit (0: none).
///
/// # Safety
/// As for [`bioq_insert_head`].
unsafe fn disksort(head: *mut bio_queue_head, bp: *mut bio, batch: c_int) {
    if head.is_null() || bp.is_null() {
        return;
    }
    // SAFETY: head is initialised, bp is live and unqueued, and every bio on the queue is
    // live (caller).
    unsafe {
        let cmd = (*bp).bio_cmd;
        if (*bp).bio_flags & BIO_ORDERED != 0 || !matches!(cmd, BIO_READ | BIO_WRITE | BIO_DELETE) {
            bioq_insert_tail(head, bp);
            return;
        }
        if batch > 0 && (*head).batched > batch {
            bioq_insert_tail(head, bp);
            return;
        }
        let k = key(head, bp);
        let mut prev: *mut bio = ptr::null_mut();
        let mut cur = (*head).queue.tqh_first;
        if !(*head).insert_point.is_null() {
            prev = (*head).insert_point;
            cur = (*entry(prev)).tqe_next;
        }
        while !cur.is_null() && k >= key(head, cur) {
            prev = cur;
            cur = (*entry(cur)).tqe_next;
        }
        if prev.is_null() {
            sys::tailq_insert_head(queue(head), bp, entry);
        } else {
            tailq_insert_after(head, prev, bp);
        }
        (*head).total += 1;
        (*head).batched += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geom_core::sys::{BIO_FLUSH, BIO_GETATTR};

    /// A queue and the bios made for it, freed on drop (raw pointers throughout, so the
    /// links the queue keeps stay valid).
    struct Q {
        head: *mut bio_queue_head,
        bios: Vec<*mut bio>,
    }

    impl Q {
        fn new() -> Q {
            // SAFETY: bio_queue_head is plain data; zero is a valid bit pattern.
            let head = Box::into_raw(Box::new(unsafe { std::mem::zeroed::<bio_queue_head>() }));
            // SAFETY: head is a fresh allocation that does not move.
            unsafe { bioq_init(head) };
            Q { head, bios: Vec::new() }
        }

        fn h(&mut self) -> *mut bio_queue_head {
            self.head
        }

        /// A new zeroed bio with the given command and range.
        fn bio(&mut self, cmd: u16, offset: i64, length: i64) -> *mut bio {
            // SAFETY: struct bio is zero-valid (NULL pointers, no callbacks).
            let mut b: Box<bio> = Box::new(unsafe { std::mem::zeroed() });
            b.bio_cmd = cmd;
            b.bio_offset = offset;
            b.bio_length = length;
            let p = Box::into_raw(b);
            self.bios.push(p);
            p
        }

        fn offsets(&mut self) -> Vec<i64> {
            let mut v = Vec::new();
            // SAFETY: the queue and its bios are live.
            unsafe {
                let mut bp = bioq_first(self.h());
                let mut prev = &raw mut (*self.h()).queue.tqh_first;
                while !bp.is_null() {
                    assert_eq!((*entry(bp)).tqe_prev, prev, "broken back link");
                    v.push((*bp).bio_offset);
                    prev = &raw mut (*entry(bp)).tqe_next;
                    bp = (*entry(bp)).tqe_next;
                }
                assert_eq!((*self.h()).queue.tqh_last, prev, "broken tail pointer");
                assert_eq!((*self.h()).total as usize, v.len());
            }
            v
        }

        fn sort(&mut self, bp: *mut bio, batch: c_int) {
            // SAFETY: live queue and a fresh bio of ours.
            unsafe { disksort(self.head, bp, batch) };
        }

        fn take(&mut self) -> Option<i64> {
            // SAFETY: the queue is live.
            let bp = unsafe { bioq_takefirst(self.h()) };
            // SAFETY: a returned bio is one of ours.
            (!bp.is_null()).then(|| unsafe { (*bp).bio_offset })
        }
    }

    impl Drop for Q {
        fn drop(&mut self) {
            // SAFETY: every pointer came from Box::into_raw and is freed once; the queue is
            // not used afterwards.
            unsafe {
                for &b in &self.bios {
                    drop(Box::from_raw(b));
                }
                drop(Box::from_raw(self.head));
            }
        }
    }

    #[test]
    fn fifo_head_tail() {
        let mut q = Q::new();
        let h = q.h();
        for off in [10, 20, 30] {
            let b = q.bio(BIO_READ, off, 1);
            // SAFETY: live queue and fresh bio.
            unsafe { bioq_insert_tail(h, b) };
        }
        let b = q.bio(BIO_READ, 5, 1);
        // SAFETY: as above.
        unsafe { bioq_insert_head(h, b) };
        assert_eq!(q.offsets(), [5, 10, 20, 30]);
        assert_eq!(q.take(), Some(5));
        assert_eq!(q.take(), Some(10));
        assert_eq!(q.take(), Some(20));
        assert_eq!(q.take(), Some(30));
        assert_eq!(q.take(), None);
        // SAFETY: the queue is live and empty.
        unsafe {
            assert!(bioq_first(h).is_null());
            assert_eq!((*h).queue.tqh_last, &raw mut (*h).queue.tqh_first);
            assert!((*h).insert_point.is_null(), "removing the barrier clears it");
        }
    }

    #[test]
    fn elevator_sorts_in_scan_direction() {
        let mut q = Q::new();
        let h = q.h();
        // Head at 0: everything sorts ascending.
        for off in [40, 10, 30, 20, 50] {
            let b = q.bio(BIO_WRITE, off, 10);
            // SAFETY: live queue and fresh bio.
            unsafe { bioq_disksort(h, b) };
        }
        assert_eq!(q.offsets(), [10, 20, 30, 40, 50]);
        // SAFETY: live queue.
        unsafe { assert_eq!((*h).batched, 5) };
        // Taking 10 moves the head to 20 (offset + length).
        assert_eq!(q.take(), Some(10));
        // SAFETY: live queue.
        unsafe { assert_eq!((*h).last_offset, 20) };
        // 15 is behind the head: it waits for the next sweep, after 50.
        let b = q.bio(BIO_READ, 15, 1);
        // SAFETY: as above.
        unsafe { bioq_disksort(h, b) };
        let b = q.bio(BIO_DELETE, 35, 1);
        // SAFETY: as above.
        unsafe { bioq_disksort(h, b) };
        let b = q.bio(BIO_READ, 5, 1);
        // SAFETY: as above.
        unsafe { bioq_disksort(h, b) };
        assert_eq!(q.offsets(), [20, 30, 35, 40, 50, 5, 15]);
        // Equal keys keep arrival order (insertion after equals).
        let b = q.bio(BIO_READ, 30, 2);
        // SAFETY: as above.
        unsafe { bioq_disksort(h, b) };
        let v: Vec<i64> = q.offsets();
        assert_eq!(v, [20, 30, 30, 35, 40, 50, 5, 15]);
        // SAFETY: the second 30 is the one with length 2.
        unsafe {
            let second = (*entry(bioq_first(h))).tqe_next;
            let third = (*entry(second)).tqe_next;
            assert_eq!((*second).bio_length, 10);
            assert_eq!((*third).bio_length, 2);
        }
    }

    #[test]
    fn barriers() {
        let mut q = Q::new();
        let h = q.h();
        for off in [30, 10] {
            let b = q.bio(BIO_READ, off, 1);
            // SAFETY: live queue and fresh bio.
            unsafe { bioq_disksort(h, b) };
        }
        // A flush is a barrier at the tail; later sorted bios cannot pass it.
        let f = q.bio(BIO_FLUSH, 0, 0);
        // SAFETY: as above.
        unsafe { bioq_disksort(h, f) };
        // SAFETY: live queue.
        unsafe { assert_eq!((*h).insert_point, f) };
        let b = q.bio(BIO_READ, 5, 1);
        // SAFETY: as above.
        unsafe { bioq_disksort(h, b) };
        assert_eq!(q.offsets(), [10, 30, 0, 5]);
        // An ordered write is a barrier too.
        let o = q.bio(BIO_WRITE, 100, 1);
        // SAFETY: o is ours and not queued yet.
        unsafe {
            (*o).bio_flags |= BIO_ORDERED;
            bioq_disksort(h, o);
        }
        let b = q.bio(BIO_READ, 1, 1);
        // SAFETY: as above.
        unsafe { bioq_disksort(h, b) };
        let g = q.bio(BIO_GETATTR, 7, 0);
        // SAFETY: as above.
        unsafe { bioq_disksort(h, g) };
        assert_eq!(q.offsets(), [10, 30, 0, 5, 100, 1, 7]);
        // Removing the barrier in the middle clears insert_point only when it is the barrier.
        // SAFETY: f and g are on the queue.
        unsafe {
            bioq_remove(h, f);
            assert_eq!((*h).insert_point, g);
            bioq_remove(h, g);
            assert!((*h).insert_point.is_null());
            // Removing an unqueued bio is ignored.
            bioq_remove(h, g);
        }
        assert_eq!(q.offsets(), [10, 30, 5, 100, 1]);
    }

    #[test]
    fn insert_head_stays_first() {
        let mut q = Q::new();
        let h = q.h();
        let b = q.bio(BIO_READ, 500, 1);
        // SAFETY: live queue and fresh bios.
        unsafe { bioq_insert_head(h, b) };
        for off in [100, 900, 600] {
            let b = q.bio(BIO_READ, off, 1);
            // SAFETY: as above.
            unsafe { bioq_disksort(h, b) };
        }
        assert_eq!(q.offsets(), [500, 600, 900, 100]);
    }

    #[test]
    fn batch_limit() {
        let mut q = Q::new();
        for off in [50, 40, 30, 20, 10] {
            let b = q.bio(BIO_READ, off, 1);
            q.sort(b, 2);
        }
        // Three sorted (batched becomes 3 > 2), then 20 goes to the tail as a barrier (batch
        // reset), then 10 sorts after the barrier.
        assert_eq!(q.offsets(), [30, 40, 50, 20, 10]);
    }

    #[test]
    fn null_arguments_are_ignored() {
        // SAFETY: NULL is accepted by every bioq function.
        unsafe {
            bioq_init(ptr::null_mut());
            bioq_insert_tail(ptr::null_mut(), ptr::null_mut());
            bioq_disksort(ptr::null_mut(), ptr::null_mut());
            assert!(bioq_first(ptr::null_mut()).is_null());
            assert!(bioq_takefirst(ptr::null_mut()).is_null());
            bioq_flush(ptr::null_mut(), ptr::null_mut(), 5);
        }
    }
}
