//! The platform seam: the few kernel services whose names collide with libc, or which only a
//! kernel has. `kmod-glue` implements them over `malloc(9)`, `printf(9)`, `panic(9)`,
//! `mtx(9)`, `kproc_create(9)`, `msleep(9)`/`wakeup(9)` and `curthread`; `geom-host` implements them in
//! userland. Every other KPI is called under its FreeBSD name (see [`super::g_io_request`] and its neighbours).

use super::lock_h::mtx;
use super::malloc_h::malloc_type;
use super::types::*;

/// A kernel thread's body.
pub type kthread_fn = unsafe extern "C" fn(arg: *mut c_void);

unsafe extern "C" {
    /// `malloc(size, type, flags)`. With `M_NOWAIT` it may return NULL; with `M_WAITOK` it
    /// may sleep and never returns NULL.
    pub fn geom_rs_malloc(size: usize, mtp: *mut malloc_type, flags: c_int) -> *mut c_void;
    /// `free(addr, type)`.
    pub fn geom_rs_free(addr: *mut c_void, mtp: *mut malloc_type);
    /// Print one message (`printf("%.*s", len, msg)`); the text carries its own newline.
    pub fn geom_rs_print(msg: *const u8, len: usize);
    /// `panic("%.*s", len, msg)`.
    pub fn geom_rs_panic(msg: *const u8, len: usize) -> !;
    /// `mtx_init(m, name, NULL, opts)`.
    pub fn geom_rs_mtx_init(m: *mut mtx, name: *const c_char, opts: c_int);
    /// `mtx_destroy(m)`.
    pub fn geom_rs_mtx_destroy(m: *mut mtx);
    /// `mtx_lock(m)`.
    pub fn geom_rs_mtx_lock(m: *mut mtx);
    /// `mtx_unlock(m)`.
    pub fn geom_rs_mtx_unlock(m: *mut mtx);
    /// `msleep(chan, m, pri, wmesg, timo)` with the timeout in milliseconds (0: forever).
    /// Returns 0 when woken, `EWOULDBLOCK` on timeout. `m` may be NULL (`pause(9)`-style).
    pub fn geom_rs_msleep(chan: *const c_void, m: *mut mtx, pri: c_int, wmesg: *const c_char, timo_ms: c_int) -> c_int;
    /// `wakeup(chan)`.
    pub fn geom_rs_wakeup(chan: *const c_void);
    /// `wakeup_one(chan)`.
    pub fn geom_rs_wakeup_one(chan: *const c_void);
    /// `sbinuptime()` in nanoseconds: a monotonic clock for deadlines.
    pub fn geom_rs_uptime_ns() -> u64;
    /// `arc4random()`: 32 random bits. The host runtime draws them from a per-runtime seeded
    /// generator, so the sequence replays from its seed.
    pub fn geom_rs_random() -> u32;
    /// `kproc_create(func, arg, NULL, 0, 0, "%s", name)`: start a kernel thread running
    /// `func(arg)`. The thread ends when `func` returns (the kernel glue calls `kproc_exit`
    /// then), so no thread has to exit from the middle of a call chain.
    pub fn geom_rs_kthread_create(func: kthread_fn, arg: *mut c_void, name: *const c_char) -> c_int;
    /// `curthread`: an address that identifies the calling thread for as long as it lives
    /// (never NULL). A worker uses it to tell whether it is being stopped from its own thread.
    pub fn geom_rs_curthread() -> *const c_void;
}
