//! Builds the small C file that implements the KPI's variadic functions (`g_new_geomf`,
//! `gctl_error`, `sbuf_printf`, ...): it formats with the C library's `vsnprintf` and hands
//! the finished string to Rust.
fn main() {
    println!("cargo::rerun-if-changed=csrc/varargs.c");
    cc::Build::new()
        .file("csrc/varargs.c")
        .warnings(true)
        .extra_warnings(true)
        .flag_if_supported("-Wno-unused-parameter")
        .compile("geom_host_varargs");
}
