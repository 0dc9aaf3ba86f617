//! # JOURNAL: a gjournal-compatible journaling class
//!
//! The counterpart of FreeBSD's gjournal(8) (`sys/geom/journal/g_journal.c`), written with
//! the safe API alone, and the showcase of the [`Worker`](geom_core::Worker): one kernel
//! thread per device serialises every request, sleeps on its own I/O, and never lets go of
//! an acknowledged write.
//!
//! A journaled device `<data>.journal` sits on a data provider and a journal provider (or
//! on one provider holding both: the journal at its end). Writes go to the journal first,
//! in records; the worker copies them home to the data provider later. After a crash, the
//! complete journals are replayed before the device appears, so the data provider is
//! always brought to a state the writer asked for.
//!
//! It speaks FreeBSD's language exactly:
//!
//! * **Label** ([`JournalMetadata`]): `GEOM::JOURNAL` version 0 with its MD5 hash, in the
//!   last sector of the data provider (and of the journal provider, when separate), byte for
//!   byte as gjournal writes it.
//! * **Journal format** ([`format`]): journal headers `GJHDR`, record headers `GJRHDR` with
//!   up to 20 entries and, with `-c`, the first half of an MD5 of the record's data; the
//!   ring of journals in `[jstart, jend)` and gjournal's rule for where a record may start.
//!   A journal written here is replayed by FreeBSD, and the other way round.
//! * **Verbs** ([`JournalVerb`]): `label` (`-c` checksums, `-f`, `-h` hard-coded names,
//!   `-s` the journal size for a single provider), `stop`/`destroy` (`-f` for open
//!   devices), `clear`, `dump`, `sync`.
//! * **Tasting**: the data and journal parts are found in any order; the device starts
//!   when both are there. A clean device starts a fresh journal; an unclean one replays.
//! * **Durability**: a write is acknowledged once its record is in the journal; `BIO_FLUSH`
//!   completes once every write acknowledged before it is on stable storage in a complete
//!   journal. (FreeBSD's gjournal refuses `BIO_FLUSH` and relies on UFS's journal switches;
//!   this class gives the flush its block-device meaning, on the same format.)
//!
//! The programming guide (crate `geom-guide`, chapter 9) walks through how the pieces fit; see [`engine`] for the worker's side.
//!
//! On the userland runtime:
//!
//! ```
//! use geom_class_journal::Journal;
//! use geom_host::{command, disk::MdConfig, Runtime};
//!
//! let rt = Runtime::default();
//! let data = rt.md_create(MdConfig::malloc(4 << 20)).unwrap(); // md0
//! let _journal = rt.md_create(MdConfig::malloc(64 << 20)).unwrap(); // md1
//! // gjournal label md0 md1: data on md0, the journal on md1.
//! let out = command::run::<Journal>(&rt, &["label", "md0", "md1"]);
//! assert_eq!(out.error, None);
//! rt.settle();
//! let h = rt.open("md0.journal", 1, 1, 0).unwrap();
//! h.write(8192, &[7; 4096]).unwrap();
//! h.flush().unwrap(); // now on stable storage, in the journal
//! assert_eq!(h.read(8192, 4096).unwrap(), vec![7; 4096]);
//! h.close().unwrap();
//! // Closed, the worker copies everything home and marks the device clean; gjournal sync
//! // returns once it has.
//! assert_eq!(command::run::<Journal>(&rt, &["sync"]).error, None);
//! assert_eq!(data.read_backing(8192, 4096), vec![7; 4096]);
//! assert!(rt.shutdown().is_empty());
//! ```
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod device;
pub mod engine;
pub mod extents;
pub mod format;
pub mod metadata;
pub mod recovery;
mod userland;

use alloc::ffi::CString;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ffi::CStr;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering::Relaxed};

use geom_core::{
    geom_class, Class, Cmd, Consumer, Dump, Errno, Gctl, Geom, GeomClass, GeomRef, IoCtx, Provider, Request, Result,
    Topology, Userland, VerbArgs, Verbs, XmlWriter,
};

pub use device::JournalGeom;
pub use metadata::{JournalMetadata, G_JOURNAL_MAGIC, G_JOURNAL_VERSION};

/// The JOURNAL class. Its state is gjournal's sysctls, shared with every device.
pub struct Journal {
    tun: Arc<Tunables>,
}

/// gjournal's knobs (`kern.geom.journal.*`).
pub(crate) struct Tunables {
    /// `debug`: how chatty the console is.
    debug: AtomicU32,
    /// `force_switch`: end the journal and copy home when the ring is this many percent full.
    force_switch: AtomicU32,
    /// `cache.limit`: bytes of journaled data kept in memory (beyond it, data is read back
    /// from the journal when needed).
    cache_limit: AtomicU64,
}

impl Tunables {
    /// Print a console line if `debug` is at least `level` (`GJ_DEBUG`).
    pub(crate) fn log(&self, level: u32, args: fmt::Arguments<'_>) {
        geom_core::print::debug("GEOM_JOURNAL", self.debug.load(Relaxed), level, args);
    }
}

/// What a device's softc and its worker share: counts the worker keeps, flags the event
/// thread sets.
#[derive(Default)]
pub(crate) struct Shared {
    /// Write opens of the provider (`acw`), kept by access.
    writers: AtomicI32,
    /// A provider under the device went away: the worker must not touch the disks.
    orphaned: AtomicBool,
    /// The device is being destroyed: no new opens.
    destroying: AtomicBool,
    stats: Stats,
}

/// What a device has done (`kern.geom.journal.stats.*`, per device).
#[derive(Default)]
pub(crate) struct Stats {
    records: AtomicU64,
    switches: AtomicU64,
    checkpoints: AtomicU64,
    copied: AtomicU64,
    replayed: AtomicU64,
    journal_full: AtomicU64,
    syncs: AtomicU64,
}

impl Journal {
    /// `sysctl kern.geom.journal.debug`.
    pub fn set_debug(&self, level: u32) {
        self.tun.debug.store(level, Relaxed);
    }

    /// `sysctl kern.geom.journal.force_switch` (percent, 1 to 100).
    pub fn set_force_switch(&self, percent: u32) {
        self.tun.force_switch.store(percent.clamp(1, 100), Relaxed);
    }

    /// `sysctl kern.geom.journal.cache.limit`: bytes of journaled data kept in memory.
    pub fn set_cache_limit(&self, bytes: u64) {
        self.tun.cache_limit.store(bytes, Relaxed);
    }
}

/// `gjournal clear`: remove the label from each provider.
#[derive(VerbArgs)]
pub struct Clear {
    /// Say what was done.
    #[opt(short = 'v')]
    pub verbose: bool,
    /// The providers.
    #[args(min = 1, name = "prov ...", dev)]
    pub providers: Vec<CString>,
}

/// `gjournal dump`: print each provider's label.
#[derive(VerbArgs)]
pub struct DumpLabel {
    /// The providers.
    #[args(min = 1, name = "prov ...", dev)]
    pub providers: Vec<CString>,
}

/// `gjournal label`: label a data provider and its journal (or one provider for both).
#[derive(VerbArgs)]
pub struct Label {
    /// Checksum every record (`GJ_FLAG_CHECKSUM`).
    #[opt(short = 'c')]
    pub checksum: bool,
    /// Label even if a file system is there.
    #[opt(short = 'f')]
    pub force: bool,
    /// Hard-code the providers' names in their labels.
    #[opt(short = 'h')]
    pub hardcode: bool,
    /// Journal size in bytes, for the single-provider layout (1 GiB by default).
    #[opt(short = 's', default = -1)]
    pub jsize: i64,
    /// Say what was done.
    #[opt(short = 'v')]
    pub verbose: bool,
    /// The data provider, then the journal provider if separate.
    #[args(min = 1, max = 2, name = "dataprov [jprov]", dev)]
    pub providers: Vec<CString>,
}

/// `gjournal stop` (and `destroy`): stop devices, marking them clean.
#[derive(VerbArgs)]
pub struct Stop {
    /// Even if open.
    #[opt(short = 'f')]
    pub force: bool,
    /// Say what was done.
    #[opt(short = 'v')]
    pub verbose: bool,
    /// The devices (data provider or `<name>.journal`).
    #[args(min = 1, name = "name ...", dev)]
    pub names: Vec<CString>,
}

/// `gjournal sync`: end every active journal and copy everything home now.
#[derive(VerbArgs)]
pub struct Sync {
    /// Say what was done.
    #[opt(short = 'v')]
    pub verbose: bool,
}

/// gjournal(8)'s verbs, as `lib/geom/journal` declares them (and the kernel's `destroy`).
#[derive(Verbs)]
pub enum JournalVerb {
    /// Clear metadata on the given providers.
    #[verb(local)]
    Clear(Clear),
    /// Same as stop.
    Destroy(Stop),
    /// Dump metadata stored on the given providers.
    #[verb(local)]
    Dump(DumpLabel),
    /// Label providers for a journaled device.
    #[verb(local, loadkld)]
    Label(Label),
    /// Stop journaled devices.
    Stop(Stop),
    /// Switch and copy every journal now.
    Sync(Sync),
}

#[geom_class]
impl GeomClass for Journal {
    const NAME: &'static CStr = c"JOURNAL";
    const VERSION: Option<u32> = Some(G_JOURNAL_VERSION);
    type Softc = JournalGeom;
    type Verb = JournalVerb;

    fn init(_topo: &mut Topology) -> Self {
        let tun = Tunables {
            debug: AtomicU32::new(0),
            force_switch: AtomicU32::new(70),
            cache_limit: AtomicU64::new(64 << 20),
        };
        Journal { tun: Arc::new(tun) }
    }

    fn taste(cls: &Class<Self>, topo: &mut Topology, pp: Provider) -> Option<GeomRef<Self>> {
        Journal::taste_provider(cls, topo, pp)
    }

    fn ctlreq(cls: &Class<Self>, topo: &mut Topology, req: &mut Gctl<'_>, verb: JournalVerb) {
        match verb {
            JournalVerb::Stop(s) | JournalVerb::Destroy(s) => Journal::ctl_stop(cls, topo, req, s),
            JournalVerb::Sync(_) => Journal::ctl_sync(cls, topo),
            JournalVerb::Clear(_) | JournalVerb::Dump(_) | JournalVerb::Label(_) => {
                req.error(format_args!("Unknown verb."))
            }
        }
    }

    fn destroy_geom(_cls: &Class<Self>, topo: &mut Topology, gp: GeomRef<Self>) -> Result<()> {
        match gp.softc() {
            Some(sc) => sc.destroy(topo, gp, false),
            None => Err(Errno::ENXIO),
        }
    }

    fn userland(u: &mut Userland<'_>, verb: JournalVerb) {
        match verb {
            JournalVerb::Label(l) => userland::label(u, l),
            JournalVerb::Clear(c) => userland::clear(u, c),
            JournalVerb::Dump(d) => userland::dump(u, d),
            other => u.error(format_args!("Unknown command: {}.", other.name())),
        }
    }
}

#[geom_class]
impl Geom for JournalGeom {
    type Class = Journal;

    fn start(&self, _cx: &IoCtx, req: Request) {
        match req.cmd() {
            // Everything that must see or change the journal goes to the worker, in order.
            Cmd::Read | Cmd::Write | Cmd::Flush => {
                if let Err(req) = self.post(req) {
                    req.fail(Errno::ENXIO);
                }
            }
            Cmd::GetAttr => {
                // UFS asks which provider holds its journal.
                let pp = req.provider();
                if let Err(req) = req.answer_attr_str(c"GJOURNAL::provider", pp.name()) {
                    req.fail(Errno::EOPNOTSUPP);
                }
            }
            _ => req.fail(Errno::EOPNOTSUPP),
        }
    }

    fn access(
        &self,
        topo: &mut Topology,
        _gp: GeomRef<Journal>,
        pp: Provider,
        dr: i32,
        dw: i32,
        de: i32,
    ) -> Result<()> {
        self.access(topo, pp, dr, dw, de)
    }

    fn orphan(&self, topo: &mut Topology, gp: GeomRef<Journal>, cp: Consumer) {
        self.lose(topo, gp, cp);
    }

    fn dumpconf(&self, _topo: &Topology, xml: &mut XmlWriter<'_>, what: Dump) {
        match what {
            Dump::Provider(_) => {}
            Dump::Consumer(cp) => self.dump_consumer(xml, cp),
            Dump::Geom => xml.element("ID", self.id()),
        }
    }
}
