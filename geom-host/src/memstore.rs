//! The bytes of a memory disk, and its optional volatile write cache with a power-cut model.
//!
//! Storage is a vector of 64 KiB chunks allocated on first write (a fresh disk costs no
//! memory, as `md -t swap` would not), each behind its own lock so requests to different
//! regions do not serialise.
//!
//! A disk made with a write cache ([`crate::disk::MdConfig::write_cache`]) behaves like a
//! drive whose cache is not battery-backed: reads see every write at once, but only
//! `BIO_FLUSH` makes writes durable. [`crate::disk::MdDisk::power_cut`] takes what the
//! platters would hold if power failed at that instant: the durable image plus a seeded
//! choice among the writes since the last flush, each lost, kept, or torn (some of its
//! sectors kept, others not). The image is copy-on-write (chunks shared with the live
//! durable image), so thousands of cut points cost little; a new disk is made from one with
//! [`crate::disk::MdConfig::image`].

use std::sync::{Arc, Mutex, RwLock};

use crate::invariants::lock;
use crate::rng::Rng;

/// Chunk size: the unit of allocation and of copy-on-write between images.
const CHUNK: u64 = 64 * 1024;

/// A disk's content at one instant: what survives a power cut. Cheap to clone.
#[derive(Clone)]
pub struct DiskImage {
    size: u64,
    chunks: Vec<Option<Arc<[u8]>>>,
}

impl std::fmt::Debug for DiskImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.chunks.iter().filter(|c| c.is_some()).count();
        write!(f, "DiskImage({} bytes, {held} chunks written)", self.size)
    }
}

impl DiskImage {
    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Read `len` bytes at `offset` (zeros past the end).
    pub fn read(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        pieces(offset, len as u64, |ci, co, bo, n| {
            if let Some(Some(c)) = self.chunks.get(ci) {
                out[bo..bo + n].copy_from_slice(&c[co..co + n]);
            }
        });
        out
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let size = self.size;
        pieces(offset, data.len() as u64, |ci, co, bo, n| {
            let slot = &mut self.chunks[ci];
            let c = slot.get_or_insert_with(|| vec![0u8; chunk_len(size, ci)].into());
            Arc::make_mut(c)[co..co + n].copy_from_slice(&data[bo..bo + n]);
        });
    }
}

/// Length of chunk `ci` of a disk of `size` bytes.
fn chunk_len(size: u64, ci: usize) -> usize {
    CHUNK.min(size - ci as u64 * CHUNK) as usize
}

/// Visit the chunk pieces covering [off, off+len): (chunk, offset in chunk, offset in the
/// request, piece length).
fn pieces(off: u64, len: u64, mut f: impl FnMut(usize, usize, usize, usize)) {
    let mut done = 0;
    while done < len {
        let pos = off + done;
        let (ci, co) = ((pos / CHUNK) as usize, (pos % CHUNK) as usize);
        let n = (CHUNK - co as u64).min(len - done) as usize;
        f(ci, co, done as usize, n);
        done += n as u64;
    }
}

/// The writes a cached disk has taken since its last flush.
struct WriteCache {
    durable: DiskImage,
    /// In arrival order: (offset, bytes). A DELETE is a write of zeros.
    pending: Vec<(u64, Vec<u8>)>,
}

/// A memory disk's storage.
pub(crate) struct MemStore {
    size: u64,
    sectorsize: u32,
    chunks: Vec<RwLock<Option<Box<[u8]>>>>,
    cache: Option<Mutex<WriteCache>>,
}

impl MemStore {
    /// A zeroed disk, or one holding `image`; with a volatile write cache if `cached`.
    pub(crate) fn new(size: u64, sectorsize: u32, image: Option<&DiskImage>, cached: bool) -> MemStore {
        let n = size.div_ceil(CHUNK) as usize;
        let chunks = (0..n)
            .map(|ci| {
                let from = image.and_then(|img| img.chunks.get(ci)?.as_ref());
                RwLock::new(from.map(|c| {
                    let mut b = vec![0u8; chunk_len(size, ci)];
                    let k = b.len().min(c.len());
                    b[..k].copy_from_slice(&c[..k]);
                    b.into_boxed_slice()
                }))
            })
            .collect();
        let cache = cached.then(|| {
            let mut durable = DiskImage { size, chunks: vec![None; n] };
            if let Some(img) = image {
                for (ci, c) in img.chunks.iter().enumerate().take(n) {
                    durable.chunks[ci] = c.clone();
                }
            }
            Mutex::new(WriteCache { durable, pending: Vec::new() })
        });
        MemStore { size, sectorsize, chunks, cache }
    }

    pub(crate) fn read(&self, off: u64, buf: &mut [u8]) {
        pieces(off, buf.len() as u64, |ci, co, bo, n| {
            let c = self.chunks[ci].read().unwrap_or_else(|e| e.into_inner());
            match c.as_ref() {
                Some(c) => buf[bo..bo + n].copy_from_slice(&c[co..co + n]),
                None => buf[bo..bo + n].fill(0),
            }
        });
    }

    fn apply(&self, off: u64, data: Option<&[u8]>, len: u64) {
        pieces(off, len, |ci, co, bo, n| {
            let mut c = self.chunks[ci].write().unwrap_or_else(|e| e.into_inner());
            match (c.as_mut(), data) {
                (Some(c), Some(d)) => c[co..co + n].copy_from_slice(&d[bo..bo + n]),
                (Some(c), None) => c[co..co + n].fill(0),
                (None, Some(d)) => {
                    let mut b = vec![0u8; chunk_len(self.size, ci)].into_boxed_slice();
                    b[co..co + n].copy_from_slice(&d[bo..bo + n]);
                    *c = Some(b);
                }
                (None, None) => {}
            }
        });
    }

    pub(crate) fn write(&self, off: u64, data: &[u8]) {
        match &self.cache {
            None => self.apply(off, Some(data), data.len() as u64),
            Some(cache) => {
                // Under the cache lock, so a power cut sees the write in both places or neither.
                let mut wc = lock(cache);
                self.apply(off, Some(data), data.len() as u64);
                wc.pending.push((off, data.to_vec()));
            }
        }
    }

    pub(crate) fn zero(&self, off: u64, len: u64) {
        match &self.cache {
            None => self.apply(off, None, len),
            Some(cache) => {
                let mut wc = lock(cache);
                self.apply(off, None, len);
                wc.pending.push((off, vec![0u8; len as usize]));
            }
        }
    }

    /// `BIO_FLUSH`: every write taken so far becomes durable.
    pub(crate) fn flush(&self) {
        if let Some(cache) = &self.cache {
            let mut wc = lock(cache);
            let pending = std::mem::take(&mut wc.pending);
            for (off, data) in &pending {
                wc.durable.write(*off, data);
            }
        }
    }

    /// Writes taken since the last flush (always 0 without a write cache).
    pub(crate) fn unflushed(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| lock(c).pending.len())
    }

    /// What survives a power cut now, chosen by `rng`; `at_cut` runs while the disk cannot
    /// change, so a caller can note what it had seen complete at that instant. Without a write
    /// cache every write is durable and the image is the disk's content.
    pub(crate) fn power_cut(&self, rng: &mut Rng, at_cut: &mut dyn FnMut()) -> DiskImage {
        let Some(cache) = &self.cache else {
            let mut img = DiskImage { size: self.size, chunks: vec![None; self.chunks.len()] };
            for (ci, c) in self.chunks.iter().enumerate() {
                let c = c.read().unwrap_or_else(|e| e.into_inner());
                img.chunks[ci] = c.as_ref().map(|b| Arc::from(&b[..]));
            }
            at_cut();
            return img;
        };
        let wc = lock(cache);
        at_cut();
        let mut img = wc.durable.clone();
        let ss = u64::from(self.sectorsize);
        // How the cache dies: everything lost, everything written, an arrival-order prefix
        // written, or each sector of each write kept or lost on its own (a drive that
        // reorders, tearing multi-sector writes).
        match rng.below(4) {
            0 => {}
            1 => wc.pending.iter().for_each(|(off, d)| img.write(*off, d)),
            2 => {
                let keep = rng.below(wc.pending.len() as u64 + 1) as usize;
                wc.pending[..keep].iter().for_each(|(off, d)| img.write(*off, d));
            }
            _ => {
                for (off, d) in &wc.pending {
                    for (i, sector) in d.chunks(ss as usize).enumerate() {
                        if rng.below(2) == 1 {
                            img.write(off + i as u64 * ss, sector);
                        }
                    }
                }
            }
        }
        img
    }
}
