//! The stripe map's arithmetic against the definition, over random shapes and requests:
//! pieces, "fast" mode shares, and gathering then scattering a share.

mod common;

use common::{locate, Rng};
use geom_class_stripe::map::{lcm, Geometry};

#[test]
fn pieces_follow_the_definition() {
    let mut rng = Rng::new(1);
    for _ in 0..2000 {
        let g = Geometry { ndisks: 2 + rng.below(7) as u32, bits: 9 + rng.below(8) as u32 };
        let (n, s) = (u64::from(g.ndisks), g.stripesize() as u64);
        let offset = rng.below(1 << 30);
        let length = 1 + rng.below(4 * s * n);
        let pieces: Vec<_> = g.pieces(offset as i64, length as i64).collect();
        assert_eq!(pieces.len() as u64, g.piece_count(offset as i64, length as i64));
        let mut at = 0u64;
        for (i, p) in pieces.iter().enumerate() {
            assert_eq!(p.data_offset as u64, at, "pieces tile the buffer");
            assert_eq!(g.piece_span(offset as i64, length as i64, i as u64), (p.data_offset, p.length));
            // Every byte of the piece is where the definition puts it.
            for b in [0, p.length as u64 - 1] {
                let (disk, off) = locate(offset + at + b, n, s);
                assert_eq!((p.disk as usize, p.offset as u64 + b), (disk, off));
            }
            assert!(p.length as u64 <= s && (i == 0 || p.offset as u64 % s == 0));
            at += p.length as u64;
        }
        assert_eq!(at, length);
    }
}

#[test]
fn fast_shares_gather_and_scatter_back() {
    let mut rng = Rng::new(2);
    for _ in 0..500 {
        let g = Geometry { ndisks: 2 + rng.below(5) as u32, bits: 9 + rng.below(4) as u32 };
        let (n, s) = (u64::from(g.ndisks), g.stripesize() as u64);
        let offset = rng.below(1 << 24) * 512;
        let length = s * n + rng.below(6 * s * n);
        let data = rng.bytes(length as usize);
        let shares: Vec<_> = g.shares(offset as i64, length as i64).collect();
        assert_eq!(shares.len() as u64, n, "one share per component");
        let mut back = vec![0u8; data.len()];
        for sh in &shares {
            // Gather the share as fast mode does for a WRITE; each byte of the run must be the
            // byte the definition puts at that place on the component.
            let mut run = vec![0u8; sh.length as usize];
            g.for_each_piece_of(offset as i64, length as i64, sh.first, |at, in_run, len| {
                run[in_run..in_run + len].copy_from_slice(&data[at..at + len]);
            });
            for (k, &byte) in run.iter().enumerate() {
                // Component byte o of disk d is device byte (row * n + d) * s + o % s.
                let o = sh.offset as u64 + k as u64;
                let dev = ((o / s) * n + u64::from(sh.disk)) * s + o % s;
                assert_eq!(locate(dev, n, s), (sh.disk as usize, o));
                assert_eq!(data[(dev - offset) as usize], byte);
            }
            // Scatter it back as done does for a READ.
            g.for_each_piece_of(offset as i64, length as i64, sh.first, |at, in_run, len| {
                back[at..at + len].copy_from_slice(&run[in_run..in_run + len]);
            });
        }
        assert!(back == data, "the shares cover the request exactly");
    }
}

#[test]
fn sector_size_lcm() {
    assert_eq!(lcm(512, 4096), Some(4096));
    assert_eq!(lcm(512, 520), Some(33280));
    assert_eq!(lcm(0, 512), None);
    assert_eq!(lcm(u32::MAX, u32::MAX - 1), None);
}
