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
//! With [`RuntimeConfig::deterministic`] a runtime runs one thread at a time, the next chosen
//! by a generator seeded from [`RuntimeConfig::seed`], on a virtual clock: the same seed and
//! the same calls replay the same interleaving, faults and bytes ([`Runtime::schedule_trace`]).
//!
//! What it checks, like an `INVARIANTS` kernel: a bio delivered twice, a bio alive at
//! teardown, a parent delivered while its children are in flight, access counts below zero,
//! sleeping KPI called from start or done, and FreeBSD's `KASSERT`s on topology calls. See
//! [`invariants`].
#![warn(missing_docs)]

mod baton;
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
mod memstore;
pub mod modules;
pub mod nbd;
mod platform;
pub mod raw_pass;
pub mod rng;
mod runtime;
pub mod sbuf;
mod sched;
mod topology;
mod uma;
pub mod userland;

pub use baton::ScheduleTrace;
pub use gctl::{CtlReply, CtlRequest, CtlValue};
pub use invariants::{InvariantPolicy, Violation, ViolationKind};
pub use io::{Handle, IoDone, IoOp};
pub use malloc_types::MallocUsage;
pub use modules::LoadedModule;
pub use runtime::{format_topology, BioResult, ConsumerInfo, GeomInfo, ProviderInfo, Runtime, RuntimeConfig, Topo};
pub use uma::ZoneInfo;

/// Set `maxphys` (the loader tunable `kern.maxphys`: the largest request GEOM passes down) for
/// this process. Like a loader tunable it only works before boot: `Err` with the value in
/// force once a [`Runtime`] has started. Test programs that want small journals or short
/// records call it first thing; every runtime of the process then shares the value.
pub fn set_maxphys(bytes: u64) -> Result<(), u64> {
    use std::sync::atomic::Ordering::SeqCst;
    if crate::topology::BOOTED.load(SeqCst) || bytes < 4096 || !bytes.is_power_of_two() {
        return Err(crate::topology::maxphys.load(SeqCst));
    }
    crate::topology::maxphys.store(bytes, SeqCst);
    Ok(())
}
