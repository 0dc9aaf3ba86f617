//! `geom serve`: the long-running host. It owns one runtime, listens on the control socket
//! for commands from other `geom` processes (each on its own thread, so a long copy does
//! not hold up a `geom list`) and serves NBD clients, until `geom shutdown`.

use std::io::{self, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use geom_host::nbd::Listen;

use crate::args::getopt;
use crate::control::{self, Remote};
use crate::host::{Host, Mode};

/// The listeners `-n` asks for: `unix:PATH`, `tcp:HOST:PORT`, or `none`, comma-separated.
fn parse_listeners(spec: &str) -> Result<Vec<Listen>, String> {
    let mut out = Vec::new();
    for item in spec.split(',').filter(|s| !s.is_empty()) {
        if item == "none" {
            continue;
        }
        if let Some(path) = item.strip_prefix("unix:") {
            out.push(Listen::Unix(PathBuf::from(path)));
        } else if let Some(addr) = item.strip_prefix("tcp:") {
            let addr =
                addr.parse().map_err(|_| format!("Invalid TCP address: {addr} (HOST:PORT, e.g. 127.0.0.1:10809)."))?;
            out.push(Listen::Tcp(addr));
        } else {
            return Err(format!("Invalid listener: {item} (unix:PATH, tcp:HOST:PORT or none)."));
        }
    }
    Ok(out)
}

/// The default NBD socket beside the control socket.
pub fn default_nbd(socket: &Path) -> PathBuf {
    let mut s = socket.as_os_str().to_owned();
    s.push(".nbd");
    PathBuf::from(s)
}

/// Run `geom serve [-b] [-n LISTENERS]`; returns the exit status.
pub fn main(socket: &Path, argv: &[String]) -> i32 {
    match serve(socket, argv) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("geom: {e}");
            1
        }
    }
}

fn serve(socket: &Path, argv: &[String]) -> Result<i32, String> {
    let p = getopt(argv, "bn:")?;
    if !p.args.is_empty() {
        return Err("usage: geom serve [-b] [-n unix:PATH|tcp:HOST:PORT|none[,...]]".into());
    }
    let default = format!("unix:{}", default_nbd(socket).display());
    let listeners = parse_listeners(p.value('n').unwrap_or(&default))?;
    if UnixStream::connect(socket).is_ok() {
        return Err(format!("A host is already running at {}.", socket.display()));
    }
    if p.flag('b') {
        return background(socket, argv);
    }
    // A socket file left by a host that died answers no connect: take its place.
    if std::fs::symlink_metadata(socket).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(socket);
    }
    let listener = UnixListener::bind(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    let host = Arc::new(Host::new(Mode::Server, socket.to_owned()));
    for l in listeners {
        let shown = match &l {
            Listen::Unix(p) => p.display().to_string(),
            Listen::Tcp(a) => a.to_string(),
        };
        host.listen_nbd(l).map_err(|e| format!("NBD listener {shown}: {e}"))?;
    }
    println!("geom: host ready; control socket {}", socket.display());
    for l in crate::lock(&host.nbd).iter() {
        println!("geom: NBD on {}", crate::exports::uri(l, "EXPORT"));
    }
    let _ = io::stdout().flush();

    let mut workers = Vec::new();
    for stream in listener.incoming() {
        if host.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let host = Arc::clone(&host);
        let socket = socket.to_owned();
        workers.retain(|w: &std::thread::JoinHandle<()>| !w.is_finished());
        workers.push(std::thread::spawn(move || {
            let Ok((cwd, argv)) = control::read_request(&mut &stream) else { return };
            let mut out = Remote::new(&stream);
            let status = host.execute(&cwd, &argv, &mut out);
            out.exit(status);
            if host.stopping.load(Ordering::SeqCst) {
                // Wake the accept loop so it sees the flag.
                let _ = UnixStream::connect(&socket);
            }
        }));
    }
    drop(listener);
    let _ = std::fs::remove_file(socket);
    for w in workers {
        let _ = w.join();
    }
    let Ok(host) = Arc::try_unwrap(host) else { return Err("commands still running at shutdown".into()) };
    let violations = host.shutdown();
    for v in &violations {
        eprintln!("geom: invariant violated: {v:?}");
    }
    println!("geom: host stopped");
    Ok(if violations.is_empty() { 0 } else { 1 })
}

/// `-b`: start the server as a child process of its own (its console going to
/// `SOCKET.log`) and return once it answers on the control socket.
fn background(socket: &Path, argv: &[String]) -> Result<i32, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut log_path = socket.as_os_str().to_owned();
    log_path.push(".log");
    let log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", PathBuf::from(&log_path).display()))?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let args: Vec<&String> = argv.iter().filter(|a| a.as_str() != "-b").collect();
    let mut child = Command::new(exe)
        .arg("--socket")
        .arg(socket)
        .arg("serve")
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| format!("cannot start the host: {e}"))?;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if UnixStream::connect(socket).is_ok() {
            println!("geom: host started (pid {}); control socket {}", child.id(), socket.display());
            return Ok(0);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(format!("the host exited ({status}):\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("the host did not answer at {} within 30 s", socket.display()))
}
