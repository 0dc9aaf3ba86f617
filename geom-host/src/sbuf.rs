//! `sbuf(9)` in userland: the string buffers GEOM classes write their XML configuration,
//! error messages and bio descriptions into.
//!
//! The exported functions keep FreeBSD's semantics (`sys/kern/subr_sbuf.c`):
//!
//! * `sbuf_new(NULL, NULL, 0, SBUF_AUTOEXTEND)` allocates a growable buffer; with a caller's
//!   `buf` and `SBUF_FIXEDLEN` the capacity is fixed and one byte is always kept for the NUL.
//! * Running out of room (a fixed buffer full, or memory exhausted) stores as much as fits,
//!   records `ENOMEM` as the sbuf's error and makes every later append fail with -1;
//!   `sbuf_finish` then returns that error and `sbuf_len` returns -1. `sbuf_clear` resets it.
//! * `SBUF_INCLUDENUL` counts the terminating NUL in the length after `sbuf_finish`.
//!
//! Where FreeBSD would trip an `INVARIANTS` assertion (appending to a finished sbuf, a
//! negative length, a NULL string), these functions refuse the call instead: appends return
//! -1, constructors return NULL. Drains (`sbuf_set_drain`) are not implemented.
//!
//! `struct sbuf` is opaque to class code ([`sys::sbuf`]); the host lays out its own private
//! structure behind the pointer, small enough to fit in the storage of a real FreeBSD
//! `struct sbuf` (72 bytes on amd64; callers that pass their own `s` must give at least 64
//! bytes, 8-byte aligned).
//!
//! [`Sbuf`] is the owning Rust wrapper the runtime uses.
#![deny(unsafe_op_in_unsafe_fn)]

use std::alloc::{self, Layout};
use std::fmt;
use std::ptr::{self, NonNull};

use geom_core::sys::{self, c_char, c_int, c_void, errno};

/// `SBUF_FIXEDLEN`: fixed-size buffer (the default).
pub const SBUF_FIXEDLEN: c_int = 0x0000_0000;
/// `SBUF_AUTOEXTEND`: grow the buffer as needed.
pub const SBUF_AUTOEXTEND: c_int = 0x0000_0001;
/// `SBUF_INCLUDENUL`: after `sbuf_finish`, the NUL is counted in `sbuf_len`.
pub const SBUF_INCLUDENUL: c_int = 0x0000_0002;
/// `SBUF_DRAINTOEOR`: accepted and ignored (drains are not implemented).
pub const SBUF_DRAINTOEOR: c_int = 0x0000_0004;
/// `SBUF_NOWAIT`: accepted and ignored (host allocation never sleeps).
pub const SBUF_NOWAIT: c_int = 0x0000_0008;
/// `SBUF_USRFLAGMSK`: the flags a caller may pass to `sbuf_new`.
pub const SBUF_USRFLAGMSK: c_int = 0x0000_ffff;

/// Internal flag: `s_buf` was allocated here and is freed by `sbuf_delete`.
const SBUF_DYNAMIC: c_int = 0x0001_0000;
/// Internal flag: set by `sbuf_finish`.
const SBUF_FINISHED: c_int = 0x0002_0000;
/// Internal flag: the structure itself was allocated here.
const SBUF_DYNSTRUCT: c_int = 0x0008_0000;

/// Smallest fixed buffer: one byte of text and the NUL (`SBUF_MINSIZE`).
const SBUF_MINSIZE: isize = 2;
/// Smallest growable buffer (`SBUF_MINEXTENDSIZE`).
const SBUF_MINEXTENDSIZE: isize = 16;
/// Growable buffers double up to this size, then grow in steps of it (`PAGE_SIZE`).
const SBUF_MAXEXTENDSIZE: isize = 4096;

/// Marks a live host sbuf, so a zeroed, deleted or foreign structure is refused.
const SBUF_MAGIC: u32 = 0x5342_5546;

/// The host's `struct sbuf`. Private: class code only ever holds a pointer to it.
#[repr(C)]
struct HostSbuf {
    /// The storage (`s_size` bytes).
    s_buf: *mut u8,
    /// Size of `s_buf` in bytes.
    s_size: isize,
    /// Bytes of text, not counting the NUL (unless `SBUF_INCLUDENUL` and finished).
    s_len: isize,
    /// 0, or the first error (`ENOMEM`).
    s_error: c_int,
    /// `SBUF_*` flags.
    s_flags: c_int,
    /// `SBUF_MAGIC` while the sbuf is live.
    s_magic: u32,
}

/// What a caller must provide when it passes its own `struct sbuf` storage to `sbuf_new`.
/// FreeBSD's own `struct sbuf` is 72 bytes on amd64 (`sys/sys/sbuf.h`: buffer, drain function
/// and argument, error, size, length, flags, section length, record offset), so any storage
/// declared for the real structure is large enough.
pub const SBUF_STORAGE_SIZE: usize = 64;

static_assertions::const_assert!(std::mem::size_of::<HostSbuf>() <= SBUF_STORAGE_SIZE);
static_assertions::const_assert!(std::mem::align_of::<HostSbuf>() <= 8);

impl HostSbuf {
    fn has(&self, flag: c_int) -> bool {
        self.s_flags & flag != 0
    }

    /// Bytes that can still be appended before the buffer is full (one is kept for the NUL).
    fn free_space(&self) -> isize {
        self.s_size - (self.s_len + 1)
    }

    /// The text written so far.
    fn bytes(&self) -> &[u8] {
        let mut len = self.s_len;
        if self.has(SBUF_INCLUDENUL) && self.has(SBUF_FINISHED) && len > 0 {
            len -= 1;
        }
        if self.s_buf.is_null() || len <= 0 {
            return &[];
        }
        // SAFETY: the first s_len bytes of s_buf were written by put_bytes or finish (s_len
        // only grows by what was written; clear, setpos and trim only shrink it), and
        // s_len <= s_size.
        unsafe { std::slice::from_raw_parts(self.s_buf, len as usize) }
    }

    /// Grow a growable buffer so that at least `addlen` more bytes fit (`sbuf_extend`).
    fn extend(&mut self, addlen: isize) -> Result<(), ()> {
        if !self.has(SBUF_AUTOEXTEND) {
            return Err(());
        }
        let want = self.s_size.checked_add(addlen).ok_or(())?;
        let newsize = extend_size(want).ok_or(())?;
        let newbuf = alloc_bytes(newsize).ok_or(())?;
        if self.s_size > 0 {
            // SAFETY: both buffers are valid for s_size bytes (newsize > s_size) and distinct.
            unsafe { ptr::copy_nonoverlapping(self.s_buf, newbuf, self.s_size as usize) };
        }
        if self.has(SBUF_DYNAMIC) {
            // SAFETY: a DYNAMIC buffer was allocated by alloc_bytes with exactly s_size bytes.
            unsafe { free_bytes(self.s_buf, self.s_size) };
        } else {
            self.s_flags |= SBUF_DYNAMIC;
        }
        self.s_buf = newbuf;
        self.s_size = newsize;
        Ok(())
    }

    /// Append bytes (`sbuf_put_bytes`): as much as fits; `ENOMEM` once nothing more does.
    fn put_bytes(&mut self, mut data: &[u8]) -> c_int {
        if self.has(SBUF_FINISHED) {
            // FreeBSD asserts here under INVARIANTS; refuse the append instead.
            return -1;
        }
        if self.s_error != 0 {
            return -1;
        }
        while !data.is_empty() {
            if self.free_space() <= 0 {
                let want = isize::try_from(data.len()).unwrap_or(isize::MAX);
                if self.extend(want).is_err() {
                    self.s_error = errno::ENOMEM;
                    return -1;
                }
            }
            let n = (self.free_space() as usize).min(data.len());
            // SAFETY: s_buf has free_space() >= n writable bytes after s_len; data is a
            // separate Rust slice of at least n bytes.
            unsafe { ptr::copy_nonoverlapping(data.as_ptr(), self.s_buf.add(self.s_len as usize), n) };
            self.s_len += n as isize;
            data = &data[n..];
        }
        0
    }

    /// `sbuf_clear`.
    fn clear(&mut self) {
        self.s_flags &= !SBUF_FINISHED;
        self.s_error = 0;
        self.s_len = 0;
    }

    /// `sbuf_finish`.
    fn finish(&mut self) -> c_int {
        if self.has(SBUF_FINISHED) {
            return self.s_error;
        }
        // SAFETY: s_len < s_size always holds before finishing (one byte is kept free).
        unsafe { *self.s_buf.add(self.s_len as usize) = 0 };
        if self.has(SBUF_INCLUDENUL) {
            self.s_len += 1;
        }
        self.s_flags |= SBUF_FINISHED;
        self.s_error
    }
}

/// `sbuf_extendsize`: the size a growable buffer grows to so that `size` bytes fit.
fn extend_size(size: isize) -> Option<isize> {
    if size < SBUF_MAXEXTENDSIZE {
        let mut n = SBUF_MINEXTENDSIZE;
        while n < size {
            n *= 2;
        }
        Some(n)
    } else {
        let step = SBUF_MAXEXTENDSIZE;
        size.checked_add(step - 1).map(|s| s & !(step - 1))
    }
}

/// A zeroed byte buffer of `size` (> 0) bytes, or None when memory is short.
fn alloc_bytes(size: isize) -> Option<*mut u8> {
    let layout = Layout::array::<u8>(usize::try_from(size).ok()?).ok()?;
    if layout.size() == 0 {
        return None;
    }
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { alloc::alloc_zeroed(layout) };
    (!p.is_null()).then_some(p)
}

/// Free a buffer from [`alloc_bytes`].
///
/// # Safety
/// `p` came from `alloc_bytes(size)` with this `size` and is not used afterwards.
unsafe fn free_bytes(p: *mut u8, size: isize) {
    // The layout was valid when the buffer was allocated, so it is valid now.
    if let Ok(layout) = Layout::array::<u8>(size as usize) {
        // SAFETY: p was allocated with this layout (caller).
        unsafe { alloc::dealloc(p, layout) };
    }
}

/// The live host sbuf behind `s`, or None for NULL or a structure that is not one.
///
/// # Safety
/// `s` is NULL or points at readable storage of at least [`SBUF_STORAGE_SIZE`] bytes, 8-byte
/// aligned, that nobody else accesses for `'a`.
unsafe fn host<'a>(s: *const sys::sbuf) -> Option<&'a mut HostSbuf> {
    let p = s.cast::<HostSbuf>().cast_mut();
    if p.is_null() || !p.is_aligned() {
        return None;
    }
    // SAFETY: p is non-NULL and aligned, and points at enough readable storage (caller); the
    // magic check below refuses storage that was never initialised by sbuf_new.
    let h = unsafe { &mut *p };
    (h.s_magic == SBUF_MAGIC && !h.s_buf.is_null()).then_some(h)
}

/// `sbuf_new(s, buf, length, flags)`: initialise an sbuf.
///
/// `s` NULL allocates the structure (freed by `sbuf_delete`). `buf` NULL allocates a buffer
/// of `length` bytes (rounded up for `SBUF_AUTOEXTEND`); otherwise `buf` must hold `length`
/// (at least 2) bytes. Returns `s` (or the new structure), or NULL when the arguments are bad
/// or memory is short.
///
/// # Safety
/// `s` is NULL or points at at least [`SBUF_STORAGE_SIZE`] writable bytes, 8-byte aligned,
/// that stay valid until `sbuf_delete`. `buf` is NULL or valid for `length` bytes of writes
/// until `sbuf_delete`.
#[no_mangle]
pub unsafe extern "C" fn sbuf_new(s: *mut sys::sbuf, buf: *mut c_char, length: c_int, flags: c_int) -> *mut sys::sbuf {
    let flags = flags & SBUF_USRFLAGMSK;
    let length = length as isize;
    if length < 0 || (!buf.is_null() && length < SBUF_MINSIZE) {
        return ptr::null_mut();
    }
    if flags & SBUF_AUTOEXTEND == 0 && length < SBUF_MINSIZE {
        return ptr::null_mut();
    }
    if !s.is_null() && !s.cast::<HostSbuf>().is_aligned() {
        return ptr::null_mut();
    }
    let mut h =
        HostSbuf { s_buf: buf.cast(), s_size: length, s_len: 0, s_error: 0, s_flags: flags, s_magic: SBUF_MAGIC };
    if buf.is_null() {
        let size = if flags & SBUF_AUTOEXTEND != 0 { extend_size(length) } else { Some(length) };
        let Some((p, size)) = size.and_then(|n| Some((alloc_bytes(n)?, n))) else {
            return ptr::null_mut();
        };
        h.s_buf = p;
        h.s_size = size;
        h.s_flags |= SBUF_DYNAMIC;
    }
    let target = if s.is_null() {
        let layout = Layout::new::<HostSbuf>();
        // SAFETY: HostSbuf has a non-zero size.
        let p = unsafe { alloc::alloc(layout) }.cast::<HostSbuf>();
        if p.is_null() {
            if h.has(SBUF_DYNAMIC) {
                // SAFETY: the buffer was just allocated with s_size bytes and is unused.
                unsafe { free_bytes(h.s_buf, h.s_size) };
            }
            return ptr::null_mut();
        }
        h.s_flags |= SBUF_DYNSTRUCT;
        p
    } else {
        s.cast::<HostSbuf>()
    };
    // SAFETY: target is aligned and valid for writing a HostSbuf: either just allocated, or
    // the caller's storage of at least SBUF_STORAGE_SIZE bytes (checked aligned above).
    unsafe { target.write(h) };
    target.cast()
}

/// `sbuf_bcat(s, buf, len)`: append `len` bytes. Returns 0, or -1 if the sbuf has an error
/// (or now has one because the bytes did not all fit).
///
/// # Safety
/// `s` is NULL or an sbuf from `sbuf_new`; `buf` is valid for `len` bytes of reads.
#[no_mangle]
pub unsafe extern "C" fn sbuf_bcat(s: *mut sys::sbuf, buf: *const c_void, len: usize) -> c_int {
    // SAFETY: s is NULL or a live sbuf (caller).
    let Some(h) = (unsafe { host(s) }) else {
        return -1;
    };
    if len == 0 {
        return if h.s_error != 0 || h.has(SBUF_FINISHED) { -1 } else { 0 };
    }
    if buf.is_null() {
        return -1;
    }
    // SAFETY: buf is valid for len bytes (caller).
    let data = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) };
    h.put_bytes(data)
}

/// The Rust end of `sbuf_printf`/`sbuf_vprintf` (csrc/varargs.c): append the formatted text.
///
/// # Safety
/// As for [`sbuf_bcat`].
#[no_mangle]
pub unsafe extern "C" fn geom_host_sbuf_bcat(s: *mut sys::sbuf, buf: *const c_void, len: usize) -> c_int {
    // SAFETY: same contract.
    unsafe { sbuf_bcat(s, buf, len) }
}

/// Called by csrc/varargs.c when `vsnprintf` could not format (out of memory, or an encoding
/// error): records `ENOMEM` in the sbuf like an overflow. Returns -1.
///
/// # Safety
/// `s` is NULL or an sbuf from `sbuf_new`.
#[no_mangle]
pub unsafe extern "C" fn geom_host_sbuf_format_failed(s: *mut sys::sbuf) -> c_int {
    // SAFETY: s is NULL or a live sbuf (caller).
    if let Some(h) = unsafe { host(s) } {
        if h.s_error == 0 && !h.has(SBUF_FINISHED) {
            h.s_error = errno::ENOMEM;
        }
    }
    -1
}

/// `sbuf_cat(s, str)`: append a NUL-terminated string.
///
/// # Safety
/// `s` is NULL or an sbuf from `sbuf_new`; `str_` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn sbuf_cat(s: *mut sys::sbuf, str_: *const c_char) -> c_int {
    if str_.is_null() {
        return -1;
    }
    // SAFETY: str_ is a NUL-terminated string (caller).
    let bytes = unsafe { std::ffi::CStr::from_ptr(str_) }.to_bytes();
    // SAFETY: s as the caller passed it; bytes is a valid slice.
    unsafe { sbuf_bcat(s, bytes.as_ptr().cast(), bytes.len()) }
}

/// `sbuf_cpy(s, str)`: replace the contents with a string.
///
/// # Safety
/// As for [`sbuf_cat`].
#[no_mangle]
pub unsafe extern "C" fn sbuf_cpy(s: *mut sys::sbuf, str_: *const c_char) -> c_int {
    // SAFETY: s is NULL or a live sbuf (caller).
    unsafe { sbuf_clear(s) };
    // SAFETY: same contract.
    unsafe { sbuf_cat(s, str_) }
}

/// `sbuf_bcpy(s, buf, len)`: replace the contents with bytes.
///
/// # Safety
/// As for [`sbuf_bcat`].
#[no_mangle]
pub unsafe extern "C" fn sbuf_bcpy(s: *mut sys::sbuf, buf: *const c_void, len: usize) -> c_int {
    // SAFETY: s is NULL or a live sbuf (caller).
    unsafe { sbuf_clear(s) };
    // SAFETY: same contract.
    unsafe { sbuf_bcat(s, buf, len) }
}

/// `sbuf_putc(s, c)`: append one byte (`c` converted to `unsigned char`).
///
/// # Safety
/// `s` is NULL or an sbuf from `sbuf_new`.
#[no_mangle]
pub unsafe extern "C" fn sbuf_putc(s: *mut sys::sbuf, c: c_int) -> c_int {
    // SAFETY: s is NULL or a live sbuf (caller).
    let Some(h) = (unsafe { host(s) }) else {
        return -1;
    };
    h.put_bytes(&[c as u8])
}

/// `sbuf_nl_terminate(s)`: append a newline unless the text is empty or already ends in one.
///
/// # Safety
/// `s` is NULL or an sbuf from `sbuf_new`.
#[no_mangle]
pub unsafe extern "C" fn sbuf_nl_terminate(s: *mut sys::sbuf) -> c_int {
    // SAFETY: s is NULL or a live sbuf (caller).
    let Some(h) = (unsafe { host(s) }) else {
        return -1;
    };
    match h.bytes().last() {
        Some(b'\n') | None => {
            if h.s_error != 0 {
                -1
            } else {
                0
            }
        }
        Some(_) => h.put_bytes(b"\n"),
    }
}

/// `sbuf_trim(s)`: remove trailing white space.
///
/// # Safety
/// `s` is NULL or an sbuf from `sbuf_new`.
#[no_mangle]
pub unsafe extern "C" fn sbuf_trim(s: *mut sys::sbuf) -> c_int {
    // SAFETY: s is NULL or a live sbuf (caller).
    let Some(h) = (unsafe { host(s) }) else {
        return -1;
    };
    if h.s_error != 0 || h.has(SBUF_FINISHED) {
        return -1;
    }
    while let Some(&last) = h.bytes().last() {
        if !matches!(last, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            break;
        }
        h.s_len -= 1;
    }
    0
}

/// `sbuf_setpos(s, pos)`: truncate the text to `pos` bytes (`pos` no larger than the length).
///
/// # Safety
/// `s` is NULL or an sbuf from `sbuf_new`.
#[no_mangle]
pub unsafe extern "C" fn sbuf_setpos(s: *mut sys::sbuf, pos: isize) -> c_int {
    // SAFETY: s is NULL or a live sbuf (caller).
    let Some(h) = (unsafe { host(s) }) else {
        return -1;
    };
    if h.has(SBUF_FINISHED) || pos < 0 || pos > h.s_len {
        return -1;
    }
    h.s_len = pos;
    0
}

/// `sbuf_clear(s)`: empty the buffer, and forget its error and finished state.
///
/// # Safety
/// `s` is NULL or an sbuf from `sbuf_new`.
#[no_mangle]
pub unsafe extern "C" fn sbuf_clear(s: *mut sys::sbuf) {
    // SAFETY: s is NULL or a live sbuf (caller).
    if let Some(h) = unsafe { host(s) } {
        h.clear();
    }
}

/// `sbuf_finish(s)`: NUL-terminate and mark finished. Returns 0, or the sbuf's error
/// (`ENOMEM` after an overflow); `EINVAL` for a NULL or invalid sbuf.
///
/// # Safety
/// `s` is NULL or an sbuf from `sbuf_new`.
#[no_mangle]
pub unsafe extern "C" fn sbuf_finish(s: *mut sys::sbuf) -> c_int {
    // SAFETY: s is NULL or a live sbuf (caller).
    match unsafe { host(s) } {
        Some(h) => h.finish(),
        None => errno::EINVAL,
    }
}

/// `sbuf_data(s)`: the text, NUL-terminated (also before `sbuf_finish`, unlike FreeBSD where
/// that is an assertion). NULL for a NULL or invalid sbuf.
///
/// # Safety
/// `s` is NULL or an sbuf from `sbuf_new`. The pointer is valid until the next call that
/// modifies or deletes the sbuf.
#[no_mangle]
pub unsafe extern "C" fn sbuf_data(s: *mut sys::sbuf) -> *mut c_char {
    // SAFETY: s is NULL or a live sbuf (caller).
    let Some(h) = (unsafe { host(s) }) else {
        return ptr::null_mut();
    };
    if !h.has(SBUF_FINISHED) {
        // SAFETY: s_len < s_size before finishing; writing past the text does not change it.
        unsafe { *h.s_buf.add(h.s_len as usize) = 0 };
    }
    h.s_buf.cast()
}

/// `sbuf_len(s)`: the length of the text, or -1 if the sbuf has an error. With
/// `SBUF_INCLUDENUL` the NUL is counted.
///
/// # Safety
/// `s` is NULL or an sbuf from `sbuf_new`.
#[no_mangle]
pub unsafe extern "C" fn sbuf_len(s: *mut sys::sbuf) -> isize {
    // SAFETY: s is NULL or a live sbuf (caller).
    let Some(h) = (unsafe { host(s) }) else {
        return -1;
    };
    if h.s_error != 0 {
        return -1;
    }
    if h.has(SBUF_INCLUDENUL) && !h.has(SBUF_FINISHED) {
        return h.s_len + 1;
    }
    h.s_len
}

/// `sbuf_error(s)`: 0, or the error the sbuf ran into (`ENOMEM`); `EINVAL` for a NULL or
/// invalid sbuf.
///
/// # Safety
/// `s` is NULL or an sbuf from `sbuf_new`.
#[no_mangle]
pub unsafe extern "C" fn sbuf_error(s: *const sys::sbuf) -> c_int {
    // SAFETY: s is NULL or a live sbuf (caller).
    match unsafe { host(s) } {
        Some(h) => h.s_error,
        None => errno::EINVAL,
    }
}

/// `sbuf_done(s)`: non-zero once `sbuf_finish` has been called (and not undone by
/// `sbuf_clear`).
///
/// # Safety
/// `s` is NULL or an sbuf from `sbuf_new`.
#[no_mangle]
pub unsafe extern "C" fn sbuf_done(s: *const sys::sbuf) -> c_int {
    // SAFETY: s is NULL or a live sbuf (caller).
    match unsafe { host(s) } {
        Some(h) => c_int::from(h.has(SBUF_FINISHED)),
        None => 0,
    }
}

/// `sbuf_delete(s)`: free what `sbuf_new` allocated (the buffer and/or the structure) and
/// invalidate the sbuf.
///
/// # Safety
/// `s` is NULL or an sbuf from `sbuf_new`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn sbuf_delete(s: *mut sys::sbuf) {
    // SAFETY: s is NULL or a live sbuf (caller).
    let Some(h) = (unsafe { host(s) }) else {
        return;
    };
    if h.has(SBUF_DYNAMIC) {
        // SAFETY: a DYNAMIC buffer came from alloc_bytes(s_size).
        unsafe { free_bytes(h.s_buf, h.s_size) };
    }
    let dynstruct = h.has(SBUF_DYNSTRUCT);
    let p = s.cast::<HostSbuf>();
    // SAFETY: p is the live HostSbuf behind s; zeroing it clears the magic, so later use of
    // this pointer is refused.
    unsafe { p.write_bytes(0, 1) };
    if dynstruct {
        // SAFETY: a DYNSTRUCT structure was allocated by sbuf_new with this layout.
        unsafe { alloc::dealloc(p.cast(), Layout::new::<HostSbuf>()) };
    }
}

/// An owned `sbuf(9)`, for host code that hands an sbuf to class methods (dumpconf) or reads
/// one back. Dropping it deletes the sbuf.
pub struct Sbuf {
    raw: NonNull<sys::sbuf>,
}

// SAFETY: an Sbuf exclusively owns its structure and buffer; nothing in them is tied to the
// thread that created it.
unsafe impl Send for Sbuf {}

impl Sbuf {
    /// A growable sbuf (`sbuf_new_auto()`), or None when memory is short.
    pub fn try_new() -> Option<Sbuf> {
        // SAFETY: NULL storage and NULL buffer: sbuf_new allocates both.
        let raw = unsafe { sbuf_new(ptr::null_mut(), ptr::null_mut(), 0, SBUF_AUTOEXTEND) };
        NonNull::new(raw).map(|raw| Sbuf { raw })
    }

    /// A growable sbuf (`sbuf_new_auto()`). Aborts, like `Box::new`, if memory is exhausted.
    pub fn new() -> Sbuf {
        match Sbuf::try_new() {
            Some(sb) => sb,
            None => alloc::handle_alloc_error(Layout::new::<HostSbuf>()),
        }
    }

    /// A fixed-size sbuf holding at most `capacity - 1` bytes of text (one is kept for the
    /// NUL), or None if `capacity` is below 2 or too large.
    pub fn with_fixed_capacity(capacity: usize) -> Option<Sbuf> {
        let length = c_int::try_from(capacity).ok()?;
        // SAFETY: NULL storage and NULL buffer: sbuf_new allocates both.
        let raw = unsafe { sbuf_new(ptr::null_mut(), ptr::null_mut(), length, SBUF_FIXEDLEN) };
        NonNull::new(raw).map(|raw| Sbuf { raw })
    }

    /// The `struct sbuf *` to hand to C (dumpconf, `sbuf_printf`, ...). It stays valid as long
    /// as this `Sbuf`; do not modify the sbuf through it while a slice from
    /// [`Sbuf::as_bytes`] is alive.
    pub fn as_ptr(&self) -> *mut sys::sbuf {
        self.raw.as_ptr()
    }

    fn host(&self) -> &HostSbuf {
        // SAFETY: raw is a live sbuf owned by self; no &mut to it exists outside the exported
        // functions, which do not run while this shared borrow is alive.
        unsafe { &*self.raw.as_ptr().cast::<HostSbuf>() }
    }

    /// Append a string (`sbuf_cat`). Err holds the sbuf's error (`ENOMEM`), or `EINVAL` if
    /// the sbuf is finished.
    pub fn cat(&mut self, s: &str) -> Result<(), c_int> {
        self.push_bytes(s.as_bytes())
    }

    /// Append bytes (`sbuf_bcat`). Errors as for [`Sbuf::cat`].
    pub fn push_bytes(&mut self, b: &[u8]) -> Result<(), c_int> {
        // SAFETY: self owns a live sbuf; b is a valid slice.
        if unsafe { sbuf_bcat(self.as_ptr(), b.as_ptr().cast(), b.len()) } == 0 {
            Ok(())
        } else {
            Err(self.failure())
        }
    }

    fn failure(&self) -> c_int {
        match self.error() {
            0 => errno::EINVAL,
            e => e,
        }
    }

    /// NUL-terminate and mark finished (`sbuf_finish`); Err holds the sbuf's error.
    pub fn finish(&mut self) -> Result<(), c_int> {
        // SAFETY: self owns a live sbuf.
        match unsafe { sbuf_finish(self.as_ptr()) } {
            0 => Ok(()),
            e => Err(e),
        }
    }

    /// Whether [`Sbuf::finish`] (or `sbuf_finish` from C) has been called.
    pub fn is_finished(&self) -> bool {
        self.host().has(SBUF_FINISHED)
    }

    /// 0, or the error the sbuf ran into (`ENOMEM`).
    pub fn error(&self) -> c_int {
        self.host().s_error
    }

    /// Empty the buffer and forget its error and finished state (`sbuf_clear`).
    pub fn clear(&mut self) {
        // SAFETY: self owns a live sbuf.
        unsafe { sbuf_clear(self.as_ptr()) }
    }

    /// Length of the text in bytes (whatever was stored, even after an overflow).
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether no text has been stored.
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }

    /// The text stored so far (without the NUL).
    pub fn as_bytes(&self) -> &[u8] {
        self.host().bytes()
    }

    /// The text as a `String`, invalid UTF-8 replaced by U+FFFD.
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }
}

impl Default for Sbuf {
    fn default() -> Self {
        Sbuf::new()
    }
}

impl Drop for Sbuf {
    fn drop(&mut self) {
        // SAFETY: self owns the sbuf and never uses it again.
        unsafe { sbuf_delete(self.as_ptr()) }
    }
}

impl fmt::Write for Sbuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.cat(s).map_err(|_| fmt::Error)
    }
}

impl fmt::Debug for Sbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sbuf")
            .field("text", &self.to_string_lossy())
            .field("error", &self.error())
            .field("finished", &self.is_finished())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;
    use std::fmt::Write as _;

    fn data(s: *mut sys::sbuf) -> String {
        // SAFETY: tests pass live sbufs; sbuf_data is NUL-terminated.
        unsafe { CStr::from_ptr(sbuf_data(s)) }.to_string_lossy().into_owned()
    }

    #[test]
    fn auto_extend_grows() {
        let mut sb = Sbuf::new();
        for i in 0..1000 {
            write!(sb, "{i},").unwrap();
        }
        let expect: String = (0..1000).map(|i| format!("{i},")).collect();
        assert_eq!(sb.to_string_lossy(), expect);
        assert_eq!(sb.finish(), Ok(()));
        assert_eq!(data(sb.as_ptr()), expect);
        // SAFETY: live sbuf.
        assert_eq!(unsafe { sbuf_len(sb.as_ptr()) }, expect.len() as isize);
        assert!(sb.is_finished());
        // Appending to a finished sbuf is refused.
        assert_eq!(sb.cat("x"), Err(errno::EINVAL));
        sb.clear();
        assert!(sb.is_empty());
        assert_eq!(sb.cat("again"), Ok(()));
        assert_eq!(sb.to_string_lossy(), "again");
    }

    #[test]
    fn caller_storage_fixed_overflow() {
        let mut storage = [0u64; SBUF_STORAGE_SIZE / 8];
        let mut buf = [0x55 as c_char; 10];
        let s = storage.as_mut_ptr().cast::<sys::sbuf>();
        // SAFETY: storage and buf outlive every use of s below; sbuf_delete ends it.
        unsafe {
            assert_eq!(sbuf_new(s, buf.as_mut_ptr(), 8, SBUF_FIXEDLEN), s);
            assert_eq!(sbuf_cat(s, c"abc".as_ptr()), 0);
            assert_eq!(sbuf_putc(s, b'd' as c_int), 0);
            assert_eq!(sbuf_len(s), 4);
            // 3 more bytes fit (one kept for the NUL), then ENOMEM.
            assert_eq!(sbuf_cat(s, c"efghij".as_ptr()), -1);
            assert_eq!(sbuf_error(s), errno::ENOMEM);
            assert_eq!(sbuf_len(s), -1);
            assert_eq!(sbuf_cat(s, c"z".as_ptr()), -1);
            assert_eq!(sbuf_finish(s), errno::ENOMEM);
            assert_eq!(data(s), "abcdefg");
            assert_eq!(sbuf_done(s), 1);
            assert_eq!(sbuf_cpy(s, c"xy".as_ptr()), 0);
            assert_eq!(sbuf_error(s), 0);
            assert_eq!(sbuf_finish(s), 0);
            assert_eq!(data(s), "xy");
            sbuf_delete(s);
            // Deleted: refused, not undefined.
            assert_eq!(sbuf_cat(s, c"q".as_ptr()), -1);
            assert_eq!(sbuf_error(s), errno::EINVAL);
        }
        assert_eq!(buf[7], 0, "the NUL ends the 8-byte buffer");
        assert_eq!(buf[8..], [0x55, 0x55], "wrote past the caller's buffer");
    }

    #[test]
    fn caller_buffer_autoextend_moves_out() {
        let mut buf = [0 as c_char; 4];
        // SAFETY: buf outlives the sbuf.
        unsafe {
            let s = sbuf_new(ptr::null_mut(), buf.as_mut_ptr(), 4, SBUF_AUTOEXTEND);
            assert!(!s.is_null());
            assert_eq!(sbuf_cat(s, c"hello, world".as_ptr()), 0);
            assert_eq!(sbuf_finish(s), 0);
            assert_eq!(data(s), "hello, world");
            sbuf_delete(s);
        }
    }

    #[test]
    fn includenul_and_bad_arguments() {
        // SAFETY: sbufs created and deleted here; NULL arguments are refused.
        unsafe {
            let s = sbuf_new(ptr::null_mut(), ptr::null_mut(), 16, SBUF_FIXEDLEN | SBUF_INCLUDENUL);
            assert_eq!(sbuf_cat(s, c"ab".as_ptr()), 0);
            assert_eq!(sbuf_len(s), 3);
            assert_eq!(sbuf_finish(s), 0);
            assert_eq!(sbuf_len(s), 3);
            assert_eq!(sbuf_finish(s), 0);
            assert_eq!(sbuf_len(s), 3, "a second finish must not count the NUL twice");
            sbuf_delete(s);

            assert!(sbuf_new(ptr::null_mut(), ptr::null_mut(), -1, SBUF_AUTOEXTEND).is_null());
            assert!(sbuf_new(ptr::null_mut(), ptr::null_mut(), 1, SBUF_FIXEDLEN).is_null());
            assert_eq!(sbuf_cat(ptr::null_mut(), c"x".as_ptr()), -1);
            assert_eq!(sbuf_finish(ptr::null_mut()), errno::EINVAL);
            assert!(sbuf_data(ptr::null_mut()).is_null());
            sbuf_delete(ptr::null_mut());
            let mut zeroed = [0u64; 8];
            assert_eq!(sbuf_cat(zeroed.as_mut_ptr().cast(), c"x".as_ptr()), -1);
        }
    }

    #[test]
    fn helpers() {
        let mut sb = Sbuf::new();
        sb.cat("line  \t\n").unwrap();
        // SAFETY: live sbuf.
        unsafe {
            assert_eq!(sbuf_trim(sb.as_ptr()), 0);
            assert_eq!(sb.to_string_lossy(), "line");
            assert_eq!(sbuf_nl_terminate(sb.as_ptr()), 0);
            assert_eq!(sbuf_nl_terminate(sb.as_ptr()), 0);
            assert_eq!(sb.to_string_lossy(), "line\n");
            assert_eq!(sbuf_setpos(sb.as_ptr(), 2), 0);
            assert_eq!(sbuf_setpos(sb.as_ptr(), 3), -1);
            assert_eq!(sb.to_string_lossy(), "li");
        }
        let mut fixed = Sbuf::with_fixed_capacity(4).unwrap();
        assert_eq!(fixed.cat("abcd"), Err(errno::ENOMEM));
        assert_eq!(fixed.to_string_lossy(), "abc");
        assert!(Sbuf::with_fixed_capacity(1).is_none());
    }

    #[test]
    fn printf_goes_through_c() {
        let sb = Sbuf::new();
        // SAFETY: a live sbuf and a format matching its arguments.
        unsafe {
            assert_eq!(sys::sbuf_printf(sb.as_ptr(), c"%d-%s-%jd".as_ptr(), 42, c"x".as_ptr(), -7i64), 0);
        }
        assert_eq!(sb.to_string_lossy(), "42-x--7");
        let long = "y".repeat(10_000);
        let cs = std::ffi::CString::new(long.clone()).unwrap();
        // SAFETY: as above.
        unsafe {
            assert_eq!(sys::sbuf_printf(sb.as_ptr(), c"[%s]".as_ptr(), cs.as_ptr()), 0);
        }
        assert_eq!(sb.to_string_lossy(), format!("42-x--7[{long}]"));
        let fixed = Sbuf::with_fixed_capacity(6).unwrap();
        // SAFETY: as above.
        unsafe {
            assert_eq!(sys::sbuf_printf(fixed.as_ptr(), c"%s".as_ptr(), c"overflowing".as_ptr()), -1);
        }
        assert_eq!(fixed.error(), errno::ENOMEM);
        assert_eq!(fixed.to_string_lossy(), "overf");
    }
}
