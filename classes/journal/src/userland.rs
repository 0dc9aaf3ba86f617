//! The verbs gjournal's class library runs in userland (`lib/geom/journal/geom_journal.c`):
//! `label` writes the label into the last sector of the data provider (and of the journal
//! provider), `clear` zeroes it, `dump` prints it. The kernel picks new labels up by tasting.

use geom_core::metadata::{name_field, MetaError};
use geom_core::userland::Userland;
use geom_core::verbs::strip_dev;

use crate::metadata::{
    JournalMetadata, GJ_FLAG_CHECKSUM, GJ_FLAG_CLEAN, GJ_TYPE_DATA, GJ_TYPE_JOURNAL, G_JOURNAL_MAGIC, G_JOURNAL_VERSION,
};
use crate::{Clear, DumpLabel, Label};

/// The journal size when `-s` is not given: 1 GiB, gjournal's "safe default".
const DEFAULT_JSIZE: i64 = 1 << 30;
/// The smallest journal `-s` accepts (100 MiB).
const MIN_JSIZE: i64 = 100 << 20;

/// `gjournal label [-cfhv] [-s jsize] dataprov [jprov]`.
pub(crate) fn label(u: &mut Userland<'_>, l: Label) {
    for p in &l.providers {
        if !matches!(u.mediasize(p), Ok(m) if m > 0) {
            return u.error(format_args!("Invalid provider {}.", p.to_string_lossy()));
        }
    }
    let Some(data) = l.providers.first() else { return };
    let journal = l.providers.get(1).unwrap_or(data);
    let (Ok(msize), Ok(ssize)) = (u.mediasize(journal), u.sectorsize(journal)) else {
        return u.error(format_args!("Invalid provider {}.", journal.to_string_lossy()));
    };
    let ssize = i64::from(ssize);
    let (jstart, jend) = if l.providers.len() == 1 {
        let jsize = if l.jsize == -1 {
            DEFAULT_JSIZE
        } else if l.jsize < MIN_JSIZE {
            return u.error(format_args!("Journal too small."));
        } else if l.jsize % ssize != 0 {
            return u.error(format_args!("Invalid journal size."));
        } else {
            l.jsize
        };
        // Checked: -s is the user's number, and one near i64::MAX wrapped into a bogus area.
        if jsize.checked_add(ssize).is_none_or(|need| need >= msize) {
            return u.error(format_args!(
                "Provider too small for journalling. You can try smaller jsize (default is {jsize})."
            ));
        }
        (msize - ssize - jsize, msize - ssize)
    } else {
        if l.jsize != -1 {
            return u.error(format_args!("jsize argument is valid only for all-in-one configuration."));
        }
        (0, msize - ssize)
    };
    if u.sectorsize(data).ok() != u.sectorsize(journal).ok() {
        return u.error(format_args!("Not equal sector sizes."));
    }
    // Clear the last sectors first: a device already on these providers is taken apart
    // (spoiled) before the new labels appear.
    for p in &l.providers {
        if let Err(e) = u.metadata_clear(p, None) {
            return u.error(format_args!("Cannot clear metadata on {}: {}.", p.to_string_lossy(), e.strerror()));
        }
    }
    let mut md = JournalMetadata {
        id: u.random(),
        kind: 0,
        jstart: jstart as u64,
        jend: jend as u64,
        joffset: 0,
        jid: 0,
        flags: GJ_FLAG_CLEAN | if l.checksum { GJ_FLAG_CHECKSUM } else { 0 },
        provider: Default::default(),
        provsize: 0,
    };
    for (i, p) in l.providers.iter().enumerate() {
        let pname = p.to_string_lossy();
        md.kind = match (i, l.providers.len()) {
            (0, 1) => GJ_TYPE_DATA | GJ_TYPE_JOURNAL,
            (0, _) => GJ_TYPE_DATA,
            _ => GJ_TYPE_JOURNAL,
        };
        md.provsize = u.mediasize(p).unwrap_or(0) as u64;
        md.provider = if l.hardcode { name_field(&strip_dev(p).to_string_lossy()) } else { Default::default() };
        if let Err(e) = u.store(p, &md) {
            u.warn(format_args!("Cannot store metadata on {pname}: {}.\n", e.errno().strerror()));
            u.not_fully_done(format_args!("Not fully done."));
            continue;
        }
        if l.verbose {
            u.print(format_args!("Metadata value stored on {pname}.\n"));
        }
    }
}

/// `gjournal clear [-v] prov ...`.
pub(crate) fn clear(u: &mut Userland<'_>, c: Clear) {
    for p in &c.providers {
        let pname = p.to_string_lossy();
        if let Err(e) = u.metadata_clear(p, Some(G_JOURNAL_MAGIC)) {
            u.warn(format_args!("Cannot clear metadata on {pname}: {}.\n", e.strerror()));
            u.not_fully_done(format_args!("Not fully done."));
            continue;
        }
        if c.verbose {
            u.print(format_args!("Metadata cleared on {pname}.\n"));
        }
    }
}

/// `gjournal dump prov ...`: each label as `journal_metadata_dump` prints it.
pub(crate) fn dump(u: &mut Userland<'_>, d: DumpLabel) {
    for p in &d.providers {
        let pname = p.to_string_lossy();
        let md = match u.load::<JournalMetadata>(p) {
            Ok(md) => md,
            Err(MetaError::Invalid(_)) => {
                u.warn(format_args!("MD5 hash mismatch for {pname}, skipping.\n"));
                u.not_fully_done(format_args!("Not fully done."));
                continue;
            }
            Err(e) => {
                u.warn(format_args!("Cannot read metadata from {pname}: {}.\n", e.errno().strerror()));
                u.not_fully_done(format_args!("Not fully done."));
                continue;
            }
        };
        let sector = u.metadata_read(p, Some(G_JOURNAL_MAGIC)).unwrap_or_default();
        let hash = sector.get(85..101).unwrap_or(&[]);
        u.print(format_args!("Metadata on {pname}:\n"));
        u.print(format_args!("     magic: GEOM::JOURNAL\n"));
        u.print(format_args!("   version: {G_JOURNAL_VERSION}\n"));
        u.print(format_args!("        id: {}\n", md.id));
        u.print(format_args!("      type: {}\n", md.kind));
        u.print(format_args!("     start: {}\n", md.jstart));
        u.print(format_args!("       end: {}\n", md.jend));
        u.print(format_args!("   joffset: {}\n", md.joffset));
        u.print(format_args!("       jid: {}\n", md.jid));
        u.print(format_args!("     flags: {}\n", md.flags));
        u.print(format_args!("hcprovider: {}\n", md.provider));
        u.print(format_args!("  provsize: {}\n", md.provsize));
        u.print(format_args!("  MD5 hash: "));
        for b in hash {
            u.print(format_args!("{b:02x}"));
        }
        u.print(format_args!("\n\n"));
    }
}
