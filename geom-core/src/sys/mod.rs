//! FreeBSD's kernel ABI for GEOM classes, amd64 (LP64).
//!
//! Types and fields keep FreeBSD's own C names (`bio`, `bio_cmd`, `g_provider`, `mediasize`,
//! ...), so the headers and this module read side by side. Every structure's size and every
//! field offset is pinned with `static_assertions` for the release selected by the
//! `freebsd-14` / `freebsd-15` / `freebsd-16` feature; each group of assertions names the
//! header it was read from.
//!
//! Nothing here is safe to use casually: these are raw C structures shared with the kernel (or
//! with `geom-host`, which implements the same symbols in userland). The safe class API is
//! built on top of this module; class crates never touch it directly.
#![allow(non_camel_case_types)]
#![allow(non_upper_case_globals)]

pub mod bio;
pub mod errno;
pub mod gctl;
pub mod geom;
pub mod kpi;
pub mod lock;
pub mod malloc;
pub mod module;
pub mod platform;
pub mod queue;
pub mod release;
pub mod types;

pub use bio::*;
pub use gctl::*;
pub use geom::*;
pub use kpi::*;
pub use lock::*;
pub use malloc::*;
pub use module::*;
pub use queue::*;
pub use release::*;
pub use types::*;
