//! Helpers shared by the journal tests: runtimes, labels, patterns.
#![allow(dead_code)]

use geom_class_journal::Journal;
use geom_host::command::{self, Output};
use geom_host::disk::{MdConfig, MdDisk};
use geom_host::{Runtime, RuntimeConfig};

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;

/// A quiet runtime.
pub fn quiet(name: &str) -> Runtime {
    Runtime::new(RuntimeConfig { name: name.into(), echo_console: false, ..Default::default() })
}

/// A quiet runtime with memory disks of the given sizes (md0, md1, ...).
pub fn runtime(name: &str, sizes: &[u64]) -> (Runtime, Vec<MdDisk>) {
    let rt = quiet(name);
    let disks = sizes.iter().map(|&s| rt.md_create(MdConfig::malloc(s)).unwrap()).collect();
    (rt, disks)
}

/// `geom journal <argv>`, which must succeed.
pub fn ok(rt: &Runtime, argv: &[&str]) -> Output {
    let out = command::run::<Journal>(rt, argv);
    assert_eq!(out.error, None, "geom journal {argv:?}: {out:?}");
    out
}

/// `geom journal <argv>`, which must fail with `msg`.
pub fn fails(rt: &Runtime, argv: &[&str], msg: &str) {
    let out = command::run::<Journal>(rt, argv);
    assert_eq!(out.error.as_deref(), Some(msg), "geom journal {argv:?}: {out:?}");
}

/// Shut down and insist on a clean report.
pub fn finish(rt: Runtime) {
    let v = rt.shutdown();
    assert!(v.is_empty(), "violations: {v:#?}");
}

/// `len` bytes of a pattern unique to `tag`.
pub fn pattern(tag: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (tag.wrapping_mul(31).wrapping_add(i as u64 * 7) % 251) as u8 + 1).collect()
}

/// Compare two byte strings, reporting the first difference instead of both in full.
#[track_caller]
pub fn same(got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "lengths differ");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("first difference at byte {i} (sector {}): got {} want {}", i / 512, got[i], want[i]);
    }
}
