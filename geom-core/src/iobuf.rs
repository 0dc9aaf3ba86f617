//! Bios a class issues itself, with a buffer of their own or a lent one.
//!
//! A [`Request`](crate::Request) is a bio someone else sent us. Sometimes a class has I/O of
//! its own to do: read its metadata, write a journal record, bounce a request through an
//! aligned buffer. FreeBSD drivers have two kinds of buffer header for that (the IRIX names
//! for them are `ngeteblk`/`brelse` and `getrbuf`/`freerbuf`):
//!
//! * [`BufBio`]: a bio that owns its data buffer (a [`KBuf`]). It is made with the buffer and
//!   freed with it. It can be sent asynchronously from anywhere: a completion hook gets it
//!   back in done context, with its buffer, error and completed byte count, to inspect, send
//!   again or drop. It can also be sent and waited for, where sleeping is allowed.
//! * [`BareBio`]: a bio with no buffer of its own, pointed at a buffer the caller lends for
//!   one request at a time. Since the borrow has to outlive the I/O, the only way to use it is
//!   synchronously (`biowait`, with a [`SleepCtx`]): the call returns when GEOM has finished
//!   with the buffer. Dropping it frees only the bio.
//!
//! | make | takes | bio | buffer |
//! |---|---|---|---|
//! | [`BufBio::try_new`], [`BareBio::try_new`] | `&IoCtx` | `g_new_bio` (`M_NOWAIT`) | `M_NOWAIT`; `Err(ENOMEM)` on shortage |
//! | [`BufBio::new`], [`BareBio::new`] | `&impl MayWait` | `g_alloc_bio` (waits) | `M_WAITOK` |
//!
//! A `BufBio` asynchronously, from start, bouncing a write through a buffer of its own:
//!
//! ```no_run
//! use geom_core::{BufBio, Cmd, Consumer, IoCtx, Request};
//! geom_core::malloc_define!(M_BOUNCE, "bounce", "bounce buffers");
//!
//! fn start(cx: &IoCtx, cp: Consumer, req: Request) {
//!     let len = req.length() as usize;
//!     let mut bio = match BufBio::try_new(cx, &M_BOUNCE, len) {
//!         Ok(b) => b,
//!         Err(e) => return req.fail(e), // ENOMEM: GEOM sends the request again later
//!     };
//!     bio.buf_mut().copy_from_slice(req.data().unwrap_or(&[]));
//!     if let Err(e) = bio.set_io(Cmd::Write, req.offset(), req.length()) {
//!         return req.fail(e);
//!     }
//!     bio.send(cp, req, written);
//! }
//!
//! // Runs in done context; `req` is the context handed to send().
//! fn written(_cx: &IoCtx, bio: BufBio, req: Request) {
//!     req.finish(bio.result()); // dropping `bio` frees it and its buffer
//! }
//! ```

use core::fmt;
use core::mem::{align_of, size_of, MaybeUninit};
use core::ptr::{self, NonNull};

use crate::bio::Cmd;
use crate::context::{IoCtx, MayWait, SleepCtx};
use crate::error::{Errno, Result};
use crate::handles::Consumer;
use crate::malloc::{die, KBox, KBuf, MallocType};
use crate::sys::{self, bio};

/// How many bytes of context a [`BufBio::send`] can carry to its completion hook.
pub const HOOK_CONTEXT_SIZE: usize = 4 * size_of::<usize>();

/// A completion hook after type erasure.
type ErasedHook = *const ();

/// What a [`BufBio`] keeps besides the bio: its buffer, the request it is set up for, and,
/// while it travels, its completion hook and that hook's context. The bio finds it through
/// `bio_caller1` (the issuer's own field) while in flight.
///
/// Invariant: `ctx` holds a value of the hook's context type exactly while the bio travels
/// asynchronously (between `send` and the completion trampoline).
struct Trip {
    buf: KBuf,
    cmd: Cmd,
    offset: i64,
    length: i64,
    hook: ErasedHook,
    ctx: MaybeUninit<[usize; HOOK_CONTEXT_SIZE / size_of::<usize>()]>,
}

/// A bio with a data buffer of its own (`ngeteblk`; dropping it is `brelse`).
///
/// Set it up with [`BufBio::set_io`] (a new one is set up to read its whole buffer at offset
/// 0), then [`send`](BufBio::send) it, or [`run`](BufBio::run) it and wait. After it comes
/// back it can be set up and sent again.
///
/// Invariant: `bp` is a bio we allocated and own, not in flight while this value exists
/// (sending consumes the value; the completion hook gets a new one); `trip` is its state.
pub struct BufBio {
    bp: NonNull<bio>,
    trip: KBox<Trip>,
}

// SAFETY: the bio and buffer are owned by this value; handing them to another thread moves
// that ownership, as classes hand bios to their worker threads.
unsafe impl Send for BufBio {}

impl BufBio {
    /// A bio and a zeroed buffer of `len` bytes in `mt`, without sleeping: `Err(ENOMEM)` if
    /// either cannot be had.
    pub fn try_new(cx: &IoCtx, mt: &'static MallocType, len: usize) -> Result<BufBio> {
        let buf = KBuf::try_zeroed(cx, mt, len)?;
        BufBio::try_from_buf(cx, buf).map_err(|(e, _)| e)
    }

    /// A bio around `buf` (which it then owns), without sleeping. On failure (`ENOMEM`) the
    /// buffer comes back.
    pub fn try_from_buf(cx: &IoCtx, buf: KBuf) -> core::result::Result<BufBio, (Errno, KBuf)> {
        // SAFETY: g_new_bio never sleeps; NULL means no memory.
        let Some(bp) = NonNull::new(unsafe { sys::g_new_bio() }) else {
            return Err((Errno::ENOMEM, buf));
        };
        let mt = buf.malloc_type();
        match KBox::try_new_or_back(cx, mt, Trip::new(buf)) {
            Ok(trip) => Ok(BufBio { bp, trip }),
            Err(trip) => {
                // SAFETY: the bio is ours, fresh and never sent.
                unsafe { sys::g_destroy_bio(bp.as_ptr()) };
                Err((Errno::ENOMEM, trip.buf))
            }
        }
    }

    /// A bio and a zeroed buffer of `len` bytes in `mt`, waiting for memory if need be.
    pub fn new(cx: &impl MayWait, mt: &'static MallocType, len: usize) -> BufBio {
        BufBio::from_buf(cx, KBuf::zeroed(cx, mt, len))
    }

    /// A bio around `buf` (which it then owns), waiting for memory if need be.
    pub fn from_buf(cx: &impl MayWait, buf: KBuf) -> BufBio {
        // SAFETY: g_alloc_bio may sleep, which the token allows; it never returns NULL.
        let Some(bp) = NonNull::new(unsafe { sys::g_alloc_bio() }) else {
            die(b"geom-rs: g_alloc_bio returned NULL\n");
        };
        let mt = buf.malloc_type();
        BufBio { bp, trip: KBox::new(cx, mt, Trip::new(buf)) }
    }

    fn raw(&self) -> &bio {
        // SAFETY: we own the bio and it is not in flight (invariant).
        unsafe { self.bp.as_ref() }
    }

    /// Set up the next request: `Read` or `Write` of `length` bytes of the buffer (from its
    /// start) at `offset`, `Delete` of `length` bytes at `offset`, or `Flush` (`length` 0).
    /// `EINVAL` for other commands, negative numbers, or a length the buffer cannot hold.
    pub fn set_io(&mut self, cmd: Cmd, offset: i64, length: i64) -> Result<()> {
        let ok = offset >= 0
            && length >= 0
            && match cmd {
                Cmd::Read | Cmd::Write => length as u64 <= self.trip.buf.len() as u64,
                Cmd::Delete => true,
                Cmd::Flush => length == 0,
                _ => false,
            };
        if !ok {
            return Err(Errno::EINVAL);
        }
        let t = &mut *self.trip;
        (t.cmd, t.offset, t.length) = (cmd, offset, length);
        Ok(())
    }

    /// The command set up.
    pub fn cmd(&self) -> Cmd {
        self.trip.cmd
    }

    /// The offset set up.
    pub fn offset(&self) -> i64 {
        self.trip.offset
    }

    /// The length set up.
    pub fn length(&self) -> i64 {
        self.trip.length
    }

    /// The error of the last request (`None`: success, or never sent).
    pub fn error(&self) -> Option<Errno> {
        Errno::new(self.raw().error())
    }

    /// Bytes the last request completed (a request running past the provider's end is cut
    /// short there).
    pub fn completed(&self) -> i64 {
        self.raw().bio_completed
    }

    /// The last request's outcome: its error, or the bytes it completed.
    pub fn result(&self) -> Result<i64> {
        match self.error() {
            Some(e) => Err(e),
            None => Ok(self.completed()),
        }
    }

    /// The whole buffer.
    pub fn buf(&self) -> &[u8] {
        &self.trip.buf
    }

    /// The whole buffer, writable.
    pub fn buf_mut(&mut self) -> &mut [u8] {
        &mut self.trip.buf
    }

    /// Free the bio and keep the buffer.
    pub fn into_buf(self) -> KBuf {
        let (bp, trip) = self.into_parts();
        // SAFETY: the bio is ours and not in flight.
        unsafe { sys::g_destroy_bio(bp.as_ptr()) };
        KBox::into_inner(trip).buf
    }

    fn into_parts(self) -> (NonNull<bio>, KBox<Trip>) {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the box is moved out exactly once.
        (this.bp, unsafe { ptr::read(&this.trip) })
    }

    /// Fill the bio for the request set up, from a clean slate (`g_reset_bio`): a bio that
    /// came back may carry the last trip's flags, error and provider fields.
    fn prepare(&mut self) {
        let bp = self.bp.as_ptr();
        let t = &mut *self.trip;
        let data = match t.cmd {
            Cmd::Read | Cmd::Write => t.buf.as_mut_ptr(),
            _ => ptr::null_mut(),
        };
        // SAFETY: we own the bio and it is not in flight.
        unsafe {
            sys::g_reset_bio(bp);
            (*bp).bio_cmd = t.cmd.raw();
            (*bp).bio_offset = t.offset;
            (*bp).bio_length = t.length;
            (*bp).bio_data = data.cast();
        }
    }

    /// Send the request set up through `cp`, asynchronously. When it is done, `done` runs in
    /// done context with the bio and `ctx` (anything of at most [`HOOK_CONTEXT_SIZE`] bytes
    /// and pointer alignment: the [`Request`](crate::Request) being served, a
    /// [`ZoneBox`](crate::ZoneBox), an `Arc`, a [`GeomRef`](crate::GeomRef), ...). Sending
    /// never sleeps, so it is fine in start and done.
    ///
    /// A request that fails below with `ENOMEM` is sent again by GEOM; `done` sees the final
    /// outcome.
    pub fn send<X: Send + 'static>(mut self, cp: Consumer, ctx: X, done: fn(&IoCtx, BufBio, X)) {
        let () = HookContext::<X>::FITS;
        self.prepare();
        let (bp, trip) = self.into_parts();
        let mt = KBox::malloc_type(&trip);
        let t = KBox::into_raw(trip).as_ptr();
        // SAFETY: the trip is ours until the trampoline takes it back; the context fits
        // (FITS) and is moved into it; the bio is ours and set up, and goes to GEOM now.
        // bio_caller1/bio_caller2 are the issuer's fields.
        unsafe {
            (*t).hook = done as ErasedHook;
            (*t).ctx.as_mut_ptr().cast::<X>().write(ctx);
            let b = bp.as_ptr();
            (*b).bio_caller1 = t.cast();
            (*b).bio_caller2 = (mt as *const MallocType).cast_mut().cast();
            (*b).bio_done = Some(bufbio_done::<X>);
            sys::g_io_request(b, cp.as_ptr());
        }
    }

    /// Send the request set up through `cp` and sleep until it is done (`biowait`); the bio
    /// stays ours, for the next request. Returns the bytes completed, or the error.
    pub fn run(&mut self, _cx: &SleepCtx, cp: Consumer) -> Result<i64> {
        self.prepare();
        // SAFETY: the bio is set up with bio_done NULL, so biodone wakes us; we may sleep
        // (token); the buffer is owned by self, which stays borrowed until the bio is back.
        unsafe { wait_io(self.bp.as_ptr(), cp) }
    }
}

impl Drop for BufBio {
    fn drop(&mut self) {
        // SAFETY: the bio is ours and not in flight (invariant); the trip (and buffer) are
        // freed by its box afterwards.
        unsafe { sys::g_destroy_bio(self.bp.as_ptr()) };
    }
}

impl fmt::Debug for BufBio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufBio")
            .field("cmd", &self.cmd())
            .field("offset", &self.offset())
            .field("length", &self.length())
            .field("buf", &self.trip.buf)
            .field("error", &self.error())
            .field("completed", &self.completed())
            .finish()
    }
}

impl Trip {
    fn new(buf: KBuf) -> Trip {
        let length = buf.len() as i64;
        Trip { buf, cmd: Cmd::Read, offset: 0, length, hook: ptr::null(), ctx: MaybeUninit::uninit() }
    }
}

/// Size and alignment check of a hook context type.
struct HookContext<X>(X);

impl<X> HookContext<X> {
    const FITS: () = assert!(
        size_of::<X>() <= HOOK_CONTEXT_SIZE && align_of::<X>() <= align_of::<usize>(),
        "a BufBio completion context must fit in HOOK_CONTEXT_SIZE bytes with pointer alignment"
    );
}

/// The `bio_done` of a [`BufBio`] sent with a context of type `X`: rebuild the `BufBio` and
/// call the hook in done context.
unsafe extern "C" fn bufbio_done<X>(bp: *mut bio) {
    // SAFETY: GEOM calls bio_done once, in done context, for a bio that send() set up:
    // bio_caller1 is its trip (a KBox of the type in bio_caller2) holding a context of type
    // X and a hook of type fn(&IoCtx, BufBio, X). Both are taken out exactly once here.
    unsafe {
        let t = (*bp).bio_caller1.cast::<Trip>();
        let mt = &*(*bp).bio_caller2.cast::<MallocType>();
        (*bp).bio_caller1 = ptr::null_mut();
        (*bp).bio_caller2 = ptr::null_mut();
        let hook = core::mem::transmute::<ErasedHook, fn(&IoCtx, BufBio, X)>((*t).hook);
        let ctx = (*t).ctx.as_ptr().cast::<X>().read();
        (*t).hook = ptr::null();
        let trip = KBox::from_raw(NonNull::new_unchecked(t), mt);
        let me = BufBio { bp: NonNull::new_unchecked(bp), trip };
        hook(&IoCtx::assume(), me, ctx);
    }
}

/// Send `bp` (set up, `bio_done` NULL) through `cp` and wait for it.
///
/// # Safety
/// `bp` is ours and set up; its data (if any) stays valid until this returns; we may sleep.
unsafe fn wait_io(bp: *mut bio, cp: Consumer) -> Result<i64> {
    // SAFETY: caller's contract.
    unsafe {
        (*bp).bio_done = None;
        sys::g_io_request(bp, cp.as_ptr());
        let error = sys::biowait(bp, c"geomrs".as_ptr());
        if (*bp).bio_flags & sys::BIO_DONE == 0 {
            // biowait refused to sleep (the runtime caught a context that must not): the
            // bio is still in flight with the caller's buffer, which we are about to give
            // back. There is no safe way on from here.
            die(b"geom-rs: biowait returned before the bio completed; its buffer would be freed under I/O\n");
        }
        match Errno::new(error) {
            Some(e) => Err(e),
            None => Ok((*bp).bio_completed),
        }
    }
}

/// A bio with no buffer of its own (`getrbuf`; dropping it is `freerbuf`): each request
/// points it at a buffer the caller lends, and waits for the request to finish before the
/// borrow ends. It can only be used where sleeping is allowed ([`SleepCtx`]): a taste reading
/// metadata (in [`Topology::unlocked`](crate::Topology::unlocked)), a worker thread.
///
/// Invariant: `bp` is a bio we allocated and own, not in flight while this value is not
/// inside one of its request methods.
///
/// ```no_run
/// use geom_core::{BareBio, Consumer, Result, SleepCtx};
///
/// fn read_label(cx: &SleepCtx, cp: Consumer, sector: &mut [u8; 512], at: i64) -> Result<usize> {
///     let mut bio = BareBio::new(cx);
///     bio.read(cx, cp, at, sector)
/// }
/// ```
pub struct BareBio {
    bp: NonNull<bio>,
}

// SAFETY: the bio is owned by this value.
unsafe impl Send for BareBio {}

impl BareBio {
    /// A bio, without sleeping (`g_new_bio`): `Err(ENOMEM)` when memory is short.
    pub fn try_new(_cx: &IoCtx) -> Result<BareBio> {
        // SAFETY: g_new_bio never sleeps.
        NonNull::new(unsafe { sys::g_new_bio() }).map(|bp| BareBio { bp }).ok_or(Errno::ENOMEM)
    }

    /// A bio, waiting for memory if need be (`g_alloc_bio`).
    pub fn new(_cx: &impl MayWait) -> BareBio {
        // SAFETY: g_alloc_bio may sleep, which the token allows.
        match NonNull::new(unsafe { sys::g_alloc_bio() }) {
            Some(bp) => BareBio { bp },
            None => die(b"geom-rs: g_alloc_bio returned NULL\n"),
        }
    }

    fn run(&mut self, cp: Consumer, cmd: u16, offset: i64, length: i64, data: *mut u8) -> Result<i64> {
        if offset < 0 || length < 0 {
            return Err(Errno::EINVAL);
        }
        let bp = self.bp.as_ptr();
        // SAFETY: the bio is ours and idle (invariant); the callers hold a SleepCtx and lend
        // `data` for `length` bytes until we return, which is after the bio is done.
        unsafe {
            sys::g_reset_bio(bp);
            (*bp).bio_cmd = cmd;
            (*bp).bio_offset = offset;
            (*bp).bio_length = length;
            (*bp).bio_data = data.cast();
            wait_io(bp, cp)
        }
    }

    /// Read into `buf` at `offset` and wait; returns the bytes read (fewer than asked at the
    /// provider's end).
    pub fn read(&mut self, _cx: &SleepCtx, cp: Consumer, offset: i64, buf: &mut [u8]) -> Result<usize> {
        self.run(cp, sys::BIO_READ, offset, buf.len() as i64, buf.as_mut_ptr()).map(|n| n as usize)
    }

    /// Write `buf` at `offset` and wait; returns the bytes written.
    pub fn write(&mut self, _cx: &SleepCtx, cp: Consumer, offset: i64, buf: &[u8]) -> Result<usize> {
        // GEOM only reads a WRITE's buffer.
        self.run(cp, sys::BIO_WRITE, offset, buf.len() as i64, buf.as_ptr().cast_mut()).map(|n| n as usize)
    }

    /// `BIO_DELETE` of `length` bytes at `offset`, and wait.
    pub fn delete(&mut self, _cx: &SleepCtx, cp: Consumer, offset: i64, length: i64) -> Result<()> {
        self.run(cp, sys::BIO_DELETE, offset, length, ptr::null_mut()).map(|_| ())
    }

    /// `BIO_FLUSH`, and wait.
    pub fn flush(&mut self, _cx: &SleepCtx, cp: Consumer) -> Result<()> {
        let at = cp.provider().map_or(0, |p| p.mediasize());
        self.run(cp, sys::BIO_FLUSH, at, 0, ptr::null_mut()).map(|_| ())
    }

    /// The error of the last request (`None`: success, or never sent).
    pub fn error(&self) -> Option<Errno> {
        // SAFETY: the bio is ours and idle (invariant).
        Errno::new(unsafe { self.bp.as_ref() }.error())
    }
}

impl Drop for BareBio {
    fn drop(&mut self) {
        // SAFETY: the bio is ours and idle (invariant).
        unsafe { sys::g_destroy_bio(self.bp.as_ptr()) };
    }
}

impl fmt::Debug for BareBio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BareBio").field("error", &self.error()).finish()
    }
}

// A context is moved through a [usize; N] slot; make sure the slot is aligned for it.
static_assertions::const_assert!(align_of::<[usize; HOOK_CONTEXT_SIZE / size_of::<usize>()]>() == align_of::<usize>());
