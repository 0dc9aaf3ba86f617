//! Disks in memory for the classes' userland verbs (`label`, `clear`, `dump`), so the
//! harnesses run them without a runtime: a fresh, deterministic set per input.
//!
//! Disks are sparse (only written sectors are kept), so they can claim terabytes. Every
//! access is checked against what libgeom allows (whole sectors, inside the disk); a verb
//! that asks for anything else is recorded in [`MemDisks::misuse`], which the harnesses
//! require to stay empty.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};

use geom_core::userland::UserEnv;
use geom_core::{Errno, Result};

/// One disk: its geometry and the sectors written so far.
struct MemDisk {
    name: CString,
    mediasize: i64,
    sectorsize: u32,
    sectors: BTreeMap<i64, Vec<u8>>,
}

/// The disks a userland verb sees, by name.
pub struct MemDisks {
    disks: Vec<MemDisk>,
    next_random: u32,
    /// Accesses libgeom would not allow (partial sectors, outside the disk).
    pub misuse: Vec<String>,
}

impl MemDisks {
    /// No disks.
    pub fn new() -> Self {
        MemDisks { disks: Vec::new(), next_random: 0x6765_6f6d, misuse: Vec::new() }
    }

    /// The disks the ctl harness offers: `md0`..`md4`, from a few sectors to terabytes, with
    /// 512-byte and 4 KiB sectors (what label's size arithmetic has to cope with).
    pub fn standard() -> Self {
        let mut d = MemDisks::new();
        d.add("md0", 64 << 20, 512);
        d.add("md1", 256 << 20, 512);
        d.add("md2", 3 << 30, 512);
        d.add("md3", 1 << 40, 4096);
        d.add("md4", 1536, 512);
        d
    }

    /// Add a disk of `mediasize` bytes in `sectorsize`-byte sectors.
    pub fn add(&mut self, name: &str, mediasize: i64, sectorsize: u32) {
        let name = CString::new(name).expect("disk names have no NUL");
        self.disks.push(MemDisk { name, mediasize, sectorsize, sectors: BTreeMap::new() });
    }

    /// Put `bytes` (padded with zeros or cut to one sector) into the last sector of `name`.
    pub fn set_last_sector(&mut self, name: &CStr, bytes: &[u8]) {
        let d = self.disk(name).expect("the disk exists");
        let ss = d.sectorsize as usize;
        let mut sector = vec![0u8; ss];
        let n = bytes.len().min(ss);
        sector[..n].copy_from_slice(&bytes[..n]);
        let at = d.mediasize - i64::from(d.sectorsize);
        d.sectors.insert(at, sector);
    }

    /// The last sector of `name` as it is now.
    pub fn last_sector(&mut self, name: &CStr) -> Vec<u8> {
        let d = self.disk(name).expect("the disk exists");
        let at = d.mediasize - i64::from(d.sectorsize);
        d.sectors.get(&at).cloned().unwrap_or_else(|| vec![0u8; d.sectorsize as usize])
    }

    fn disk(&mut self, name: &CStr) -> Option<&mut MemDisk> {
        // Opened as /dev/<name> would be.
        let name = geom_core::verbs::strip_dev(name);
        self.disks.iter_mut().find(|d| d.name.as_c_str() == name)
    }

    /// Check an access of `len` bytes at `offset`; the disk and its sector size if allowed.
    fn check(&mut self, name: &CStr, offset: i64, len: usize, what: &str) -> Result<(usize, u32)> {
        let Some(i) = self.disks.iter().position(|d| d.name.as_c_str() == geom_core::verbs::strip_dev(name)) else {
            return Err(Errno::ENOENT);
        };
        let d = &self.disks[i];
        let ss = i64::from(d.sectorsize);
        let whole = i64::try_from(len).ok().filter(|&l| offset >= 0 && offset % ss == 0 && l % ss == 0);
        let inside = whole.and_then(|l| offset.checked_add(l)).is_some_and(|end| end <= d.mediasize);
        if !inside {
            let msg =
                format!("{what} of {len} bytes at {offset} on {:?} ({} bytes, {ss}-byte sectors)", name, d.mediasize);
            self.misuse.push(msg);
            return Err(Errno::EINVAL);
        }
        Ok((i, d.sectorsize))
    }
}

impl Default for MemDisks {
    fn default() -> Self {
        MemDisks::new()
    }
}

impl UserEnv for MemDisks {
    fn mediasize(&mut self, name: &CStr) -> Result<i64> {
        self.disk(name).map(|d| d.mediasize).ok_or(Errno::ENOENT)
    }

    fn sectorsize(&mut self, name: &CStr) -> Result<u32> {
        self.disk(name).map(|d| d.sectorsize).ok_or(Errno::ENOENT)
    }

    fn read(&mut self, name: &CStr, offset: i64, buf: &mut [u8]) -> Result<()> {
        let (i, ss) = self.check(name, offset, buf.len(), "read")?;
        let d = &self.disks[i];
        for (k, chunk) in buf.chunks_mut(ss as usize).enumerate() {
            let at = offset + (k as i64) * i64::from(ss);
            match d.sectors.get(&at) {
                Some(s) => chunk.copy_from_slice(s),
                None => chunk.fill(0),
            }
        }
        Ok(())
    }

    fn write(&mut self, name: &CStr, offset: i64, data: &[u8]) -> Result<()> {
        let (i, ss) = self.check(name, offset, data.len(), "write")?;
        let d = &mut self.disks[i];
        for (k, chunk) in data.chunks(ss as usize).enumerate() {
            let at = offset + (k as i64) * i64::from(ss);
            d.sectors.insert(at, chunk.to_vec());
        }
        Ok(())
    }

    fn random(&mut self) -> u32 {
        // Deterministic, so a crash replays exactly.
        self.next_random = self.next_random.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        self.next_random
    }
}
