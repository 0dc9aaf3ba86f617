//! The `metadata` target: everything a class decodes from a disk.
//!
//! The first byte chooses what the rest is (see [`Kind`]); each part checks, besides not
//! panicking, what is cheap to know: a decoded label re-encodes to a sector that decodes to
//! the same value, fields sit at FreeBSD's offsets, the recovery walk reads only inside the
//! journal area and returns sound extents, and `dump` prints exactly the labels the kernel
//! would accept.

use std::ffi::CStr;

use geom_class_journal::format::{Area, JournalHeader, RecordHeader, RECORD_ENTRIES, RECORD_HEADER_LEN};
use geom_class_journal::recovery::{self, Stop};
use geom_class_journal::{Journal, JournalMetadata, G_JOURNAL_MAGIC};
use geom_class_stripe::{Stripe, StripeMetadata, G_STRIPE_MAGIC, G_STRIPE_VERSION};
use geom_core::ctl::Param;
use geom_core::metadata::{self, MetaError, MetaReader, MetaWriter, Metadata, HEADER_LEN, MAGIC_LEN};
use geom_core::userland::run_local;
use geom_core::{Errno, GeomClass};
use md5::{Digest, Md5};

use crate::input::{Input, Writer};
use crate::memdisk::MemDisks;

/// What the bytes after the first one hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A sector holding (or not) a gstripe label.
    StripeLabel = 0,
    /// A sector holding (or not) a gjournal label.
    JournalLabel = 1,
    /// A sector holding (or not) a journal header or a record header.
    JournalRecord = 2,
    /// A journal area's geometry and contents, walked as recovery walks it.
    Recovery = 3,
    /// geom-core's generic layer: a toy label and a program of reads.
    Generic = 4,
    /// A last sector shown by `gstripe dump` and `gjournal dump`.
    Dump = 5,
}

const KINDS: [Kind; 6] =
    [Kind::StripeLabel, Kind::JournalLabel, Kind::JournalRecord, Kind::Recovery, Kind::Generic, Kind::Dump];

/// The harness.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let kind = KINDS[usize::from(input.u8()) % KINDS.len()];
    match kind {
        Kind::StripeLabel => stripe_label(input.rest()),
        Kind::JournalLabel => journal_label(input.rest()),
        Kind::JournalRecord => journal_record(input.rest()),
        Kind::Recovery => recovery(&mut input),
        Kind::Generic => generic(&mut input),
        Kind::Dump => dump(&mut input),
    }
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("two bytes"))
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("four bytes"))
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("eight bytes"))
}

/// The C string in a NUL-padded field.
fn c_field(b: &[u8]) -> &[u8] {
    &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]
}

fn stripe_label(sector: &[u8]) {
    let Ok(md) = metadata::decode::<StripeMetadata>(sector) else { return };
    // What FreeBSD's stripe_metadata_decode reads at the same offsets.
    assert!(metadata::magic_matches(sector, G_STRIPE_MAGIC));
    assert_eq!(md.version, le32(sector, 16));
    assert!(md.version <= G_STRIPE_VERSION);
    assert_eq!(md.name.as_bytes(), c_field(&sector[20..36]));
    assert_eq!(
        (md.id, md.no, md.all, md.stripesize),
        (le32(sector, 36), le16(sector, 40), le16(sector, 42), le32(sector, 44))
    );
    if md.version >= 2 {
        assert_eq!(md.provider.as_bytes(), c_field(&sector[48..64]));
    } else {
        assert!(md.provider.is_empty(), "labels before version 2 have no provider");
    }
    assert_eq!(md.provsize, (md.version >= 3).then(|| le64(sector, 64)));
    // Re-encoded, it is a version 3 label with the same fields (an old label's missing size
    // is written as 0, which matches any provider).
    let mut out = vec![0u8; 512];
    metadata::encode(&md, &mut out).expect("a decoded label re-encodes");
    assert!(out[72..].iter().all(|&b| b == 0), "the rest of the sector stays zero");
    let again = metadata::decode::<StripeMetadata>(&out).expect("a re-encoded label decodes");
    let upgraded = StripeMetadata { version: G_STRIPE_VERSION, provsize: Some(md.provsize.unwrap_or(0)), ..md };
    assert_eq!(again, upgraded);
}

fn journal_label(sector: &[u8]) {
    let Ok(md) = metadata::decode::<JournalMetadata>(sector) else { return };
    assert!(metadata::magic_matches(sector, G_JOURNAL_MAGIC));
    // The hash, computed here independently of the class.
    assert_eq!(Md5::digest(&sector[..85])[..], sector[85..101]);
    assert!(matches!(md.kind, 1..=3), "kind {} accepted", md.kind);
    assert!(md.jstart < md.jend, "an empty journal area accepted");
    assert_eq!((md.id, md.kind), (le32(sector, 20), sector[24]));
    assert_eq!((md.jstart, md.jend, md.joffset), (le64(sector, 25), le64(sector, 33), le64(sector, 41)));
    assert_eq!((md.jid, md.flags, md.provsize), (le32(sector, 49), le64(sector, 53), le64(sector, 77)));
    assert_eq!(md.provider.as_bytes(), c_field(&sector[61..77]));
    let mut out = vec![0u8; 512];
    metadata::encode(&md, &mut out).expect("a decoded label re-encodes");
    assert!(out[101..].iter().all(|&b| b == 0), "the rest of the sector stays zero");
    assert_eq!(metadata::decode::<JournalMetadata>(&out), Ok(md));
}

fn journal_record(sector: &[u8]) {
    let header = JournalHeader::decode(sector);
    let record = RecordHeader::decode(sector);
    // "GJHDR\0" and "GJRHDR\0" differ in their sixth byte: no sector is both.
    assert!(header.is_none() || record.is_none());
    if let Some(h) = header {
        assert_eq!((h.id, h.next_id), (le32(sector, 6), le32(sector, 10)));
        let mut out = vec![0u8; 512];
        h.encode(&mut out);
        assert_eq!(JournalHeader::decode(&out), Some(h));
    }
    if let Some(rh) = record {
        assert!(rh.entries.len() <= RECORD_ENTRIES);
        assert_eq!(usize::from(le16(sector, 15)), rh.entries.len());
        assert_eq!(rh.journal_id, le32(sector, 7));
        for (i, e) in rh.entries.iter().enumerate() {
            let at = 25 + i * 24;
            assert_eq!(
                (e.joffset, e.offset, e.length),
                (le64(sector, at), le64(sector, at + 8), le64(sector, at + 16))
            );
        }
        let mut out = vec![0u8; 512];
        rh.encode(&mut out).expect("a decoded record header re-encodes");
        assert_eq!(RecordHeader::decode(&out).as_ref(), Some(&rh));
        let mut short = vec![0u8; sector.len().min(RECORD_HEADER_LEN - 1)];
        assert_eq!(rh.encode(&mut short), Err(MetaError::Short));
    }
}

/// The recovery walk's parameters, read from the input (see [`recovery_input`]).
struct Walk {
    area: Area,
    start: u64,
    id: u32,
    data_size: u64,
    checksum: bool,
    /// Reads that succeed before every later one fails with `EIO` (`None`: never).
    fail_after: Option<u8>,
    /// The journal provider from offset 0 (zeros after it).
    image: Vec<u8>,
}

/// The flags byte of a recovery input.
pub const WALK_CHECKSUM: u8 = 1 << 2;
/// Flag: the start offset is any 64-bit value, not a sector inside the area.
pub const WALK_ANY_START: u8 = 1 << 3;
/// Flag: reads fail after a number of them.
pub const WALK_IO_ERRORS: u8 = 1 << 4;

/// Build a recovery input (for seeds): first an area to check (`check`: jstart, jend, sector
/// size shift, an offset), then the walk: sector size `512 << (flags & 3)`, `maxphys` of
/// `1 + mul % 4` sectors, `extra` sectors beyond the smallest area, the area starting `jstart_sectors`
/// sectors in, the walk starting at sector `start` of the area with journal `id`, data of
/// `data_size` bytes, and the journal provider's first bytes.
#[allow(clippy::too_many_arguments)]
pub fn recovery_input(
    check: (u64, u64, u8, u64),
    flags: u8,
    mul: u8,
    extra: u8,
    jstart_sectors: u8,
    start: u64,
    id: u32,
    data_size: u64,
    fail_after: u8,
    image: &[u8],
) -> Vec<u8> {
    Writer::new()
        .u8(Kind::Recovery as u8)
        .u64(check.0)
        .u64(check.1)
        .u8(check.2)
        .u64(check.3)
        .u8(flags)
        .u8(mul)
        .u8(extra)
        .u8(jstart_sectors)
        .u64(start)
        .u32(id)
        .u64(data_size)
        .u8(fail_after)
        .bytes(image)
        .finish()
}

/// The geometry of a recovery input: sector size, maxphys, area start and end.
pub fn recovery_geometry(flags: u8, mul: u8, extra: u8, jstart_sectors: u8) -> (u64, u64, u64, u64) {
    let ss = 512u64 << (flags & 3);
    let maxphys = ss * (1 + u64::from(mul % 4));
    let record_max = ss + maxphys * RECORD_ENTRIES as u64;
    // Area::new wants more than twice the largest record and a header.
    let sectors = 2 * (record_max + ss) / ss + 1 + u64::from(extra);
    let jstart = ss * u64::from(jstart_sectors % 4);
    (ss, maxphys, jstart, jstart + sectors * ss)
}

fn walk_params(input: &mut Input<'_>) -> Walk {
    let flags = input.u8();
    let (mul, extra, jstart_sectors) = (input.u8(), input.u8(), input.u8());
    let (ss, maxphys, jstart, jend) = recovery_geometry(flags, mul, extra, jstart_sectors);
    let area = Area::new(jstart, jend, ss, maxphys).expect("the harness builds a sound area");
    let start = input.u64();
    let start = if flags & WALK_ANY_START != 0 { start } else { jstart + ss * (start % (area.size() / ss)) };
    let id = input.u32();
    let data_size = input.u64();
    let fail_after = input.u8();
    Walk {
        area,
        start,
        id,
        data_size,
        checksum: flags & WALK_CHECKSUM != 0,
        fail_after: (flags & WALK_IO_ERRORS != 0).then_some(fail_after),
        image: input.rest().to_vec(),
    }
}

fn recovery(input: &mut Input<'_>) {
    // The area check itself, on an untrusted label's jstart and jend.
    let (jstart, jend, shift, offset) = (input.u64(), input.u64(), input.u8(), input.u64());
    let ss = 512u64 << (shift % 4);
    if let Some(a) = Area::new(jstart, jend, ss, 128 << 10) {
        assert!(a.jstart % ss == 0 && a.jend % ss == 0 && a.jstart < a.jend);
        assert!(a.size() > 2 * (a.record_max + ss));
        // For an offset inside the area (the only kind the journal asks about), the answer is
        // a place where the largest record still fits before the end.
        let at = a.validate(a.jstart + offset % a.size());
        assert!(at >= a.jstart && at.saturating_add(a.record_max) < a.jend);
    }

    let w = walk_params(input);
    let found = walk(&w);
    assert_eq!(found.journals == 0, found.last.is_none());
    if found.stop == Stop::NoStart {
        assert_eq!((found.journals, found.entries), (0, 0));
    }
    if let Some((at, _)) = found.last {
        assert!(at >= w.area.jstart && at < w.area.jend && at % w.area.sectorsize == 0);
    }
    if found.journals == 0 {
        assert!(found.extents.is_empty(), "entries of incomplete journals are never replayed");
    }
    // Sorted, disjoint, whole sectors, inside the data provider and the journal area.
    let mut end = 0u64;
    for e in found.extents.iter() {
        assert!(e.length > 0 && e.offset >= end, "extents overlap or are empty");
        end = e.offset + e.length;
        assert!(end <= w.data_size);
        assert!(e.joffset >= w.area.jstart && e.joffset + e.length <= w.area.jend);
        assert!(e.offset % w.area.sectorsize == 0 && e.length % w.area.sectorsize == 0);
        assert!(e.data.is_none(), "the walk caches no data");
    }
}

/// Run the recovery walk over the image; it must read inside the journal area only.
fn walk(w: &Walk) -> recovery::Found {
    let mut reads = 0u32;
    let mut strays = Vec::new();
    let mut read = |off: u64, len: u64| -> Result<Vec<u8>, Errno> {
        let inside = off >= w.area.jstart && len > 0 && off.checked_add(len).is_some_and(|end| end <= w.area.jend);
        if !inside {
            strays.push((off, len));
            return Err(Errno::EIO);
        }
        reads += 1;
        if w.fail_after.is_some_and(|n| reads > u32::from(n)) {
            return Err(Errno::EIO);
        }
        let mut buf = vec![0u8; len as usize];
        let from = (off as usize).min(w.image.len());
        let to = ((off + len) as usize).min(w.image.len());
        buf[..to - from].copy_from_slice(&w.image[from..to]);
        Ok(buf)
    };
    let found = recovery::walk(&w.area, w.start, w.id, w.data_size, w.checksum, &mut read)
        .expect("the walk fails only when memory runs out");
    assert!(strays.is_empty(), "the walk read outside the journal area: {strays:?}");
    found
}

/// A label for the generic layer: every field kind, a version per addition, and a checksum
/// sealed over the sector.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Toy {
    name: heapless::String<16>,
    /// Version 2: must not be zero (1 when read from version 1).
    count: u16,
    /// Version 3 (0 before).
    size: u64,
}

/// The toy label's magic.
pub const TOY_MAGIC: &[u8] = b"GEOM::FUZZ";
/// Where the toy label's checksum byte lives.
const TOY_SUM_AT: usize = HEADER_LEN + 16 + 2 + 8;

fn toy_sum(sector: &[u8]) -> u8 {
    sector[..TOY_SUM_AT].iter().fold(0u8, |a, &b| a.rotate_left(1) ^ b)
}

impl Metadata for Toy {
    const MAGIC: &'static [u8] = TOY_MAGIC;
    const VERSION: u32 = 3;
    const OLDEST_VERSION: u32 = 1;

    fn encode(&self, w: &mut MetaWriter<'_>) -> Result<(), MetaError> {
        w.str_field::<16>(&self.name)?;
        w.u16(self.count)?;
        w.u64(self.size)
    }

    fn decode(version: u32, r: &mut MetaReader<'_>) -> Result<Self, MetaError> {
        let name = r.str_field::<16>()?;
        let count = if version >= 2 { r.u16()? } else { 1 };
        let size = if version >= 3 { r.u64()? } else { 0 };
        if count == 0 {
            return Err(MetaError::Invalid("count is zero"));
        }
        Ok(Toy { name, count, size })
    }

    fn seal(sector: &mut [u8]) -> Result<(), MetaError> {
        let sum = toy_sum(sector.get(..TOY_SUM_AT).ok_or(MetaError::Short)?);
        *sector.get_mut(TOY_SUM_AT).ok_or(MetaError::Short)? = sum;
        Ok(())
    }

    fn verify(version: u32, sector: &[u8]) -> Result<(), MetaError> {
        // Only version 3 sectors carry the checksum.
        if version < 3 {
            return Ok(());
        }
        match sector.get(TOY_SUM_AT) {
            Some(&s) if s == toy_sum(&sector[..TOY_SUM_AT]) => Ok(()),
            Some(_) => Err(MetaError::Invalid("checksum mismatch")),
            None => Err(MetaError::Short),
        }
    }
}

/// A toy sector (for seeds): `version`'s fields of `toy`, sealed if version 3.
pub fn toy_sector(version: u32, name: &str, count: u16, size: u64) -> Vec<u8> {
    let mut s = vec![0u8; 64];
    s[..TOY_MAGIC.len()].copy_from_slice(TOY_MAGIC);
    s[16..20].copy_from_slice(&version.to_le_bytes());
    s[20..20 + name.len()].copy_from_slice(name.as_bytes());
    s[36..38].copy_from_slice(&count.to_le_bytes());
    s[38..46].copy_from_slice(&size.to_le_bytes());
    if version >= 3 {
        s[TOY_SUM_AT] = toy_sum(&s);
    }
    s
}

/// Reader operations a generic-layer program can run.
const OPS: u8 = 7;

fn generic(input: &mut Input<'_>) {
    // The framework's part: magic, version range, verify, the class's decode.
    let sector = input.long();
    let decoded = metadata::decode::<Toy>(sector);
    match &decoded {
        Ok(t) => {
            let version = le32(sector, MAGIC_LEN);
            assert!((Toy::OLDEST_VERSION..=Toy::VERSION).contains(&version));
            let mut out = vec![0u8; TOY_SUM_AT + 1];
            metadata::encode(t, &mut out).expect("a decoded toy re-encodes");
            assert_eq!(metadata::decode::<Toy>(&out).as_ref(), Ok(t));
            // One byte short of the checksum: encoding must say so, not panic.
            assert_eq!(metadata::encode(t, &mut out[..TOY_SUM_AT]), Err(MetaError::Short));
        }
        Err(MetaError::NoMagic) => assert!(!metadata::has_magic::<Toy>(sector)),
        Err(MetaError::TooNew(v)) => assert!(*v > Toy::VERSION),
        Err(MetaError::TooOld(v)) => assert!(*v < Toy::OLDEST_VERSION),
        Err(_) => {}
    }
    if let Err(e) = decoded {
        // Every error explains itself.
        assert!(!e.to_string().is_empty());
        let _ = e.errno();
    }
    let _ = metadata::magic_matches(sector, input.short());
    let name = String::from_utf8_lossy(input.short()).into_owned();
    let cut = metadata::name_field::<16>(&name);
    assert!(cut.len() < 16 && name.starts_with(cut.as_str()));

    // The cursors: a program of reads over the rest, each mirrored by the writer. What was
    // read and written back must give the same bytes (strings up to their NUL).
    let program = input.short();
    let buf = input.rest();
    let mut r = MetaReader::new(buf);
    let mut copy = vec![0u8; buf.len()];
    let mut care = vec![true; buf.len()];
    let mut w = MetaWriter::new(&mut copy);
    let mut ops = program.iter();
    while let Some(&op) = ops.next() {
        let before = r.position();
        let result = match op % OPS {
            0 => r.u8().and_then(|v| w.u8(v)),
            1 => r.u16().and_then(|v| w.u16(v)),
            2 => r.u32().and_then(|v| w.u32(v)),
            3 => r.u64().and_then(|v| w.u64(v)),
            4 => r.str_field::<16>().and_then(|s| {
                // Bytes after the NUL are not part of the string.
                care[before + s.len()..before + 16].iter_mut().skip(1).for_each(|c| *c = false);
                w.str_field::<16>(&s)
            }),
            5 => {
                let n = usize::from(ops.next().copied().unwrap_or(0));
                r.take(n).and_then(|b| w.bytes(b))
            }
            _ => r.array::<5>().and_then(|a| w.bytes(&a)),
        };
        match result {
            Ok(()) => assert_eq!(r.position(), w.position()),
            // A read that does not fit moves nothing.
            Err(MetaError::Short) => {
                assert_eq!(r.position(), before);
                break;
            }
            // A string that is not UTF-8 was consumed; stop there.
            Err(_) => break,
        }
    }
    let end = w.position();
    for i in 0..end {
        if care[i] {
            assert_eq!(copy[i], buf[i], "byte {i} read and written back differs");
        }
    }
}

/// A dump input (for seeds): sector size `512 << ss_shift` and the last sector's bytes.
pub fn dump_input(ss_shift: u8, sector: &[u8]) -> Vec<u8> {
    Writer::new().u8(Kind::Dump as u8).u8(ss_shift).bytes(sector).finish()
}

fn dump(input: &mut Input<'_>) {
    let ss = 512u32 << (input.u8() % 4);
    let bytes = input.rest();
    let mut sector = vec![0u8; ss as usize];
    let n = bytes.len().min(sector.len());
    sector[..n].copy_from_slice(&bytes[..n]);

    let stripe = dump_one::<Stripe>(ss, &sector);
    // dump reads every field as version 3 lays them out, whatever the version; a label the
    // kernel accepts with a provider field (version 2 and up) always shows.
    if let Ok(md) = metadata::decode::<StripeMetadata>(&sector) {
        if md.version >= 2 {
            assert_eq!(stripe, None, "gstripe dump refused a label the kernel accepts");
        }
    }
    let journal = dump_one::<Journal>(ss, &sector);
    // gjournal dump decodes exactly as the kernel tastes.
    assert_eq!(journal.is_none(), metadata::decode::<JournalMetadata>(&sector).is_ok());
}

/// Run `<class> dump md0` over a disk whose last sector is `sector`; the error, if any.
fn dump_one<C: GeomClass>(ss: u32, sector: &[u8]) -> Option<String> {
    let md0: &CStr = c"md0";
    let mut disks = MemDisks::new();
    disks.add("md0", i64::from(ss) * 16, ss);
    disks.set_last_sector(md0, sector);
    let req = geom_host::command::parse::<C>(&["dump", "md0"]).expect("dump md0 parses");
    let values = req.user_params();
    let params: Vec<Param<'_>> = values.iter().map(|(name, value)| Param { name, value }).collect();
    let (mut out, mut err) = (String::new(), String::new());
    let error = run_local::<C>(&params, false, &mut disks, &mut out, &mut err);
    assert!(disks.misuse.is_empty(), "dump: {:?}", disks.misuse);
    assert_eq!(disks.last_sector(md0), sector, "dump wrote to the disk");
    match &error {
        None => assert!(out.starts_with("Metadata on md0:\n"), "dump succeeded without showing: {out:?}"),
        Some(e) => assert_eq!(e, "Not fully done."),
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recovery seeds reach what they were built for.
    #[test]
    fn recovery_seeds_walk_their_journals() {
        let want = [
            ("recovery-freebsd", 1, 3, Stop::End),
            ("recovery-freebsd-checksum", 1, 3, Stop::End),
            ("recovery-corrupt-checksum", 0, 0, Stop::BadChecksum),
            ("recovery-io-error", 0, 0, Stop::Io(Errno::EIO)),
            ("recovery-wild-start", 0, 0, Stop::NoStart),
            ("recovery-wrap", 1, 1, Stop::End),
        ];
        let seeds = crate::seeds::all();
        for (name, journals, entries, stop) in want {
            let s = seeds.iter().find(|s| s.name == name).expect("the seed exists");
            let mut input = Input::new(&s.bytes);
            assert_eq!(input.u8(), Kind::Recovery as u8);
            let _area_check = (input.u64(), input.u64(), input.u8(), input.u64());
            let found = walk(&walk_params(&mut input));
            assert_eq!((found.journals, found.entries, found.stop), (journals, entries, stop), "{name}");
            run(&s.bytes);
        }
    }

    /// The label seeds decode (all but those made to fail).
    #[test]
    fn label_seeds_decode() {
        for s in crate::seeds::all().iter().filter(|s| s.target == "metadata") {
            let sector = &s.bytes[1..];
            let ok = match s.bytes[0] {
                k if k == Kind::StripeLabel as u8 => metadata::decode::<StripeMetadata>(sector).is_ok(),
                k if k == Kind::JournalLabel as u8 => metadata::decode::<JournalMetadata>(sector).is_ok(),
                k if k == Kind::JournalRecord as u8 => {
                    JournalHeader::decode(sector).is_some() || RecordHeader::decode(sector).is_some()
                }
                _ => continue,
            };
            let meant_to_fail = s.name.ends_with("-v4") || s.name.contains("bad");
            assert_eq!(ok, !meant_to_fail, "{}", s.name);
        }
    }
}
