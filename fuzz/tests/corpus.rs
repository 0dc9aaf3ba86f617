//! The corpus, replayed without a fuzzing engine (stable Rust, no libFuzzer): every file in
//! `corpus/<target>/` goes through its harness, so a fix that regresses, or a harness that
//! starts panicking on its own seeds, fails `cargo test`.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target)
}

fn files(target: &str) -> Vec<PathBuf> {
    let dir = corpus(target);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn replay(target: &str) {
    let (_, harness) = geom_fuzz::TARGETS.iter().find(|(name, _)| *name == target).expect("a known target");
    let files = files(target);
    assert!(!files.is_empty(), "no corpus for {target}");
    for f in &files {
        let data = std::fs::read(f).expect("a readable corpus file");
        // Say which file before running it: a panic's message then names its input.
        eprintln!("{target}: {}", f.display());
        harness(&data);
    }
}

#[test]
fn metadata_corpus() {
    replay("metadata");
}

#[test]
fn ctlreq_corpus() {
    replay("ctlreq");
}

#[test]
fn nbd_corpus() {
    replay("nbd");
}

/// The generated seeds are in the committed corpus, unchanged: a harness whose input
/// layout changed needs `cargo run --bin seed_corpus` (and the new files committed).
#[test]
fn seeds_are_committed() {
    let mut stale = Vec::new();
    for s in geom_fuzz::seeds::all() {
        let path = corpus(s.target).join(&s.name);
        if std::fs::read(&path).ok().as_deref() != Some(&s.bytes[..]) {
            stale.push(path.display().to_string());
        }
    }
    assert!(stale.is_empty(), "seeds missing or stale (run the seed_corpus binary): {stale:?}");
}

/// Seeds also pass their harness directly (the generator's output, before it is written).
#[test]
fn seeds_pass_their_harness() {
    for s in geom_fuzz::seeds::all() {
        let (_, harness) = geom_fuzz::TARGETS.iter().find(|(name, _)| *name == s.target).expect("a known target");
        harness(&s.bytes);
    }
}
