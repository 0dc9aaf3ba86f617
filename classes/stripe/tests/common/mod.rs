//! Helpers shared by the stripe tests: runtimes, data, and an independent model of where each
//! byte of a stripe device lives.
#![allow(dead_code)]

use geom_class_stripe::Stripe;
use geom_host::command::{self, Output};
use geom_host::disk::{MdConfig, MdDisk};
use geom_host::{Runtime, RuntimeConfig};

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;

/// A quiet runtime with memory disks of the given sizes (md0, md1, ...).
pub fn runtime(name: &str, sizes: &[u64]) -> (Runtime, Vec<MdDisk>) {
    let rt = Runtime::new(RuntimeConfig { name: name.into(), echo_console: false, ..Default::default() });
    let disks = sizes.iter().map(|&s| rt.md_create(MdConfig::malloc(s)).unwrap()).collect();
    (rt, disks)
}

/// `geom stripe <argv>`.
pub fn gstripe(rt: &Runtime, argv: &[&str]) -> Output {
    command::run::<Stripe>(rt, argv)
}

/// `geom stripe <argv>`, which must succeed.
pub fn ok(rt: &Runtime, argv: &[&str]) -> Output {
    let out = gstripe(rt, argv);
    assert_eq!(out.error, None, "geom stripe {argv:?}: {out:?}");
    out
}

/// `geom stripe <argv>`, which must fail with `msg`.
pub fn fails(rt: &Runtime, argv: &[&str], msg: &str) {
    let out = gstripe(rt, argv);
    assert_eq!(out.error.as_deref(), Some(msg), "geom stripe {argv:?}: {out:?}");
}

/// Shut down and insist on a clean report (no leaked bios, no violations; leaked
/// malloc memory is a console warning, as on FreeBSD, not a violation).
pub fn finish(rt: Runtime) {
    let v = rt.shutdown();
    assert!(v.is_empty(), "{v:#?}");
}

/// splitmix64.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Where byte `off` of a device with `n` components and stripe size `s` lives: component
/// and offset on it. Written from the definition (stripe `off / s` is the `(off / s) mod
/// n`-th component's `(off / s) / n`-th stripe), not from the class's arithmetic.
pub fn locate(off: u64, n: u64, s: u64) -> (usize, u64) {
    let stripe = off / s;
    ((stripe % n) as usize, (stripe / n) * s + off % s)
}

/// The device's bytes `off..off + len`, as the model says the components hold them.
pub fn model_read(disks: &[MdDisk], s: u64, off: u64, len: usize) -> Vec<u8> {
    let n = disks.len() as u64;
    let mut out = Vec::with_capacity(len);
    let mut at = off;
    while out.len() < len {
        let (d, o) = locate(at, n, s);
        let run = ((s - at % s) as usize).min(len - out.len());
        out.extend(disks[d].read_backing(o, run));
        at += run as u64;
    }
    out
}
