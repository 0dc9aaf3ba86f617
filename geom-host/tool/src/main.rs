//! `geom`: FreeBSD's geom(8) over the userland GEOM runtime.
//!
//! `geom serve -b` starts a host that keeps a topology alive: disks (`geom disk attach`),
//! classes and their geoms (`geom stripe label ...`, `geom nop create ...`), and NBD exports
//! of any provider for real block clients (`geom nbd export stripe/st0`). Every other `geom`
//! command is sent to that host over its control socket. Without a host, the verbs that
//! geom(8)'s class libraries run in userland (`label`, `clear`, `dump`) still work, on disk
//! image files named on the command line.
//!
//! The control socket is `--socket PATH`, else `$GEOM_SOCKET`, else
//! `$XDG_RUNTIME_DIR/geom-UID.sock` (or under `/tmp`).
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod args;
mod classes;
mod control;
mod copy;
mod disks;
mod exports;
mod host;
mod out;
mod serve;

use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Mutex, MutexGuard};

use host::{Host, Mode};

/// Lock a mutex, going on if a panicking thread poisoned it (the data is a map of handles,
/// consistent at every step).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where the control socket is when not given.
fn default_socket() -> PathBuf {
    if let Some(s) = std::env::var_os("GEOM_SOCKET") {
        return PathBuf::from(s);
    }
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
    let dir = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"));
    dir.join(format!("geom-{uid}.sock"))
}

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    let mut socket = None;
    while argv.first().is_some_and(|a| a == "--socket") {
        if argv.len() < 2 {
            eprintln!("geom: --socket needs a path");
            return ExitCode::FAILURE;
        }
        socket = Some(PathBuf::from(argv.remove(1)));
        argv.remove(0);
    }
    let socket = socket.unwrap_or_else(default_socket);
    if argv.first().is_some_and(|a| a == "serve") {
        return status(serve::main(&socket, &argv[1..]));
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    match control::call(&socket, &cwd, &argv) {
        Ok(s) => status(s),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
            one_shot(socket, &cwd, &argv)
        }
        Err(e) => {
            eprintln!("geom: {}: {e}", socket.display());
            ExitCode::FAILURE
        }
    }
}

/// No host answers: run the command in a runtime of its own, over the image files it names.
fn one_shot(socket: PathBuf, cwd: &std::path::Path, argv: &[String]) -> ExitCode {
    let host = Host::new(Mode::OneShot, socket);
    let mut out = out::Local::new();
    let s = host.execute(cwd, argv, &mut out);
    let violations = host.shutdown();
    for v in &violations {
        eprintln!("geom: invariant violated: {v:?}");
    }
    status(if violations.is_empty() { s } else { 1 })
}

fn status(s: i32) -> ExitCode {
    ExitCode::from(s.clamp(0, 255) as u8)
}
