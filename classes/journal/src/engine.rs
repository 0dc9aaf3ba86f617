//! The journal itself: the state the device's worker owns, and what it does with requests.
//!
//! Everything here runs on the worker's thread (or in taste, before the worker exists) with a
//! [`SleepCtx`]: it may sleep, so it does its I/O synchronously (`g_read_data`,
//! `g_write_data`, `g_io_flush`). Nothing else touches this state, so it needs no lock.
//!
//! # A write's life
//!
//! 1. start posts it to the worker, which keeps it in `pending` (the request itself: its
//!    data stays in the caller's buffer).
//! 2. When the mailbox runs dry (or `pending` is full), pending writes become records,
//!    each written with one request at the head of the journal; then the writes are
//!    acknowledged and their data indexed in `active` (kept in memory while the cache
//!    allows, otherwise read back from the journal when needed).
//! 3. A journal ends when the next journal's header is written after it (a *switch*:
//!    `BIO_FLUSH`, a full journal, the last writer closing, `gjournal sync`). Its extents
//!    move to `inactive`.
//! 4. In the background, ended journals are copied home to the data provider (`copying`);
//!    once a round is home and flushed, the label's start of the journal moves past it
//!    (a *checkpoint*) and its space in the ring is free again.
//!
//! # Durability
//!
//! Only complete journals are replayed after a crash, so `BIO_FLUSH` ends the active journal:
//! flush the journal provider (the records are on stable storage), write the next journal's
//! header, flush again; only then does the flush complete. A checkpoint flushes the data
//! provider before the label moves and again after. Reads see the newest data: the data
//! provider, overlaid with the journals not yet home, overlaid with writes not yet
//! journaled.
//!
//! # Back-pressure
//!
//! When a record will not fit before the oldest journal still needed, the worker ends the
//! active journal and copies until it does; writes wait in the mailbox meanwhile. Memory is
//! bounded by the cache limit (extents beyond it keep no copy) and by `pending`'s fixed
//! capacity.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;

use geom_core::metadata::{self, MetaError};
use geom_core::{BioQueue, Cmd, Consumer, Errno, Handler, Request, SleepCtx};

use crate::extents::{copy_of, CopyQueue, Extent, ExtentMap};
use crate::format::{Area, JournalHeader, RecordHeader, RECORD_ENTRIES};
use crate::metadata::{JournalMetadata, Name, GJ_FLAG_CHECKSUM, GJ_FLAG_CLEAN};
use crate::recovery::{self, Stop};
use crate::{Shared, Tunables};

/// Writes kept before they must become records even though more mail is waiting.
const PENDING_MAX: usize = 64;

/// What the worker is told besides requests.
#[derive(Debug)]
pub enum Msg {
    /// The provider was closed for writing: once idle, end the journal, copy everything home
    /// and mark the device clean.
    Closed,
    /// `gjournal sync`: end the active journal and copy everything home now.
    Sync,
}

/// The fixed facts of one device.
pub(crate) struct Config {
    /// The data provider's consumer.
    pub data: Consumer,
    /// The journal provider's consumer (the same as `data` when both share a provider).
    pub journal: Consumer,
    /// Bytes the device exports (`sc_mediasize`).
    pub data_size: u64,
    /// The data provider's size (its label sits in its last sector).
    pub dprov_size: u64,
    /// Sector size of both providers.
    pub sectorsize: u64,
    /// The journal area.
    pub area: Area,
    /// The device id.
    pub id: u32,
    /// The data provider's label type (`GJ_TYPE_DATA` or `GJ_TYPE_COMPLETE`).
    pub kind: u8,
    /// Records carry checksums.
    pub checksum: bool,
    /// The hard-coded data provider name, or empty.
    pub hardcoded: Name,
    /// `maxphys`: the most data one record holds (besides gjournal's 20 entries).
    pub maxphys: u64,
}

/// The worker's state for one device.
pub struct Engine {
    cfg: Config,
    shared: Arc<Shared>,
    tun: Arc<Tunables>,
    /// Where the next record or header goes (before the wrap rule).
    head: u64,
    /// The label's journal start: the oldest journal still needed, and its id.
    tail: u64,
    tail_id: u32,
    /// The journal being written: where its header is, its id, and the next one's.
    active_start: u64,
    active_id: u32,
    next_id: u32,
    /// Data in the active journal.
    active: ExtentMap,
    /// Data in ended journals, not yet being copied.
    inactive: ExtentMap,
    /// Data on its way home, and the journal header the label moves to once it is.
    copying: CopyQueue,
    copy_end: (u64, u32),
    /// Writes not yet in a record, in arrival order.
    pending: Vec<Request>,
    /// `BIO_FLUSH` requests waiting for the next switch.
    flushes: BioQueue,
    /// What the label on disk says.
    clean: bool,
    /// Writes since the last flush of each provider.
    journal_unflushed: bool,
    data_unflushed: bool,
    /// `gjournal sync` asked for everything to go home.
    sync_requested: bool,
    /// A copy home failed: the journal keeps the data, copying stops.
    broken: bool,
}

fn to_i64(v: u64) -> Result<i64, Errno> {
    i64::try_from(v).map_err(|_| Errno::EINVAL)
}

/// A fresh journal id: any value but the one in force (a journal "ends" when its successor's
/// header carries the id it announced, so the two must differ).
fn new_id(not: u32) -> u32 {
    loop {
        let id = geom_core::arc4random();
        if id != not {
            return id;
        }
    }
}

impl Engine {
    /// Bring the device up (`g_journal_worker`'s prologue): a clean device starts a fresh
    /// journal; otherwise the complete journals are found and copied home before anything
    /// else happens, as gjournal does before it creates its provider. Sleeps.
    pub(crate) fn start(
        cx: &SleepCtx,
        cfg: Config,
        md: &JournalMetadata,
        shared: Arc<Shared>,
        tun: Arc<Tunables>,
    ) -> Result<Engine, Errno> {
        let mut pending = Vec::new();
        pending.try_reserve_exact(PENDING_MAX).map_err(|_| Errno::ENOMEM)?;
        let mut e = Engine {
            head: cfg.area.jstart,
            tail: cfg.area.jstart,
            tail_id: 0,
            active_start: cfg.area.jstart,
            active_id: 0,
            next_id: 0,
            active: ExtentMap::new(),
            inactive: ExtentMap::new(),
            copying: CopyQueue::default(),
            copy_end: (cfg.area.jstart, 0),
            pending,
            flushes: BioQueue::new(),
            clean: md.is_clean(),
            journal_unflushed: false,
            data_unflushed: false,
            sync_requested: false,
            broken: false,
            cfg,
            shared,
            tun,
        };
        let name = e.cfg.data.provider().map(|p| String::from(p.name().to_string_lossy())).unwrap_or_default();
        if md.is_clean() {
            e.tun.log(0, format_args!("Journal {name} clean."));
            e.initialize(cx)?;
            return Ok(e);
        }
        let (jcp, ss) = (e.cfg.journal, e.cfg.sectorsize);
        let found =
            recovery::walk(&e.cfg.area, md.joffset, md.jid, e.cfg.data_size, e.cfg.checksum, &mut |off, len| {
                jcp.read_data(cx, to_i64(off)?, to_i64(len)?)
            })?;
        match found.stop {
            Stop::BadChecksum => {
                e.tun.log(0, format_args!("MD5 hash mismatch in a record of {name}; replay stops there."))
            }
            Stop::BadRecord => {
                e.tun.log(0, format_args!("Corrupt record in the journal of {name}; replay stops there."))
            }
            Stop::Io(err) => {
                e.tun.log(0, format_args!("Error while reading the journal of {name} (error={}).", err.get()))
            }
            Stop::NoStart | Stop::End | Stop::Lapped => {}
        }
        let Some((at, header)) = found.last else {
            e.tun.log(0, format_args!("Journal {name} has no complete journal to replay. Initializing."));
            e.initialize(cx)?;
            return e.write_label(cx, false).map(|()| e);
        };
        e.tun.log(
            0,
            format_args!(
                "Journal {name} consistent: replaying {} entries of {} journal(s).",
                found.entries, found.journals
            ),
        );
        e.shared.stats.replayed.fetch_add(u64::from(found.entries), Relaxed);
        e.tail = md.joffset;
        e.tail_id = md.jid;
        e.active_start = at;
        e.active_id = header.id;
        e.next_id = header.next_id;
        e.head = at + ss;
        e.copying = found.extents.into_copy();
        e.copy_end = (at, header.id);
        e.copy_all(cx)?;
        Ok(e)
    }

    /// Start a fresh journal at the beginning of the area (`g_journal_initialize`).
    fn initialize(&mut self, cx: &SleepCtx) -> Result<(), Errno> {
        let at = self.cfg.area.jstart;
        let id = new_id(0);
        let next = new_id(id);
        self.write_header(cx, at, JournalHeader { id, next_id: next })?;
        self.tail = at;
        self.tail_id = id;
        self.active_start = at;
        self.active_id = id;
        self.next_id = next;
        self.head = at + self.cfg.sectorsize;
        self.copy_end = (at, id);
        Ok(())
    }

    /// A zeroed sector buffer, or `ENOMEM`.
    fn sector(&self) -> Result<Vec<u8>, Errno> {
        let mut sector = Vec::new();
        sector.try_reserve_exact(self.cfg.sectorsize as usize).map_err(|_| Errno::ENOMEM)?;
        sector.resize(self.cfg.sectorsize as usize, 0);
        Ok(sector)
    }

    fn write_header(&mut self, cx: &SleepCtx, at: u64, h: JournalHeader) -> Result<(), Errno> {
        let mut sector = self.sector()?;
        h.encode(&mut sector);
        self.cfg.journal.write_data(cx, to_i64(at)?, &sector)?;
        self.journal_unflushed = true;
        Ok(())
    }

    /// `BIO_FLUSH` a provider; one that does not support it has nothing to flush.
    fn flush(cx: &SleepCtx, cp: Consumer) -> Result<(), Errno> {
        match cp.flush(cx) {
            Err(Errno::EOPNOTSUPP) => Ok(()),
            r => r,
        }
    }

    /// Flush whatever was written since the last flush.
    fn flush_all(&mut self, cx: &SleepCtx) -> Result<(), Errno> {
        if self.journal_unflushed {
            Self::flush(cx, self.cfg.journal)?;
            self.journal_unflushed = false;
            if self.cfg.journal == self.cfg.data {
                self.data_unflushed = false;
            }
        }
        if self.data_unflushed {
            Self::flush(cx, self.cfg.data)?;
            self.data_unflushed = false;
        }
        Ok(())
    }

    /// Write the label on the data provider (`g_journal_metadata_update`): everything before
    /// it flushed first, the label flushed after, so it never points at data that is not on
    /// stable storage.
    fn write_label(&mut self, cx: &SleepCtx, clean: bool) -> Result<(), Errno> {
        self.flush_all(cx)?;
        let md = JournalMetadata {
            id: self.cfg.id,
            kind: self.cfg.kind,
            jstart: self.cfg.area.jstart,
            jend: self.cfg.area.jend,
            joffset: self.tail,
            jid: self.tail_id,
            flags: if clean { GJ_FLAG_CLEAN } else { 0 } | if self.cfg.checksum { GJ_FLAG_CHECKSUM } else { 0 },
            provider: self.cfg.hardcoded.clone(),
            provsize: self.cfg.dprov_size,
        };
        let mut sector = self.sector()?;
        metadata::encode(&md, &mut sector).map_err(MetaError::errno)?;
        let at = self.cfg.dprov_size - self.cfg.sectorsize;
        self.cfg.data.write_data(cx, to_i64(at)?, &sector)?;
        Self::flush(cx, self.cfg.data)?;
        self.clean = clean;
        Ok(())
    }

    /// Can `len` bytes go at the head (and one journal header after them, so the journal can
    /// always be ended) without reaching the oldest journal still needed?
    fn room_for(&self, len: u64) -> bool {
        let place = |from: u64, len: u64, lapped: bool| -> Option<(u64, bool)> {
            let at = self.cfg.area.validate(from);
            let lapped = if at != from {
                if lapped {
                    return None;
                }
                true
            } else {
                lapped
            };
            let end = at + len;
            (!(lapped && end > self.tail)).then_some((end, lapped))
        };
        place(self.head, len, self.head < self.tail)
            .and_then(|(end, lapped)| place(end, self.cfg.sectorsize, lapped))
            .is_some()
    }

    /// Make room for `len` bytes at the head: end the active journal, copy home, and as a
    /// last resort start over at the beginning of an emptied area. Sleeps as long as that
    /// takes (writes wait: the back-pressure).
    fn make_room(&mut self, cx: &SleepCtx, len: u64) -> Result<(), Errno> {
        let mut full = false;
        loop {
            if self.room_for(len) {
                return Ok(());
            }
            if !full {
                full = true;
                self.shared.stats.journal_full.fetch_add(1, Relaxed);
            }
            if self.broken {
                return Err(Errno::ENOSPC);
            }
            if !self.active.is_empty() {
                self.switch(cx)?;
            } else if !self.copying.is_done() || !self.inactive.is_empty() || self.tail != self.active_start {
                self.copy_all(cx)?;
            } else if self.active_start != self.cfg.area.jstart {
                // Everything is home and the active journal is empty, but its header sits
                // where the next record cannot go round it: start over at the beginning.
                self.initialize(cx)?;
                self.write_label(cx, false)?;
            } else {
                return Err(Errno::ENOSPC);
            }
        }
    }

    /// End the active journal (`g_journal_switch`): its records onto stable storage, then the
    /// next journal's header after them. Its data joins the journals waiting to go home.
    fn switch(&mut self, cx: &SleepCtx) -> Result<(), Errno> {
        // Moving the extents must not fail half-way: make room for them first.
        self.inactive.reserve(self.active.len())?;
        if self.journal_unflushed {
            Self::flush(cx, self.cfg.journal)?;
            self.journal_unflushed = false;
        }
        let at = self.cfg.area.validate(self.head);
        let id = self.next_id;
        let next = new_id(id);
        self.write_header(cx, at, JournalHeader { id, next_id: next })?;
        self.head = at + self.cfg.sectorsize;
        self.active_start = at;
        self.active_id = id;
        self.next_id = next;
        self.inactive.absorb(&mut self.active)?;
        self.shared.stats.switches.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Copy one extent home, or finish a round: move the label past a round that is home, or
    /// start the next. Returns whether there was anything to do.
    fn copy_step(&mut self, cx: &SleepCtx) -> Result<bool, Errno> {
        if self.broken {
            return Ok(false);
        }
        let Some(e) = self.copying.peek() else {
            if self.tail != self.copy_end.0 {
                // The round is home: flush it, then move the label's start past it.
                self.tail = self.copy_end.0;
                self.tail_id = self.copy_end.1;
                self.write_label(cx, false)?;
                self.shared.stats.checkpoints.fetch_add(1, Relaxed);
                return Ok(true);
            }
            if self.inactive.is_empty() {
                return Ok(false);
            }
            self.copying = core::mem::take(&mut self.inactive).into_copy();
            self.copy_end = (self.active_start, self.active_id);
            return Ok(true);
        };
        let (offset, length, joffset) = (to_i64(e.offset)?, to_i64(e.length)?, to_i64(e.joffset)?);
        let r = match &e.data {
            Some(d) => self.cfg.data.write_data(cx, offset, d),
            None => {
                self.cfg.journal.read_data(cx, joffset, length).and_then(|d| self.cfg.data.write_data(cx, offset, &d))
            }
        };
        if let Err(err) = r {
            self.tun
                .log(0, format_args!("Cannot copy journaled data home (error={}); the journal keeps it.", err.get()));
            self.broken = true;
            return Err(err);
        }
        self.data_unflushed = true;
        self.shared.stats.copied.fetch_add(length as u64, Relaxed);
        self.copying.advance();
        Ok(true)
    }

    /// Copy everything in ended journals home and move the label's start to the active
    /// journal.
    fn copy_all(&mut self, cx: &SleepCtx) -> Result<(), Errno> {
        while self.copy_step(cx)? {}
        Ok(())
    }

    /// How full the ring is, in percent of its size (live journals from the label's start
    /// to the head).
    fn used_percent(&self) -> u64 {
        let a = &self.cfg.area;
        let used =
            if self.head >= self.tail { self.head - self.tail } else { (a.jend - self.tail) + (self.head - a.jstart) };
        used * 100 / a.size()
    }

    /// Bytes of journaled data held in memory.
    fn cached(&self) -> u64 {
        self.active.cached_bytes() + self.inactive.cached_bytes() + self.copying.cached_bytes()
    }

    /// Turn pending writes into records, acknowledge them, then complete waiting flushes.
    fn commit(&mut self, cx: &SleepCtx) {
        while !self.pending.is_empty() {
            let mut n = 0;
            let mut bytes = 0u64;
            for r in &self.pending {
                let len = r.length() as u64;
                if n == RECORD_ENTRIES || (n > 0 && bytes + len > self.cfg.maxphys) {
                    break;
                }
                n += 1;
                bytes += len;
            }
            let mut batch: heapless::Vec<Request, RECORD_ENTRIES> = heapless::Vec::new();
            for r in self.pending.drain(..n) {
                // Cannot fail: n is at most RECORD_ENTRIES.
                let _ = batch.push(r);
            }
            match self.write_record(cx, &batch, bytes) {
                Ok(()) => batch.into_iter().for_each(|r| {
                    let n = r.length();
                    r.complete(n);
                }),
                Err(e) => batch.into_iter().for_each(|r| r.fail(e)),
            }
        }
        if self.flushes.is_empty() {
            return;
        }
        let r = if self.active.is_empty() { Ok(()) } else { self.switch(cx) }.and_then(|()| self.flush_all(cx));
        while let Some(req) = self.flushes.remove_first() {
            req.finish(r.map(|()| 0));
        }
    }

    /// Write one record of `batch` (`bytes` of data) at the head, and index its entries.
    fn write_record(&mut self, cx: &SleepCtx, batch: &[Request], bytes: u64) -> Result<(), Errno> {
        let ss = self.cfg.sectorsize;
        let len = ss + bytes;
        self.make_room(cx, len)?;
        let at = self.cfg.area.validate(self.head);
        let mut buf = Vec::new();
        buf.try_reserve_exact(len as usize).map_err(|_| Errno::ENOMEM)?;
        buf.resize(ss as usize, 0);
        let mut header = RecordHeader { journal_id: self.active_id, sum: [0; 8], entries: heapless::Vec::new() };
        let mut pos = at + ss;
        for r in batch {
            let data = r.data().ok_or(Errno::EINVAL)?;
            let e = crate::format::Entry { joffset: pos, offset: r.offset() as u64, length: data.len() as u64 };
            header.entries.push(e).map_err(|_| Errno::EINVAL)?;
            buf.extend_from_slice(data);
            pos += data.len() as u64;
        }
        if self.cfg.checksum {
            let digest = crate::metadata::md5(&[&buf[ss as usize..]]);
            header.sum.copy_from_slice(&digest[..8]);
        }
        header.encode(&mut buf[..ss as usize]).map_err(MetaError::errno)?;
        self.active.reserve(batch.len())?;
        self.cfg.journal.write_data(cx, to_i64(at)?, &buf)?;
        self.head = at + len;
        self.journal_unflushed = true;
        self.shared.stats.records.fetch_add(1, Relaxed);
        let limit = self.tun.cache_limit.load(Relaxed);
        for (r, e) in batch.iter().zip(header.entries.iter()) {
            let keep = self.cached() + e.length <= limit;
            let data = if keep { r.data().and_then(copy_of) } else { None };
            self.active.insert(Extent { offset: e.offset, length: e.length, joffset: e.joffset, data })?;
        }
        Ok(())
    }

    /// A read: the data provider, overlaid with every journal not yet home, then with writes
    /// not yet journaled.
    fn read(&mut self, cx: &SleepCtx, mut req: Request) {
        let (offset, length) = (req.offset(), req.length());
        let (jcp, dcp, maxphys) = (self.cfg.journal, self.cfg.data, self.cfg.maxphys as usize);
        let Some(buf) = req.data_mut() else { return req.fail(Errno::EINVAL) };
        let mut failed = None;
        // The data provider first, in pieces g_read_data takes (at most maxphys).
        for (i, piece) in buf.chunks_mut(maxphys).enumerate() {
            match dcp.read_data(cx, offset + (i * maxphys) as i64, piece.len() as i64) {
                Ok(b) if b.len() == piece.len() => piece.copy_from_slice(&b),
                Ok(_) => failed = failed.or(Some(Errno::EIO)),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        let (start, end) = (offset as u64, (offset + length) as u64);
        let mut overlay = |at: u64, len: u64, joffset: u64, data: Option<&[u8]>| {
            let dst = &mut buf[(at - start) as usize..(at - start + len) as usize];
            match data {
                Some(d) => dst.copy_from_slice(d),
                None => match to_i64(joffset).and_then(|j| jcp.read_data(cx, j, len as i64)) {
                    Ok(d) if d.len() == dst.len() => dst.copy_from_slice(&d),
                    Ok(_) => failed = failed.or(Some(Errno::EIO)),
                    Err(e) => failed = failed.or(Some(e)),
                },
            }
        };
        self.copying.overlaps(start, end, &mut overlay);
        self.inactive.overlaps(start, end, &mut overlay);
        self.active.overlaps(start, end, &mut overlay);
        for w in &self.pending {
            let (ws, we) = (w.offset() as u64, (w.offset() + w.length()) as u64);
            let (s, e) = (ws.max(start), we.min(end));
            if s < e {
                if let Some(d) = w.data() {
                    overlay(s, e - s, 0, Some(&d[(s - ws) as usize..(e - ws) as usize]));
                }
            }
        }
        match failed {
            Some(e) => req.fail(e),
            None => req.complete(length),
        }
    }

    /// A write: mark the device dirty first if the label says clean, then keep it pending.
    fn write(&mut self, cx: &SleepCtx, req: Request) {
        // A record entry is at most maxphys bytes (gjournal's ring arithmetic depends on it);
        // GEOM's consumers never send more.
        if req.length() as u64 > self.cfg.maxphys {
            return req.fail(Errno::EINVAL);
        }
        if self.clean {
            if let Err(e) = self.write_label(cx, false) {
                return req.fail(e);
            }
            self.tun.log(1, format_args!("Marking journal {} as dirty.", self.cfg.id));
        }
        if self.pending.len() >= PENDING_MAX {
            self.commit(cx);
        }
        // Cannot need memory: capacity for PENDING_MAX was reserved and commit emptied it.
        self.pending.push(req);
    }

    /// Wind down after the last writer closed, or on a sync: end the journal and copy one
    /// step at a time; when all is home after a close, mark the label clean. Returns whether
    /// there is more to do.
    fn settle(&mut self, cx: &SleepCtx, mark_clean: bool) -> Result<bool, Errno> {
        if !self.active.is_empty() {
            self.switch(cx)?;
            return Ok(true);
        }
        if self.copy_step(cx)? {
            return Ok(true);
        }
        self.sync_requested = false;
        if mark_clean && !self.clean {
            self.write_label(cx, true)?;
            self.tun.log(1, format_args!("Marking journal {} as clean.", self.cfg.id));
        }
        self.shared.stats.syncs.fetch_add(1, Relaxed);
        Ok(false)
    }
}

impl Handler for Engine {
    type Msg = Msg;

    fn bio(&mut self, cx: &SleepCtx, req: Request) {
        match req.cmd() {
            Cmd::Read => self.read(cx, req),
            Cmd::Write => self.write(cx, req),
            Cmd::Flush => self.flushes.insert_tail(req),
            _ => req.fail(Errno::EOPNOTSUPP),
        }
    }

    fn message(&mut self, _cx: &SleepCtx, msg: Msg) {
        match msg {
            Msg::Closed => {}
            Msg::Sync => self.sync_requested = true,
        }
    }

    fn idle(&mut self, cx: &SleepCtx) -> bool {
        self.commit(cx);
        let closed = self.shared.writers.load(Relaxed) == 0 && !self.clean;
        if closed || self.sync_requested {
            return self.settle(cx, closed).unwrap_or(false);
        }
        let limit = self.tun.cache_limit.load(Relaxed);
        let pressed = self.used_percent() > u64::from(self.tun.force_switch.load(Relaxed)) || self.cached() > limit;
        if pressed || !self.copying.is_done() {
            if self.copying.is_done() && self.inactive.is_empty() && !self.active.is_empty() {
                return self.switch(cx).is_ok();
            }
            return self.copy_step(cx).unwrap_or(false);
        }
        false
    }

    fn stopped(&mut self, cx: &SleepCtx) {
        if self.shared.orphaned.load(Relaxed) {
            for r in self.pending.drain(..) {
                r.fail(Errno::ENXIO);
            }
            while let Some(r) = self.flushes.remove_first() {
                r.fail(Errno::ENXIO);
            }
            return;
        }
        self.commit(cx);
        // The device is going: everything home, and the label clean (`g_journal_destroy`).
        loop {
            match self.settle(cx, true) {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    self.tun.log(0, format_args!("Cannot stop journal {} cleanly (error={}).", self.cfg.id, e.get()));
                    break;
                }
            }
        }
    }
}
