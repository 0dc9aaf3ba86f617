//! Memory on the userland runtime: malloc types (accounting, registration, leak warnings,
//! `M_NOWAIT` failures), UMA zones (reuse, counts, alignment, failures, leak reports), and
//! bios a class issues itself with a buffer of its own or a lent one, driven through a
//! bounce class and checked byte for byte on the disk below.

mod common;

use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use common::{collecting, finish, runtime, AnyVerb, Rng};
use geom_core::sys::{self, errno, KernelCell};
use geom_core::{
    BareBio, BufBio, Class, Cmd, Consumer, Dump, Errno, Gctl, Geom, GeomClass, GeomRef, IoCtx, KBox, KBuf, Provider,
    Request, Result, SleepCtx, Topology, XmlWriter, Zone, ZoneBox,
};
use geom_host::disk::MdConfig;
use geom_host::{CtlRequest, CtlValue, MallocUsage, Runtime, ViolationKind};

const MIB: u64 = 1 << 20;

geom_core::malloc_define!(M_MEMT_A, "memt_a", "Test type A");
geom_core::malloc_define!(M_MEMT_B, "memt_b", "Test type B");
geom_core::malloc_define!(M_MEMT_SYS, "memt_sys", "Test type registered through its SYSINIT record");
geom_core::malloc_define!(M_BOUNCE, "memt_bounce", "Buffers of the BOUNCE test class");

/// Run `f` with a topology token, on the event thread.
fn with_topology<R: Send + 'static>(rt: &Runtime, f: impl FnOnce(&mut Topology) -> R + Send + 'static) -> R {
    rt.run(move |_| {
        // SAFETY: Runtime::run runs the closure on the event thread with the topology lock
        // held, for as long as the closure runs.
        let mut topo = unsafe { Topology::assume_locked() };
        f(&mut topo)
    })
}

/// Run `f` with an I/O context (it must not sleep, and does not), on the event thread.
fn with_io<R: Send + 'static>(rt: &Runtime, f: impl FnOnce(&IoCtx) -> R + Send + 'static) -> R {
    rt.run(move |_| {
        // SAFETY: the closures passed here only allocate without waiting and free.
        let cx = unsafe { IoCtx::assume() };
        f(&cx)
    })
}

fn usage(name: &str, bytes: i64, allocations: i64) -> MallocUsage {
    MallocUsage { name: name.into(), bytes, allocations }
}

// ---------------------------------------------------------------------------------------
// Malloc types

#[test]
fn malloc_types_account_each_allocation_to_its_type() {
    let rt = runtime("malloc-account");
    rt.malloc_init(&M_MEMT_A);
    rt.malloc_init(&M_MEMT_A); // idempotent
    assert!(rt.malloc_type_registered(&M_MEMT_A));
    assert!(!rt.malloc_type_registered(&M_MEMT_B));
    let (b, zeroed, copy) = with_topology(&rt, |topo| {
        (
            KBox::new(topo, &M_MEMT_A, [7u64; 4]),
            KBuf::zeroed(topo, &M_MEMT_A, 1000),
            KBuf::from_slice(topo, &M_MEMT_B, b"hello"),
        )
    });
    assert_eq!(*b, [7; 4]);
    assert!(zeroed.len() == 1000 && zeroed.iter().all(|&x| x == 0));
    assert_eq!(&copy[..], b"hello");
    assert_eq!(rt.malloc_usage(&M_MEMT_A), usage("memt_a", 32 + 1000, 2));
    assert_eq!(rt.malloc_usage(&M_MEMT_B), usage("memt_b", 5, 1));
    // Only registered types are listed, as vmstat -m lists the kernel's.
    assert_eq!(rt.malloc_types(), vec![usage("memt_a", 1032, 2)]);

    // Nothing to allocate: nothing accounted.
    let (unit, empty) = with_topology(&rt, |topo| (KBox::new(topo, &M_MEMT_A, ()), KBuf::zeroed(topo, &M_MEMT_A, 0)));
    assert!(empty.is_empty());
    assert_eq!(rt.malloc_usage(&M_MEMT_A), usage("memt_a", 1032, 2));

    {
        let _e = rt.enter();
        assert_eq!(KBox::into_inner(b), [7; 4]);
        drop((zeroed, copy, unit, empty));
    }
    assert_eq!(rt.malloc_usage(&M_MEMT_A), usage("memt_a", 0, 0));
    assert_eq!(rt.malloc_usage(&M_MEMT_B), usage("memt_b", 0, 0));
    rt.malloc_uninit(&M_MEMT_A);
    assert!(!rt.malloc_type_registered(&M_MEMT_A));
    assert!(!rt.console_log().iter().any(|l| l.contains("leaked")), "{:?}", rt.console_log());
    finish(rt);
}

#[test]
fn values_are_dropped_with_their_box() {
    struct Counted(Arc<AtomicU64>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Relaxed);
        }
    }
    let rt = runtime("malloc-drop");
    let drops = Arc::new(AtomicU64::new(0));
    let d = Arc::clone(&drops);
    with_topology(&rt, move |topo| {
        let b = KBox::new(topo, &M_MEMT_A, Counted(Arc::clone(&d)));
        drop(b);
        let z = Zone::new(topo, c"memt_drops");
        drop(z.alloc(topo, Counted(d)));
    });
    assert_eq!(drops.load(Relaxed), 2);
    assert_eq!(rt.malloc_usage(&M_MEMT_A).allocations, 0);
    finish(rt);
}

#[test]
fn uninit_warns_about_memory_still_allocated() {
    let rt = runtime("malloc-leak");
    rt.malloc_init(&M_MEMT_B);
    let held = with_topology(&rt, |topo| KBuf::zeroed(topo, &M_MEMT_B, 1000));
    rt.malloc_uninit(&M_MEMT_B);
    let log = rt.console_log();
    assert!(
        log.iter()
            .any(|l| l == "Warning: memory type memt_b leaked memory on destroy (1 allocations, 1000 bytes leaked)."),
        "{log:?}"
    );
    {
        let _e = rt.enter();
        drop(held);
    }
    assert_eq!(rt.malloc_usage(&M_MEMT_B), usage("memt_b", 0, 0));
    finish(rt);
}

#[test]
fn registration_is_per_runtime() {
    let a = runtime("malloc-reg-a");
    let b = runtime("malloc-reg-b");
    a.malloc_init(&M_MEMT_A);
    b.malloc_init(&M_MEMT_A);
    a.malloc_uninit(&M_MEMT_A);
    assert!(!a.malloc_type_registered(&M_MEMT_A));
    assert!(b.malloc_type_registered(&M_MEMT_A), "another runtime's unload leaves ours registered");
    b.malloc_uninit(&M_MEMT_A);
    finish(a);
    finish(b);
}

#[test]
fn bad_registrations_are_reported() {
    static OLD: KernelCell<sys::malloc_type> = KernelCell::new({
        let mut m = sys::malloc_type::new(c"memt_old".as_ptr());
        m.ks_version = 2_002_082_200;
        m
    });
    let rt = collecting("malloc-bad");
    {
        let _e = rt.enter();
        // SAFETY: OLD is a valid static malloc type (of the wrong version, on purpose).
        unsafe { sys::malloc_init(OLD.get().cast()) };
    }
    rt.malloc_uninit(&M_MEMT_B);
    let v = rt.shutdown();
    assert_eq!(v.len(), 2, "{v:#?}");
    assert!(v[0].kind == ViolationKind::Kassert && v[0].message.contains("unsupported version 2002082200"), "{v:#?}");
    assert!(v[1].kind == ViolationKind::Kassert && v[1].message.contains("'memt_b' not found"), "{v:#?}");
}

unsafe extern "C" {
    static __start_set_sysinit_set: sys::SetEntry;
    static __stop_set_sysinit_set: sys::SetEntry;
    static __start_set_sysuninit_set: sys::SetEntry;
    static __stop_set_sysuninit_set: sys::SetEntry;
}

/// The records of a linker set that point at `udata`.
///
/// # Safety
/// `start..stop` bound one linker set of `sysinit` records.
unsafe fn records_for(
    start: *const sys::SetEntry,
    stop: *const sys::SetEntry,
    udata: *const sys::c_void,
) -> Vec<*const sys::sysinit> {
    let n = (stop as usize - start as usize) / std::mem::size_of::<sys::SetEntry>();
    // SAFETY: the linker set is an array of entries between the two symbols (as C walks
    // it), each pointing at a static record.
    unsafe {
        (0..n).map(|i| (*start.add(i)).record().cast::<sys::sysinit>()).filter(|&r| (*r).udata == udata).collect()
    }
}

/// What the kernel linker does with a module's linker sets, for one type: malloc_define!
/// put a SYSINIT and a SYSUNINIT record in the binary that register and unregister it.
#[test]
fn malloc_define_emits_the_sysinit_records_of_malloc_define() {
    let rt = runtime("malloc-sysinit");
    let udata = M_MEMT_SYS.sysinit_arg();
    // SAFETY: the linker defines the bounds of each set around its entries.
    let (inits, uninits) = unsafe {
        (
            records_for(&raw const __start_set_sysinit_set, &raw const __stop_set_sysinit_set, udata),
            records_for(&raw const __start_set_sysuninit_set, &raw const __stop_set_sysuninit_set, udata),
        )
    };
    assert_eq!((inits.len(), uninits.len()), (1, 1));
    // SAFETY: the records are statics.
    let (init, uninit) = unsafe { (&*inits[0], &*uninits[0]) };
    assert_eq!((init.subsystem, init.order), (sys::SI_SUB_KMEM, sys::SI_ORDER_THIRD));
    assert_eq!((uninit.subsystem, uninit.order), (sys::SI_SUB_KMEM, sys::SI_ORDER_ANY));
    let (f_init, f_uninit) = (init.func.unwrap(), uninit.func.unwrap());
    let (want_init, want_uninit): (sys::sysinit_cfunc_t, sys::sysinit_cfunc_t) = (sys::malloc_init, sys::malloc_uninit);
    assert_eq!(f_init as usize, want_init as usize);
    assert_eq!(f_uninit as usize, want_uninit as usize);
    {
        let _e = rt.enter();
        // SAFETY: running a SYSINIT record as the kernel linker does at load.
        unsafe { f_init(init.udata) };
    }
    assert!(rt.malloc_type_registered(&M_MEMT_SYS));
    {
        let _e = rt.enter();
        // SAFETY: as above, at unload.
        unsafe { f_uninit(uninit.udata) };
    }
    assert!(!rt.malloc_type_registered(&M_MEMT_SYS));
    finish(rt);
}

#[test]
fn nowait_allocations_fail_with_enomem() {
    let rt = runtime("malloc-nowait");
    rt.fail_next_mallocs(3);
    let got = with_io(&rt, |cx| {
        let boxed = KBox::try_new(cx, &M_MEMT_A, 1u32).err();
        let zeroed = KBuf::try_zeroed(cx, &M_MEMT_A, 64).err();
        let back = KBox::try_new_or_back(cx, &M_MEMT_A, 42u64).err();
        let ok = KBuf::try_from_slice(cx, &M_MEMT_A, b"xyz").map(|b| b.to_vec());
        // Nothing to allocate: never fails.
        let unit = KBox::try_new(cx, &M_MEMT_A, ()).is_ok();
        (boxed, zeroed, back, ok, unit)
    });
    assert_eq!(got, (Some(Errno::ENOMEM), Some(Errno::ENOMEM), Some(42), Ok(b"xyz".to_vec()), true));
    assert_eq!(rt.malloc_usage(&M_MEMT_A), usage("memt_a", 0, 0));
    finish(rt);
}

// ---------------------------------------------------------------------------------------
// Zones

#[test]
fn zones_reuse_freed_items_and_count_them() {
    let rt = runtime("zone-reuse");
    let zone = with_topology(&rt, |topo| Zone::<[u64; 3]>::new(topo, c"memt_reuse"));
    let info = rt.zone("memt_reuse").expect("the zone is listed");
    assert_eq!((info.size, info.align, info.live, info.allocs), (24, 8, 0, 0));
    let (first, second, item, zone) = with_topology(&rt, move |topo| {
        let a = zone.alloc(topo, [1, 2, 3]);
        let first = &*a as *const [u64; 3] as usize;
        drop(a);
        let b = zone.alloc(topo, [4, 5, 6]);
        let second = &*b as *const [u64; 3] as usize;
        (first, second, b, zone)
    });
    assert_eq!(first, second, "the freed item is handed out again");
    assert_eq!(*item, [4, 5, 6]);
    let info = rt.zone("memt_reuse").unwrap();
    assert_eq!((info.live, info.cached, info.allocs, info.frees), (1, 0, 2, 1));
    assert_eq!(zone.live(), 1);

    // Not destroyed while an item is out: the zone comes back.
    let zone = with_topology(&rt, move |topo| zone.destroy(topo).expect_err("an item is out"));
    assert!(rt.zone("memt_reuse").is_some());
    {
        let _e = rt.enter();
        assert_eq!(ZoneBox::into_inner(item), [4, 5, 6]);
    }
    let info = rt.zone("memt_reuse").unwrap();
    assert_eq!((info.live, info.cached, info.frees), (0, 1, 2));
    with_topology(&rt, move |topo| zone.destroy(topo).expect("empty now"));
    assert!(rt.zone("memt_reuse").is_none());
    finish(rt);
}

#[test]
fn zone_items_are_aligned_as_their_type_needs() {
    #[repr(align(64))]
    struct Line([u8; 64]);
    let rt = runtime("zone-align");
    let zone = with_topology(&rt, |topo| {
        let zone = Zone::<Line>::new(topo, c"memt_lines");
        let items: Vec<_> = (0..8u8).map(|i| zone.alloc(topo, Line([i; 64]))).collect();
        for (i, it) in items.iter().enumerate() {
            assert_eq!(&**it as *const Line as usize % 64, 0);
            assert_eq!(it.0, [i as u8; 64]);
        }
        drop(items);
        // Zero-sized items need no memory: no UMA zone, but still counted.
        let units = Zone::<()>::new(topo, c"memt_units");
        let u = units.alloc(topo, ());
        assert_eq!(units.live(), 1);
        drop(u);
        assert!(units.destroy(topo).is_ok());
        zone
    });
    assert_eq!(rt.zone("memt_lines").map(|z| (z.size, z.align, z.frees)), Some((64, 64, 8)));
    assert!(rt.zone("memt_units").is_none());
    with_topology(&rt, move |topo| zone.destroy(topo).unwrap());
    finish(rt);
}

#[test]
fn nowait_zone_allocations_fail_with_enomem() {
    let rt = runtime("zone-nowait");
    let zone = Arc::new(with_topology(&rt, |topo| Zone::<u32>::new(topo, c"memt_nowait")));
    rt.fail_next_zone_allocations(2);
    let z = Arc::clone(&zone);
    let got = with_io(&rt, move |cx| {
        let first = z.try_alloc(cx, 1).err();
        let back = z.try_alloc_or_back(cx, 2).err();
        let third = z.try_alloc(cx, 3).map(ZoneBox::into_inner);
        (first, back, third)
    });
    assert_eq!(got, (Some(Errno::ENOMEM), Some(2), Ok(3)));
    let info = rt.zone("memt_nowait").unwrap();
    assert_eq!((info.fails, info.allocs, info.live), (2, 1, 0));
    with_topology(&rt, move |_| drop(zone));
    assert!(rt.zone("memt_nowait").is_none(), "dropping an empty zone destroys it");
    finish(rt);
}

#[test]
fn destroying_a_zone_with_items_out_is_reported() {
    let rt = runtime("zone-leak");
    {
        let _e = rt.enter();
        // SAFETY: a valid name; items are allocated from the zone and the zone destroyed
        // with two of them out, on purpose; none is used afterwards.
        unsafe {
            let z = sys::uma_zcreate(c"memt_raw".as_ptr(), 100, None, None, None, None, sys::UMA_ALIGN_PTR, 0);
            let a = sys::uma_zalloc(z, sys::M_WAITOK | sys::M_ZERO);
            let b = sys::uma_zalloc(z, sys::M_WAITOK);
            let c = sys::uma_zalloc(z, sys::M_WAITOK);
            assert!(!a.is_null() && !b.is_null() && !c.is_null());
            assert!(std::slice::from_raw_parts(a.cast::<u8>(), 100).iter().all(|&x| x == 0));
            sys::uma_zfree(z, c);
            sys::uma_zdestroy(z);
        }
    }
    let log = rt.console_log();
    assert!(
        log.iter().any(|l| l == "Freed UMA keg (memt_raw) was not empty (2 items).  Lost 1 pages of memory."),
        "{log:?}"
    );
    assert!(rt.zone("memt_raw").is_none());

    // The safe Zone never destroys a zone under its items: dropped with one out, it stays.
    let item = with_topology(&rt, |topo| {
        let zone = Zone::<u32>::new(topo, c"memt_kept");
        let item = zone.alloc(topo, 5);
        drop(zone);
        item
    });
    assert!(rt.console_log().iter().any(|l| l.contains("zone memt_kept dropped with 1 item(s) still allocated")));
    assert_eq!(rt.zone("memt_kept").map(|z| z.live), Some(1));
    {
        let _e = rt.enter();
        drop(item);
    }
    assert_eq!(rt.zone("memt_kept").map(|z| (z.live, z.frees)), Some((0, 1)));
    finish(rt);
}

#[test]
fn misuse_of_zone_items_is_reported() {
    let rt = collecting("zone-misuse");
    {
        let _e = rt.enter();
        // SAFETY: valid zones; the write after free and the second free are the bugs under
        // test: the memory written is still the zone's (cached), and the runtime refuses the
        // second free.
        unsafe {
            let z = sys::uma_zcreate(c"memt_misuse".as_ptr(), 32, None, None, None, None, sys::UMA_ALIGN_PTR, 0);
            let a = sys::uma_zalloc(z, sys::M_NOWAIT);
            sys::uma_zfree(z, a);
            a.cast::<u8>().add(5).write(1);
            let again = sys::uma_zalloc(z, sys::M_NOWAIT);
            assert_eq!(again, a, "the freed item comes back");
            sys::uma_zfree(z, again);
            sys::uma_zfree(z, again);
            sys::uma_zdestroy(z);

            // ZINIT: fresh items are zeroed, and not trashed when freed.
            let z = sys::uma_zcreate(c"memt_zinit".as_ptr(), 64, None, None, None, None, 7, sys::UMA_ZONE_ZINIT);
            let a = sys::uma_zalloc(z, sys::M_WAITOK);
            assert!(std::slice::from_raw_parts(a.cast::<u8>(), 64).iter().all(|&x| x == 0));
            sys::uma_zfree(z, a);
            sys::uma_zdestroy(z);
        }
    }
    let v = rt.shutdown();
    assert_eq!(v.len(), 2, "{v:#?}");
    assert!(v[0].message.contains("Memory modified after free") && v[0].message.contains("offset 5"), "{v:#?}");
    assert!(v[1].message.contains("duplicate free"), "{v:#?}");
}

// ---------------------------------------------------------------------------------------
// BOUNCE: a class that serves reads and writes through bios and buffers of its own, and
// runs synchronous I/O with owned and borrowed buffers on request.

/// The class: a zone of per-request records, shared with its geoms.
struct Bounce {
    track: Arc<Zone<Track>>,
}

/// One request in flight below: the request being served, and where to count.
struct Track {
    req: Request,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    bounced: AtomicU64,
    enomem: AtomicU64,
}

/// One `<provider>.bnc` geom; opens of its provider are passed to its consumer.
struct BounceGeom {
    cp: Consumer,
    track: Arc<Zone<Track>>,
    stats: Arc<Stats>,
}

#[geom_core::geom_class]
impl GeomClass for Bounce {
    const NAME: &'static CStr = c"BOUNCE";
    type Softc = BounceGeom;
    type Verb = AnyVerb;

    fn init(topo: &mut Topology) -> Self {
        Bounce { track: Arc::new(Zone::new(topo, c"bounce_track")) }
    }

    fn ctlreq(cls: &Class<Self>, topo: &mut Topology, req: &mut Gctl<'_>, verb: AnyVerb) {
        let r = match verb.0.to_bytes() {
            b"create" => create(cls, topo, req),
            b"sync" => sync(cls, topo, req),
            _ => Err("unknown verb".into()),
        };
        if let Err(msg) = r {
            req.error(format_args!("{msg}"));
        }
    }

    fn destroy_geom(_cls: &Class<Self>, topo: &mut Topology, gp: GeomRef<Self>) -> Result<()> {
        if gp.providers(topo).any(|p| p.is_open(topo)) {
            return Err(Errno::EBUSY);
        }
        gp.wither_close(topo, Errno::ENXIO);
        Ok(())
    }
}

/// `create <provider>` [`extra` bytes of size beyond the provider's] [`direct`].
fn create(cls: &Class<Bounce>, topo: &mut Topology, req: &Gctl<'_>) -> std::result::Result<(), String> {
    let name = req.arg(0).ok_or("no provider")?;
    let pp = Provider::by_name(topo, name).ok_or("no such provider")?;
    let extra = req.intmax(c"extra").unwrap_or(0);
    let direct = req.flag(c"direct");
    let gname = CString::new(format!("{}.bnc", name.to_string_lossy())).unwrap();
    let track = Arc::clone(&cls.track);
    cls.new_geom_with(topo, &gname, |topo, g| {
        let cp = g.new_consumer(topo);
        if let Err(e) = cp.attach(topo, pp) {
            cp.destroy(topo);
            return Err(e);
        }
        let np = g.new_provider(topo, &gname);
        np.set_geometry(topo, pp.mediasize() + extra, pp.sectorsize(), 0, 0);
        if direct {
            cp.set_direct(topo);
            np.set_direct(topo);
        }
        np.set_ready(topo);
        Ok(BounceGeom { cp, track, stats: Arc::default() })
    })
    .map(|_| ())
    .map_err(|e| format!("create: {e:?}"))
}

/// The bytes `sync` writes and expects: a function of the seed.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    Rng::new(seed).bytes(len)
}

/// `sync <geom>` `offset` `length` `seed` `write` `read`: write the seed's pattern at
/// `offset` with a bio owning its buffer ("owned"), a bio over a lent one ("borrowed"), or
/// not at all ("none"); then read it back the `read` way and compare.
fn sync(cls: &Class<Bounce>, topo: &mut Topology, req: &Gctl<'_>) -> std::result::Result<(), String> {
    let name = req.arg(0).ok_or("no geom")?;
    let gp = cls.geom_by_name(topo, name).ok_or("no such geom")?;
    let cp = gp.softc().ok_or("no state")?.cp;
    let offset = req.intmax(c"offset").ok_or("no offset")?;
    let length = req.intmax(c"length").ok_or("no length")? as usize;
    let data = pattern(req.intmax(c"seed").ok_or("no seed")? as u64, length);
    let how = |p: &CStr| req.ascii(p).map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "none".into());
    let (write, read) = (how(c"write"), how(c"read"));
    cp.access(topo, 1, 1, 0).map_err(|e| format!("access: {e:?}"))?;
    let r = topo.unlocked(|scx| sync_io(scx, cp, offset, &data, &write, &read));
    cp.access(topo, -1, -1, 0).map_err(|e| format!("access: {e:?}"))?;
    r
}

fn sync_io(
    scx: &SleepCtx,
    cp: Consumer,
    offset: i64,
    data: &[u8],
    write: &str,
    read: &str,
) -> std::result::Result<(), String> {
    let len = data.len() as i64;
    let mut kept = None;
    match write {
        "owned" => {
            let mut bio = BufBio::from_buf(scx, KBuf::from_slice(scx, &M_BOUNCE, data));
            bio.set_io(Cmd::Write, offset, len).map_err(|e| format!("set_io: {e:?}"))?;
            let n = bio.run(scx, cp).map_err(|e| format!("owned write: {e:?}"))?;
            if n != len {
                return Err(format!("owned write: {n} of {len} bytes"));
            }
            kept = Some(bio);
        }
        "borrowed" => {
            let n = BareBio::new(scx).write(scx, cp, offset, data).map_err(|e| format!("borrowed write: {e:?}"))?;
            if n != data.len() {
                return Err(format!("borrowed write: {n} of {len} bytes"));
            }
        }
        _ => {}
    }
    let back = match read {
        "owned" => {
            // Reuse the bio that wrote, if any, its buffer wiped first.
            let mut bio = kept.take().unwrap_or_else(|| BufBio::new(scx, &M_BOUNCE, data.len()));
            bio.buf_mut().fill(0);
            bio.set_io(Cmd::Read, offset, len).map_err(|e| format!("set_io: {e:?}"))?;
            let n = bio.run(scx, cp).map_err(|e| format!("owned read: {e:?}"))?;
            bio.buf()[..n as usize].to_vec()
        }
        "borrowed" => {
            let mut buf = vec![0u8; data.len()];
            let n = BareBio::new(scx).read(scx, cp, offset, &mut buf).map_err(|e| format!("borrowed read: {e:?}"))?;
            buf.truncate(n);
            buf
        }
        _ => return Ok(()),
    };
    if back != data {
        return Err(format!("{read} read: {} bytes back, not what was written", back.len()));
    }
    Ok(())
}

#[geom_core::geom_class]
impl Geom for BounceGeom {
    type Class = Bounce;

    fn start(&self, cx: &IoCtx, req: Request) {
        match req.cmd() {
            Cmd::Read | Cmd::Write => self.bounce(cx, req),
            _ => req.pass_down(cx, self.cp),
        }
    }

    fn access(
        &self,
        topo: &mut Topology,
        _gp: GeomRef<Bounce>,
        _pp: Provider,
        dr: i32,
        dw: i32,
        de: i32,
    ) -> Result<()> {
        self.cp.access(topo, dr, dw, de)
    }

    fn dumpconf(&self, _topo: &Topology, xml: &mut XmlWriter<'_>, what: Dump) {
        if what == Dump::Geom {
            xml.element("Bounced", self.stats.bounced.load(Relaxed));
            xml.element("Enomem", self.stats.enomem.load(Relaxed));
        }
    }
}

impl BounceGeom {
    /// Serve a read or write through a buffer of our own, without sleeping: a record from the
    /// zone, then a bio with its buffer; any shortage fails the request with ENOMEM, which
    /// GEOM sends again later.
    fn bounce(&self, cx: &IoCtx, req: Request) {
        let record = Track { req, stats: Arc::clone(&self.stats) };
        let track = match self.track.try_alloc_or_back(cx, record) {
            Ok(t) => t,
            Err(t) => return self.short(t.req),
        };
        let mut bio = match BufBio::try_new(cx, &M_BOUNCE, track.req.length() as usize) {
            Ok(b) => b,
            Err(_) => return self.short(ZoneBox::into_inner(track).req),
        };
        let (cmd, offset, length) = (track.req.cmd(), track.req.offset(), track.req.length());
        if cmd == Cmd::Write {
            bio.buf_mut().copy_from_slice(track.req.data().unwrap_or_default());
        }
        if let Err(e) = bio.set_io(cmd, offset, length) {
            return ZoneBox::into_inner(track).req.fail(e);
        }
        bio.send(self.cp, track, bounced);
    }

    fn short(&self, req: Request) {
        self.stats.enomem.fetch_add(1, Relaxed);
        req.fail(Errno::ENOMEM);
    }
}

/// The bio below is back (done context): copy a read's bytes up and finish the request.
fn bounced(_cx: &IoCtx, bio: BufBio, track: ZoneBox<Track>) {
    let Track { mut req, stats } = ZoneBox::into_inner(track);
    stats.bounced.fetch_add(1, Relaxed);
    match bio.result() {
        Ok(n) => {
            if req.cmd() == Cmd::Read {
                if let Some(d) = req.data_mut() {
                    d[..n as usize].copy_from_slice(&bio.buf()[..n as usize]);
                }
            }
            req.complete(n);
        }
        Err(e) => req.fail(e),
    }
}

fn bounce_rt(name: &str, extra: i64, direct: bool) -> (Runtime, geom_host::disk::MdDisk) {
    let rt = runtime(name);
    let md = rt.md_create(MdConfig::malloc(4 * MIB)).unwrap();
    rt.load::<Bounce>().unwrap();
    let mut r = CtlRequest::new("BOUNCE", "create").arg("md0").param("extra", CtlValue::Intmax(extra));
    if direct {
        r = r.param("direct", CtlValue::Int(1));
    }
    let reply = rt.ctl(&r);
    assert_eq!(reply.error, 0, "{:?}", reply.message);
    (rt, md)
}

/// Unload BOUNCE and check it left nothing behind: its zone destroyed, no buffer, no bio.
fn unload_bounce(rt: Runtime) {
    rt.unload_class("BOUNCE").unwrap();
    assert!(rt.zone("bounce_track").is_none(), "the class's zone went with the class");
    assert_eq!(rt.malloc_usage(&M_BOUNCE), usage("memt_bounce", 0, 0));
    assert_eq!(rt.live_bios(), 0);
    finish(rt);
}

fn xml_count(rt: &Runtime, tag: &str) -> u64 {
    let xml = rt.confxml();
    let open = format!("<{tag}>");
    let at = xml.find(&open).unwrap_or_else(|| panic!("no {tag} in {xml}")) + open.len();
    xml[at..].split('<').next().unwrap().parse().unwrap()
}

fn bounce_io(direct: bool) {
    let (rt, md) = bounce_rt(if direct { "bounce-direct" } else { "bounce-queued" }, 0, direct);
    let h = rt.open("md0.bnc", 1, 1, 0).unwrap();
    let mut rng = Rng::new(if direct { 11 } else { 12 });
    for _ in 0..64 {
        let off = rng.below(4 * MIB / 512 - 64) * 512;
        let len = (1 + rng.below(64)) as usize * 512;
        let data = rng.bytes(len);
        assert_eq!(h.write(off as i64, &data).unwrap(), data.len());
        assert_eq!(md.read_backing(off, data.len()), data, "bytes on the disk below");
        assert_eq!(h.read(off as i64, data.len()).unwrap(), data);
    }
    h.flush().unwrap();
    h.close().unwrap();
    assert_eq!(xml_count(&rt, "Bounced"), 128);
    assert_eq!(xml_count(&rt, "Enomem"), 0);
    assert_eq!(rt.zone("bounce_track").map(|z| (z.live, z.allocs)), Some((0, 128)));
    unload_bounce(rt);
}

#[test]
fn owned_buffer_bios_carry_requests_to_the_disk() {
    bounce_io(false);
}

#[test]
fn owned_buffer_bios_complete_in_the_issuers_thread_under_direct_dispatch() {
    bounce_io(true);
}

#[test]
fn shortages_in_start_become_enomem_and_the_request_is_sent_again() {
    let (rt, md) = bounce_rt("bounce-enomem", 0, false);
    let h = rt.open("md0.bnc", 1, 1, 0).unwrap();
    let data = Rng::new(21).bytes(8192);
    // Each attempt stops at its first shortage: a zone record, a buffer, a bio, a buffer.
    rt.fail_next_zone_allocations(1);
    rt.fail_next_mallocs(2);
    rt.fail_next_bio_allocations(1);
    assert_eq!(h.write(4096, &data).unwrap(), 8192);
    assert_eq!(md.read_backing(4096, 8192), data);
    assert_eq!(xml_count(&rt, "Enomem"), 4);
    assert_eq!(xml_count(&rt, "Bounced"), 1);
    assert_eq!(h.read(4096, 8192).unwrap(), data);
    assert_eq!(rt.malloc_usage(&M_BOUNCE), usage("memt_bounce", 0, 0), "failed attempts freed what they had");
    h.close().unwrap();
    unload_bounce(rt);
}

#[test]
fn the_completion_hook_sees_errors_and_short_transfers() {
    // The bounce provider claims 1 MiB more than the disk below has.
    let (rt, md) = bounce_rt("bounce-errors", MIB as i64, false);
    let h = rt.open("md0.bnc", 1, 0, 0).unwrap();
    assert_eq!(h.read(4 * MIB as i64 + 4096, 4096), Err(errno::EIO), "past the disk's end");
    md.write_backing(4 * MIB - 4096, &[0x5a; 4096]);
    let tail = h.read(4 * MIB as i64 - 4096, 3 * 4096).unwrap();
    assert_eq!(tail, vec![0x5a; 4096], "cut short at the disk's end");
    h.close().unwrap();
    assert_eq!(xml_count(&rt, "Bounced"), 2);
    unload_bounce(rt);
}

fn sync_req(offset: i64, length: i64, seed: i64, write: &str, read: &str) -> CtlRequest {
    CtlRequest::new("BOUNCE", "sync")
        .arg("md0.bnc")
        .param("offset", CtlValue::Intmax(offset))
        .param("length", CtlValue::Intmax(length))
        .param("seed", CtlValue::Intmax(seed))
        .param("write", CtlValue::Ascii(write.into()))
        .param("read", CtlValue::Ascii(read.into()))
}

#[test]
fn owned_and_borrowed_buffers_write_and_read_synchronously() {
    let (rt, md) = bounce_rt("bounce-sync", 0, false);
    for (i, (write, read)) in
        [("owned", "borrowed"), ("borrowed", "owned"), ("owned", "owned"), ("borrowed", "borrowed")].iter().enumerate()
    {
        let (offset, length, seed) = (i as i64 * 65536 + 512, 8192 + 512 * i as i64, 100 + i as i64);
        let reply = rt.ctl(&sync_req(offset, length, seed, write, read));
        assert_eq!(reply.error, 0, "{write} write, {read} read: {:?}", reply.message);
        assert_eq!(md.read_backing(offset as u64, length as usize), pattern(seed as u64, length as usize));
    }
    // Reading what someone else wrote, both ways.
    md.write_backing(MIB, &pattern(7, 4096));
    for read in ["owned", "borrowed"] {
        let reply = rt.ctl(&sync_req(MIB as i64, 4096, 7, "none", read));
        assert_eq!(reply.error, 0, "{read}: {:?}", reply.message);
    }
    unload_bounce(rt);
}

#[test]
fn synchronous_errors_are_returned() {
    let (rt, _md) = bounce_rt("bounce-sync-errors", 0, false);
    let past = 4 * MIB as i64 + 512;
    for read in ["owned", "borrowed"] {
        let reply = rt.ctl(&sync_req(past, 512, 1, "none", read));
        assert_ne!(reply.error, 0);
        let msg = reply.message.unwrap_or_default();
        assert!(msg.contains(&format!("{read} read: EIO")), "{msg}");
    }
    for write in ["owned", "borrowed"] {
        let reply = rt.ctl(&sync_req(past, 512, 1, write, "none"));
        let msg = reply.message.unwrap_or_default();
        assert!(msg.contains(&format!("{write} write: EIO")), "{msg}");
    }
    unload_bounce(rt);
}

#[test]
fn bio_and_buffer_shortages_are_enomem_and_leak_nothing() {
    let rt = runtime("bio-enomem");
    rt.fail_next_bio_allocations(1);
    let no_bio = with_io(&rt, |cx| BufBio::try_new(cx, &M_MEMT_A, 4096).err());
    assert_eq!(no_bio, Some(Errno::ENOMEM));
    rt.fail_next_mallocs(1);
    let no_buf = with_io(&rt, |cx| BufBio::try_new(cx, &M_MEMT_A, 4096).err());
    assert_eq!(no_buf, Some(Errno::ENOMEM));
    assert_eq!(rt.live_bios(), 0);
    assert_eq!(rt.malloc_usage(&M_MEMT_A), usage("memt_a", 0, 0));

    // The buffer is made; then the bio's own bookkeeping cannot be had: the buffer comes back.
    let buf = with_io(&rt, |cx| KBuf::try_from_slice(cx, &M_MEMT_A, b"keep me").unwrap());
    rt.fail_next_mallocs(1);
    let back = with_io(&rt, move |cx| match BufBio::try_from_buf(cx, buf) {
        Err((e, buf)) => (e, buf.to_vec()),
        Ok(_) => panic!("the bookkeeping allocation was to fail"),
    });
    assert_eq!(back, (Errno::ENOMEM, b"keep me".to_vec()));
    assert_eq!(rt.live_bios(), 0, "the bio made first was destroyed");

    rt.fail_next_bio_allocations(1);
    let bare = with_io(&rt, |cx| (BareBio::try_new(cx).err(), BareBio::try_new(cx).is_ok()));
    assert_eq!(bare, (Some(Errno::ENOMEM), true));
    assert_eq!(rt.live_bios(), 0);
    assert_eq!(rt.malloc_usage(&M_MEMT_A), usage("memt_a", 0, 0));
    finish(rt);
}

#[test]
fn a_bufbio_is_set_up_only_for_what_its_buffer_holds() {
    let rt = runtime("bio-setup");
    let r = with_topology(&rt, |topo| {
        let mut b = BufBio::new(topo, &M_MEMT_A, 4096);
        let fresh = (b.cmd(), b.offset(), b.length(), b.error(), b.completed());
        let checks = [
            b.set_io(Cmd::Read, 0, 8192),
            b.set_io(Cmd::Write, -512, 512),
            b.set_io(Cmd::GetAttr, 0, 0),
            b.set_io(Cmd::Flush, 0, 512),
            b.set_io(Cmd::Delete, 0, 1 << 30),
            b.set_io(Cmd::Write, 512, 4096),
        ];
        let kept = (b.cmd(), b.offset(), b.length());
        let buf = b.into_buf();
        (fresh, checks, kept, buf.len())
    });
    let e = Err(Errno::EINVAL);
    assert_eq!(r.0, (Cmd::Read, 0, 4096, None, 0), "a new bio reads its whole buffer at 0");
    assert_eq!(r.1, [e, e, e, e, Ok(()), Ok(())]);
    assert_eq!(r.2, (Cmd::Write, 512, 4096));
    assert_eq!(r.3, 4096);
    assert_eq!(rt.live_bios(), 0);
    assert_eq!(rt.malloc_usage(&M_MEMT_A), usage("memt_a", 0, 0));
    finish(rt);
}
