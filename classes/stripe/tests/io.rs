//! Requests through stripe devices, checked byte for byte on the components against an
//! independent model of the stripe map; both I/O strategies; the commands that are not
//! split; running out of memory.

mod common;

use common::*;
use geom_class_stripe::Stripe;
use geom_core::sys::errno;

/// FreeBSD's tests/sys/geom/class/stripe/1_test.sh: three memory disks of 1, 2 and 3 MiB
/// striped with 16 KiB give a 3 MiB device (a created device keeps no label sector).
#[test]
fn freebsd_test_1_three_disks_make_three_mib() {
    let (rt, _disks) = runtime("stripe-t1", &[MIB, 2 * MIB, 3 * MIB]);
    ok(&rt, &["create", "-s", "16384", "st0", "/dev/md0", "/dev/md1", "/dev/md2"]);
    let pp = rt.provider("stripe/st0").unwrap();
    assert_eq!(pp.mediasize, 3145728);
    assert_eq!((pp.sectorsize, pp.stripesize, pp.stripeoffset), (512, 16384, 0));
    finish(rt);
}

/// FreeBSD's 2_test.sh: 3 MiB of random data written through an 8 KiB stripe in 1 MiB
/// requests reads back identical; here also checked on the components.
#[test]
fn freebsd_test_2_random_data_reads_back() {
    let (rt, disks) = runtime("stripe-t2", &[MIB, 2 * MIB, 3 * MIB]);
    ok(&rt, &["create", "-s", "8192", "st0", "md0", "md1", "md2"]);
    let src = Rng::new(2).bytes(3 * MIB as usize);
    let h = rt.open("stripe/st0", 1, 1, 0).unwrap();
    for (i, chunk) in src.chunks(MIB as usize).enumerate() {
        h.write(i as i64 * MIB as i64, chunk).unwrap();
    }
    let mut dst = Vec::new();
    for i in 0..3 {
        dst.extend(h.read(i * MIB as i64, MIB as usize).unwrap());
    }
    h.close().unwrap();
    assert!(src == dst, "read back differs");
    assert!(model_read(&disks, 8192, 0, src.len()) == src, "components differ from the model");
    finish(rt);
}

/// Random shapes (2 to 5 components, stripes of 512 B to 64 KiB, sizes apart), random
/// unaligned-to-stripe requests of every size up to 300 KiB, in economic and fast mode:
/// every write lands where the model says, every read returns what the model holds.
#[test]
fn random_requests_land_where_the_model_says() {
    let mut rng = Rng::new(7);
    for round in 0..8 {
        let n = 2 + rng.below(4) as usize;
        let s = 512u64 << rng.below(8);
        let sizes: Vec<u64> = (0..n).map(|_| MIB + rng.below(8) * 64 * KIB).collect();
        let (rt, disks) = runtime("stripe-model", &sizes);
        let fast = round % 2 == 1;
        let ss = s.to_string();
        let mut argv = vec!["create", "-s", &ss, "st0"];
        let names: Vec<String> = (0..n).map(|i| format!("md{i}")).collect();
        argv.extend(names.iter().map(String::as_str));
        ok(&rt, &argv);
        rt.with_class::<Stripe, _>(move |cls, _| cls.set_fast(fast)).unwrap();
        let size = rt.provider("stripe/st0").unwrap().mediasize as u64;
        let per_disk = sizes.iter().min().unwrap() / s * s;
        assert_eq!(size, per_disk * n as u64, "round {round}: {n} disks, stripe {s}");
        let h = rt.open("stripe/st0", 1, 1, 0).unwrap();
        for _ in 0..40 {
            let len = (1 + rng.below(600)) * 512;
            let off = rng.below((size - len) / 512 + 1) * 512;
            let data = rng.bytes(len as usize);
            h.write(off as i64, &data).unwrap();
            assert!(model_read(&disks, s, off, len as usize) == data, "round {round}: write {off}+{len}");
            let roff = rng.below((size - len) / 512 + 1) * 512;
            let got = h.read(roff as i64, len as usize).unwrap();
            assert!(got == model_read(&disks, s, roff, len as usize), "round {round}: read {roff}+{len}");
        }
        // The whole device in one request each way (up to maxphys).
        let whole = size.min(MIB) as usize;
        let data = rng.bytes(whole);
        h.write(0, &data).unwrap();
        assert!(h.read(0, whole).unwrap() == data);
        assert!(model_read(&disks, s, 0, whole) == data);
        h.close().unwrap();
        let failed = rt.with_class::<Stripe, _>(|cls, _| (cls.fast_failed(), cls.fast_memory_in_use())).unwrap();
        assert_eq!(failed, (0, 0), "fast mode never ran short and gave all its memory back");
        finish(rt);
    }
}

/// Components that complete on their own threads, in any order: the split requests still
/// come back whole.
#[test]
fn asynchronous_components() {
    let rt = geom_host::Runtime::new(geom_host::RuntimeConfig { echo_console: false, ..Default::default() });
    let disks: Vec<_> =
        (0..4).map(|_| rt.md_create(geom_host::disk::MdConfig::malloc(2 * MIB).asynchronous(true)).unwrap()).collect();
    ok(&rt, &["create", "-s", "4k", "st0", "md0", "md1", "md2", "md3"]);
    for fast in [false, true] {
        rt.with_class::<Stripe, _>(move |cls, _| cls.set_fast(fast)).unwrap();
        let h = rt.open("stripe/st0", 1, 1, 0).unwrap();
        let mut rng = Rng::new(fast as u64);
        for _ in 0..30 {
            let len = (1 + rng.below(256)) * 512;
            let off = rng.below((8 * MIB - len) / 512) * 512;
            let data = rng.bytes(len as usize);
            h.write(off as i64, &data).unwrap();
            assert!(h.read(off as i64, len as usize).unwrap() == data);
            assert!(model_read(&disks, 4096, off, len as usize) == data);
        }
        h.close().unwrap();
    }
    finish(rt);
}

/// Fast mode sends one request per component (pieces gathered), economic one per piece:
/// counted by NOP devices stacked under the components.
#[test]
fn fast_mode_gathers_one_request_per_component() {
    let (rt, disks) = runtime("stripe-fast", &[MIB, MIB, MIB]);
    rt.load::<geom_class_nop::Nop>().unwrap();
    for i in 0..3 {
        let out = geom_host::command::run::<geom_class_nop::Nop>(&rt, &["create", &format!("md{i}")]);
        assert_eq!(out.error, None);
    }
    ok(&rt, &["create", "-s", "4k", "st0", "md0.nop", "md1.nop", "md2.nop"]);
    let writes = |rt: &geom_host::Runtime| -> Vec<u64> {
        let xml = rt.confxml();
        // A class lists its newest geom first (LIST_INSERT_HEAD): md2.nop, md1.nop, md0.nop.
        let mut w: Vec<u64> = xml
            .match_indices("<Writes>")
            .map(|(at, _)| xml[at + 8..].split('<').next().unwrap().parse().unwrap())
            .collect();
        w.reverse();
        w
    };
    let h = rt.open("stripe/st0", 1, 1, 0).unwrap();
    let data = Rng::new(3).bytes(6 * 4096 + 1024);
    // Economic: 7 pieces starting 1 KiB into stripe 1 -> 3, 2, 2 requests.
    h.write(4096 + 1024, &data).unwrap();
    assert_eq!(writes(&rt), vec![2, 3, 2]);
    rt.with_class::<Stripe, _>(|cls, _| cls.set_fast(true)).unwrap();
    // Fast: one per component, whatever the pieces.
    h.write(4096 + 1024, &data).unwrap();
    assert_eq!(writes(&rt), vec![3, 4, 3]);
    assert!(h.read(4096 + 1024, data.len()).unwrap() == data);
    assert!(model_read(&disks, 4096, 4096 + 1024, data.len()) == data);
    // Below one stripe per component, fast mode has nothing to gather.
    h.write(0, &data[..8192]).unwrap();
    assert_eq!(writes(&rt), vec![4, 5, 3]);
    // Out of budget: economic instead, counted.
    rt.with_class::<Stripe, _>(|cls, _| cls.set_maxmem(0)).unwrap();
    h.write(4096 + 1024, &data).unwrap();
    assert_eq!(writes(&rt), vec![6, 8, 5]);
    assert!(h.read(4096 + 1024, data.len()).unwrap() == data);
    let (failed, in_use) = rt.with_class::<Stripe, _>(|cls, _| (cls.fast_failed(), cls.fast_memory_in_use())).unwrap();
    assert_eq!((failed, in_use), (2, 0), "the write and the read fell back");
    h.close().unwrap();
    finish(rt);
}

/// No bio to be had in the middle of a split: the request fails with ENOMEM, GEOM retries
/// it, and it completes whole; nothing leaks (checked at shutdown).
#[test]
fn enomem_mid_split_loses_nothing() {
    let (rt, disks) = runtime("stripe-enomem", &[MIB, MIB, MIB]);
    ok(&rt, &["create", "-s", "4k", "st0", "md0", "md1", "md2"]);
    let h = rt.open("stripe/st0", 1, 1, 0).unwrap();
    let mut rng = Rng::new(11);
    for (i, fast) in [false, true, false, true].into_iter().enumerate() {
        rt.with_class::<Stripe, _>(move |cls, _| cls.set_fast(fast)).unwrap();
        let data = rng.bytes(64 * 1024);
        rt.fail_next_bio_allocations(1 + i as u64 * 2);
        h.write(2048, &data).unwrap();
        assert!(model_read(&disks, 4096, 2048, data.len()) == data);
        rt.fail_next_bio_allocations(3);
        assert!(h.read(2048, data.len()).unwrap() == data);
    }
    h.close().unwrap();
    let in_use = rt.with_class::<Stripe, _>(|cls, _| cls.fast_memory_in_use()).unwrap();
    assert_eq!(in_use, 0);
    finish(rt);
}

/// FLUSH reaches every component; DELETE is split like a write (and zeroes what the model
/// says); GETATTR is refused as gstripe refuses it.
#[test]
fn flush_delete_and_getattr() {
    let (rt, disks) = runtime("stripe-cmds", &[MIB, MIB]);
    rt.load::<geom_class_nop::Nop>().unwrap();
    for i in 0..2 {
        assert_eq!(geom_host::command::run::<geom_class_nop::Nop>(&rt, &["create", &format!("md{i}")]).error, None);
    }
    ok(&rt, &["create", "-s", "8k", "st0", "md0.nop", "md1.nop"]);
    let h = rt.open("stripe/st0", 1, 1, 0).unwrap();
    h.flush().unwrap();
    let xml = rt.confxml();
    assert_eq!(xml.matches("<Flushes>1</Flushes>").count(), 2, "{xml}");
    let data = vec![0xa5u8; 64 * 1024];
    h.write(0, &data).unwrap();
    h.delete(4096, 20 * 1024).unwrap();
    let mut expect = data.clone();
    expect[4096..24 * 1024].fill(0);
    assert!(model_read(&disks, 8192, 0, expect.len()) == expect);
    assert!(h.read(0, expect.len()).unwrap() == expect);
    assert_eq!(h.getattr("GEOM::candelete", 4), Err(errno::EOPNOTSUPP));
    h.close().unwrap();
    finish(rt);
}
