//! Fuzz harnesses for geom-rs's untrusted inputs, one function per `cargo fuzz` target:
//!
//! * [`metadata()`]: what classes decode from disks (gstripe's and gjournal's labels,
//!   gjournal's journal and record headers and the recovery walk over a journal area,
//!   geom-core's generic metadata layer, `dump` of a last sector);
//! * [`ctlreq()`]: geom(8) requests, as command lines and as raw parameter sets, through the
//!   userland parser, the class libraries' verbs and the kernel side of `Runtime::ctl`;
//! * [`nbd()`]: an NBD client's byte stream through `geom_host::nbd::proto`.
//!
//! They panic (the fuzzer's crash) when the code under test panics or breaks a property; they
//! need no fuzzing engine, so `tests/corpus.rs` replays the corpus on stable Rust. The
//! targets in `fuzz_targets/` only hand libFuzzer's bytes over. Each module's documentation
//! describes its input layout; [`seeds`] builds the corpus in `corpus/<target>/`.

pub mod ctlreq;
pub mod input;
pub mod memdisk;
pub mod metadata;
pub mod nbd;
pub mod seeds;

/// The `metadata` target.
pub fn metadata(data: &[u8]) {
    metadata::run(data);
}

/// The `ctlreq` target.
pub fn ctlreq(data: &[u8]) {
    ctlreq::run(data);
}

/// The `nbd` target.
pub fn nbd(data: &[u8]) {
    nbd::run(data);
}

/// A harness: the bytes of one input.
pub type Harness = fn(&[u8]);

/// Every target by name, with its harness.
pub const TARGETS: [(&str, Harness); 3] = [("metadata", metadata), ("ctlreq", ctlreq), ("nbd", nbd)];
