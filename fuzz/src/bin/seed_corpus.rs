//! Write the seed corpus (`geom_fuzz::seeds`) into `corpus/<target>/`, next to whatever the
//! fuzzers and regressions added there. Run from anywhere:
//! `cargo run --manifest-path fuzz/Cargo.toml --bin seed_corpus`.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let seeds = geom_fuzz::seeds::all();
    for s in &seeds {
        let dir = root.join(s.target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(&s.name), &s.bytes)?;
    }
    println!("wrote {} seeds under {}", seeds.len(), root.display());
    Ok(())
}
