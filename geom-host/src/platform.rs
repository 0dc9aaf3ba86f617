//! The host side of `geom_core::sys::platform`: `malloc(9)` with per-type accounting,
//! `printf`, `panic`, `mtx(9)`, `msleep`/`wakeup` and kernel threads, in userland.

use std::alloc::{alloc, alloc_zeroed, dealloc, Layout};
use std::collections::HashMap;
use std::ffi::CStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::thread::ThreadId;
use std::time::Duration;

use geom_core::sys::{self, c_char, c_int, c_void, errno, malloc_type, mtx};

use crate::invariants::{self, lock, Violation, ViolationKind};
use crate::runtime::{kernel, kernel_arc};

/// Bytes in front of every allocation: its size, so `free` can rebuild the layout.
const HEADER: usize = 16;

/// `M_GEOM`'s address.
pub(crate) fn m_geom() -> *mut malloc_type {
    crate::topology::M_GEOM.get().cast()
}

/// Outstanding bytes and allocations per malloc type, for `vmstat -m`-style reports, and
/// the kernel memory allocators' fault injection.
#[derive(Default)]
pub(crate) struct MallocStats {
    by_type: Mutex<HashMap<usize, (i64, i64)>>,
    /// Fail this many upcoming `M_NOWAIT` mallocs.
    fail_malloc: AtomicU64,
    /// Fail this many upcoming `M_NOWAIT` UMA zone allocations.
    fail_zone: AtomicU64,
}

/// Take one injected failure from `counter`, if any is left.
fn take_failure(counter: &AtomicU64) -> bool {
    counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok()
}

impl MallocStats {
    /// Outstanding (bytes, allocations) of one type.
    pub(crate) fn usage(&self, mtp: *const malloc_type) -> (i64, i64) {
        lock(&self.by_type).get(&(mtp as usize)).copied().unwrap_or_default()
    }

    /// Make the next `n` `M_NOWAIT` mallocs fail.
    pub(crate) fn fail_next_mallocs(&self, n: u64) {
        self.fail_malloc.store(n, Ordering::Release);
    }

    /// Make the next `n` `M_NOWAIT` zone allocations fail.
    pub(crate) fn fail_next_zone_allocs(&self, n: u64) {
        self.fail_zone.store(n, Ordering::Release);
    }

    /// Should this `M_NOWAIT` zone allocation fail?
    pub(crate) fn zone_alloc_fails(&self) -> bool {
        take_failure(&self.fail_zone)
    }

    fn account(&self, mtp: *mut malloc_type, bytes: i64, count: i64) {
        let mut g = lock(&self.by_type);
        let e = g.entry(mtp as usize).or_default();
        e.0 += bytes;
        e.1 += count;
    }

    /// Types that still hold memory: (short description, bytes, allocations).
    pub(crate) fn outstanding(&self) -> Vec<(String, i64, i64)> {
        lock(&self.by_type)
            .iter()
            .filter(|(_, &(b, n))| b != 0 || n != 0)
            .map(|(&t, &(b, n))| {
                // SAFETY: a malloc type is a static of the class or the runtime that outlives
                // every allocation accounted to it.
                let name = unsafe {
                    let d = (*(t as *const malloc_type)).ks_shortdesc;
                    if d.is_null() {
                        "?".into()
                    } else {
                        CStr::from_ptr(d).to_string_lossy().into_owned()
                    }
                };
                (name, b, n)
            })
            .collect()
    }
}

/// `malloc(size, type, flags)`.
#[no_mangle]
pub unsafe extern "C" fn geom_rs_malloc(size: usize, mtp: *mut malloc_type, flags: c_int) -> *mut c_void {
    let k = kernel();
    if flags & sys::M_WAITOK != 0 {
        k.assert_sleepable("malloc(M_WAITOK)");
    } else if flags & sys::M_NOWAIT == 0 {
        k.inv.report(ViolationKind::Kassert, format!("malloc flags {flags:#x} name neither M_WAITOK nor M_NOWAIT"));
    }
    if flags & sys::M_NOWAIT != 0 && take_failure(&k.malloc.fail_malloc) {
        return std::ptr::null_mut();
    }
    let Some(total) = size.checked_add(HEADER) else { return std::ptr::null_mut() };
    let Ok(layout) = Layout::from_size_align(total, HEADER) else { return std::ptr::null_mut() };
    // SAFETY: layout has a non-zero size.
    let base = unsafe {
        if flags & sys::M_ZERO != 0 {
            alloc_zeroed(layout)
        } else {
            alloc(layout)
        }
    };
    if base.is_null() {
        if flags & sys::M_WAITOK != 0 {
            std::alloc::handle_alloc_error(layout);
        }
        return std::ptr::null_mut();
    }
    // SAFETY: base is valid for `total` bytes and 16-aligned; the size fits in the header.
    unsafe {
        base.cast::<usize>().write(size);
        k.malloc.account(mtp, size as i64, 1);
        base.add(HEADER).cast()
    }
}

/// `free(addr, type)`.
#[no_mangle]
pub unsafe extern "C" fn geom_rs_free(addr: *mut c_void, mtp: *mut malloc_type) {
    if addr.is_null() {
        return;
    }
    // SAFETY: addr came from geom_rs_malloc, which put the size HEADER bytes before it.
    unsafe {
        let base = addr.cast::<u8>().sub(HEADER);
        let size = base.cast::<usize>().read();
        kernel().malloc.account(mtp, -(size as i64), -1);
        dealloc(base, Layout::from_size_align_unchecked(size + HEADER, HEADER));
    }
}

/// `printf("%.*s", len, msg)`.
#[no_mangle]
pub unsafe extern "C" fn geom_rs_print(msg: *const u8, len: usize) {
    // SAFETY: msg is valid for len bytes (caller).
    let s = unsafe { std::slice::from_raw_parts(msg, len) };
    kernel().console(&String::from_utf8_lossy(s));
}

/// `panic(...)`: always fatal.
#[no_mangle]
pub unsafe extern "C" fn geom_rs_panic(msg: *const u8, len: usize) -> ! {
    // SAFETY: msg is valid for len bytes (caller).
    let s = unsafe { std::slice::from_raw_parts(msg, len) };
    invariants::abort_with(&Violation {
        kind: ViolationKind::Kassert,
        message: format!("panic: {}", String::from_utf8_lossy(s)),
        thread: invariants::thread_name(),
    })
}

/// A host mutex behind a `struct mtx`: who owns it, and a condition to wait for it.
struct HostMtx {
    owner: Mutex<Option<ThreadId>>,
    cv: Condvar,
    name: String,
}

/// # Safety
/// `m` was initialised by `geom_rs_mtx_init` and not destroyed.
unsafe fn host_mtx<'a>(m: *mut mtx) -> &'a HostMtx {
    // SAFETY: mtx_lock holds the Box pointer set by init (caller's contract).
    unsafe { &*((*m).mtx_lock as *const HostMtx) }
}

/// `mtx_init(m, name, NULL, opts)`.
#[no_mangle]
pub unsafe extern "C" fn geom_rs_mtx_init(m: *mut mtx, name: *const c_char, opts: c_int) {
    // SAFETY: name is NULL or a valid string; m is writable storage (caller).
    unsafe {
        let name = if name.is_null() { String::new() } else { CStr::from_ptr(name).to_string_lossy().into_owned() };
        let b = Box::new(HostMtx { owner: Mutex::new(None), cv: Condvar::new(), name });
        (*m).lock_object.lo_name = std::ptr::null();
        (*m).lock_object.lo_flags = opts as u32;
        (*m).mtx_lock = Box::into_raw(b) as usize;
    }
}

/// `mtx_destroy(m)`.
#[no_mangle]
pub unsafe extern "C" fn geom_rs_mtx_destroy(m: *mut mtx) {
    // SAFETY: m was initialised by init (caller); after this it must not be used.
    unsafe {
        let p = (*m).mtx_lock as *mut HostMtx;
        if !p.is_null() {
            drop(Box::from_raw(p));
        }
        (*m).mtx_lock = 0;
    }
}

/// `mtx_lock(m)`.
#[no_mangle]
pub unsafe extern "C" fn geom_rs_mtx_lock(m: *mut mtx) {
    // SAFETY: m initialised (caller).
    let hm = unsafe { host_mtx(m) };
    let me = std::thread::current().id();
    let mut g = lock(&hm.owner);
    if *g == Some(me) {
        kernel().inv.report(ViolationKind::Kassert, format!("mtx_lock: recursing on non-recursive mutex {}", hm.name));
        return;
    }
    if let Some(b) = kernel().sleepq.baton() {
        // Contended only if the owner blocked while holding it (a bug the schedule exposes
        // rather than hides): wait for the baton to come back with the mutex free.
        drop(g);
        b.wait_until(
            || {
                let mut g = lock(&hm.owner);
                let free = g.is_none();
                if free {
                    *g = Some(me);
                }
                free
            },
            None,
        );
        return;
    }
    while g.is_some() {
        g = hm.cv.wait(g).unwrap_or_else(|e| e.into_inner());
    }
    *g = Some(me);
}

/// `mtx_unlock(m)`.
#[no_mangle]
pub unsafe extern "C" fn geom_rs_mtx_unlock(m: *mut mtx) {
    // SAFETY: m initialised (caller).
    let hm = unsafe { host_mtx(m) };
    let mut g = lock(&hm.owner);
    if *g != Some(std::thread::current().id()) {
        kernel().inv.report(ViolationKind::Kassert, format!("mtx_unlock: mutex {} not owned by this thread", hm.name));
        return;
    }
    *g = None;
    hm.cv.notify_one();
}

/// `msleep(chan, m, pri, wmesg, timo)`: release `m`, sleep until `wakeup(chan)` or the
/// timeout, take `m` back unless `PDROP`.
#[no_mangle]
pub unsafe extern "C" fn geom_rs_msleep(
    chan: *const c_void,
    m: *mut mtx,
    pri: c_int,
    _wmesg: *const c_char,
    timo_ms: c_int,
) -> c_int {
    let k = kernel();
    if !k.assert_sleepable("msleep") {
        return errno::EDEADLK;
    }
    let timeout = (timo_ms > 0).then(|| Duration::from_millis(timo_ms as u64));
    // m is NULL or held by this thread (msleep's contract); it is released inside the sleep
    // queue's critical section so a wakeup cannot slip in between.
    let woken = k.sleepq.sleep_once(chan as usize, timeout, || {
        if !m.is_null() {
            // SAFETY: held by this thread, as above.
            unsafe { geom_rs_mtx_unlock(m) }
        }
    });
    if pri & sys::PDROP == 0 && !m.is_null() {
        // SAFETY: as above.
        unsafe { geom_rs_mtx_lock(m) };
    }
    if woken {
        0
    } else {
        errno::EWOULDBLOCK
    }
}

/// `sbinuptime()` in nanoseconds, from the process's monotonic clock, or the runtime's
/// virtual clock under the deterministic schedule.
#[no_mangle]
pub extern "C" fn geom_rs_uptime_ns() -> u64 {
    if let Some(b) = crate::runtime::current_kernel().and_then(|k| k.sleepq.baton()) {
        return b.now_ns();
    }
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
}

/// `wakeup(chan)`.
#[no_mangle]
pub unsafe extern "C" fn geom_rs_wakeup(chan: *const c_void) {
    kernel().sleepq.wakeup(chan as usize);
}

/// `wakeup_one(chan)`: wakes every sleeper; `msleep` callers re-check their condition.
#[no_mangle]
pub unsafe extern "C" fn geom_rs_wakeup_one(chan: *const c_void) {
    kernel().sleepq.wakeup(chan as usize);
}

/// `arc4random()`: from the runtime's seeded generator (splitmix64).
#[no_mangle]
pub unsafe extern "C" fn geom_rs_random() -> u32 {
    let k = kernel();
    let x = k
        .random
        .fetch_add(0x9E37_79B9_7F4A_7C15, std::sync::atomic::Ordering::Relaxed)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as u32
}

/// `kproc_create`: a worker thread of the calling runtime running `func(arg)`.
#[no_mangle]
pub unsafe extern "C" fn geom_rs_kthread_create(
    func: sys::platform::kthread_fn,
    arg: *mut c_void,
    name: *const c_char,
) -> c_int {
    // SAFETY: name is NULL or a valid string (caller).
    let name =
        if name.is_null() { "kthread".into() } else { unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned() };
    let k = kernel_arc();
    let argu = arg as usize;
    // SAFETY: the creator promises func(arg) may run on another thread.
    match k.spawn_worker(name, move || unsafe { func(argu as *mut c_void) }) {
        Ok(()) => 0,
        Err(_) => errno::ENOMEM,
    }
}

/// `curthread`: the address of a thread-local of the calling thread, unique among the
/// threads alive at the same time.
#[no_mangle]
pub unsafe extern "C" fn geom_rs_curthread() -> *const c_void {
    thread_local! {
        static ME: u8 = const { 0 };
    }
    ME.with(|me| std::ptr::from_ref(me).cast())
}
