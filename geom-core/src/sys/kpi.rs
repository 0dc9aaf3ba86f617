//! `extern "C"` declarations of the GEOM KPI a class calls (`sys/geom/geom.h`,
//! `sys/geom/geom_ctl.h`, `sys/sys/bio.h`, `sys/sys/sbuf.h`, `sys/sys/sx.h`).
//!
//! The symbols are resolved by the FreeBSD kernel when a class is linked into a `.ko`, and by
//! `geom-host` in userland. Where C has a macro rather than a function (`g_topology_lock`,
//! `g_getattr`, `g_free`), a Rust function below expands it the same way.
//!
//! All of these are unsafe to call: they take raw topology pointers, most require the topology
//! lock (see each function's FreeBSD manual page), and the sleeping ones must not be called
//! from start or done.

use super::bio_h::{bio, bio_queue_head};
use super::geom_ctl_h::gctl_req;
use super::geom_h::*;
use super::lock_h::sx;
use super::malloc_h::malloc_type;
use super::types::*;

unsafe extern "C" {
    /// The topology lock (`struct sx topology_lock`).
    pub static mut topology_lock: sx;
    /// GEOM's own malloc type, used by `g_malloc`/`g_free` and `g_read_data`'s buffers.
    pub static mut M_GEOM: [malloc_type; 1];
    /// Largest I/O size in bytes.
    pub static maxphys: u_long;

    // -- topology (geom_subr.c) --
    /// Create a geom named by a printf format; topology lock held. Never NULL.
    pub fn g_new_geomf(mp: *mut g_class, fmt: *const c_char, ...) -> *mut g_geom;
    /// Create a provider named by a printf format; it starts with error `ENXIO`.
    pub fn g_new_providerf(gp: *mut g_geom, fmt: *const c_char, ...) -> *mut g_provider;
    /// Add an extra device name to a provider.
    pub fn g_provider_add_alias(pp: *mut g_provider, fmt: *const c_char, ...);
    /// Create an unattached consumer; the geom must have an `orphan` method.
    pub fn g_new_consumer(gp: *mut g_geom) -> *mut g_consumer;
    /// Attach a consumer to a provider (`ENXIO`, `ELOOP` on failure).
    pub fn g_attach(cp: *mut g_consumer, pp: *mut g_provider) -> c_int;
    /// Detach a closed consumer with no I/O outstanding.
    pub fn g_detach(cp: *mut g_consumer);
    /// Free a detached consumer.
    pub fn g_destroy_consumer(cp: *mut g_consumer);
    /// Free a provider with no consumers.
    pub fn g_destroy_provider(pp: *mut g_provider);
    /// Free a geom with no consumers or providers.
    pub fn g_destroy_geom(gp: *mut g_geom);
    /// Tear a geom down: wither its providers and let GEOM destroy what becomes unused.
    pub fn g_wither_geom(gp: *mut g_geom, error: c_int);
    /// `g_wither_geom` after closing every consumer.
    pub fn g_wither_geom_close(gp: *mut g_geom, error: c_int);
    /// Wither one provider.
    pub fn g_wither_provider(pp: *mut g_provider, error: c_int);
    /// Set the error every new request and open of the provider gets (0: usable).
    pub fn g_error_provider(pp: *mut g_provider, error: c_int);
    /// Tell the consumers above that the provider is gone.
    pub fn g_orphan_provider(pp: *mut g_provider, error: c_int);
    /// Change a provider's size.
    pub fn g_resize_provider(pp: *mut g_provider, size: off_t);
    /// Look a provider up by name (a leading "/dev/" is ignored).
    pub fn g_provider_by_name(name: *const c_char) -> *mut g_provider;
    /// Offer every provider to a class again.
    pub fn g_retaste(mp: *mut g_class) -> c_int;
    /// Mark every other consumer of `pp` spoiled.
    pub fn g_spoil(pp: *mut g_provider, cp: *mut g_consumer);
    /// Report that the provider's media changed.
    pub fn g_media_changed(pp: *mut g_provider, flag: c_int) -> c_int;
    /// Report that the provider's media is gone.
    pub fn g_media_gone(pp: *mut g_provider, flag: c_int) -> c_int;
    /// Report that an attribute of the provider changed.
    pub fn g_attr_changed(pp: *mut g_provider, attr: *const c_char, flag: c_int) -> c_int;
    /// Change a consumer's read/write/exclusive open counts by the given deltas.
    pub fn g_access(cp: *mut g_consumer, dcr: c_int, dcw: c_int, dce: c_int) -> c_int;
    /// The default access method: allows everything.
    pub fn g_std_access(pp: *mut g_provider, dr: c_int, dw: c_int, de: c_int) -> c_int;
    /// The standard spoiled handler: detach and orphan everything above.
    pub fn g_std_spoiled(cp: *mut g_consumer);
    /// Answer a `BIO_GETATTR` if it names `attr` (returns 1 and delivers), else return 0.
    pub fn g_handleattr(bp: *mut bio, attr: *const c_char, val: *const c_void, len: c_int) -> c_int;
    /// `g_handleattr` for an `int`.
    pub fn g_handleattr_int(bp: *mut bio, attr: *const c_char, val: c_int) -> c_int;
    /// `g_handleattr` for an `off_t`.
    pub fn g_handleattr_off_t(bp: *mut bio, attr: *const c_char, val: off_t) -> c_int;
    /// `g_handleattr` for a `uint16_t`.
    pub fn g_handleattr_uint16_t(bp: *mut bio, attr: *const c_char, val: u16) -> c_int;
    /// `g_handleattr` for a string.
    pub fn g_handleattr_str(bp: *mut bio, attr: *const c_char, val: *const c_char) -> c_int;
    /// Synchronous `BIO_GETATTR` of an attribute of exactly `len` bytes (sleeps).
    pub fn g_getattr__(attr: *const c_char, cp: *mut g_consumer, var: *mut c_void, len: c_int) -> c_int;
    /// The module event handler `DECLARE_GEOM_CLASS` installs.
    pub fn g_modevent(m: module_t, what: c_int, arg: *mut c_void) -> c_int;
    /// `module_register_init(data)` (kern_module.c): the `SYSINIT` `DECLARE_MODULE` adds;
    /// registers the module described by the `moduledata_t` at `data` and sends it
    /// `MOD_LOAD`.
    pub fn module_register_init(data: *const c_void);

    // -- events (geom_event.c) --
    /// Queue `func(arg, 0)` on the event thread; the variadic tail is a NULL-terminated list
    /// of references that cancel the event when destroyed.
    pub fn g_post_event(func: g_event_t, arg: *mut c_void, flag: c_int, ...) -> c_int;
    /// `g_post_event` and sleep until it ran.
    pub fn g_waitfor_event(func: g_event_t, arg: *mut c_void, flag: c_int, ...) -> c_int;
    /// Cancel every queued event naming `ref_`.
    pub fn g_cancel_event(ref_: *mut c_void);

    // -- bios and I/O (geom_io.c, vfs_bio.c, subr_disk.c) --
    /// A zeroed bio, or NULL when memory is short (never sleeps).
    pub fn g_new_bio() -> *mut bio;
    /// A zeroed bio (may sleep, never NULL).
    pub fn g_alloc_bio() -> *mut bio;
    /// A child of `bp` carrying its command, range and data, or NULL (never sleeps).
    pub fn g_clone_bio(bp: *mut bio) -> *mut bio;
    /// `g_clone_bio` that may sleep and never fails.
    pub fn g_duplicate_bio(bp: *mut bio) -> *mut bio;
    /// Zero a bio for reuse.
    pub fn g_reset_bio(bp: *mut bio);
    /// Free a bio.
    pub fn g_destroy_bio(bp: *mut bio);
    /// Send a bio down through a consumer.
    pub fn g_io_request(bp: *mut bio, cp: *mut g_consumer);
    /// Complete a bio received by one of our providers.
    pub fn g_io_deliver(bp: *mut bio, error: c_int);
    /// Stock completion for clones: fold the child into its parent, deliver at the last one.
    pub fn g_std_done(bp: *mut bio);
    /// Synchronous `BIO_GETATTR` (sleeps).
    pub fn g_io_getattr(attr: *const c_char, cp: *mut g_consumer, len: *mut c_int, ptr: *mut c_void) -> c_int;
    /// Synchronous `BIO_FLUSH` (sleeps).
    pub fn g_io_flush(cp: *mut g_consumer) -> c_int;
    /// Synchronous read into a fresh `M_GEOM` buffer (sleeps); NULL and `*error` on failure.
    pub fn g_read_data(cp: *mut g_consumer, offset: off_t, length: off_t, error: *mut c_int) -> *mut c_void;
    /// Synchronous write (sleeps).
    pub fn g_write_data(cp: *mut g_consumer, offset: off_t, ptr: *mut c_void, length: off_t) -> c_int;
    /// Synchronous `BIO_DELETE` (sleeps).
    pub fn g_delete_data(cp: *mut g_consumer, offset: off_t, length: off_t) -> c_int;
    /// Print a one-line description of a bio with a formatted suffix.
    pub fn g_print_bio(prefix: *const c_char, bp: *const bio, fmtsuffix: *const c_char, ...);
    /// Sleep until a bio with no `bio_done` completes; returns its error.
    pub fn biowait(bp: *mut bio, wmesg: *const c_char) -> c_int;
    /// Complete a bio: call `bio_done`, or wake the `biowait` sleeper.
    pub fn biodone(bp: *mut bio);

    // -- bio queues (subr_disk.c) --
    /// Initialise a bio queue.
    pub fn bioq_init(head: *mut bio_queue_head);
    /// Append a bio.
    pub fn bioq_insert_tail(head: *mut bio_queue_head, bp: *mut bio);
    /// Prepend a bio.
    pub fn bioq_insert_head(head: *mut bio_queue_head, bp: *mut bio);
    /// Insert a bio in elevator order.
    pub fn bioq_disksort(head: *mut bio_queue_head, bp: *mut bio);
    /// The first bio, or NULL.
    pub fn bioq_first(head: *mut bio_queue_head) -> *mut bio;
    /// Remove and return the first bio, or NULL.
    pub fn bioq_takefirst(head: *mut bio_queue_head) -> *mut bio;
    /// Remove a bio.
    pub fn bioq_remove(head: *mut bio_queue_head, bp: *mut bio);

    // -- gctl (geom_ctl.c) --
    /// A raw parameter, or NULL; `*len` receives its size.
    pub fn gctl_get_param(req: *mut gctl_req, param: *const c_char, len: *mut c_int) -> *mut c_void;
    /// `gctl_get_param` limited to parameters with the given `GCTL_PARAM_*` flags.
    pub fn gctl_get_param_flags(req: *mut gctl_req, param: *const c_char, flags: c_int, len: *mut c_int)
        -> *mut c_void;
    /// A NUL-terminated string parameter, or NULL.
    pub fn gctl_get_asciiparam(req: *mut gctl_req, param: *const c_char) -> *const c_char;
    /// A parameter of exactly `len` bytes; records an error and returns NULL otherwise.
    pub fn gctl_get_paraml(req: *mut gctl_req, param: *const c_char, len: c_int) -> *mut c_void;
    /// Like `gctl_get_paraml`, but absence is not an error.
    pub fn gctl_get_paraml_opt(req: *mut gctl_req, param: *const c_char, len: c_int) -> *mut c_void;
    /// Write a writable parameter (0, or `EPERM`/`ENOSPC`/`EINVAL`).
    pub fn gctl_set_param(req: *mut gctl_req, param: *const c_char, ptr: *const c_void, len: c_int) -> c_int;
    /// `gctl_set_param` that records its failure in the request.
    pub fn gctl_set_param_err(req: *mut gctl_req, param: *const c_char, ptr: *const c_void, len: c_int);
    /// Record the request's error message (the first one wins); returns `EINVAL`.
    pub fn gctl_error(req: *mut gctl_req, fmt: *const c_char, ...) -> c_int;
    /// The class named by a string parameter, or NULL with an error recorded.
    pub fn gctl_get_class(req: *mut gctl_req, arg: *const c_char) -> *mut g_class;
    /// The geom of class `mp` named by a string parameter, or NULL with an error recorded.
    pub fn gctl_get_geom(req: *mut gctl_req, mp: *mut g_class, arg: *const c_char) -> *mut g_geom;
    /// The provider named by a string parameter, or NULL with an error recorded.
    pub fn gctl_get_provider(req: *mut gctl_req, arg: *const c_char) -> *mut g_provider;

    // -- sbuf(9) --
    /// Create an sbuf (`s` NULL: allocate one; `SBUF_AUTOEXTEND` in flags: grow on demand).
    pub fn sbuf_new(s: *mut sbuf, buf: *mut c_char, length: c_int, flags: c_int) -> *mut sbuf;
    /// Append formatted text.
    pub fn sbuf_printf(s: *mut sbuf, fmt: *const c_char, ...) -> c_int;
    /// Append a NUL-terminated string.
    pub fn sbuf_cat(s: *mut sbuf, str_: *const c_char) -> c_int;
    /// Append bytes.
    pub fn sbuf_bcat(s: *mut sbuf, buf: *const c_void, len: usize) -> c_int;
    /// Replace the contents with a string.
    pub fn sbuf_cpy(s: *mut sbuf, str_: *const c_char) -> c_int;
    /// Append one character.
    pub fn sbuf_putc(s: *mut sbuf, c: c_int) -> c_int;
    /// Empty the buffer.
    pub fn sbuf_clear(s: *mut sbuf);
    /// NUL-terminate; returns 0 or the error the sbuf ran into.
    pub fn sbuf_finish(s: *mut sbuf) -> c_int;
    /// The contents (after `sbuf_finish`).
    pub fn sbuf_data(s: *mut sbuf) -> *mut c_char;
    /// The length of the contents.
    pub fn sbuf_len(s: *mut sbuf) -> isize;
    /// 0, or the error (`ENOMEM`) the sbuf ran into.
    pub fn sbuf_error(s: *const sbuf) -> c_int;
    /// Free an sbuf.
    pub fn sbuf_delete(s: *mut sbuf);

    // -- sx(9), behind the topology lock macros --
    /// Take an sx lock exclusively.
    pub fn _sx_xlock(sx: *mut sx, opts: c_int, file: *const c_char, line: c_int) -> c_int;
    /// Release an exclusively held sx lock.
    pub fn _sx_xunlock(sx: *mut sx, file: *const c_char, line: c_int);
}

/// `SBUF_FIXEDLEN`.
pub const SBUF_FIXEDLEN: c_int = 0x0000_0000;
/// `SBUF_AUTOEXTEND`: grow the buffer as needed.
pub const SBUF_AUTOEXTEND: c_int = 0x0000_0001;

/// `g_topology_lock()`: take the topology lock.
///
/// # Safety
/// Not held by this thread already; not called from start or done.
pub unsafe fn g_topology_lock() {
    // SAFETY: topology_lock is the kernel's (or geom-host's) exported lock; _sx_xlock accepts
    // its address. The caller keeps the lock rules.
    unsafe {
        _sx_xlock(&raw mut topology_lock, 0, c"geom-rs".as_ptr(), 0);
    }
}

/// `g_topology_unlock()`: release the topology lock.
///
/// # Safety
/// Held by this thread.
pub unsafe fn g_topology_unlock() {
    // SAFETY: as for g_topology_lock; the caller holds the lock.
    unsafe {
        _sx_xunlock(&raw mut topology_lock, c"geom-rs".as_ptr(), 0);
    }
}

/// `g_getattr(attr, cp, &var)`: synchronous `BIO_GETATTR` into a value of exactly `T`'s size.
///
/// # Safety
/// As for `g_io_getattr`: may sleep; `cp` is attached and open for reading; `T` is plain data.
pub unsafe fn g_getattr<T>(attr: &core::ffi::CStr, cp: *mut g_consumer, var: &mut T) -> c_int {
    // SAFETY: var is a valid, writable T of the size passed.
    unsafe { g_getattr__(attr.as_ptr(), cp, (var as *mut T).cast(), core::mem::size_of::<T>() as c_int) }
}
