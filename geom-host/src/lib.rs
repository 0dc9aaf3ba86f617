//! # geom-host: the FreeBSD GEOM KPI in userland
//!
//! A GEOM class compiled against `geom_core::sys` calls the GEOM KPI (`g_new_geomf`,
//! `g_io_request`, `g_access`, ...) through `extern "C"`. In a kernel module those symbols are
//! the kernel's. Linked with this crate, they are ours: the same class code, the same struct
//! layouts and the same trampolines run in a normal Linux process.
//!
//! A [`Runtime`] is one "kernel": its own topology and topology lock, its own `g_event`,
//! `g_down` and `g_up` threads, its own loaded classes and bios. Several runtimes can live in
//! one process (tests run side by side); each thread knows which runtime it belongs to.
//!
//! What it checks, like an `INVARIANTS` kernel: a bio delivered twice, a bio alive at
//! teardown, a parent delivered while its children are in flight, access counts below zero,
//! sleeping KPI called from start or done, and FreeBSD's `KASSERT`s on topology calls. See
//! [`invariants`].
#![warn(missing_docs)]

mod biomem;
pub mod bioq;
pub mod command;
mod confxml;
pub mod disk;
mod events;
pub mod gctl;
pub mod invariants;
mod io;
pub mod listing;
mod malloc_types;
pub mod modules;
mod platform;
pub mod raw_pass;
mod runtime;
pub mod sbuf;
mod sched;
mod topology;
mod uma;
pub mod userland;

pub use gctl::{CtlReply, CtlRequest, CtlValue};
pub use invariants::{InvariantPolicy, Violation, ViolationKind};
pub use io::Handle;
pub use malloc_types::MallocUsage;
pub use modules::LoadedModule;
pub use runtime::{format_topology, BioResult, ConsumerInfo, GeomInfo, ProviderInfo, Runtime, RuntimeConfig, Topo};
pub use uma::ZoneInfo;
