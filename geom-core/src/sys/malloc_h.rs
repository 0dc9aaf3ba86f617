//! `struct malloc_type` and the `malloc(9)` flags (`sys/sys/malloc.h`).

use super::types::*;

/// Do not sleep: return NULL when memory is short. The only mode allowed in start and done.
pub const M_NOWAIT: c_int = 0x0001;
/// May sleep until memory is available; never returns NULL.
pub const M_WAITOK: c_int = 0x0002;
/// Zero the allocation.
pub const M_ZERO: c_int = 0x0100;
/// Do not reclaim memory to satisfy the request.
pub const M_NORECLAIM: c_int = 0x0080;
/// Do not ask the VM for more memory.
pub const M_NOVM: c_int = 0x0200;
/// May dip into reserved memory.
pub const M_USE_RESERVE: c_int = 0x0400;
/// Leave out of kernel dumps.
pub const M_NODUMP: c_int = 0x0800;

/// Kernel-private statistics of a malloc type (`struct malloc_type_internals`).
#[repr(C)]
pub struct malloc_type_internals {
    /// DTrace probe ids.
    pub mti_probes: [u32; 2],
    /// Zone index.
    pub mti_zone: u8,
    /// Per-CPU statistics.
    pub mti_stats: *mut c_void,
    /// Spare.
    pub mti_spare: [u_long; 8],
}

/// `struct malloc_type`: what `MALLOC_DEFINE` creates; memory is accounted to it.
#[repr(C)]
pub struct malloc_type {
    /// Kernel-owned linkage.
    pub ks_next: *mut malloc_type,
    /// Must be the running kernel's `M_VERSION`.
    pub ks_version: u_long,
    /// Short description (shown by `vmstat -m`).
    pub ks_shortdesc: *const c_char,
    /// Kernel-private statistics.
    pub ks_mti: malloc_type_internals,
}

impl malloc_type {
    /// What `MALLOC_DEFINE(M_X, shortdesc, _)` initialises: the release's `M_VERSION` and the
    /// short description, the rest zero.
    pub const fn new(shortdesc: *const c_char) -> Self {
        malloc_type {
            ks_next: core::ptr::null_mut(),
            ks_version: super::release::M_VERSION as u_long,
            ks_shortdesc: shortdesc,
            ks_mti: malloc_type_internals {
                mti_probes: [0; 2],
                mti_zone: 0,
                mti_stats: core::ptr::null_mut(),
                mti_spare: [0; 8],
            },
        }
    }
}

// sys/sys/malloc.h @ 6d13bb0e (layout unchanged in 14, 15 and 16; only M_VERSION moves).
static_assertions::assert_eq_size!(malloc_type_internals, [u8; 88]);
static_assertions::assert_eq_size!(malloc_type, [u8; 112]);
static_assertions::const_assert_eq!(core::mem::offset_of!(malloc_type, ks_version), 8);
static_assertions::const_assert_eq!(core::mem::offset_of!(malloc_type, ks_shortdesc), 16);
static_assertions::const_assert_eq!(core::mem::offset_of!(malloc_type, ks_mti), 24);

/// The alignment every `malloc(9)` allocation has at least, on amd64. Small requests come
/// from power-of-two UMA zones of 16 bytes and up, whose items are aligned to their size;
/// large ones are whole pages (`sys/kern/kern_malloc.c`: `KMEM_ZBASE`, `kmemzones`,
/// `malloc_large`). geom-host's `malloc` guarantees the same 16 bytes.
pub const MALLOC_MIN_ALIGN: usize = 16;

unsafe extern "C" {
    /// `malloc_init(data)`: register the malloc type `data` points at (what the `SYSINIT`
    /// of `MALLOC_DEFINE` runs at module load). The kernel panics if its `ks_version` is not
    /// the running kernel's `M_VERSION`.
    ///
    /// C declares it `void malloc_init(void *)`; it is declared here with the
    /// `sysinit_cfunc_t` parameter type (`const void *`, the same ABI) so that it can be put
    /// in a `struct sysinit` as it is.
    pub fn malloc_init(data: *const c_void);
    /// `malloc_uninit(data)`: unregister the malloc type (the `SYSUNINIT` of
    /// `MALLOC_DEFINE`, at module unload); prints a warning if memory of that type is still
    /// allocated. Declared like [`malloc_init`].
    pub fn malloc_uninit(data: *const c_void);
}
