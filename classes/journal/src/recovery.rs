//! Finding what a journal holds after an unclean stop (`g_journal_sync`).
//!
//! The walk starts at the header the label names (its offset and id), follows records while
//! their headers decode and their entries make sense, and counts a journal complete when it
//! meets the header of the journal announced as next. Only complete journals count: their
//! entries are what must be copied home. The walk ends at the first sector that is neither a
//! sound record nor the expected header (the end of what was written, or a torn or corrupt
//! record); whatever the unfinished journal after the last complete one held is dropped,
//! exactly as gjournal drops it. Every field read from disk is checked before use.

use core::ops::Deref;

use geom_core::Errno;

use crate::extents::{Extent, ExtentMap};
use crate::format::{Area, JournalHeader, RecordHeader};

/// Why the walk stopped (for the console).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The starting header was missing, unreadable or of another journal.
    NoStart,
    /// A sector that is neither a record nor the next journal's header: the end of the data.
    End,
    /// A record whose entries are impossible (outside the data area, misplaced, not whole
    /// sectors): corrupt or torn.
    BadRecord,
    /// A record whose data does not match its checksum (checksum mode).
    BadChecksum,
    /// Reading the journal failed.
    Io(Errno),
    /// The walk went once round the whole area without ending.
    Lapped,
}

/// What the walk found.
#[derive(Debug)]
pub struct Found {
    /// The entries of the complete journals, newest winning where they overlap (offsets in
    /// the journal; no data cached).
    pub extents: ExtentMap,
    /// Complete journals found.
    pub journals: u32,
    /// Entries in them.
    pub entries: u32,
    /// The header of the journal after the last complete one: where writing goes on (its
    /// offset, id and next id). `None` if no journal was complete.
    pub last: Option<(u64, JournalHeader)>,
    /// Why the walk ended.
    pub stop: Stop,
}

/// Walk the journal area `area` from the header at `start` with id `id`; entries must lie
/// within the first `data_size` bytes of the data provider. `read(offset, length)` reads the
/// journal provider; with `checksum` every record's data is read and checked against its
/// MD5. Fails only if memory for the entries runs out.
pub fn walk<B: Deref<Target = [u8]>>(
    area: &Area,
    start: u64,
    id: u32,
    data_size: u64,
    checksum: bool,
    read: &mut dyn FnMut(u64, u64) -> Result<B, Errno>,
) -> Result<Found, Errno> {
    let ss = area.sectorsize;
    // No entry is longer than one request (`GJ_RECORD_MAX_SIZE` is built on that).
    let maxphys = (area.record_max - ss) / crate::format::RECORD_ENTRIES as u64;
    let mut found = Found { extents: ExtentMap::new(), journals: 0, entries: 0, last: None, stop: Stop::NoStart };
    if start < area.jstart || start.saturating_add(ss) > area.jend || start % ss != 0 {
        return Ok(found);
    }
    let first = match read(start, ss) {
        Ok(s) => JournalHeader::decode(&s),
        Err(e) => {
            found.stop = Stop::Io(e);
            return Ok(found);
        }
    };
    let Some(first) = first.filter(|h| h.id == id) else { return Ok(found) };
    let mut expected = first.next_id;
    let mut unfinished = ExtentMap::new();
    let mut unfinished_entries = 0u32;
    let mut offset = start + ss;
    let mut walked = ss;
    found.stop = loop {
        if walked > area.size() {
            break Stop::Lapped;
        }
        let at = area.validate(offset);
        if at != offset {
            walked += area.jend - offset;
        }
        let sector = match read(at, ss) {
            Ok(s) => s,
            Err(e) => break Stop::Io(e),
        };
        if let Some(rh) = RecordHeader::decode(&sector) {
            let mut pos = at + ss;
            let mut sum = checksum.then(md5::Md5::default);
            let mut bad = None;
            for e in &rh.entries {
                let sound = e.joffset == pos
                    && e.length > 0
                    && e.length <= maxphys
                    && e.length % ss == 0
                    && e.offset % ss == 0
                    && e.offset.checked_add(e.length).is_some_and(|end| end <= data_size)
                    && pos.checked_add(e.length).is_some_and(|end| end <= area.jend);
                if !sound {
                    bad = Some(Stop::BadRecord);
                    break;
                }
                if let Some(h) = sum.as_mut() {
                    match read(pos, e.length) {
                        Ok(d) => md5::Digest::update(h, &*d),
                        Err(err) => {
                            bad = Some(Stop::Io(err));
                            break;
                        }
                    }
                }
                unfinished.insert(Extent { offset: e.offset, length: e.length, joffset: pos, data: None })?;
                unfinished_entries += 1;
                pos += e.length;
            }
            if let Some(stop) = bad {
                break stop;
            }
            if let Some(h) = sum {
                let digest: [u8; 16] = md5::Digest::finalize(h).into();
                if digest[..8] != rh.sum {
                    break Stop::BadChecksum;
                }
            }
            walked += pos - at;
            offset = pos;
            continue;
        }
        match JournalHeader::decode(&sector) {
            Some(h) if h.id == expected => {
                found.extents.absorb(&mut unfinished)?;
                found.journals += 1;
                found.entries += unfinished_entries;
                unfinished_entries = 0;
                found.last = Some((at, h));
                expected = h.next_id;
                walked += ss;
                offset = at + ss;
            }
            _ => break Stop::End,
        }
    };
    Ok(found)
}
