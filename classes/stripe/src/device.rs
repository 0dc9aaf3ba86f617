//! One stripe device: its state (the softc), how it is created, gains and loses components,
//! comes up, and is destroyed; and the class's taste and kernel-side verbs that drive that.

use alloc::boxed::Box;
use alloc::ffi::CString;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

use geom_core::metadata::{self, name_field, MetaError};
use geom_core::verbs::strip_dev_str;
use geom_core::{Class, Consumer, Errno, Gctl, GeomRef, Provider, Slot, Topology};

use crate::map::{lcm, Geometry};
use crate::metadata::StripeMetadata;
use crate::{Create, Destroy, Stripe, Tunables};

/// How a device came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `gstripe create`: no label on disk; it lasts until destroyed or the machine stops.
    Manual,
    /// `gstripe label`: assembled by taste from the labels on its components.
    Automatic,
}

/// The state of one stripe device (`struct g_stripe_softc`).
///
/// Invariants: `disks[i]` holds the consumer attached to component `i` while it is attached
/// (slots change only under the topology lock); `provider` holds the device's provider while
/// it is published, which is only while every slot is full.
pub struct StripeGeom {
    pub(crate) kind: Kind,
    pub(crate) id: u32,
    pub(crate) geometry: Geometry,
    pub(crate) disks: Box<[Slot<Consumer>]>,
    /// Components lost (orphaned or destroyed) while still open: their consumers go when
    /// closed (the C class marks them through `cp->private`).
    removed: Box<[AtomicBool]>,
    pub(crate) provider: Slot<Provider>,
    pub(crate) tun: Arc<Tunables>,
}

impl StripeGeom {
    /// How the device was made.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Its id (shared by the labels of its components).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Its stripe size in bytes.
    pub fn stripesize(&self) -> u32 {
        1 << self.geometry.bits
    }

    /// How many components it has.
    pub fn ndisks(&self) -> u32 {
        self.geometry.ndisks
    }

    /// How many components are attached.
    pub fn nvalid(&self) -> u32 {
        self.disks.iter().filter(|d| !d.is_empty()).count() as u32
    }

    /// Attach `pp` as component `no` (`g_stripe_add_disk`), and publish the device once every
    /// component is there.
    pub(crate) fn add_disk(
        &self,
        topo: &mut Topology,
        gp: GeomRef<Stripe>,
        pp: Provider,
        no: u32,
    ) -> Result<(), Errno> {
        let slot = self.disks.get(no as usize).ok_or(Errno::EINVAL)?;
        if !slot.is_empty() {
            return Err(Errno::EEXIST);
        }
        // A new component is opened as far as the others are.
        let counts = gp.consumers(topo).next().map_or((0, 0, 0), |c| c.access_counts(topo));
        let cp = gp.new_consumer(topo);
        cp.set_direct(topo);
        cp.set_index(topo, no);
        if let Err(e) = cp.attach(topo, pp) {
            cp.destroy(topo);
            return Err(e);
        }
        let undo = |topo: &mut Topology, opened: bool| {
            if opened {
                let _ = cp.access(topo, -counts.0, -counts.1, -counts.2);
            }
            cp.detach(topo);
            cp.destroy(topo);
        };
        if counts != (0, 0, 0) {
            if let Err(e) = cp.access(topo, counts.0, counts.1, counts.2) {
                undo(topo, false);
                return Err(e);
            }
        }
        if self.kind == Kind::Automatic {
            // The label may have changed since taste read it: read it again through our own
            // consumer before trusting it.
            let still_ours = match metadata::read_through::<StripeMetadata>(topo, cp) {
                Ok(md) => md.name.as_bytes() == gp.name().to_bytes() && md.id == self.id,
                Err(_) => false,
            };
            if !still_ours {
                self.tun.log(0, format_args!("Metadata on {} changed.", pp.name().to_string_lossy()));
                undo(topo, counts != (0, 0, 0));
                return Err(Errno::EINVAL);
            }
        }
        slot.set(topo, Some(cp));
        self.tun
            .log(0, format_args!("Disk {} attached to {}.", pp.name().to_string_lossy(), gp.name().to_string_lossy()));
        self.check_and_run(topo, gp);
        Ok(())
    }

    /// Publish `stripe/<name>` if every component is attached (`g_stripe_check_and_run`).
    fn check_and_run(&self, topo: &mut Topology, gp: GeomRef<Stripe>) {
        if self.nvalid() != self.ndisks() {
            return;
        }
        let comps: Vec<Provider> = self.disks.iter().filter_map(|d| d.get()?.provider()).collect();
        let reserved = |pp: &Provider| if self.kind == Kind::Automatic { i64::from(pp.sectorsize()) } else { 0 };
        let s = i64::from(self.stripesize());
        // Every component contributes as many whole stripes as the smallest one holds (a
        // labeled component keeps its last sector for the label).
        let per_disk = comps.iter().map(|pp| pp.mediasize() - reserved(pp)).min().unwrap_or(0);
        let per_disk = per_disk - per_disk.rem_euclid(s);
        let sectorsize = comps.iter().try_fold(1u32, |acc, pp| lcm(acc, pp.sectorsize()));
        let gname = gp.name().to_string_lossy();
        let Some(sectorsize) = sectorsize else {
            self.tun.log(0, format_args!("Components of {gname} have sector sizes without a common multiple."));
            return;
        };
        if per_disk <= 0 {
            self.tun.log(0, format_args!("Components of {gname} are too small for one {s}-byte stripe each."));
            return;
        }
        let Ok(name) = CString::new(format!("stripe/{gname}")) else { return };
        let pp = gp.new_provider(topo, &name);
        pp.set_direct(topo);
        // Unmapped requests only pass when nothing here copies data (no "fast" mode) and
        // every component takes them too.
        let unmapped = !self.tun.fast.load(Relaxed) && comps.iter().all(Provider::accepts_unmapped);
        pp.set_accept_unmapped(topo, unmapped);
        pp.set_geometry(topo, per_disk * i64::from(self.ndisks()), sectorsize, s, 0);
        self.provider.set(topo, Some(pp));
        pp.set_ready(topo);
        self.tun.log(0, format_args!("Device {} activated.", name.to_string_lossy()));
    }

    /// A component is gone or going (`g_stripe_remove_disk`): the device stops, and the
    /// consumer goes as soon as it is closed. Returns whether that left the geom without
    /// consumers (so the device itself must go).
    fn remove_disk(&self, topo: &mut Topology, gp: GeomRef<Stripe>, cp: Consumer) -> bool {
        let no = cp.index() as usize;
        let gname = gp.name().to_string_lossy();
        if let Some(flag) = self.removed.get(no) {
            if !flag.swap(true, Relaxed) {
                let pname = cp.provider().map(|p| String::from(p.name().to_string_lossy())).unwrap_or_default();
                self.tun.log(0, format_args!("Disk {pname} removed from {gname}."));
            }
        }
        if let Some(pp) = self.provider.take(topo) {
            self.tun.log(0, format_args!("Device {} deactivated.", pp.name().to_string_lossy()));
            pp.wither(topo, Errno::ENXIO);
        }
        if cp.access_counts(topo) != (0, 0, 0) {
            return false;
        }
        if let Some(slot) = self.disks.get(no) {
            slot.set(topo, None);
        }
        if let Some(flag) = self.removed.get(no) {
            flag.store(false, Relaxed);
        }
        cp.detach(topo);
        cp.destroy(topo);
        gp.consumers(topo).next().is_none()
    }

    /// The last component is gone: let the device go.
    fn vanish(&self, topo: &mut Topology, gp: GeomRef<Stripe>) {
        self.tun.log(0, format_args!("Device {} destroyed.", gp.name().to_string_lossy()));
        gp.wither(topo, Errno::ENXIO);
    }

    /// Destroy the device (`g_stripe_destroy`): `EBUSY` while open unless forced; forced, an
    /// open device stops now and goes when closed (`EINPROGRESS`).
    pub(crate) fn destroy(&self, topo: &mut Topology, gp: GeomRef<Stripe>, force: bool) -> Result<(), Errno> {
        if let Some(pp) = self.provider.get() {
            let (r, w, e) = pp.access_counts(topo);
            if (r, w, e) != (0, 0, 0) {
                let name = pp.name().to_string_lossy();
                if !force {
                    self.tun.log(1, format_args!("Device {name} is still open (r{r}w{w}e{e})."));
                    return Err(Errno::EBUSY);
                }
                self.tun.log(0, format_args!("Device {name} is still open, so it can't be definitely removed."));
            }
        }
        let consumers: Vec<Consumer> = gp.consumers(topo).collect();
        let mut empty = consumers.is_empty();
        for cp in consumers {
            empty = self.remove_disk(topo, gp, cp);
        }
        if !empty {
            return Err(Errno::EINPROGRESS);
        }
        self.vanish(topo, gp);
        Ok(())
    }

    /// Open/close deltas on the device (`g_stripe_access`): passed to every component, plus
    /// one exclusive count held while the device is open at all, so no one writes under it.
    pub(crate) fn access(
        &self,
        topo: &mut Topology,
        gp: GeomRef<Stripe>,
        pp: Provider,
        dr: i32,
        dw: i32,
        mut de: i32,
    ) -> Result<(), Errno> {
        let (r, w, e) = pp.access_counts(topo);
        if (r, w, e) == (0, 0, 0) {
            de += 1;
        }
        if r + dr == 0 && w + dw == 0 && e + de == 0 {
            de -= 1;
        }
        let consumers: Vec<Consumer> = gp.consumers(topo).collect();
        for (i, cp) in consumers.iter().enumerate() {
            if let Err(err) = cp.access(topo, dr, dw, de) {
                for done in &consumers[..i] {
                    let _ = done.access(topo, -dr, -dw, -de);
                }
                return Err(err);
            }
        }
        // Components lost while open go once closed; the device with the last of them.
        let mut empty = false;
        for cp in consumers {
            let lost = self.removed.get(cp.index() as usize).is_some_and(|f| f.load(Relaxed));
            if lost && cp.access_counts(topo) == (0, 0, 0) {
                empty = self.remove_disk(topo, gp, cp);
            }
        }
        if empty {
            self.vanish(topo, gp);
        }
        Ok(())
    }

    /// A component went away or was opened for writing by someone else
    /// (`g_stripe_orphan`, also its spoiled method).
    pub(crate) fn lose(&self, topo: &mut Topology, gp: GeomRef<Stripe>, cp: Consumer) {
        if self.remove_disk(topo, gp, cp) {
            self.vanish(topo, gp);
        }
    }
}

impl Stripe {
    /// The live (not withering) device named `name`.
    fn find_device(cls: &Class<Stripe>, topo: &Topology, name: &[u8]) -> Option<GeomRef<Stripe>> {
        cls.geoms(topo).find(|g| !g.is_withering(topo) && g.softc().is_some() && g.name().to_bytes() == name)
    }

    /// Make a device with no components yet (`g_stripe_create`), or say (on the console, as
    /// gstripe does, and to the caller) why the label does not describe a possible device.
    fn create(
        cls: &Class<Stripe>,
        topo: &mut Topology,
        md: &StripeMetadata,
        kind: Kind,
    ) -> Result<GeomRef<Stripe>, Refusal> {
        let tun = &cls.tun;
        tun.log(1, format_args!("Creating device {} (id={}).", md.name, md.id));
        let refusal = if md.all < 2 {
            Some(Refusal::TooFewDisks)
        } else if !md.stripesize.is_power_of_two() {
            Some(Refusal::StripeSize)
        } else if Stripe::find_device(cls, topo, md.name.as_bytes()).is_some() {
            Some(Refusal::Duplicate)
        } else {
            None
        };
        if let Some(r) = refusal {
            let name = &md.name;
            match r {
                Refusal::TooFewDisks => tun.log(0, format_args!("Too few disks defined for {name}.")),
                Refusal::StripeSize => tun.log(0, format_args!("Invalid stripe size for {name}.")),
                Refusal::Duplicate => tun.log(0, format_args!("Device {name} already configured.")),
                Refusal::Name => {}
            }
            return Err(r);
        }
        let name = CString::new(md.name.as_str()).map_err(|_| Refusal::Name)?;
        let n = usize::from(md.all);
        let sc = StripeGeom {
            kind,
            id: md.id,
            geometry: Geometry { ndisks: u32::from(md.all), bits: md.stripesize.trailing_zeros() },
            disks: (0..n).map(|_| Slot::empty()).collect(),
            removed: (0..n).map(|_| AtomicBool::new(false)).collect(),
            provider: Slot::empty(),
            tun: tun.clone(),
        };
        let gp = cls.new_geom(topo, &name, sc);
        tun.log(0, format_args!("Device {} created (id={}).", md.name, md.id));
        Ok(gp)
    }

    /// `g_stripe_taste`: read the label, refuse what does not belong, and add the component to
    /// its device (made on the first component seen).
    pub(crate) fn taste_provider(cls: &Class<Stripe>, topo: &mut Topology, pp: Provider) -> Option<GeomRef<Stripe>> {
        let tun = &cls.tun;
        // Someone writes to it: whatever is in its last sector may be changing.
        if pp.access_counts(topo).1 > 0 {
            return None;
        }
        let pname = String::from(pp.name().to_string_lossy());
        tun.log(3, format_args!("Tasting {pname}."));
        let md = match cls.taste_metadata::<StripeMetadata>(topo, pp) {
            Ok(md) => md,
            Err(MetaError::TooNew(_)) => {
                geom_core::kprintln!("geom_stripe.ko module is too old to handle {pname}.");
                return None;
            }
            Err(MetaError::Invalid(why)) => {
                tun.log(0, format_args!("Label on {pname} is unreadable ({why}); ignored."));
                return None;
            }
            Err(_) => return None,
        };
        if !md.provider.is_empty() && strip_dev_str(&md.provider) != strip_dev_str(&pname) {
            tun.log(0, format_args!("Label on {pname} is hardcoded for provider {}; ignored.", md.provider));
            return None;
        }
        if let Some(size) = md.provsize.filter(|&s| s != pp.mediasize() as u64) {
            tun.log(
                0,
                format_args!(
                    "Label on {pname} was written for {size} bytes, the provider has {}; ignored.",
                    pp.mediasize()
                ),
            );
            return None;
        }
        let existing = cls.geoms(topo).find(|g| {
            !g.is_withering(topo)
                && g.name().to_bytes() == md.name.as_bytes()
                && g.softc().is_some_and(|sc| sc.kind == Kind::Automatic && sc.id == md.id)
        });
        let (gp, fresh) = match existing {
            Some(gp) => (gp, false),
            None => match Stripe::create(cls, topo, &md, Kind::Automatic) {
                Ok(gp) => (gp, true),
                Err(_) => {
                    tun.log(0, format_args!("Cannot create device {}.", md.name));
                    return None;
                }
            },
        };
        let sc = gp.softc()?;
        tun.log(1, format_args!("Adding disk {pname} to {}.", md.name));
        if let Err(e) = sc.add_disk(topo, gp, pp, u32::from(md.no)) {
            tun.log(0, format_args!("Cannot add disk {pname} to {} (error={}).", md.name, e.get()));
            if fresh {
                let _ = sc.destroy(topo, gp, true);
            }
            return None;
        }
        Some(gp)
    }

    /// `gstripe create`: a device without labels over the named providers.
    pub(crate) fn ctl_create(cls: &Class<Stripe>, topo: &mut Topology, req: &mut Gctl<'_>, c: Create) {
        let Some((name, provs)) = c.args.split_first() else { return };
        let Ok(name) = name.to_str() else {
            req.error(format_args!("Invalid device name."));
            return;
        };
        let Ok(all) = u16::try_from(provs.len()) else {
            req.error(format_args!("Too many arguments."));
            return;
        };
        let stripesize = match u32::try_from(c.stripesize) {
            Ok(s) if s.is_power_of_two() => s,
            _ => {
                req.error(format_args!("Invalid stripe size {}: it must be a power of two.", c.stripesize));
                return;
            }
        };
        let mut comps = Vec::with_capacity(provs.len());
        for p in provs {
            let Some(pp) = req.provider(topo, p) else { return };
            if pp.mediasize() < i64::from(stripesize) {
                req.error(format_args!(
                    "Provider {} is too small ({} bytes) for a {stripesize}-byte stripe.",
                    pp.name().to_string_lossy(),
                    pp.mediasize()
                ));
                return;
            }
            comps.push(pp);
        }
        let md = StripeMetadata {
            version: crate::G_STRIPE_VERSION,
            name: name_field(name),
            id: geom_core::arc4random(),
            no: 0,
            all,
            stripesize,
            provider: Default::default(),
            provsize: None,
        };
        let gp = match Stripe::create(cls, topo, &md, Kind::Manual) {
            Ok(gp) => gp,
            Err(Refusal::Duplicate) => return req.error(format_args!("Device {} already configured.", md.name)),
            Err(_) => return req.error(format_args!("Can't configure {}.", md.name)),
        };
        let Some(sc) = gp.softc() else { return };
        let mut failed = String::new();
        for (no, pp) in comps.into_iter().enumerate() {
            if let Err(e) = sc.add_disk(topo, gp, pp, no as u32) {
                let pname = pp.name().to_string_lossy();
                cls.tun
                    .log(1, format_args!("Disk {} ({pname}) not attached to {} (error={}).", no + 1, md.name, e.get()));
                failed.push(' ');
                failed.push_str(&pname);
            }
        }
        if !failed.is_empty() {
            let _ = sc.destroy(topo, gp, true);
            req.error(format_args!("Can't attach disk(s) to {}:{failed}", md.name));
        }
    }

    /// `gstripe destroy` / `stop`.
    pub(crate) fn ctl_destroy(cls: &Class<Stripe>, topo: &mut Topology, req: &mut Gctl<'_>, d: Destroy) {
        for name in &d.names {
            let Some(gp) = Stripe::find_device(cls, topo, name.to_bytes()) else {
                req.error(format_args!("No such device: {}.", name.to_string_lossy()));
                return;
            };
            let Some(sc) = gp.softc() else { return };
            if let Err(e) = sc.destroy(topo, gp, d.force) {
                req.error(format_args!("Cannot destroy device {} (error={}).", name.to_string_lossy(), e.get()));
                return;
            }
        }
    }
}

/// Why a label does not describe a device that can be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    TooFewDisks,
    StripeSize,
    Duplicate,
    /// A name C cannot hold (an inner NUL); never from a label or a request.
    Name,
}
