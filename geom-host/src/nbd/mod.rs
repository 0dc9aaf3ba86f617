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
//! How to serve a class from the shell with the `geom` tool or from Rust, what each NBD
//! command becomes in GEOM, and how untrusted client bytes are handled: the programming
//! guide's chapter on serving (crate `geom-guide`, `ch10_testing::serving`).

pub mod proto;
pub mod server;

pub use server::{ExportInfo, Listen, NbdServer};
