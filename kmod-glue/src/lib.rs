//! # kmod-glue
//!
//! The runtime a geom-rs class needs on FreeBSD, in its two FreeBSD homes. A class never
//! calls it: `#[geom_class]` (through `geom_core::declare_geom_class!`) invokes its macros
//! when the class crate is built for one of them, and `cargo xtask kmod` does the builds.
//!
//! * **The kernel module** (`x86_64-unknown-none`, linked into `geom_<class>.ko`):
//!   `kernel_module!` gives the module its Rust heap: a malloc type named after the module,
//!   registered by the same `SYSINIT`/`SYSUNINIT` pair `MALLOC_DEFINE` emits, and the global
//!   allocator over it (`KernelHeap`, which picks `M_WAITOK` or `M_NOWAIT` by context). The
//!   crate also supplies the panic handler (into `panic(9)`) and the kernel side of
//!   `geom_core::sys::platform`: `printf(9)`, `mtx(9)`, `msleep`/`wakeup`, `binuptime`,
//!   `arc4random`, `kproc_create(9)` and `curthread`.
//! * **The geom(8) class library** (`x86_64-unknown-freebsd` with the `geom-lib` feature,
//!   linked into `geom_<class>.so`): `geom_library!` exports `lib_version`, `version` and
//!   `class_commands` generated from the class's verb declaration, and runs the verbs
//!   FreeBSD's utilities handle in userland (`label`, `clear`, `dump`) over libgeom.
//!
//! Built for the host (as `cargo test --workspace` does), the crate is empty: host tests run
//! classes in `geom-host`, which implements the same seam in userland.
#![no_std]
#![warn(missing_docs)]

#[cfg(any(target_os = "none", feature = "geom-lib"))]
extern crate alloc;

#[cfg(target_os = "none")]
mod kernel;
#[cfg(target_os = "none")]
pub use kernel::KernelHeap;

#[cfg(feature = "geom-lib")]
pub mod geom_lib;

#[doc(hidden)]
pub use geom_core as __geom_core;

/// geom(8)'s view of a class: the three symbols a class library exports, generated from the
/// class's verbs (see the `geom_lib` module). Invoked by `geom_core::declare_geom_class!` when building
/// for FreeBSD userland; without the `geom-lib` feature it expands to nothing, so a FreeBSD
/// host build of the workspace stays an ordinary program.
#[cfg(feature = "geom-lib")]
#[macro_export]
macro_rules! geom_library {
    ($class:ty) => {
        const _: () = {
            use gc::Verbs as _;
            use $crate::__geom_core as gc;
            /// `G_LIB_VERSION`: the library interface geom(8) expects.
            #[allow(unsafe_code, non_upper_case_globals)]
            #[no_mangle]
            static lib_version: u32 = gc::sys::G_LIB_VERSION;
            /// The class's version, which geom(8) sends with every request.
            #[allow(unsafe_code, non_upper_case_globals)]
            #[no_mangle]
            static version: u32 = match <$class as gc::GeomClass>::VERSION {
                ::core::option::Option::Some(v) => v,
                ::core::option::Option::None => 0,
            };
            /// The verbs (geom(8) marks the options it saw in `go_type`, so the table is
            /// writable).
            #[allow(unsafe_code, non_upper_case_globals)]
            #[no_mangle]
            static class_commands: gc::sys::KernelCell<
                [gc::sys::g_command; <<$class as gc::GeomClass>::Verb as gc::Verbs>::VERBS.len() + 1],
            > = gc::sys::KernelCell::new(gc::verbs::command_table(
                <<$class as gc::GeomClass>::Verb as gc::Verbs>::VERBS,
                ::core::option::Option::Some($crate::geom_lib::local_verb::<$class>),
            ));
        };
    };
}

/// Without the `geom-lib` feature: nothing (see the other definition).
#[cfg(not(feature = "geom-lib"))]
#[macro_export]
macro_rules! geom_library {
    ($class:ty) => {};
}

/// The kernel-only part of a module's declaration: the module's Rust heap (a malloc type named
/// `$kld`, registered at `SI_SUB_KMEM` like `MALLOC_DEFINE`) and the global allocator over it.
/// Invoked by `geom_core::declare_geom_class!` when building for the kernel.
#[cfg(target_os = "none")]
#[macro_export]
macro_rules! kernel_module {
    ($kld:expr) => {
        const _: () = {
            use $crate::__geom_core as gc;
            static HEAP: gc::MallocType = gc::MallocType::new($kld);
            gc::sysinit!(
                HEAP_INIT,
                gc::sys::SI_SUB_KMEM,
                gc::sys::SI_ORDER_THIRD,
                gc::sys::malloc_init,
                HEAP.sysinit_arg()
            );
            gc::sysuninit!(
                HEAP_UNINIT,
                gc::sys::SI_SUB_KMEM,
                gc::sys::SI_ORDER_ANY,
                gc::sys::malloc_uninit,
                HEAP.sysinit_arg()
            );
            #[global_allocator]
            static ALLOCATOR: $crate::KernelHeap = $crate::KernelHeap::new(&HEAP);
        };
    };
}
