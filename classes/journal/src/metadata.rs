//! gjournal's label, byte for byte as `sys/geom/journal/g_journal.h` encodes it into the last
//! sector of the data provider and of the journal provider (little endian, packed, 101 bytes,
//! the rest of the sector zero):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 16 | magic `"GEOM::JOURNAL"` |
//! | 16 | 4 | version (0) |
//! | 20 | 4 | device id (random; pairs a data provider with its journal provider) |
//! | 24 | 1 | type: 1 data, 2 journal, 3 both on one provider |
//! | 25 | 8 | journal area start (byte offset on the journal provider) |
//! | 33 | 8 | journal area end |
//! | 41 | 8 | offset of the oldest journal whose data may not be home yet |
//! | 49 | 4 | that journal's id |
//! | 53 | 8 | flags: 1 clean, 2 records carry a checksum |
//! | 61 | 16 | hard-coded provider name (`-h`), or zeros |
//! | 77 | 8 | the provider's size (0: not checked) |
//! | 85 | 16 | MD5 of bytes 0..85 |

use geom_core::metadata::{MetaError, MetaReader, MetaWriter, Metadata};
use md5::{Digest, Md5};

/// A provider name field: up to 16 bytes, NUL-padded.
pub type Name = heapless::String<16>;

/// `G_JOURNAL_MAGIC`.
pub const G_JOURNAL_MAGIC: &[u8] = b"GEOM::JOURNAL";
/// `G_JOURNAL_VERSION`: the only version there has been.
pub const G_JOURNAL_VERSION: u32 = 0;

/// `GJ_TYPE_DATA`: the provider holds the data.
pub const GJ_TYPE_DATA: u8 = 0x01;
/// `GJ_TYPE_JOURNAL`: the provider holds the journal.
pub const GJ_TYPE_JOURNAL: u8 = 0x02;
/// `GJ_TYPE_COMPLETE`: both on one provider (the journal at its end).
pub const GJ_TYPE_COMPLETE: u8 = GJ_TYPE_DATA | GJ_TYPE_JOURNAL;

/// `GJ_FLAG_CLEAN`: the device was stopped cleanly; nothing to replay.
pub const GJ_FLAG_CLEAN: u64 = 0x01;
/// `GJ_FLAG_CHECKSUM`: every record carries an MD5 of its data.
pub const GJ_FLAG_CHECKSUM: u64 = 0x02;

/// Where the hash starts: it covers every byte before it.
const HASH_AT: usize = 85;

/// One provider's label (`struct g_journal_metadata`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalMetadata {
    /// The device's id, shared by its data and journal providers.
    pub id: u32,
    /// What this provider holds: [`GJ_TYPE_DATA`], [`GJ_TYPE_JOURNAL`] or
    /// [`GJ_TYPE_COMPLETE`].
    pub kind: u8,
    /// First byte of the journal area on the journal provider.
    pub jstart: u64,
    /// End (exclusive) of the journal area.
    pub jend: u64,
    /// Where recovery starts: the header of the oldest journal not yet copied home.
    pub joffset: u64,
    /// The id that journal header must carry.
    pub jid: u32,
    /// [`GJ_FLAG_CLEAN`] and [`GJ_FLAG_CHECKSUM`] (other bits are kept as read).
    pub flags: u64,
    /// The provider this label is hard-coded for (`-h`), or empty.
    pub provider: Name,
    /// The provider's size when labeled; 0 matches any size.
    pub provsize: u64,
}

impl JournalMetadata {
    /// Was the device stopped cleanly?
    pub fn is_clean(&self) -> bool {
        self.flags & GJ_FLAG_CLEAN != 0
    }

    /// Do records carry checksums?
    pub fn has_checksum(&self) -> bool {
        self.flags & GJ_FLAG_CHECKSUM != 0
    }
}

/// MD5 of `bytes`.
pub(crate) fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

impl Metadata for JournalMetadata {
    const MAGIC: &'static [u8] = G_JOURNAL_MAGIC;
    const VERSION: u32 = G_JOURNAL_VERSION;

    fn encode(&self, w: &mut MetaWriter<'_>) -> Result<(), MetaError> {
        w.u32(self.id)?;
        w.u8(self.kind)?;
        w.u64(self.jstart)?;
        w.u64(self.jend)?;
        w.u64(self.joffset)?;
        w.u32(self.jid)?;
        w.u64(self.flags)?;
        w.str_field::<16>(&self.provider)?;
        w.u64(self.provsize)
    }

    fn seal(sector: &mut [u8]) -> Result<(), MetaError> {
        let hash = md5(&[sector.get(..HASH_AT).ok_or(MetaError::Short)?]);
        sector.get_mut(HASH_AT..HASH_AT + 16).ok_or(MetaError::Short)?.copy_from_slice(&hash);
        Ok(())
    }

    fn verify(_version: u32, sector: &[u8]) -> Result<(), MetaError> {
        let stored = sector.get(HASH_AT..HASH_AT + 16).ok_or(MetaError::Short)?;
        if md5(&[&sector[..HASH_AT]]) != stored {
            return Err(MetaError::Invalid("MD5 hash mismatch"));
        }
        Ok(())
    }

    fn decode(_version: u32, r: &mut MetaReader<'_>) -> Result<Self, MetaError> {
        let id = r.u32()?;
        let kind = r.u8()?;
        let jstart = r.u64()?;
        let jend = r.u64()?;
        let joffset = r.u64()?;
        let jid = r.u32()?;
        let flags = r.u64()?;
        let provider = r.str_field::<16>()?;
        let provsize = r.u64()?;
        if kind == 0 || kind & !GJ_TYPE_COMPLETE != 0 {
            return Err(MetaError::Invalid("unknown provider type"));
        }
        if jstart >= jend {
            return Err(MetaError::Invalid("empty journal area"));
        }
        Ok(JournalMetadata { id, kind, jstart, jend, joffset, jid, flags, provider, provsize })
    }
}
