//! # geom-core
//!
//! The part of geom-rs that a GEOM class is compiled against, in both of its homes: a FreeBSD
//! amd64 kernel module and the userland runtime `geom-host`.
//!
//! * [`sys`] is FreeBSD's kernel ABI as Rust sees it: `#[repr(C)]` copies of the GEOM structures
//!   (`struct bio`, `struct g_provider`, ...) with every size and field offset pinned to the
//!   target release, the constants, and `extern "C"` declarations of the GEOM KPI. The symbols
//!   are resolved by the FreeBSD kernel when a class is linked into a `.ko`, or by `geom-host`
//!   when it runs on this machine.
//! * The safe class API (traits, owned bios, contexts as tokens) is built on top of `sys`.
//!
//! The target release is chosen with one cargo feature: `freebsd-15` (the default),
//! `freebsd-14` or `freebsd-16`. Class code never sees the difference.
#![no_std]
#![warn(missing_docs)]

pub mod sys;
