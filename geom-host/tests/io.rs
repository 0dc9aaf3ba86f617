//! Real I/O through the runtime: memory and file disks, stacks of raw pass-through geoms,
//! concurrency, and FreeBSD's request checks; bytes are always checked on the backing store.

mod common;

use std::sync::Arc;

use common::{finish, runtime, Rng};
use geom_core::sys::errno;
use geom_host::disk::MdConfig;
use geom_host::{CtlRequest, CtlValue, Runtime};

const MIB: u64 = 1 << 20;

/// `geom pass create NAME`.
fn pass_create(rt: &Runtime, provider: &str) {
    let reply = rt.ctl(&CtlRequest::new("PASS", "create").arg(provider));
    assert_eq!(reply.error, 0, "pass create {provider}: {:?}", reply.message);
}

#[test]
fn memory_disk_reads_back_what_was_written() {
    let rt = runtime("md-rw");
    let md = rt.md_create(MdConfig::malloc(4 * MIB)).unwrap();
    assert_eq!(md.name(), "md0");
    let h = rt.open("md0", 1, 1, 0).unwrap();
    let mut rng = Rng::new(1);
    let data = rng.bytes(64 * 1024);
    assert_eq!(h.write(512 * 10, &data).unwrap(), data.len());
    assert_eq!(h.read(512 * 10, data.len()).unwrap(), data);
    assert_eq!(md.read_backing(512 * 10, data.len()), data, "bytes on the backing store");
    h.delete(512 * 10, 4096).unwrap();
    assert_eq!(md.read_backing(512 * 10, 4096), vec![0; 4096], "a deleted range reads as zeros");
    h.flush().unwrap();
    assert_eq!(h.getattr("GEOM::candelete", 4).unwrap(), 1i32.to_ne_bytes());
    h.close().unwrap();
    finish(rt);
}

#[test]
fn file_disk_writes_reach_the_file() {
    let dir = std::env::temp_dir().join(format!("geom-host-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("file_disk.img");
    let _ = std::fs::remove_file(&path);
    let rt = runtime("md-file");
    let md = rt.md_create(MdConfig::file(&path, 2 * MIB).named("fd0")).unwrap();
    let h = rt.open("fd0", 1, 1, 0).unwrap();
    let data = Rng::new(2).bytes(128 * 1024);
    h.write(MIB as i64, &data).unwrap();
    h.flush().unwrap();
    let file = std::fs::read(&path).unwrap();
    assert_eq!(file.len() as u64, 2 * MIB);
    assert_eq!(&file[MIB as usize..MIB as usize + data.len()], &data[..]);
    assert_eq!(md.read_backing(MIB, data.len()), data);
    assert_eq!(h.read(MIB as i64, data.len()).unwrap(), data);
    h.close().unwrap();
    rt.md_destroy("fd0").unwrap();
    finish(rt);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn requests_are_checked_as_freebsd_checks_them() {
    let rt = runtime("io-check");
    rt.md_create(MdConfig::malloc(MIB).sectorsize(4096)).unwrap();
    let ro = rt.open("md0", 1, 0, 0).unwrap();
    assert_eq!(ro.write(0, &[0; 4096]), Err(errno::EPERM), "writing needs a write open");
    assert_eq!(ro.read(100, 4096), Err(errno::EINVAL), "offsets are sector-aligned");
    assert_eq!(ro.read(0, 1000), Err(errno::EINVAL), "lengths are whole sectors");
    assert_eq!(ro.read(2 * MIB as i64, 4096), Err(errno::EIO), "past the end");
    let tail = ro.read(MIB as i64 - 4096, 3 * 4096).unwrap();
    assert_eq!(tail.len(), 4096, "a request running past the end is truncated");
    assert_eq!(ro.read(MIB as i64, 4096).unwrap().len(), 0, "at the end: zero length, success");
    assert_eq!(ro.getattr("GEOM::nonsense", 16), Err(errno::EOPNOTSUPP));
    ro.close().unwrap();
    finish(rt);
}

#[test]
fn a_stack_of_pass_geoms_moves_bytes_to_the_bottom() {
    let rt = runtime("stack");
    rt.load_raw_pass().unwrap();
    let md = rt.md_create(MdConfig::malloc(8 * MIB)).unwrap();
    pass_create(&rt, "md0");
    pass_create(&rt, "md0.pass");
    let top = rt.provider("md0.pass.pass").expect("two pass geoms stacked");
    assert_eq!(top.mediasize, 8 * MIB as i64);
    let h = rt.open("md0.pass.pass", 1, 1, 0).unwrap();
    // Opens are forwarded all the way down.
    assert_eq!(rt.provider("md0").unwrap().access, (1, 1, 0));
    let mut rng = Rng::new(3);
    for _ in 0..200 {
        let off = rng.below(8 * MIB / 512 - 64) * 512;
        let len = (1 + rng.below(64)) as usize * 512;
        let data = rng.bytes(len);
        h.write(off as i64, &data).unwrap();
        assert_eq!(md.read_backing(off, len), data);
        assert_eq!(h.read(off as i64, len).unwrap(), data);
    }
    h.close().unwrap();
    assert_eq!(rt.provider("md0").unwrap().access, (0, 0, 0));
    assert_eq!(rt.live_bios(), 0);
    finish(rt);
}

/// The foundation issue's check: a stack of pass-through geoms over a memory disk moves
/// 64 MiB of random data from 8 threads, every byte verified, no invariant report.
#[test]
fn eight_threads_move_64_mib_through_a_pass_stack() {
    const THREADS: u64 = 8;
    const REGION: u64 = 8 * MIB;
    let rt = runtime("64mib");
    rt.load_raw_pass().unwrap();
    let md = rt.md_create(MdConfig::malloc(THREADS * REGION)).unwrap();
    pass_create(&rt, "md0");
    pass_create(&rt, "md0.pass");
    let h = Arc::new(rt.open("md0.pass.pass", 1, 1, 0).unwrap());
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let h = Arc::clone(&h);
            std::thread::spawn(move || {
                // Each thread fills its own region once in random-sized pieces, reading each
                // piece back right away, so 64 MiB cross the stack in all.
                let mut rng = Rng::new(100 + t);
                let base = t * REGION;
                let mut expect = vec![0u8; REGION as usize];
                let mut off = 0u64;
                while off < REGION {
                    let len = ((1 + rng.below(256)) * 512).min(REGION - off);
                    let piece = &mut expect[off as usize..(off + len) as usize];
                    rng.fill(piece);
                    h.write((base + off) as i64, piece).unwrap();
                    assert_eq!(h.read((base + off) as i64, len as usize).unwrap(), piece);
                    off += len;
                }
                expect
            })
        })
        .collect();
    let expected: Vec<Vec<u8>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    for (t, exp) in expected.iter().enumerate() {
        let got = md.read_backing(t as u64 * REGION, REGION as usize);
        assert!(got == *exp, "region {t}: backing store differs from what was written");
    }
    Arc::try_unwrap(h).ok().unwrap().close().unwrap();
    assert_eq!(rt.live_bios(), 0);
    finish(rt);
}

#[test]
fn concurrent_io_on_an_asynchronous_disk_completes_from_its_worker() {
    let rt = runtime("async");
    rt.load_raw_pass().unwrap();
    let md = rt.md_create(MdConfig::malloc(4 * MIB).asynchronous(true)).unwrap();
    pass_create(&rt, "md0");
    let h = Arc::new(rt.open("md0.pass", 1, 1, 0).unwrap());
    let ts: Vec<_> = (0..4u64)
        .map(|t| {
            let h = Arc::clone(&h);
            std::thread::spawn(move || {
                let mut rng = Rng::new(t);
                let base = t * MIB;
                for _ in 0..100 {
                    let off = base + rng.below(MIB / 512 - 16) * 512;
                    let data = rng.bytes(8 * 512);
                    h.write(off as i64, &data).unwrap();
                    assert_eq!(h.read(off as i64, data.len()).unwrap(), data);
                }
            })
        })
        .collect();
    for t in ts {
        t.join().unwrap();
    }
    let last = Rng::new(9).bytes(512);
    h.write(0, &last).unwrap();
    assert_eq!(md.read_backing(0, 512), last);
    drop(h);
    finish(rt);
}

#[test]
fn ctl_requests_report_errors_in_freebsd_words() {
    let rt = runtime("ctl");
    rt.load_raw_pass().unwrap();
    rt.md_create(MdConfig::malloc(MIB)).unwrap();
    let r = rt.ctl(&CtlRequest::new("NOSUCH", "create").arg("md0"));
    assert_ne!(r.error, 0);
    assert!(r.message.unwrap().contains("NOSUCH"));
    let r = rt.ctl(&CtlRequest::new("MD", "create"));
    assert_eq!(r.message.as_deref(), Some("Class takes no requests"));
    let r = rt.ctl(&CtlRequest::new("PASS", "create").arg("nothere"));
    assert_eq!(r.message.as_deref(), Some("Provider nothere is invalid."));
    let r = rt.ctl(&CtlRequest::new("PASS", "create"));
    assert_eq!(r.message.as_deref(), Some("Exactly one argument expected."));
    pass_create(&rt, "md0");
    let h = rt.open("md0.pass", 1, 0, 0).unwrap();
    let r = rt.ctl(&CtlRequest::new("PASS", "destroy").arg("md0.pass"));
    assert_eq!(r.message.as_deref(), Some("Device md0.pass is still open, so it can't be definitely removed."));
    let r = rt.ctl(&CtlRequest::new("PASS", "destroy").arg("md0.pass").param("force", CtlValue::Int(1)));
    assert_eq!(r.error, 0, "{:?}", r.message);
    rt.wait_idle();
    assert_eq!(h.read(0, 512), Err(errno::ENXIO), "the forced destroy orphaned the open handle");
    h.close().unwrap();
    rt.wait_idle();
    assert!(rt.provider("md0.pass").is_none(), "the withered geom is gone once closed");
    assert_eq!(rt.provider("md0").unwrap().access, (0, 0, 0));
    finish(rt);
}

#[test]
fn submitted_requests_complete_once_each_with_their_bytes() {
    use geom_host::{IoDone, IoOp};
    use std::sync::mpsc;

    let rt = runtime("submit");
    let md = rt.md_create(MdConfig::malloc(4 * MIB).asynchronous(true)).unwrap();
    rt.load_raw_pass().unwrap();
    pass_create(&rt, "md0");
    let h = rt.open("md0.pass", 1, 1, 0).unwrap();
    let mut rng = Rng::new(7);
    let chunks: Vec<Vec<u8>> = (0..64).map(|_| rng.bytes(16 * 1024)).collect();
    let (tx, rx) = mpsc::channel::<(usize, IoDone)>();
    // 64 writes in flight at once, each to its own 16 KiB.
    for (i, c) in chunks.iter().enumerate() {
        let tx = tx.clone();
        h.submit(i as i64 * 16384, IoOp::Write(c.clone()), move |d| tx.send((i, d)).unwrap()).unwrap();
    }
    let mut seen = vec![false; chunks.len()];
    for _ in 0..chunks.len() {
        let (i, d) = rx.recv().unwrap();
        assert_eq!((d.error, d.completed), (0, 16384), "write {i}");
        assert_eq!(d.data, chunks[i], "a write gives its buffer back");
        assert!(!std::mem::replace(&mut seen[i], true), "write {i} completed twice");
    }
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(&md.read_backing(i as u64 * 16384, 16384), c, "chunk {i} on the backing store");
    }
    // Reads come back with what was written; a flush and a delete complete too.
    for i in 0..chunks.len() {
        let tx = tx.clone();
        h.submit(i as i64 * 16384, IoOp::Read(16384), move |d| tx.send((i, d)).unwrap()).unwrap();
    }
    for _ in 0..chunks.len() {
        let (i, d) = rx.recv().unwrap();
        assert_eq!(d.error, 0);
        assert_eq!(d.data, chunks[i], "read {i}");
    }
    let tx2 = tx.clone();
    h.submit(0, IoOp::Flush, move |d| tx2.send((usize::MAX, d)).unwrap()).unwrap();
    assert_eq!(rx.recv().unwrap().1.error, 0, "flush");
    h.submit(0, IoOp::Delete(16384), move |d| tx.send((0, d)).unwrap()).unwrap();
    assert_eq!(rx.recv().unwrap().1.error, 0, "delete");
    assert_eq!(md.read_backing(0, 16384), vec![0; 16384]);
    // A read past the end fails with the provider's error, and is still completed once.
    let (tx, rx) = mpsc::channel::<IoDone>();
    h.submit(8 * MIB as i64, IoOp::Read(512), move |d| tx.send(d).unwrap()).unwrap();
    let past = rx.recv().unwrap();
    assert!(past.error != 0 || past.completed == 0, "read past the end: {past:?}");
    assert_eq!(h.submit(-512, IoOp::Read(512), |_| ()), Err(errno::EINVAL));
    h.close().unwrap();
    assert_eq!(rt.live_bios(), 0, "every submitted bio destroyed");
    finish(rt);
}
