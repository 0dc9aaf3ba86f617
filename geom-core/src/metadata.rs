//! On-disk metadata in a provider's last sector, FreeBSD's convention: a 16-byte NUL-padded
//! magic string, a little-endian `u32` version, then the class's own fields.
//!
//! A class describes its record once with the [`Metadata`] trait: the magic, the version it
//! writes, the oldest version it still reads, and how the fields after the version are
//! encoded and decoded. [`encode`] and [`decode`] add the header and every check; the
//! [`MetaReader`] and [`MetaWriter`] cursors make a decode that runs off the end of the
//! sector an error, never a panic. On-disk bytes are untrusted: a decoder checks every
//! count and size it reads (with [`MetaError::Invalid`] for what does not make sense).
//!
//! Reading the last sector in taste and writing it for a label are [`read_last_sector`],
//! [`crate::Class::taste_metadata`] and [`write_last_sector`].
//!
//! ```
//! use geom_core::metadata::{self, MetaError, MetaReader, MetaWriter, Metadata};
//!
//! /// A toy label: a name and a count (version 2 added the count).
//! #[derive(Debug, PartialEq)]
//! struct Label {
//!     name: [u8; 16],
//!     count: u16,
//! }
//!
//! impl Metadata for Label {
//!     const MAGIC: &'static [u8] = b"GEOM::TOY";
//!     const VERSION: u32 = 2;
//!     const OLDEST_VERSION: u32 = 1;
//!     fn encode(&self, w: &mut MetaWriter<'_>) -> Result<(), MetaError> {
//!         w.bytes(&self.name)?;
//!         w.u16(self.count)
//!     }
//!     fn decode(version: u32, r: &mut MetaReader<'_>) -> Result<Self, MetaError> {
//!         let name = r.array::<16>()?;
//!         let count = if version >= 2 { r.u16()? } else { 1 };
//!         if count == 0 {
//!             return Err(MetaError::Invalid("count is zero"));
//!         }
//!         Ok(Label { name, count })
//!     }
//! }
//!
//! let mut sector = [0u8; 512];
//! let label = Label { name: *b"toy0\0\0\0\0\0\0\0\0\0\0\0\0", count: 3 };
//! metadata::encode(&label, &mut sector).unwrap();
//! assert_eq!(&sector[..9], b"GEOM::TOY");
//! assert_eq!(metadata::decode::<Label>(&sector), Ok(label));
//!
//! sector[16] = 9; // a version from the future
//! assert_eq!(metadata::decode::<Label>(&sector), Err(MetaError::TooNew(9)));
//! ```

use alloc::vec;
use core::fmt;

use crate::context::SleepCtx;
use crate::error::Errno;
use crate::handles::{Consumer, Provider};

/// Length of the magic field.
pub const MAGIC_LEN: usize = 16;
/// Bytes before the class's own fields: the magic and the version.
pub const HEADER_LEN: usize = MAGIC_LEN + 4;

/// Why a sector does not hold a usable record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaError {
    /// The magic does not match: not ours (the usual case in taste).
    NoMagic,
    /// Written by a newer version of the class than this one reads.
    TooNew(u32),
    /// Older than the oldest version this class reads.
    TooOld(u32),
    /// The record runs past the end of the sector (or does not fit when encoding).
    Short,
    /// A field holds a value that cannot be right.
    Invalid(&'static str),
    /// Reading or writing the sector failed.
    Io(Errno),
}

impl MetaError {
    /// The errno for reporting it: `EINVAL` for bad contents, the I/O error for I/O.
    pub fn errno(self) -> Errno {
        match self {
            MetaError::Io(e) => e,
            MetaError::Short => Errno::ENOSPC,
            _ => Errno::EINVAL,
        }
    }
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaError::NoMagic => f.write_str("no metadata (magic does not match)"),
            MetaError::TooNew(v) => write!(f, "metadata version {v} is newer than this class reads"),
            MetaError::TooOld(v) => write!(f, "metadata version {v} is older than this class reads"),
            MetaError::Short => f.write_str("metadata does not fit in the sector"),
            MetaError::Invalid(why) => write!(f, "invalid metadata: {why}"),
            MetaError::Io(e) => write!(f, "metadata I/O failed: {e}"),
        }
    }
}

/// A class's metadata record (the fields after magic and version).
pub trait Metadata: Sized {
    /// The magic string (at most 16 bytes; NUL-padded on disk), e.g. `b"GEOM::STRIPE"`.
    const MAGIC: &'static [u8];
    /// The version written.
    const VERSION: u32;
    /// The oldest version still read.
    const OLDEST_VERSION: u32 = Self::VERSION;

    /// Write the fields after the version.
    fn encode(&self, w: &mut MetaWriter<'_>) -> Result<(), MetaError>;

    /// Read the fields after the version, as `version` laid them out. Check every value that
    /// could make the class misbehave.
    fn decode(version: u32, r: &mut MetaReader<'_>) -> Result<Self, MetaError>;

    /// Finish an encoded sector: a label that carries a checksum over its own bytes
    /// (gjournal's MD5) computes and stores it here. The default does nothing.
    fn seal(sector: &mut [u8]) -> Result<(), MetaError> {
        let _ = sector;
        Ok(())
    }

    /// Check a whole sector before its fields are decoded (a label's checksum), after the
    /// magic and version were accepted. The default accepts it.
    fn verify(version: u32, sector: &[u8]) -> Result<(), MetaError> {
        let _ = (version, sector);
        Ok(())
    }
}

/// Encode `md` with its header into `sector` (the rest of which is zeroed).
pub fn encode<M: Metadata>(md: &M, sector: &mut [u8]) -> Result<(), MetaError> {
    const { assert!(M::MAGIC.len() <= MAGIC_LEN, "a metadata magic has at most 16 bytes") };
    sector.fill(0);
    let mut w = MetaWriter { buf: sector, pos: 0 };
    w.bytes(M::MAGIC)?;
    w.pos = MAGIC_LEN;
    w.u32(M::VERSION)?;
    md.encode(&mut w)?;
    M::seal(sector)
}

/// Decode a record from `sector`: magic, version range, then the class's fields.
pub fn decode<M: Metadata>(sector: &[u8]) -> Result<M, MetaError> {
    if !has_magic::<M>(sector) {
        return Err(MetaError::NoMagic);
    }
    let mut r = MetaReader { buf: sector, pos: MAGIC_LEN };
    let version = r.u32()?;
    if version > M::VERSION {
        return Err(MetaError::TooNew(version));
    }
    if version < M::OLDEST_VERSION {
        return Err(MetaError::TooOld(version));
    }
    M::verify(version, sector)?;
    M::decode(version, &mut r)
}

/// Does `sector` start with `M`'s magic? See [`magic_matches`].
pub fn has_magic<M: Metadata>(sector: &[u8]) -> bool {
    magic_matches(sector, M::MAGIC)
}

/// Does `sector` start with `magic`? Compared as FreeBSD compares it (`strcmp` on the
/// 16-byte field): the magic, then a NUL unless it fills the field. Bytes after that NUL do
/// not count: FreeBSD's userland labels `strlcpy` the magic into an uninitialised struct, so
/// real labels can carry stack garbage there.
pub fn magic_matches(sector: &[u8], magic: &[u8]) -> bool {
    let Some(field) = sector.get(..MAGIC_LEN) else { return false };
    let n = magic.len();
    n <= MAGIC_LEN && field[..n] == *magic && (n == MAGIC_LEN || field[n] == 0)
}

/// A bounds-checked little-endian reader over a sector.
pub struct MetaReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> MetaReader<'a> {
    /// A reader over `buf` from its start (for decoding records nested in others).
    pub fn new(buf: &'a [u8]) -> Self {
        MetaReader { buf, pos: 0 }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], MetaError> {
        let end = self.pos.checked_add(n).ok_or(MetaError::Short)?;
        let s = self.buf.get(self.pos..end).ok_or(MetaError::Short)?;
        self.pos = end;
        Ok(s)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], MetaError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// A byte.
    pub fn u8(&mut self) -> Result<u8, MetaError> {
        Ok(self.array::<1>()?[0])
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, MetaError> {
        self.array().map(u16::from_le_bytes)
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, MetaError> {
        self.array().map(u32::from_le_bytes)
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, MetaError> {
        self.array().map(u64::from_le_bytes)
    }

    /// A NUL-padded string field of `N` bytes: the bytes before the first NUL (all `N` if
    /// there is none, as FreeBSD's `strlcpy` of a full field would not allow; a class that
    /// needs a terminator checks for it).
    pub fn str_field<const N: usize>(&mut self) -> Result<heapless::String<N>, MetaError> {
        let raw = self.array::<N>()?;
        let len = raw.iter().position(|&b| b == 0).unwrap_or(N);
        let s = core::str::from_utf8(&raw[..len]).map_err(|_| MetaError::Invalid("string field is not UTF-8"))?;
        let mut out = heapless::String::new();
        out.push_str(s).map_err(|_| MetaError::Short)?;
        Ok(out)
    }

    /// Where the next read starts.
    pub fn position(&self) -> usize {
        self.pos
    }
}

/// A bounds-checked little-endian writer into a sector.
pub struct MetaWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> MetaWriter<'a> {
    /// A writer into `buf` from its start.
    pub fn new(buf: &'a mut [u8]) -> Self {
        MetaWriter { buf, pos: 0 }
    }

    /// Write raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> Result<(), MetaError> {
        let end = self.pos.checked_add(b.len()).ok_or(MetaError::Short)?;
        self.buf.get_mut(self.pos..end).ok_or(MetaError::Short)?.copy_from_slice(b);
        self.pos = end;
        Ok(())
    }

    /// A byte.
    pub fn u8(&mut self, v: u8) -> Result<(), MetaError> {
        self.bytes(&[v])
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self, v: u16) -> Result<(), MetaError> {
        self.bytes(&v.to_le_bytes())
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self, v: u32) -> Result<(), MetaError> {
        self.bytes(&v.to_le_bytes())
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self, v: u64) -> Result<(), MetaError> {
        self.bytes(&v.to_le_bytes())
    }

    /// A string in an `N`-byte NUL-padded field. Longer than `N` bytes is an error; exactly
    /// `N` leaves no terminator, as FreeBSD's fixed fields allow.
    pub fn str_field<const N: usize>(&mut self, s: &str) -> Result<(), MetaError> {
        if s.len() > N {
            return Err(MetaError::Invalid("string longer than its field"));
        }
        let mut field = [0u8; N];
        field[..s.len()].copy_from_slice(s.as_bytes());
        self.bytes(&field)
    }

    /// Skip `n` bytes (left zero).
    pub fn skip(&mut self, n: usize) -> Result<(), MetaError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or(MetaError::Short)?;
        self.pos = end;
        Ok(())
    }

    /// Where the next write starts.
    pub fn position(&self) -> usize {
        self.pos
    }
}

/// `name` cut to fit an `N`-byte NUL-terminated field (at most `N - 1` bytes, at a character
/// boundary), as `strlcpy` into a label's C struct cuts it.
pub fn name_field<const N: usize>(name: &str) -> heapless::String<N> {
    let mut end = name.len().min(N.saturating_sub(1));
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = heapless::String::new();
    // Cannot fail: at most N - 1 bytes into an N-byte string.
    let _ = out.push_str(&name[..end]);
    out
}

/// Where the last sector of `pp` starts, and its size; `None` for a provider too small to
/// hold one or with a nonsensical sector size.
pub fn last_sector(pp: Provider) -> Option<(i64, usize)> {
    let ss = pp.sectorsize();
    if ss == 0 || !ss.is_power_of_two() || i64::from(ss) > pp.mediasize() {
        return None;
    }
    Some((pp.mediasize() - i64::from(ss), ss as usize))
}

/// Read and decode the metadata in the last sector of the provider under `cp` (attached and
/// open for reading). Sleeps.
pub fn read_last_sector<M: Metadata>(cx: &SleepCtx, cp: Consumer) -> Result<M, MetaError> {
    let pp = cp.provider().ok_or(MetaError::Io(Errno::ENXIO))?;
    let (off, ss) = last_sector(pp).ok_or(MetaError::Short)?;
    let buf = cp.read_data(cx, off, ss as i64).map_err(MetaError::Io)?;
    decode(&buf)
}

/// Encode `md` and write it into the last sector of the provider under `cp` (attached and
/// open for writing). Sleeps.
pub fn write_last_sector<M: Metadata>(cx: &SleepCtx, cp: Consumer, md: &M) -> Result<(), MetaError> {
    let pp = cp.provider().ok_or(MetaError::Io(Errno::ENXIO))?;
    let (off, ss) = last_sector(pp).ok_or(MetaError::Short)?;
    let mut sector = vec![0u8; ss];
    encode(md, &mut sector)?;
    cp.write_data(cx, off, &sector).map_err(MetaError::Io)
}

/// Zero the last sector of the provider under `cp` if it holds `M`'s magic (what `gstripe
/// clear` does). Returns whether there was anything to clear. Sleeps.
pub fn clear_last_sector<M: Metadata>(cx: &SleepCtx, cp: Consumer) -> Result<bool, MetaError> {
    let pp = cp.provider().ok_or(MetaError::Io(Errno::ENXIO))?;
    let (off, ss) = last_sector(pp).ok_or(MetaError::Short)?;
    let buf = cp.read_data(cx, off, ss as i64).map_err(MetaError::Io)?;
    if !has_magic::<M>(&buf) {
        return Ok(false);
    }
    cp.write_data(cx, off, &vec![0u8; ss]).map_err(MetaError::Io)?;
    Ok(true)
}

/// Read `M` through `cp`, one of our consumers attached to the provider: open it for reading,
/// drop the topology lock around the read, close it again. How a class re-reads a label
/// when it adds a component, to be sure it did not change since taste.
pub fn read_through<M: Metadata>(topo: &mut crate::Topology, cp: Consumer) -> Result<M, MetaError> {
    with_opened(topo, cp, (1, 0, 0), |cx, cp| read_last_sector::<M>(cx, cp))
}

/// Open `cp` with the access counts `acc`, run `f` with the topology lock dropped, and close
/// it again.
pub(crate) fn with_opened<R>(
    topo: &mut crate::Topology,
    cp: Consumer,
    acc: (i32, i32, i32),
    f: impl FnOnce(&SleepCtx, Consumer) -> Result<R, MetaError>,
) -> Result<R, MetaError> {
    cp.access(topo, acc.0, acc.1, acc.2).map_err(MetaError::Io)?;
    let r = topo.unlocked(|cx| f(cx, cp));
    // Closing what we opened cannot fail.
    let _ = cp.access(topo, -acc.0, -acc.1, -acc.2);
    r
}
