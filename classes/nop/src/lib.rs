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
//! | `rdelayprob`, `wdelayprob`, `delaymsec` | percentage of reads / writes held back `delaymsec` ms |
//! | `offset`, `size` | expose only this range of the provider below |
//! | `secsize`, `stripesize`, `stripeoffset` | what the new provider advertises |
//! | `gnopname`, `physpath` | the device's name and the physical path it reports |
//!
//! Verbs, declared once in [`NopVerb`] as lib/geom/nop declares them: `create`, `configure`
//! (the knobs of existing devices), `reset` (the counters), `destroy` (`-f` to destroy an
//! open one). Counters of reads, writes, deletes, getattrs, flushes and bytes appear in
//! `geom nop list`.
//!
//! It is the smallest complete class and the fault-injection layer other classes' tests
//! stack under themselves. On the userland runtime:
//!
//! ```
//! use geom_class_nop::{Nop, G_NOP_VERSION};
//! use geom_host::{disk::MdConfig, CtlRequest, CtlValue, Runtime};
//!
//! let rt = Runtime::default();
//! rt.md_create(MdConfig::malloc(1 << 20)).unwrap(); // md0
//! rt.load::<Nop>().unwrap(); // kldload geom_nop
//! // geom nop create -w 100 -e 5 md0: every write fails with EIO.
//! let reply = rt.ctl(
//!     &CtlRequest::new("NOP", "create")
//!         .param("version", CtlValue::Uint32(G_NOP_VERSION))
//!         .param("wfailprob", CtlValue::Intmax(100))
//!         .param("error", CtlValue::Intmax(5))
//!         .arg("md0"),
//! );
//! assert_eq!(reply.error, 0);
//! let h = rt.open("md0.nop", 1, 1, 0).unwrap();
//! assert_eq!(h.write(0, &[1; 512]), Err(5));
//! assert_eq!(h.read(0, 512).unwrap(), vec![0; 512]);
//! h.close().unwrap();
//! assert!(rt.shutdown().is_empty());
//! ```
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

use alloc::ffi::CString;
use alloc::format;
use alloc::vec::Vec;
use core::ffi::CStr;
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::Relaxed};

use geom_core::{
    geom_class, Class, Cmd, Consumer, Dump, Errno, Fanout, Gctl, Geom, GeomClass, GeomRef, Handler, IoCtx, Provider,
    Request, Result, SleepCtx, Topology, VerbArgs, Verbs, Worker, XmlWriter,
};

/// `G_NOP_VERSION`: what geom(8)'s nop library sends as "version".
pub const G_NOP_VERSION: u32 = 4;
/// `G_NOP_SUFFIX`: appended to the provider's name to name the device.
pub const G_NOP_SUFFIX: &str = ".nop";

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
    rdelayprob: AtomicU32,
    wdelayprob: AtomicU32,
    delaymsec: AtomicU32,
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
    /// What `GEOM::physpath` answers; `None` passes the question down.
    physpath: Option<CString>,
    knobs: Knobs,
    stats: Stats,
    /// The thread that holds delayed requests back, started the first time a delay is set.
    delayer: spin::Once<Worker<Delayer, DELAY_SLOTS>>,
}

/// How many delayed requests can wait at once; more pass through undelayed, as gnop's do
/// when it cannot allocate a callout.
const DELAY_SLOTS: usize = 64;

/// A request held back by the delay knobs: its clone, ready to go, and when.
struct Delayed {
    fanout: Fanout,
    due_ns: u64,
}

/// Sends delayed requests when their time comes (gnop's callouts). Requests arrive in
/// order and wait the same `delaymsec`, so they fall due in order too.
struct Delayer;

impl Handler for Delayer {
    type Msg = Delayed;

    fn bio(&mut self, _cx: &SleepCtx, req: Request) {
        // Only clones are posted, as messages.
        req.fail(Errno::EIO);
    }

    fn message(&mut self, cx: &SleepCtx, d: Delayed) {
        let now = geom_core::uptime_ns();
        if d.due_ns > now {
            cx.pause((d.due_ns - now).div_ceil(1_000_000).min(u64::from(u32::MAX)) as u32);
        }
        d.fanout.send();
    }
}

impl NopGeom {
    /// Does the dice say this request waits?
    fn should_delay(&self, cmd: Cmd) -> bool {
        let prob = match cmd {
            Cmd::Read => self.knobs.rdelayprob.load(Relaxed),
            Cmd::Write => self.knobs.wdelayprob.load(Relaxed),
            _ => 0,
        };
        prob != 0 && geom_core::arc4random() % 100 < prob
    }

    /// Send `f` now, or after `delaymsec` if the dice say so and the delayer has room.
    fn send_maybe_later(&self, f: Fanout) {
        // Most devices never get a delay: they go straight on, and keep the fan-out local.
        let Some(delayer) = self.delayer.get() else { return f.send() };
        self.send_delayed(delayer, f);
    }

    /// [`NopGeom::send_maybe_later`] once a delayer runs.
    #[inline(never)]
    fn send_delayed(&self, delayer: &Worker<Delayer, DELAY_SLOTS>, f: Fanout) {
        if !self.should_delay(f.request().cmd()) {
            return f.send();
        }
        let due_ns = geom_core::uptime_ns() + u64::from(self.knobs.delaymsec.load(Relaxed)) * 1_000_000;
        match delayer.post(Delayed { fanout: f, due_ns }) {
            Ok(()) => {}
            Err(e) => e.into_inner().fanout.send(),
        }
    }

    /// Start the delayer if a delay is configured and it is not running yet.
    fn start_delayer(&self, topo: &mut Topology, name: &CStr) -> Result<()> {
        let k = &self.knobs;
        if k.rdelayprob.load(Relaxed) == 0 && k.wdelayprob.load(Relaxed) == 0 || self.delayer.is_completed() {
            return Ok(());
        }
        let w = Worker::spawn(&*topo, name, Delayer)?;
        self.delayer.call_once(|| w);
        Ok(())
    }

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

    #[inline]
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
        let req = match &self.physpath {
            Some(path) => match req.answer_attr_str(c"GEOM::physpath", path) {
                Ok(()) => return,
                Err(req) => req,
            },
            None => req,
        };
        let mut f = Fanout::new(req);
        match f.add_whole(cx, self.cp, self.offset) {
            Ok(()) => self.send_maybe_later(f),
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
        xml.element("DelayMsec", k.delaymsec.load(Relaxed));
        xml.element("ReadDelayedProb", k.rdelayprob.load(Relaxed));
        xml.element("WriteDelayedProb", k.wdelayprob.load(Relaxed));
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

/// Put a NOP device on top of each provider (`geom nop create`).
#[derive(VerbArgs)]
pub struct Create {
    /// Fail every read and write after this many more requests (-1: off).
    #[opt(short = 'c', default = -1)]
    pub count_until_fail: i64,
    /// How long a delayed request waits, in milliseconds.
    #[opt(short = 'd', default = -1)]
    pub delaymsec: i64,
    /// The errno failed requests get (-1: EIO).
    #[opt(short = 'e', default = -1)]
    pub error: i64,
    /// Where the device starts on the provider, in bytes.
    #[opt(short = 'o', default = 0)]
    pub offset: i64,
    /// The stripe size the device advertises.
    #[opt(short = 'p', default = 0)]
    pub stripesize: i64,
    /// The stripe offset the device advertises.
    #[opt(short = 'P', default = 0)]
    pub stripeoffset: i64,
    /// Percentage of reads delayed by `delaymsec`.
    #[opt(short = 'q', default = -1)]
    pub rdelayprob: i64,
    /// Percentage of reads failed with `error`.
    #[opt(short = 'r', default = -1)]
    pub rfailprob: i64,
    /// The device's size in bytes (0: the rest of the provider).
    #[opt(short = 's', default = 0)]
    pub size: i64,
    /// The device's sector size (0: the provider's).
    #[opt(short = 'S', default = 0)]
    pub secsize: i64,
    /// Percentage of writes failed with `error`.
    #[opt(short = 'w', default = -1)]
    pub wfailprob: i64,
    /// Percentage of writes delayed by `delaymsec`.
    #[opt(short = 'x', default = -1)]
    pub wdelayprob: i64,
    /// The physical path the device reports (left out: the provider's).
    #[opt(short = 'z')]
    pub physpath: Option<CString>,
    /// The device's name (left out: `<provider>.nop`).
    #[opt(short = 'Z')]
    pub gnopname: Option<CString>,
    /// Be verbose.
    #[opt(short = 'v')]
    pub verbose: bool,
    /// The providers.
    #[args(min = 1, name = "dev ...", dev)]
    pub providers: Vec<CString>,
}

/// Change the fault knobs of running devices (`geom nop configure`).
#[derive(VerbArgs)]
pub struct Configure {
    /// Fail every read and write after this many more requests (-1: unchanged).
    #[opt(short = 'c', default = -1)]
    pub count_until_fail: i64,
    /// How long a delayed request waits, in milliseconds (-1: unchanged).
    #[opt(short = 'd', default = -1)]
    pub delaymsec: i64,
    /// The errno failed requests get (-1: unchanged).
    #[opt(short = 'e', default = -1)]
    pub error: i64,
    /// Percentage of reads delayed (-1: unchanged).
    #[opt(short = 'q', default = -1)]
    pub rdelayprob: i64,
    /// Percentage of reads failed (-1: unchanged).
    #[opt(short = 'r', default = -1)]
    pub rfailprob: i64,
    /// Percentage of writes failed (-1: unchanged).
    #[opt(short = 'w', default = -1)]
    pub wfailprob: i64,
    /// Percentage of writes delayed (-1: unchanged).
    #[opt(short = 'x', default = -1)]
    pub wdelayprob: i64,
    /// Be verbose.
    #[opt(short = 'v')]
    pub verbose: bool,
    /// The devices.
    #[args(min = 1, name = "prov ...", dev)]
    pub providers: Vec<CString>,
}

/// Destroy devices (`geom nop destroy`).
#[derive(VerbArgs)]
pub struct Destroy {
    /// Destroy a device even if it is open.
    #[opt(short = 'f')]
    pub force: bool,
    /// Be verbose.
    #[opt(short = 'v')]
    pub verbose: bool,
    /// The devices.
    #[args(min = 1, name = "prov ...", dev)]
    pub providers: Vec<CString>,
}

/// Clear the counters of devices (`geom nop reset`).
#[derive(VerbArgs)]
pub struct Reset {
    /// Be verbose.
    #[opt(short = 'v')]
    pub verbose: bool,
    /// The devices.
    #[args(min = 1, name = "prov ...", dev)]
    pub providers: Vec<CString>,
}

/// NOP's verbs, as FreeBSD's gnop(8) has them.
#[derive(Verbs)]
pub enum NopVerb {
    /// `create` (geom(8) loads geom_nop.ko first if need be).
    #[verb(loadkld)]
    Create(Create),
    /// `configure`.
    Configure(Configure),
    /// `destroy`.
    Destroy(Destroy),
    /// `reset`.
    Reset(Reset),
}

/// The failure knobs a request sets, checked (-1: leave as is).
struct KnobChange {
    error: i64,
    rfailprob: i64,
    wfailprob: i64,
    count_until_fail: i64,
    delaymsec: i64,
    rdelayprob: i64,
    wdelayprob: i64,
}

impl KnobChange {
    /// Check every value before changing anything.
    fn check(&self, req: &mut Gctl<'_>) -> bool {
        let percentages = [
            ("rfailprob", self.rfailprob),
            ("wfailprob", self.wfailprob),
            ("rdelayprob", self.rdelayprob),
            ("wdelayprob", self.wdelayprob),
        ];
        for (name, v) in percentages {
            if !(-1..=100).contains(&v) {
                req.error(format_args!("Invalid '{name}' argument"));
                return false;
            }
        }
        let counts =
            [("error", self.error), ("count_until_fail", self.count_until_fail), ("delaymsec", self.delaymsec)];
        for (name, v) in counts {
            if v < -1 || v > i64::from(i32::MAX) {
                req.error(format_args!("Invalid '{name}' argument"));
                return false;
            }
        }
        if self.delaymsec == 0 {
            req.error(format_args!("Invalid '{}' argument", "delaymsec"));
            return false;
        }
        true
    }

    fn apply(&self, k: &Knobs) {
        let set = |a: &AtomicU32, v: i64| {
            if v != -1 {
                a.store(v as u32, Relaxed);
            }
        };
        if self.error != -1 {
            k.error.store(if self.error == 0 { Errno::EIO.get() } else { self.error as i32 }, Relaxed);
        }
        set(&k.rfailprob, self.rfailprob);
        set(&k.wfailprob, self.wfailprob);
        set(&k.rdelayprob, self.rdelayprob);
        set(&k.wdelayprob, self.wdelayprob);
        set(&k.delaymsec, self.delaymsec);
        if self.count_until_fail != -1 {
            k.count_until_fail.store(self.count_until_fail as u64, Relaxed);
        }
    }
}

/// Both verbs that set knobs carry the same seven options, as in lib/geom/nop.
macro_rules! knob_change_from {
    ($($verb:ty),*) => {$(
        impl From<&$verb> for KnobChange {
            fn from(o: &$verb) -> Self {
                KnobChange {
                    error: o.error,
                    rfailprob: o.rfailprob,
                    wfailprob: o.wfailprob,
                    count_until_fail: o.count_until_fail,
                    delaymsec: o.delaymsec,
                    rdelayprob: o.rdelayprob,
                    wdelayprob: o.wdelayprob,
                }
            }
        }
    )*};
}

knob_change_from!(Create, Configure);

fn create(cls: &Class<Nop>, topo: &mut Topology, req: &mut Gctl<'_>, name: &CStr, o: &Create) -> Result<()> {
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
    let gname = match &o.gnopname {
        Some(n) => n.clone(),
        None => CString::new(format!("{pname}{G_NOP_SUFFIX}")).map_err(|_| Errno::EINVAL)?,
    };
    if Provider::by_name(topo, &gname).is_some() {
        req.error(format_args!("Provider {} already exists.", gname.to_string_lossy()));
        return Err(Errno::EEXIST);
    }
    let change = KnobChange::from(o);
    if !change.check(req) {
        return Err(Errno::EINVAL);
    }
    let knobs = Knobs::default();
    knobs.error.store(Errno::EIO.get(), Relaxed);
    knobs.delaymsec.store(1, Relaxed);
    change.apply(&knobs);
    // FreeBSD's library sends "\255" for "pass the provider's physical path through".
    let physpath = o.physpath.clone().filter(|p| p.as_bytes() != b"\xad");
    let g = cls.new_geom_with(topo, &gname, |topo, g| {
        let cp = g.new_consumer(topo);
        cp.set_direct(topo);
        if let Err(e) = cp.attach(topo, pp) {
            cp.destroy(topo);
            return Err(e);
        }
        Ok(NopGeom { cp, offset: o.offset, physpath, knobs, stats: Stats::default(), delayer: spin::Once::new() })
    });
    let g = match g {
        Ok(g) => g,
        Err(e) => {
            req.error(format_args!("Cannot attach to provider {pname}."));
            return Err(e);
        }
    };
    if let Some(sc) = g.softc() {
        if let Err(e) = sc.start_delayer(topo, &gname) {
            req.error(format_args!("Cannot start the delay thread for {}.", gname.to_string_lossy()));
            g.wither(topo, Errno::ENXIO);
            return Err(e);
        }
    }
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

/// The devices named in a request, or an error recorded in it.
fn devices<'n>(
    cls: &Class<Nop>,
    topo: &Topology,
    req: &mut Gctl<'_>,
    names: &'n [CString],
) -> Option<Vec<(&'n CStr, GeomRef<Nop>)>> {
    let mut out = Vec::new();
    for n in names {
        match cls.geom_by_name(topo, n) {
            Some(g) => out.push((n.as_c_str(), g)),
            None => {
                req.error(format_args!("Device {} is invalid.", n.to_string_lossy()));
                return None;
            }
        }
    }
    Some(out)
}

#[geom_class]
impl GeomClass for Nop {
    const NAME: &'static CStr = c"NOP";
    const VERSION: Option<u32> = Some(G_NOP_VERSION);
    type Softc = NopGeom;
    type Verb = NopVerb;

    fn init(_topo: &mut Topology) -> Self {
        Nop
    }

    fn ctlreq(cls: &Class<Self>, topo: &mut Topology, req: &mut Gctl<'_>, verb: NopVerb) {
        match verb {
            NopVerb::Create(o) => {
                for n in &o.providers {
                    if create(cls, topo, req, n, &o).is_err() {
                        return;
                    }
                }
            }
            NopVerb::Configure(o) => {
                let change = KnobChange::from(&o);
                if !change.check(req) {
                    return;
                }
                let Some(devs) = devices(cls, topo, req, &o.providers) else { return };
                for (n, g) in devs {
                    if let Some(sc) = g.softc() {
                        change.apply(&sc.knobs);
                        if sc.start_delayer(topo, n).is_err() {
                            req.error(format_args!("Cannot start the delay thread for {}.", n.to_string_lossy()));
                            return;
                        }
                    }
                }
            }
            NopVerb::Reset(o) => {
                let Some(devs) = devices(cls, topo, req, &o.providers) else { return };
                for (_, g) in devs {
                    if let Some(sc) = g.softc() {
                        sc.reset();
                    }
                }
            }
            NopVerb::Destroy(o) => {
                let Some(devs) = devices(cls, topo, req, &o.providers) else { return };
                for (n, g) in devs {
                    if destroy(g, topo, o.force).is_err() {
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

    fn destroy_geom(_cls: &Class<Self>, topo: &mut Topology, gp: GeomRef<Self>) -> Result<()> {
        destroy(gp, topo, false)
    }
}
