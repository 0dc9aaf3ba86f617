//! The UMA zone allocator's interface (`sys/vm/uma.h`): zones of same-sized items.
//!
//! `uma_zalloc(zone, flags)` and `uma_zfree(zone, item)` are `static __inline` wrappers in C
//! that pass a NULL argument to `uma_zalloc_arg` / `uma_zfree_arg`; the kernel exports only
//! the `_arg` functions, so those are what is declared, and the wrappers are expanded below.

use super::types::*;

/// Constructor, run on every allocation: `int (*)(void *mem, int size, void *arg, int flags)`.
pub type uma_ctor = unsafe extern "C" fn(mem: *mut c_void, size: c_int, arg: *mut c_void, flags: c_int) -> c_int;
/// Destructor, run on every free: `void (*)(void *mem, int size, void *arg)`.
pub type uma_dtor = unsafe extern "C" fn(mem: *mut c_void, size: c_int, arg: *mut c_void);
/// Initialiser, run when memory enters the zone's cache: `int (*)(void *mem, int size, int flags)`.
pub type uma_init = unsafe extern "C" fn(mem: *mut c_void, size: c_int, flags: c_int) -> c_int;
/// Finaliser, run when memory leaves the zone: `void (*)(void *mem, int size)`.
pub type uma_fini = unsafe extern "C" fn(mem: *mut c_void, size: c_int);

/// The smallest item UMA hands out (`UMA_SMALLEST_UNIT`); smaller sizes are rounded up.
pub const UMA_SMALLEST_UNIT: usize = 8;

// Alignment masks for uma_zcreate's `align` (a mask: alignment - 1). UMA_ALIGN_CACHE is a
// function call in current kernels (uma_get_cache_align_mask()) and is left out.
/// Pointer alignment (`sizeof(void *) - 1`).
pub const UMA_ALIGN_PTR: c_int = 7;
/// `long` alignment.
pub const UMA_ALIGN_LONG: c_int = 7;
/// `int` alignment.
pub const UMA_ALIGN_INT: c_int = 3;
/// `short` alignment.
pub const UMA_ALIGN_SHORT: c_int = 1;
/// Byte alignment (a mask of 0: no alignment beyond one byte).
pub const UMA_ALIGN_CHAR: c_int = 0;

/// `UMA_ALIGNOF(type)`: the mask for `T`'s alignment.
pub const fn uma_alignof<T>() -> c_int {
    (core::mem::align_of::<T>() - 1) as c_int
}

// uma_zcreate flags.
/// Do not regulate the cache size under memory pressure.
pub const UMA_ZONE_UNMANAGED: u32 = 0x0001;
/// Zero items when they enter the zone.
pub const UMA_ZONE_ZINIT: u32 = 0x0002;
/// Items must be physically contiguous.
pub const UMA_ZONE_CONTIG: u32 = 0x0004;
/// UMA may not touch the items' memory.
pub const UMA_ZONE_NOTOUCH: u32 = 0x0008;
/// For `malloc(9)` itself only.
pub const UMA_ZONE_MALLOC: u32 = 0x0010;
/// Never give slabs back.
pub const UMA_ZONE_NOFREE: u32 = 0x0020;
/// A lock class of its own.
pub const UMA_ZONE_MTXCLASS: u32 = 0x0040;
/// For the VM system only.
pub const UMA_ZONE_VM: u32 = 0x0080;
/// The backing allocator does not return pages.
pub const UMA_ZONE_NOTPAGE: u32 = 0x0100;
/// A secondary zone.
pub const UMA_ZONE_SECONDARY: u32 = 0x0200;
/// No per-CPU buckets.
pub const UMA_ZONE_NOBUCKET: u32 = 0x0400;
/// The largest buckets.
pub const UMA_ZONE_MAXBUCKET: u32 = 0x0800;
/// Spread items over cache lines.
pub const UMA_ZONE_CACHESPREAD: u32 = 0x2000;
/// Leave out of minidumps.
pub const UMA_ZONE_NODUMP: u32 = 0x4000;
/// Per-CPU items.
pub const UMA_ZONE_PCPU: u32 = 0x8000;
/// First-touch NUMA policy.
pub const UMA_ZONE_FIRSTTOUCH: u32 = 0x1_0000;
/// Round-robin NUMA policy.
pub const UMA_ZONE_ROUNDROBIN: u32 = 0x2_0000;
/// Safe memory reclamation.
pub const UMA_ZONE_SMR: u32 = 0x4_0000;
/// No KASAN checks.
pub const UMA_ZONE_NOKASAN: u32 = 0x8_0000;

unsafe extern "C" {
    /// Create a zone of `size`-byte items aligned to `align + 1`. `name` must stay valid
    /// until the zone is destroyed. May sleep; never returns NULL.
    pub fn uma_zcreate(
        name: *const c_char,
        size: usize,
        ctor: Option<uma_ctor>,
        dtor: Option<uma_dtor>,
        uminit: Option<uma_init>,
        fini: Option<uma_fini>,
        align: c_int,
        flags: u32,
    ) -> uma_zone_t;
    /// Destroy an empty zone (a zone with items still allocated is reported, and those
    /// items' memory is lost). May sleep.
    pub fn uma_zdestroy(zone: uma_zone_t);
    /// An item, `arg` passed to the constructor. With `M_NOWAIT` it may return NULL; with
    /// `M_WAITOK` it may sleep and does not return NULL. `M_ZERO` zeroes the item.
    pub fn uma_zalloc_arg(zone: uma_zone_t, arg: *mut c_void, flags: c_int) -> *mut c_void;
    /// Give an item back, `arg` passed to the destructor. Never sleeps; NULL is ignored.
    pub fn uma_zfree_arg(zone: uma_zone_t, item: *mut c_void, arg: *mut c_void);
}

/// `uma_zalloc(zone, flags)`: `uma_zalloc_arg(zone, NULL, flags)`.
///
/// # Safety
/// `zone` is a live zone; `M_WAITOK` only where sleeping is allowed.
pub unsafe fn uma_zalloc(zone: uma_zone_t, flags: c_int) -> *mut c_void {
    // SAFETY: the caller's contract is uma_zalloc_arg's.
    unsafe { uma_zalloc_arg(zone, core::ptr::null_mut(), flags) }
}

/// `uma_zfree(zone, item)`: `uma_zfree_arg(zone, item, NULL)`.
///
/// # Safety
/// `zone` is a live zone and `item` NULL or an item allocated from it and not yet freed.
pub unsafe fn uma_zfree(zone: uma_zone_t, item: *mut c_void) {
    // SAFETY: the caller's contract is uma_zfree_arg's.
    unsafe { uma_zfree_arg(zone, item, core::ptr::null_mut()) }
}
