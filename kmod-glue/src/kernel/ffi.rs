//! The FreeBSD kernel functions the kernel runtime calls, and nothing else: the GEOM KPI a
//! class uses is declared in `geom_core::sys`. Each is a real exported kernel symbol (the
//! checker's allow-list in `xtask/allowlist/` holds them); the C macros in front of them
//! (`mtx_lock`, `msleep`, `curthread`) are expanded where they are called.

use geom_core::sys::{c_char, c_int, c_void, malloc_type};

/// `struct bintime` (`sys/sys/_bintime.h`): seconds and a binary fraction of a second.
#[repr(C)]
pub struct bintime {
    /// Whole seconds.
    pub sec: i64,
    /// Fraction of a second, in units of 2^-64 s.
    pub frac: u64,
}

unsafe extern "C" {
    /// `malloc(9)` (`sys/kern/kern_malloc.c`).
    pub fn malloc(size: usize, mtp: *mut malloc_type, flags: c_int) -> *mut c_void;
    /// `malloc_aligned(9)`: for alignments above what `malloc` guarantees.
    pub fn malloc_aligned(size: usize, align: usize, mtp: *mut malloc_type, flags: c_int) -> *mut c_void;
    /// `free(9)`.
    pub fn free(addr: *mut c_void, mtp: *mut malloc_type);
    /// `printf(9)` (`sys/kern/subr_prf.c`).
    pub fn printf(fmt: *const c_char, ...) -> c_int;
    /// `panic(9)` (`sys/kern/kern_shutdown.c`).
    pub fn panic(fmt: *const c_char, ...) -> !;
    /// `mtx_init(m, name, type, opts)` is `_mtx_init(&m->mtx_lock, ...)` (`sys/sys/mutex.h`).
    pub fn _mtx_init(c: *mut usize, name: *const c_char, type_: *const c_char, opts: c_int);
    /// `mtx_destroy(m)` is `_mtx_destroy(&m->mtx_lock)`.
    pub fn _mtx_destroy(c: *mut usize);
    /// `mtx_lock(m)` in a module (`LOCK_DEBUG > 0` for `KLD_MODULE`) is
    /// `__mtx_lock_flags(&m->mtx_lock, 0, file, line)`.
    pub fn __mtx_lock_flags(c: *mut usize, opts: c_int, file: *const c_char, line: c_int);
    /// `mtx_unlock(m)` in a module.
    pub fn __mtx_unlock_flags(c: *mut usize, opts: c_int, file: *const c_char, line: c_int);
    /// What `msleep_sbt`, `tsleep` and `pause` expand to (`sys/kern/kern_synch.c`).
    pub fn _sleep(
        chan: *const c_void,
        lock: *mut c_void,
        pri: c_int,
        wmesg: *const c_char,
        sbt: i64,
        pr: i64,
        flags: c_int,
    ) -> c_int;
    /// `wakeup(9)`.
    pub fn wakeup(chan: *const c_void);
    /// `wakeup_one(9)`.
    pub fn wakeup_one(chan: *const c_void);
    /// `binuptime(9)`: time since boot (`sys/kern/kern_tc.c`).
    pub fn binuptime(bt: *mut bintime);
    /// `arc4random(9)` (`sys/libkern/arc4random.c`).
    pub fn arc4random() -> u32;
    /// `kproc_create(9)` (`sys/kern/kern_kthread.c`).
    pub fn kproc_create(
        func: unsafe extern "C" fn(*mut c_void),
        arg: *mut c_void,
        newpp: *mut *mut c_void,
        flags: c_int,
        pages: c_int,
        fmt: *const c_char,
        ...
    ) -> c_int;
    /// `kproc_exit(9)`: end the calling kernel process.
    pub fn kproc_exit(code: c_int) -> !;
}

/// `printf(9)`'s type.
pub type PrintfFn = unsafe extern "C" fn(fmt: *const c_char, ...) -> c_int;

/// `printf`, reached through a pointer the optimiser cannot see through.
///
/// LLVM knows C's `printf` and rewrites some calls into `puts` or `putchar`, which the kernel
/// does not export. The "%.*s" format used here is not one it rewrites today; loading the
/// function from a volatile static makes the call opaque, so no future rewrite can apply
/// either. (The module checker's allow-list would catch a stray `puts` anyway.)
pub fn printf_opaque() -> PrintfFn {
    static PRINTF: PrintfFn = printf;
    // SAFETY: a read of an initialised, immutable static of pointer size.
    unsafe { core::ptr::read_volatile(&PRINTF) }
}

/// `SBT_1MS`: one millisecond as an `sbintime_t` (32.32 fixed point seconds).
pub const SBT_1MS: i64 = (1i64 << 32) / 1000;
