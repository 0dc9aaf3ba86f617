//! Build the C twins of NOP and STRIPE (`csrc/`) into a static library linked with the
//! benchmark, so callgrind compares the two languages over the same KPI symbols.

fn main() {
    println!("cargo:rerun-if-changed=csrc");
    let mut sources: Vec<_> = std::fs::read_dir("csrc")
        .map(|d| {
            d.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "c")).collect()
        })
        .unwrap_or_default();
    sources.sort();
    if sources.is_empty() {
        return;
    }
    // The structures follow the release geom-core lays out (`--features geom-core/freebsd-14`
    // changes both sides).
    println!("cargo:rerun-if-env-changed=DEP_GEOM_CORE_RELEASE");
    let release = std::env::var("DEP_GEOM_CORE_RELEASE").unwrap_or_else(|_| "15".into());
    let mut build = cc::Build::new();
    // -O2, as FreeBSD builds its kernel; the Rust side is the release profile.
    build.include("csrc").opt_level(2).warnings(true).extra_warnings(true);
    build.define("GEOM_FREEBSD_RELEASE", release.as_str());
    for s in &sources {
        build.file(s);
    }
    build.compile("geom_ctwins");
}
