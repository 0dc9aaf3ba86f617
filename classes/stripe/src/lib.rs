//! # STRIPE: a gstripe-compatible striping class
//!
//! The counterpart of FreeBSD's gstripe(8) (`sys/geom/stripe/g_stripe.c`), written with the
//! safe API alone. A stripe device `stripe/<name>` deals its address space out to two or
//! more components in stripes of a power-of-two size: stripe `k` lives on component
//! `k mod N`. Requests are split along that map; every component is read and written in
//! parallel.
//!
//! It speaks FreeBSD's language exactly:
//!
//! * **On-disk label** ([`StripeMetadata`]): `GEOM::STRIPE` version 3 in the last sector of
//!   every component, byte for byte as gstripe writes it; versions 0 to 2 are still read.
//!   Arrays labeled on FreeBSD assemble here, and the other way round.
//! * **Verbs** ([`StripeVerb`]): `label` (`-h` to hard-code the provider names, `-s` the
//!   stripe size, 64 KiB by default), `create` (no label: gone when destroyed), `destroy` and
//!   `stop` (`-f` for open devices), `clear`, `dump`. `label`, `clear` and `dump` run in
//!   userland ([`GeomClass::userland`]) and write the components' last sectors; the kernel
//!   picks the labels up by tasting, as on FreeBSD.
//! * **Tasting**: a device is assembled from its labels alone, its components arriving in
//!   any order; its provider appears when the last one does. A label hard-coded for another
//!   provider, written for a provider of another size, or whose id disagrees with the
//!   assembled device is refused with a console line. A component that goes away (orphan) or
//!   is written behind the device's back (spoiled) stops the device.
//! * **Two I/O strategies**, as gstripe chooses them: "economic" (the default), one request
//!   per stripe piece straight into the caller's buffer; and "fast"
//!   ([`Stripe::set_fast`], gstripe's `kern.geom.stripe.fast`), one request per component
//!   for requests covering at least one stripe on each, the pieces gathered in a bounce
//!   buffer, within a memory budget (`kern.geom.stripe.maxmem`, [`Stripe::set_maxmem`]); when
//!   the budget or memory runs out it falls back to economic and counts it
//!   ([`Stripe::fast_failed`]). FLUSH goes to every component; GETATTR is refused
//!   (`EOPNOTSUPP`) as gstripe refuses it.
//! * **dumpconf**: `ID`, `Stripesize`, `Type` (`AUTOMATIC`/`MANUAL`), `Status` (`Total=N,
//!   Online=M`) and `State` (`UP`/`DOWN`) per device, `Number` per component.
//!
//! On the userland runtime:
//!
//! ```
//! use geom_class_stripe::Stripe;
//! use geom_host::{command, disk::MdConfig, Runtime};
//!
//! let rt = Runtime::default();
//! let disks: Vec<_> = (0..3).map(|_| rt.md_create(MdConfig::malloc(1 << 20)).unwrap()).collect(); // md0..md2
//! // gstripe label -s 16k st0 md0 md1 md2: userland writes the labels, the kernel tastes them.
//! let out = command::run::<Stripe>(&rt, &["label", "-s", "16k", "st0", "md0", "md1", "md2"]);
//! assert_eq!(out.error, None);
//! rt.settle();
//! let h = rt.open("stripe/st0", 1, 1, 0).unwrap();
//! // 3 x (1 MiB - one sector for the label, rounded down to 16 KiB).
//! assert_eq!(h.mediasize(), 3 * (1024 - 16) * 1024);
//! h.write(16 * 1024, &[7; 512]).unwrap(); // the second stripe: md1's first
//! h.close().unwrap();
//! assert_eq!(disks[1].read_backing(0, 512), vec![7; 512]);
//! assert!(rt.shutdown().is_empty());
//! ```
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod device;
mod io;
pub mod map;
pub mod metadata;
mod userland;

use alloc::ffi::CString;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ffi::CStr;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};

use geom_core::{
    geom_class, Children, Class, Consumer, Dump, Errno, Gctl, Geom, GeomClass, GeomRef, IoCtx, Provider, Request,
    Result, Topology, Userland, VerbArgs, Verbs, XmlWriter,
};

pub use device::{Kind, StripeGeom};
pub use metadata::{StripeMetadata, G_STRIPE_MAGIC, G_STRIPE_VERSION};

/// The STRIPE class. Its state is gstripe's sysctls, shared with every device.
pub struct Stripe {
    tun: Arc<Tunables>,
}

/// gstripe's knobs (`kern.geom.stripe.*`) and the fast mode's memory budget.
pub(crate) struct Tunables {
    /// `debug`: how chatty the console is (0: device events only).
    debug: AtomicU32,
    /// `fast`: gather each component's pieces into one request.
    fast: AtomicBool,
    /// `maxmem`: most bytes of bounce buffers fast mode may hold at once.
    maxmem: AtomicU64,
    /// Bytes of bounce buffers held now.
    in_use: AtomicU64,
    /// `fast_failed`: times fast mode fell back to economic for want of memory.
    fast_failed: AtomicU32,
}

impl Tunables {
    /// Print a console line if `debug` is at least `level` (`G_STRIPE_DEBUG`).
    pub(crate) fn log(&self, level: u32, args: fmt::Arguments<'_>) {
        geom_core::print::debug("GEOM_STRIPE", self.debug.load(Relaxed), level, args);
    }

    /// Take `bytes` from the fast mode's budget, if there is that much left.
    pub(crate) fn reserve(&self, bytes: u64) -> bool {
        let max = self.maxmem.load(Relaxed);
        self.in_use.fetch_update(Relaxed, Relaxed, |used| used.checked_add(bytes).filter(|&n| n <= max)).is_ok()
    }

    /// Give `bytes` back to the budget.
    pub(crate) fn release(&self, bytes: u64) {
        self.in_use.fetch_sub(bytes, Relaxed);
    }
}

impl Stripe {
    /// `sysctl kern.geom.stripe.fast`: use the gathering mode for large requests. Devices
    /// published while it is on do not take unmapped requests.
    pub fn set_fast(&self, on: bool) {
        self.tun.fast.store(on, Relaxed);
    }

    /// `kern.geom.stripe.fast_failed`: how often fast mode fell back to economic.
    pub fn fast_failed(&self) -> u32 {
        self.tun.fast_failed.load(Relaxed)
    }

    /// `kern.geom.stripe.maxmem`: the fast mode's memory budget (a loader tunable on
    /// FreeBSD; `maxphys` × 100 by default).
    pub fn set_maxmem(&self, bytes: u64) {
        self.tun.maxmem.store(bytes, Relaxed);
    }

    /// Bytes of bounce buffers fast mode holds now.
    pub fn fast_memory_in_use(&self) -> u64 {
        self.tun.in_use.load(Relaxed)
    }

    /// `sysctl kern.geom.stripe.debug`.
    pub fn set_debug(&self, level: u32) {
        self.tun.debug.store(level, Relaxed);
    }
}

/// `gstripe clear`: remove the label from each provider.
#[derive(VerbArgs)]
pub struct Clear {
    /// Say what was done.
    #[opt(short = 'v')]
    pub verbose: bool,
    /// The providers.
    #[args(min = 1, name = "prov ...", dev)]
    pub providers: Vec<CString>,
}

/// `gstripe create`: stripe the providers without labels (the device lasts until destroyed).
#[derive(VerbArgs)]
pub struct Create {
    /// Stripe size in bytes, a power of two.
    #[opt(short = 's', default = 65536)]
    pub stripesize: i64,
    /// Say what was done.
    #[opt(short = 'v')]
    pub verbose: bool,
    /// The device's name, then its providers in order.
    #[args(min = 3, name = "name prov prov ...")]
    pub args: Vec<CString>,
}

/// `gstripe destroy` (and `stop`): take devices down.
#[derive(VerbArgs)]
pub struct Destroy {
    /// Even if open.
    #[opt(short = 'f')]
    pub force: bool,
    /// Say what was done.
    #[opt(short = 'v')]
    pub verbose: bool,
    /// The devices.
    #[args(min = 1, name = "name ...", dev)]
    pub names: Vec<CString>,
}

/// `gstripe dump`: print each provider's label.
#[derive(VerbArgs)]
pub struct DumpLabel {
    /// The providers.
    #[args(min = 1, name = "prov ...", dev)]
    pub providers: Vec<CString>,
}

/// `gstripe label`: write labels on the providers; the kernel assembles the device.
#[derive(VerbArgs)]
pub struct Label {
    /// Hard-code the providers' names in their labels.
    #[opt(short = 'h')]
    pub hardcode: bool,
    /// Stripe size in bytes, a power of two.
    #[opt(short = 's', default = 65536)]
    pub stripesize: i64,
    /// Say what was done.
    #[opt(short = 'v')]
    pub verbose: bool,
    /// The device's name, then its providers in order.
    #[args(min = 3, name = "name prov prov ...")]
    pub args: Vec<CString>,
}

/// gstripe(8)'s verbs, as `lib/geom/stripe` declares them.
#[derive(Verbs)]
pub enum StripeVerb {
    /// Clear metadata on the given providers.
    #[verb(local)]
    Clear(Clear),
    /// Create a striped device without on-disk metadata.
    #[verb(loadkld)]
    Create(Create),
    /// Destroy striped devices.
    Destroy(Destroy),
    /// Dump metadata stored on the given providers.
    #[verb(local)]
    Dump(DumpLabel),
    /// Label providers for a striped device.
    #[verb(local, loadkld)]
    Label(Label),
    /// Same as destroy.
    Stop(Destroy),
}

#[geom_class]
impl GeomClass for Stripe {
    const NAME: &'static CStr = c"STRIPE";
    const VERSION: Option<u32> = Some(G_STRIPE_VERSION);
    type Softc = StripeGeom;
    type Verb = StripeVerb;

    fn init(_topo: &mut Topology) -> Self {
        let tun = Tunables {
            debug: AtomicU32::new(0),
            fast: AtomicBool::new(false),
            maxmem: AtomicU64::new(geom_core::maxphys() * 100),
            in_use: AtomicU64::new(0),
            fast_failed: AtomicU32::new(0),
        };
        Stripe { tun: Arc::new(tun) }
    }

    fn taste(cls: &Class<Self>, topo: &mut Topology, pp: Provider) -> Option<GeomRef<Self>> {
        Stripe::taste_provider(cls, topo, pp)
    }

    fn ctlreq(cls: &Class<Self>, topo: &mut Topology, req: &mut Gctl<'_>, verb: StripeVerb) {
        match verb {
            StripeVerb::Create(c) => Stripe::ctl_create(cls, topo, req, c),
            StripeVerb::Destroy(d) | StripeVerb::Stop(d) => Stripe::ctl_destroy(cls, topo, req, d),
            // Userland verbs never reach the kernel (the framework refuses them).
            StripeVerb::Clear(_) | StripeVerb::Dump(_) | StripeVerb::Label(_) => {
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

    fn userland(u: &mut Userland<'_>, verb: StripeVerb) {
        match verb {
            StripeVerb::Label(l) => userland::label(u, l),
            StripeVerb::Clear(c) => userland::clear(u, c),
            StripeVerb::Dump(d) => userland::dump(u, d),
            other => u.error(format_args!("Unknown command: {}.", other.name())),
        }
    }
}

#[geom_class]
impl Geom for StripeGeom {
    type Class = Stripe;

    #[inline]
    fn start(&self, cx: &IoCtx, req: Request) {
        self.start_request(cx, req);
    }

    fn done(&self, _cx: &IoCtx, children: &mut Children<'_>) {
        self.fast_done(children);
    }

    fn access(&self, topo: &mut Topology, gp: GeomRef<Stripe>, pp: Provider, dr: i32, dw: i32, de: i32) -> Result<()> {
        StripeGeom::access(self, topo, gp, pp, dr, dw, de)
    }

    fn orphan(&self, topo: &mut Topology, gp: GeomRef<Stripe>, cp: Consumer) {
        self.lose(topo, gp, cp);
    }

    fn spoiled(&self, topo: &mut Topology, gp: GeomRef<Stripe>, cp: Consumer) {
        self.lose(topo, gp, cp);
    }

    fn dumpconf(&self, _topo: &Topology, xml: &mut XmlWriter<'_>, what: Dump) {
        match what {
            Dump::Provider(_) => {}
            Dump::Consumer(cp) => xml.element("Number", cp.index()),
            Dump::Geom => {
                xml.element("ID", self.id);
                xml.element("Stripesize", self.stripesize());
                xml.element(
                    "Type",
                    match self.kind {
                        Kind::Automatic => "AUTOMATIC",
                        Kind::Manual => "MANUAL",
                    },
                );
                xml.element("Status", format_args!("Total={}, Online={}", self.ndisks(), self.nvalid()));
                let up = self.provider.get().is_some_and(|pp| pp.error() == 0);
                xml.element("State", if up { "UP" } else { "DOWN" });
            }
        }
    }
}
