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
//! * The safe class API is built on top of `sys`: [`GeomClass`] and [`Geom`] (a class and
//!   the state of one of its geoms), owned bios ([`Request`], [`Fanout`]), contexts as
//!   tokens ([`Topology`], [`IoCtx`], [`SleepCtx`]), handles ([`Provider`], [`Consumer`],
//!   [`GeomRef`]), errno errors ([`Errno`]), geom(8) requests ([`Gctl`]) and dumpconf
//!   ([`XmlWriter`]). [`class_table`] turns a class into FreeBSD's `struct g_class`.
//! * For work that may sleep: intrusive bio queues ([`BioQueue`]), worker actors with their
//!   own thread ([`Worker`], [`Handler`]) and locks ([`Mutex`] for any context, [`SleepLock`]
//!   for sleepable ones).
//! * Memory: malloc types ([`malloc_define!`], [`MallocType`]) and what is allocated in
//!   them ([`KBox`], [`KBuf`]), UMA zones ([`Zone`], [`ZoneBox`]), and bios a class issues
//!   itself, owning their buffer ([`BufBio`]) or borrowing one ([`BareBio`]). Allocation
//!   that may wait needs a context that may ([`MayWait`]); from start and done it is
//!   `M_NOWAIT` and fails with `ENOMEM`.
//!
//! The target release is chosen with one cargo feature: `freebsd-15` (the default),
//! `freebsd-14` or `freebsd-16`. Class code never sees the difference.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

pub mod bio;
pub mod bioq;
pub mod class;
pub mod context;
pub mod ctl;
pub mod error;
pub mod handles;
pub mod iobuf;
pub mod malloc;
pub mod metadata;
pub mod module;
pub mod print;
pub mod slot;
pub mod sync;
pub mod sys;
pub mod userland;
pub mod verbs;
pub mod worker;
pub mod xml;
pub mod zone;

pub use bio::{BioFlags, Child, Children, Cmd, Fanout, Request};
pub use bioq::BioQueue;
pub use class::{class_table, Class, Geom, GeomClass, Methods};
pub use context::{uptime_ns, IoCtx, MayWait, SleepCtx, Topology};
pub use ctl::Gctl;
pub use error::{Errno, Result};
pub use handles::{Consumer, GeomBuf, GeomRef, Provider};
pub use iobuf::{BareBio, BufBio};
pub use malloc::{KBox, KBuf, MallocType};
pub use metadata::{MetaError, Metadata};
pub use slot::Slot;
pub use sync::{Mutex, MutexGuard, SleepLock, SleepLockGuard};
pub use userland::Userland;
pub use verbs::{NoVerbs, VerbArgs, Verbs};
pub use worker::{Handler, PostError, Worker};
pub use xml::{Dump, XmlWriter};
pub use zone::{Zone, ZoneBox};

/// The derives and attribute of `geom-macros`, so a class needs only this crate.
pub use geom_macros::{geom_class, VerbArgs, Verbs};

/// `arc4random(9)`: 32 random bits. On the host the generator is seeded per runtime, so the
/// sequence of numbers replays from the seed (which caller draws which number still depends
/// on thread timing).
pub fn arc4random() -> u32 {
    // SAFETY: the platform's arc4random has no preconditions.
    unsafe { sys::platform::geom_rs_random() }
}

/// `maxphys`: the largest request GEOM sends down (1 MiB on amd64 unless tuned).
pub fn maxphys() -> u64 {
    // SAFETY: maxphys is set at boot (or by the runtime) before any class runs, never after.
    unsafe { sys::maxphys }
}
