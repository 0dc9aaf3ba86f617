//! Rust's global allocator in the kernel: `malloc(9)` with the module's own malloc type (so
//! `vmstat -m` shows what the Rust side of a class holds), choosing its flags by context.
//!
//! `GlobalAlloc` is not told whether its caller may sleep, so the allocator finds out: a
//! thread holding the topology lock (taste, ctlreq, access, orphan, the event thread) may
//! sleep, because GEOM's topology lock is an `sx(9)` lock whose holders routinely do
//! (`g_access`, `g_read_data`); there the allocation is `M_WAITOK` and cannot fail. Anywhere
//! else, and in particular in start and done on the `g_down`/`g_up` threads or a direct
//! dispatch caller, it is `M_NOWAIT`: it never sleeps and may fail. The I/O path therefore
//! uses geom-core's fallible allocations (`KBox::try_new`, `Vec::try_reserve`), which turn a
//! failure into `ENOMEM`; an infallible `Box::new` that fails outside the topology lock ends in
//! `handle_alloc_error` and a kernel panic.
//!
//! As in C, a class must not allocate infallibly while it holds one of its own mutexes inside
//! a topology-lock context: that would be `malloc(M_WAITOK)` under a non-sleepable lock.

use core::alloc::{GlobalAlloc, Layout};

use geom_core::sys::{self, c_void, M_NOWAIT, M_WAITOK, M_ZERO};
use geom_core::MallocType;

use super::ffi;

/// `malloc(9)` returns memory aligned to at least this for any size (the smallest UMA bucket
/// is 16 bytes); stricter alignments go through `malloc_aligned`.
const MALLOC_ALIGN: usize = 16;

/// The global allocator of one kernel module, over its malloc type.
///
/// Invariant: `mtp` is a malloc type registered by the module's `SYSINIT` (`malloc_init`
/// runs at `SI_SUB_KMEM`, before the module's own code at `SI_SUB_DRIVERS`) and
/// unregistered only after the module's code stopped running.
pub struct KernelHeap {
    mtp: &'static MallocType,
}

impl KernelHeap {
    /// The allocator over `mtp` (the module declaration makes one over the module's heap type).
    pub const fn new(mtp: &'static MallocType) -> KernelHeap {
        KernelHeap { mtp }
    }

    fn malloc(&self, layout: Layout, extra: i32) -> *mut u8 {
        let flags = if may_sleep() { M_WAITOK } else { M_NOWAIT } | extra;
        let size = layout.size().max(1);
        // SAFETY: malloc(9) takes any size with a registered type (the invariant); M_WAITOK
        // is passed only when this thread may sleep (see may_sleep).
        unsafe {
            if layout.align() <= MALLOC_ALIGN {
                ffi::malloc(size, self.mtp.as_ptr(), flags).cast()
            } else {
                ffi::malloc_aligned(size, layout.align(), self.mtp.as_ptr(), flags).cast()
            }
        }
    }
}

// SAFETY: memory comes from malloc(9)/malloc_aligned(9) with at least the requested size and
// alignment, and goes back to free(9) with the same type; NULL reports failure.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.malloc(layout, 0)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.malloc(layout, M_ZERO)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: ptr came from malloc/malloc_aligned with this type (GlobalAlloc contract);
        // free(9) takes either.
        unsafe { ffi::free(ptr.cast::<c_void>(), self.mtp.as_ptr()) }
    }
}

/// `curthread` on amd64: the first word of the per-CPU area, which `%gs` points at in the
/// kernel (`OFFSETOF_CURTHREAD` is 0).
pub fn curthread() -> *const c_void {
    let td: *const c_void;
    // SAFETY: in kernel mode %gs is the per-CPU base and its first word the running thread;
    // the load has no side effects and reads no Rust memory.
    unsafe { core::arch::asm!("mov {}, gs:[0]", out(reg) td, options(nostack, readonly, preserves_flags)) };
    td
}

/// `sx_xholder(&topology_lock) == curthread`: does this thread hold the topology lock?
fn may_sleep() -> bool {
    /// `SX_LOCK_SHARED`: the lock word counts sharers instead of naming an owner.
    const SX_LOCK_SHARED: usize = 0x01;
    /// `SX_LOCK_FLAGMASK` (`sys/sys/sx.h`): the flag bits below the owner pointer.
    const SX_LOCK_FLAGMASK: usize = 0x1f;
    // SAFETY: the topology lock is a kernel-lifetime sx; its lock word is read atomically
    // (volatile, word-sized and aligned). A stale value can only name another owner, and
    // only the owner itself can see its own pointer there.
    let word = unsafe { core::ptr::read_volatile(&raw const sys::topology_lock.sx_lock) };
    word & SX_LOCK_SHARED == 0 && (word & !SX_LOCK_FLAGMASK) as *const c_void == curthread()
}
