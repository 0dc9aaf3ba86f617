//! Leaf providers, like FreeBSD's `md(4)`: a memory-backed disk (`md -t malloc`) and a
//! file-backed disk (`md -t vnode`), as geoms of the class `MD`, written against the same
//! KPI a class uses. They serve `BIO_READ`, `BIO_WRITE`, `BIO_DELETE` (the range reads back
//! as zeros), `BIO_FLUSH` (a file disk syncs its file) and `BIO_GETATTR`
//! (`GEOM::candelete`, `GEOM::ident`).
//!
//! A memory disk completes requests in its start method (no sleeping: a memory copy), unless
//! it is made asynchronous, when a worker thread completes them as a real disk's interrupt
//! would. A file disk always uses its worker: file I/O sleeps.

use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use geom_core::sys::{
    self, bio, c_char, c_int, errno, g_class, g_consumer, g_geom, g_provider, gctl_req, sbuf, KernelCell,
};

use crate::invariants::lock;
pub use crate::memstore::DiskImage;
use crate::memstore::MemStore;
use crate::rng::Rng;
use crate::runtime::{kernel_arc, Runtime};
use crate::sched::Fifo;
use crate::topology::name_of;

/// What backs a disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MdKind {
    /// Memory (`md -t malloc`).
    Malloc,
    /// A file (`md -t vnode -f FILE`); created if missing, grown to the media size.
    File(PathBuf),
}

/// How to make a disk.
#[derive(Clone, Debug)]
pub struct MdConfig {
    /// Provider name; `None` picks the first free `mdN`.
    pub name: Option<String>,
    /// What backs it.
    pub kind: MdKind,
    /// Size in bytes (a multiple of the sector size). For a file disk, 0 means the file's
    /// current size.
    pub mediasize: u64,
    /// Sector size: a power of two, at least 512.
    pub sectorsize: u32,
    /// Complete memory-disk requests from a worker thread instead of in start.
    pub asynchronous: bool,
    /// A memory disk with a volatile write cache: writes are durable only once flushed, and
    /// [`MdDisk::power_cut`] shows what a power failure would leave.
    pub write_cache: bool,
    /// A memory disk's initial content (an image left by a power cut), instead of zeros.
    pub image: Option<DiskImage>,
}

impl MdConfig {
    /// A memory disk of `mediasize` bytes with 512-byte sectors.
    pub fn malloc(mediasize: u64) -> Self {
        MdConfig {
            name: None,
            kind: MdKind::Malloc,
            mediasize,
            sectorsize: 512,
            asynchronous: false,
            write_cache: false,
            image: None,
        }
    }

    /// A file disk.
    pub fn file(path: impl Into<PathBuf>, mediasize: u64) -> Self {
        MdConfig {
            name: None,
            kind: MdKind::File(path.into()),
            mediasize,
            sectorsize: 512,
            asynchronous: true,
            write_cache: false,
            image: None,
        }
    }

    /// Set the provider name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Set the sector size.
    pub fn sectorsize(mut self, sectorsize: u32) -> Self {
        self.sectorsize = sectorsize;
        self
    }

    /// Complete requests on a worker thread.
    pub fn asynchronous(mut self, on: bool) -> Self {
        self.asynchronous = on;
        self
    }

    /// Give a memory disk a volatile write cache (see [`MdDisk::power_cut`]).
    pub fn write_cache(mut self, on: bool) -> Self {
        self.write_cache = on;
        self
    }

    /// Start a memory disk from `image` (its size becomes the disk's).
    pub fn image(mut self, image: DiskImage) -> Self {
        self.mediasize = image.size();
        self.image = Some(image);
        self
    }
}

/// What a disk stores its bytes in.
enum Store {
    Mem(MemStore),
    File { file: File, path: PathBuf },
}

/// Turn a host I/O error into a FreeBSD errno.
fn host_errno(e: &std::io::Error) -> c_int {
    match e.kind() {
        std::io::ErrorKind::StorageFull => errno::ENOSPC,
        std::io::ErrorKind::PermissionDenied => errno::EACCES,
        std::io::ErrorKind::NotFound => errno::ENOENT,
        std::io::ErrorKind::FileTooLarge => errno::EFBIG,
        std::io::ErrorKind::ReadOnlyFilesystem => errno::EROFS,
        _ => errno::EIO,
    }
}

impl Store {
    fn read(&self, off: u64, buf: &mut [u8]) -> Result<(), c_int> {
        match self {
            Store::Mem(m) => {
                m.read(off, buf);
                Ok(())
            }
            Store::File { file, .. } => file.read_exact_at(buf, off).map_err(|e| host_errno(&e)),
        }
    }

    fn write(&self, off: u64, data: &[u8]) -> Result<(), c_int> {
        match self {
            Store::Mem(m) => {
                m.write(off, data);
                Ok(())
            }
            Store::File { file, .. } => file.write_all_at(data, off).map_err(|e| host_errno(&e)),
        }
    }

    fn zero(&self, off: u64, len: u64) -> Result<(), c_int> {
        match self {
            Store::Mem(m) => {
                m.zero(off, len);
                Ok(())
            }
            Store::File { file, .. } => {
                let zeros = vec![0u8; (1u64 << 20).min(len) as usize];
                let mut done = 0;
                while done < len {
                    let n = (zeros.len() as u64).min(len - done) as usize;
                    file.write_all_at(&zeros[..n], off + done).map_err(|e| host_errno(&e))?;
                    done += n as u64;
                }
                Ok(())
            }
        }
    }

    fn flush(&self) -> Result<(), c_int> {
        match self {
            Store::Mem(m) => {
                m.flush();
                Ok(())
            }
            Store::File { file, .. } => file.sync_data().map_err(|e| host_errno(&e)),
        }
    }
}

/// A disk's state, hung on its geom's `softc`.
struct MdSoftc {
    store: Arc<Store>,
    kind: MdKind,
    /// The worker's mailbox; `None` for a synchronous memory disk.
    worker: Mutex<Option<Arc<Mailbox>>>,
}

/// What start hands a disk's worker thread: requests, served in order until it closes.
struct Mailbox {
    requests: Fifo<usize>,
    open: AtomicBool,
}

/// A disk made by [`Runtime::md_create`]: its name, and direct access to its backing bytes
/// (what a test compares against, what `dd` of the image would show).
#[derive(Clone)]
pub struct MdDisk {
    name: String,
    mediasize: u64,
    sectorsize: u32,
    store: Arc<Store>,
}

impl MdDisk {
    /// Provider name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Size in bytes.
    pub fn mediasize(&self) -> u64 {
        self.mediasize
    }

    /// Sector size.
    pub fn sectorsize(&self) -> u32 {
        self.sectorsize
    }

    /// Read the backing store directly, bypassing GEOM.
    pub fn read_backing(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        let _ = self.store.read(offset, &mut buf);
        buf
    }

    /// Write the backing store directly, bypassing GEOM (preparing an image, simulating
    /// another writer). Classes that already tasted the disk are not told. The bytes are
    /// durable at once (a write cache is flushed with them).
    pub fn write_backing(&self, offset: u64, data: &[u8]) {
        let _ = self.store.write(offset, data);
        let _ = self.store.flush();
    }

    /// Cut the power now: the image a memory disk would keep. With a write cache, writes not
    /// yet flushed are each lost, kept, or torn at sector granularity, as `rng` decides;
    /// without one, the image is the disk's content. `at_cut` runs at the instant of the cut
    /// (the disk takes no write meanwhile): note there what had completed. The disk itself
    /// goes on unharmed. `None` for a file disk.
    pub fn power_cut(&self, rng: &mut Rng, at_cut: &mut dyn FnMut()) -> Option<DiskImage> {
        match &*self.store {
            Store::Mem(m) => Some(m.power_cut(rng, at_cut)),
            Store::File { .. } => None,
        }
    }

    /// Writes a cached memory disk took since its last flush.
    pub fn unflushed_writes(&self) -> usize {
        match &*self.store {
            Store::Mem(m) => m.unflushed(),
            Store::File { .. } => 0,
        }
    }
}

/// Cut the power of several disks at one instant (each locked until all are cut), as a
/// machine's power failure does; `at_cut` runs once, while none of them can change. Images
/// come back in the order of `disks` (`None` for file disks).
pub fn power_cut_all(disks: &[&MdDisk], rng: &mut Rng, at_cut: &mut dyn FnMut()) -> Vec<Option<DiskImage>> {
    let Some((first, rest)) = disks.split_first() else {
        at_cut();
        return Vec::new();
    };
    let mut inner = Vec::new();
    let mut sub = rng.clone();
    let _ = sub.next_u64();
    let img = first.power_cut(rng, &mut || inner = power_cut_all(rest, &mut sub, at_cut));
    let mut out = vec![img];
    out.append(&mut inner);
    out
}

/// Serve one request against the store (memory copy, or file I/O on the worker).
///
/// # Safety
/// `bp` is a live bio handed to our start, with a data buffer of `bio_length` bytes for
/// READ, WRITE and GETATTR.
unsafe fn serve(store: &Store, bp: *mut bio) {
    // SAFETY: caller's contract; io_check already bounded offset and length by the media.
    unsafe {
        let off = (*bp).bio_offset as u64;
        let len = (*bp).bio_length as usize;
        let r = match (*bp).bio_cmd {
            sys::BIO_READ => store.read(off, std::slice::from_raw_parts_mut((*bp).bio_data.cast(), len)),
            sys::BIO_WRITE => store.write(off, std::slice::from_raw_parts((*bp).bio_data.cast(), len)),
            sys::BIO_DELETE => store.zero(off, len as u64),
            sys::BIO_FLUSH => store.flush(),
            _ => Err(errno::EOPNOTSUPP),
        };
        match r {
            Ok(()) => {
                (*bp).bio_completed = (*bp).bio_length;
                sys::g_io_deliver(bp, 0);
            }
            Err(e) => sys::g_io_deliver(bp, e),
        }
    }
}

unsafe extern "C" fn md_start(bp: *mut bio) {
    // SAFETY: GEOM calls start with a live bio aimed at one of our providers; the geom and
    // its softc live while it has I/O.
    unsafe {
        let gp = (*(*bp).bio_to).geom;
        let sc = &*((*gp).softc as *const MdSoftc);
        if (*bp).bio_cmd == sys::BIO_GETATTR {
            if sys::g_handleattr_int(bp, c"GEOM::candelete".as_ptr(), 1) != 0 {
                return;
            }
            if sys::g_handleattr_str(bp, c"GEOM::ident".as_ptr(), (*gp).name) != 0 {
                return;
            }
            sys::g_io_deliver(bp, errno::EOPNOTSUPP);
            return;
        }
        if let Some(mb) = lock(&sc.worker).as_ref() {
            mb.requests.push_with(|q| q.push_back(bp as usize));
            return;
        }
        if matches!(*sc.store, Store::Mem(_)) {
            serve(&sc.store, bp);
        } else {
            // A file disk whose worker is gone is being destroyed.
            sys::g_io_deliver(bp, errno::ENXIO);
        }
    }
}

unsafe extern "C" fn md_access(_pp: *mut g_provider, _dr: c_int, _dw: c_int, _de: c_int) -> c_int {
    0
}

unsafe extern "C" fn md_orphan(_cp: *mut g_consumer) {}

unsafe extern "C" fn md_dumpconf(
    sb: *mut sbuf,
    indent: *const c_char,
    gp: *mut g_geom,
    cp: *mut g_consumer,
    pp: *mut g_provider,
) {
    if pp.is_null() || !cp.is_null() {
        return;
    }
    // SAFETY: dumpconf runs under the topology lock with live objects and a valid sbuf.
    unsafe {
        let sc = &*((*gp).softc as *const MdSoftc);
        let ind = CStr::from_ptr(indent).to_string_lossy();
        let mut s = format!("{ind}<length>{}</length>\n", (*pp).mediasize);
        match &sc.kind {
            MdKind::Malloc => s += &format!("{ind}<type>malloc</type>\n"),
            MdKind::File(p) => {
                s += &format!("{ind}<type>vnode</type>\n");
                s += &format!("{ind}<file>{}</file>\n", crate::confxml::xml_escape(&p.display().to_string()));
            }
        }
        s += &format!("{ind}<access>read-write</access>\n");
        let c = CString::new(s).unwrap_or_default();
        sys::sbuf_cat(sb, c.as_ptr());
    }
}

/// Stop the worker and wither the geom.
///
/// # Safety
/// Topology lock held; gp is an MD geom.
unsafe fn md_teardown(gp: *mut g_geom) {
    // SAFETY: caller's contract; the softc stays allocated until providergone.
    unsafe {
        let sc = &*((*gp).softc as *const MdSoftc);
        if let Some(mb) = lock(&sc.worker).take() {
            // The worker serves what is queued, then ends.
            mb.open.store(false, Ordering::Release);
            mb.requests.kick();
        }
        sys::g_wither_geom(gp, errno::ENXIO);
    }
}

unsafe extern "C" fn md_destroy_geom(_req: *mut gctl_req, _mp: *mut g_class, gp: *mut g_geom) -> c_int {
    // SAFETY: destroy_geom runs under the topology lock with a live geom of ours.
    unsafe {
        for pp in sys::list_iter(&raw const (*gp).provider, sys::links::provider_in_geom) {
            if (*pp).acr != 0 || (*pp).acw != 0 || (*pp).ace != 0 {
                return errno::EBUSY;
            }
        }
        md_teardown(gp);
    }
    0
}

unsafe extern "C" fn md_providergone(pp: *mut g_provider) {
    // SAFETY: the provider is being destroyed under the topology lock; its geom is ours and
    // has exactly this provider, so the softc goes with it.
    unsafe {
        let gp = (*pp).geom;
        if !(*gp).softc.is_null() {
            drop(Box::from_raw((*gp).softc as *mut MdSoftc));
            (*gp).softc = ptr::null_mut();
        }
    }
}

/// The `MD` class: memory and file disks.
static MD_CLASS: KernelCell<g_class> = KernelCell::new(g_class {
    start: Some(md_start),
    access: Some(md_access),
    orphan: Some(md_orphan),
    dumpconf: Some(md_dumpconf),
    destroy_geom: Some(md_destroy_geom),
    providergone: Some(md_providergone),
    ..g_class::named(c"MD")
});

fn open_store(cfg: &MdConfig) -> Result<(Store, u64), c_int> {
    match &cfg.kind {
        MdKind::Malloc => {
            let mem = MemStore::new(cfg.mediasize, cfg.sectorsize, cfg.image.as_ref(), cfg.write_cache);
            Ok((Store::Mem(mem), cfg.mediasize))
        }
        MdKind::File(path) => {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| host_errno(&e))?;
            let len = file.metadata().map_err(|e| host_errno(&e))?.len();
            let size = if cfg.mediasize == 0 { len } else { cfg.mediasize };
            if len < size {
                file.set_len(size).map_err(|e| host_errno(&e))?;
            }
            Ok((Store::File { file, path: path.clone() }, size))
        }
    }
}

impl Runtime {
    /// Create a disk (`mdconfig -a`). Errors: `EINVAL` for a zero size, a size not a multiple
    /// of the sector size, or a sector size that is not a power of two of at least 512;
    /// `EEXIST` for a name in use; a host I/O error turned into an errno for a file disk.
    pub fn md_create(&self, cfg: MdConfig) -> Result<MdDisk, i32> {
        let ss = cfg.sectorsize;
        if ss < 512 || !ss.is_power_of_two() {
            return Err(errno::EINVAL);
        }
        let (store, size) = open_store(&cfg)?;
        if size == 0 || size % ss as u64 != 0 || size > i64::MAX as u64 {
            return Err(errno::EINVAL);
        }
        let store = Arc::new(store);
        let st = Arc::clone(&store);
        let kind = cfg.kind.clone();
        let want_worker = cfg.asynchronous || matches!(cfg.kind, MdKind::File(_));
        let wanted = cfg.name.clone();
        let name = self.run(move |t| {
            let k = t.k;
            let mut mp = crate::topology::class_by_name_in(k, c"MD");
            if mp.is_null() {
                crate::topology::load_class(k, MD_CLASS.get())?;
                mp = crate::topology::class_by_name_in(k, c"MD");
            }
            let name = match wanted {
                Some(n) => n,
                None => (0..).map(|i| format!("md{i}")).find(|n| t.provider_by_name(n).is_null()).unwrap_or_default(),
            };
            if !t.provider_by_name(&name).is_null() {
                return Err(errno::EEXIST);
            }
            let cname = CString::new(name.clone()).map_err(|_| errno::EINVAL)?;
            let worker = if want_worker {
                let mb = Arc::new(Mailbox {
                    requests: Fifo::new(VecDeque::new(), k.baton.clone()),
                    open: AtomicBool::new(true),
                });
                let (wmb, wst) = (Arc::clone(&mb), Arc::clone(&st));
                kernel_arc()
                    .spawn_worker(format!("{}:{name}", k.config.name), move || {
                        let closed = || !wmb.open.load(Ordering::Acquire);
                        while let Some(bp) = wmb.requests.take_or_wait(VecDeque::pop_front, closed) {
                            // SAFETY: start handed us this live bio; we own it until delivered.
                            unsafe { serve(&wst, bp as *mut bio) };
                        }
                    })
                    .map_err(|_| errno::ENOMEM)?;
                Some(mb)
            } else {
                None
            };
            // SAFETY: topology lock held; the geom and provider are created and published
            // as a driver does.
            unsafe {
                let gp = crate::topology::geom_host_new_geom(mp, cname.as_ptr());
                let sc = Box::new(MdSoftc { store: st, kind, worker: Mutex::new(worker) });
                (*gp).softc = Box::into_raw(sc).cast();
                let pp = crate::topology::geom_host_new_provider(gp, cname.as_ptr());
                (*pp).mediasize = size as i64;
                (*pp).sectorsize = ss;
                (*pp).flags |= sys::G_PF_DIRECT_SEND | sys::G_PF_DIRECT_RECEIVE;
                sys::g_error_provider(pp, 0);
            }
            Ok(name)
        })?;
        Ok(MdDisk { name, mediasize: size, sectorsize: ss, store })
    }

    /// Destroy a disk (`mdconfig -d`): `EBUSY` while it is open, `ENOENT` if there is no
    /// such disk.
    pub fn md_destroy(&self, name: &str) -> Result<(), i32> {
        let name = name.to_owned();
        self.run(move |t| {
            let gp = md_geom(t, &name)?;
            // SAFETY: topology lock held; gp is a live MD geom.
            match unsafe { md_destroy_geom(ptr::null_mut(), ptr::null_mut(), gp) } {
                0 => Ok(()),
                e => Err(e),
            }
        })?;
        self.wait_idle();
        Ok(())
    }
}

/// The MD geom whose provider is `name`, or `ENOENT`.
fn md_geom(t: &crate::Topo<'_>, name: &str) -> Result<*mut g_geom, i32> {
    let pp = t.provider_by_name(name);
    // SAFETY: the token proves the topology lock is held; pp (if any) is live.
    unsafe {
        if pp.is_null() || name_of((*(*(*pp).geom).class).name) != "MD" {
            return Err(errno::ENOENT);
        }
        Ok((*pp).geom)
    }
}

impl Runtime {
    /// Destroy a disk even while it is open (`mdconfig -d -o force`): its provider is
    /// orphaned, the geoms above are told, and it goes away once nothing is attached.
    pub fn md_destroy_forced(&self, name: &str) -> Result<(), i32> {
        let name = name.to_owned();
        self.run(move |t| {
            let gp = md_geom(t, &name)?;
            // SAFETY: topology lock held; gp is a live MD geom.
            unsafe { md_teardown(gp) };
            Ok(())
        })
    }
}

impl std::fmt::Debug for MdDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &*self.store {
            Store::Mem(_) => "malloc".to_owned(),
            Store::File { path, .. } => format!("vnode {}", path.display()),
        };
        write!(f, "MdDisk({} {} bytes, {kind})", self.name, self.mediasize)
    }
}
