//! geom-rs's benchmarks, all in one run so their ratios hold on a noisy machine:
//!
//! * [`throughput`]: bios per second and MB/s through geom-host, for the raw memory disk (the
//!   floor), NOP, STRIPE over four disks, JOURNAL, and the C twins of NOP and STRIPE;
//! * [`nbd`]: the same bytes served over NBD by `geom` and by `qemu-nbd`, driven by
//!   `qemu-img bench`;
//! * [`instructions`]: instructions per bio under callgrind, the Rust classes beside C twins
//!   ([`ctwins`]) written against the same KPI symbols;
//! * [`kosize`]: the size of each kernel module.
//!
//! `cargo xtask bench` (or `cargo bench -p geom-bench`) runs them all and writes
//! `target/bench/results.md`; BENCHMARKS.md explains the setup and the figures.

pub mod cli;
pub mod ctwins;
pub mod instructions;
pub mod kosize;
pub mod nbd;
pub mod report;
pub mod stacks;
pub mod throughput;

/// How long and how much to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds each measured point runs for, per round.
    pub seconds: f64,
    /// Rounds: every stack runs once per round, interleaved, and the median round is kept.
    pub rounds: u32,
    /// Bios each callgrind run issues (the count is measured at this and twice this).
    pub callgrind_bios: u64,
    /// Parts to run (`throughput`, `nbd`, `instructions`, `kosize`); empty: all.
    pub parts: Vec<String>,
    /// Exit with failure when a goal is missed.
    pub check: bool,
    /// Request sizes the throughput part measures (4096 or 1048576); empty: both.
    pub blocks: Vec<usize>,
    /// Stacks the throughput part measures (by [`crate::stacks::Stack::key`]); empty: all.
    pub stacks: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seconds: 0.4,
            rounds: 3,
            callgrind_bios: 2000,
            parts: Vec::new(),
            check: false,
            blocks: Vec::new(),
            stacks: Vec::new(),
        }
    }
}

impl Options {
    /// True if part `name` is to run.
    pub fn wants(&self, name: &str) -> bool {
        self.parts.is_empty() || self.parts.iter().any(|p| p == name)
    }
}

/// The workspace's root (where `target/` and the `.ko` files are).
pub fn workspace_root() -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}
