//! An NBD server: any provider of a [`Runtime`](crate::Runtime) served to real NBD clients
//! (`qemu-io`, `qemu-img`, `nbd-client`, `nbdkit`'s tools) over a Unix or TCP socket.
//!
//! [`proto`] is the wire format with no I/O (what a fuzzer drives); [`server`] is
//! [`NbdServer`]: an accept thread, then per connection a reader thread (handshake, then
//! requests parsed and submitted with [`Handle::submit`](crate::Handle::submit)) and a writer
//! thread that assembles completions and writes the replies. A request larger than
//! `maxphys` becomes several bios whose results are merged before the one reply. Only the
//! fixed-newstyle handshake and simple replies are spoken.
//!
//! The chapter of the programming guide on serving follows.
#![doc = include_str!("../../../docs/serving.md")]

pub mod proto;
pub mod server;

pub use server::{ExportInfo, Listen, NbdServer};
