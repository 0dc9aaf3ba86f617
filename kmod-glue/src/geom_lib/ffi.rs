//! The FreeBSD libc and libgeom functions a class library calls. geom(8) links both, so they
//! are in the process when it `dlopen`s the library (the checker's allow-list in
//! `xtask/allowlist/` holds them).

use geom_core::sys::{c_char, c_int, c_void};

/// `FILE`, only ever behind a pointer (named as C names it).
#[repr(C)]
#[allow(clippy::upper_case_acronyms)]
pub struct FILE {
    _opaque: [u8; 0],
}

unsafe extern "C" {
    /// libc's standard error stream (`stderr` is a macro for it).
    pub static __stderrp: *mut FILE;
    /// `printf(3)`.
    pub fn printf(fmt: *const c_char, ...) -> c_int;
    /// `fprintf(3)`.
    pub fn fprintf(stream: *mut FILE, fmt: *const c_char, ...) -> c_int;
    /// `malloc(3)`.
    pub fn malloc(size: usize) -> *mut c_void;
    /// `calloc(3)`.
    pub fn calloc(n: usize, size: usize) -> *mut c_void;
    /// `posix_memalign(3)`.
    pub fn posix_memalign(p: *mut *mut c_void, align: usize, size: usize) -> c_int;
    /// `free(3)`.
    pub fn free(p: *mut c_void);
    /// `abort(3)`.
    pub fn abort() -> !;
    /// `arc4random(3)`.
    pub fn arc4random() -> u32;
    /// `pread(2)`.
    pub fn pread(fd: c_int, buf: *mut c_void, n: usize, offset: i64) -> isize;
    /// `pwrite(2)`.
    pub fn pwrite(fd: c_int, buf: *const c_void, n: usize, offset: i64) -> isize;
    /// `errno` is `(*__error())`.
    pub fn __error() -> *mut c_int;

    /// libgeom's `g_open(name, dowrite)`: open `/dev/<name>` (a name with a '/' as given).
    pub fn g_open(name: *const c_char, dowrite: c_int) -> c_int;
    /// libgeom's `g_close(fd)`.
    pub fn g_close(fd: c_int) -> c_int;
    /// libgeom's `g_mediasize(fd)` (`DIOCGMEDIASIZE`); -1 on error.
    pub fn g_mediasize(fd: c_int) -> i64;
    /// libgeom's `g_sectorsize(fd)` (`DIOCGSECTORSIZE`); -1 on error.
    pub fn g_sectorsize(fd: c_int) -> isize;
    /// libgeom's `g_flush(fd)` (`DIOCGFLUSH`).
    pub fn g_flush(fd: c_int) -> c_int;
}

/// `errno`.
pub fn errno() -> c_int {
    // SAFETY: __error() returns the calling thread's errno slot.
    unsafe { *__error() }
}
