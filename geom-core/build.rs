//! Turns the release features into one cfg, `freebsd_release = "14" | "15" | "16"`, so the
//! layout code says which release it describes instead of repeating feature logic.
fn main() {
    let on = |f: &str| std::env::var_os(format!("CARGO_FEATURE_FREEBSD_{f}")).is_some();
    let release = if on("14") {
        "14"
    } else if on("16") {
        "16"
    } else {
        "15"
    };
    println!("cargo::rustc-check-cfg=cfg(freebsd_release, values(\"14\", \"15\", \"16\"))");
    println!("cargo::rustc-cfg=freebsd_release=\"{release}\"");
    println!("cargo::metadata=release={release}");
}
