//! Workers, intrusive bio queues and the two locks, driven by real I/O: a small class (`WQ`)
//! whose start posts every write to a worker that writes it synchronously below and then
//! completes it; reads go down directly. Bytes are checked on the memory disk underneath.
//!
//! Each geom is wired to a `Probe` (by the name of the disk it sits on) through which the
//! test sees what the class and its workers did, and waits for it.

mod common;

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex as StdMutex, OnceLock};
use std::time::Duration;

use common::{finish, runtime, AnyVerb, Rng};
use geom_core::sys::errno;
use geom_core::{
    BioQueue, Class, Cmd, Consumer, Dump, Errno, Gctl, Geom, GeomClass, GeomRef, Handler, IoCtx, Mutex, PostError,
    Provider, Request, Result, SleepCtx, SleepLock, Topology, Worker, XmlWriter,
};
use geom_host::disk::MdConfig;
use geom_host::{CtlRequest, Runtime};

const MIB: u64 = 1 << 20;
const SECTOR: usize = 512;
/// How many bios an ordering worker holds before it drains them.
const ORDER_BATCH: usize = 8;

// ---------------------------------------------------------------------------------------
// The probe: what the test sees of one geom.

#[derive(Default)]
struct Seen {
    /// Writes start handed to a worker.
    posted: u32,
    /// Bios a handler started on.
    entered: u32,
    /// Gated handlers may go on.
    gate_open: bool,
    /// Ordering workers: each drained batch as (offset, first data byte), in arrival order
    /// and in drain order, and the offset `peek` showed before draining.
    batches: Vec<Batch>,
    /// `Handler::stopped` calls.
    stopped: u32,
    /// Names of the threads handlers were dropped on.
    dropped_on: Vec<String>,
}

#[derive(Clone, Debug)]
struct Batch {
    arrived: Vec<(i64, u8)>,
    drained: Vec<(i64, u8)>,
    peeked: i64,
    len_before: usize,
}

#[derive(Default)]
struct Probe {
    seen: StdMutex<Seen>,
    cv: Condvar,
    /// Workers inside the journal's SleepLock right now, and the most ever seen at once.
    holders: AtomicU32,
    max_holders: AtomicU32,
}

impl Probe {
    fn update(&self, f: impl FnOnce(&mut Seen)) {
        f(&mut self.seen.lock().unwrap());
        self.cv.notify_all();
    }

    /// Wait until `cond` holds (the time limit only turns a hang into a failure).
    fn wait_for(&self, what: &str, cond: impl Fn(&Seen) -> bool) {
        let g = self.seen.lock().unwrap();
        let (_g, t) = self.cv.wait_timeout_while(g, Duration::from_secs(60), |s| !cond(s)).unwrap();
        assert!(!t.timed_out(), "waited too long for {what}");
    }

    fn snapshot<R>(&self, f: impl FnOnce(&Seen) -> R) -> R {
        f(&self.seen.lock().unwrap())
    }
}

/// The probe of the geom on disk `disk`: disk names are unique across the tests of this
/// file, which run in parallel in one process.
fn probe(disk: &str) -> Arc<Probe> {
    static PROBES: OnceLock<StdMutex<HashMap<String, Arc<Probe>>>> = OnceLock::new();
    let mut all = PROBES.get_or_init(Default::default).lock().unwrap();
    Arc::clone(all.entry(disk.to_owned()).or_default())
}

// ---------------------------------------------------------------------------------------
// The class.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    Tail,
    Head,
    Sorted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Write each bio as it comes.
    Direct,
    /// Hold each bio until the probe's gate opens.
    Gated,
    /// Collect `ORDER_BATCH` bios on a BioQueue, then drain and write them.
    Ordered(Order),
}

/// Messages besides bios.
enum Msg {
    /// A handle on the handler's own worker.
    Adopt(Arc<Worker<Writer>>),
    /// Stop your own worker (from its thread).
    StopYourself,
    /// Drop your handle on your own worker.
    LetGo,
}

/// A worker's handler: writes bios synchronously under the journal lock.
struct Writer {
    cp: Consumer,
    mode: Mode,
    journal: Arc<SleepLock<u64>>,
    probe: Arc<Probe>,
    held: BioQueue,
    arrived: Vec<(i64, u8)>,
    me: Option<Arc<Worker<Writer>>>,
}

fn first_byte(req: &Request) -> u8 {
    req.data().and_then(|d| d.first().copied()).unwrap_or(0)
}

impl Writer {
    fn write(&mut self, cx: &SleepCtx, req: Request) {
        // The journal lock is held across the synchronous write: it may be held while sleeping.
        let mut journal = self.journal.lock(cx);
        let inside = self.probe.holders.fetch_add(1, Ordering::SeqCst) + 1;
        self.probe.max_holders.fetch_max(inside, Ordering::SeqCst);
        let r = match req.data() {
            Some(data) => self.cp.write_data(cx, req.offset(), data),
            None => Err(Errno::EINVAL),
        };
        *journal += 1;
        self.probe.holders.fetch_sub(1, Ordering::SeqCst);
        drop(journal);
        let n = req.length();
        req.finish(r.map(|()| n));
    }
}

impl Handler for Writer {
    type Msg = Msg;

    fn bio(&mut self, cx: &SleepCtx, req: Request) {
        self.probe.update(|s| s.entered += 1);
        match self.mode {
            Mode::Direct => self.write(cx, req),
            Mode::Gated => {
                self.probe.wait_for("the gate", |s| s.gate_open);
                self.write(cx, req);
            }
            Mode::Ordered(order) => {
                self.arrived.push((req.offset(), first_byte(&req)));
                match order {
                    Order::Tail => self.held.insert_tail(req),
                    Order::Head => self.held.insert_head(req),
                    Order::Sorted => self.held.insert_sorted(req),
                }
                if self.held.len() < ORDER_BATCH {
                    return;
                }
                let len_before = self.held.len();
                let peeked = self.held.peek().map_or(-1, |r| r.offset());
                let mut batch = BioQueue::new();
                batch.append(&mut self.held);
                assert!(self.held.is_empty() && batch.len() == len_before, "append moves every bio");
                let mut drained = Vec::new();
                for req in batch.drain() {
                    drained.push((req.offset(), first_byte(&req)));
                    self.write(cx, req);
                }
                let arrived = std::mem::take(&mut self.arrived);
                self.probe.update(|s| s.batches.push(Batch { arrived, drained, peeked, len_before }));
            }
        }
    }

    fn message(&mut self, cx: &SleepCtx, msg: Msg) {
        match msg {
            Msg::Adopt(w) => self.me = Some(w),
            Msg::StopYourself => {
                if let Some(w) = &self.me {
                    w.stop(cx);
                    assert!(!w.is_running(), "stopping from the worker's thread marks it stopping");
                }
            }
            Msg::LetGo => self.me = None,
        }
    }

    fn stopped(&mut self, _cx: &SleepCtx) {
        self.probe.update(|s| s.stopped += 1);
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let name = std::thread::current().name().unwrap_or("?").to_owned();
        self.probe.update(|s| s.dropped_on.push(name));
    }
}

#[derive(Default)]
struct Stats {
    posted: u64,
    passed: u64,
}

/// One `<disk>.wq` geom.
struct WqGeom {
    cp: Consumer,
    /// Emptied by the `letgo` verb; start fails writes with ENXIO when there is no worker.
    workers: Mutex<Vec<Arc<Worker<Writer>>>>,
    stats: Mutex<Stats>,
    journal: Arc<SleepLock<u64>>,
    probe: Arc<Probe>,
}

#[geom_macros::geom_class]
impl Geom for WqGeom {
    type Class = Wq;

    fn start(&self, cx: &IoCtx, req: Request) {
        if req.cmd() != Cmd::Write {
            self.stats.lock().passed += 1;
            req.pass_down(cx, self.cp);
            return;
        }
        let workers = self.workers.lock();
        let worker = match workers.len() {
            0 => None,
            n => workers.get((req.offset() as usize / SECTOR) % n),
        };
        let refused = match worker {
            None => Some(req),
            Some(w) => w.post_bio(req).err(),
        };
        drop(workers);
        match refused {
            Some(req) => req.fail(Errno::ENXIO),
            None => {
                self.stats.lock().posted += 1;
                self.probe.update(|s| s.posted += 1);
            }
        }
    }

    fn access(&self, topo: &mut Topology, _gp: GeomRef<Wq>, _pp: Provider, dr: i32, dw: i32, de: i32) -> Result<()> {
        self.cp.access(topo, dr, dw, de)
    }

    fn dumpconf(&self, _topo: &Topology, xml: &mut XmlWriter<'_>, what: Dump) {
        if what != Dump::Geom {
            return;
        }
        let s = self.stats.lock();
        xml.element("Posted", s.posted);
        xml.element("Passed", s.passed);
        drop(s);
        // Never sleep here: only report the journal when nobody holds it.
        if let Some(j) = self.journal.try_lock() {
            xml.element("Journaled", *j);
        }
    }
}

/// The class: verbs `create-<mode> DISK` (options `workers`, and `adopt` to give each
/// handler a handle on its own worker), `destroy DISK.wq` (with `force`, open: stop the
/// workers first), `selfstop DISK.wq`, `letgo DISK.wq`.
struct Wq;

fn create(cls: &Class<Wq>, topo: &mut Topology, req: &mut Gctl<'_>, mode: Mode) {
    let Some(disk) = req.arg(0).map(CString::from) else { return req.error(format_args!("no disk")) };
    let nworkers = req.int(c"workers").unwrap_or(1).max(1);
    let adopt = req.flag(c"adopt");
    let Some(pp) = Provider::by_name(topo, &disk) else { return req.error(format_args!("no such disk")) };
    let disk_name = disk.to_string_lossy().into_owned();
    let probe = probe(&disk_name);
    let journal = Arc::new(SleepLock::new(&*topo, c"wq journal", 0u64));
    let gname = CString::new(format!("{disk_name}.wq")).unwrap();
    let g = cls.new_geom_with(topo, &gname, |topo, g| {
        let cp = g.new_consumer(topo);
        cp.set_direct(topo);
        if let Err(e) = cp.attach(topo, pp) {
            cp.destroy(topo);
            return Err(e);
        }
        let mut workers = Vec::new();
        for i in 0..nworkers {
            let handler = Writer {
                cp,
                mode,
                journal: Arc::clone(&journal),
                probe: Arc::clone(&probe),
                held: BioQueue::new(),
                arrived: Vec::new(),
                me: None,
            };
            let name = CString::new(format!("wq{i} {disk_name}")).unwrap();
            let w = Arc::new(Worker::spawn(&*topo, &name, handler)?);
            if adopt {
                w.post(Msg::Adopt(Arc::clone(&w))).map_err(|_| Errno::ENOMEM)?;
            }
            workers.push(w);
        }
        Ok(WqGeom {
            cp,
            workers: Mutex::new(&*topo, c"wq workers", workers),
            stats: Mutex::new(&*topo, c"wq stats", Stats::default()),
            journal,
            probe,
        })
    });
    let Ok(g) = g else { return req.error(format_args!("cannot create")) };
    let newpp = g.new_provider(topo, &gname);
    newpp.set_geometry(topo, pp.mediasize(), pp.sectorsize(), 0, 0);
    newpp.set_direct(topo);
    newpp.set_ready(topo);
}

#[geom_macros::geom_class]
impl GeomClass for Wq {
    const NAME: &'static CStr = c"WQ";
    type Softc = WqGeom;
    type Verb = AnyVerb;

    fn init(_topo: &mut Topology) -> Self {
        Wq
    }

    fn ctlreq(cls: &Class<Self>, topo: &mut Topology, req: &mut Gctl<'_>, verb: AnyVerb) {
        let verb = verb.0.as_c_str();
        let mode = match verb.to_bytes() {
            b"create-direct" => Some(Mode::Direct),
            b"create-gated" => Some(Mode::Gated),
            b"create-tail" => Some(Mode::Ordered(Order::Tail)),
            b"create-head" => Some(Mode::Ordered(Order::Head)),
            b"create-sorted" => Some(Mode::Ordered(Order::Sorted)),
            _ => None,
        };
        if let Some(mode) = mode {
            return create(cls, topo, req, mode);
        }
        let Some(name) = req.arg(0).map(CString::from) else { return req.error(format_args!("no geom")) };
        let Some(g) = cls.geom_by_name(topo, &name) else { return req.error(format_args!("no such geom")) };
        let Some(sc) = g.softc() else { return req.error(format_args!("no softc")) };
        match verb.to_bytes() {
            b"destroy" => {
                let open = g.providers(topo).any(|pp| pp.is_open(topo));
                if open && !req.flag(c"force") {
                    return req.error(format_args!("open"));
                }
                if open {
                    // Forced: ask every worker to stop, let gated handlers go on, then wait
                    // for each; what they did not get yet fails with ENXIO.
                    let workers = sc.workers.lock().clone();
                    for w in &workers {
                        w.request_stop();
                    }
                    sc.probe.update(|s| s.gate_open = true);
                    for w in &workers {
                        w.stop(&*topo);
                    }
                }
                // Otherwise the workers stop when the softc is freed (the last provider gone).
                g.wither(topo, Errno::ENXIO);
            }
            b"selfstop" => {
                for w in sc.workers.lock().iter() {
                    if let Err(e) = w.post(Msg::StopYourself) {
                        drop(e.into_inner());
                        req.error(format_args!("post refused"));
                    }
                }
            }
            b"letgo" => {
                let workers = std::mem::take(&mut *sc.workers.lock());
                for w in &workers {
                    if let Err(PostError::Full(m) | PostError::Stopped(m)) = w.post(Msg::LetGo) {
                        drop(m);
                        req.error(format_args!("post refused"));
                    }
                }
            }
            _ => req.error(format_args!("Unknown verb.")),
        }
    }

    fn destroy_geom(_cls: &Class<Self>, topo: &mut Topology, gp: GeomRef<Self>) -> Result<()> {
        if gp.providers(topo).any(|pp| pp.is_open(topo)) {
            return Err(Errno::EBUSY);
        }
        gp.wither(topo, Errno::ENXIO);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Helpers.

fn ctl_ok(rt: &Runtime, req: CtlRequest) {
    let r = rt.ctl(&req);
    assert_eq!(r.error, 0, "{:?}", r.message);
}

fn wq(verb: &str, name: &str) -> CtlRequest {
    CtlRequest::new("WQ", verb).arg(name)
}

/// A runtime with the class loaded and a memory disk `disk` of `size` bytes.
fn setup(name: &str, disk: &str, size: u64) -> (Runtime, geom_host::disk::MdDisk) {
    let rt = runtime(name);
    let md = rt.md_create(MdConfig::malloc(size).named(disk)).unwrap();
    rt.load::<Wq>().unwrap();
    (rt, md)
}

/// `<Name>value</Name>` from the XML dump.
fn xml_number(xml: &str, name: &str) -> Option<u64> {
    let open = format!("<{name}>");
    let at = xml.find(&open)? + open.len();
    let end = xml[at..].find('<')? + at;
    xml[at..end].trim().parse().ok()
}

// ---------------------------------------------------------------------------------------
// The tests.

/// Four threads write and read back their own regions; every write goes through one of two
/// workers that share the journal's SleepLock, holding it across the synchronous write.
#[test]
fn concurrent_writes_reach_the_disk_through_two_workers() {
    const THREADS: u64 = 4;
    const WRITES: u64 = 48;
    const REGION: u64 = MIB;
    let (rt, md) = setup("wq-many", "wqmany", THREADS * REGION);
    ctl_ok(&rt, wq("create-direct", "wqmany").param("workers", geom_host::CtlValue::Int(2)));
    let h = Arc::new(rt.open("wqmany.wq", 1, 1, 0).unwrap());
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let h = Arc::clone(&h);
            std::thread::spawn(move || {
                let mut rng = Rng::new(7 + t);
                let base = t * REGION;
                let mut expect = vec![0u8; REGION as usize];
                for _ in 0..WRITES {
                    let len = (1 + rng.below(32)) * SECTOR as u64;
                    let off = rng.below((REGION - len) / SECTOR as u64) * SECTOR as u64;
                    let piece = &mut expect[off as usize..(off + len) as usize];
                    rng.fill(piece);
                    assert_eq!(h.write((base + off) as i64, piece), Ok(len as usize));
                    assert_eq!(h.read((base + off) as i64, len as usize).unwrap(), piece, "read back at once");
                }
                expect
            })
        })
        .collect();
    let expected: Vec<Vec<u8>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for (t, exp) in expected.iter().enumerate() {
        assert!(md.read_backing(t as u64 * REGION, REGION as usize) == *exp, "region {t} on the disk");
    }
    let p = probe("wqmany");
    assert_eq!(p.max_holders.load(Ordering::SeqCst), 1, "the SleepLock admitted one worker at a time");
    let total = THREADS * WRITES;
    let xml = rt.confxml();
    assert_eq!(xml_number(&xml, "Posted"), Some(total), "start posted every write");
    assert_eq!(xml_number(&xml, "Passed"), Some(total), "reads went down directly");
    assert_eq!(xml_number(&xml, "Journaled"), Some(total), "every write was journaled under the SleepLock");
    assert_eq!(p.snapshot(|s| s.entered), total as u32);
    Arc::try_unwrap(h).ok().unwrap().close().unwrap();
    ctl_ok(&rt, wq("destroy", "wqmany.wq"));
    rt.wait_idle();
    assert!(rt.provider("wqmany.wq").is_none());
    // Destroying the geom freed its softc, which stopped both workers on their own threads.
    p.wait_for("both handlers dropped", |s| s.dropped_on.len() == 2);
    p.snapshot(|s| {
        assert_eq!(s.stopped, 2);
        let mut names = s.dropped_on.clone();
        names.sort();
        assert_eq!(names, ["wq0 wqmany", "wq1 wqmany"], "each handler was dropped on its worker's thread");
    });
    assert_eq!(rt.live_bios(), 0);
    finish(rt);
}

/// Eight writers, one sector each, two of them to the same offset: a worker collects them on
/// a BioQueue in tail, head or sorted order, then drains it; the drain order is checked
/// against the arrival order, and the disk holds what was written last.
#[test]
fn a_bio_queue_drains_in_tail_head_and_sorted_order() {
    const OFFSETS: [u64; ORDER_BATCH] = [5, 2, 7, 2, 0, 6, 3, 1];
    let rt = runtime("wq-order");
    rt.load::<Wq>().unwrap();
    for (order, disk) in [(Order::Tail, "wqtail"), (Order::Head, "wqhead"), (Order::Sorted, "wqsorted")] {
        let md = rt.md_create(MdConfig::malloc(MIB).named(disk)).unwrap();
        ctl_ok(&rt, wq(&format!("create-{}", format!("{order:?}").to_lowercase()), disk));
        let h = Arc::new(rt.open(&format!("{disk}.wq"), 1, 1, 0).unwrap());
        let writers: Vec<_> = OFFSETS
            .iter()
            .enumerate()
            .map(|(i, &sector)| {
                let h = Arc::clone(&h);
                std::thread::spawn(move || h.write((sector as usize * SECTOR) as i64, &[i as u8 + 1; SECTOR]))
            })
            .collect();
        for w in writers {
            assert_eq!(w.join().unwrap(), Ok(SECTOR));
        }
        // The writers return as their bios complete, before the handler has filed its record.
        let p = probe(disk);
        p.wait_for("the drained batch", |s| !s.batches.is_empty());
        let batch = p.snapshot(|s| s.batches.clone());
        assert_eq!(batch.len(), 1, "{order:?}: one batch of {ORDER_BATCH}");
        let Batch { arrived, drained, peeked, len_before } = batch.into_iter().next().unwrap();
        assert_eq!(len_before, ORDER_BATCH, "{order:?}: len counts the queued bios");
        assert_eq!(arrived.len(), ORDER_BATCH);
        let expect: Vec<(i64, u8)> = match order {
            Order::Tail => arrived.clone(),
            Order::Head => arrived.iter().rev().copied().collect(),
            Order::Sorted => {
                let mut v = arrived.clone();
                v.sort_by_key(|&(off, _)| off); // stable, like insert_sorted
                v
            }
        };
        assert_eq!(drained, expect, "{order:?}: drain order (arrival order was {arrived:?})");
        assert_eq!(peeked, drained[0].0, "{order:?}: peek showed the first bio");
        if order == Order::Sorted {
            let twos: Vec<u8> = drained.iter().filter(|d| d.0 == 2 * SECTOR as i64).map(|d| d.1).collect();
            let arrived_twos: Vec<u8> = arrived.iter().filter(|d| d.0 == 2 * SECTOR as i64).map(|d| d.1).collect();
            assert_eq!(twos, arrived_twos, "equal offsets keep their arrival order");
        }
        // On the disk: for each offset, the data of the last bio drained there.
        for &sector in &OFFSETS {
            let off = sector as usize * SECTOR;
            let last = drained.iter().rev().find(|d| d.0 == off as i64).unwrap().1;
            assert_eq!(md.read_backing(off as u64, SECTOR), vec![last; SECTOR], "{order:?}: sector {sector}");
        }
        Arc::try_unwrap(h).ok().unwrap().close().unwrap();
    }
    finish(rt);
    // Shutdown destroyed the geoms; freeing each softc dropped its worker, which stopped it
    // and waited for its thread: the handlers are gone by now.
    for disk in ["wqtail", "wqhead", "wqsorted"] {
        probe(disk).snapshot(|s| {
            assert_eq!(s.stopped, 1, "{disk}");
            assert_eq!(s.dropped_on, [format!("wq0 {disk}")]);
        });
    }
}

/// A forced destroy while writers wait: the handler holds one bio behind a gate and more are
/// queued. The stop lets the bio in hand finish, fails every other with ENXIO exactly once,
/// and returns only when the worker's thread is done; nothing leaks.
#[test]
fn destroying_the_geom_with_bios_queued_fails_them_with_enxio() {
    const WRITERS: usize = 6;
    let (rt, md) = setup("wq-gate", "wqgate", MIB);
    ctl_ok(&rt, wq("create-gated", "wqgate"));
    let h = Arc::new(rt.open("wqgate.wq", 1, 1, 0).unwrap());
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let h = Arc::clone(&h);
            std::thread::spawn(move || h.write((i * 8 * SECTOR) as i64, &[i as u8 + 1; SECTOR]))
        })
        .collect();
    let p = probe("wqgate");
    p.wait_for("every write posted and one in the handler", |s| s.posted == WRITERS as u32 && s.entered == 1);
    ctl_ok(&rt, wq("destroy", "wqgate.wq").param("force", geom_host::CtlValue::Int(1)));
    // The stop has returned: the thread finished, so the handler was dropped on it.
    p.snapshot(|s| {
        assert_eq!(s.stopped, 1);
        assert_eq!(s.dropped_on, ["wq0 wqgate"]);
        assert_eq!(s.entered, 1, "no bio reached the handler after the stop");
    });
    let results: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let done: Vec<usize> = (0..WRITERS).filter(|&i| results[i] == Ok(SECTOR)).collect();
    assert_eq!(done.len(), 1, "only the bio in the handler's hands was written: {results:?}");
    for (i, r) in results.iter().enumerate() {
        let on_disk = md.read_backing((i * 8 * SECTOR) as u64, SECTOR);
        if done.contains(&i) {
            assert_eq!(on_disk, vec![i as u8 + 1; SECTOR]);
        } else {
            assert_eq!(*r, Err(errno::ENXIO), "writer {i}");
            assert_eq!(on_disk, vec![0; SECTOR], "writer {i}'s failed write left the disk alone");
        }
    }
    assert_eq!(h.write(0, &[9; SECTOR]), Err(errno::ENXIO), "the geom is gone");
    Arc::try_unwrap(h).ok().unwrap().close().unwrap();
    rt.settle();
    assert!(rt.provider("wqgate.wq").is_none());
    assert_eq!(rt.live_bios(), 0);
    finish(rt);
}

/// A handler stops its own worker: it cannot wait for itself, so the stop only marks the
/// worker; the thread finishes after the handler returns, and the softc frees the worker
/// later without waiting.
#[test]
fn a_handler_can_stop_its_own_worker() {
    let (rt, md) = setup("wq-self", "wqself", MIB);
    ctl_ok(&rt, wq("create-direct", "wqself").param("adopt", geom_host::CtlValue::Int(1)));
    let h = rt.open("wqself.wq", 1, 1, 0).unwrap();
    assert_eq!(h.write(0, &[1; SECTOR]), Ok(SECTOR));
    ctl_ok(&rt, wq("selfstop", "wqself.wq"));
    let p = probe("wqself");
    p.wait_for("the handler dropped", |s| s.dropped_on.len() == 1);
    p.snapshot(|s| {
        assert_eq!(s.stopped, 1);
        assert_eq!(s.dropped_on, ["wq0 wqself"]);
    });
    assert_eq!(h.write(0, &[2; SECTOR]), Err(errno::ENXIO), "a stopped worker refuses bios");
    assert_eq!(md.read_backing(0, SECTOR), vec![1; SECTOR]);
    assert_eq!(h.read(0, SECTOR).unwrap(), vec![1; SECTOR], "reads still go down");
    h.close().unwrap();
    ctl_ok(&rt, wq("destroy", "wqself.wq"));
    finish(rt);
}

/// The last handle on a worker is dropped by its own handler: the drop cannot wait, so the
/// thread frees the worker itself when it exits.
#[test]
fn a_worker_dropped_on_its_own_thread_frees_itself() {
    let (rt, md) = setup("wq-letgo", "wqletgo", MIB);
    ctl_ok(&rt, wq("create-direct", "wqletgo").param("adopt", geom_host::CtlValue::Int(1)));
    let h = rt.open("wqletgo.wq", 1, 1, 0).unwrap();
    assert_eq!(h.write(4096, &[3; SECTOR]), Ok(SECTOR));
    ctl_ok(&rt, wq("letgo", "wqletgo.wq"));
    let p = probe("wqletgo");
    p.wait_for("the handler dropped", |s| s.dropped_on.len() == 1);
    p.snapshot(|s| {
        assert_eq!(s.stopped, 1);
        assert_eq!(s.dropped_on, ["wq0 wqletgo"], "dropped on the worker's own thread");
    });
    assert_eq!(h.write(4096, &[4; SECTOR]), Err(errno::ENXIO), "no worker left");
    assert_eq!(md.read_backing(4096, SECTOR), vec![3; SECTOR]);
    h.close().unwrap();
    finish(rt);
}

/// A handler holding bios on its own BioQueue when its worker stops: the queue goes with the
/// handler, and dropping a non-empty queue fails each request (with EIO, reported on the
/// console) rather than leaving its issuer waiting.
#[test]
fn a_queue_dropped_with_bios_on_it_fails_them() {
    const HELD: usize = 3; // fewer than ORDER_BATCH: the handler keeps them all
    let rt = runtime("wq-held");
    let md = rt.md_create(MdConfig::malloc(MIB).named("wqheld")).unwrap();
    rt.load::<Wq>().unwrap();
    ctl_ok(&rt, wq("create-sorted", "wqheld"));
    let h = Arc::new(rt.open("wqheld.wq", 1, 1, 0).unwrap());
    let writers: Vec<_> = (0..HELD)
        .map(|i| {
            let h = Arc::clone(&h);
            std::thread::spawn(move || h.write((i * SECTOR) as i64, &[7; SECTOR]))
        })
        .collect();
    let p = probe("wqheld");
    p.wait_for("every bio held by the handler", |s| s.entered == HELD as u32);
    ctl_ok(&rt, wq("destroy", "wqheld.wq").param("force", geom_host::CtlValue::Int(1)));
    for w in writers {
        assert_eq!(w.join().unwrap(), Err(errno::EIO));
    }
    assert_eq!(md.read_backing(0, HELD * SECTOR), vec![0; HELD * SECTOR], "nothing was written");
    let dropped = rt.console_log().iter().filter(|l| l.contains("dropped without being delivered")).count();
    assert_eq!(dropped, HELD, "each dropped request said so");
    p.snapshot(|s| assert!(s.batches.is_empty()));
    Arc::try_unwrap(h).ok().unwrap().close().unwrap();
    rt.settle();
    assert_eq!(rt.live_bios(), 0);
    finish(rt);
}
