//! Malloc types and memory owned through them.
//!
//! FreeBSD accounts every `malloc(9)` allocation to a *malloc type*, a static declared with
//! `MALLOC_DEFINE` and registered with the kernel when the module loads (`vmstat -m` lists
//! them, and unloading a module whose type still holds memory prints a leak warning).
//! [`malloc_define!`](crate::malloc_define) declares one here, with the same `SYSINIT` /
//! `SYSUNINIT` records, and two owners allocate through it:
//!
//! * [`KBox<T>`]: one `T` in memory of the type, dropped and freed with the box.
//! * [`KBuf`]: a byte buffer of the type.
//!
//! Each comes two ways, and the context token decides which one a piece of code may use:
//!
//! | constructor | takes | `malloc` flag | on shortage |
//! |---|---|---|---|
//! | `try_new`, `try_zeroed`, `try_from_slice` | `&IoCtx` | `M_NOWAIT` | `Err(Errno::ENOMEM)` |
//! | `new`, `zeroed`, `from_slice` | `&impl MayWait` | `M_WAITOK` | sleeps until memory is free |
//!
//! start and done only ever hold an [`IoCtx`], which is not [`MayWait`], so waiting for
//! memory from the I/O path does not compile:
//!
//! ```compile_fail,E0277
//! use geom_core::{IoCtx, KBox};
//! geom_core::malloc_define!(M_EXAMPLE, "example", "an example type");
//!
//! fn start(cx: &IoCtx) {
//!     let b = KBox::new(cx, &M_EXAMPLE, 0u64); // IoCtx: MayWait is not satisfied
//!     drop(b);
//! }
//! # fn main() {}
//! ```
//!
//! Alignment: `malloc(9)` on amd64 aligns every allocation to at least
//! [`sys::MALLOC_MIN_ALIGN`] (16) bytes, and so does geom-host's; a `KBox<T>` of a type that
//! needs more does not compile:
//!
//! ```compile_fail,E0080
//! use geom_core::{KBox, Topology};
//! geom_core::malloc_define!(M_EXAMPLE, "example", "an example type");
//!
//! #[repr(align(64))]
//! struct CacheLine([u8; 64]);
//!
//! fn make(topo: &Topology) -> KBox<CacheLine> {
//!     KBox::new(topo, &M_EXAMPLE, CacheLine([0; 64]))
//! }
//! # fn main() { let f: fn(&Topology) -> KBox<CacheLine> = make; let _ = f; }
//! ```
//!
//! Zero-sized values and empty buffers allocate nothing and never fail.

use core::ffi::CStr;
use core::fmt;
use core::marker::PhantomData;
use core::mem::{align_of, size_of, ManuallyDrop};
use core::ops::{Deref, DerefMut};
use core::ptr::{self, NonNull};

use crate::context::{IoCtx, MayWait};
use crate::error::{Errno, Result};
use crate::sys::{self, c_int, c_void, malloc_type, KernelCell};

/// A malloc type: what `MALLOC_DEFINE(M_FOO, "foo", "...")` declares. Declare one with
/// [`malloc_define!`](crate::malloc_define), which also emits the records that register it
/// with the kernel when the module loads and unregister it when the module unloads.
///
/// Invariant: `raw` is a `struct malloc_type` whose `ks_version` is the target release's
/// `M_VERSION` and whose `ks_shortdesc` is `name`; after `malloc_init` the kernel owns its
/// other fields, so Rust only ever hands out the raw pointer.
pub struct MallocType {
    raw: KernelCell<malloc_type>,
    name: &'static CStr,
}

impl MallocType {
    /// A malloc type named `shortdesc` (what `vmstat -m` shows; FreeBSD's convention is a
    /// short word without spaces). Prefer [`malloc_define!`](crate::malloc_define), which
    /// also registers it.
    pub const fn new(shortdesc: &'static CStr) -> MallocType {
        MallocType { raw: KernelCell::new(malloc_type::new(shortdesc.as_ptr())), name: shortdesc }
    }

    /// The `struct malloc_type *` the kernel sees.
    pub const fn as_ptr(&self) -> *mut malloc_type {
        self.raw.get()
    }

    /// The argument the `SYSINIT` / `SYSUNINIT` records pass to `malloc_init` /
    /// `malloc_uninit`: the type's address.
    pub const fn sysinit_arg(&'static self) -> *const c_void {
        self.raw.get() as *const c_void
    }

    /// The short description.
    pub fn name(&self) -> &'static CStr {
        self.name
    }
}

impl fmt::Debug for MallocType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MallocType({:?})", self.name)
    }
}

/// `MALLOC_DEFINE(M_NAME, "shortdesc", "longdesc")`: declare `static M_NAME: MallocType`,
/// plus the `SYSINIT` (`SI_SUB_KMEM`, `SI_ORDER_THIRD`) that calls the kernel's
/// `malloc_init(M_NAME)` when the module loads and the `SYSUNINIT` (`SI_SUB_KMEM`,
/// `SI_ORDER_ANY`) that calls `malloc_uninit(M_NAME)` when it unloads, as FreeBSD's macro
/// in `sys/sys/malloc.h` does. The long description becomes the static's documentation.
///
/// The expansion contains no `unsafe` block, so it compiles in a class crate with
/// `#![deny(unsafe_code)]`. (The example only compiles: the records name `malloc_init`, which
/// the kernel or geom-host provides at link time.)
///
/// ```no_run
/// #![deny(unsafe_code)]
/// geom_core::malloc_define!(pub M_NOPBUF, "nop_data", "NOP buffers");
///
/// assert_eq!(M_NOPBUF.name(), c"nop_data");
/// ```
#[macro_export]
macro_rules! malloc_define {
    ($(#[$attr:meta])* $vis:vis $name:ident, $shortdesc:literal, $longdesc:literal $(,)?) => {
        #[doc = $longdesc]
        $(#[$attr])*
        $vis static $name: $crate::MallocType = $crate::MallocType::new(
            match ::core::ffi::CStr::from_bytes_with_nul(::core::concat!($shortdesc, "\0").as_bytes()) {
                ::core::result::Result::Ok(s) => s,
                ::core::result::Result::Err(_) => ::core::panic!("a malloc type's name must not contain NUL"),
            },
        );
        const _: () = {
            $crate::sysinit!(
                MALLOC_INIT,
                $crate::sys::SI_SUB_KMEM,
                $crate::sys::SI_ORDER_THIRD,
                $crate::sys::malloc_init,
                $name.sysinit_arg()
            );
            $crate::sysuninit!(
                MALLOC_UNINIT,
                $crate::sys::SI_SUB_KMEM,
                $crate::sys::SI_ORDER_ANY,
                $crate::sys::malloc_uninit,
                $name.sysinit_arg()
            );
        };
    };
}

/// `malloc(size, mt, flags)`: `None` only with `M_NOWAIT`.
fn malloc(mt: &MallocType, size: usize, flags: c_int) -> Option<NonNull<u8>> {
    if size > isize::MAX as usize {
        return None;
    }
    // SAFETY: malloc has no preconditions beyond its flags; the type is a live static, and
    // the callers pass M_WAITOK only when they hold a MayWait token.
    NonNull::new(unsafe { sys::platform::geom_rs_malloc(size, mt.as_ptr(), flags) }.cast::<u8>())
}

/// `malloc(size, mt, M_WAITOK | extra)`, which cannot fail.
fn malloc_wait(mt: &MallocType, size: usize, extra: c_int) -> NonNull<u8> {
    match malloc(mt, size, sys::M_WAITOK | extra) {
        Some(p) => p,
        None => die(b"geom-rs: malloc(M_WAITOK) returned NULL (an impossible size?)\n"),
    }
}

/// `free(p, mt)`.
///
/// # Safety
/// `p` came from `malloc` with `mt` and is not used again.
unsafe fn free(p: NonNull<u8>, mt: &MallocType) {
    // SAFETY: caller's contract.
    unsafe { sys::platform::geom_rs_free(p.as_ptr().cast(), mt.as_ptr()) }
}

/// `panic(9)` with a fixed message.
pub(crate) fn die(msg: &[u8]) -> ! {
    // SAFETY: a valid message; panic does not return.
    unsafe { sys::platform::geom_rs_panic(msg.as_ptr(), msg.len()) }
}

/// One `T` in memory of a malloc type: the `malloc(sizeof(T), M_X, flags)` + `free` pair,
/// owned. Dropping the box drops the value and frees the memory (which never sleeps, so a
/// box may be dropped anywhere, start and done included).
///
/// Invariant: `ptr` points at an initialised `T` in memory allocated from `mt` and owned by
/// this box; for a zero-sized `T` it is dangling and nothing was allocated.
///
/// ```no_run
/// use geom_core::{IoCtx, KBox, Result, Topology};
/// geom_core::malloc_define!(M_EXAMPLE, "example", "an example type");
///
/// struct Stats { reads: u64 }
///
/// // In start: no waiting, a shortage is ENOMEM.
/// fn in_start(cx: &IoCtx) -> Result<KBox<Stats>> {
///     KBox::try_new(cx, &M_EXAMPLE, Stats { reads: 0 })
/// }
///
/// // In taste or ctlreq: the topology token may wait for memory.
/// fn in_taste(topo: &Topology) -> KBox<Stats> {
///     KBox::new(topo, &M_EXAMPLE, Stats { reads: 0 })
/// }
/// ```
pub struct KBox<T> {
    ptr: NonNull<T>,
    mt: &'static MallocType,
    _owns: PhantomData<T>,
}

// SAFETY: the box owns its T like Box does; the malloc type is a shared static.
unsafe impl<T: Send> Send for KBox<T> {}
// SAFETY: as above; &KBox only gives &T.
unsafe impl<T: Sync> Sync for KBox<T> {}

impl<T> KBox<T> {
    /// `malloc(9)`'s alignment is enough for `T`: checked when the box type is used.
    const FITS: () = assert!(
        align_of::<T>() <= sys::MALLOC_MIN_ALIGN,
        "malloc(9) aligns to 16 bytes; a KBox cannot hold a type that needs more (use a Zone)"
    );

    /// Allocate without sleeping (`M_NOWAIT`): for start and done. `Err(ENOMEM)` when memory
    /// is short; `value` is dropped then.
    pub fn try_new(cx: &IoCtx, mt: &'static MallocType, value: T) -> Result<KBox<T>> {
        KBox::try_new_or_back(cx, mt, value).map_err(|_| Errno::ENOMEM)
    }

    /// Like [`KBox::try_new`], but a failure hands `value` back.
    pub fn try_new_or_back(_cx: &IoCtx, mt: &'static MallocType, value: T) -> core::result::Result<KBox<T>, T> {
        let () = Self::FITS;
        if size_of::<T>() == 0 {
            return Ok(KBox::place(NonNull::dangling(), mt, value));
        }
        match malloc(mt, size_of::<T>(), sys::M_NOWAIT) {
            Some(p) => Ok(KBox::place(p.cast(), mt, value)),
            None => Err(value),
        }
    }

    /// Allocate, waiting for memory if need be (`M_WAITOK`): needs a context that may wait.
    pub fn new(_cx: &impl MayWait, mt: &'static MallocType, value: T) -> KBox<T> {
        let () = Self::FITS;
        if size_of::<T>() == 0 {
            return KBox::place(NonNull::dangling(), mt, value);
        }
        KBox::place(malloc_wait(mt, size_of::<T>(), 0).cast(), mt, value)
    }

    fn place(ptr: NonNull<T>, mt: &'static MallocType, value: T) -> KBox<T> {
        // SAFETY: ptr is fresh memory for one T (or dangling for a ZST), aligned: malloc
        // aligns to MALLOC_MIN_ALIGN >= align_of::<T>() (FITS).
        unsafe { ptr.as_ptr().write(value) };
        KBox { ptr, mt, _owns: PhantomData }
    }

    /// The malloc type the value lives in.
    pub fn malloc_type(this: &KBox<T>) -> &'static MallocType {
        this.mt
    }

    /// Move the value out and free the memory.
    pub fn into_inner(this: KBox<T>) -> T {
        let this = ManuallyDrop::new(this);
        // SAFETY: the box owns an initialised T; it is read once, then only the memory is
        // freed (the box is not dropped).
        unsafe {
            let v = this.ptr.as_ptr().read();
            this.release();
            v
        }
    }

    /// Free the memory without dropping the value.
    ///
    /// # Safety
    /// The value was moved out or dropped already; the box is not used afterwards.
    unsafe fn release(&self) {
        if size_of::<T>() != 0 {
            // SAFETY: allocated from self.mt by place's callers (invariant).
            unsafe { free(self.ptr.cast(), self.mt) };
        }
    }

    /// Give up the box: its value's address (the memory stays allocated).
    pub(crate) fn into_raw(this: KBox<T>) -> NonNull<T> {
        ManuallyDrop::new(this).ptr
    }

    /// Take a box back from [`KBox::into_raw`].
    ///
    /// # Safety
    /// `ptr` came from `into_raw` of a box of type `mt`, and is taken back once.
    pub(crate) unsafe fn from_raw(ptr: NonNull<T>, mt: &'static MallocType) -> KBox<T> {
        KBox { ptr, mt, _owns: PhantomData }
    }
}

impl<T> Deref for KBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: an initialised T owned by the box (invariant).
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for KBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, and &mut self makes the access exclusive.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T> Drop for KBox<T> {
    fn drop(&mut self) {
        // SAFETY: the value is initialised and owned (invariant); it is dropped once, then
        // its memory freed once.
        unsafe {
            ptr::drop_in_place(self.ptr.as_ptr());
            self.release();
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for KBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A byte buffer in memory of a malloc type: `malloc(len, M_X, flags)` + `free`, owned,
/// readable and writable as a `[u8]`.
///
/// A buffer always holds initialised bytes: it is made zeroed (`M_ZERO`) or as a copy of a
/// slice. (Handing out uninitialised kernel memory as a `&[u8]` would be undefined behaviour
/// in Rust, so there is no constructor that skips both.)
///
/// Invariant: `ptr` points at `len` initialised bytes allocated from `mt` and owned by the
/// buffer; for `len == 0` it is dangling and nothing was allocated.
///
/// ```no_run
/// use geom_core::{IoCtx, KBuf, Result};
/// geom_core::malloc_define!(M_EXAMPLE, "example", "an example type");
///
/// fn metadata_sector(cx: &IoCtx, magic: &[u8]) -> Result<KBuf> {
///     let mut sector = KBuf::try_zeroed(cx, &M_EXAMPLE, 512)?;
///     sector[..magic.len()].copy_from_slice(magic);
///     Ok(sector)
/// }
/// ```
pub struct KBuf {
    ptr: NonNull<u8>,
    len: usize,
    mt: &'static MallocType,
}

// SAFETY: plain bytes owned by the buffer.
unsafe impl Send for KBuf {}
// SAFETY: as above; &KBuf only gives &[u8].
unsafe impl Sync for KBuf {}

impl KBuf {
    /// `len` zero bytes, without sleeping (`M_NOWAIT | M_ZERO`): `Err(ENOMEM)` when memory
    /// is short.
    pub fn try_zeroed(_cx: &IoCtx, mt: &'static MallocType, len: usize) -> Result<KBuf> {
        if len == 0 {
            return Ok(KBuf::empty(mt));
        }
        let p = malloc(mt, len, sys::M_NOWAIT | sys::M_ZERO).ok_or(Errno::ENOMEM)?;
        Ok(KBuf { ptr: p, len, mt })
    }

    /// `len` zero bytes, waiting for memory if need be (`M_WAITOK | M_ZERO`).
    pub fn zeroed(_cx: &impl MayWait, mt: &'static MallocType, len: usize) -> KBuf {
        if len == 0 {
            return KBuf::empty(mt);
        }
        KBuf { ptr: malloc_wait(mt, len, sys::M_ZERO), len, mt }
    }

    /// A copy of `data`, without sleeping (`M_NOWAIT`): `Err(ENOMEM)` when memory is short.
    pub fn try_from_slice(_cx: &IoCtx, mt: &'static MallocType, data: &[u8]) -> Result<KBuf> {
        if data.is_empty() {
            return Ok(KBuf::empty(mt));
        }
        let p = malloc(mt, data.len(), sys::M_NOWAIT).ok_or(Errno::ENOMEM)?;
        Ok(KBuf::copied(p, mt, data))
    }

    /// A copy of `data`, waiting for memory if need be (`M_WAITOK`).
    pub fn from_slice(_cx: &impl MayWait, mt: &'static MallocType, data: &[u8]) -> KBuf {
        if data.is_empty() {
            return KBuf::empty(mt);
        }
        KBuf::copied(malloc_wait(mt, data.len(), 0), mt, data)
    }

    fn empty(mt: &'static MallocType) -> KBuf {
        KBuf { ptr: NonNull::dangling(), len: 0, mt }
    }

    fn copied(p: NonNull<u8>, mt: &'static MallocType, data: &[u8]) -> KBuf {
        // SAFETY: p is fresh memory of data.len() bytes, not overlapping data.
        unsafe { ptr::copy_nonoverlapping(data.as_ptr(), p.as_ptr(), data.len()) };
        KBuf { ptr: p, len: data.len(), mt }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Is it empty?
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The malloc type it lives in.
    pub fn malloc_type(&self) -> &'static MallocType {
        self.mt
    }

    /// The address of its first byte (what a bio's `bio_data` points at).
    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Deref for KBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: len initialised bytes owned by the buffer (invariant).
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for KBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above; &mut self makes the access exclusive.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for KBuf {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: allocated from self.mt (invariant), freed once.
            unsafe { free(self.ptr, self.mt) };
        }
    }
}

impl fmt::Debug for KBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KBuf({} bytes of {:?})", self.len, self.mt.name)
    }
}
