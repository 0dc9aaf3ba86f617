//! The C twins are what the benchmark compares the Rust classes with, so they must be right:
//! their header must describe the structures exactly as geom-core's `sys` does (the layout
//! test), and their I/O must put every byte where NOP and STRIPE put it (the I/O tests,
//! which look at the memory disks' backing bytes).

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};

use geom_bench::ctwins::{self, CNOP_CLASS};
use geom_bench::stacks::{self, Stack};
use geom_class_stripe::Stripe;
use geom_core::sys::{
    bintime, bio, disk_zone_args, g_class, g_consumer, g_geom, g_geom_alias, g_provider, malloc_type,
    malloc_type_internals,
};
use geom_host::disk::{MdConfig, MdDisk};
use geom_host::{command, CtlRequest, CtlValue, Runtime};

/// Sizes and offsets as geom-core's `sys` declares them, named as `twin_layout()` names them.
fn rust_layout() -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    macro_rules! layout {
        ($($ty:ident { $($f:ident),* $(,)? })*) => {$(
            m.insert(stringify!($ty).to_owned(), size_of::<$ty>());
            $(m.insert(format!("{}.{}", stringify!($ty), stringify!($f)), offset_of!($ty, $f));)*
        )*};
    }
    layout! {
        bintime { sec, frac }
        disk_zone_args { zone_cmd, zone_params }
        bio {
            bio_cmd, bio_flags, bio_cflags, bio_pflags, bio_dev, bio_disk, bio_offset, bio_bcount,
            bio_data, bio_ma, bio_ma_offset, bio_ma_n, bio_resid, bio_done, bio_driver1,
            bio_driver2, bio_caller1, bio_caller2, bio_queue, bio_attribute, bio_zone, bio_from,
            bio_to, bio_length, bio_completed, bio_children, bio_inbed, bio_parent, bio_t0,
            bio_task, bio_task_arg, bio_spare1, bio_spare2, bio_pblkno,
        }
        g_class {
            name, version, spare0, taste, ctlreq, init, fini, destroy_geom, start, spoiled,
            attrchanged, dumpconf, access, orphan, ioctl, providergone, resize, spare1, spare2,
            class, geom,
        }
        g_geom {
            name, class, geom, consumer, provider, geoms, rank, start, spoiled, attrchanged,
            dumpconf, access, orphan, ioctl, providergone, resize, spare0, spare1, softc, flags,
        }
        g_consumer {
            geom, consumer, provider, consumers, acr, acw, ace, flags, stat, nstart, nend,
            private, index,
        }
        g_geom_alias { ga_next, ga_alias }
        g_provider {
            name, provider, geom, consumers, acr, acw, ace, error, orphan, mediasize, sectorsize,
            stripesize, stripeoffset, stat, spare1, spare2, flags, aliases, private, index,
        }
        malloc_type_internals { mti_probes, mti_zone, mti_stats, mti_spare }
        malloc_type { ks_next, ks_version, ks_shortdesc, ks_mti }
    }
    // geom-core keeps `bio_error` private (on 16 it lives in `bio_exterr`); where it is, is
    // where `bio::error_ptr` points.
    let mut b = std::mem::MaybeUninit::<bio>::zeroed();
    let base = b.as_mut_ptr();
    // SAFETY: error_ptr only projects a field address of the (zeroed, live) local bio.
    let at = unsafe { bio::error_ptr(base) };
    m.insert("bio.bio_error".to_owned(), at as usize - base as usize);
    m
}

#[test]
fn header_layouts_match_geom_core() {
    let c: BTreeMap<String, usize> = ctwins::c_layout().into_iter().collect();
    let rust = rust_layout();
    assert!(c.len() > 100, "twin_layout() reported only {} entries", c.len());
    let mut wrong = Vec::new();
    for (name, &r) in &rust {
        match c.get(name) {
            Some(&v) if v == r => {}
            Some(&v) => wrong.push(format!("{name}: C {v}, Rust {r}")),
            None => wrong.push(format!("{name}: not reported by twin_layout()")),
        }
    }
    for name in c.keys().filter(|n| !rust.contains_key(*n)) {
        wrong.push(format!("{name}: reported by twin_layout(), not checked here"));
    }
    assert!(wrong.is_empty(), "layouts differ:\n{}", wrong.join("\n"));
    // FreeBSD's sizes for the release in force, as a last word.
    use geom_core::sys::Release;
    let (bio_size, bio_error, class_size) = match geom_core::sys::RELEASE {
        Release::FreeBsd14 => (376, 64, 176),
        Release::FreeBsd15 => (376, 64, 168),
        Release::FreeBsd16 => (408, 368, 168),
    };
    assert_eq!(c["bio"], bio_size);
    assert_eq!(c["bio.bio_error"], bio_error);
    assert_eq!(c["g_class"], class_size);
    assert_eq!(c["g_geom"], 176);
    assert_eq!(c["g_consumer"], 96);
    assert_eq!(c["g_provider"], 152);
}

/// Deterministic bytes for a write: a function of the position and a seed.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed).wrapping_add((i >> 8) as u8)).collect()
}

fn runtime_with_disks(n: usize, size: u64) -> (Runtime, Vec<MdDisk>) {
    let rt = stacks::runtime("ctwins-test");
    let disks = (0..n).map(|_| rt.md_create(MdConfig::malloc(size)).expect("mdconfig")).collect();
    (rt, disks)
}

fn shutdown(rt: Runtime) {
    let v = rt.shutdown();
    assert!(v.is_empty(), "violations: {v:?}");
}

#[test]
fn cnop_passes_bytes_through() {
    let (rt, disks) = runtime_with_disks(1, 1 << 20);
    let top = ctwins::make_nop(&rt, "md0").unwrap();
    assert_eq!(top, "md0.cnop");
    // Loading twice is fine.
    ctwins::load_nop(&rt).unwrap();
    let h = rt.open(&top, 1, 1, 0).unwrap();
    assert_eq!(h.mediasize(), 1 << 20);
    for (i, &(at, len)) in
        [(0i64, 4096usize), (8192, 512), (65536 + 1024, 70_000 - 70_000 % 512), (1_044_480, 4096)].iter().enumerate()
    {
        let data = pattern(len, i as u8);
        assert_eq!(h.write(at, &data), Ok(len));
        assert_eq!(disks[0].read_backing(at as u64, len), data, "write at {at}");
        assert_eq!(h.read(at, len).unwrap(), data, "read at {at}");
    }
    assert_eq!(h.flush(), Ok(()));
    h.close().unwrap();
    // The counters gnop keeps, as dumpconf shows them.
    let xml = rt.confxml();
    assert!(xml.contains("<Reads>4</Reads>"), "{xml}");
    assert!(xml.contains("<Writes>4</Writes>"), "{xml}");
    assert!(xml.contains("<Flushes>1</Flushes>"), "{xml}");
    drop(disks);
    shutdown(rt);
}

#[test]
fn cnop_offset_and_failures() {
    let (rt, disks) = runtime_with_disks(3, 1 << 20);
    ctwins::load_nop(&rt).unwrap();
    let create = |dev: &str, knobs: &[(&str, i64)]| {
        let req = knobs
            .iter()
            .fold(CtlRequest::new(CNOP_CLASS, "create"), |r, &(k, v)| r.param(k, CtlValue::Intmax(v)))
            .arg(dev);
        let reply = rt.ctl(&req);
        assert_eq!(reply.error, 0, "{:?}", reply.message);
    };
    // md0.cnop starts 64 KiB into md0.
    create("md0", &[("offset", 65536)]);
    let h = rt.open("md0.cnop", 1, 1, 0).unwrap();
    assert_eq!(h.mediasize(), (1 << 20) - 65536);
    let data = pattern(8192, 7);
    assert_eq!(h.write(4096, &data), Ok(8192));
    assert_eq!(disks[0].read_backing(65536 + 4096, 8192), data);
    assert_eq!(h.read(4096, 8192).unwrap(), data);
    h.close().unwrap();
    // md1.cnop fails every write with error 5, and reads nothing wrong.
    create("md1", &[("wfailprob", 100), ("error", 5)]);
    let h = rt.open("md1.cnop", 1, 1, 0).unwrap();
    assert_eq!(h.write(0, &[1; 512]), Err(5));
    assert_eq!(disks[1].read_backing(0, 512), vec![0; 512]);
    assert_eq!(h.read(0, 512).unwrap(), vec![0; 512]);
    h.close().unwrap();
    // md2.cnop lets two requests through, then fails every read and write (EIO).
    create("md2", &[("count_until_fail", 3)]);
    let h = rt.open("md2.cnop", 1, 1, 0).unwrap();
    assert_eq!(h.write(0, &[2; 512]), Ok(512));
    assert_eq!(h.read(0, 512).unwrap(), vec![2; 512]);
    assert_eq!(h.read(0, 512), Err(5));
    assert_eq!(h.write(512, &[3; 512]), Err(5));
    assert_eq!(disks[2].read_backing(512, 512), vec![0; 512]);
    h.close().unwrap();
    // Refused requests.
    let reply = rt.ctl(&CtlRequest::new(CNOP_CLASS, "create").arg("md0"));
    assert_ne!(reply.error, 0, "a second md0.cnop");
    let reply = rt.ctl(&CtlRequest::new(CNOP_CLASS, "create").arg("nosuch"));
    assert_ne!(reply.error, 0, "a missing provider");
    drop(disks);
    shutdown(rt);
}

/// Where byte `at` of a stripe device lives: (disk, offset on it).
fn stripe_map(at: u64, stripesize: u64, ndisks: u64) -> (usize, u64) {
    let stripe = at / stripesize;
    ((stripe % ndisks) as usize, (stripe / ndisks) * stripesize + at % stripesize)
}

/// Requests over a 4 x 256 KiB stripe device with 64 KiB stripes: inside one stripe, across
/// a stripe boundary, across every disk, and the last sector.
const STRIPE_WRITES: [(i64, usize); 5] = [
    (0, 4096),
    (65536 - 1024, 4096),
    (3 * 65536 + 512, 5 * 65536),
    (300_000 - 300_000 % 512, 100_000 - 100_000 % 512),
    ((1 << 20) - 512, 512),
];

/// Write STRIPE_WRITES through `top`, read each back, and return every disk's bytes.
fn stripe_io(rt: &Runtime, top: &str, disks: &[MdDisk]) -> Vec<Vec<u8>> {
    let h = rt.open(top, 1, 1, 0).unwrap();
    assert_eq!(h.mediasize(), 1 << 20, "{top}");
    for (i, &(at, len)) in STRIPE_WRITES.iter().enumerate() {
        let data = pattern(len, 40 + i as u8);
        assert_eq!(h.write(at, &data), Ok(len), "{top}: write at {at}");
        assert_eq!(h.read(at, len).unwrap(), data, "{top}: read at {at}");
        // Every byte is on the disk and at the offset the stripe map says.
        for (j, &b) in data.iter().enumerate().step_by(509) {
            let (d, off) = stripe_map(at as u64 + j as u64, 65536, 4);
            assert_eq!(disks[d].read_backing(off, 1)[0], b, "{top}: byte {} of the device", at as usize + j);
        }
    }
    assert_eq!(h.flush(), Ok(()));
    h.close().unwrap();
    disks.iter().map(|d| d.read_backing(0, 256 * 1024)).collect()
}

#[test]
fn cstripe_stripes_like_stripe() {
    // The C twin.
    let (rt, disks) = runtime_with_disks(4, 256 * 1024);
    let top = ctwins::make_stripe(&rt, "b0", &["md0", "md1", "md2", "md3"], 65536).unwrap();
    assert_eq!(top, "cstripe/b0");
    let pp = rt.provider(&top).unwrap();
    assert_eq!(pp.mediasize, 1 << 20);
    let c_bytes = stripe_io(&rt, &top, &disks);
    let h = rt.open(&top, 1, 0, 0).unwrap();
    // GETATTR is refused, as gstripe refuses it (EOPNOTSUPP is 45 on FreeBSD).
    assert_eq!(h.getattr("GEOM::ident", 64), Err(45));
    h.close().unwrap();
    // A second device of that name, too few disks, a stripe size that is not a power of 2.
    ctwins::load_stripe(&rt).unwrap();
    assert!(ctwins::make_stripe(&rt, "b0", &["md0", "md1"], 65536).is_err());
    assert!(ctwins::make_stripe(&rt, "b1", &["md0"], 65536).is_err());
    assert!(ctwins::make_stripe(&rt, "b2", &["md0", "md1"], 65536 + 512).is_err());
    drop(disks);
    shutdown(rt);

    // The Rust class, made the same way (no label), puts every byte in the same place.
    let (rt, disks) = runtime_with_disks(4, 256 * 1024);
    stacks::load::<Stripe>(&rt).unwrap();
    let out = command::run::<Stripe>(&rt, &["create", "-s", "65536", "r0", "md0", "md1", "md2", "md3"]);
    assert_eq!(out.error, None);
    let rust_bytes = stripe_io(&rt, "stripe/r0", &disks);
    assert!(c_bytes == rust_bytes, "the C and Rust stripes left different bytes on their disks");
    drop(disks);
    shutdown(rt);
}

#[test]
fn benchmark_stacks_build_and_tear_down() {
    for stack in [Stack::CNop, Stack::CStripe] {
        let built = stacks::build(stack, 1 << 20).unwrap();
        let h = built.rt.open(&built.top, 1, 1, 0).unwrap();
        let data = pattern(4096, 9);
        assert_eq!(h.write(8192, &data), Ok(4096));
        assert_eq!(h.read(8192, 4096).unwrap(), data);
        h.close().unwrap();
        built.teardown(stack).unwrap();
    }
}
