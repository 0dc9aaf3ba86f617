//! # geom-macros
//!
//! Not built yet: this crate will hold the attribute that turns a class's trait impls into
//! the static `g_class`, the `extern "C"` trampolines and everything `DECLARE_GEOM_CLASS`
//! emits in C (issue "The safe class API ... and the `g_class` glue in `geom-macros`").
//! Nothing here pretends to work yet; it exports no macros.
