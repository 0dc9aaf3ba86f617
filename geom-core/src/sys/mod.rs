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

// The header modules are private and re-exported flat below, like C's single namespace
// (`sys::bio`, `sys::g_provider`, `sys::BIO_READ`); errno values, the platform seam and the
// queue helpers keep their own namespaces.
mod bio_h;
pub mod errno;
mod geom_ctl_h;
mod geom_h;
mod kpi;
mod linker_set;
mod lock_h;
mod malloc_h;
mod module_h;
pub mod platform;
pub mod queue;
mod release;
mod types;
mod uma_h;

pub use bio_h::*;
pub use geom_ctl_h::*;
pub use geom_h::*;
pub use kpi::*;
pub use linker_set::*;
pub use lock_h::*;
pub use malloc_h::*;
pub use module_h::*;
pub use queue::*;
pub use release::*;
pub use types::*;
pub use uma_h::*;
