//! The reference block device every run is checked against.
//!
//! Every sector the workload writes holds a pattern made from the write's *tag* and the
//! sector number, so a sector read back names the write it came from (tag 0: never written,
//! zeros). Per sector the model keeps what a correct device may return now, and the history
//! of writes that decides what it may hold after a power cut:
//!
//! * a read returns the last acknowledged write (or, after a write that failed, either the
//!   older content or the failed write's: a failed request may have landed in part);
//! * after a power cut, a sector holds the last write acknowledged before the last completed
//!   flush was issued, or any write issued after that one (acknowledged or not, whole, since
//!   disks tear at sector granularity).

/// Bytes per sector the workload and the model use.
pub const SECTOR: usize = 512;

/// The contents of `sector` as written by the write tagged `tag`.
pub fn sector_bytes(tag: u64, sector: u64) -> [u8; SECTOR] {
    let mut s = [0u8; SECTOR];
    if tag != 0 {
        for (i, chunk) in s.chunks_mut(16).enumerate() {
            chunk[..8].copy_from_slice(&tag.to_le_bytes());
            chunk[8..].copy_from_slice(&(sector ^ ((i as u64) << 48)).to_le_bytes());
        }
    }
    s
}

/// Which write a sector's bytes came from, if they are one of ours for that sector.
pub fn tag_of(bytes: &[u8], sector: u64) -> Option<u64> {
    let tag = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    (bytes == sector_bytes(tag, sector)).then_some(tag)
}

/// One write in a sector's history.
#[derive(Clone, Copy, Debug)]
struct Write {
    tag: u64,
    issued: u64,
    /// When it was acknowledged; `None` if it failed or never completed.
    acked: Option<u64>,
}

#[derive(Clone, Debug)]
struct Sector {
    /// The tags a read may return now.
    now: Vec<u64>,
    history: Vec<Write>,
}

/// The model of one device.
pub struct Model {
    sectors: Vec<Sector>,
    /// Completed flushes: (issued, completed).
    flushes: Vec<(u64, u64)>,
}

impl Model {
    /// A device of `sectors` sectors of zeros.
    pub fn new(sectors: u64) -> Model {
        Model { sectors: vec![Sector { now: vec![0], history: Vec::new() }; sectors as usize], flushes: Vec::new() }
    }

    /// How many sectors the model covers.
    pub fn len(&self) -> u64 {
        self.sectors.len() as u64
    }

    /// Whether the model covers no sector.
    pub fn is_empty(&self) -> bool {
        self.sectors.is_empty()
    }

    /// A write of `count` sectors from `first`, tagged `tag`, issued at `issued`, completed at
    /// `acked` (`None`: it failed).
    pub fn write(&mut self, first: u64, count: u64, tag: u64, issued: u64, acked: Option<u64>) {
        for s in &mut self.sectors[first as usize..(first + count) as usize] {
            s.history.push(Write { tag, issued, acked });
            if acked.is_some() {
                s.now = vec![tag];
            } else if !s.now.contains(&tag) {
                s.now.push(tag);
            }
        }
    }

    /// A flush issued at `issued` completed at `completed`.
    pub fn flush(&mut self, issued: u64, completed: u64) {
        self.flushes.push((issued, completed));
    }

    /// Check a successful read of `data` from `first`; on success the sectors' contents are
    /// known again.
    pub fn read(&mut self, first: u64, data: &[u8]) -> Result<(), String> {
        for (i, bytes) in data.chunks(SECTOR).enumerate() {
            let n = first + i as u64;
            let s = &mut self.sectors[n as usize];
            match tag_of(bytes, n) {
                Some(tag) if s.now.contains(&tag) => s.now = vec![tag],
                Some(tag) => {
                    return Err(format!("sector {n} read back write {tag}; the device may only hold {:?}", s.now))
                }
                None => return Err(format!("sector {n} holds bytes no write put there (may hold {:?})", s.now)),
            }
        }
        Ok(())
    }

    /// The tags sector `n` may hold after a power cut at `cut`.
    pub fn allowed_after_cut(&self, n: u64, cut: u64) -> Vec<u64> {
        let flush_issued = self.flushes.iter().filter(|f| f.1 < cut).map(|f| f.0).max();
        let mine: Vec<&Write> = self.sectors[n as usize].history.iter().filter(|w| w.issued < cut).collect();
        let floor = flush_issued.and_then(|f| mine.iter().rposition(|w| w.acked.is_some_and(|a| a < f)));
        match floor {
            Some(i) => mine[i..].iter().map(|w| w.tag).collect(),
            None => std::iter::once(0).chain(mine.iter().map(|w| w.tag)).collect(),
        }
    }

    /// Check a device read whole after a power cut at `cut` (and whatever recovery the stack
    /// does on the way back up).
    pub fn check_after_cut(&self, data: &[u8], cut: u64) -> Result<(), String> {
        for (i, bytes) in data.chunks(SECTOR).enumerate().take(self.sectors.len()) {
            let n = i as u64;
            let allowed = self.allowed_after_cut(n, cut);
            match tag_of(bytes, n) {
                Some(tag) if allowed.contains(&tag) => {}
                Some(tag) => {
                    return Err(format!(
                        "after the power cut sector {n} holds write {tag}; flushed data allows only {allowed:?}"
                    ))
                }
                None => return Err(format!("after the power cut sector {n} holds bytes no write put there")),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_must_return_the_last_acknowledged_write() {
        let mut m = Model::new(4);
        m.write(0, 2, 7, 1, Some(2));
        let mut good = sector_bytes(7, 0).to_vec();
        good.extend_from_slice(&sector_bytes(7, 1));
        assert!(m.read(0, &good).is_ok());
        assert!(m.read(2, &sector_bytes(7, 2)).is_err(), "sector 2 was never written");
        assert!(m.read(1, &sector_bytes(7, 0)).is_err(), "sector 0's bytes at sector 1");
    }

    #[test]
    fn a_failed_write_may_or_may_not_have_landed() {
        let mut m = Model::new(1);
        m.write(0, 1, 3, 1, Some(2));
        m.write(0, 1, 4, 3, None);
        assert!(m.read(0, &sector_bytes(3, 0)).is_ok());
        // Once read, the sector is known.
        assert!(m.read(0, &sector_bytes(4, 0)).is_err());
    }

    #[test]
    fn a_completed_flush_makes_earlier_writes_durable() {
        let mut m = Model::new(1);
        m.write(0, 1, 5, 1, Some(2));
        m.flush(3, 4);
        m.write(0, 1, 6, 5, Some(6));
        assert_eq!(m.allowed_after_cut(0, 7), vec![5, 6]);
        // Cut before the flush completed: the write may be lost.
        assert_eq!(m.allowed_after_cut(0, 4), vec![0, 5]);
        assert!(m.check_after_cut(&[0; SECTOR], 7).is_err());
    }
}
