//@ imports
use std::ffi::{CStr, CString};

use geom_core::metadata::{MetaError, MetaReader, MetaWriter, Metadata};
use geom_core::{
    geom_class, Class, Consumer, Errno, Fanout, Gctl, Geom, GeomClass, GeomRef, IoCtx, Provider, Request, Topology,
    Userland, VerbArgs, Verbs,
};
//@ label

/// The label GUIDEPT keeps in the last sector of a provider: after the magic and the version,
/// the size of the provider it was written for.
#[derive(Debug, PartialEq)]
struct PtLabel {
    provsize: u64,
}

impl Metadata for PtLabel {
    const MAGIC: &'static [u8] = b"GEOM::GUIDEPT";
    const VERSION: u32 = 1;

    fn encode(&self, w: &mut MetaWriter<'_>) -> Result<(), MetaError> {
        w.u64(self.provsize)
    }

    fn decode(_version: u32, r: &mut MetaReader<'_>) -> Result<Self, MetaError> {
        let provsize = r.u64()?;
        if provsize == 0 {
            return Err(MetaError::Invalid("provider size is zero"));
        }
        Ok(PtLabel { provsize })
    }
}
//@ verbs

/// What geom(8)'s library for this class sends as "version".
const PT_VERSION: u32 = 1;

/// The providers a userland verb works on.
#[derive(VerbArgs)]
struct Providers {
    /// Say what was done.
    #[opt(short = 'v')]
    verbose: bool,
    /// The providers.
    #[args(min = 1, name = "prov ...", dev)]
    providers: Vec<CString>,
}

/// The devices to stop.
#[derive(VerbArgs)]
struct Stop {
    /// Stop a device even if it is open.
    #[opt(short = 'f')]
    force: bool,
    /// Say what was done.
    #[opt(short = 'v')]
    verbose: bool,
    /// The devices.
    #[args(min = 1, name = "name ...", dev)]
    names: Vec<CString>,
}

/// GUIDEPT's verbs, as `geom guidept help` lists them.
#[derive(Verbs)]
enum PtVerb {
    /// Write a label on each provider; the kernel finds it by tasting.
    #[verb(local, loadkld)]
    Label(Providers),
    /// Remove the label from each provider.
    #[verb(local)]
    Clear(Providers),
    /// Take devices down (their labels stay).
    Stop(Stop),
}
//@ softc

/// The class's own state: it has none.
struct Pt;

/// One `<provider>.pt` device: the softc.
struct PtGeom {
    /// The consumer attached to the provider below.
    cp: Consumer,
}
//@ geom

#[geom_class]
impl Geom for PtGeom {
    type Class = Pt;

    fn start(&self, cx: &IoCtx, req: Request) {
        // One clone, same offset and length, sent to the provider below; the framework
        // delivers `req` when the clone comes back (g_clone_bio + g_std_done).
        let (offset, length) = (req.offset(), req.length());
        let mut f = Fanout::new(req);
        match f.add(cx, self.cp, offset, length, 0) {
            Ok(()) => f.send(),
            Err(e) => f.abort(e), // ENOMEM: GEOM sends the request again later
        }
    }

    fn access(
        &self,
        topo: &mut Topology,
        _gp: GeomRef<Pt>,
        _pp: Provider,
        dr: i32,
        dw: i32,
        de: i32,
    ) -> Result<(), Errno> {
        // Whoever opens md0.pt opens md0 as far.
        self.cp.access(topo, dr, dw, de)
    }
}
//@ impl_line

#[geom_class]
impl GeomClass for Pt {
//@ class_items
    const NAME: &'static CStr = c"GUIDEPT";
    const VERSION: Option<u32> = Some(PT_VERSION);
    type Softc = PtGeom;
    type Verb = PtVerb;

    fn init(_topo: &mut Topology) -> Self {
        Pt
    }
//@ taste

    fn taste(cls: &Class<Self>, topo: &mut Topology, pp: Provider) -> Option<GeomRef<Self>> {
        // Our own providers carry no labels of ours.
        if pp.class_name(topo) == Self::NAME {
            return None;
        }
        // Read and check the label (a scratch consumer, opened for reading, the topology
        // lock dropped around the read).
        let label = cls.taste_metadata::<PtLabel>(topo, pp).ok()?;
        let pname = pp.name().to_str().ok()?;
        if label.provsize != pp.mediasize() as u64 {
            geom_core::kprintln!("GUIDEPT: label on {pname} is for another size; ignored.");
            return None;
        }
        let name = CString::new(format!("{pname}.pt")).ok()?;
        if cls.geom_by_name(topo, &name).is_some() {
            return None;
        }
        // The geom, its consumer attached to pp, and the softc holding that consumer.
        let gp = cls
            .new_geom_with(topo, &name, |topo, gp| {
                let cp = gp.new_consumer(topo);
                cp.set_direct(topo);
                if let Err(e) = cp.attach(topo, pp) {
                    cp.destroy(topo);
                    return Err(e);
                }
                Ok(PtGeom { cp })
            })
            .ok()?;
        // The provider: everything but the label's sector.
        let newpp = gp.new_provider(topo, &name);
        let size = pp.mediasize() - i64::from(pp.sectorsize());
        newpp.set_geometry(topo, size, pp.sectorsize(), pp.stripesize(), pp.stripeoffset());
        newpp.set_direct(topo);
        newpp.set_ready(topo);
        Some(gp)
    }
//@ ctlreq

    fn ctlreq(cls: &Class<Self>, topo: &mut Topology, req: &mut Gctl<'_>, verb: PtVerb) {
        let PtVerb::Stop(s) = verb else {
            // label and clear run in userland; the framework never passes them here.
            return req.error(format_args!("Unknown verb."));
        };
        for name in &s.names {
            let Some(gp) = cls.geom_by_name(topo, name) else {
                return req.error(format_args!("Device {} is invalid.", name.to_string_lossy()));
            };
            if let Err(e) = stop(topo, gp, s.force) {
                let name = name.to_string_lossy();
                return req.error(format_args!("Cannot stop device {name} (error={}).", e.get()));
            }
        }
    }

    fn destroy_geom(_cls: &Class<Self>, topo: &mut Topology, gp: GeomRef<Self>) -> Result<(), Errno> {
        // The class is being unloaded: refuse while a device is open.
        stop(topo, gp, false)
    }
//@ userland

    fn userland(u: &mut Userland<'_>, verb: PtVerb) {
        match verb {
            PtVerb::Label(l) => {
                for p in &l.providers {
                    let pname = p.to_string_lossy();
                    let stored = u.mediasize(p).and_then(|size| {
                        let label = PtLabel { provsize: size as u64 };
                        u.store(p, &label).map_err(|e| e.errno())
                    });
                    if let Err(e) = stored {
                        u.not_fully_done(format_args!("Can't store metadata on {pname}: {}.", e.strerror()));
                    } else if l.verbose {
                        u.print(format_args!("Metadata value stored on {pname}.\n"));
                    }
                }
            }
            PtVerb::Clear(c) => {
                for p in &c.providers {
                    let pname = p.to_string_lossy();
                    if let Err(e) = u.metadata_clear(p, Some(PtLabel::MAGIC)) {
                        u.not_fully_done(format_args!("Can't clear metadata on {pname}: {}.", e.strerror()));
                    } else if c.verbose {
                        u.print(format_args!("Metadata cleared on {pname}.\n"));
                    }
                }
            }
            // A kernel verb: geom(8) sends it to ctlreq and never runs it here.
            PtVerb::Stop(_) => u.error(format_args!("Unknown command: stop.")),
        }
    }
//@ class_end
}
//@ stop

/// Wither a device: `EBUSY` while it is open, unless forced.
fn stop(topo: &mut Topology, gp: GeomRef<Pt>, force: bool) -> Result<(), Errno> {
    if !force && gp.providers(topo).any(|pp| pp.is_open(topo)) {
        return Err(Errno::EBUSY);
    }
    gp.wither(topo, Errno::ENXIO);
    Ok(())
}
