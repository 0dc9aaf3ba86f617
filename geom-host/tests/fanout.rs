//! Clone-bio fan-out with a custom done: a two-way stripe that sends one bio per component
//! with a bounce buffer (gstripe's "fast" mode), built with `Fanout::add_bounce`,
//! `send_to_done` and `Geom::done`, checked byte for byte on the disks below.

mod common;

use std::ffi::CStr;

use common::{finish, runtime, Rng};
use geom_core::{
    geom_class, Children, Class, Cmd, Consumer, Errno, Fanout, Geom, GeomClass, GeomRef, IoCtx, NoVerbs, Provider,
    Request, Result, Topology,
};
use geom_host::disk::{MdConfig, MdDisk};
use geom_host::Runtime;

const STRIPE: i64 = 4096;
const DISK: u64 = 1 << 20;

struct Split;

struct SplitGeom {
    disks: [Consumer; 2],
}

/// Where byte `off` of the array lives: (disk, offset on the disk).
fn map(off: i64) -> (usize, i64) {
    let stripe = off / STRIPE;
    ((stripe % 2) as usize, (stripe / 2) * STRIPE + off % STRIPE)
}

/// The pieces of `off..off+len`: (array offset, disk, disk offset, length).
fn pieces(mut off: i64, len: i64) -> Vec<(i64, usize, i64, i64)> {
    let end = off + len;
    let mut v = Vec::new();
    while off < end {
        let n = (STRIPE - off % STRIPE).min(end - off);
        let (d, doff) = map(off);
        v.push((off, d, doff, n));
        off += n;
    }
    v
}

impl SplitGeom {
    fn start_fast(&self, cx: &IoCtx, req: Request) {
        let (off, len, cmd) = (req.offset(), req.length(), req.cmd());
        let all = pieces(off, len);
        let write_data = req.data().map(|d| d.to_vec()).unwrap_or_default();
        let mut f = Fanout::new(req);
        for d in 0..2 {
            let mine: Vec<_> = all.iter().filter(|p| p.1 == d).collect();
            let (Some(first), Some(last)) = (mine.first(), mine.last()) else { continue };
            let (start, stop) = (first.2, last.2 + last.3);
            let buf = match f.add_bounce(cx, self.disks[d], start, stop - start, d) {
                Ok(b) => b,
                Err(e) => return f.abort(e),
            };
            if cmd == Cmd::Write {
                for p in &mine {
                    let (src, dst) = ((p.0 - off) as usize, (p.2 - start) as usize);
                    buf[dst..dst + p.3 as usize].copy_from_slice(&write_data[src..src + p.3 as usize]);
                }
            }
        }
        f.send_to_done::<SplitGeom>();
    }
}

#[geom_class]
impl Geom for SplitGeom {
    type Class = Split;

    fn start(&self, cx: &IoCtx, req: Request) {
        match req.cmd() {
            Cmd::Read | Cmd::Write => self.start_fast(cx, req),
            _ => req.fail(Errno::EOPNOTSUPP),
        }
    }

    fn done(&self, _cx: &IoCtx, children: &mut Children<'_>) {
        if children.cmd() != Cmd::Read || children.error().is_some() {
            return;
        }
        let off = children.offset();
        let all = pieces(off, children.length());
        let mut short = false;
        children.for_each(|data, child| {
            let d = child.tag();
            let start = child.offset();
            for p in all.iter().filter(|p| p.1 == d) {
                let (dst, src, n) = ((p.0 - off) as usize, (p.2 - start) as usize, p.3 as usize);
                // A clone cut short at the end of its disk has less data than asked for.
                match child.data().get(src..src + n) {
                    Some(bytes) => data[dst..dst + n].copy_from_slice(bytes),
                    None => short = true,
                }
            }
        });
        if short {
            children.fail(Errno::EIO);
        }
    }

    fn access(&self, topo: &mut Topology, _gp: GeomRef<Split>, _pp: Provider, dr: i32, dw: i32, de: i32) -> Result<()> {
        self.disks[0].access(topo, dr, dw, de)?;
        if let Err(e) = self.disks[1].access(topo, dr, dw, de) {
            let _ = self.disks[0].access(topo, -dr, -dw, -de);
            return Err(e);
        }
        Ok(())
    }
}

#[geom_class]
impl GeomClass for Split {
    const NAME: &'static CStr = c"SPLIT";
    type Softc = SplitGeom;
    type Verb = NoVerbs;

    fn init(topo: &mut Topology) -> Self {
        let _ = topo;
        Split
    }

    fn destroy_geom(_cls: &Class<Self>, topo: &mut Topology, gp: GeomRef<Self>) -> Result<()> {
        gp.wither(topo, Errno::ENXIO);
        Ok(())
    }
}

/// Build split0 over md0 and md1 (test code has no ctlreq; it uses the class directly).
fn build(rt: &Runtime, second: u64) -> (MdDisk, MdDisk) {
    let a = rt.md_create(MdConfig::malloc(DISK)).unwrap();
    let b = rt.md_create(MdConfig::malloc(second)).unwrap();
    rt.load::<Split>().unwrap();
    rt.with_class::<Split, _>(|cls, topo| {
        let pa = Provider::by_name(topo, c"md0").unwrap();
        let pb = Provider::by_name(topo, c"md1").unwrap();
        let g = cls
            .new_geom_with(topo, c"split0", |topo, g| {
                let ca = g.new_consumer(topo);
                let cb = g.new_consumer(topo);
                ca.attach(topo, pa)?;
                cb.attach(topo, pb)?;
                Ok(SplitGeom { disks: [ca, cb] })
            })
            .unwrap();
        let pp = g.new_provider(topo, c"split0");
        pp.set_geometry(topo, 2 * DISK as i64, 512, STRIPE, 0);
        pp.set_ready(topo);
    });
    (a, b)
}

#[test]
fn one_bounce_bio_per_component_reads_and_writes_correctly() {
    let rt = runtime("fanout-bounce");
    let (a, b) = build(&rt, DISK);
    let h = rt.open("split0", 1, 1, 0).unwrap();
    let mut rng = Rng::new(7);
    let mut model = vec![0u8; 2 * DISK as usize];
    for _ in 0..200 {
        let off = rng.below(2 * DISK / 512 - 64) as usize * 512;
        let len = (1 + rng.below(63) as usize) * 512;
        let data = rng.bytes(len);
        h.write(off as i64, &data).unwrap();
        model[off..off + len].copy_from_slice(&data);
        let roff = rng.below(2 * DISK / 512 - 64) as usize * 512;
        assert_eq!(h.read(roff as i64, len).unwrap(), model[roff..roff + len], "read at {roff} len {len}");
    }
    // Every byte is where the stripe mapping says, on the backing stores.
    let disks = [a.read_backing(0, DISK as usize), b.read_backing(0, DISK as usize)];
    for off in (0..model.len()).step_by(512) {
        let (d, doff) = map(off as i64);
        assert_eq!(disks[d][doff as usize..doff as usize + 512], model[off..off + 512], "sector at {off}");
    }
    // No memory: the request is retried by GEOM and still right.
    rt.fail_next_bio_allocations(3);
    assert_eq!(h.read(0, 64 * 1024).unwrap(), model[..64 * 1024]);
    h.close().unwrap();
    finish(rt);
}

#[test]
fn an_error_below_fails_the_request_once() {
    let rt = runtime("fanout-error");
    // md1 is half the size the array believes: disk 1's part of stripe 257 starts at its
    // end (GEOM completes it with no data), of stripe 259 past it (EIO).
    build(&rt, DISK / 2);
    let h = rt.open("split0", 1, 1, 0).unwrap();
    assert_eq!(h.read(254 * STRIPE, 2 * STRIPE as usize).map(|v| v.len()), Ok(2 * STRIPE as usize));
    assert_eq!(h.read(256 * STRIPE, 2 * STRIPE as usize), Err(geom_core::sys::errno::EIO), "short clone");
    assert_eq!(h.read(258 * STRIPE, 2 * STRIPE as usize), Err(geom_core::sys::errno::EIO), "failed clone");
    h.close().unwrap();
    finish(rt);
}

/// Reads both copies of a two-way mirror and compares them: two whole-length bounce clones
/// per request, so the clones' completions sum to twice the request's length.
struct Compare;

struct CompareGeom {
    disks: [Consumer; 2],
}

#[geom_class]
impl Geom for CompareGeom {
    type Class = Compare;

    fn start(&self, cx: &IoCtx, req: Request) {
        if req.cmd() != Cmd::Read {
            return req.fail(Errno::EOPNOTSUPP);
        }
        let (off, len) = (req.offset(), req.length());
        let mut f = Fanout::new(req);
        for (d, cp) in self.disks.iter().enumerate() {
            if let Err(e) = f.add_bounce(cx, *cp, off, len, d) {
                return f.abort(e);
            }
        }
        f.send_to_done::<CompareGeom>();
    }

    fn done(&self, _cx: &IoCtx, children: &mut Children<'_>) {
        if children.error().is_some() {
            return;
        }
        let mut copies: [Vec<u8>; 2] = Default::default();
        children.for_each(|data, child| {
            copies[child.tag()] = child.data().to_vec();
            data.copy_from_slice(child.data());
        });
        if copies[0] != copies[1] {
            children.fail(Errno::EINTEGRITY);
        }
    }

    fn access(
        &self,
        topo: &mut Topology,
        _gp: GeomRef<Compare>,
        _pp: Provider,
        dr: i32,
        dw: i32,
        de: i32,
    ) -> Result<()> {
        self.disks[0].access(topo, dr, dw, de)?;
        if let Err(e) = self.disks[1].access(topo, dr, dw, de) {
            let _ = self.disks[0].access(topo, -dr, -dw, -de);
            return Err(e);
        }
        Ok(())
    }
}

#[geom_class]
impl GeomClass for Compare {
    const NAME: &'static CStr = c"COMPARE";
    type Softc = CompareGeom;
    type Verb = NoVerbs;

    fn init(topo: &mut Topology) -> Self {
        let _ = topo;
        Compare
    }

    fn destroy_geom(_cls: &Class<Self>, topo: &mut Topology, gp: GeomRef<Self>) -> Result<()> {
        gp.wither(topo, Errno::ENXIO);
        Ok(())
    }
}

#[test]
fn a_failed_request_with_overlapping_clones_is_delivered_within_its_length() {
    let rt = runtime("fanout-compare");
    let a = rt.md_create(MdConfig::malloc(DISK)).unwrap();
    let _b = rt.md_create(MdConfig::malloc(DISK)).unwrap();
    rt.load::<Compare>().unwrap();
    rt.with_class::<Compare, _>(|cls, topo| {
        let pa = Provider::by_name(topo, c"md0").unwrap();
        let pb = Provider::by_name(topo, c"md1").unwrap();
        let g = cls
            .new_geom_with(topo, c"cmp0", |topo, g| {
                let ca = g.new_consumer(topo);
                let cb = g.new_consumer(topo);
                ca.attach(topo, pa)?;
                cb.attach(topo, pb)?;
                Ok(CompareGeom { disks: [ca, cb] })
            })
            .unwrap();
        let pp = g.new_provider(topo, c"cmp0");
        pp.set_geometry(topo, DISK as i64, 512, 0, 0);
        pp.set_ready(topo);
    });
    let h = rt.open("cmp0", 1, 0, 0).unwrap();
    // Equal copies: the request completes with exactly its length.
    assert_eq!(h.read(0, 8192).unwrap(), vec![0; 8192]);
    // Different copies: the clones completed 16 KiB between them, the 8 KiB request fails
    // with the class's error, and g_io_deliver sees bio_completed within bio_length.
    a.write_backing(4096, &[0x5a; 512]);
    assert_eq!(h.read(0, 8192), Err(geom_core::sys::errno::EINTEGRITY));
    h.close().unwrap();
    finish(rt);
}
