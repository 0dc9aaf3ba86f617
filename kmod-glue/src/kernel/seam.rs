//! The kernel side of `geom_core::sys::platform`: each `geom_rs_*` function is the kernel
//! service it names, with the C macro in front of it expanded by hand.

use geom_core::sys::{c_char, c_int, c_void, malloc_type, mtx};

use super::ffi;

/// `__FILE__` for the lock functions' WITNESS and `LOCK_PROFILING` records.
const FILE: &core::ffi::CStr = c"geom-rs";

#[no_mangle]
unsafe extern "C" fn geom_rs_malloc(size: usize, mtp: *mut malloc_type, flags: c_int) -> *mut c_void {
    // SAFETY: forwarded unchanged; the caller keeps malloc(9)'s rules (M_WAITOK only where it
    // may sleep, which geom-core's MayWait tokens enforce).
    unsafe { ffi::malloc(size, mtp, flags) }
}

#[no_mangle]
unsafe extern "C" fn geom_rs_free(addr: *mut c_void, mtp: *mut malloc_type) {
    // SAFETY: forwarded unchanged; addr came from malloc(9) with mtp (caller's contract).
    unsafe { ffi::free(addr, mtp) }
}

#[no_mangle]
unsafe extern "C" fn geom_rs_print(msg: *const u8, len: usize) {
    let len = c_int::try_from(len).unwrap_or(c_int::MAX);
    // SAFETY: msg points at len readable bytes (caller's contract); printf(9) reads no more.
    unsafe { (ffi::printf_opaque())(c"%.*s".as_ptr(), len, msg) };
}

#[no_mangle]
unsafe extern "C" fn geom_rs_panic(msg: *const u8, len: usize) -> ! {
    let len = c_int::try_from(len).unwrap_or(c_int::MAX);
    // SAFETY: as for geom_rs_print; panic(9) does not return.
    unsafe { ffi::panic(c"%.*s".as_ptr(), len, msg) }
}

#[no_mangle]
unsafe extern "C" fn geom_rs_mtx_init(m: *mut mtx, name: *const c_char, opts: c_int) {
    // SAFETY: m is storage for a struct mtx that lives until geom_rs_mtx_destroy (caller's
    // contract); name is a C string that outlives the mutex.
    unsafe { ffi::_mtx_init(&raw mut (*m).mtx_lock, name, core::ptr::null(), opts) }
}

#[no_mangle]
unsafe extern "C" fn geom_rs_mtx_destroy(m: *mut mtx) {
    // SAFETY: m was initialised by geom_rs_mtx_init and is unlocked (caller's contract).
    unsafe { ffi::_mtx_destroy(&raw mut (*m).mtx_lock) }
}

#[no_mangle]
unsafe extern "C" fn geom_rs_mtx_lock(m: *mut mtx) {
    // SAFETY: m is an initialised mutex not held by this thread (caller's contract).
    unsafe { ffi::__mtx_lock_flags(&raw mut (*m).mtx_lock, 0, FILE.as_ptr(), 0) }
}

#[no_mangle]
unsafe extern "C" fn geom_rs_mtx_unlock(m: *mut mtx) {
    // SAFETY: m is held by this thread (caller's contract).
    unsafe { ffi::__mtx_unlock_flags(&raw mut (*m).mtx_lock, 0, FILE.as_ptr(), 0) }
}

#[no_mangle]
unsafe extern "C" fn geom_rs_msleep(
    chan: *const c_void,
    m: *mut mtx,
    pri: c_int,
    wmesg: *const c_char,
    timo_ms: c_int,
) -> c_int {
    // msleep_sbt(chan, m, pri, wmesg, sbt, 0, 0): the interlock is the mutex's lock_object
    // (its first member, so the mutex's own address; NULL sleeps without one, as tsleep).
    let sbt = i64::from(timo_ms.max(0)) * ffi::SBT_1MS;
    // SAFETY: the caller may sleep and holds m if it is not NULL (caller's contract).
    unsafe { ffi::_sleep(chan, m.cast(), pri, wmesg, sbt, 0, 0) }
}

#[no_mangle]
unsafe extern "C" fn geom_rs_wakeup(chan: *const c_void) {
    // SAFETY: wakeup(9) takes any address.
    unsafe { ffi::wakeup(chan) }
}

#[no_mangle]
unsafe extern "C" fn geom_rs_wakeup_one(chan: *const c_void) {
    // SAFETY: wakeup_one(9) takes any address.
    unsafe { ffi::wakeup_one(chan) }
}

#[no_mangle]
extern "C" fn geom_rs_uptime_ns() -> u64 {
    let mut bt = ffi::bintime { sec: 0, frac: 0 };
    // SAFETY: binuptime(9) fills the struct it is given.
    unsafe { ffi::binuptime(&mut bt) };
    let frac_ns = ((u128::from(bt.frac) * 1_000_000_000) >> 64) as u64;
    (bt.sec.max(0) as u64).saturating_mul(1_000_000_000).saturating_add(frac_ns)
}

#[no_mangle]
extern "C" fn geom_rs_random() -> u32 {
    // SAFETY: arc4random(9) has no preconditions.
    unsafe { ffi::arc4random() }
}

#[no_mangle]
extern "C" fn geom_rs_curthread() -> *const c_void {
    super::heap::curthread()
}

/// What a new kernel process runs: the body and its argument.
struct ThreadStart {
    func: geom_core::sys::platform::kthread_fn,
    arg: *mut c_void,
}

/// The kernel process's entry: run the body, then `kproc_exit`, so a body never has to exit
/// from the middle of its call chain.
unsafe extern "C" fn thread_main(start: *mut c_void) {
    // SAFETY: start is the ThreadStart geom_rs_kthread_create boxed for this thread alone.
    let start = unsafe { alloc::boxed::Box::from_raw(start.cast::<ThreadStart>()) };
    let ThreadStart { func, arg } = *start;
    // SAFETY: func and arg were handed to geom_rs_kthread_create together.
    unsafe { func(arg) };
    // SAFETY: this is the body of a kernel process created by kproc_create.
    unsafe { ffi::kproc_exit(0) }
}

#[no_mangle]
unsafe extern "C" fn geom_rs_kthread_create(
    func: geom_core::sys::platform::kthread_fn,
    arg: *mut c_void,
    name: *const c_char,
) -> c_int {
    let start = alloc::boxed::Box::into_raw(alloc::boxed::Box::new(ThreadStart { func, arg }));
    // SAFETY: thread_main takes ownership of start; name is a C string (caller's contract),
    // printed through "%s".
    let error =
        unsafe { ffi::kproc_create(thread_main, start.cast(), core::ptr::null_mut(), 0, 0, c"%s".as_ptr(), name) };
    if error != 0 {
        // SAFETY: the process was not created, so start is still ours.
        drop(unsafe { alloc::boxed::Box::from_raw(start) });
    }
    error
}
