//! The JOURNAL class end to end on the userland runtime: labels, both layouts, reads of the
//! newest data wherever it sits, flush, clean stop, restart, replay, dump and clear.

mod common;

use common::*;
use geom_class_journal::metadata::{GJ_FLAG_CHECKSUM, GJ_FLAG_CLEAN, GJ_TYPE_COMPLETE, GJ_TYPE_DATA, GJ_TYPE_JOURNAL};
use geom_class_journal::{Journal, JournalMetadata};
use geom_core::metadata;
use geom_host::disk::{MdConfig, MdDisk};

fn label_of(d: &MdDisk) -> JournalMetadata {
    let sector = d.read_backing(d.mediasize() - 512, 512);
    metadata::decode::<JournalMetadata>(&sector).expect("a sound label")
}

#[test]
fn label_writes_freebsd_labels_on_both_providers() {
    let (rt, d) = runtime("jlabel", &[4 * MIB, 64 * MIB]);
    ok(&rt, &["label", "-c", "md0", "md1"]);
    let (a, b) = (label_of(&d[0]), label_of(&d[1]));
    assert_eq!(a.id, b.id);
    assert_eq!((a.kind, b.kind), (GJ_TYPE_DATA, GJ_TYPE_JOURNAL));
    assert_eq!((a.jstart, a.jend), (0, 64 * MIB - 512));
    assert_eq!(a.flags, GJ_FLAG_CLEAN | GJ_FLAG_CHECKSUM);
    assert_eq!((a.provsize, b.provsize), (4 * MIB, 64 * MIB));
    // dump prints what the label holds, as gjournal dump does.
    let out = ok(&rt, &["dump", "md0"]);
    assert!(out.stdout.contains("Metadata on md0:\n     magic: GEOM::JOURNAL\n   version: 0\n"), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("        id: {}\n", a.id)));
    assert!(out.stdout.contains("      type: 1\n"));
    rt.settle();
    assert!(rt.provider("md0.journal").is_some());
    finish(rt);
}

#[test]
fn label_refuses_what_gjournal_refuses() {
    let (rt, _d) = runtime("jrefuse", &[4 * MIB, 64 * MIB, 200 * MIB]);
    fails(&rt, &["label", "-s", "1000000", "md2"], "Journal too small.");
    fails(&rt, &["label", "-s", "104857601", "md2"], "Invalid journal size.");
    fails(
        &rt,
        &["label", "-s", "209715200", "md2"],
        "Provider too small for journalling. You can try smaller jsize (default is 209715200).",
    );
    // The largest multiple of the sector size: jsize plus a sector overflowed (found by the
    // ctlreq fuzzer's harness).
    fails(
        &rt,
        &["label", "-s", "9223372036854775296", "md2"],
        "Provider too small for journalling. You can try smaller jsize (default is 9223372036854775296).",
    );
    fails(
        &rt,
        &["label", "-s", "104857600", "md0", "md1"],
        "jsize argument is valid only for all-in-one configuration.",
    );
    fails(&rt, &["label", "md0", "md1", "md2"], "Too many arguments.");
    finish(rt);
}

#[test]
fn separate_journal_reads_newest_data_and_copies_home_on_close() {
    let (rt, d) = runtime("jsep", &[4 * MIB, 64 * MIB]);
    ok(&rt, &["label", "md0", "md1"]);
    rt.settle();
    let h = rt.open("md0.journal", 1, 1, 0).unwrap();
    assert_eq!(h.mediasize() as u64, 4 * MIB - 512);
    // Overlapping writes: the newest wins, before and after the journal switches.
    h.write(0, &pattern(1, 64 * KIB as usize)).unwrap();
    h.write(4096, &pattern(2, 8192)).unwrap();
    let mut want = pattern(1, 64 * KIB as usize);
    want[4096..12288].copy_from_slice(&pattern(2, 8192));
    same(&h.read(0, want.len()).unwrap(), &want);
    h.flush().unwrap();
    h.write(8192, &pattern(3, 512)).unwrap();
    want[8192..8704].copy_from_slice(&pattern(3, 512));
    same(&h.read(0, want.len()).unwrap(), &want);
    // The label went dirty with the first write.
    assert_eq!(label_of(&d[0]).flags & GJ_FLAG_CLEAN, 0);
    // Nothing reached the data provider's bytes the reader did not ask for.
    assert_eq!(d[0].read_backing(2 * MIB, 4096), vec![0; 4096]);
    h.close().unwrap();
    // gjournal sync returns once everything is home (and, closed, the device clean).
    ok(&rt, &["sync"]);
    same(&d[0].read_backing(0, want.len()), &want);
    assert_ne!(label_of(&d[0]).flags & GJ_FLAG_CLEAN, 0);
    // GETATTR GJOURNAL::provider names the device, as UFS asks.
    let h = rt.open("md0.journal", 1, 0, 0).unwrap();
    assert_eq!(&h.getattr("GJOURNAL::provider", 32).unwrap()[..12], b"md0.journal\0");
    h.close().unwrap();
    finish(rt);
}

#[test]
fn single_provider_layout_keeps_the_journal_at_the_end() {
    let size = 128 * MIB;
    let (rt, d) = runtime("jone", &[size]);
    ok(&rt, &["label", "-s", "104857600", "md0"]);
    let md = label_of(&d[0]);
    assert_eq!(md.kind, GJ_TYPE_COMPLETE);
    assert_eq!((md.jstart, md.jend), (size - 512 - 100 * MIB, size - 512));
    rt.settle();
    let h = rt.open("md0.journal", 1, 1, 0).unwrap();
    assert_eq!(h.mediasize() as u64, md.jstart);
    for i in 0..50u64 {
        h.write((i * 37 % 500) as i64 * 4096, &pattern(i, 4096)).unwrap();
    }
    h.close().unwrap();
    ok(&rt, &["sync"]);
    let mut want = vec![0u8; 500 * 4096];
    for i in 0..50u64 {
        let at = (i * 37 % 500) as usize * 4096;
        want[at..at + 4096].copy_from_slice(&pattern(i, 4096));
    }
    same(&d[0].read_backing(0, want.len()), &want);
    finish(rt);
}

#[test]
fn stop_marks_clean_and_a_restart_sees_the_data() {
    let (rt, d) = runtime("jstop", &[4 * MIB, 64 * MIB]);
    ok(&rt, &["label", "md0", "md1"]);
    rt.settle();
    let h = rt.open("md0.journal", 1, 1, 0).unwrap();
    h.write(512, &pattern(9, 4096)).unwrap();
    fails(&rt, &["stop", "md0"], "Cannot destroy device md0.journal (error=16).");
    h.close().unwrap();
    ok(&rt, &["stop", "md0.journal"]);
    rt.settle();
    assert!(rt.provider("md0.journal").is_none());
    assert_ne!(label_of(&d[0]).flags & GJ_FLAG_CLEAN, 0);
    assert_eq!(d[0].read_backing(512, 4096), pattern(9, 4096));
    finish(rt);
    // The images in a new runtime: a clean device, the data in place.
    let rt = quiet("jstop2");
    let a = rt
        .md_create(
            MdConfig::malloc(4 * MIB).image(d[0].power_cut(&mut geom_host::rng::Rng::new(0), &mut || {}).unwrap()),
        )
        .unwrap();
    let _b = rt
        .md_create(
            MdConfig::malloc(64 * MIB).image(d[1].power_cut(&mut geom_host::rng::Rng::new(0), &mut || {}).unwrap()),
        )
        .unwrap();
    rt.load::<Journal>().unwrap();
    rt.settle();
    let h = rt.open("md0.journal", 1, 0, 0).unwrap();
    assert_eq!(h.read(512, 4096).unwrap(), pattern(9, 4096));
    h.close().unwrap();
    assert_eq!(a.read_backing(512, 4096), pattern(9, 4096));
    finish(rt);
}

#[test]
fn clear_removes_the_labels() {
    let (rt, d) = runtime("jclear", &[4 * MIB, 64 * MIB]);
    ok(&rt, &["label", "md0", "md1"]);
    rt.settle();
    ok(&rt, &["stop", "md0"]);
    rt.settle();
    ok(&rt, &["clear", "-v", "md0", "md1"]);
    assert_eq!(d[0].read_backing(4 * MIB - 512, 512), vec![0; 512]);
    assert_eq!(d[1].read_backing(64 * MIB - 512, 512), vec![0; 512]);
    finish(rt);
}
