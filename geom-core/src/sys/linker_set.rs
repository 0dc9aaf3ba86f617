//! FreeBSD linker sets (`sys/sys/linker_set.h`): a section named `set_<name>` holding one
//! pointer per entry. The kernel linker walks `set_sysinit_set`, `set_sysuninit_set` and
//! `set_modmetadata_set` of every `.ko` it loads; `DATA_SET`, `SYSINIT` and
//! `MODULE_METADATA` are C macros that add such entries.
//!
//! The Rust counterparts are a [`SetEntry`] static with `#[used]` and
//! `#[link_section = "set_<name>"]`, and the [`sysinit!`](crate::sysinit) and
//! [`sysuninit!`](crate::sysuninit) macros built on it.
//!
//! Built for FreeBSD userland (a class's geom(8) library), the entries are not `#[used]`:
//! no kernel reads them there, and kept they would drag the kernel half of the class, and
//! its references to kernel symbols, into the library.

use super::module_h::{sysinit, sysinit_cfunc_t};
use super::types::*;

/// One entry of a linker set: a pointer to a static record (`__MAKE_SET`'s
/// `static void const *__set_<set>_sym_<sym>`).
///
/// The pointer sits in an `UnsafeCell` so the entry lands in a writable section: FreeBSD's
/// linker sorts `set_sysinit_set` in place before running it.
///
/// Invariant: the pointer is the address of a `'static` value (made by [`SetEntry::new`]);
/// only the kernel linker writes the entry (reordering entries of the same set).
#[repr(transparent)]
pub struct SetEntry(core::cell::UnsafeCell<*const c_void>);

// SAFETY: Rust code never writes the entry; the kernel linker does so before any other code
// of the module runs.
unsafe impl Sync for SetEntry {}

impl SetEntry {
    /// An entry for `record`.
    pub const fn new<T>(record: &'static T) -> SetEntry {
        SetEntry(core::cell::UnsafeCell::new(record as *const T as *const c_void))
    }

    /// The record's address.
    pub fn record(&self) -> *const c_void {
        // SAFETY: see the Sync impl: nothing writes the entry while Rust code runs.
        unsafe { *self.0.get() }
    }
}

impl sysinit {
    /// `SYSINIT(uniquifier, subsystem, order, func, ident)`'s record.
    pub const fn new(subsystem: c_uint, order: c_uint, func: sysinit_cfunc_t, udata: *const c_void) -> sysinit {
        sysinit { subsystem, order, next: core::ptr::null_mut(), func: Some(func), udata }
    }
}

// `__MAKE_SET` aligns each entry as a pointer.
static_assertions::assert_eq_size!(SetEntry, *const c_void);
static_assertions::assert_eq_align!(SetEntry, *const c_void);

/// `SYSINIT(name, subsystem, order, func, udata)`: run `func(udata)` when the module is
/// loaded, in `(subsystem, order)` order. Declares `static $name` (the record) and its entry
/// in `set_sysinit_set`.
#[macro_export]
macro_rules! sysinit {
    ($name:ident, $sub:expr, $order:expr, $func:expr, $udata:expr) => {
        $crate::__sysinit_in_set!("set_sysinit_set", $name, $sub, $order, $func, $udata);
    };
}

/// `SYSUNINIT(name, subsystem, order, func, udata)`: run `func(udata)` when the module is
/// unloaded, in reverse `(subsystem, order)` order. Declares `static $name` and its entry in
/// `set_sysuninit_set`.
#[macro_export]
macro_rules! sysuninit {
    ($name:ident, $sub:expr, $order:expr, $func:expr, $udata:expr) => {
        $crate::__sysinit_in_set!("set_sysuninit_set", $name, $sub, $order, $func, $udata);
    };
}

/// A `sysinit` record and its entry in linker set `$set` (the body of `sysinit!` and
/// `sysuninit!`).
#[doc(hidden)]
#[macro_export]
macro_rules! __sysinit_in_set {
    ($set:literal, $name:ident, $sub:expr, $order:expr, $func:expr, $udata:expr) => {
        #[allow(non_upper_case_globals)]
        static $name: $crate::sys::KernelCell<$crate::sys::sysinit> =
            $crate::sys::KernelCell::new($crate::sys::sysinit::new($sub, $order, $func, $udata));
        const _: () = {
            #[allow(unsafe_code)]
            #[cfg_attr(not(target_os = "freebsd"), used)]
            #[link_section = $set]
            static ENTRY: $crate::sys::SetEntry = $crate::sys::SetEntry::new(&$name);
        };
    };
}
