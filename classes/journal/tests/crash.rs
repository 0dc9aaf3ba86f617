//! Power cuts: seeded random workloads on journaled devices whose disks have volatile write
//! caches; a second thread cuts the power at random instants (the disks' durable images
//! plus a seeded choice of unflushed writes, lost, kept or torn at sector granularity);
//! every cut is then tasted in a fresh runtime, replayed, and checked:
//!
//! * every write acknowledged before a completed flush is there, unless a later write to
//!   the same sector is (which may or may not have survived);
//! * nothing else is there: no sector holds data never written to it, or older than the
//!   last flushed write;
//! * both labels decode, hash included.
//!
//! `JOURNAL_CRASH_SEEDS` sets how many workloads run (each cut many times).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use common::*;
use geom_class_journal::{Journal, JournalMetadata};
use geom_core::metadata;
use geom_host::disk::{power_cut_all, DiskImage, MdConfig};
use geom_host::rng::Rng;

const SS: usize = 512;
/// Sectors of the exported device the workload touches.
const SECTORS: u64 = 1024;

/// Small records and a small ring (`maxphys` is a boot-time tunable, as on FreeBSD).
fn boot() {
    let _ = geom_host::set_maxphys(64 * KIB);
}

/// What the workload did, stamped with one global sequence.
#[derive(Default)]
struct History {
    /// Per write: (sector, count, tag, issued, acknowledged or u64::MAX).
    writes: Vec<(u64, u64, u64, u64, u64)>,
    /// Per completed flush: (issued, completed).
    flushes: Vec<(u64, u64)>,
}

/// One sector as the workload writes it: the write's tag and the sector number, repeated.
fn sector_bytes(tag: u64, sector: u64) -> Vec<u8> {
    let mut s = Vec::with_capacity(SS);
    while s.len() < SS {
        s.extend_from_slice(&tag.to_le_bytes());
        s.extend_from_slice(&sector.to_le_bytes());
    }
    s
}

/// Per sector, the writes that covered it in order: (tag, issued, acknowledged).
fn per_sector(h: &History) -> Vec<Vec<(u64, u64, u64)>> {
    let mut out = vec![Vec::new(); SECTORS as usize];
    for w in &h.writes {
        for s in w.0..w.0 + w.1 {
            out[s as usize].push((w.2, w.3, w.4));
        }
    }
    out
}

/// Which tags a sector with write list `mine` may hold after a cut at `cut`, the last flush
/// completed before it having been issued at `flush_issued`.
fn allowed(mine: &[(u64, u64, u64)], flush_issued: Option<u64>, cut: u64) -> Vec<u64> {
    let mine: Vec<_> = mine.iter().filter(|w| w.1 < cut).collect();
    // The last write acknowledged before the last completed flush was issued must be there,
    // or anything written after it.
    let from = flush_issued.and_then(|f| mine.iter().rposition(|w| w.2 < f));
    match from {
        Some(i) => mine[i..].iter().map(|w| w.0).collect(),
        None => core::iter::once(0).chain(mine.iter().map(|w| w.0)).collect(),
    }
}

struct Cut {
    seq: u64,
    images: Vec<DiskImage>,
}

/// Run one seeded workload with cuts; returns the cuts and the history.
fn workload(seed: u64, complete: bool) -> (Vec<Cut>, History, u64, u64) {
    let rt = quiet(&format!("crash{seed}"));
    let (dsize, jsize) = (SECTORS * SS as u64 + 512, 3 * MIB);
    let disks = if complete {
        vec![rt.md_create(MdConfig::malloc(dsize + jsize).write_cache(true)).unwrap()]
    } else {
        vec![
            rt.md_create(MdConfig::malloc(dsize).write_cache(true)).unwrap(),
            rt.md_create(MdConfig::malloc(jsize).write_cache(true)).unwrap(),
        ]
    };
    // The label, written as gjournal label would; a small journal for the single-provider
    // layout (the label tool insists on 100 MiB, the kernel does not).
    if complete {
        let size = dsize + jsize;
        let md = JournalMetadata {
            id: seed as u32,
            kind: 3,
            jstart: size - 512 - jsize + 512,
            jend: size - 512,
            joffset: 0,
            jid: 0,
            flags: 1 | (seed & 2),
            provider: Default::default(),
            provsize: size,
        };
        let mut sector = vec![0u8; 512];
        metadata::encode(&md, &mut sector).unwrap();
        disks[0].write_backing(size - 512, &sector);
        rt.load::<Journal>().unwrap();
    } else if seed % 2 == 0 {
        ok(&rt, &["label", "-c", "md0", "md1"]);
    } else {
        ok(&rt, &["label", "md0", "md1"]);
    }
    rt.settle();
    let h = rt.open("md0.journal", 1, 1, 0).unwrap();
    let exported = h.mediasize() as u64;
    let seq = Arc::new(AtomicU64::new(1));
    let history = Arc::new(Mutex::new(History::default()));
    let done = Arc::new(AtomicBool::new(false));
    // The cutter: at random instants, freeze every disk and note the sequence.
    let cutter = {
        let (seq, done) = (seq.clone(), done.clone());
        let disks = disks.clone();
        std::thread::spawn(move || {
            let mut rng = Rng::new(seed ^ 0x5eed);
            let mut cuts = Vec::new();
            while !done.load(SeqCst) {
                for _ in 0..rng.below(20_000) {
                    std::hint::spin_loop();
                }
                let mut at = 0;
                let refs: Vec<_> = disks.iter().collect();
                let images = power_cut_all(&refs, &mut rng, &mut || at = seq.fetch_add(1, SeqCst));
                cuts.push(Cut { seq: at, images: images.into_iter().map(Option::unwrap).collect() });
                std::thread::sleep(std::time::Duration::from_micros(rng.below(300)));
            }
            cuts
        })
    };
    let mut rng = Rng::new(seed);
    for op in 0..300u64 {
        match rng.below(10) {
            0 => {
                let issued = seq.fetch_add(1, SeqCst);
                h.flush().unwrap();
                let completed = seq.fetch_add(1, SeqCst);
                history.lock().unwrap().flushes.push((issued, completed));
            }
            1 => {
                let s = rng.below(SECTORS);
                let _ = h.read((s * SS as u64) as i64, SS).unwrap();
            }
            _ => {
                let n = 1 + rng.below(16);
                let s = rng.below(SECTORS - n);
                let tag = (seed << 20) | (op + 1);
                let buf: Vec<u8> = (s..s + n).flat_map(|k| sector_bytes(tag, k)).collect();
                let issued = seq.fetch_add(1, SeqCst);
                history.lock().unwrap().writes.push((s, n, tag, issued, u64::MAX));
                h.write((s * SS as u64) as i64, &buf).unwrap();
                let acked = seq.fetch_add(1, SeqCst);
                history.lock().unwrap().writes.last_mut().unwrap().4 = acked;
            }
        }
    }
    h.close().unwrap();
    ok(&rt, &["sync"]);
    done.store(true, SeqCst);
    let cuts = cutter.join().unwrap();
    finish(rt);
    let h = Arc::try_unwrap(history).ok().unwrap().into_inner().unwrap();
    (cuts, h, exported, dsize)
}

/// Taste one cut in a fresh runtime and check it.
fn check(seed: u64, n: usize, cut: &Cut, h: &History, sectors: &[Vec<(u64, u64, u64)>], exported: u64, complete: bool) {
    let flush_issued = h.flushes.iter().filter(|f| f.1 < cut.seq).map(|f| f.0).max();
    for img in &cut.images {
        let label = img.read(img.size() - 512, 512);
        metadata::decode::<JournalMetadata>(&label)
            .unwrap_or_else(|e| panic!("seed {seed} cut {n}: label torn or lost: {e}"));
    }
    let rt = quiet(&format!("cut{seed}-{n}"));
    for img in &cut.images {
        rt.md_create(MdConfig::malloc(0).image(img.clone())).unwrap();
    }
    rt.load::<Journal>().unwrap();
    rt.settle();
    let dev = rt.open("md0.journal", 1, 0, 0).unwrap_or_else(|e| panic!("seed {seed} cut {n}: no device ({e})"));
    assert_eq!(dev.mediasize() as u64, exported);
    let got = dev.read(0, SECTORS as usize * SS).unwrap();
    dev.close().unwrap();
    // Closed, the worker marks the device clean; let it finish before the runtime goes.
    ok(&rt, &["sync"]);
    for s in 0..SECTORS {
        let bytes = &got[s as usize * SS..(s as usize + 1) * SS];
        let tag = if bytes.iter().all(|&b| b == 0) { 0 } else { u64::from_le_bytes(bytes[..8].try_into().unwrap()) };
        if tag != 0 {
            assert_eq!(bytes, &sector_bytes(tag, s)[..], "seed {seed} cut {n}: sector {s} holds garbage");
        }
        let ok = allowed(&sectors[s as usize], flush_issued, cut.seq);
        assert!(
            ok.contains(&tag),
            "seed {seed} cut {n} (layout {}): sector {s} holds write {tag:#x}, allowed {ok:x?}",
            if complete { "single" } else { "separate" }
        );
    }
    finish(rt);
}

#[test]
fn no_flushed_write_is_lost_across_power_cuts() {
    boot();
    let seeds: u64 = std::env::var("JOURNAL_CRASH_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    let mut tried = 0;
    for seed in 0..seeds {
        let complete = seed % 3 == 2;
        let (cuts, h, exported, _) = workload(seed, complete);
        let sectors = per_sector(&h);
        for (n, cut) in cuts.iter().enumerate() {
            check(seed, n, cut, &h, &sectors, exported, complete);
        }
        tried += cuts.len();
    }
    println!("power cuts tried: {tried} over {seeds} seeded workloads, none lost a flushed write or tore a label");
    assert!(tried >= seeds as usize);
}
