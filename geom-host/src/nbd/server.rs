//! [`NbdServer`]: exports of a runtime's providers, served over a Unix or TCP socket.
//!
//! Threads: one accepts; each connection has a reader (the handshake, then the requests: it
//! parses, checks, and submits bios) and, once in transmission, a writer. Each request's bio
//! completions are gathered (a flush is sent after a FUA write) into one reply. A completion
//! that runs on the reader's own thread, inside its submit (direct dispatch to a provider
//! that serves at once, such as a memory disk), is answered by the reader itself, the
//! replies gathered and sent when it would next wait for the client: no thread hand-off and
//! one send per batch. Any other completion goes to the writer thread, which must answer it
//! since a completion may not block. The two take turns on the connection's reply state, so
//! replies never interleave. The reader waits when a connection has
//! [`MAX_INFLIGHT_REQUESTS`] requests or [`MAX_INFLIGHT_BYTES`] of buffers in flight, or
//! when the client does not take its replies, so such a client stalls itself, not the
//! process.
//!
//! A connection opens its export's provider (`r1w1e0`, or `r1w0e0` read-only) when it enters
//! transmission and closes it when it ends; the end always waits for every submitted bio.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{self, BufReader, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use geom_core::sys::errno;

use super::proto::{self, Request};
use crate::invariants::lock;
use crate::{Handle, IoDone, IoOp, ProviderInfo, Runtime};

/// Largest read, write, trim or write-zeroes request (and the block size advertised as
/// maximum): bigger ones get `EINVAL` (a write also ends the connection, its payload unread).
pub const MAX_REQUEST: u32 = 32 << 20;
/// Requests one connection may have in flight before its reader waits.
pub const MAX_INFLIGHT_REQUESTS: usize = 64;
/// Buffer bytes one connection may have in flight before its reader waits (one request is
/// always let through, so a request of [`MAX_REQUEST`] bytes cannot wait forever).
pub const MAX_INFLIGHT_BYTES: u64 = 64 << 20;
/// Largest option payload read during the handshake; larger ones are skipped and refused.
pub const MAX_OPTION_PAYLOAD: u32 = 64 << 10;
/// Options a client may send before choosing an export; after that it is disconnected.
pub const MAX_OPTIONS: usize = 1000;
/// Connections served at once; further clients are closed as soon as they are accepted.
pub const MAX_CONNECTIONS: usize = 256;
/// How long the handshake may wait for the client's next bytes: a client that connects and
/// says nothing gives its connection up. (Transmission has no limit: a disk may sit idle.)
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// A Unix socket at this path.
    Unix(PathBuf),
    /// A TCP address; [`NbdServer::start`] accepts only loopback addresses.
    Tcp(SocketAddr),
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Unix(p) => write!(f, "unix:{}", p.display()),
            Listen::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// Percent-encode everything but RFC 3986's unreserved characters (and `/` if `keep_slash`).
fn percent_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Listen {
    /// The NBD URI of `export` at this address (`nbd+unix:///NAME?socket=PATH` or
    /// `nbd://HOST:PORT/NAME`), as qemu and libnbd take it.
    pub fn uri(&self, export: &str) -> String {
        match self {
            Listen::Unix(p) => format!(
                "nbd+unix:///{}?socket={}",
                percent_encode(export, false),
                percent_encode(&p.to_string_lossy(), true)
            ),
            Listen::Tcp(a) => format!("nbd://{a}/{}", percent_encode(export, false)),
        }
    }
}

/// One connected socket, either kind.
enum Sock {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Sock {
    fn try_clone(&self) -> io::Result<Sock> {
        Ok(match self {
            Sock::Unix(s) => Sock::Unix(s.try_clone()?),
            Sock::Tcp(s) => Sock::Tcp(s.try_clone()?),
        })
    }

    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Sock::Unix(s) => s.set_read_timeout(t),
            Sock::Tcp(s) => s.set_read_timeout(t),
        }
    }

    /// Shut both directions down: wakes any thread blocked on this socket (or a clone).
    fn shutdown(&self) {
        let _ = match self {
            Sock::Unix(s) => s.shutdown(Shutdown::Both),
            Sock::Tcp(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Unix(s) => s.read(buf),
            Sock::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Unix(s) => s.write(buf),
            Sock::Tcp(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Sock::Unix(s) => s.write_vectored(bufs),
            Sock::Tcp(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Listener {
    fn accept(&self) -> io::Result<Sock> {
        // The listener polls (non-blocking); a connection's socket blocks.
        match self {
            Listener::Unix(l) => {
                let (s, _) = l.accept()?;
                s.set_nonblocking(false)?;
                Ok(Sock::Unix(s))
            }
            Listener::Tcp(l) => {
                let (s, _) = l.accept()?;
                s.set_nonblocking(false)?;
                // Replies are small and latency-bound: no Nagle.
                let _ = s.set_nodelay(true);
                Ok(Sock::Tcp(s))
            }
        }
    }
}

/// What [`NbdServer::exports`] reports of one export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportInfo {
    /// The name clients ask for.
    pub name: String,
    /// The provider behind it.
    pub provider: String,
    /// Writes, trims and write-zeroes are refused with `EPERM`.
    pub read_only: bool,
    /// Connections in transmission on it now.
    pub clients: usize,
    /// Requests answered (every command but DISC).
    pub requests: u64,
    /// Bytes returned by successful reads.
    pub bytes_read: u64,
    /// Bytes stored by successful writes and write-zeroes.
    pub bytes_written: u64,
    /// Requests answered with an error.
    pub errors: u64,
}

struct Export {
    name: String,
    provider: String,
    read_only: bool,
    /// Changed only under the exports lock, so `unexport` and attaching cannot race.
    clients: AtomicUsize,
    requests: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    errors: AtomicU64,
}

impl Export {
    fn transmission_flags(&self) -> u16 {
        // A BIO_FLUSH reaches the provider's whole cache, whichever connection sent it: so
        // several connections may share an export.
        let common = proto::TFLAG_HAS_FLAGS
            | proto::TFLAG_SEND_FLUSH
            | proto::TFLAG_SEND_FUA
            | proto::TFLAG_SEND_CACHE
            | proto::TFLAG_CAN_MULTI_CONN;
        if self.read_only {
            common | proto::TFLAG_READ_ONLY
        } else {
            common | proto::TFLAG_SEND_TRIM | proto::TFLAG_SEND_WRITE_ZEROES
        }
    }
}

/// Counts a connection on its export while it lives.
struct ClientGuard(Arc<Export>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::SeqCst);
    }
}

struct ConnSlot {
    /// A clone of the connection's socket, to shut it down at stop.
    sock: Sock,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Conns {
    live: HashMap<u64, ConnSlot>,
    /// Threads that ended, to be joined.
    finished: Vec<JoinHandle<()>>,
}

struct Shared {
    rt: Runtime,
    exports: Mutex<BTreeMap<String, Arc<Export>>>,
    conns: Mutex<Conns>,
    conns_changed: Condvar,
    stopping: AtomicBool,
    next_conn: AtomicU64,
}

/// An NBD server over one runtime's providers.
///
/// Start it with [`NbdServer::start`], publish providers with [`NbdServer::export`], and
/// stop it with [`NbdServer::stop`] (or drop it) before the runtime shuts down: stopping
/// disconnects every client and returns once their bios have completed and their providers
/// are closed.
pub struct NbdServer {
    shared: Arc<Shared>,
    addr: Listen,
    accept: Option<JoinHandle<()>>,
}

impl NbdServer {
    /// Listen at `listen` and serve the providers of `rt` once exported. A Unix socket path
    /// holding a stale socket is replaced (a live one, or any other file, is an error). A
    /// TCP address must be a loopback address: exports have no authentication; use
    /// [`NbdServer::start_any_address`] to listen elsewhere.
    pub fn start(rt: &Runtime, listen: Listen) -> io::Result<NbdServer> {
        Self::start_inner(rt, listen, false)
    }

    /// [`NbdServer::start`] without the loopback rule: any TCP address (`0.0.0.0:10809`)
    /// is accepted. Anyone who reaches it can read and write the exports.
    pub fn start_any_address(rt: &Runtime, listen: Listen) -> io::Result<NbdServer> {
        Self::start_inner(rt, listen, true)
    }

    fn start_inner(rt: &Runtime, listen: Listen, any_address: bool) -> io::Result<NbdServer> {
        let (listener, addr) = match listen {
            Listen::Unix(path) => {
                clear_stale_socket(&path)?;
                let l = UnixListener::bind(&path)?;
                (Listener::Unix(l), Listen::Unix(path))
            }
            Listen::Tcp(a) => {
                if !any_address && !a.ip().is_loopback() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{a} is not a loopback address (NbdServer::start_any_address allows it)"),
                    ));
                }
                let l = TcpListener::bind(a)?;
                let real = l.local_addr()?;
                (Listener::Tcp(l), Listen::Tcp(real))
            }
        };
        let nonblocking = match &listener {
            Listener::Unix(l) => l.set_nonblocking(true),
            Listener::Tcp(l) => l.set_nonblocking(true),
        };
        let shared = Arc::new(Shared {
            rt: Runtime::non_owning(Arc::clone(&rt.k)),
            exports: Mutex::new(BTreeMap::new()),
            conns: Mutex::new(Conns::default()),
            conns_changed: Condvar::new(),
            stopping: AtomicBool::new(false),
            next_conn: AtomicU64::new(0),
        });
        let s = Arc::clone(&shared);
        let accept = nonblocking
            .and_then(|()| thread::Builder::new().name("nbd-accept".into()).spawn(move || accept_loop(&s, listener)));
        match accept {
            Ok(accept) => Ok(NbdServer { shared, addr, accept: Some(accept) }),
            Err(e) => {
                remove_socket_file(&addr);
                Err(e)
            }
        }
    }

    /// Where the server listens (a TCP port asked as 0 shows the port chosen).
    pub fn local_addr(&self) -> Listen {
        self.addr.clone()
    }

    /// Publish `provider` as export `name`. The provider must exist now; it is opened by
    /// each client that chooses the export. Fails if the name is taken or too long, or the
    /// provider is missing.
    pub fn export(&self, name: &str, provider: &str, read_only: bool) -> Result<(), String> {
        if name.len() > proto::MAX_NAME_LEN {
            return Err(format!("export name longer than {} bytes", proto::MAX_NAME_LEN));
        }
        if self.shared.rt.provider(provider).is_none() {
            return Err(format!("no provider {provider}"));
        }
        let mut exports = lock(&self.shared.exports);
        if exports.contains_key(name) {
            return Err(format!("export {name} exists"));
        }
        exports.insert(
            name.to_owned(),
            Arc::new(Export {
                name: name.to_owned(),
                provider: provider.to_owned(),
                read_only,
                clients: AtomicUsize::new(0),
                requests: AtomicU64::new(0),
                bytes_read: AtomicU64::new(0),
                bytes_written: AtomicU64::new(0),
                errors: AtomicU64::new(0),
            }),
        );
        Ok(())
    }

    /// Withdraw an export. Refused while a client is in transmission on it (the provider
    /// stays open until the clients disconnect); clients still negotiating no longer see it.
    /// A client that has just hung up is still finishing its last bios: up to a second is
    /// given for that, so `qemu-io ...; geom nbd unexport` does not race the server.
    pub fn unexport(&self, name: &str) -> Result<(), String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while std::time::Instant::now() < deadline
            && lock(&self.shared.exports).get(name).is_some_and(|e| e.clients.load(Ordering::SeqCst) != 0)
        {
            thread::sleep(Duration::from_millis(5));
        }
        let mut exports = lock(&self.shared.exports);
        match exports.get(name) {
            None => Err(format!("no export {name}")),
            Some(e) => {
                let n = e.clients.load(Ordering::SeqCst);
                if n != 0 {
                    return Err(format!("export {name} has {n} connected client(s)"));
                }
                exports.remove(name);
                Ok(())
            }
        }
    }

    /// Every export with its clients and counters, by name.
    pub fn exports(&self) -> Vec<ExportInfo> {
        lock(&self.shared.exports)
            .values()
            .map(|e| ExportInfo {
                name: e.name.clone(),
                provider: e.provider.clone(),
                read_only: e.read_only,
                clients: e.clients.load(Ordering::SeqCst),
                requests: e.requests.load(Ordering::SeqCst),
                bytes_read: e.bytes_read.load(Ordering::SeqCst),
                bytes_written: e.bytes_written.load(Ordering::SeqCst),
                errors: e.errors.load(Ordering::SeqCst),
            })
            .collect()
    }

    /// Connections open now, negotiating or in transmission. A connection counts until its
    /// bios have completed and its provider is closed.
    pub fn connections(&self) -> usize {
        lock(&self.shared.conns).live.len()
    }

    /// Stop: accept no more, shut every connection's socket down, and wait for every
    /// connection to finish its bios and close its provider. Dropping the server does the
    /// same.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        let Some(accept) = self.accept.take() else { return };
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = accept.join();
        for slot in lock(&self.shared.conns).live.values() {
            slot.sock.shutdown();
        }
        let finished = {
            let mut conns = lock(&self.shared.conns);
            while !conns.live.is_empty() {
                conns = self.shared.conns_changed.wait(conns).unwrap_or_else(|e| e.into_inner());
            }
            std::mem::take(&mut conns.finished)
        };
        for t in finished {
            let _ = t.join();
        }
        remove_socket_file(&self.addr);
    }
}

impl Drop for NbdServer {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

impl fmt::Debug for NbdServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NbdServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// Make way for a Unix socket at `path`: a socket nobody listens on is removed; a live one,
/// or a file of another kind, is left alone and reported.
fn clear_stale_socket(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{}: a server is listening there", path.display()),
                ));
            }
            std::fs::remove_file(path)
        }
        Ok(_) => {
            Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{}: exists and is not a socket", path.display())))
        }
    }
}

fn remove_socket_file(addr: &Listen) {
    if let Listen::Unix(p) = addr {
        if std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket()) {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: Listener) {
    // The listener polls so that stop needs no wake-up connection; right after a connection
    // it polls fast, so a burst of clients is not slowed down.
    let mut idle = 0u32;
    while !shared.stopping.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok(sock) => {
                idle = 0;
                spawn_connection(shared, sock);
            }
            Err(_) => {
                // WouldBlock when nobody waits; otherwise (EMFILE, an aborted connection)
                // also wait a little rather than spin.
                idle = idle.saturating_add(1);
                thread::sleep(Duration::from_millis(if idle < 200 { 1 } else { 10 }));
            }
        }
        let done = std::mem::take(&mut lock(&shared.conns).finished);
        for t in done {
            let _ = t.join();
        }
    }
}

fn spawn_connection(shared: &Arc<Shared>, sock: Sock) {
    let Ok(clone) = sock.try_clone() else { return };
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    {
        let mut conns = lock(&shared.conns);
        if conns.live.len() >= MAX_CONNECTIONS {
            return;
        }
        conns.live.insert(id, ConnSlot { sock: clone, thread: None });
    }
    let s = Arc::clone(shared);
    let spawned = thread::Builder::new().name(format!("nbd-conn{id}")).spawn(move || {
        serve(&s, sock);
        let mut conns = lock(&s.conns);
        if let Some(slot) = conns.live.remove(&id) {
            if let Some(t) = slot.thread {
                conns.finished.push(t);
            }
        }
        s.conns_changed.notify_all();
    });
    let mut conns = lock(&shared.conns);
    match spawned {
        Ok(t) => match conns.live.get_mut(&id) {
            Some(slot) => slot.thread = Some(t),
            // Already over: joined with the others.
            None => conns.finished.push(t),
        },
        Err(_) => {
            conns.live.remove(&id);
            shared.conns_changed.notify_all();
        }
    }
}

/// One connection, from greeting to close.
fn serve(shared: &Shared, sock: Sock) {
    let Ok(mut w) = sock.try_clone() else { return };
    let timed = sock.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
    let mut r = BufReader::with_capacity(64 << 10, sock);
    if let (Ok(()), Ok(Some((guard, handle)))) = (timed, handshake(shared, &mut r, &mut w)) {
        match r.get_ref().set_read_timeout(None) {
            Ok(()) => transmission(guard, handle, r, w.try_clone().ok()),
            Err(_) => drop(handle.close()),
        }
    }
    w.shutdown();
}

fn send_reply(w: &mut Sock, option: u32, reply: u32, data: &[u8]) -> io::Result<()> {
    w.write_all(&proto::encode_option_reply(option, reply, data))
}

/// Why an option failed, as an option error reply with a short message.
fn send_error(w: &mut Sock, option: u32, reply: u32, msg: &str) -> io::Result<()> {
    send_reply(w, option, reply, msg.as_bytes())
}

fn block_sizes(p: &ProviderInfo) -> (u32, u32, u32) {
    let min = p.sectorsize.max(1);
    let max = if min >= MAX_REQUEST { min } else { MAX_REQUEST / min * min };
    let mut preferred = 4096u32.max(min);
    if let Ok(stripe) = u32::try_from(p.stripesize) {
        if stripe.is_power_of_two() && stripe <= max {
            preferred = preferred.max(stripe);
        }
    }
    (min, preferred.min(max), max)
}

/// The negotiation: `Some` once the client chose an export and its provider is open.
fn handshake(shared: &Shared, r: &mut BufReader<Sock>, w: &mut Sock) -> io::Result<Option<(ClientGuard, Handle)>> {
    w.write_all(&proto::encode_greeting(proto::FLAG_FIXED_NEWSTYLE | proto::FLAG_NO_ZEROES))?;
    let mut flags = [0u8; 4];
    r.read_exact(&mut flags)?;
    let Ok(no_zeroes) = proto::check_client_flags(u32::from_be_bytes(flags)) else { return Ok(None) };
    for _ in 0..MAX_OPTIONS {
        let mut head = [0u8; proto::OPTION_HEADER_LEN];
        r.read_exact(&mut head)?;
        let Ok(opt) = proto::decode_option_header(&head) else { return Ok(None) };
        if opt.length > MAX_OPTION_PAYLOAD {
            if opt.option == proto::OPT_EXPORT_NAME {
                // No error reply exists for EXPORT_NAME.
                return Ok(None);
            }
            io::copy(&mut r.by_ref().take(u64::from(opt.length)), &mut io::sink())?;
            send_error(w, opt.option, proto::REP_ERR_TOO_BIG, "option payload too large")?;
            continue;
        }
        let mut payload = vec![0u8; opt.length as usize];
        r.read_exact(&mut payload)?;
        match opt.option {
            proto::OPT_EXPORT_NAME => {
                let Some(export) = std::str::from_utf8(&payload).ok().and_then(|n| find_export(shared, n)) else {
                    return Ok(None);
                };
                let Ok((guard, handle)) = attach(shared, export) else { return Ok(None) };
                let size = handle.mediasize().max(0) as u64;
                w.write_all(&proto::encode_export_name_reply(size, guard.0.transmission_flags(), no_zeroes))?;
                return Ok(Some((guard, handle)));
            }
            proto::OPT_ABORT => {
                send_reply(w, opt.option, proto::REP_ACK, &[])?;
                return Ok(None);
            }
            proto::OPT_LIST => {
                if !payload.is_empty() {
                    send_error(w, opt.option, proto::REP_ERR_INVALID, "LIST takes no data")?;
                    continue;
                }
                let names: Vec<String> = lock(&shared.exports).keys().cloned().collect();
                for n in names {
                    send_reply(w, opt.option, proto::REP_SERVER, &proto::encode_server_data(&n))?;
                }
                send_reply(w, opt.option, proto::REP_ACK, &[])?;
            }
            proto::OPT_STARTTLS => send_error(w, opt.option, proto::REP_ERR_POLICY, "TLS is not offered")?,
            proto::OPT_INFO | proto::OPT_GO => {
                if let Some(attached) = info_or_go(shared, w, opt.option, &payload)? {
                    return Ok(Some(attached));
                }
            }
            _ => send_error(w, opt.option, proto::REP_ERR_UNSUP, "option not supported")?,
        }
    }
    // Too many options: a client that never chooses is dropped.
    Ok(None)
}

fn find_export(shared: &Shared, name: &str) -> Option<Arc<Export>> {
    lock(&shared.exports).get(name).cloned()
}

/// Count a client on `export` (if still exported) and open its provider.
fn attach(shared: &Shared, export: Arc<Export>) -> Result<(ClientGuard, Handle), i32> {
    {
        let exports = lock(&shared.exports);
        if !exports.get(&export.name).is_some_and(|e| Arc::ptr_eq(e, &export)) {
            return Err(errno::ENOENT);
        }
        export.clients.fetch_add(1, Ordering::SeqCst);
    }
    let guard = ClientGuard(export);
    let e = &guard.0;
    let handle = shared.rt.open(&e.provider, 1, if e.read_only { 0 } else { 1 }, 0)?;
    Ok((guard, handle))
}

/// INFO and GO: the export's information, then ACK; for GO, the provider opened.
fn info_or_go(shared: &Shared, w: &mut Sock, option: u32, payload: &[u8]) -> io::Result<Option<(ClientGuard, Handle)>> {
    let req = match proto::decode_info_request(payload) {
        Ok(req) => req,
        Err(_) => {
            send_error(w, option, proto::REP_ERR_INVALID, "malformed request")?;
            return Ok(None);
        }
    };
    let Some(export) = find_export(shared, &req.name) else {
        send_error(w, option, proto::REP_ERR_UNKNOWN, "no such export")?;
        return Ok(None);
    };
    let Some(info) = shared.rt.provider(&export.provider) else {
        send_error(w, option, proto::REP_ERR_UNKNOWN, "the export's provider is gone")?;
        return Ok(None);
    };
    let mut attached = None;
    let mut size = info.mediasize.max(0) as u64;
    if option == proto::OPT_GO {
        match attach(shared, Arc::clone(&export)) {
            Ok((guard, handle)) => {
                size = handle.mediasize().max(0) as u64;
                attached = Some((guard, handle));
            }
            Err(e) => {
                let (reply, msg) = if shared.stopping.load(Ordering::SeqCst) {
                    (proto::REP_ERR_SHUTDOWN, "server stopping")
                } else if matches!(e, errno::EPERM | errno::EBUSY | errno::EACCES) {
                    (proto::REP_ERR_POLICY, "the provider refused access")
                } else {
                    (proto::REP_ERR_UNKNOWN, "the export's provider cannot be opened")
                };
                send_error(w, option, reply, msg)?;
                return Ok(None);
            }
        }
    }
    send_reply(w, option, proto::REP_INFO, &proto::encode_info_export(size, export.transmission_flags()))?;
    let mut sent = [false; 4];
    for r in req.requests {
        let Some(done) = sent.get_mut(usize::from(r)) else { continue };
        if std::mem::replace(done, true) {
            continue;
        }
        let data = match r {
            proto::INFO_NAME => proto::encode_info_text(r, &export.name),
            proto::INFO_DESCRIPTION => proto::encode_info_text(r, &format!("GEOM provider {}", export.provider)),
            proto::INFO_BLOCK_SIZE => {
                let (min, preferred, max) = block_sizes(&info);
                proto::encode_info_block_size(min, preferred, max)
            }
            _ => continue,
        };
        send_reply(w, option, proto::REP_INFO, &data)?;
    }
    send_reply(w, option, proto::REP_ACK, &[])?;
    Ok(attached)
}

// ---------------------------------------------------------------------------------------
// Transmission.

/// The connection's in-flight allowance: requests and buffer bytes between the reader taking
/// a request and its reply.
#[derive(Default)]
struct Budget {
    state: Mutex<BudgetState>,
    changed: Condvar,
}

#[derive(Default)]
struct BudgetState {
    requests: usize,
    bytes: u64,
    /// The reader waits on `changed`: only then does a release pay for a wake-up call.
    waiting: bool,
}

impl Budget {
    fn fits(s: &BudgetState, bytes: u64) -> bool {
        s.requests < MAX_INFLIGHT_REQUESTS && (s.requests == 0 || s.bytes + bytes <= MAX_INFLIGHT_BYTES)
    }

    /// Take a request with `bytes` of buffers if it fits now.
    fn try_acquire(&self, bytes: u64) -> bool {
        let mut s = lock(&self.state);
        let fits = Self::fits(&s, bytes);
        if fits {
            s.requests += 1;
            s.bytes += bytes;
        }
        fits
    }

    /// Take a request with `bytes` of buffers, waiting for room.
    fn acquire(&self, bytes: u64) {
        let mut s = lock(&self.state);
        while !Self::fits(&s, bytes) {
            s.waiting = true;
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.requests += 1;
        s.bytes += bytes;
    }

    fn release(&self, bytes: u64) {
        let mut s = lock(&self.state);
        s.requests -= 1;
        s.bytes -= bytes;
        if std::mem::take(&mut s.waiting) {
            self.changed.notify_all();
        }
    }

    fn wait_idle(&self) {
        let mut s = lock(&self.state);
        while s.requests > 0 {
            s.waiting = true;
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// What the provider looks like to a request.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    size: u64,
    sector: u64,
    read_only: bool,
}

/// What to do with one request, decided from its header alone.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    /// DISC: finish what is in flight, then close.
    Disconnect,
    /// The stream cannot be followed any more.
    Close,
    /// Answer at once with this errno (0: success).
    Reply(i32),
    /// Answer, then close (a write too large to read).
    ReplyThenClose(i32),
    /// Read and drop a write's payload, then answer with this errno.
    Discard { len: u32, error: i32 },
    /// Read the sectors `start..start + wide`, reply with `len` bytes from `skip`.
    Read { start: u64, wide: u64, skip: u64, len: u64 },
    /// Write the payload that follows.
    Write { offset: u64, len: u64, fua: bool },
    /// Write zeroes.
    Zero { offset: u64, len: u64, fua: bool },
    /// BIO_DELETE.
    Trim { offset: u64, len: u64, fua: bool },
    /// BIO_FLUSH.
    Flush,
}

fn plan(req: &Request, g: &Geometry) -> Plan {
    use proto::*;
    let len = u64::from(req.length);
    let fua = req.flags & CMD_FLAG_FUA != 0;
    let end = req.offset.checked_add(len);
    let inside = end.is_some_and(|e| e <= g.size);
    let aligned = req.offset % g.sector == 0 && len % g.sector == 0;
    let too_big = req.length > MAX_REQUEST;
    let offset = req.offset;
    match req.cmd {
        CMD_DISC => Plan::Disconnect,
        CMD_READ => match end {
            _ if len == 0 => Plan::Reply(0),
            Some(end) if !too_big && inside => {
                let start = offset - offset % g.sector;
                let wide_end = end.div_ceil(g.sector) * g.sector;
                Plan::Read { start, wide: wide_end - start, skip: offset - start, len }
            }
            _ => Plan::Reply(errno::EINVAL),
        },
        CMD_WRITE => {
            let discard = |error| Plan::Discard { len: req.length, error };
            if too_big {
                Plan::ReplyThenClose(errno::EINVAL)
            } else if g.read_only {
                discard(errno::EPERM)
            } else if !inside {
                discard(errno::ENOSPC)
            } else if !aligned {
                discard(errno::EINVAL)
            } else if len == 0 {
                Plan::Reply(0)
            } else {
                Plan::Write { offset, len, fua }
            }
        }
        CMD_WRITE_ZEROES | CMD_TRIM => {
            let zero = req.cmd == CMD_WRITE_ZEROES;
            if g.read_only {
                Plan::Reply(errno::EPERM)
            } else if !inside {
                Plan::Reply(if zero { errno::ENOSPC } else { errno::EINVAL })
            } else if (zero && too_big) || !aligned {
                // A trim carries no buffer, so any length is served (qemu sends discards of
                // up to 2 GiB); write-zeroes needs buffers and keeps to the block-size limit.
                Plan::Reply(errno::EINVAL)
            } else if len == 0 {
                Plan::Reply(0)
            } else if zero {
                Plan::Zero { offset, len, fua }
            } else {
                Plan::Trim { offset, len, fua }
            }
        }
        // A read-only open cannot send BIO_FLUSH, and has nothing of its own to flush.
        CMD_FLUSH if g.read_only => Plan::Reply(0),
        CMD_FLUSH => Plan::Flush,
        CMD_CACHE => Plan::Reply(if inside { 0 } else { errno::EINVAL }),
        // Without a PAYLOAD_LEN flag (extended headers are never negotiated) an unknown
        // command carries no payload, so the stream stays in step.
        _ if req.flags & CMD_FLAG_PAYLOAD_LEN != 0 => Plan::Close,
        // BLOCK_STATUS needs structured replies, which are never negotiated.
        _ => Plan::Reply(errno::EINVAL),
    }
}

/// What kind of reply a request gets, and what its pieces must add up to.
#[derive(Clone, Copy, Debug)]
enum OpKind {
    /// Data reply: `len` bytes starting `skip` bytes into the pieces.
    Read { skip: u64, len: u64 },
    /// Counts as written; pieces must complete in full.
    Write { len: u64 },
    /// Trim or flush.
    Other,
}

struct Op {
    cookie: u64,
    kind: OpKind,
    /// Bios that will report (0: reply at once with `error`).
    pieces: usize,
    /// Bytes across the pieces.
    total: u64,
    error: i32,
    fua: bool,
    /// Budget bytes held until the reply.
    cost: u64,
}

/// A completion, on its way to whoever answers it.
enum Msg {
    /// One bio of request `id` completed.
    Piece { id: u64, index: usize, done: IoDone },
    /// The flush after a FUA request completed.
    Flushed { id: u64, error: i32 },
    /// Nothing is in flight any more and nothing will come.
    Close,
}

/// The bio size requests are cut into: maxphys, rounded down to whole sectors.
fn chunk_size(sector: u64) -> u64 {
    let maxphys = geom_core::maxphys().max(sector);
    maxphys - maxphys % sector
}

fn piece_len(total: u64, chunk: u64, index: usize) -> u64 {
    (total - index as u64 * chunk).min(chunk)
}

/// Replies gathered before a send: a batch of small replies leaves in one system call. A
/// reply whose data would overflow it is sent at once, its data not copied.
const OUT_BUFFER: usize = 256 << 10;
/// Bytes of spare buffers a connection keeps for its next writes' payloads.
const POOL_BYTES: usize = 16 << 20;
/// Spare buffers a connection keeps.
const POOL_BUFFERS: usize = 64;

thread_local! {
    /// The connection (its [`Inbox::token`]) whose reader runs on this thread; 0 if none.
    static READER_OF: Cell<u64> = const { Cell::new(0) };
}

/// Tokens telling connections' readers apart (0 is no reader).
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// Where a connection's completions go. One that runs on the reader's own thread (inside its
/// submit: direct dispatch down to a provider that serves at once, as a memory disk does) is
/// queued for the reader, which answers it before taking the next request: no thread is
/// woken, no context switched. Any other (from `g_up`, a class's worker) goes down the
/// writer thread's channel, since a completion must not block on the socket.
struct Inbox {
    token: u64,
    inline: Mutex<Vec<Msg>>,
    tx: Sender<Msg>,
}

impl Inbox {
    fn post(&self, msg: Msg) {
        if READER_OF.get() == self.token {
            lock(&self.inline).push(msg);
        } else {
            let _ = self.tx.send(msg);
        }
    }
}

/// Buffers given back by writes and answered reads, lent to later writes' payloads and
/// reads' bios, so steady traffic neither allocates nor zeroes. Bounded, like the budget.
#[derive(Default)]
struct Pool(Mutex<(Vec<Vec<u8>>, usize)>);

impl Pool {
    /// A buffer of `len` bytes, its content stale (a payload or a read overwrites it).
    fn get(&self, len: usize) -> Vec<u8> {
        let spare = {
            let mut p = lock(&self.0);
            let at = p.0.iter().position(|b| b.capacity() >= len).or(p.0.len().checked_sub(1));
            let b = at.map(|i| p.0.swap_remove(i));
            if let Some(b) = &b {
                p.1 -= b.capacity();
            }
            b
        };
        match spare {
            Some(mut b) => {
                b.resize(len, 0);
                b
            }
            None => vec![0; len],
        }
    }

    fn put(&self, b: Vec<u8>) {
        let mut p = lock(&self.0);
        if b.capacity() != 0 && p.0.len() < POOL_BUFFERS && p.1 + b.capacity() <= POOL_BYTES {
            p.1 += b.capacity();
            p.0.push(b);
        }
    }
}

/// Call `each` with the slices making up `len` bytes `skip` bytes into `pieces`.
fn cut<'a>(pieces: &'a [Vec<u8>], mut skip: usize, mut left: usize, mut each: impl FnMut(&'a [u8])) {
    for piece in pieces {
        let from = skip.min(piece.len());
        skip -= from;
        let n = left.min(piece.len() - from);
        if n > 0 {
            each(&piece[from..from + n]);
        }
        left -= n;
    }
}

/// `write_all` for a gather list (`Write::write_all_vectored` is not stable).
fn write_all_vectored(w: &mut impl Write, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match w.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The socket's sending side: replies gathered until a flush.
struct Out {
    sock: Sock,
    buf: Vec<u8>,
}

impl Out {
    /// Queue a reply header and `len` bytes of `pieces` from `skip`.
    fn reply(&mut self, head: &[u8], pieces: &[Vec<u8>], skip: usize, len: usize) -> io::Result<()> {
        self.buf.extend_from_slice(head);
        if self.buf.len() + len <= OUT_BUFFER {
            cut(pieces, skip, len, |s| self.buf.extend_from_slice(s));
            return Ok(());
        }
        // What is gathered, this header and the data in one writev, the data not copied.
        let mut slices = Vec::with_capacity(pieces.len() + 1);
        slices.push(IoSlice::new(&self.buf));
        cut(pieces, skip, len, |s| slices.push(IoSlice::new(s)));
        let sent = write_all_vectored(&mut self.sock, &mut slices);
        self.buf.clear();
        sent
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let sent = self.sock.write_all(&self.buf);
        self.buf.clear();
        sent
    }
}

/// A request whose bios are not all home yet.
struct Assembly {
    op: Op,
    got: usize,
    error: i32,
    /// A read's pieces, by index.
    data: Vec<Vec<u8>>,
}

/// A connection's answering side, shared by its reader (completions on its own thread) and
/// its writer thread (the others), one at a time.
struct Replies {
    out: Out,
    /// The socket failed: replies are dropped, but the accounting goes on.
    dead: bool,
    pending: HashMap<u64, Assembly>,
    handle: Arc<Handle>,
    inbox: Arc<Inbox>,
    budget: Arc<Budget>,
    pool: Arc<Pool>,
    export: Arc<Export>,
    chunk: u64,
}

impl Replies {
    /// Request `id` was taken: answer it now if it has no bios, else wait for them.
    fn begin(&mut self, id: u64, op: Op) {
        if op.pieces == 0 {
            let error = op.error;
            self.reply(op, error, Vec::new());
        } else {
            let data = if matches!(op.kind, OpKind::Read { .. }) { vec![Vec::new(); op.pieces] } else { Vec::new() };
            self.pending.insert(id, Assembly { op, got: 0, error: 0, data });
        }
    }

    /// `false` for [`Msg::Close`].
    fn take(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Close => return false,
            Msg::Piece { id, index, done } => self.piece(id, index, done),
            Msg::Flushed { id, error } => {
                if let Some(a) = self.pending.remove(&id) {
                    self.reply(a.op, error, a.data);
                }
            }
        }
        true
    }

    fn flush(&mut self) {
        if !self.dead && self.out.flush().is_err() {
            self.die();
        }
    }

    /// The client is unreachable: shut the socket so the reader stops too.
    fn die(&mut self) {
        self.dead = true;
        self.out.buf.clear();
        self.out.sock.shutdown();
    }

    fn piece(&mut self, id: u64, index: usize, done: IoDone) {
        let Some(a) = self.pending.get_mut(&id) else { return };
        a.got += 1;
        if a.error == 0 {
            let expected = piece_len(a.op.total, self.chunk, index);
            let short = !matches!(a.op.kind, OpKind::Other) && done.completed != expected as i64;
            a.error = if done.error != 0 {
                done.error
            } else if short {
                errno::EIO
            } else {
                0
            };
        }
        match a.data.get_mut(index) {
            Some(slot) => *slot = done.data,
            // A write's buffer comes back: the next payload goes in it.
            None => self.pool.put(done.data),
        }
        if a.got < a.op.pieces {
            return;
        }
        if a.error == 0 && a.op.fua {
            // FUA: durable before the reply, so a flush follows the data.
            let inbox = Arc::clone(&self.inbox);
            let sent = self.handle.submit(0, IoOp::Flush, move |d| inbox.post(Msg::Flushed { id, error: d.error }));
            match sent {
                Ok(()) => return,
                Err(e) => a.error = e,
            }
        }
        if let Some(a) = self.pending.remove(&id) {
            self.reply(a.op, a.error, a.data);
        }
    }

    fn reply(&mut self, op: Op, error: i32, data: Vec<Vec<u8>>) {
        let e = &self.export;
        e.requests.fetch_add(1, Ordering::Relaxed);
        let (skip, len) = match op.kind {
            _ if error != 0 => {
                e.errors.fetch_add(1, Ordering::Relaxed);
                (0, 0)
            }
            OpKind::Read { skip, len } => {
                e.bytes_read.fetch_add(len, Ordering::Relaxed);
                (skip as usize, len as usize)
            }
            OpKind::Write { len } => {
                e.bytes_written.fetch_add(len, Ordering::Relaxed);
                (0, 0)
            }
            OpKind::Other => (0, 0),
        };
        // The pieces hold whole sectors: the reply cuts the bytes asked for out of them.
        let head = proto::encode_simple_reply(proto::nbd_error(error), op.cookie);
        if !self.dead && self.out.reply(&head, &data, skip, len).is_err() {
            self.die();
        }
        for b in data {
            self.pool.put(b);
        }
        self.budget.release(op.cost);
    }
}

/// The writer thread: completions that did not run on the reader's thread, answered in
/// batches, each batch sent with one flush.
fn write_loop(replies: &Mutex<Replies>, rx: &Receiver<Msg>) {
    while let Ok(msg) = rx.recv() {
        let mut r = lock(replies);
        let mut going = r.take(msg);
        while going {
            match rx.try_recv() {
                Ok(msg) => going = r.take(msg),
                Err(_) => break,
            }
        }
        r.flush();
        if !going {
            return;
        }
    }
}

struct Reader<'a> {
    r: BufReader<Sock>,
    handle: &'a Handle,
    inbox: &'a Arc<Inbox>,
    replies: &'a Mutex<Replies>,
    budget: &'a Budget,
    pool: &'a Pool,
    chunk: u64,
    next_id: u64,
    /// The other half of the inline queue, swapped in to be emptied (keeps its capacity).
    spare: Vec<Msg>,
}

impl Reader<'_> {
    /// Answer the completions that ran on this thread; then, if `flush`, send every reply
    /// gathered so far.
    fn settle(&mut self, flush: bool) {
        loop {
            std::mem::swap(&mut *lock(&self.inbox.inline), &mut self.spare);
            if self.spare.is_empty() {
                break;
            }
            // Answering can submit a FUA's flush, whose completion may land in the queue.
            let mut r = lock(self.replies);
            for msg in self.spare.drain(..) {
                r.take(msg);
            }
        }
        if flush {
            lock(self.replies).flush();
        }
    }

    /// Before reading `bytes` that may not have arrived: send the replies gathered, since
    /// the client may be waiting for them before it sends more.
    fn expect(&mut self, bytes: usize) {
        if self.r.buffer().len() < bytes {
            self.settle(true);
        }
    }

    fn acquire(&mut self, bytes: u64) {
        if !self.budget.try_acquire(bytes) {
            // The replies that would free the budget may be sitting here, unsent.
            self.settle(true);
            self.budget.acquire(bytes);
        }
    }

    fn begin(&mut self, op: Op) -> u64 {
        self.next_id += 1;
        lock(self.replies).begin(self.next_id, op);
        self.next_id
    }

    fn immediate(&mut self, cookie: u64, error: i32) {
        self.acquire(0);
        self.begin(Op { cookie, kind: OpKind::Other, pieces: 0, total: 0, error, fua: false, cost: 0 });
    }

    /// Submit request `id`'s pieces; a piece that cannot be submitted, and every one after
    /// it, reports its error like a completed bio.
    fn submit(&self, id: u64, pieces: usize, mut make: impl FnMut(usize) -> (u64, IoOp)) {
        let mut failed = 0;
        for index in 0..pieces {
            if failed == 0 {
                let (offset, op) = make(index);
                let inbox = Arc::clone(self.inbox);
                match self.handle.submit(offset as i64, op, move |done| inbox.post(Msg::Piece { id, index, done })) {
                    Ok(()) => continue,
                    Err(e) => failed = e,
                }
            }
            let done = IoDone { error: failed, completed: 0, data: Vec::new() };
            self.inbox.post(Msg::Piece { id, index, done });
        }
    }

    /// Take one request; `false` ends the connection.
    fn step(&mut self, g: &Geometry) -> bool {
        self.expect(proto::REQUEST_LEN);
        let mut head = [0u8; proto::REQUEST_LEN];
        if self.r.read_exact(&mut head).is_err() {
            return false;
        }
        let Ok(req) = proto::decode_request(&head) else { return false };
        let cookie = req.cookie;
        let chunk = self.chunk;
        let pieces = |total: u64| total.div_ceil(chunk) as usize;
        match plan(&req, g) {
            Plan::Disconnect | Plan::Close => return false,
            Plan::Reply(e) => self.immediate(cookie, e),
            Plan::ReplyThenClose(e) => {
                self.immediate(cookie, e);
                return false;
            }
            Plan::Discard { len, error } => {
                self.expect(len as usize);
                let copied = io::copy(&mut self.r.by_ref().take(u64::from(len)), &mut io::sink());
                if copied.ok() != Some(u64::from(len)) {
                    return false;
                }
                self.immediate(cookie, error);
            }
            Plan::Read { start, wide, skip, len } => {
                self.acquire(wide);
                let n = pieces(wide);
                let kind = OpKind::Read { skip, len };
                let id = self.begin(Op { cookie, kind, pieces: n, total: wide, error: 0, fua: false, cost: wide });
                // Pooled buffers: a steady stream of reads allocates and zeroes nothing.
                let pool = self.pool;
                self.submit(id, n, |i| {
                    let size = piece_len(wide, chunk, i) as usize;
                    (start + i as u64 * chunk, IoOp::ReadInto(pool.get(size), size))
                });
            }
            plan @ (Plan::Write { offset, len, fua } | Plan::Zero { offset, len, fua }) => {
                // A write's buffers come from its payload; write-zeroes sends zeroed ones.
                let from_payload = matches!(plan, Plan::Write { .. });
                self.acquire(len);
                let n = pieces(len);
                let mut bufs = Vec::with_capacity(n);
                for i in 0..n {
                    let size = piece_len(len, chunk, i) as usize;
                    let b = if from_payload {
                        let mut b = self.pool.get(size);
                        self.expect(size);
                        if self.r.read_exact(&mut b).is_err() {
                            self.budget.release(len);
                            return false;
                        }
                        b
                    } else {
                        vec![0u8; size]
                    };
                    bufs.push(b);
                }
                let id = self.begin(Op {
                    cookie,
                    kind: OpKind::Write { len },
                    pieces: n,
                    total: len,
                    error: 0,
                    fua,
                    cost: len,
                });
                let mut bufs = bufs.into_iter();
                self.submit(id, n, |i| (offset + i as u64 * chunk, IoOp::Write(bufs.next().unwrap_or_default())));
            }
            Plan::Trim { offset, len, fua } => {
                self.acquire(0);
                let n = pieces(len);
                let id = self.begin(Op { cookie, kind: OpKind::Other, pieces: n, total: len, error: 0, fua, cost: 0 });
                self.submit(id, n, |i| (offset + i as u64 * chunk, IoOp::Delete(piece_len(len, chunk, i) as i64)));
            }
            Plan::Flush => {
                self.acquire(0);
                let id =
                    self.begin(Op { cookie, kind: OpKind::Other, pieces: 1, total: 0, error: 0, fua: false, cost: 0 });
                self.submit(id, 1, |_| (0, IoOp::Flush));
            }
        }
        // What completed during the submit is answered now; sent when the reader would wait.
        self.settle(false);
        true
    }
}

/// Serve requests until the client leaves (or breaks the protocol, or the server stops),
/// then wait for everything in flight, stop the writer and close the provider.
fn transmission(guard: ClientGuard, handle: Handle, r: BufReader<Sock>, w: Option<Sock>) {
    let Some(w) = w else {
        let _ = handle.close();
        return;
    };
    let sector = u64::from(handle.sectorsize()).max(1);
    let g = Geometry { size: handle.mediasize().max(0) as u64, sector, read_only: guard.0.read_only };
    let handle = Arc::new(handle);
    let budget = Arc::new(Budget::default());
    let pool = Arc::new(Pool::default());
    let (tx, rx) = mpsc::channel();
    let inbox = Arc::new(Inbox { token: NEXT_TOKEN.fetch_add(1, Ordering::Relaxed), inline: Mutex::default(), tx });
    let replies = Arc::new(Mutex::new(Replies {
        out: Out { sock: w, buf: Vec::with_capacity(OUT_BUFFER) },
        dead: false,
        pending: HashMap::new(),
        handle: Arc::clone(&handle),
        inbox: Arc::clone(&inbox),
        budget: Arc::clone(&budget),
        pool: Arc::clone(&pool),
        export: Arc::clone(&guard.0),
        chunk: chunk_size(sector),
    }));
    let shared = Arc::clone(&replies);
    let writer = thread::Builder::new().name("nbd-writer".into()).spawn(move || write_loop(&shared, &rx));
    if let Ok(writer) = writer {
        READER_OF.set(inbox.token);
        let mut reader = Reader {
            r,
            handle: &handle,
            inbox: &inbox,
            replies: &replies,
            budget: &budget,
            pool: &pool,
            chunk: chunk_size(sector),
            next_id: 0,
            spare: Vec::new(),
        };
        while reader.step(&g) {}
        reader.settle(true);
        budget.wait_idle();
        READER_OF.set(0);
        let _ = inbox.tx.send(Msg::Close);
        let _ = writer.join();
    }
    // The replies hold the last other reference to the handle: close it now rather than on
    // drop, so the provider is released before the connection counts as ended.
    drop(replies);
    if let Ok(handle) = Arc::try_unwrap(handle) {
        let _ = handle.close();
    }
    drop(guard);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(cmd: u16, offset: u64, length: u32) -> Request {
        Request { flags: 0, cmd, cookie: 1, offset, length }
    }

    #[test]
    fn plans_check_ranges_and_alignment() {
        let g = Geometry { size: 1 << 20, sector: 512, read_only: false };
        assert_eq!(plan(&req(proto::CMD_READ, 3, 1000), &g), Plan::Read { start: 0, wide: 1024, skip: 3, len: 1000 });
        assert_eq!(plan(&req(proto::CMD_READ, u64::MAX, 512), &g), Plan::Reply(errno::EINVAL));
        assert_eq!(plan(&req(proto::CMD_WRITE, 512, 100), &g), Plan::Discard { len: 100, error: errno::EINVAL });
        assert_eq!(plan(&req(proto::CMD_WRITE, 1 << 20, 512), &g), Plan::Discard { len: 512, error: errno::ENOSPC });
        assert_eq!(plan(&req(proto::CMD_WRITE, 0, u32::MAX), &g), Plan::ReplyThenClose(errno::EINVAL));
        assert_eq!(plan(&req(99, 0, 0), &g), Plan::Reply(errno::EINVAL));
        let big = Geometry { size: 1 << 33, sector: 512, read_only: false };
        let huge = 1u32 << 31;
        assert_eq!(
            plan(&req(proto::CMD_TRIM, 0, huge), &big),
            Plan::Trim { offset: 0, len: u64::from(huge), fua: false }
        );
        assert_eq!(plan(&req(proto::CMD_WRITE_ZEROES, 0, huge), &big), Plan::Reply(errno::EINVAL));
    }

    #[test]
    fn cut_takes_the_bytes_asked_for_across_pieces() {
        let pieces = vec![vec![0, 1, 2, 3], vec![4, 5], vec![6, 7, 8]];
        let got = |skip, len| {
            let mut v = Vec::new();
            cut(&pieces, skip, len, |s| v.extend_from_slice(s));
            v
        };
        assert_eq!(got(0, 9), (0..9).collect::<Vec<u8>>());
        assert_eq!(got(3, 4), vec![3, 4, 5, 6]);
        assert_eq!(got(4, 2), vec![4, 5]);
        assert_eq!(got(8, 1), vec![8]);
        assert_eq!(got(2, 0), Vec::<u8>::new());
    }

    #[test]
    fn pool_lends_sized_buffers_and_keeps_a_bounded_spare() {
        let pool = Pool::default();
        pool.put(vec![7; 4096]);
        pool.put(vec![9; 1 << 20]);
        // The buffer large enough is chosen; it comes back at the length asked for.
        let b = pool.get(512 << 10);
        assert_eq!((b.len(), b[0]), (512 << 10, 9));
        assert_eq!(pool.get(8192).len(), 8192);
        assert_eq!(pool.get(100).len(), 100);
        for _ in 0..POOL_BUFFERS + 10 {
            pool.put(vec![0; 1 << 20]);
        }
        let p = lock(&pool.0);
        assert!(p.0.len() <= POOL_BUFFERS && p.1 <= POOL_BYTES);
        assert_eq!(p.1, p.0.iter().map(Vec::capacity).sum::<usize>());
    }
}
