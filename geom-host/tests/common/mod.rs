//! Helpers shared by the runtime's integration tests.
#![allow(dead_code)]

use std::ffi::{CStr, CString};

use geom_core::Gctl;
use geom_host::{Runtime, RuntimeConfig};

/// Verbs for test classes that read their parameters by hand: any verb is accepted and only
/// its name is kept.
pub struct AnyVerb(pub CString);

impl geom_core::Verbs for AnyVerb {
    const VERBS: &'static [geom_core::verbs::VerbSpec] = &[];
    fn from_gctl(_req: &mut Gctl<'_>, verb: &CStr) -> Option<Self> {
        Some(AnyVerb(verb.into()))
    }
    fn name(&self) -> &'static str {
        "(any verb)"
    }
}

/// A small deterministic generator (splitmix64): tests need reproducible "random" data and
/// offsets without a dependency.
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

    /// A value in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }
}

/// A quiet runtime that aborts on violations (the default policy).
pub fn runtime(name: &str) -> Runtime {
    Runtime::new(RuntimeConfig { name: name.into(), echo_console: false, ..Default::default() })
}

/// A quiet runtime that records violations.
pub fn collecting(name: &str) -> Runtime {
    Runtime::new(RuntimeConfig {
        name: name.into(),
        echo_console: false,
        policy: geom_host::InvariantPolicy::Collect,
        shutdown_grace: std::time::Duration::from_millis(300),
        ..Default::default()
    })
}

/// Shut down and insist nothing was violated.
pub fn finish(rt: Runtime) {
    let v = rt.shutdown();
    assert!(v.is_empty(), "invariant violations: {v:#?}");
}
