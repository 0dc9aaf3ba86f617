//! The verbs gstripe's class library runs in userland (`lib/geom/stripe/geom_stripe.c`):
//! `label` writes a label into the last sector of every component, `clear` zeroes it, `dump`
//! prints it. The kernel notices new labels when the writer closes each component (GEOM
//! retastes it) and assembles the device from them.

use geom_core::metadata::{self, MetaReader};
use geom_core::userland::Userland;
use geom_core::verbs::strip_dev;

use crate::map::lcm;
use geom_core::metadata::name_field;

use crate::metadata::{StripeMetadata, G_STRIPE_MAGIC, G_STRIPE_VERSION};
use crate::{Clear, DumpLabel, Label};

/// `gstripe label [-hv] [-s stripesize] name prov prov ...`.
pub(crate) fn label(u: &mut Userland<'_>, l: Label) {
    let Some((name, provs)) = l.args.split_first() else { return };
    let Ok(name) = name.to_str() else {
        return u.error(format_args!("Invalid device name."));
    };
    let Ok(all) = u16::try_from(provs.len()) else {
        return u.error(format_args!("Too many arguments."));
    };
    // The data size every component can give (the smallest, less its label sector), and a
    // sector size they all agree on. Old labels are cleared first, so an assembled device
    // on these providers is taken apart (spoiled) before the new labels appear.
    let mut compsize = i64::MAX;
    let mut smallest = "";
    let mut secsize = 1u32;
    for p in provs {
        let pname = p.to_string_lossy();
        let sizes = u.mediasize(p).and_then(|m| Ok((m, u.sectorsize(p)?)));
        let (msize, ssize) = match sizes {
            Ok((m, s)) if m > 0 && s > 0 => (m, s),
            Ok(_) => return u.error(format_args!("Can't get informations about {pname}: Invalid argument.")),
            Err(e) => return u.error(format_args!("Can't get informations about {pname}: {}.", e.strerror())),
        };
        if msize - i64::from(ssize) < compsize {
            compsize = msize - i64::from(ssize);
            smallest = p.to_str().unwrap_or("?");
        }
        secsize = match lcm(secsize, ssize) {
            Some(l) => l,
            None => return u.error(format_args!("Sector sizes of the providers have no common multiple.")),
        };
        if let Err(e) = u.metadata_clear(p, None) {
            return u.error(format_args!("Can't store metadata on {pname}: {}.", e.strerror()));
        }
    }
    let stripesize = match u32::try_from(l.stripesize) {
        Ok(s) if s.is_power_of_two() => s,
        _ => return u.error(format_args!("Invalid stripe size {}: it must be a power of two.", l.stripesize)),
    };
    if stripesize % secsize != 0 {
        return u.error(format_args!("Stripesize should be multiple of {secsize}."));
    }
    if compsize < i64::from(stripesize) {
        return u.error(format_args!(
            "Provider {smallest} is too small: {compsize} bytes of data, less than one {stripesize}-byte stripe."
        ));
    }
    let mut md = StripeMetadata {
        version: G_STRIPE_VERSION,
        name: name_field(name),
        id: u.random(),
        no: 0,
        all,
        stripesize,
        provider: Default::default(),
        provsize: None,
    };
    for (no, p) in provs.iter().enumerate() {
        let pname = p.to_string_lossy();
        let (Ok(msize), Ok(ssize)) = (u.mediasize(p), u.sectorsize(p)) else {
            u.not_fully_done(format_args!("Can't store metadata on {pname}: Device not configured."));
            continue;
        };
        let usable = msize - i64::from(ssize);
        if compsize < usable {
            u.warn(format_args!("warning: {pname}: only {compsize} bytes from {usable} bytes used.\n"));
        }
        md.no = no as u16;
        md.provsize = Some(msize as u64);
        md.provider = if l.hardcode { name_field(&strip_dev(p).to_string_lossy()) } else { Default::default() };
        if let Err(e) = u.store(p, &md) {
            u.not_fully_done(format_args!("Can't store metadata on {pname}: {}.", e.errno().strerror()));
            continue;
        }
        if l.verbose {
            u.print(format_args!("Metadata value stored on {pname}.\n"));
        }
    }
}

/// `gstripe clear [-v] prov ...`: zero the last sector of each provider holding a stripe
/// label.
pub(crate) fn clear(u: &mut Userland<'_>, c: Clear) {
    for p in &c.providers {
        let pname = p.to_string_lossy();
        if let Err(e) = u.metadata_clear(p, Some(G_STRIPE_MAGIC)) {
            u.not_fully_done(format_args!("Can't clear metadata on {pname}: {}.", e.strerror()));
            continue;
        }
        if c.verbose {
            u.print(format_args!("Metadata cleared on {pname}.\n"));
        }
    }
}

/// `gstripe dump prov ...`: print each provider's label as it is on disk (whatever its
/// version, all fields read as version 3 lays them out).
pub(crate) fn dump(u: &mut Userland<'_>, d: DumpLabel) {
    for p in &d.providers {
        let pname = p.to_string_lossy();
        let sector = match u.metadata_read(p, Some(G_STRIPE_MAGIC)) {
            Ok(s) => s,
            Err(e) => {
                u.not_fully_done(format_args!("Can't read metadata from {pname}: {}.", e.strerror()));
                continue;
            }
        };
        let mut r = MetaReader::new(&sector);
        let fields = r.str_field::<16>().and_then(|magic| {
            let version = r.u32()?;
            let md = <StripeMetadata as metadata::Metadata>::decode(G_STRIPE_VERSION, &mut r)?;
            Ok((magic, version, md))
        });
        let Ok((magic, version, md)) = fields else {
            u.not_fully_done(format_args!("Can't read metadata from {pname}: Invalid argument."));
            continue;
        };
        u.print(format_args!("Metadata on {pname}:\n"));
        u.print(format_args!("         Magic string: {magic}\n"));
        u.print(format_args!("     Metadata version: {version}\n"));
        u.print(format_args!("          Device name: {}\n", md.name));
        u.print(format_args!("            Device ID: {}\n", md.id));
        u.print(format_args!("          Disk number: {}\n", md.no));
        u.print(format_args!("Total number of disks: {}\n", md.all));
        u.print(format_args!("          Stripe size: {}\n", md.stripesize));
        u.print(format_args!("   Hardcoded provider: {}\n", md.provider));
        u.print(format_args!("\n"));
    }
}
