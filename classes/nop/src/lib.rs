//! # NOP: a transparent geom with fault knobs
//!
//! The counterpart of FreeBSD's gnop(8), written with the safe API alone. `geom nop
//! create md0` puts `md0.nop` on top of `md0`; every request passes through, unless a knob
//! says otherwise:
//!
//! | option | meaning |
//! |---|---|
//! | `rfailprob`, `wfailprob` | percentage of reads / writes failed with `error` |
//! | `error` | the errno failed requests get (default `EIO`) |
//! | `count_until_fail` | the Nth request from now, and every read and write after it, fails |
//! | `offset`, `size` | expose only this range of the provider below |
//! | `secsize`, `stripesize`, `stripeoffset` | what the new provider advertises |
//!
//! Verbs: `create`, `configure` (the failure knobs of existing devices), `reset` (the
//! counters), `destroy` (`force` to destroy an open one). Counters of reads, writes, deletes,
//! getattrs, flushes and bytes appear in `geom nop list`.
//!
//! It is the smallest complete class and the fault-injection layer other classes' tests
//! stack under themselves.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

use alloc::ffi::CString;
use alloc::format;
use core::ffi::CStr;
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::Relaxed};

use geom_core::{
    Class, Cmd, Consumer, Dump, Errno, Fanout, Gctl, Geom, GeomClass, GeomRef, IoCtx, Provider, Request, Result,
    Topology, XmlWriter,
};
use geom_macros::geom_class;

/// `G_NOP_VERSION`: what geom(8)'s nop library sends as "version".
pub const G_NOP_VERSION: i32 = 4;

/// The NOP class (it keeps no class-wide state).
pub struct Nop;

/// The failure knobs of one device, changeable while it runs (`configure`).
#[derive(Default)]
struct Knobs {
    error: AtomicI32,
    rfailprob: AtomicU32,
    wfailprob: AtomicU32,
    /// 0: off; otherwise requests left until every read and write fails.
    count_until_fail: AtomicU64,
}

/// Counters shown by `list` and cleared by `reset`.
#[derive(Default)]
struct Stats {
    reads: AtomicU64,
    writes: AtomicU64,
    deletes: AtomicU64,
    getattrs: AtomicU64,
    flushes: AtomicU64,
    others: AtomicU64,
    readbytes: AtomicU64,
    wrotebytes: AtomicU64,
}

/// One `<provider>.nop` device.
pub struct NopGeom {
    cp: Consumer,
    offset: i64,
    knobs: Knobs,
    stats: Stats,
}

impl NopGeom {
    /// Does the dice say this request fails?
    fn should_fail(&self, cmd: Cmd) -> bool {
        let prob = match cmd {
            Cmd::Read => self.knobs.rfailprob.load(Relaxed),
            Cmd::Write => self.knobs.wfailprob.load(Relaxed),
            _ => 0,
        };
        if prob == 0 {
            return false;
        }
        geom_core::arc4random() % 100 < prob
    }

    fn count(&self, req: &Request) {
        let s = &self.stats;
        let len = req.length().max(0) as u64;
        match req.cmd() {
            Cmd::Read => {
                s.reads.fetch_add(1, Relaxed);
                s.readbytes.fetch_add(len, Relaxed);
            }
            Cmd::Write => {
                s.writes.fetch_add(1, Relaxed);
                s.wrotebytes.fetch_add(len, Relaxed);
            }
            Cmd::Delete => drop(s.deletes.fetch_add(1, Relaxed)),
            Cmd::GetAttr => drop(s.getattrs.fetch_add(1, Relaxed)),
            Cmd::Flush => drop(s.flushes.fetch_add(1, Relaxed)),
            _ => drop(s.others.fetch_add(1, Relaxed)),
        }
    }

    fn reset(&self) {
        let s = &self.stats;
        for c in [&s.reads, &s.writes, &s.deletes, &s.getattrs, &s.flushes, &s.others, &s.readbytes, &s.wrotebytes] {
            c.store(0, Relaxed);
        }
    }
}

#[geom_class]
impl Geom for NopGeom {
    type Class = Nop;

    fn start(&self, cx: &IoCtx, req: Request) {
        self.count(&req);
        // gnop: every request counts down; at zero, every read and write fails from then on.
        let k = &self.knobs;
        if k.count_until_fail.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1)) == Ok(1) {
            k.rfailprob.store(100, Relaxed);
            k.wfailprob.store(100, Relaxed);
        }
        if self.should_fail(req.cmd()) {
            req.fail(Errno::new(k.error.load(Relaxed)).unwrap_or(Errno::EIO));
            return;
        }
        let (off, len) = (req.offset() + self.offset, req.length());
        let mut f = Fanout::new(req);
        match f.add(cx, self.cp, off, len, 0) {
            Ok(()) => f.send(),
            Err(e) => f.abort(e),
        }
    }

    fn access(&self, topo: &mut Topology, _gp: GeomRef<Nop>, _pp: Provider, dr: i32, dw: i32, de: i32) -> Result<()> {
        self.cp.access(topo, dr, dw, de)
    }

    fn dumpconf(&self, _topo: &Topology, xml: &mut XmlWriter<'_>, what: Dump) {
        if what != Dump::Geom {
            return;
        }
        let k = &self.knobs;
        let s = &self.stats;
        xml.element("ReadFailProb", k.rfailprob.load(Relaxed));
        xml.element("WriteFailProb", k.wfailprob.load(Relaxed));
        xml.element("CountUntilFail", k.count_until_fail.load(Relaxed));
        xml.element("Error", k.error.load(Relaxed));
        xml.element("Offset", self.offset);
        xml.element("Reads", s.reads.load(Relaxed));
        xml.element("Writes", s.writes.load(Relaxed));
        xml.element("Deletes", s.deletes.load(Relaxed));
        xml.element("Getattrs", s.getattrs.load(Relaxed));
        xml.element("Flushes", s.flushes.load(Relaxed));
        xml.element("Others", s.others.load(Relaxed));
        xml.element("ReadBytes", s.readbytes.load(Relaxed));
        xml.element("WroteBytes", s.wrotebytes.load(Relaxed));
    }
}

/// Options of `create` and `configure`, as geom(8) sends them (numbers are `intmax_t`).
struct Options {
    error: i64,
    rfailprob: i64,
    wfailprob: i64,
    count_until_fail: i64,
    offset: i64,
    size: i64,
    secsize: i64,
    stripesize: i64,
    stripeoffset: i64,
}

impl Options {
    fn parse(req: &Gctl<'_>) -> Options {
        let n = |name: &CStr, default: i64| req.intmax(name).unwrap_or(default);
        Options {
            error: n(c"error", -1),
            rfailprob: n(c"rfailprob", -1),
            wfailprob: n(c"wfailprob", -1),
            count_until_fail: n(c"count_until_fail", -1),
            offset: n(c"offset", 0),
            size: n(c"size", 0),
            secsize: n(c"secsize", 0),
            stripesize: n(c"stripesize", 0),
            stripeoffset: n(c"stripeoffset", 0),
        }
    }

    /// Check and apply the failure knobs (-1: leave as is).
    fn apply(&self, req: &mut Gctl<'_>, k: &Knobs) -> bool {
        for (name, v) in [("rfailprob", self.rfailprob), ("wfailprob", self.wfailprob)] {
            if !(-1..=100).contains(&v) {
                req.error(format_args!("Invalid '{name}' argument"));
                return false;
            }
        }
        if self.error < -1 || self.error > i32::MAX as i64 {
            req.error(format_args!("Invalid '{}' argument", "error"));
            return false;
        }
        if self.count_until_fail < -1 {
            req.error(format_args!("Invalid '{}' argument", "count_until_fail"));
            return false;
        }
        if self.error != -1 {
            k.error.store(if self.error == 0 { Errno::EIO.get() } else { self.error as i32 }, Relaxed);
        }
        if self.rfailprob != -1 {
            k.rfailprob.store(self.rfailprob as u32, Relaxed);
        }
        if self.wfailprob != -1 {
            k.wfailprob.store(self.wfailprob as u32, Relaxed);
        }
        if self.count_until_fail != -1 {
            k.count_until_fail.store(self.count_until_fail as u64, Relaxed);
        }
        true
    }
}

fn check_version(req: &mut Gctl<'_>) -> bool {
    match req.int(c"version") {
        None => {
            req.error(format_args!("No '{}' argument.", "version"));
            false
        }
        Some(G_NOP_VERSION) => true,
        Some(_) => {
            req.error(format_args!("Userland and kernel parts are out of sync."));
            false
        }
    }
}

/// The positional arguments, or an error recorded in the request.
fn args<'r>(req: &mut Gctl<'r>) -> Option<alloc::vec::Vec<CString>> {
    let Some(n) = req.nargs() else {
        req.error(format_args!("Missing nargs argument"));
        return None;
    };
    if n == 0 {
        req.error(format_args!("Missing device(s)."));
        return None;
    }
    let mut v = alloc::vec::Vec::new();
    for i in 0..n {
        match req.arg(i) {
            Some(a) => v.push(CString::from(a)),
            None => {
                req.error(format_args!("No 'arg{i}' argument."));
                return None;
            }
        }
    }
    Some(v)
}

/// Strip a leading "/dev/" as FreeBSD's tools accept it.
fn devname(s: &CStr) -> &CStr {
    let b = s.to_bytes_with_nul();
    match b.strip_prefix(b"/dev/") {
        Some(rest) => CStr::from_bytes_with_nul(rest).unwrap_or(s),
        None => s,
    }
}

fn create(cls: &Class<Nop>, topo: &mut Topology, req: &mut Gctl<'_>, name: &CStr, o: &Options) -> Result<()> {
    let Some(pp) = Provider::by_name(topo, name) else {
        req.error(format_args!("Provider {} is invalid.", name.to_string_lossy()));
        return Err(Errno::EINVAL);
    };
    let pname = pp.name().to_string_lossy();
    let ss = pp.sectorsize() as i64;
    let secsize = if o.secsize == 0 { ss } else { o.secsize };
    let invalid = |what: &str, req: &mut Gctl<'_>| {
        req.error(format_args!("Invalid {what} for provider {pname}."));
        Err(Errno::EINVAL)
    };
    if o.offset < 0 || o.offset >= pp.mediasize() || o.offset % ss != 0 {
        return invalid("offset", req);
    }
    let size = if o.size == 0 { pp.mediasize() - o.offset } else { o.size };
    if size <= 0 || size > pp.mediasize() - o.offset || size % ss != 0 {
        return invalid("size", req);
    }
    if secsize < ss || secsize % ss != 0 || !(secsize as u64).is_power_of_two() || secsize > u32::MAX as i64 {
        return invalid("secsize", req);
    }
    let size = size - size % secsize;
    let gname = CString::new(format!("{pname}.nop")).map_err(|_| Errno::EINVAL)?;
    if Provider::by_name(topo, &gname).is_some() {
        req.error(format_args!("Provider {} already exists.", gname.to_string_lossy()));
        return Err(Errno::EEXIST);
    }
    let knobs = Knobs::default();
    knobs.error.store(Errno::EIO.get(), Relaxed);
    if !o.apply(req, &knobs) {
        return Err(Errno::EINVAL);
    }
    let g = cls.new_geom_with(topo, &gname, |topo, g| {
        let cp = g.new_consumer(topo);
        cp.set_direct(topo);
        if let Err(e) = cp.attach(topo, pp) {
            cp.destroy(topo);
            return Err(e);
        }
        Ok(NopGeom { cp, offset: o.offset, knobs, stats: Stats::default() })
    });
    let g = match g {
        Ok(g) => g,
        Err(e) => {
            req.error(format_args!("Cannot attach to provider {pname}."));
            return Err(e);
        }
    };
    let newpp = g.new_provider(topo, &gname);
    newpp.set_geometry(topo, size, secsize as u32, o.stripesize, o.stripeoffset);
    newpp.set_direct(topo);
    newpp.set_ready(topo);
    Ok(())
}

fn destroy(g: GeomRef<Nop>, topo: &mut Topology, force: bool) -> Result<()> {
    let open = g.providers(topo).any(|pp| pp.is_open(topo));
    if open && !force {
        return Err(Errno::EBUSY);
    }
    g.wither(topo, Errno::ENXIO);
    Ok(())
}

#[geom_class]
impl GeomClass for Nop {
    const NAME: &'static CStr = c"NOP";
    type Softc = NopGeom;

    fn init(_topo: &mut Topology) -> Self {
        Nop
    }

    fn ctlreq(cls: &Class<Self>, topo: &mut Topology, req: &mut Gctl<'_>, verb: &CStr) {
        if !check_version(req) {
            return;
        }
        let Some(names) = args(req) else { return };
        match verb.to_bytes() {
            b"create" => {
                let o = Options::parse(req);
                for n in &names {
                    if create(cls, topo, req, devname(n), &o).is_err() {
                        return;
                    }
                }
            }
            b"configure" | b"reset" | b"destroy" | b"stop" => {
                let o = Options::parse(req);
                let force = req.flag(c"force");
                for n in &names {
                    let n = devname(n);
                    let Some(g) = cls.geom_by_name(topo, n) else {
                        req.error(format_args!("Device {} is invalid.", n.to_string_lossy()));
                        return;
                    };
                    match verb.to_bytes() {
                        b"configure" => {
                            if let Some(sc) = g.softc() {
                                if !o.apply(req, &sc.knobs) {
                                    return;
                                }
                            }
                        }
                        b"reset" => {
                            if let Some(sc) = g.softc() {
                                sc.reset();
                            }
                        }
                        _ => {
                            if destroy(g, topo, force).is_err() {
                                req.error(format_args!(
                                    "Device {} is still open, so it can't be definitely removed.",
                                    n.to_string_lossy()
                                ));
                                return;
                            }
                        }
                    }
                }
            }
            _ => req.error(format_args!("Unknown verb.")),
        }
    }

    fn destroy_geom(_cls: &Class<Self>, topo: &mut Topology, gp: GeomRef<Self>) -> Result<()> {
        destroy(gp, topo, false)
    }
}
