//! On-disk compatibility with FreeBSD's gjournal, checked against bytes built here by hand
//! from `g_journal.h`'s and `g_journal.c`'s encoders (offsets written out, MD5 from an
//! independent computation), not with the class's own encoders.

mod common;

use common::*;
use geom_class_journal::metadata::{GJ_FLAG_CHECKSUM, GJ_TYPE_JOURNAL};
use geom_class_journal::{Journal, JournalMetadata};
use geom_core::metadata;
use geom_host::disk::MdDisk;
use md5::Digest;

/// A label as `journal_metadata_encode` lays it out (101 bytes in a 512-byte sector).
#[allow(clippy::too_many_arguments)]
fn freebsd_label(
    id: u32,
    kind: u8,
    jstart: u64,
    jend: u64,
    joffset: u64,
    jid: u32,
    flags: u64,
    provsize: u64,
) -> Vec<u8> {
    let mut s = vec![0u8; 512];
    s[..13].copy_from_slice(b"GEOM::JOURNAL");
    s[16..20].copy_from_slice(&0u32.to_le_bytes());
    s[20..24].copy_from_slice(&id.to_le_bytes());
    s[24] = kind;
    s[25..33].copy_from_slice(&jstart.to_le_bytes());
    s[33..41].copy_from_slice(&jend.to_le_bytes());
    s[41..49].copy_from_slice(&joffset.to_le_bytes());
    s[49..53].copy_from_slice(&jid.to_le_bytes());
    s[53..61].copy_from_slice(&flags.to_le_bytes());
    s[77..85].copy_from_slice(&provsize.to_le_bytes());
    let hash = md5::Md5::digest(&s[..85]);
    s[85..101].copy_from_slice(&hash);
    s
}

/// A journal header sector (`g_journal_header_encode`).
fn jh(id: u32, next: u32) -> Vec<u8> {
    let mut s = vec![0xa5u8; 512]; // gjournal does not zero the buffer
    s[..6].copy_from_slice(b"GJHDR\0");
    s[6..10].copy_from_slice(&id.to_le_bytes());
    s[10..14].copy_from_slice(&next.to_le_bytes());
    s
}

/// A record header sector (`g_journal_record_header_encode`): entries (joffset, offset,
/// length), the 4 bytes after the id left as garbage, as gjournal leaves them.
fn rh(id: u32, entries: &[(u64, u64, u64)], sum: [u8; 8]) -> Vec<u8> {
    let mut s = vec![0x5au8; 512];
    s[..7].copy_from_slice(b"GJRHDR\0");
    s[7..11].copy_from_slice(&id.to_le_bytes());
    s[15..17].copy_from_slice(&(entries.len() as u16).to_le_bytes());
    s[17..25].copy_from_slice(&sum);
    for (i, (j, o, l)) in entries.iter().enumerate() {
        let at = 25 + i * 24;
        s[at..at + 8].copy_from_slice(&j.to_le_bytes());
        s[at + 8..at + 16].copy_from_slice(&o.to_le_bytes());
        s[at + 16..at + 24].copy_from_slice(&l.to_le_bytes());
    }
    s
}

#[test]
fn metadata_matches_freebsd_bytes_and_hash() {
    // Bytes and MD5 computed outside Rust (Python's hashlib) for this label.
    let want = "47454f4d3a3a4a4f55524e414c000000000000007856341202000000000000000000feff0300000000000200000000000001efcdab02000000000000006d643100000000000000000000000000000000040000000033cc5f047d1c66da9dd1113ed5c5d488";
    let md = JournalMetadata {
        id: 0x1234_5678,
        kind: GJ_TYPE_JOURNAL,
        jstart: 0,
        jend: 0x3ff_fe00,
        joffset: 0x200,
        jid: 0xabcd_ef01,
        flags: GJ_FLAG_CHECKSUM,
        provider: "md1".try_into().unwrap(),
        provsize: 0x400_0000,
    };
    let mut sector = vec![0u8; 512];
    metadata::encode(&md, &mut sector).unwrap();
    let hex: String = sector[..101].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, want);
    assert!(sector[101..].iter().all(|&b| b == 0));
    assert_eq!(metadata::decode::<JournalMetadata>(&sector).unwrap(), md);
    // A flipped bit anywhere before the hash is refused.
    sector[30] ^= 1;
    assert!(metadata::decode::<JournalMetadata>(&sector).is_err());
}

/// Disks holding a dirty device labeled and journaled the FreeBSD way: journal A with two
/// records (complete: journal B's header follows), then journal B with one record and no
/// successor (incomplete: must not be replayed).
fn freebsd_journal(rt: &geom_host::Runtime, checksum: bool, corrupt_second_record: bool) -> (MdDisk, MdDisk) {
    let (dsize, jsize) = (4 * MIB, 48 * MIB);
    let data = rt.md_create(geom_host::disk::MdConfig::malloc(dsize)).unwrap();
    let journal = rt.md_create(geom_host::disk::MdConfig::malloc(jsize)).unwrap();
    let (a, b, c) = (0x1111_1111u32, 0x2222_2222u32, 0x3333_3333u32);
    let flags = if checksum { GJ_FLAG_CHECKSUM } else { 0 };
    let sum = |parts: &[&[u8]]| -> [u8; 8] {
        if !checksum {
            return [0; 8];
        }
        let mut h = md5::Md5::new();
        parts.iter().for_each(|p| h.update(p));
        h.finalize()[..8].try_into().unwrap()
    };
    journal.write_backing(0, &jh(a, b));
    // Record 1 at 512: two entries, data right after the header.
    let (d1, d2) = (pattern(1, 4096), pattern(2, 1024));
    journal.write_backing(512, &rh(a, &[(1024, 8192, 4096), (5120, 65536, 1024)], sum(&[&d1, &d2])));
    journal.write_backing(1024, &d1);
    journal.write_backing(5120, &d2);
    // Record 2 at 6144: overwrites part of entry 1.
    let d3 = pattern(3, 512);
    journal.write_backing(6144, &rh(a, &[(6656, 8704, 512)], sum(&[&d3])));
    journal.write_backing(6656, if corrupt_second_record { &d1[..512] } else { &d3 });
    // Journal B: its header completes A; its record is never completed.
    journal.write_backing(7168, &jh(b, c));
    let d4 = pattern(4, 512);
    journal.write_backing(7680, &rh(b, &[(8192, 0, 512)], sum(&[&d4])));
    journal.write_backing(8192, &d4);
    data.write_backing(dsize - 512, &freebsd_label(0x4242, 1, 0, jsize - 512, 0, a, flags, dsize));
    journal.write_backing(jsize - 512, &freebsd_label(0x4242, 2, 0, jsize - 512, 0, a, flags, jsize));
    (data, journal)
}

fn replays(checksum: bool) {
    let rt = quiet(if checksum { "jcompat-c" } else { "jcompat" });
    let (data, _journal) = freebsd_journal(&rt, checksum, false);
    rt.load::<Journal>().unwrap();
    rt.settle();
    let h = rt.open("md0.journal", 1, 0, 0).unwrap();
    let mut want = pattern(1, 4096);
    want[512..1024].copy_from_slice(&pattern(3, 512));
    same(&h.read(8192, 4096).unwrap(), &want);
    same(&h.read(65536, 1024).unwrap(), &pattern(2, 1024));
    // Journal B was never completed: its write is not there.
    same(&h.read(0, 512).unwrap(), &[0; 512]);
    h.close().unwrap();
    // Replayed before the provider appeared: on the data provider already.
    same(&data.read_backing(8192, 4096), &want);
    same(&data.read_backing(65536, 1024), &pattern(2, 1024));
    assert!(
        rt.console_log().iter().any(|l| l.contains("replaying 3 entries of 1 journal(s)")),
        "{:?}",
        rt.console_log()
    );
    finish(rt);
}

#[test]
fn a_freebsd_journal_is_replayed() {
    replays(false);
}

#[test]
fn a_freebsd_journal_with_checksums_is_replayed() {
    replays(true);
}

#[test]
fn a_corrupt_record_stops_the_replay_before_it() {
    let rt = quiet("jcompat-bad");
    let (data, _journal) = freebsd_journal(&rt, true, true);
    rt.load::<Journal>().unwrap();
    rt.settle();
    // The second record's data does not match its checksum: journal A is incomplete from
    // there on, so nothing of it is applied, not even the sound first record.
    same(&data.read_backing(8192, 4096), &[0; 4096]);
    assert!(rt.console_log().iter().any(|l| l.contains("MD5 hash mismatch")), "{:?}", rt.console_log());
    let h = rt.open("md0.journal", 1, 1, 0).unwrap();
    same(&h.read(8192, 512).unwrap(), &[0; 512]);
    h.close().unwrap();
    finish(rt);
}
