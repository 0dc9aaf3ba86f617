//! The metadata codec: round trips, version ranges, and untrusted sectors that must give an
//! error, never a panic.

use geom_core::metadata::{self, MetaError, MetaReader, MetaWriter, Metadata, HEADER_LEN};

/// A record in the shape of gstripe's: name, id, disk number and count, stripe size,
/// provider size (added in version 2).
#[derive(Debug, PartialEq, Clone)]
struct Array {
    name: heapless::String<16>,
    id: u32,
    no: u16,
    all: u16,
    stripesize: u32,
    provsize: u64,
}

impl Metadata for Array {
    const MAGIC: &'static [u8] = b"GEOM::TESTARRAY";
    const VERSION: u32 = 2;
    const OLDEST_VERSION: u32 = 1;

    fn encode(&self, w: &mut MetaWriter<'_>) -> Result<(), MetaError> {
        w.str_field::<16>(&self.name)?;
        w.u32(self.id)?;
        w.u16(self.no)?;
        w.u16(self.all)?;
        w.u32(self.stripesize)?;
        w.u64(self.provsize)
    }

    fn decode(version: u32, r: &mut MetaReader<'_>) -> Result<Self, MetaError> {
        let name = r.str_field::<16>()?;
        let id = r.u32()?;
        let no = r.u16()?;
        let all = r.u16()?;
        let stripesize = r.u32()?;
        let provsize = if version >= 2 { r.u64()? } else { 0 };
        if all == 0 || no >= all {
            return Err(MetaError::Invalid("disk number out of range"));
        }
        if !stripesize.is_power_of_two() {
            return Err(MetaError::Invalid("stripe size is not a power of two"));
        }
        Ok(Array { name, id, no, all, stripesize, provsize })
    }
}

fn sample() -> Array {
    Array { name: "data".try_into().unwrap(), id: 0xdead_beef, no: 1, all: 3, stripesize: 65536, provsize: 1 << 30 }
}

#[test]
fn round_trip_with_exact_bytes() {
    let mut sector = [0xffu8; 512];
    metadata::encode(&sample(), &mut sector).unwrap();
    assert_eq!(&sector[..16], b"GEOM::TESTARRAY\0");
    assert_eq!(&sector[16..20], &2u32.to_le_bytes());
    assert_eq!(&sector[20..24], b"data");
    assert_eq!(&sector[36..40], &0xdead_beefu32.to_le_bytes());
    assert_eq!(&sector[40..42], &1u16.to_le_bytes());
    assert!(sector[HEADER_LEN + 40..].iter().all(|&b| b == 0), "the rest of the sector is zeroed");
    assert_eq!(metadata::decode::<Array>(&sector).unwrap(), sample());
}

#[test]
fn older_versions_are_read_newer_and_ancient_refused() {
    let mut sector = [0u8; 512];
    metadata::encode(&sample(), &mut sector).unwrap();
    sector[16..20].copy_from_slice(&1u32.to_le_bytes());
    let old = metadata::decode::<Array>(&sector).unwrap();
    assert_eq!(old.provsize, 0, "version 1 has no provider size");
    sector[16..20].copy_from_slice(&3u32.to_le_bytes());
    assert_eq!(metadata::decode::<Array>(&sector), Err(MetaError::TooNew(3)));
    sector[16..20].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(metadata::decode::<Array>(&sector), Err(MetaError::TooOld(0)));
}

#[test]
fn foreign_and_short_sectors_are_errors() {
    let mut sector = [0u8; 512];
    assert_eq!(metadata::decode::<Array>(&sector), Err(MetaError::NoMagic));
    metadata::encode(&sample(), &mut sector).unwrap();
    // A longer magic sharing our prefix is someone else's.
    sector[15] = b'X';
    assert_eq!(metadata::decode::<Array>(&sector), Err(MetaError::NoMagic));
    sector[15] = 0;
    assert_eq!(metadata::decode::<Array>(&sector[..30]), Err(MetaError::Short));
    assert_eq!(metadata::decode::<Array>(&sector[..8]), Err(MetaError::NoMagic));
    let mut tiny = [0u8; 40];
    assert_eq!(metadata::encode(&sample(), &mut tiny), Err(MetaError::Short));
    let mut w = [0u8; 64];
    let mut writer = MetaWriter::new(&mut w);
    assert_eq!(writer.str_field::<4>("longer"), Err(MetaError::Invalid("string longer than its field")));
}

#[test]
fn checks_in_decode_reject_nonsense() {
    let mut sector = [0u8; 512];
    metadata::encode(&Array { no: 3, ..sample() }, &mut sector).unwrap();
    assert_eq!(metadata::decode::<Array>(&sector), Err(MetaError::Invalid("disk number out of range")));
    metadata::encode(&Array { stripesize: 3000, ..sample() }, &mut sector).unwrap();
    assert!(matches!(metadata::decode::<Array>(&sector), Err(MetaError::Invalid(_))));
    // A name field that is not UTF-8.
    metadata::encode(&sample(), &mut sector).unwrap();
    sector[20] = 0xff;
    assert!(matches!(metadata::decode::<Array>(&sector), Err(MetaError::Invalid(_))));
}

#[test]
fn random_sectors_never_panic() {
    // Every prefix length and many random contents behind a valid magic and version.
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..20_000 {
        let mut sector = [0u8; 96];
        for b in sector.iter_mut() {
            *b = next() as u8;
        }
        sector[..16].copy_from_slice(b"GEOM::TESTARRAY\0");
        sector[16..20].copy_from_slice(&((next() % 4) as u32).to_le_bytes());
        let len = round % sector.len();
        let _ = metadata::decode::<Array>(&sector[..len]);
        let _ = metadata::decode::<Array>(&sector);
    }
}
