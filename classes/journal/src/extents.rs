//! [`ExtentMap`]: which byte ranges of the data provider a set of journals holds newer data
//! for, where that data lies in the journal, and (while memory allows) a copy of it.
//!
//! gjournal keeps the same thing as sorted lists of bios (`g_journal_insert`); this is a
//! sorted vector of non-overlapping extents. Inserting a range cuts away whatever older
//! extents it overlaps (the newer write wins), so reads and the copy home never see two
//! versions of a byte. Every allocation is fallible: the map lives on the journal's worker,
//! whose memory may run short. Losing a cached copy is never an error (the data is read back
//! from the journal); only failing to record an extent at all is.

use alloc::vec::Vec;

use geom_core::Errno;

/// `length` bytes belonging at `offset` on the data provider, kept at `joffset` in the
/// journal; `data` holds them too unless memory ran short.
#[derive(Debug, PartialEq, Eq)]
pub struct Extent {
    /// Where the bytes belong on the data provider.
    pub offset: u64,
    /// How many bytes.
    pub length: u64,
    /// Where they lie in the journal.
    pub joffset: u64,
    /// A copy in memory (exactly `length` bytes), if kept.
    pub data: Option<Vec<u8>>,
}

impl Extent {
    fn end(&self) -> u64 {
        self.offset + self.length
    }

    /// Drop the first `n` bytes (no allocation).
    fn cut_front(&mut self, n: u64) {
        self.offset += n;
        self.joffset += n;
        self.length -= n;
        if let Some(d) = &mut self.data {
            d.drain(..n as usize);
        }
    }

    /// Keep only the first `n` bytes (no allocation).
    fn keep_front(&mut self, n: u64) {
        self.length = n;
        if let Some(d) = &mut self.data {
            d.truncate(n as usize);
        }
    }

    /// The part from `from` bytes on, as a new extent (its data copied if memory allows).
    fn tail_from(&self, from: u64) -> Extent {
        let data = self.data.as_ref().and_then(|d| copy_of(&d[from as usize..]));
        Extent { offset: self.offset + from, length: self.length - from, joffset: self.joffset + from, data }
    }
}

/// A copy of `bytes`, or `None` if the memory cannot be had.
pub fn copy_of(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(bytes.len()).ok()?;
    v.extend_from_slice(bytes);
    Some(v)
}

/// Non-overlapping extents sorted by offset.
#[derive(Debug, Default)]
pub struct ExtentMap {
    extents: Vec<Extent>,
    cached: u64,
}

impl ExtentMap {
    /// An empty map.
    pub const fn new() -> ExtentMap {
        ExtentMap { extents: Vec::new(), cached: 0 }
    }

    /// Does it hold nothing?
    pub fn is_empty(&self) -> bool {
        self.extents.is_empty()
    }

    /// How many extents.
    pub fn len(&self) -> usize {
        self.extents.len()
    }

    /// Bytes of data held in memory.
    pub fn cached_bytes(&self) -> u64 {
        self.cached
    }

    /// The extents, by offset.
    pub fn iter(&self) -> impl Iterator<Item = &Extent> {
        self.extents.iter()
    }

    fn bytes_of(e: &Extent) -> u64 {
        e.data.as_ref().map_or(0, |d| d.len() as u64)
    }

    /// Record `e` as the newest data for its range. Fails with `ENOMEM` (the map unchanged)
    /// only if there is no room to record it at all.
    pub fn insert(&mut self, e: Extent) -> Result<(), Errno> {
        if e.length == 0 {
            return Ok(());
        }
        // Room for the new extent and for the one split an old extent may leave: after this,
        // nothing below allocates except the optional copy of a split's tail.
        self.extents.try_reserve(2).map_err(|_| Errno::ENOMEM)?;
        let (start, end) = (e.offset, e.end());
        // The first extent that ends after `start`.
        let mut i = self.extents.partition_point(|x| x.end() <= start);
        if let Some(x) = self.extents.get_mut(i) {
            if x.offset < start && x.end() > end {
                // The new range falls inside x: x keeps its head and its tail.
                let tail = x.tail_from(end - x.offset);
                let before = Self::bytes_of(x);
                x.keep_front(start - x.offset);
                self.cached = self.cached - before + Self::bytes_of(x) + Self::bytes_of(&tail);
                self.extents.insert(i + 1, tail);
                self.cached += Self::bytes_of(&e);
                self.extents.insert(i + 1, e);
                return Ok(());
            }
            if x.offset < start {
                let before = Self::bytes_of(x);
                x.keep_front(start - x.offset);
                self.cached = self.cached - before + Self::bytes_of(x);
                i += 1;
            }
        }
        // Extents wholly inside the new range go; one sticking out past its end loses its head.
        let mut j = i;
        while let Some(x) = self.extents.get_mut(j) {
            if x.offset >= end {
                break;
            }
            if x.end() <= end {
                j += 1;
                continue;
            }
            let before = Self::bytes_of(x);
            x.cut_front(end - x.offset);
            self.cached = self.cached - before + Self::bytes_of(x);
            break;
        }
        let gone: u64 = self.extents[i..j].iter().map(Self::bytes_of).sum();
        self.cached -= gone;
        self.cached += Self::bytes_of(&e);
        self.extents.splice(i..j, core::iter::once(e));
        Ok(())
    }

    /// Move every extent of `newer` into this map, `newer`'s data winning where they overlap.
    /// On `ENOMEM` what was not moved stays in `newer` (its cached copies may be gone).
    pub fn absorb(&mut self, newer: &mut ExtentMap) -> Result<(), Errno> {
        if self.extents.is_empty() {
            core::mem::swap(self, newer);
            return Ok(());
        }
        let mut list = core::mem::take(&mut newer.extents);
        newer.cached = 0;
        for k in 0..list.len() {
            let e = core::mem::replace(&mut list[k], Extent { offset: 0, length: 0, joffset: 0, data: None });
            let (offset, length, joffset) = (e.offset, e.length, e.joffset);
            if let Err(err) = self.insert(e) {
                list[k] = Extent { offset, length, joffset, data: None };
                list.drain(..k);
                newer.cached = list.iter().map(Self::bytes_of).sum();
                newer.extents = list;
                return Err(err);
            }
        }
        Ok(())
    }

    /// Make sure `n` more extents can be inserted (each may split one) without allocating.
    pub fn reserve(&mut self, n: usize) -> Result<(), Errno> {
        self.extents.try_reserve(2 * n + 2).map_err(|_| Errno::ENOMEM)
    }

    /// Start copying these extents home, in offset order.
    pub fn into_copy(self) -> CopyQueue {
        CopyQueue { map: self, next: 0 }
    }

    /// Forget every cached copy (memory pressure); the journal still has the data.
    pub fn drop_cache(&mut self) {
        for e in &mut self.extents {
            e.data = None;
        }
        self.cached = 0;
    }

    /// Visit the parts of extents overlapping `[start, end)`, in offset order: `f(offset,
    /// length, joffset, data)` with `data` the part's bytes if cached.
    pub fn overlaps(&self, start: u64, end: u64, f: impl FnMut(u64, u64, u64, Option<&[u8]>)) {
        overlaps_in(&self.extents, start, end, f);
    }
}

/// [`ExtentMap::overlaps`] over a sorted slice of extents.
fn overlaps_in(extents: &[Extent], start: u64, end: u64, mut f: impl FnMut(u64, u64, u64, Option<&[u8]>)) {
    let i = extents.partition_point(|x| x.end() <= start);
    for x in &extents[i..] {
        if x.offset >= end {
            break;
        }
        let s = x.offset.max(start);
        let e = x.end().min(end);
        let skip = s - x.offset;
        let data = x.data.as_ref().map(|d| &d[skip as usize..(skip + e - s) as usize]);
        f(s, e - s, x.joffset + skip, data);
    }
}

/// Extents on their way home: copied one at a time in offset order. Those not yet copied
/// still count for reads; those copied are on the data provider.
#[derive(Debug, Default)]
pub struct CopyQueue {
    map: ExtentMap,
    next: usize,
}

impl CopyQueue {
    /// The next extent to copy.
    pub fn peek(&self) -> Option<&Extent> {
        self.map.extents.get(self.next)
    }

    /// The extent from [`CopyQueue::peek`] is home: move on, freeing its cached copy.
    pub fn advance(&mut self) {
        if let Some(e) = self.map.extents.get_mut(self.next) {
            self.map.cached -= e.data.take().map_or(0, |d| d.len() as u64);
            self.next += 1;
        }
    }

    /// Is everything home?
    pub fn is_done(&self) -> bool {
        self.next >= self.map.extents.len()
    }

    /// Extents still to copy.
    pub fn remaining(&self) -> usize {
        self.map.extents.len() - self.next.min(self.map.extents.len())
    }

    /// Bytes of cached copies still held.
    pub fn cached_bytes(&self) -> u64 {
        self.map.cached
    }

    /// Forget the cached copies (memory pressure).
    pub fn drop_cache(&mut self) {
        self.map.drop_cache();
    }

    /// [`ExtentMap::overlaps`] over the extents not yet copied.
    pub fn overlaps(&self, start: u64, end: u64, f: impl FnMut(u64, u64, u64, Option<&[u8]>)) {
        overlaps_in(self.map.extents.get(self.next..).unwrap_or(&[]), start, end, f);
    }
}
