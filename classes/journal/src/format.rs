//! The journal area's on-disk records, as `g_journal.c` encodes them (little endian), and the
//! rule that decides where each one may start.
//!
//! The area `[jstart, jend)` of the journal provider is a ring of journals. A journal is a
//! *journal header* followed by *records*; each record is a one-sector *record header*
//! listing up to 20 entries, followed at once by the entries' data, in order:
//!
//! ```text
//!   JH(id=A, next=B) RH d d d RH d d ... JH(id=B, next=C) RH d ...
//! ```
//!
//! A journal is *complete* once the header of the journal after it (whose id is the `next`
//! its own header announced) is on disk: only complete journals are replayed.
//!
//! | journal header (one sector) | offset | size |
//! |---|---|---|
//! | `"GJHDR\0"` | 0 | 6 |
//! | journal id | 6 | 4 |
//! | next journal's id | 10 | 4 |
//!
//! | record header (one sector) | offset | size |
//! |---|---|---|
//! | `"GJRHDR\0"` | 0 | 7 |
//! | journal id | 7 | 4 (then 4 bytes gjournal leaves unwritten) |
//! | number of entries (at most 20) | 15 | 2 |
//! | first 8 bytes of the MD5 of the entries' data (checksum mode) | 17 | 8 |
//! | entries: offset in the journal, offset on the data provider, length | 25 | 24 each |

use geom_core::metadata::MetaError;

/// `GJ_HEADER_MAGIC` with its NUL.
pub const HEADER_MAGIC: &[u8; 6] = b"GJHDR\0";
/// `GJ_RECORD_HEADER_MAGIC` with its NUL.
pub const RECORD_MAGIC: &[u8; 7] = b"GJRHDR\0";
/// `GJ_RECORD_HEADER_NENTRIES`: entries one record header holds.
pub const RECORD_ENTRIES: usize = 20;
/// Bytes of a record header that carry meaning (25 + 20 × 24 = 505: it fits a 512-byte
/// sector).
pub const RECORD_HEADER_LEN: usize = 25 + RECORD_ENTRIES * 24;

/// A journal header (`struct g_journal_header`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalHeader {
    /// This journal's id.
    pub id: u32,
    /// The id the next journal's header will carry (what makes this one complete).
    pub next_id: u32,
}

impl JournalHeader {
    /// Encode into `sector` (zeroed first).
    pub fn encode(&self, sector: &mut [u8]) {
        sector.fill(0);
        sector[..6].copy_from_slice(HEADER_MAGIC);
        sector[6..10].copy_from_slice(&self.id.to_le_bytes());
        sector[10..14].copy_from_slice(&self.next_id.to_le_bytes());
    }

    /// Decode from a sector, if it is one.
    pub fn decode(sector: &[u8]) -> Option<JournalHeader> {
        if sector.get(..6)? != HEADER_MAGIC {
            return None;
        }
        Some(JournalHeader { id: le32(sector, 6)?, next_id: le32(sector, 10)? })
    }
}

/// One entry of a record (`struct g_journal_entry`): `length` bytes that belong at `offset`
/// on the data provider, kept at `joffset` on the journal provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Where the data lies in the journal.
    pub joffset: u64,
    /// Where it belongs on the data provider.
    pub offset: u64,
    /// How many bytes.
    pub length: u64,
}

/// A record header (`struct g_journal_record_header`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// The id of the journal the record belongs to (gjournal's recovery does not check it).
    pub journal_id: u32,
    /// First half of the MD5 over the entries' data, in checksum mode; zeros otherwise.
    pub sum: [u8; 8],
    /// The entries, in the order their data follows the header.
    pub entries: heapless::Vec<Entry, RECORD_ENTRIES>,
}

impl RecordHeader {
    /// Encode into `sector` (zeroed first; at least [`RECORD_HEADER_LEN`] bytes).
    pub fn encode(&self, sector: &mut [u8]) -> Result<(), MetaError> {
        let out = sector.get_mut(..RECORD_HEADER_LEN).ok_or(MetaError::Short)?;
        out.fill(0);
        out[..7].copy_from_slice(RECORD_MAGIC);
        out[7..11].copy_from_slice(&self.journal_id.to_le_bytes());
        out[15..17].copy_from_slice(&(self.entries.len() as u16).to_le_bytes());
        out[17..25].copy_from_slice(&self.sum);
        for (i, e) in self.entries.iter().enumerate() {
            let at = 25 + i * 24;
            out[at..at + 8].copy_from_slice(&e.joffset.to_le_bytes());
            out[at + 8..at + 16].copy_from_slice(&e.offset.to_le_bytes());
            out[at + 16..at + 24].copy_from_slice(&e.length.to_le_bytes());
        }
        Ok(())
    }

    /// Decode from a sector: `None` if it is not a record header, or claims more entries than
    /// a header holds.
    pub fn decode(sector: &[u8]) -> Option<RecordHeader> {
        if sector.get(..7)? != RECORD_MAGIC {
            return None;
        }
        let n = usize::from(u16::from_le_bytes([*sector.get(15)?, *sector.get(16)?]));
        if n > RECORD_ENTRIES {
            return None;
        }
        let mut entries = heapless::Vec::new();
        for i in 0..n {
            let at = 25 + i * 24;
            let e = Entry { joffset: le64(sector, at)?, offset: le64(sector, at + 8)?, length: le64(sector, at + 16)? };
            entries.push(e).ok()?;
        }
        let mut sum = [0u8; 8];
        sum.copy_from_slice(sector.get(17..25)?);
        Some(RecordHeader { journal_id: le32(sector, 7)?, sum, entries })
    }
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The geometry of a journal area: where records may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Area {
    /// First byte of the area.
    pub jstart: u64,
    /// End of the area (exclusive).
    pub jend: u64,
    /// The journal provider's sector size.
    pub sectorsize: u64,
    /// `GJ_RECORD_MAX_SIZE`: a header sector and 20 entries of `maxphys` bytes.
    pub record_max: u64,
}

impl Area {
    /// The area of `[jstart, jend)` on a provider with `sectorsize`-byte sectors, where
    /// requests are at most `maxphys` bytes; `None` unless the area is sector-aligned and
    /// holds a journal header and the largest record twice over (less cannot make progress:
    /// after a full copy the next record must fit beside the live journal header).
    pub fn new(jstart: u64, jend: u64, sectorsize: u64, maxphys: u64) -> Option<Area> {
        let record_max = sectorsize.checked_add(maxphys.checked_mul(RECORD_ENTRIES as u64)?)?;
        let ok = sectorsize.is_power_of_two()
            && jstart % sectorsize == 0
            && jend % sectorsize == 0
            && jend.checked_sub(jstart)? > 2 * (record_max + sectorsize);
        ok.then_some(Area { jstart, jend, sectorsize, record_max })
    }

    /// `GJ_VALIDATE_OFFSET`: where a header meant for `offset` really goes. When the largest
    /// record would not fit before the end of the area, writing (and reading) starts over at
    /// its beginning. Writer and reader must agree on this, so it is gjournal's rule exactly.
    pub fn validate(&self, offset: u64) -> u64 {
        if offset.saturating_add(self.record_max) >= self.jend {
            self.jstart
        } else {
            offset
        }
    }

    /// Bytes of the area.
    pub fn size(&self) -> u64 {
        self.jend - self.jstart
    }
}
