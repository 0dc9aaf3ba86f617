//! The bio path (`geom_io.c`): `g_io_request` → `g_down` → start, `g_io_deliver` → `g_up` →
//! `bio_done`, with FreeBSD's checks (`g_io_check`), direct dispatch, `ENOMEM` re-issue and
//! pacing, the stock completion `g_std_done`, the synchronous helpers (`g_read_data`,
//! `g_write_data`, ...), `g_handleattr*`, and [`Handle`]: I/O into the topology from a user
//! thread, the way a process opens `/dev/<provider>`.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use geom_core::sys::{
    self, bio, c_char, c_int, c_void, errno, g_class, g_consumer, g_geom, g_provider, off_t, KernelCell,
};

use crate::biomem::{describe, g_alloc_bio, g_destroy_bio, BioRegistry};
use crate::invariants::{lock, ViolationKind};
use crate::runtime::{enter, kernel, role, IoContext, Kernel, Role, Runtime};
use crate::topology::name_of;

/// How deeply direct dispatch may nest start and done calls on one thread before requests
/// are queued instead (FreeBSD's "half the kernel stack is free" test).
const DIRECT_DEPTH_LIMIT: u32 = 8;

fn counter(p: *mut u32) -> &'static AtomicU32 {
    // SAFETY: `p` points at a live, 4-byte-aligned u_int of a consumer; several issuers may
    // bump it concurrently, so it is only ever accessed atomically.
    unsafe { AtomicU32::from_ptr(p) }
}

/// May this thread call start or done directly?
fn can_direct(k: &Kernel) -> bool {
    k.config.direct_dispatch
        && !matches!(role(), Role::Down | Role::Up)
        && IoContext::depth() < DIRECT_DEPTH_LIMIT
        && k.pace.load(Ordering::Relaxed) == 0
}

/// `g_io_check`: `>0` fail with that error, `0` complete at once with success,
/// `EJUSTRETURN` pass to start.
///
/// # Safety
/// `bp` is in flight with `bio_from`/`bio_to` set.
unsafe fn io_check(bp: *mut bio) -> c_int {
    // SAFETY: caller's contract; consumer and provider are live while a bio is in flight.
    unsafe {
        let cp = (*bp).bio_from;
        let pp = (*bp).bio_to;
        let reading = match (*bp).bio_cmd {
            sys::BIO_READ | sys::BIO_GETATTR => true,
            sys::BIO_WRITE | sys::BIO_DELETE | sys::BIO_FLUSH | sys::BIO_SPEEDUP => false,
            // Zone reports and parameters are reads; other zone commands write.
            sys::BIO_ZONE => matches!((*bp).bio_zone.zone_cmd, sys::DISK_ZONE_REPORT_ZONES | sys::DISK_ZONE_GET_PARAMS),
            _ => return errno::EPERM,
        };
        if (reading && (*cp).acr == 0) || (!reading && (*cp).acw == 0) {
            return errno::EPERM;
        }
        if (*pp).error != 0 {
            return (*pp).error;
        }
        if (*cp).flags & sys::G_CF_ORPHAN != 0 {
            return errno::ENXIO;
        }
        if matches!((*bp).bio_cmd, sys::BIO_READ | sys::BIO_WRITE | sys::BIO_DELETE) {
            let ss = (*pp).sectorsize as i64;
            if ss == 0 || (*pp).mediasize == 0 {
                return errno::ENXIO;
            }
            if (*bp).bio_offset % ss != 0 || (*bp).bio_length % ss != 0 {
                return errno::EINVAL;
            }
            if (*bp).bio_offset < 0 || (*bp).bio_offset > (*pp).mediasize || (*bp).bio_length < 0 {
                return errno::EIO;
            }
            // Truncate at the end of the media.
            let end = (*bp).bio_offset.saturating_add((*bp).bio_length);
            if end > (*pp).mediasize {
                (*bp).bio_length -= end - (*pp).mediasize;
            }
            if (*bp).bio_length == 0 {
                return 0;
            }
        }
    }
    errno::EJUSTRETURN
}

/// Call the provider's geom's start in an I/O context.
///
/// # Safety
/// `bp` passed `io_check`.
unsafe fn call_start(k: &Kernel, bp: *mut bio) {
    // SAFETY: caller's contract; the provider's geom is live while it has I/O.
    unsafe {
        let gp = (*(*bp).bio_to).geom;
        match (*gp).start {
            Some(start) => {
                let _io = IoContext::enter();
                start(bp);
            }
            None => {
                k.inv.report(ViolationKind::Kassert, format!("geom {} has no start method", name_of((*gp).name)));
                g_io_deliver(bp, errno::ENXIO);
            }
        }
    }
}

/// `g_io_request`: send a bio down through a consumer.
#[no_mangle]
pub unsafe extern "C" fn g_io_request(bp: *mut bio, cp: *mut g_consumer) {
    let k = kernel();
    // SAFETY: bp and cp are live (caller's contract); we check what FreeBSD asserts.
    unsafe {
        if cp.is_null() || (*cp).provider.is_null() {
            k.inv.report(
                ViolationKind::Kassert,
                format!("g_io_request through an unattached consumer: {}", describe(bp)),
            );
            return;
        }
        let pp = (*cp).provider;
        let cmd = (*bp).bio_cmd;
        let has_data = !(*bp).bio_data.is_null() || (*bp).bio_flags & sys::BIO_UNMAPPED != 0;
        if matches!(cmd, sys::BIO_READ | sys::BIO_WRITE | sys::BIO_GETATTR) && !has_data {
            k.inv.report(ViolationKind::Kassert, format!("g_io_request: NULL bio_data on {}", describe(bp)));
            return;
        }
        if matches!(cmd, sys::BIO_DELETE | sys::BIO_FLUSH) && !(*bp).bio_data.is_null() {
            k.inv.report(ViolationKind::Kassert, format!("g_io_request: non-NULL bio_data on {}", describe(bp)));
            return;
        }
        if !(*bp).bio_driver1.is_null() || !(*bp).bio_driver2.is_null() || (*bp).bio_pflags != 0 {
            k.inv.report(
                ViolationKind::Kassert,
                format!(
                    "g_io_request: the provider's fields (bio_driver1/2, bio_pflags) must be clear: {}",
                    describe(bp)
                ),
            );
            return;
        }
        if (*bp).bio_flags & sys::BIO_ONQUEUE != 0 {
            k.inv.report(ViolationKind::BioRequestedTwice, format!("g_io_request on a queued bio: {}", describe(bp)));
            return;
        }
        if !k.bios.start_flight(k, bp) {
            return;
        }
        (*bp).bio_from = cp;
        (*bp).bio_to = pp;
        (*bp).set_error(0);
        (*bp).bio_completed = 0;
        counter(&raw mut (*cp).nstart).fetch_add(1, Ordering::AcqRel);
        let direct =
            (*cp).flags & sys::G_CF_DIRECT_SEND != 0 && (*pp).flags & sys::G_PF_DIRECT_RECEIVE != 0 && can_direct(k);
        if direct {
            let error = io_check(bp);
            if error >= 0 {
                g_io_deliver(bp, error);
            } else {
                call_start(k, bp);
            }
        } else {
            (*bp).bio_flags |= sys::BIO_ONQUEUE;
            k.down.push_with(|q| q.push_back(bp as usize));
        }
    }
}

/// `g_io_deliver`: the provider side finishes a bio.
#[no_mangle]
pub unsafe extern "C" fn g_io_deliver(bp: *mut bio, error: c_int) {
    let k = kernel();
    // SAFETY: bp is a live bio handed to the provider (caller's contract).
    unsafe {
        let cp = (*bp).bio_from;
        if cp.is_null() {
            // A bio made outside GEOM: complete it at once.
            if BioRegistry::is_idle(bp) {
                (*bp).set_error(error);
                biodone(bp);
            } else {
                k.inv.report(
                    ViolationKind::BioDeliveredTwice,
                    format!("g_io_deliver without bio_from: {}", describe(bp)),
                );
            }
            return;
        }
        let pp = (*bp).bio_to;
        if (*bp).bio_completed < 0 || (*bp).bio_completed > (*bp).bio_length {
            k.inv.report(
                ViolationKind::Kassert,
                format!(
                    "g_io_deliver: bio_completed {} outside 0..={}: {}",
                    (*bp).bio_completed,
                    (*bp).bio_length,
                    describe(bp)
                ),
            );
            (*bp).bio_completed = (*bp).bio_completed.clamp(0, (*bp).bio_length.max(0));
        }
        if (*bp).bio_inbed < (*bp).bio_children {
            k.inv.report(
                ViolationKind::ParentDeliveredWithChildrenInFlight,
                format!(
                    "parent delivered with {} of {} children still in flight: {}",
                    (*bp).bio_children - (*bp).bio_inbed,
                    (*bp).bio_children,
                    describe(bp)
                ),
            );
            return;
        }
        if !k.bios.end_flight(k, bp) {
            return;
        }
        (*bp).bio_bcount = (*bp).bio_length as _;
        (*bp).bio_resid = ((*bp).bio_length - (*bp).bio_completed) as _;
        counter(&raw mut (*cp).nend).fetch_add(1, Ordering::AcqRel);
        if error == errno::ENOMEM {
            // The provider is short of memory: re-issue the request and slow g_down down.
            (*bp).bio_children = 0;
            (*bp).bio_inbed = 0;
            (*bp).bio_driver1 = ptr::null_mut();
            (*bp).bio_driver2 = ptr::null_mut();
            (*bp).bio_pflags = 0;
            g_io_request(bp, cp);
            k.pace.store(1, Ordering::Relaxed);
            return;
        }
        (*bp).set_error(error);
        let direct =
            (*pp).flags & sys::G_PF_DIRECT_SEND != 0 && (*cp).flags & sys::G_CF_DIRECT_RECEIVE != 0 && can_direct(k);
        if direct {
            let _io = IoContext::enter();
            biodone(bp);
        } else {
            (*bp).bio_flags |= sys::BIO_ONQUEUE;
            k.up.push_with(|q| q.push_back(bp as usize));
            k.completions_queued.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl Kernel {
    /// One `g_down` step: check the bio and call its provider's start.
    pub(crate) fn step_down(&self, bp: *mut bio) {
        if self.pace.swap(0, Ordering::Relaxed) != 0 {
            // FreeBSD pauses g_down after an ENOMEM so memory can come back.
            self.sleepq.pause(std::time::Duration::from_millis(1));
        }
        // SAFETY: bp was queued by g_io_request and is owned by the queue until now.
        unsafe {
            (*bp).bio_flags &= !sys::BIO_ONQUEUE;
            let error = io_check(bp);
            if error >= 0 {
                g_io_deliver(bp, error);
            } else {
                call_start(self, bp);
            }
        }
    }

    /// One `g_up` step: run the bio's completion.
    pub(crate) fn step_up(&self, bp: *mut bio) {
        // SAFETY: bp was queued by g_io_deliver and is owned by the queue until now.
        unsafe {
            (*bp).bio_flags &= !sys::BIO_ONQUEUE;
            let _io = IoContext::enter();
            biodone(bp);
        }
        self.completions_queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `biodone`: run `bio_done`, or mark the bio done and wake its `biowait` sleeper.
#[no_mangle]
pub unsafe extern "C" fn biodone(bp: *mut bio) {
    // SAFETY: bp is live (caller).
    unsafe {
        match (*bp).bio_done {
            Some(done) => done(bp),
            None => {
                let k = kernel();
                k.sleepq.with_chan(bp as usize, || (*bp).bio_flags |= sys::BIO_DONE);
                k.sleepq.wakeup(bp as usize);
            }
        }
    }
}

/// `biowait`: sleep until a bio without `bio_done` completes; returns its error.
#[no_mangle]
pub unsafe extern "C" fn biowait(bp: *mut bio, _wmesg: *const c_char) -> c_int {
    let k = kernel();
    if !k.assert_sleepable("biowait") {
        return errno::EDEADLK;
    }
    // SAFETY: bp is live; BIO_DONE is set under the same sleep-queue bucket lock that
    // `ready` runs under.
    unsafe {
        let bpu = bp as usize;
        k.sleepq.block(bpu, None, || (*(bpu as *mut bio)).bio_flags & sys::BIO_DONE != 0);
        let e = (*bp).error();
        if e != 0 {
            e
        } else if (*bp).bio_flags & sys::BIO_ERROR != 0 {
            errno::EIO
        } else {
            0
        }
    }
}

/// `g_std_done`: fold a clone into its parent; deliver the parent when the last child is
/// home. Not locked: for one child, or children that complete one at a time.
#[no_mangle]
pub unsafe extern "C" fn g_std_done(bp: *mut bio) {
    // SAFETY: bp is a completed clone whose parent is live (caller's contract).
    unsafe {
        let parent = (*bp).bio_parent;
        if (*parent).error() == 0 {
            (*parent).set_error((*bp).error());
        }
        (*parent).bio_completed += (*bp).bio_completed;
        g_destroy_bio(bp);
        (*parent).bio_inbed += 1;
        if (*parent).bio_children == (*parent).bio_inbed {
            let e = (*parent).error();
            g_io_deliver(parent, e);
        }
    }
}

/// A fresh bio for a request of the runtime's own issuers (sync helpers, handles), with no
/// `bio_done` yet.
///
/// # Safety
/// `data` is valid for `length` bytes when the command carries data, for as long as the bio
/// is in flight.
unsafe fn user_bio(
    cmd: u16,
    flags: u16,
    offset: off_t,
    length: off_t,
    data: *mut c_void,
    attr: *const c_char,
) -> *mut bio {
    // SAFETY: g_alloc_bio returns a zeroed bio that is ours to fill.
    unsafe {
        let bp = g_alloc_bio();
        (*bp).bio_cmd = cmd;
        (*bp).bio_flags = flags;
        (*bp).bio_offset = offset;
        (*bp).bio_length = length;
        (*bp).bio_data = data.cast();
        (*bp).bio_attribute = attr;
        bp
    }
}

/// Issue one synchronous bio through `cp` and wait for it (the body of `g_read_data` & co).
///
/// # Safety
/// `cp` is attached; `data` valid for `length` bytes when the command carries data.
unsafe fn sync_io(
    cp: *mut g_consumer,
    cmd: u16,
    flags: u16,
    offset: off_t,
    length: off_t,
    data: *mut c_void,
    attr: *const c_char,
) -> (c_int, off_t) {
    // SAFETY: caller's contract; the bio is ours until destroyed below.
    unsafe {
        let bp = user_bio(cmd, flags, offset, length, data, attr);
        g_io_request(bp, cp);
        let error = biowait(bp, c"gsync".as_ptr());
        let completed = (*bp).bio_completed;
        g_destroy_bio(bp);
        (error, completed)
    }
}

/// `g_read_data`: synchronous read into a fresh `M_GEOM` buffer; the caller frees it with
/// `g_free`. Sleeps: never from start or done.
#[no_mangle]
pub unsafe extern "C" fn g_read_data(
    cp: *mut g_consumer,
    offset: off_t,
    length: off_t,
    error: *mut c_int,
) -> *mut c_void {
    let k = kernel();
    let set = |e: c_int| {
        if !error.is_null() {
            // SAFETY: error is NULL or writable (caller).
            unsafe { *error = e };
        }
    };
    if !k.assert_sleepable("g_read_data") {
        set(errno::EDEADLK);
        return ptr::null_mut();
    }
    // SAFETY: cp is attached (caller); sizes checked as FreeBSD asserts them.
    unsafe {
        let ss = if (*cp).provider.is_null() { 0 } else { (*(*cp).provider).sectorsize as off_t };
        if length <= 0
            || length < ss
            || length > crate::topology::maxphys.load(std::sync::atomic::Ordering::Relaxed) as off_t
        {
            k.inv.report(ViolationKind::Kassert, format!("g_read_data: bad length {length} (sector size {ss})"));
            set(errno::EINVAL);
            return ptr::null_mut();
        }
        let buf = crate::platform::geom_rs_malloc(length as usize, crate::platform::m_geom(), sys::M_WAITOK);
        let (mut e, completed) = sync_io(cp, sys::BIO_READ, 0, offset, length, buf, ptr::null());
        if e == 0 && completed != length {
            e = errno::EIO;
        }
        set(e);
        if e != 0 {
            crate::platform::geom_rs_free(buf, crate::platform::m_geom());
            return ptr::null_mut();
        }
        buf
    }
}

/// `g_write_data`: synchronous write. Sleeps.
#[no_mangle]
pub unsafe extern "C" fn g_write_data(cp: *mut g_consumer, offset: off_t, ptr_: *mut c_void, length: off_t) -> c_int {
    let k = kernel();
    if !k.assert_sleepable("g_write_data") {
        return errno::EDEADLK;
    }
    // SAFETY: caller's contract: cp attached, ptr_ valid for length bytes.
    let (e, completed) = unsafe { sync_io(cp, sys::BIO_WRITE, 0, offset, length, ptr_, ptr::null()) };
    if e == 0 && completed != length {
        errno::EIO
    } else {
        e
    }
}

/// `g_delete_data`: synchronous `BIO_DELETE`. Sleeps.
#[no_mangle]
pub unsafe extern "C" fn g_delete_data(cp: *mut g_consumer, offset: off_t, length: off_t) -> c_int {
    let k = kernel();
    if !k.assert_sleepable("g_delete_data") {
        return errno::EDEADLK;
    }
    // SAFETY: caller's contract.
    let (e, completed) = unsafe { sync_io(cp, sys::BIO_DELETE, 0, offset, length, ptr::null_mut(), ptr::null()) };
    if e == 0 && completed != length {
        errno::EIO
    } else {
        e
    }
}

/// `g_io_getattr`: synchronous `BIO_GETATTR`; `*len` in: buffer size, out: answer size.
#[no_mangle]
pub unsafe extern "C" fn g_io_getattr(
    attr: *const c_char,
    cp: *mut g_consumer,
    len: *mut c_int,
    ptr_: *mut c_void,
) -> c_int {
    let k = kernel();
    if !k.assert_sleepable("g_io_getattr") {
        return errno::EDEADLK;
    }
    // SAFETY: caller's contract: len valid, ptr_ valid for *len bytes.
    unsafe {
        let (e, completed) = sync_io(cp, sys::BIO_GETATTR, 0, 0, *len as off_t, ptr_, attr);
        *len = completed as c_int;
        e
    }
}

/// `g_getattr__`: `g_io_getattr` of exactly `len` bytes (`EINVAL` otherwise).
#[no_mangle]
pub unsafe extern "C" fn g_getattr__(attr: *const c_char, cp: *mut g_consumer, var: *mut c_void, len: c_int) -> c_int {
    let mut i = len;
    // SAFETY: caller's contract.
    let e = unsafe { g_io_getattr(attr, cp, &mut i, var) };
    if e != 0 {
        e
    } else if i != len {
        errno::EINVAL
    } else {
        0
    }
}

/// `g_io_flush`: synchronous `BIO_FLUSH` (ordered, at the end of the media, no data).
#[no_mangle]
pub unsafe extern "C" fn g_io_flush(cp: *mut g_consumer) -> c_int {
    let k = kernel();
    if !k.assert_sleepable("g_io_flush") {
        return errno::EDEADLK;
    }
    // SAFETY: cp attached (caller).
    unsafe {
        let end = if (*cp).provider.is_null() { 0 } else { (*(*cp).provider).mediasize };
        sync_io(cp, sys::BIO_FLUSH, sys::BIO_ORDERED, end, 0, ptr::null_mut(), ptr::null()).0
    }
}

/// `g_handleattr`: if `bp` asks for `attr`, answer with `val` (`len` 0: a string) and deliver
/// it, returning 1; otherwise return 0.
#[no_mangle]
pub unsafe extern "C" fn g_handleattr(bp: *mut bio, attr: *const c_char, val: *const c_void, len: c_int) -> c_int {
    // SAFETY: bp is a live GETATTR bio with a data buffer of bio_length bytes; attr and val
    // are valid (caller).
    unsafe {
        if (*bp).bio_attribute.is_null() || CStr::from_ptr((*bp).bio_attribute) != CStr::from_ptr(attr) {
            return 0;
        }
        let blen = (*bp).bio_length.max(0) as usize;
        let mut error = 0;
        if len == 0 {
            let s = CStr::from_ptr(val.cast()).to_bytes();
            ptr::write_bytes((*bp).bio_data, 0, blen);
            if s.len() >= blen {
                kernel().console(&format!(
                    "g_handleattr: {} bio_length {} len {} -> EFAULT",
                    name_of((*(*bp).bio_to).name),
                    blen,
                    s.len()
                ));
                error = errno::EFAULT;
            } else {
                ptr::copy_nonoverlapping(s.as_ptr(), (*bp).bio_data.cast(), s.len());
            }
        } else if blen == len as usize {
            ptr::copy_nonoverlapping(val.cast::<u8>(), (*bp).bio_data.cast(), blen);
        } else {
            kernel().console(&format!(
                "g_handleattr: {} bio_length {} len {} -> EFAULT",
                name_of((*(*bp).bio_to).name),
                blen,
                len
            ));
            error = errno::EFAULT;
        }
        if error == 0 {
            (*bp).bio_completed = (*bp).bio_length;
        }
        g_io_deliver(bp, error);
    }
    1
}

/// `g_handleattr_int`.
#[no_mangle]
pub unsafe extern "C" fn g_handleattr_int(bp: *mut bio, attr: *const c_char, val: c_int) -> c_int {
    // SAFETY: forwards the caller's contract; val lives across the call.
    unsafe { g_handleattr(bp, attr, (&raw const val).cast(), size_of::<c_int>() as c_int) }
}

/// `g_handleattr_off_t`.
#[no_mangle]
pub unsafe extern "C" fn g_handleattr_off_t(bp: *mut bio, attr: *const c_char, val: off_t) -> c_int {
    // SAFETY: as above.
    unsafe { g_handleattr(bp, attr, (&raw const val).cast(), size_of::<off_t>() as c_int) }
}

/// `g_handleattr_uint16_t`.
#[no_mangle]
pub unsafe extern "C" fn g_handleattr_uint16_t(bp: *mut bio, attr: *const c_char, val: u16) -> c_int {
    // SAFETY: as above.
    unsafe { g_handleattr(bp, attr, (&raw const val).cast(), size_of::<u16>() as c_int) }
}

/// `g_handleattr_str`.
#[no_mangle]
pub unsafe extern "C" fn g_handleattr_str(bp: *mut bio, attr: *const c_char, val: *const c_char) -> c_int {
    // SAFETY: as above; len 0 means val is a string.
    unsafe { g_handleattr(bp, attr, val.cast(), 0) }
}

// ---------------------------------------------------------------------------------------
// User handles: the runtime's counterpart of opening /dev/<provider>.

unsafe extern "C" fn hostio_orphan(_cp: *mut g_consumer) {
    // The handle keeps its consumer until it is closed; I/O through an orphaned consumer
    // fails with ENXIO in g_io_check.
}

unsafe extern "C" fn hostio_destroy_geom(_req: *mut sys::gctl_req, _mp: *mut g_class, gp: *mut g_geom) -> c_int {
    // SAFETY: topology lock held (destroy_geom contract); gp is one of our handle geoms.
    unsafe {
        for cp in sys::list_iter(&raw const (*gp).consumer, sys::links::consumer_in_geom) {
            if let Some(flag) = lock(&kernel().user_consumers).remove(&(cp as usize)) {
                flag.store(true, Ordering::Release);
            }
        }
        sys::g_wither_geom_close(gp, errno::ENXIO);
    }
    0
}

/// The runtime's internal class for user handles (FreeBSD's `DEV` class plays this role).
static HOSTIO_CLASS: KernelCell<g_class> = KernelCell::new(g_class {
    destroy_geom: Some(hostio_destroy_geom),
    orphan: Some(hostio_orphan),
    ..g_class::named(c"HOSTIO")
});

fn hostio_class(k: &Kernel) -> *mut g_class {
    crate::topology::class_by_name_in(k, c"HOSTIO")
}

/// An open provider: read, write, delete, flush and ask attributes through the topology from
/// any thread. Closing (or dropping) it releases the access it holds.
pub struct Handle {
    k: Arc<Kernel>,
    cp: usize,
    closed: Arc<AtomicBool>,
    /// Submitted requests not yet completed; closing waits for them (a consumer is never
    /// detached with I/O outstanding).
    submitted: Arc<AtomicUsize>,
    name: String,
    mediasize: i64,
    sectorsize: u32,
}

impl Runtime {
    /// Open a provider with the given read, write and exclusive counts (`g_access`), as a
    /// process opening `/dev/<name>` does. Fails with `ENOENT` if there is no such provider,
    /// or with what `g_access` refuses (`EPERM`, the provider's error, ...).
    pub fn open(&self, name: &str, r: i32, w: i32, e: i32) -> Result<Handle, i32> {
        let Ok(cname) = CString::new(name) else { return Err(errno::EINVAL) };
        let closed = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&closed);
        let (cp, mediasize, sectorsize) = self.run(move |t| {
            let k = t.k;
            // SAFETY: topology lock held for the whole setup.
            unsafe {
                let pp: *mut g_provider = sys::g_provider_by_name(cname.as_ptr());
                if pp.is_null() {
                    return Err(errno::ENOENT);
                }
                let mut mp = hostio_class(k);
                if mp.is_null() {
                    crate::topology::load_class(k, HOSTIO_CLASS.get())?;
                    mp = hostio_class(k);
                }
                let n = k.next_name.fetch_add(1, Ordering::Relaxed);
                let gname = CString::new(format!("hostio{n}:{}", name_of((*pp).name))).unwrap_or_default();
                let gp = crate::topology::geom_host_new_geom(mp, gname.as_ptr());
                let cp = sys::g_new_consumer(gp);
                (*cp).flags |= sys::G_CF_DIRECT_SEND | sys::G_CF_DIRECT_RECEIVE;
                let mut error = sys::g_attach(cp, pp);
                if error == 0 && (r != 0 || w != 0 || e != 0) {
                    error = sys::g_access(cp, r, w, e);
                }
                if error != 0 {
                    if !(*cp).provider.is_null() {
                        sys::g_detach(cp);
                    }
                    sys::g_destroy_consumer(cp);
                    sys::g_destroy_geom(gp);
                    return Err(error);
                }
                lock(&k.user_consumers).insert(cp as usize, flag);
                Ok((cp as usize, (*pp).mediasize, (*pp).sectorsize))
            }
        })?;
        Ok(Handle {
            k: Arc::clone(&self.k),
            cp,
            closed,
            submitted: Arc::new(AtomicUsize::new(0)),
            name: name.to_owned(),
            mediasize,
            sectorsize,
        })
    }
}

impl Handle {
    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The provider's size when it was opened.
    pub fn mediasize(&self) -> i64 {
        self.mediasize
    }

    /// The provider's sector size.
    pub fn sectorsize(&self) -> u32 {
        self.sectorsize
    }

    fn io(&self, cmd: u16, flags: u16, offset: i64, len: i64, data: *mut u8, attr: *const c_char) -> Result<i64, i32> {
        if self.closed.load(Ordering::Acquire) {
            return Err(errno::ENXIO);
        }
        let _e = enter(&self.k);
        // SAFETY: the consumer stays attached until the handle is closed (checked above; a
        // forced close at shutdown sets `closed` first and the runtime waits for in-flight
        // I/O); data is valid for len bytes as the callers below guarantee.
        let (e, completed) = unsafe { sync_io(self.cp as *mut g_consumer, cmd, flags, offset, len, data.cast(), attr) };
        if e != 0 {
            Err(e)
        } else {
            Ok(completed)
        }
    }

    /// Read `len` bytes at `offset`. A read running past the end is truncated, as FreeBSD
    /// does; the result holds what was read.
    pub fn read(&self, offset: i64, len: usize) -> Result<Vec<u8>, i32> {
        let mut buf = vec![0u8; len];
        let n = self.io(sys::BIO_READ, 0, offset, len as i64, buf.as_mut_ptr(), ptr::null())?;
        buf.truncate(n as usize);
        Ok(buf)
    }

    /// Write `data` at `offset`; returns the bytes written.
    pub fn write(&self, offset: i64, data: &[u8]) -> Result<usize, i32> {
        // The provider only reads a WRITE's buffer.
        let n = self.io(sys::BIO_WRITE, 0, offset, data.len() as i64, data.as_ptr() as *mut u8, ptr::null())?;
        Ok(n as usize)
    }

    /// `BIO_DELETE` of a range.
    pub fn delete(&self, offset: i64, len: i64) -> Result<(), i32> {
        self.io(sys::BIO_DELETE, 0, offset, len, ptr::null_mut(), ptr::null()).map(|_| ())
    }

    /// `BIO_FLUSH`.
    pub fn flush(&self) -> Result<(), i32> {
        self.io(sys::BIO_FLUSH, sys::BIO_ORDERED, self.mediasize, 0, ptr::null_mut(), ptr::null()).map(|_| ())
    }

    /// `BIO_GETATTR` of `attr` into a buffer of `len` bytes; returns the answer.
    pub fn getattr(&self, attr: &str, len: usize) -> Result<Vec<u8>, i32> {
        let a = CString::new(attr).map_err(|_| errno::EINVAL)?;
        let mut buf = vec![0u8; len];
        let n = self.io(sys::BIO_GETATTR, 0, 0, len as i64, buf.as_mut_ptr(), a.as_ptr())?;
        buf.truncate(n as usize);
        Ok(buf)
    }

    /// Issue one request without waiting for it: `done` runs once with its result, in the
    /// completion context (on `g_up`, or in this thread when direct dispatch completes it at
    /// once). `done` must not block: hand the result to a thread of your own (a channel
    /// send) as a driver's interrupt handler would. Fails at once, without calling `done`,
    /// only if the handle is closed or the request is malformed (`EINVAL`).
    ///
    /// This is how a server keeps many requests in flight on one open provider (the NBD
    /// export does), where [`Handle::read`] and friends wait for each.
    pub fn submit<F: FnOnce(IoDone) + Send + 'static>(&self, offset: i64, op: IoOp, done: F) -> Result<(), i32> {
        // Counted before the closed check, so a concurrent close either sees this request
        // and waits for it, or this request sees the close.
        self.submitted.fetch_add(1, Ordering::SeqCst);
        if self.closed.load(Ordering::SeqCst) {
            self.submitted.fetch_sub(1, Ordering::SeqCst);
            return Err(errno::ENXIO);
        }
        let (cmd, flags, length, buf) = match op {
            IoOp::Read(len) => (sys::BIO_READ, 0, len as i64, vec![0u8; len]),
            IoOp::ReadInto(mut buf, len) => {
                // Reused memory: only growing costs; its old bytes are overwritten by the read.
                buf.resize(len, 0);
                (sys::BIO_READ, 0, len as i64, buf)
            }
            IoOp::Write(data) => (sys::BIO_WRITE, 0, data.len() as i64, data),
            IoOp::Delete(len) => (sys::BIO_DELETE, 0, len, Vec::new()),
            IoOp::Flush => (sys::BIO_FLUSH, sys::BIO_ORDERED, 0, Vec::new()),
        };
        if length < 0 || offset < 0 {
            self.submitted.fetch_sub(1, Ordering::SeqCst);
            return Err(errno::EINVAL);
        }
        let offset = if cmd == sys::BIO_FLUSH { self.mediasize } else { offset };
        let mut pending = Box::new(AsyncBio { buf, done, submitted: Arc::clone(&self.submitted) });
        let data = if pending.buf.is_empty() { ptr::null_mut() } else { pending.buf.as_mut_ptr() };
        let _e = enter(&self.k);
        // SAFETY: the consumer stays attached while the handle is open (checked above); the
        // buffer lives in `pending`, which the bio owns through bio_caller1 until
        // `async_done` takes it back; a Vec's heap buffer does not move with its Box.
        unsafe {
            let bp = user_bio(cmd, flags, offset, length, data.cast(), ptr::null());
            (*bp).bio_done = Some(async_done::<F>);
            (*bp).bio_caller1 = Box::into_raw(pending).cast();
            g_io_request(bp, self.cp as *mut g_consumer);
        }
        Ok(())
    }

    /// Wait until every request [`Handle::submit`] started has completed (its `done` has
    /// run).
    pub fn drain(&self) {
        let _e = enter(&self.k);
        self.k
            .sleepq
            .poll_until(std::time::Duration::from_micros(200), None, || self.submitted.load(Ordering::SeqCst) == 0);
    }

    /// Close: drop the access, detach, and destroy the handle's consumer and geom.
    pub fn close(self) -> Result<(), i32> {
        self.close_inner()
    }

    fn close_inner(&self) -> Result<(), i32> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // Submitted requests finish first: g_detach must find none outstanding.
        self.drain();
        let rt = Runtime::non_owning(Arc::clone(&self.k));
        let cp = self.cp;
        rt.run(move |t| {
            lock(&t.k.user_consumers).remove(&cp);
            // SAFETY: topology lock held; cp is this handle's live consumer.
            unsafe { close_consumer(cp as *mut g_consumer) }
        })
    }
}

/// A request for [`Handle::submit`].
#[derive(Debug)]
pub enum IoOp {
    /// `BIO_READ` of this many bytes, into a fresh buffer.
    Read(usize),
    /// `BIO_READ` of this many bytes into this buffer (resized to fit), which comes back in
    /// [`IoDone::data`]: a server keeping a pool of buffers allocates nothing per request.
    ReadInto(Vec<u8>, usize),
    /// `BIO_WRITE` of these bytes.
    Write(Vec<u8>),
    /// `BIO_DELETE` of this many bytes.
    Delete(i64),
    /// `BIO_FLUSH` (ordered, as `g_io_flush` sends it).
    Flush,
}

/// The result of a submitted request.
#[derive(Debug)]
pub struct IoDone {
    /// The bio's error (0 for success).
    pub error: i32,
    /// `bio_completed`: the bytes done.
    pub completed: i64,
    /// The request's buffer: for a read, what was read (cut to `completed`); for a write,
    /// the data given back; empty otherwise.
    pub data: Vec<u8>,
}

/// What a submitted bio owns until its completion: one allocation per request, the
/// completion closure stored inline (its type picks the `bio_done`, so nothing is boxed twice).
struct AsyncBio<F> {
    buf: Vec<u8>,
    done: F,
    submitted: Arc<AtomicUsize>,
}

/// `bio_done` of a submitted bio: take back what it owned, destroy it, tell the submitter.
unsafe extern "C" fn async_done<F: FnOnce(IoDone)>(bp: *mut bio) {
    // SAFETY: bp is a completed bio made by `Handle::submit` with this `F`, whose
    // bio_caller1 is the `AsyncBio<F>` it leaked; the bio is ours to destroy now.
    let (pending, error, completed, cmd) = unsafe {
        let pending = Box::from_raw((*bp).bio_caller1.cast::<AsyncBio<F>>());
        let mut error = (*bp).error();
        if error == 0 && (*bp).bio_flags & sys::BIO_ERROR != 0 {
            error = errno::EIO;
        }
        let completed = (*bp).bio_completed;
        let cmd = (*bp).bio_cmd;
        g_destroy_bio(bp);
        (pending, error, completed, cmd)
    };
    let AsyncBio { mut buf, done, submitted } = *pending;
    if cmd == sys::BIO_READ {
        buf.truncate(completed.clamp(0, buf.len() as i64) as usize);
    }
    done(IoDone { error, completed, data: buf });
    submitted.fetch_sub(1, Ordering::AcqRel);
}

impl Drop for Handle {
    fn drop(&mut self) {
        if !self.k.stopping.load(Ordering::Acquire) {
            let _ = self.close_inner();
        }
    }
}

/// Release a handle consumer: access to zero, detach, destroy it and its geom.
///
/// # Safety
/// Topology lock held; cp is a live HOSTIO consumer.
unsafe fn close_consumer(cp: *mut g_consumer) -> Result<(), i32> {
    // SAFETY: caller's contract.
    unsafe {
        let gp = (*cp).geom;
        if (*cp).acr != 0 || (*cp).acw != 0 || (*cp).ace != 0 {
            let e = sys::g_access(cp, -(*cp).acr, -(*cp).acw, -(*cp).ace);
            if e != 0 {
                return Err(e);
            }
        }
        if !(*cp).provider.is_null() {
            sys::g_detach(cp);
        }
        sys::g_destroy_consumer(cp);
        if (*gp).consumer.is_empty() && (*gp).provider.is_empty() {
            sys::g_destroy_geom(gp);
        }
    }
    Ok(())
}

/// At shutdown: close every handle still open.
pub(crate) fn close_user_consumers(rt: &Runtime) {
    let open: HashMap<usize, Arc<AtomicBool>> = std::mem::take(&mut *lock(&rt.k.user_consumers));
    for (cp, flag) in open {
        flag.store(true, Ordering::Release);
        let _ = rt.run(move |_| {
            // SAFETY: topology lock held; cp was a live handle consumer not yet closed.
            unsafe { close_consumer(cp as *mut g_consumer) }
        });
    }
}
