//! The `LIST` and `TAILQ` linkage of `sys/sys/queue.h`, as embedded in GEOM's structures.
//!
//! GEOM's objects are linked through these fields (a geom's providers, a provider's consumers,
//! a bio queue). Their layout must match C exactly; the helpers are the queue.h macros that the
//! runtime and the raw test classes need, written as `unsafe fn`s over raw pointers.

use core::ptr;

/// `LIST_ENTRY(T)`: next pointer and the address of the previous element's next pointer.
#[repr(C)]
#[derive(Debug)]
pub struct ListEntry<T> {
    /// `le_next`.
    pub le_next: *mut T,
    /// `le_prev`: the address of the `le_next` (or `lh_first`) that points at this element.
    pub le_prev: *mut *mut T,
}

/// `LIST_HEAD(, T)`: the first element.
#[repr(C)]
#[derive(Debug)]
pub struct ListHead<T> {
    /// `lh_first`.
    pub lh_first: *mut T,
}

/// `TAILQ_ENTRY(T)`.
#[repr(C)]
#[derive(Debug)]
pub struct TailqEntry<T> {
    /// `tqe_next`.
    pub tqe_next: *mut T,
    /// `tqe_prev`: the address of the previous element's `tqe_next` (or `tqh_first`).
    pub tqe_prev: *mut *mut T,
}

/// `TAILQ_HEAD(, T)`.
#[repr(C)]
#[derive(Debug)]
pub struct TailqHead<T> {
    /// `tqh_first`.
    pub tqh_first: *mut T,
    /// `tqh_last`: the address of the last element's `tqe_next` (or of `tqh_first`).
    pub tqh_last: *mut *mut T,
}

// queue.h: two pointers per entry, one (LIST) or two (TAILQ) per head.
static_assertions::assert_eq_size!(ListEntry<u8>, [u8; 16]);
static_assertions::assert_eq_size!(ListHead<u8>, [u8; 8]);
static_assertions::assert_eq_size!(TailqEntry<u8>, [u8; 16]);
static_assertions::assert_eq_size!(TailqHead<u8>, [u8; 16]);

impl<T> ListEntry<T> {
    /// An unlinked entry (both pointers NULL).
    pub const fn new() -> Self {
        ListEntry { le_next: ptr::null_mut(), le_prev: ptr::null_mut() }
    }
}

impl<T> Default for ListEntry<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> ListHead<T> {
    /// An empty list (`LIST_HEAD_INITIALIZER`).
    pub const fn new() -> Self {
        ListHead { lh_first: ptr::null_mut() }
    }

    /// `LIST_EMPTY`.
    pub fn is_empty(&self) -> bool {
        self.lh_first.is_null()
    }
}

impl<T> Default for ListHead<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> TailqEntry<T> {
    /// An unlinked entry.
    pub const fn new() -> Self {
        TailqEntry { tqe_next: ptr::null_mut(), tqe_prev: ptr::null_mut() }
    }
}

impl<T> Default for TailqEntry<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// `LIST_INSERT_HEAD(head, elm, field)`; `entry` maps an element to its entry field.
///
/// # Safety
/// `head` and `elm` are valid, `elm` is not on any list through this field, and `entry`
/// returns the same field for every element of the list.
pub unsafe fn list_insert_head<T>(head: *mut ListHead<T>, elm: *mut T, entry: impl Fn(*mut T) -> *mut ListEntry<T>) {
    // SAFETY: the caller guarantees head, elm and every listed element are valid.
    unsafe {
        let first = (*head).lh_first;
        (*entry(elm)).le_next = first;
        if !first.is_null() {
            (*entry(first)).le_prev = &raw mut (*entry(elm)).le_next;
        }
        (*head).lh_first = elm;
        (*entry(elm)).le_prev = &raw mut (*head).lh_first;
    }
}

/// `LIST_REMOVE(elm, field)`.
///
/// # Safety
/// `elm` is on a list through the field `entry` returns, and that list's elements are valid.
pub unsafe fn list_remove<T>(elm: *mut T, entry: impl Fn(*mut T) -> *mut ListEntry<T>) {
    // SAFETY: elm is linked, so le_prev points at a live next pointer and le_next (if any) is
    // a live element of the same list.
    unsafe {
        let e = entry(elm);
        let next = (*e).le_next;
        if !next.is_null() {
            (*entry(next)).le_prev = (*e).le_prev;
        }
        *(*e).le_prev = next;
        (*e).le_next = ptr::null_mut();
        (*e).le_prev = ptr::null_mut();
    }
}

/// Collects the elements of a `LIST` (the `LIST_FOREACH` walk) into a caller-sized buffer-free
/// iterator. Removing the current element while iterating is allowed (`LIST_FOREACH_SAFE`):
/// the next pointer is read before the element is yielded.
///
/// # Safety
/// The list and its elements stay valid, and no element after the current one is removed,
/// while the iterator is used.
pub unsafe fn list_iter<T, F>(head: *const ListHead<T>, entry: F) -> ListIter<T, F>
where
    F: Fn(*mut T) -> *mut ListEntry<T>,
{
    // SAFETY: the caller guarantees head is valid.
    let first = unsafe { (*head).lh_first };
    ListIter { next: first, entry }
}

/// Iterator returned by [`list_iter`].
pub struct ListIter<T, F> {
    next: *mut T,
    entry: F,
}

impl<T, F: Fn(*mut T) -> *mut ListEntry<T>> Iterator for ListIter<T, F> {
    type Item = *mut T;
    fn next(&mut self) -> Option<*mut T> {
        if self.next.is_null() {
            return None;
        }
        let cur = self.next;
        // SAFETY: list_iter's contract keeps cur valid until it has been yielded.
        self.next = unsafe { (*(self.entry)(cur)).le_next };
        Some(cur)
    }
}

/// `TAILQ_INIT(head)`.
///
/// # Safety
/// `head` is valid and does not move while the queue is in use.
pub unsafe fn tailq_init<T>(head: *mut TailqHead<T>) {
    // SAFETY: head is valid (caller).
    unsafe {
        (*head).tqh_first = ptr::null_mut();
        (*head).tqh_last = &raw mut (*head).tqh_first;
    }
}

/// `TAILQ_INSERT_TAIL(head, elm, field)`.
///
/// # Safety
/// `head` is initialised, `elm` is valid and not on a queue through this field.
pub unsafe fn tailq_insert_tail<T>(head: *mut TailqHead<T>, elm: *mut T, entry: impl Fn(*mut T) -> *mut TailqEntry<T>) {
    // SAFETY: head is initialised, so tqh_last points at the last next pointer.
    unsafe {
        let e = entry(elm);
        (*e).tqe_next = ptr::null_mut();
        (*e).tqe_prev = (*head).tqh_last;
        *(*head).tqh_last = elm;
        (*head).tqh_last = &raw mut (*e).tqe_next;
    }
}

/// `TAILQ_REMOVE(head, elm, field)`.
///
/// # Safety
/// `elm` is on the queue `head` through the field `entry` returns.
pub unsafe fn tailq_remove<T>(head: *mut TailqHead<T>, elm: *mut T, entry: impl Fn(*mut T) -> *mut TailqEntry<T>) {
    // SAFETY: elm is linked on head's queue (caller).
    unsafe {
        let e = entry(elm);
        let next = (*e).tqe_next;
        if next.is_null() {
            (*head).tqh_last = (*e).tqe_prev;
        } else {
            (*entry(next)).tqe_prev = (*e).tqe_prev;
        }
        *(*e).tqe_prev = next;
        (*e).tqe_next = ptr::null_mut();
        (*e).tqe_prev = ptr::null_mut();
    }
}

/// `TAILQ_INSERT_HEAD(head, elm, field)`.
///
/// # Safety
/// `head` is initialised, `elm` is valid and not on a queue through this field.
pub unsafe fn tailq_insert_head<T>(head: *mut TailqHead<T>, elm: *mut T, entry: impl Fn(*mut T) -> *mut TailqEntry<T>) {
    // SAFETY: head is initialised (caller), so tqh_first is NULL or a live element.
    unsafe {
        let e = entry(elm);
        let first = (*head).tqh_first;
        (*e).tqe_next = first;
        if first.is_null() {
            (*head).tqh_last = &raw mut (*e).tqe_next;
        } else {
            (*entry(first)).tqe_prev = &raw mut (*e).tqe_next;
        }
        (*head).tqh_first = elm;
        (*e).tqe_prev = &raw mut (*head).tqh_first;
    }
}
