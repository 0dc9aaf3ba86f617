//! What a `no_std` Rust library needs inside a FreeBSD process: the global allocator over
//! libc's `malloc`, a panic handler that reports and aborts (geom(8) is a short-lived
//! command; nothing is left to unwind into), and the userland side of the parts of
//! `geom_core::sys::platform` userland code can reach (printing, memory, random numbers).

use core::alloc::{GlobalAlloc, Layout};
use core::fmt::Write;

use geom_core::sys::{c_int, c_void, malloc_type, M_ZERO};

use super::ffi;

/// `malloc(3)` returns memory aligned for any type (16 bytes on amd64).
const MALLOC_ALIGN: usize = 16;

/// Rust's heap in the library: libc's.
struct LibcHeap;

// SAFETY: memory comes from malloc/calloc/posix_memalign with at least the requested size and
// alignment and goes back to free; NULL reports failure.
unsafe impl GlobalAlloc for LibcHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let size = layout.size().max(1);
        if layout.align() <= MALLOC_ALIGN {
            // SAFETY: malloc(3) takes any size.
            return unsafe { ffi::malloc(size) }.cast();
        }
        let mut p = core::ptr::null_mut();
        // SAFETY: a power-of-two alignment (Layout's invariant), a multiple of sizeof(void *).
        match unsafe { ffi::posix_memalign(&mut p, layout.align(), size) } {
            0 => p.cast(),
            _ => core::ptr::null_mut(),
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MALLOC_ALIGN {
            // SAFETY: calloc(3) takes any size.
            return unsafe { ffi::calloc(1, layout.size().max(1)) }.cast();
        }
        // SAFETY: forwarded; zeroed below for its size.
        let p = unsafe { self.alloc(layout) };
        if !p.is_null() {
            // SAFETY: p holds layout.size() writable bytes.
            unsafe { core::ptr::write_bytes(p, 0, layout.size()) };
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: ptr came from malloc/calloc/posix_memalign (GlobalAlloc contract).
        unsafe { ffi::free(ptr.cast()) }
    }
}

#[global_allocator]
static HEAP: LibcHeap = LibcHeap;

/// Standard output through stdio (`printf`), so it interleaves with geom(8)'s own lines.
pub struct Stdout;

impl Write for Stdout {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let len = c_int::try_from(s.len()).map_err(|_| core::fmt::Error)?;
        // SAFETY: "%.*s" reads exactly len bytes of s.
        unsafe { ffi::printf(c"%.*s".as_ptr(), len, s.as_ptr()) };
        Ok(())
    }
}

/// Standard error through stdio (`fprintf(stderr, ...)`).
pub struct Stderr;

impl Write for Stderr {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let len = c_int::try_from(s.len()).map_err(|_| core::fmt::Error)?;
        // SAFETY: stderr is libc's stream for the whole process; "%.*s" reads len bytes.
        unsafe { ffi::fprintf(ffi::__stderrp, c"%.*s".as_ptr(), len, s.as_ptr()) };
        Ok(())
    }
}

#[panic_handler]
fn on_panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let _ = writeln!(Stderr, "geom: internal error: {}", info.message());
    // SAFETY: abort(3) has no preconditions.
    unsafe { ffi::abort() }
}

// The platform seam, for what userland code reaches: memory (KBuf and friends), console
// lines (kprintln! goes to standard error here), panics and random numbers. Locks, sleeps and
// threads are kernel matters: a library that referenced them would fail the link check.

#[no_mangle]
unsafe extern "C" fn geom_rs_malloc(size: usize, _mtp: *mut malloc_type, flags: c_int) -> *mut c_void {
    // SAFETY: calloc/malloc take any size; malloc types are a kernel notion.
    unsafe {
        if flags & M_ZERO != 0 {
            ffi::calloc(1, size.max(1))
        } else {
            ffi::malloc(size.max(1))
        }
    }
}

#[no_mangle]
unsafe extern "C" fn geom_rs_free(addr: *mut c_void, _mtp: *mut malloc_type) {
    // SAFETY: addr came from geom_rs_malloc (caller's contract).
    unsafe { ffi::free(addr) }
}

#[no_mangle]
unsafe extern "C" fn geom_rs_print(msg: *const u8, len: usize) {
    let len = c_int::try_from(len).unwrap_or(c_int::MAX);
    // SAFETY: msg holds len bytes (caller's contract).
    unsafe { ffi::fprintf(ffi::__stderrp, c"%.*s".as_ptr(), len, msg) };
}

#[no_mangle]
unsafe extern "C" fn geom_rs_panic(msg: *const u8, len: usize) -> ! {
    // SAFETY: as for geom_rs_print; abort(3) does not return.
    unsafe {
        geom_rs_print(msg, len);
        ffi::abort()
    }
}

#[no_mangle]
extern "C" fn geom_rs_random() -> u32 {
    // SAFETY: arc4random(3) has no preconditions.
    unsafe { ffi::arc4random() }
}

// The kernel's gctl accessors. `geom_core::Gctl` reads a kernel request through them, but a
// class library only ever builds userland requests (`Gctl::from_params`), so these are never
// called; they are defined here, local to the library, so that it does not import kernel
// names that geom(8)'s process might bind to something else. Reaching one is a bug: abort.

/// Stop: a kernel-request accessor was reached in userland.
fn kernel_only(name: &str) -> ! {
    let _ = writeln!(Stderr, "geom: internal error: {name} called in a class library");
    // SAFETY: abort(3) has no preconditions.
    unsafe { ffi::abort() }
}

#[no_mangle]
extern "C" fn gctl_get_param(_req: *mut c_void, _param: *const c_void, _len: *mut c_int) -> *mut c_void {
    kernel_only("gctl_get_param")
}

#[no_mangle]
extern "C" fn gctl_get_asciiparam(_req: *mut c_void, _param: *const c_void) -> *const c_void {
    kernel_only("gctl_get_asciiparam")
}

#[no_mangle]
extern "C" fn gctl_error(_req: *mut c_void, _fmt: *const c_void) -> c_int {
    kernel_only("gctl_error")
}
