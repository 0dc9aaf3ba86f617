//! One journaled device: its state (the softc), how taste assembles it from its data and
//! journal providers, how it starts its worker and publishes `<data>.journal`, and how it
//! goes away (stop, destroy, a lost provider); with the class's kernel-side verbs.

use alloc::ffi::CString;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, Ordering::Relaxed};

use geom_core::metadata::MetaError;
use geom_core::verbs::strip_dev_str;
use geom_core::{
    Class, Consumer, Errno, Gctl, GeomRef, PostError, Provider, Request, Slot, Topology, Worker, XmlWriter,
};

use crate::engine::{Config, Engine, Msg};
use crate::format::Area;
use crate::metadata::{JournalMetadata, GJ_TYPE_COMPLETE, GJ_TYPE_DATA, GJ_TYPE_JOURNAL};
use crate::{Journal, Shared, Stop, Tunables};

/// The state of one journaled device (`struct g_journal_softc`, the part the event thread
/// keeps; the journal itself belongs to the worker, [`Engine`]).
///
/// Invariants: `data` and `journal` hold the consumers attached (and opened r1w1e1) to the
/// providers of those roles, one consumer in both for the single-provider layout; `label`
/// is set once, when the data provider arrives; `worker` is set once, when both parts are
/// there and the journal is replayed, and `provider` is published right after it.
pub struct JournalGeom {
    id: u32,
    /// Roles present so far (`sc_type`).
    kinds: AtomicU8,
    label: spin::Once<JournalMetadata>,
    data: Slot<Consumer>,
    journal: Slot<Consumer>,
    worker: spin::Once<Worker<Engine>>,
    provider: Slot<Provider>,
    shared: Arc<Shared>,
    tun: Arc<Tunables>,
}

impl JournalGeom {
    /// The device id (shared by the labels of its providers).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Are both the data and the journal provider there?
    pub fn is_complete(&self) -> bool {
        self.kinds.load(Relaxed) == GJ_TYPE_COMPLETE
    }

    /// Records written to the journal so far.
    pub fn records(&self) -> u64 {
        self.shared.stats.records.load(Relaxed)
    }

    /// Journal switches so far.
    pub fn switches(&self) -> u64 {
        self.shared.stats.switches.load(Relaxed)
    }

    /// Times the label's journal start moved past data copied home.
    pub fn checkpoints(&self) -> u64 {
        self.shared.stats.checkpoints.load(Relaxed)
    }

    /// Bytes copied home from the journal.
    pub fn copied_bytes(&self) -> u64 {
        self.shared.stats.copied.load(Relaxed)
    }

    /// Entries replayed when the device started.
    pub fn replayed_entries(&self) -> u64 {
        self.shared.stats.replayed.load(Relaxed)
    }

    /// Times a write had to wait for room in the journal.
    pub fn journal_full(&self) -> u64 {
        self.shared.stats.journal_full.load(Relaxed)
    }

    /// Completed `gjournal sync` rounds and clean markings.
    pub fn syncs(&self) -> u64 {
        self.shared.stats.syncs.load(Relaxed)
    }

    /// Hand a request to the worker (never sleeps); gives it back if there is none.
    pub(crate) fn post(&self, req: Request) -> core::result::Result<(), Request> {
        match self.worker.get() {
            Some(w) => w.post_bio(req),
            None => Err(req),
        }
    }

    /// The name the device goes by: its data provider's.
    fn data_name(&self) -> String {
        self.data
            .get()
            .and_then(|cp| cp.provider())
            .map(|p| String::from(p.name().to_string_lossy()))
            .unwrap_or_default()
    }

    /// Open/close deltas on `<data>.journal` (`g_journal_access`). The providers below stay
    /// open while the device lives; what matters here is who writes: the first writer makes
    /// the next write mark the device dirty, the last one leaving lets the worker mark it
    /// clean.
    pub(crate) fn access(&self, topo: &mut Topology, pp: Provider, dr: i32, dw: i32, de: i32) -> Result<(), Errno> {
        if self.shared.destroying.load(Relaxed) && (dr > 0 || dw > 0 || de > 0) {
            return Err(Errno::ENXIO);
        }
        let (_, w, _) = pp.access_counts(topo);
        let writers = w + dw;
        self.shared.writers.store(writers, Relaxed);
        if w > 0 && writers == 0 {
            if let Some(worker) = self.worker.get() {
                // A full mailbox means the worker is busy and will reach idle anyway.
                let _ = worker.post(Msg::Closed);
            }
        }
        Ok(())
    }

    /// A provider under the device went away (`g_journal_orphan`): the worker stops without
    /// touching the disks, and the device goes.
    pub(crate) fn lose(&self, topo: &mut Topology, gp: GeomRef<Journal>, cp: Consumer) {
        let pname = cp.provider().map(|p| String::from(p.name().to_string_lossy())).unwrap_or_default();
        self.tun.log(0, format_args!("Lost provider {pname}."));
        self.shared.orphaned.store(true, Relaxed);
        self.teardown(topo, gp);
    }

    /// Stop the worker (a clean stop, unless orphaned: everything home, the label clean),
    /// then take the device apart.
    fn teardown(&self, topo: &mut Topology, gp: GeomRef<Journal>) {
        self.shared.destroying.store(true, Relaxed);
        if let Some(pp) = self.provider.take(topo) {
            pp.set_error(topo, Errno::ENXIO);
        }
        if let Some(w) = self.worker.get() {
            w.stop(topo);
        }
        self.data.set(topo, None);
        self.journal.set(topo, None);
        gp.wither_close(topo, Errno::ENXIO);
    }

    /// Destroy the device (`g_journal_destroy`): `EBUSY` while open unless forced.
    pub(crate) fn destroy(&self, topo: &mut Topology, gp: GeomRef<Journal>, force: bool) -> Result<(), Errno> {
        if let Some(pp) = self.provider.get() {
            let (r, w, e) = pp.access_counts(topo);
            if (r, w, e) != (0, 0, 0) && !force {
                let name = pp.name().to_string_lossy();
                self.tun.log(1, format_args!("Device {name} is still open (r{r}w{w}e{e})."));
                return Err(Errno::EBUSY);
            }
        }
        let name = self.data_name();
        self.teardown(topo, gp);
        self.tun.log(0, format_args!("Journal {name} stopped."));
        Ok(())
    }

    /// dumpconf for a consumer: its role, and for the journal the area.
    pub(crate) fn dump_consumer(&self, xml: &mut XmlWriter<'_>, cp: Consumer) {
        let is_data = self.data.get() == Some(cp);
        let is_journal = self.journal.get() == Some(cp);
        let role = match (is_data, is_journal) {
            (true, true) => "Data,Journal",
            (true, false) => "Data",
            (false, true) => "Journal",
            (false, false) => return,
        };
        xml.element("Role", role);
        if is_journal {
            if let Some(md) = self.label.get() {
                xml.element("Jstart", md.jstart);
                xml.element("Jend", md.jend);
            }
        }
    }

    /// Both parts are here: replay, start the worker, publish the provider. On failure the
    /// caller destroys the device.
    fn run(&self, cls: &Class<Journal>, topo: &mut Topology, gp: GeomRef<Journal>) -> Result<(), String> {
        let (Some(dcp), Some(jcp), Some(md)) = (self.data.get(), self.journal.get(), self.label.get()) else {
            return Err(String::from("incomplete"));
        };
        let (Some(dpp), Some(jpp)) = (dcp.provider(), jcp.provider()) else {
            return Err(String::from("provider gone"));
        };
        let name = String::from(dpp.name().to_string_lossy());
        let ss = u64::from(dpp.sectorsize());
        if dpp.sectorsize() != jpp.sectorsize() {
            return Err(format!("Not equal sector sizes of {name} and its journal."));
        }
        let jsize = jpp.mediasize() as u64;
        let area = Area::new(md.jstart, md.jend, ss, geom_core::maxphys())
            .filter(|a| a.jend <= jsize.saturating_sub(ss))
            .ok_or_else(|| format!("Journal area of {name} is misplaced or too small."))?;
        let dprov_size = dpp.mediasize() as u64;
        let data_size = if dcp == jcp { md.jstart } else { dprov_size - ss };
        if data_size == 0 || data_size % ss != 0 {
            return Err(format!("No room for data on {name}."));
        }
        let cfg = Config {
            data: dcp,
            journal: jcp,
            data_size,
            dprov_size,
            sectorsize: ss,
            area,
            id: md.id,
            kind: md.kind,
            checksum: md.has_checksum(),
            hardcoded: md.provider.clone(),
            maxphys: geom_core::maxphys(),
        };
        let (shared, tun) = (self.shared.clone(), cls.tun.clone());
        let md = md.clone();
        let engine = topo
            .unlocked(|cx| Engine::start(cx, cfg, &md, shared, tun))
            .map_err(|e| format!("Cannot start journal {name} (error={}).", e.get()))?;
        let tname = CString::new(format!("g_journal {name}")).unwrap_or_default();
        let worker = Worker::spawn(topo, &tname, engine)
            .map_err(|e| format!("Cannot create worker thread for {name}.journal (error={}).", e.get()))?;
        self.worker.call_once(|| worker);
        let pname = CString::new(format!("{name}.journal")).map_err(|_| String::from("bad name"))?;
        let pp = gp.new_provider(topo, &pname);
        pp.set_geometry(topo, data_size as i64, ss as u32, 0, 0);
        self.provider.set(topo, Some(pp));
        pp.set_ready(topo);
        Ok(())
    }
}

impl Journal {
    /// `g_journal_taste`: read the label, refuse what does not belong, and add the provider
    /// to its device (made on the first part seen).
    pub(crate) fn taste_provider(cls: &Class<Journal>, topo: &mut Topology, pp: Provider) -> Option<GeomRef<Journal>> {
        if pp.class_name(topo) == <Journal as geom_core::GeomClass>::NAME {
            return None;
        }
        let pname = String::from(pp.name().to_string_lossy());
        cls.tun.log(2, format_args!("Tasting {pname}."));
        let md = match cls.taste_metadata::<JournalMetadata>(topo, pp) {
            Ok(md) => md,
            Err(MetaError::TooNew(_)) => {
                cls.tun.log(0, format_args!("Kernel module is too old to handle metadata from {pname}."));
                return None;
            }
            Err(MetaError::Invalid(why)) => {
                cls.tun.log(0, format_args!("Invalid metadata on {pname} ({why})."));
                return None;
            }
            Err(_) => return None,
        };
        if !md.provider.is_empty() && strip_dev_str(&md.provider) != strip_dev_str(&pname) {
            return None;
        }
        if md.provsize != 0 && md.provsize != pp.mediasize() as u64 {
            return None;
        }
        Journal::create(cls, topo, pp, &md)
    }

    /// `g_journal_create`: join the device `md` names (or make it), attach `pp` in the roles
    /// its label gives, and start the device once complete.
    fn create(
        cls: &Class<Journal>,
        topo: &mut Topology,
        pp: Provider,
        md: &JournalMetadata,
    ) -> Option<GeomRef<Journal>> {
        let tun = &cls.tun;
        let pname = String::from(pp.name().to_string_lossy());
        let existing = cls.geoms(topo).find(|g| !g.is_withering(topo) && g.softc().is_some_and(|sc| sc.id == md.id));
        if let Some(g) = existing {
            if g.softc().is_some_and(|sc| sc.kinds.load(Relaxed) & md.kind != 0) {
                tun.log(1, format_args!("Journal device {} already configured.", md.id));
                return None;
            }
        }
        if md.kind & GJ_TYPE_DATA != 0 {
            tun.log(0, format_args!("Journal {}: {pname} contains data.", md.id));
        }
        if md.kind & GJ_TYPE_JOURNAL != 0 {
            tun.log(0, format_args!("Journal {}: {pname} contains journal.", md.id));
        }
        let gp = match existing {
            Some(gp) => gp,
            None => {
                let name = CString::new(format!("gjournal {}", md.id)).ok()?;
                let sc = JournalGeom {
                    id: md.id,
                    kinds: AtomicU8::new(0),
                    label: spin::Once::new(),
                    data: Slot::empty(),
                    journal: Slot::empty(),
                    worker: spin::Once::new(),
                    provider: Slot::empty(),
                    shared: Arc::new(Shared::default()),
                    tun: tun.clone(),
                };
                cls.new_geom(topo, &name, sc)
            }
        };
        let sc = gp.softc()?;
        let cp = gp.new_consumer(topo);
        let attached = cp.attach(topo, pp).and_then(|()| cp.access(topo, 1, 1, 1).inspect_err(|_| cp.detach(topo)));
        if let Err(e) = attached {
            tun.log(0, format_args!("Cannot access {pname} (error={}).", e.get()));
            cp.destroy(topo);
            if gp.consumers(topo).next().is_none() {
                gp.wither(topo, Errno::ENXIO);
            }
            return None;
        }
        if md.kind & GJ_TYPE_DATA != 0 {
            sc.label.call_once(|| md.clone());
            sc.data.set(topo, Some(cp));
        }
        if md.kind & GJ_TYPE_JOURNAL != 0 {
            sc.journal.set(topo, Some(cp));
        }
        sc.kinds.fetch_or(md.kind, Relaxed);
        if !sc.is_complete() {
            return Some(gp);
        }
        if let Err(why) = sc.run(cls, topo, gp) {
            tun.log(0, format_args!("{why}"));
            sc.teardown(topo, gp);
            return None;
        }
        Some(gp)
    }

    /// The live, complete device named by its data provider or by `<data>.journal`
    /// (`g_journal_find_device`).
    fn find_device(cls: &Class<Journal>, topo: &Topology, name: &str) -> Option<GeomRef<Journal>> {
        let name = strip_dev_str(name);
        cls.geoms(topo).find(|g| {
            let Some(sc) = g.softc() else { return false };
            if g.is_withering(topo) || !sc.is_complete() || sc.shared.destroying.load(Relaxed) {
                return false;
            }
            let pname = sc.provider.get().map(|p| String::from(p.name().to_string_lossy()));
            sc.data_name() == name || pname.as_deref() == Some(name)
        })
    }

    /// `gjournal stop` / `destroy`.
    pub(crate) fn ctl_stop(cls: &Class<Journal>, topo: &mut Topology, req: &mut Gctl<'_>, s: Stop) {
        for name in &s.names {
            let name = name.to_string_lossy();
            let Some(gp) = Journal::find_device(cls, topo, &name) else {
                return req.error(format_args!("No such device: {name}."));
            };
            let Some(sc) = gp.softc() else { return };
            let pname = sc.provider.get().map(|p| String::from(p.name().to_string_lossy())).unwrap_or_default();
            if let Err(e) = sc.destroy(topo, gp, s.force) {
                return req.error(format_args!("Cannot destroy device {pname} (error={}).", e.get()));
            }
        }
    }

    /// `gjournal sync`: every device ends its journal and copies everything home; returns
    /// when all have (`g_journal_ctl_sync` waits for the switcher the same way).
    pub(crate) fn ctl_sync(cls: &Class<Journal>, topo: &mut Topology) {
        let devices: Vec<GeomRef<Journal>> = cls.geoms(topo).filter(|g| !g.is_withering(topo)).collect();
        let mut waiting = Vec::new();
        for gp in devices {
            let Some(sc) = gp.softc() else { continue };
            let Some(w) = sc.worker.get() else { continue };
            let before = sc.shared.stats.syncs.load(Relaxed);
            let mut msg = Msg::Sync;
            // A full mailbox drains quickly: the worker is running.
            for _ in 0..1000 {
                match w.post(msg) {
                    Ok(()) => {
                        waiting.push((sc.shared.clone(), before));
                        break;
                    }
                    Err(PostError::Full(m)) => {
                        msg = m;
                        topo.unlocked(|cx| cx.pause(1));
                    }
                    Err(PostError::Stopped(_)) => break,
                }
            }
        }
        topo.unlocked(|cx| {
            for (shared, before) in waiting {
                while shared.stats.syncs.load(Relaxed) == before && !shared.destroying.load(Relaxed) {
                    cx.pause(2);
                }
            }
        });
    }
}
