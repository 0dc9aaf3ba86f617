//! Lock structures (`sys/sys/_lock.h`, `_mutex.h`, `_sx.h`).
//!
//! Classes lock through the platform seam ([`super::platform`]), which the kernel glue maps
//! onto `mtx(9)` and `geom-host` onto host locks; these structures only give the storage its
//! kernel size so that a lock can live inside a class's C-visible state.

use super::types::*;

/// `struct lock_object`: the common head of every kernel lock.
#[repr(C)]
pub struct lock_object {
    /// Lock name.
    pub lo_name: *const c_char,
    /// Lock class and options.
    pub lo_flags: u_int,
    /// Class-specific data.
    pub lo_data: u_int,
    /// WITNESS state.
    pub lo_witness: *mut c_void,
}

/// `struct mtx`: a mutex.
#[repr(C)]
pub struct mtx {
    /// Common lock head.
    pub lock_object: lock_object,
    /// Owner word.
    pub mtx_lock: usize,
}

/// `struct sx`: a shared/exclusive lock (the topology lock is one).
#[repr(C)]
pub struct sx {
    /// Common lock head.
    pub lock_object: lock_object,
    /// Owner word.
    pub sx_lock: usize,
}

/// `mtx_init` option: an ordinary (sleep) mutex.
pub const MTX_DEF: c_int = 0x0000;
/// `mtx_init` option: a spin mutex.
pub const MTX_SPIN: c_int = 0x0001;
/// `mtx_init` option: may be acquired recursively.
pub const MTX_RECURSE: c_int = 0x0004;
/// `mtx_init` option: not checked by WITNESS.
pub const MTX_NOWITNESS: c_int = 0x0008;
/// `mtx_init` option: duplicate names are fine for WITNESS.
pub const MTX_DUPOK: c_int = 0x0010;
/// `mtx_init` option: the storage is not zeroed yet.
pub const MTX_NEW: c_int = 0x0040;

/// `msleep` priority: I/O.
pub const PRIBIO: c_int = 43;
/// `msleep` flag: wake on signals.
pub const PCATCH: c_int = 0x100;
/// `msleep` flag: drop the mutex on return.
pub const PDROP: c_int = 0x200;

// sys/sys/_lock.h, _mutex.h, _sx.h (amd64, same in 14, 15 and 16).
static_assertions::assert_eq_size!(lock_object, [u8; 24]);
static_assertions::assert_eq_size!(mtx, [u8; 32]);
static_assertions::assert_eq_size!(sx, [u8; 32]);
static_assertions::const_assert_eq!(core::mem::offset_of!(mtx, mtx_lock), 24);
