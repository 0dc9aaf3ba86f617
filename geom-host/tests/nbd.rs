//! The NBD server over real sockets, driven by a small client written here from the
//! protocol's numbers (not from `nbd::proto`, so the two check each other): the handshake,
//! I/O with bytes checked on the memory disks' backing stores, several clients and exports,
//! a stacked provider, and hostile streams (bad magics, bad lengths, truncation, abrupt
//! disconnects, seeded random bytes), after which no bio may be left alive.

mod common;

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{finish, runtime};
use geom_host::disk::MdConfig;
use geom_host::nbd::{proto, Listen, NbdServer};
use geom_host::rng::Rng;
use geom_host::{CtlRequest, Runtime};

const MIB: u64 = 1 << 20;

// The protocol's numbers, written out independently of `nbd::proto`.
const NEWSTYLE: u32 = 1;
const NO_ZEROES: u32 = 2;
const OPT_EXPORT_NAME: u32 = 1;
const OPT_ABORT: u32 = 2;
const OPT_LIST: u32 = 3;
const OPT_STARTTLS: u32 = 5;
const OPT_INFO: u32 = 6;
const OPT_GO: u32 = 7;
const OPT_STRUCTURED_REPLY: u32 = 8;
const OPT_LIST_META_CONTEXT: u32 = 9;
const REP_ACK: u32 = 1;
const REP_SERVER: u32 = 2;
const REP_INFO: u32 = 3;
const ERR_UNSUP: u32 = 0x8000_0001;
const ERR_POLICY: u32 = 0x8000_0002;
const ERR_INVALID: u32 = 0x8000_0003;
const ERR_UNKNOWN: u32 = 0x8000_0006;
const ERR_TOO_BIG: u32 = 0x8000_0009;
const READ: u16 = 0;
const WRITE: u16 = 1;
const DISC: u16 = 2;
const FLUSH: u16 = 3;
const TRIM: u16 = 4;
const CACHE: u16 = 5;
const WRITE_ZEROES: u16 = 6;
const BLOCK_STATUS: u16 = 7;
const FUA: u16 = 1;
const EPERM: u32 = 1;
const EINVAL: u32 = 22;
const ENOSPC: u32 = 28;

fn sock_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("geom-nbd-{}-{tag}.sock", std::process::id()))
}

fn serve(rt: &Runtime, tag: &str) -> NbdServer {
    NbdServer::start(rt, Listen::Unix(sock_path(tag))).expect("start the server")
}

fn connect(server: &NbdServer) -> UnixStream {
    let Listen::Unix(p) = server.local_addr() else { panic!("not a unix server") };
    let s = UnixStream::connect(p).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn read_n(s: &mut impl Read, n: usize) -> Vec<u8> {
    let mut b = vec![0; n];
    s.read_exact(&mut b).expect("read from the server");
    b
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(b[at..at + 2].try_into().unwrap())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// True once the server has closed its side (EOF or a reset).
fn closed_by_server(s: &mut impl Read) -> bool {
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
            Err(e) => panic!("the server neither answered nor closed: {e}"),
        }
    }
}

/// Read the greeting and send the client flags; returns the server's handshake flags.
fn greet(s: &mut (impl Read + Write), client_flags: u32) -> u16 {
    let g = read_n(s, 18);
    assert_eq!(&g[0..8], b"NBDMAGIC");
    assert_eq!(&g[8..16], b"IHAVEOPT");
    s.write_all(&client_flags.to_be_bytes()).unwrap();
    u16_at(&g, 16)
}

fn send_opt(s: &mut impl Write, opt: u32, data: &[u8]) {
    let mut b = b"IHAVEOPT".to_vec();
    b.extend_from_slice(&opt.to_be_bytes());
    b.extend_from_slice(&(data.len() as u32).to_be_bytes());
    b.extend_from_slice(data);
    s.write_all(&b).unwrap();
}

fn opt_reply(s: &mut impl Read, opt: u32) -> (u32, Vec<u8>) {
    let h = read_n(s, 20);
    assert_eq!(u64_at(&h, 0), 0x3_e889_0455_65a9, "option reply magic");
    assert_eq!(u32_at(&h, 8), opt, "reply to the option asked");
    let len = u32_at(&h, 16) as usize;
    assert!(len < 1 << 20);
    (u32_at(&h, 12), read_n(s, len))
}

fn info_payload(name: &str, infos: &[u16]) -> Vec<u8> {
    let mut b = (name.len() as u32).to_be_bytes().to_vec();
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(&(infos.len() as u16).to_be_bytes());
    for i in infos {
        b.extend_from_slice(&i.to_be_bytes());
    }
    b
}

/// Information replies: (type, data after the type).
type Infos = Vec<(u16, Vec<u8>)>;

/// INFO or GO: the information replies by type, or the error reply type.
fn info_or_go(s: &mut (impl Read + Write), opt: u32, name: &str, infos: &[u16]) -> Result<Infos, u32> {
    send_opt(s, opt, &info_payload(name, infos));
    let mut got = Vec::new();
    loop {
        let (typ, data) = opt_reply(s, opt);
        match typ {
            REP_ACK => return Ok(got),
            REP_INFO => got.push((u16_at(&data, 0), data[2..].to_vec())),
            e => {
                assert!(e & 0x8000_0000 != 0, "unexpected reply type {e}");
                return Err(e);
            }
        }
    }
}

/// A request header.
fn request(cmd: u16, flags: u16, cookie: u64, offset: u64, len: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(28);
    b.extend_from_slice(&0x2560_9513u32.to_be_bytes());
    b.extend_from_slice(&flags.to_be_bytes());
    b.extend_from_slice(&cmd.to_be_bytes());
    b.extend_from_slice(&cookie.to_be_bytes());
    b.extend_from_slice(&offset.to_be_bytes());
    b.extend_from_slice(&len.to_be_bytes());
    b
}

/// An NBD client in transmission.
struct Client<S: Read + Write> {
    s: S,
    size: u64,
    flags: u16,
    cookie: u64,
}

impl<S: Read + Write> Client<S> {
    /// Negotiate with GO, asking for the block sizes.
    fn go(mut s: S, export: &str) -> Result<(Client<S>, Infos), u32> {
        greet(&mut s, NEWSTYLE | NO_ZEROES);
        let infos = info_or_go(&mut s, OPT_GO, export, &[3])?;
        let (_, e) = infos.iter().find(|(t, _)| *t == 0).expect("INFO_EXPORT always comes");
        let (size, flags) = (u64_at(e, 0), u16_at(e, 8));
        Ok((Client { s, size, flags, cookie: 0 }, infos))
    }

    fn send(&mut self, cmd: u16, flags: u16, offset: u64, len: u32, payload: &[u8]) -> u64 {
        self.cookie += 1;
        let mut b = request(cmd, flags, self.cookie, offset, len);
        b.extend_from_slice(payload);
        self.s.write_all(&b).unwrap();
        self.cookie
    }

    /// One reply header: (error, cookie).
    fn reply(&mut self) -> (u32, u64) {
        let h = read_n(&mut self.s, 16);
        assert_eq!(u32_at(&h, 0), 0x6744_6698, "simple reply magic");
        (u32_at(&h, 4), u64_at(&h, 8))
    }

    fn expect_reply(&mut self, cookie: u64) -> Result<(), u32> {
        let (e, c) = self.reply();
        assert_eq!(c, cookie);
        if e == 0 {
            Ok(())
        } else {
            Err(e)
        }
    }

    fn read(&mut self, offset: u64, len: u32) -> Result<Vec<u8>, u32> {
        let c = self.send(READ, 0, offset, len, &[]);
        self.expect_reply(c)?;
        Ok(read_n(&mut self.s, len as usize))
    }

    fn write(&mut self, offset: u64, data: &[u8], flags: u16) -> Result<(), u32> {
        let c = self.send(WRITE, flags, offset, data.len() as u32, data);
        self.expect_reply(c)
    }

    fn cmd(&mut self, cmd: u16, flags: u16, offset: u64, len: u32) -> Result<(), u32> {
        let c = self.send(cmd, flags, offset, len, &[]);
        self.expect_reply(c)
    }

    fn disconnect(mut self) {
        self.send(DISC, 0, 0, 0, &[]);
        assert!(closed_by_server(&mut self.s), "DISC closes");
    }
}

fn go(server: &NbdServer, export: &str) -> Client<UnixStream> {
    Client::go(connect(server), export).unwrap_or_else(|e| panic!("GO {export}: error {e:#x}")).0
}

fn random_upto(rng: &mut Rng, max: u64) -> Vec<u8> {
    let n = rng.below(max) as usize;
    random(rng, n)
}

fn random(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut b = vec![0; n];
    rng.fill(&mut b);
    b
}

/// Wait for every connection to end, then insist no bio is alive.
fn quiesce(server: &NbdServer, rt: &Runtime) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.connections() != 0 {
        assert!(Instant::now() < deadline, "connections did not end: {}", server.connections());
        std::thread::sleep(Duration::from_millis(2));
    }
    rt.settle();
    assert_eq!(rt.live_bios(), 0, "no bio outlives its connection");
    assert!(rt.violations().is_empty(), "{:#?}", rt.violations());
}

#[test]
fn proto_decoders_check_every_length() {
    let r = proto::Request { flags: 1, cmd: 6, cookie: 0xdead_beef, offset: 1 << 40, length: 4096 };
    let b = proto::encode_request(&r);
    assert_eq!(u32_at(&b, 0), 0x2560_9513);
    assert_eq!(proto::decode_request(&b), Ok(r));
    assert_eq!(proto::decode_request(&b[..27]), Err(proto::ProtoError::Truncated));
    let mut bad = b;
    bad[0] ^= 1;
    assert_eq!(proto::decode_request(&bad), Err(proto::ProtoError::BadMagic));

    let p = info_payload("md0", &[1, 3]);
    let d = proto::decode_info_request(&p).unwrap();
    assert_eq!((d.name.as_str(), d.requests.as_slice()), ("md0", &[1u16, 3][..]));
    assert_eq!(proto::encode_info_request("md0", &[1, 3]), p);
    // The name longer than the payload, a count that does not match, trailing bytes.
    let mut long = p.clone();
    long[3] = 200;
    assert_eq!(proto::decode_info_request(&long), Err(proto::ProtoError::Invalid));
    assert!(proto::decode_info_request(&p[..p.len() - 1]).is_err());
    let mut trailing = p.clone();
    trailing.push(0);
    assert!(proto::decode_info_request(&trailing).is_err());
    assert_eq!(proto::decode_info_request(&[0, 0]), Err(proto::ProtoError::Truncated));
    assert_eq!(proto::decode_info_request(&[0, 1, 0, 0]), Err(proto::ProtoError::TooLong));
    assert_eq!(proto::decode_info_request(&info_payload("x", &[0; 300])), Err(proto::ProtoError::TooLong));
    assert_eq!(proto::decode_info_request(&[0, 0, 0, 1, 0xff, 0, 0]), Err(proto::ProtoError::Invalid));

    assert_eq!(proto::check_client_flags(1), Ok(false));
    assert_eq!(proto::check_client_flags(3), Ok(true));
    assert!(proto::check_client_flags(2).is_err());
    assert!(proto::check_client_flags(5).is_err());
    let h = proto::encode_option(7, b"ab");
    assert_eq!(proto::decode_option_header(&h), Ok(proto::OptionHeader { option: 7, length: 2 }));

    use geom_core::sys::errno;
    let pairs = [(0, 0), (errno::EPERM, 1), (errno::EIO, 5), (errno::ENOMEM, 12), (errno::EINVAL, 22)];
    let more = [(errno::ENOSPC, 28), (errno::EOVERFLOW, 75), (errno::EOPNOTSUPP, 95), (proto::ESHUTDOWN, 108)];
    for (e, n) in pairs.into_iter().chain(more) {
        assert_eq!(proto::nbd_error(e), n, "errno {e}");
    }
    assert_eq!(proto::nbd_error(errno::ENXIO), 5);

    // Random bytes never panic a decoder.
    let mut rng = Rng::new(11);
    for _ in 0..20_000 {
        let n = rng.below(48) as usize;
        let b = random(&mut rng, n);
        let _ = proto::decode_request(&b);
        let _ = proto::decode_option_header(&b);
        let _ = proto::decode_info_request(&b);
    }
}

#[test]
fn write_read_flush_trim_reach_the_disk() {
    let rt = runtime("nbd-rw");
    let md = rt.md_create(MdConfig::malloc(8 * MIB)).unwrap();
    let server = serve(&rt, "rw");
    server.export("md0", "md0", false).unwrap();
    let (mut c, infos) = Client::go(connect(&server), "md0").unwrap();
    assert_eq!(c.size, 8 * MIB);
    assert_eq!(c.flags & 0x6f, 0x6d, "HAS_FLAGS, SEND_FLUSH, SEND_FUA, SEND_TRIM, SEND_WRITE_ZEROES; not READ_ONLY");
    let (_, bs) = infos.iter().find(|(t, _)| *t == 3).expect("block sizes asked");
    assert_eq!((u32_at(bs, 0), u32_at(bs, 4), u32_at(bs, 8)), (512, 4096, 32 << 20));

    // Larger than maxphys: split into several bios, one reply.
    let mut rng = Rng::new(1);
    let data = random(&mut rng, 3 * MIB as usize + 512);
    c.write(4096, &data, 0).unwrap();
    assert_eq!(md.read_backing(4096, data.len()), data);
    assert_eq!(c.read(4096, data.len() as u32).unwrap(), data);
    // Unaligned reads are widened to sectors and cut.
    assert_eq!(c.read(4099, 1000).unwrap(), data[3..1003]);
    assert_eq!(c.read(4096 + 511, 2).unwrap(), data[511..513]);
    assert_eq!(c.read(0, 0).unwrap(), b"");
    // FUA, flush, cache.
    let fua = random(&mut rng, 65536);
    c.write(6 * MIB, &fua, FUA).unwrap();
    assert_eq!(md.read_backing(6 * MIB, fua.len()), fua);
    c.cmd(FLUSH, 0, 0, 0).unwrap();
    c.cmd(CACHE, 0, 0, 4096).unwrap();
    // Trim and write-zeroes clear the range.
    c.cmd(TRIM, 0, 4096, 65536).unwrap();
    assert_eq!(md.read_backing(4096, 65536), vec![0; 65536]);
    assert_eq!(md.read_backing(4096 + 65536, 512), data[65536..65536 + 512]);
    md.write_backing(5 * MIB, &vec![0xee; MIB as usize + 4096]);
    c.cmd(WRITE_ZEROES, FUA, 5 * MIB, MIB as u32 + 512).unwrap();
    assert_eq!(md.read_backing(5 * MIB, MIB as usize + 512), vec![0; MIB as usize + 512]);
    assert_eq!(md.read_backing(5 * MIB + MIB + 512, 512), vec![0xee; 512]);
    // Unaligned writes and trims are refused.
    assert_eq!(c.write(100, &[1; 512], 0), Err(EINVAL));
    assert_eq!(c.write(0, &[1; 100], 0), Err(EINVAL));
    assert_eq!(c.cmd(TRIM, 0, 512, 100), Err(EINVAL));

    // Many requests in flight: 40 writes sent before any reply is read, then 40 reads.
    let chunks: Vec<Vec<u8>> = (0..40).map(|_| random(&mut rng, 16384)).collect();
    let mut pending = HashMap::new();
    for (i, ch) in chunks.iter().enumerate() {
        pending.insert(c.send(WRITE, 0, i as u64 * 16384, 16384, ch), i);
    }
    for _ in 0..chunks.len() {
        let (e, cookie) = c.reply();
        assert_eq!(e, 0);
        assert!(pending.remove(&cookie).is_some(), "one reply per cookie");
    }
    for (i, ch) in chunks.iter().enumerate() {
        assert_eq!(&md.read_backing(i as u64 * 16384, 16384), ch);
        pending.insert(c.send(READ, 0, i as u64 * 16384, 16384, &[]), i);
    }
    for _ in 0..chunks.len() {
        let (e, cookie) = c.reply();
        assert_eq!(e, 0);
        let i = pending.remove(&cookie).expect("known cookie");
        assert_eq!(read_n(&mut c.s, 16384), chunks[i], "read {i}");
    }

    let ex = &server.exports()[0];
    assert_eq!((ex.name.as_str(), ex.provider.as_str(), ex.read_only, ex.clients), ("md0", "md0", false, 1));
    assert_eq!(ex.requests, 93, "13 single requests and 80 in flight: {ex:?}");
    assert_eq!(ex.errors, 3);
    assert!(ex.bytes_written >= data.len() as u64 + 40 * 16384);
    c.disconnect();
    quiesce(&server, &rt);
    assert_eq!(server.exports()[0].clients, 0);
    server.stop();
    finish(rt);
}

#[test]
fn list_info_export_name_and_option_errors() {
    let rt = runtime("nbd-opts");
    rt.md_create(MdConfig::malloc(4 * MIB).sectorsize(4096)).unwrap();
    rt.md_create(MdConfig::malloc(2 * MIB)).unwrap();
    let server = serve(&rt, "opts");
    server.export("disk-a", "md0", false).unwrap();
    server.export("disk-b", "md1", true).unwrap();

    let mut s = connect(&server);
    assert_eq!(greet(&mut s, NEWSTYLE | NO_ZEROES), 3, "FIXED_NEWSTYLE | NO_ZEROES");
    send_opt(&mut s, OPT_LIST, &[]);
    let mut names = Vec::new();
    loop {
        match opt_reply(&mut s, OPT_LIST) {
            (REP_SERVER, d) => names.push(String::from_utf8(d[4..4 + u32_at(&d, 0) as usize].to_vec()).unwrap()),
            (REP_ACK, _) => break,
            other => panic!("LIST: {other:?}"),
        }
    }
    assert_eq!(names, ["disk-a", "disk-b"]);
    send_opt(&mut s, OPT_LIST, b"x");
    assert_eq!(opt_reply(&mut s, OPT_LIST).0, ERR_INVALID);

    let infos = info_or_go(&mut s, OPT_INFO, "disk-a", &[1, 2, 3, 77, 1]).unwrap();
    let types: Vec<u16> = infos.iter().map(|(t, _)| *t).collect();
    assert_eq!(types, [0, 1, 2, 3], "export first, each asked type once, unknown ones left out");
    assert_eq!(u64_at(&infos[0].1, 0), 4 * MIB);
    assert_eq!(infos[1].1, b"disk-a");
    assert!(String::from_utf8_lossy(&infos[2].1).contains("md0"));
    let bs = &infos[3].1;
    assert_eq!((u32_at(bs, 0), u32_at(bs, 4), u32_at(bs, 8)), (4096, 4096, 32 << 20));
    assert_eq!(info_or_go(&mut s, OPT_INFO, "nope", &[]), Err(ERR_UNKNOWN));
    assert_eq!(info_or_go(&mut s, OPT_GO, "nope", &[]), Err(ERR_UNKNOWN));
    let mut bad = info_payload("disk-a", &[]);
    bad[3] = 200;
    send_opt(&mut s, OPT_INFO, &bad);
    assert_eq!(opt_reply(&mut s, OPT_INFO).0, ERR_INVALID);
    for (opt, want) in [
        (OPT_STRUCTURED_REPLY, ERR_UNSUP),
        (OPT_LIST_META_CONTEXT, ERR_UNSUP),
        (OPT_STARTTLS, ERR_POLICY),
        (12345, ERR_UNSUP),
    ] {
        send_opt(&mut s, opt, &[]);
        assert_eq!(opt_reply(&mut s, opt).0, want, "option {opt}");
    }
    send_opt(&mut s, OPT_INFO, &vec![0; 100 << 10]);
    assert_eq!(opt_reply(&mut s, OPT_INFO).0, ERR_TOO_BIG);

    // GO on the read-only export: writes are refused, reads and flushes work.
    let infos = info_or_go(&mut s, OPT_GO, "disk-b", &[]).unwrap();
    let flags = u16_at(&infos[0].1, 8);
    assert_eq!(flags & 0x63, 0x03, "HAS_FLAGS | READ_ONLY, no TRIM or WRITE_ZEROES");
    let mut c = Client { s, size: 2 * MIB, flags, cookie: 0 };
    assert_eq!(c.write(0, &[7; 4096], 0), Err(EPERM));
    assert_eq!(c.cmd(TRIM, 0, 0, 4096), Err(EPERM));
    assert_eq!(c.cmd(WRITE_ZEROES, 0, 0, 4096), Err(EPERM));
    assert_eq!(c.read(0, 4096).unwrap(), vec![0; 4096]);
    c.cmd(FLUSH, 0, 0, 0).unwrap();
    c.disconnect();

    // EXPORT_NAME: 124 zero bytes unless NO_ZEROES.
    for (flags, tail) in [(NEWSTYLE, 124), (NEWSTYLE | NO_ZEROES, 0)] {
        let mut s = connect(&server);
        greet(&mut s, flags);
        send_opt(&mut s, OPT_EXPORT_NAME, b"disk-a");
        let r = read_n(&mut s, 10 + tail);
        assert_eq!(u64_at(&r, 0), 4 * MIB);
        assert!(r[10..].iter().all(|&b| b == 0));
        let mut c = Client { s, size: 4 * MIB, flags: u16_at(&r, 8), cookie: 0 };
        assert_eq!(c.read(4096, 4096).unwrap(), vec![0; 4096]);
        c.disconnect();
    }
    // ABORT is acknowledged; an unknown EXPORT_NAME, a client without FIXED_NEWSTYLE or with
    // unknown flags, and a bad option magic are closed.
    let mut s = connect(&server);
    greet(&mut s, NEWSTYLE);
    send_opt(&mut s, OPT_ABORT, &[]);
    assert_eq!(opt_reply(&mut s, OPT_ABORT).0, REP_ACK);
    assert!(closed_by_server(&mut s));
    let mut s = connect(&server);
    greet(&mut s, NEWSTYLE);
    send_opt(&mut s, OPT_EXPORT_NAME, b"nope");
    assert!(closed_by_server(&mut s));
    for flags in [0, NO_ZEROES, NEWSTYLE | 4] {
        let mut s = connect(&server);
        greet(&mut s, flags);
        assert!(closed_by_server(&mut s), "client flags {flags}");
    }
    let mut s = connect(&server);
    greet(&mut s, NEWSTYLE);
    s.write_all(b"IHAVEOPX\0\0\0\x03\0\0\0\0").unwrap();
    assert!(closed_by_server(&mut s));
    quiesce(&server, &rt);
    let stats = server.exports();
    assert_eq!((stats[1].requests, stats[1].errors), (5, 3), "{stats:?}");
    server.stop();
    finish(rt);
}

#[test]
fn parallel_clients_on_two_exports_and_a_stacked_provider() {
    let rt = runtime("nbd-parallel");
    let md0 = rt.md_create(MdConfig::malloc(8 * MIB)).unwrap();
    let md1 = rt.md_create(MdConfig::malloc(8 * MIB).asynchronous(true)).unwrap();
    rt.load_raw_pass().unwrap();
    let reply = rt.ctl(&CtlRequest::new("PASS", "create").arg("md0"));
    assert_eq!(reply.error, 0, "{:?}", reply.message);
    let server = serve(&rt, "parallel");
    server.export("a", "md0.pass", false).unwrap();
    server.export("b", "md1", false).unwrap();

    let path = match server.local_addr() {
        Listen::Unix(p) => p,
        other => panic!("{other}"),
    };
    let threads: Vec<_> = (0..6u64)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let export = if t % 2 == 0 { "a" } else { "b" };
                let base = (t / 2) * 2 * MIB;
                let s = UnixStream::connect(path).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let (mut c, _) = Client::go(s, export).unwrap();
                let mut rng = Rng::new(100 + t);
                let chunks: Vec<Vec<u8>> = (0..16).map(|_| random(&mut rng, 128 << 10)).collect();
                let mut cookies = Vec::new();
                for (i, ch) in chunks.iter().enumerate() {
                    cookies.push(c.send(WRITE, 0, base + i as u64 * (128 << 10), ch.len() as u32, ch));
                }
                for _ in &chunks {
                    let (e, cookie) = c.reply();
                    assert_eq!(e, 0);
                    assert!(cookies.contains(&cookie));
                }
                c.cmd(FLUSH, 0, 0, 0).unwrap();
                let all = c.read(base, 2 * MIB as u32).unwrap();
                assert_eq!(all, chunks.concat(), "thread {t} reads its writes");
                c.disconnect();
                (export, base, chunks.concat())
            })
        })
        .collect();
    for t in threads {
        let (export, base, bytes) = t.join().unwrap();
        let md = if export == "a" { &md0 } else { &md1 };
        assert_eq!(md.read_backing(base, bytes.len()), bytes, "export {export} at {base}");
    }
    // An export with a client cannot be withdrawn; without one it can.
    let c = go(&server, "b");
    assert!(server.unexport("b").unwrap_err().contains("client"));
    c.disconnect();
    quiesce(&server, &rt);
    server.unexport("b").unwrap();
    let mut s = connect(&server);
    greet(&mut s, NEWSTYLE);
    assert_eq!(info_or_go(&mut s, OPT_GO, "b", &[]), Err(ERR_UNKNOWN));
    drop(s);
    assert!(server.unexport("b").is_err());
    assert!(server.export("a", "md1", false).is_err(), "name taken");
    assert!(server.export("c", "md9", false).is_err(), "no provider");
    quiesce(&server, &rt);
    server.stop();
    finish(rt);
}

#[test]
fn hostile_requests_get_errors_or_a_closed_connection() {
    let rt = runtime("nbd-hostile");
    let md = rt.md_create(MdConfig::malloc(4 * MIB)).unwrap();
    let server = serve(&rt, "hostile");
    server.export("md0", "md0", false).unwrap();
    let size = 4 * MIB;

    // Bad request magic.
    let mut c = go(&server, "md0");
    c.s.write_all(&[0x25, 0x60, 0x95, 0x14]).unwrap();
    c.s.write_all(&[0; 24]).unwrap();
    assert!(closed_by_server(&mut c.s));

    // Lengths past the end, huge lengths, unknown commands: errors, and the stream goes on.
    let mut c = go(&server, "md0");
    assert_eq!(c.read(size - 512, 1024), Err(EINVAL));
    assert_eq!(c.read(u64::MAX - 100, 512), Err(EINVAL));
    assert_eq!(c.write(size, &[1; 512], 0), Err(ENOSPC));
    assert_eq!(c.write(u64::MAX - 511, &[1; 512], 0), Err(ENOSPC));
    assert_eq!(c.cmd(WRITE_ZEROES, 0, size - 512, 1024), Err(ENOSPC));
    assert_eq!(c.cmd(TRIM, 0, size, 512), Err(EINVAL));
    assert_eq!(c.cmd(READ, 0, 0, 64 << 20), Err(EINVAL));
    assert_eq!(c.cmd(TRIM, 0, 0, !511), Err(EINVAL));
    assert_eq!(c.cmd(CACHE, 0, size, 512), Err(EINVAL));
    assert_eq!(c.cmd(BLOCK_STATUS, 0, 0, 512), Err(EINVAL));
    assert_eq!(c.cmd(42, 0, 0, 512), Err(EINVAL));
    assert_eq!(c.cmd(WRITE, 0, 0, 0), Ok(()), "a write of nothing");
    assert_eq!(c.read(0, 512).unwrap(), vec![0; 512]);
    // An unknown command claiming a payload cannot be followed: closed.
    c.send(42, 1 << 5, 0, 512, &[]);
    assert!(closed_by_server(&mut c.s));

    // A write too large to read: EINVAL, then closed.
    let mut c = go(&server, "md0");
    let cookie = c.send(WRITE, 0, 0, u32::MAX, &[]);
    assert_eq!(c.expect_reply(cookie), Err(EINVAL));
    assert!(closed_by_server(&mut c.s));

    // Truncated header; truncated write payload (nothing reaches the disk).
    let mut c = go(&server, "md0");
    c.s.write_all(&[0x25, 0x60, 0x95, 0x13, 0, 0, 0, 1, 0, 0]).unwrap();
    c.s.shutdown(Shutdown::Write).unwrap();
    assert!(closed_by_server(&mut c.s));
    let mut c = go(&server, "md0");
    c.send(WRITE, 0, 0, MIB as u32, &[0xaa; 1000]);
    c.s.shutdown(Shutdown::Write).unwrap();
    assert!(closed_by_server(&mut c.s));
    assert_eq!(md.read_backing(0, 1000), vec![0; 1000]);

    // Abrupt disconnects with requests in flight, and a client that never reads replies.
    // The server stops reading once its in-flight budget is held by replies nobody reads,
    // so this client's own writes may block: it gives up after a moment.
    for n in [8, 200] {
        let mut c = go(&server, "md0");
        c.s.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut stream = Vec::new();
        for i in 0..n {
            stream.extend(request(READ, 0, i, (i % 4) * MIB, MIB as u32));
        }
        stream.extend(request(WRITE, 0, 0, MIB, 2 * MIB as u32));
        stream.extend(vec![0x55; 2 * MIB as usize]);
        let _ = c.s.write_all(&stream);
        drop(c);
    }
    let mut c = go(&server, "md0");
    c.send(WRITE, 0, 0, MIB as u32, &vec![0x66; MIB as usize]);
    c.send(WRITE, 0, MIB, MIB as u32, &[0x66; 4096]);
    drop(c);

    // Handshake abuse: too many options, an option too large for EXPORT_NAME.
    let mut s = connect(&server);
    greet(&mut s, NEWSTYLE);
    let mut flood = Vec::new();
    for _ in 0..1001 {
        flood.extend_from_slice(b"IHAVEOPT\0\0\0\x63\0\0\0\0");
    }
    let mut reader = s.try_clone().unwrap();
    let drain = std::thread::spawn(move || {
        let mut n = 0;
        while let Ok(b) = (|| -> io::Result<Vec<u8>> {
            let mut h = [0u8; 20];
            reader.read_exact(&mut h)?;
            let mut d = vec![0; u32_at(&h, 16) as usize];
            reader.read_exact(&mut d)?;
            Ok(d)
        })() {
            let _ = b;
            n += 1;
        }
        n
    });
    let _ = s.write_all(&flood);
    assert_eq!(drain.join().unwrap(), 1000, "1000 options answered, then closed");
    let mut s = connect(&server);
    greet(&mut s, NEWSTYLE);
    s.write_all(b"IHAVEOPT\0\0\0\x01\x10\0\0\0").unwrap();
    assert!(closed_by_server(&mut s));

    // After all that the server serves a well-behaved client, and nothing leaked.
    let mut c = go(&server, "md0");
    c.write(0, &[9; 4096], FUA).unwrap();
    assert_eq!(c.read(0, 4096).unwrap(), vec![9; 4096]);
    c.disconnect();
    quiesce(&server, &rt);
    server.stop();
    finish(rt);
}

/// Random bytes after a valid prefix: nothing, a greeting, or a GO followed by a mix of
/// well-formed and mangled requests.
fn fuzz_stream(rng: &mut Rng) -> Vec<u8> {
    let mut b = Vec::new();
    let stage = rng.below(4);
    if stage == 0 {
        return random_upto(rng, 200);
    }
    b.extend_from_slice(&(if rng.below(8) == 0 { rng.next_u64() as u32 } else { NEWSTYLE | NO_ZEROES }).to_be_bytes());
    if stage == 1 {
        for _ in 0..rng.below(6) {
            let opt = [OPT_LIST, OPT_INFO, OPT_GO, 8, 9, 10, 5, rng.below(20) as u32][rng.below(8) as usize];
            let data = if rng.below(2) == 0 { info_payload("md0", &[1, 2, 3]) } else { random_upto(rng, 40) };
            b.extend_from_slice(b"IHAVEOPT");
            b.extend_from_slice(&opt.to_be_bytes());
            let len = if rng.below(10) == 0 { rng.next_u64() as u32 } else { data.len() as u32 };
            b.extend_from_slice(&len.to_be_bytes());
            b.extend_from_slice(&data);
        }
        b.extend(random_upto(rng, 64));
        return b;
    }
    b.extend_from_slice(b"IHAVEOPT");
    b.extend_from_slice(&OPT_GO.to_be_bytes());
    let go = info_payload("md0", &[3]);
    b.extend_from_slice(&(go.len() as u32).to_be_bytes());
    b.extend_from_slice(&go);
    for _ in 0..rng.below(24) {
        let cmd = rng.below(10) as u16;
        let flags = if rng.below(4) == 0 { rng.next_u64() as u16 & !(1 << 5) } else { 0 };
        let offset = match rng.below(4) {
            0 => rng.next_u64(),
            1 => rng.below(4 * MIB),
            _ => rng.below(8192) * 512,
        };
        let len = match rng.below(6) {
            0 => rng.next_u64() as u32,
            1 => rng.below(1 << 16) as u32,
            _ => (rng.below(128) * 512) as u32,
        };
        let cookie = rng.next_u64();
        b.extend(request(cmd, flags, cookie, offset, len));
        if cmd == WRITE && len <= 1 << 20 {
            let n = if rng.below(8) == 0 { rng.below(u64::from(len) + 1) } else { u64::from(len) };
            b.extend(random(rng, n as usize));
        }
        if rng.below(12) == 0 {
            b.extend(random_upto(rng, 40));
        }
    }
    b
}

#[test]
fn seeded_random_streams_leave_the_server_serving() {
    let rt = runtime("nbd-fuzz");
    let md = rt.md_create(MdConfig::malloc(4 * MIB)).unwrap();
    let server = serve(&rt, "fuzz");
    server.export("md0", "md0", false).unwrap();
    let mut rng = Rng::new(0x6e62_6421);
    for i in 0..300 {
        let blob = fuzz_stream(&mut rng);
        let mut s = connect(&server);
        // Read everything on a thread of its own, so neither side blocks on a full buffer.
        let mut r = s.try_clone().unwrap();
        let reader = std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = r.read_to_end(&mut sink);
        });
        let _ = s.write_all(&blob);
        if i % 4 == 0 {
            // Abrupt: whatever the server took is cut off mid-way.
            let _ = s.shutdown(Shutdown::Both);
        } else {
            // Half-close: the server sees EOF after the stream and finishes what it took.
            let _ = s.shutdown(Shutdown::Write);
        }
        reader.join().unwrap();
    }
    quiesce(&server, &rt);
    let stats = &server.exports()[0];
    assert!(stats.requests > 300 && stats.errors > 50, "the streams reach transmission: {stats:?}");
    let mut c = go(&server, "md0");
    c.write(MIB, &[0x5a; 8192], 0).unwrap();
    assert_eq!(c.read(MIB, 8192).unwrap(), vec![0x5a; 8192]);
    assert_eq!(md.read_backing(MIB, 8192), vec![0x5a; 8192]);
    c.disconnect();
    quiesce(&server, &rt);
    server.stop();
    finish(rt);
}

#[test]
fn tcp_listens_on_loopback_unless_asked() {
    let rt = runtime("nbd-tcp");
    let md = rt.md_create(MdConfig::malloc(MIB)).unwrap();
    let server = NbdServer::start(&rt, Listen::Tcp("127.0.0.1:0".parse().unwrap())).unwrap();
    server.export("disk", "md0", false).unwrap();
    let Listen::Tcp(addr) = server.local_addr() else { panic!("tcp") };
    assert_ne!(addr.port(), 0);
    assert_eq!(server.local_addr().uri("disk"), format!("nbd://{addr}/disk"));
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (mut c, _) = Client::go(s, "disk").unwrap();
    c.write(512, &[3; 1024], 0).unwrap();
    assert_eq!(c.read(512, 1024).unwrap(), vec![3; 1024]);
    assert_eq!(md.read_backing(512, 1024), vec![3; 1024]);
    c.disconnect();

    let remote: SocketAddr = "192.0.2.1:10809".parse().unwrap();
    let e = NbdServer::start(&rt, Listen::Tcp(remote)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let any = NbdServer::start_any_address(&rt, Listen::Tcp("0.0.0.0:0".parse().unwrap())).unwrap();
    let Listen::Tcp(a) = any.local_addr() else { panic!("tcp") };
    assert_ne!(a.port(), 0);
    any.stop();
    quiesce(&server, &rt);
    server.stop();
    finish(rt);
}

#[test]
fn unix_socket_path_rules_and_stop_with_clients_in_flight() {
    let rt = runtime("nbd-unix");
    rt.md_create(MdConfig::malloc(4 * MIB).asynchronous(true)).unwrap();
    // A file that is not a socket is never removed.
    let path = sock_path("rules");
    std::fs::write(&path, b"keep me").unwrap();
    assert!(NbdServer::start(&rt, Listen::Unix(path.clone())).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
    std::fs::remove_file(&path).unwrap();
    // A stale socket is replaced; a live one is not.
    drop(UnixListener::bind(&path).unwrap());
    let server = NbdServer::start(&rt, Listen::Unix(path.clone())).unwrap();
    let e = NbdServer::start(&rt, Listen::Unix(path.clone())).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    assert!(server.local_addr().uri("md0").starts_with("nbd+unix:///md0?socket=/"));
    server.export("md0", "md0", false).unwrap();

    // Stop with clients busy: one with reads in flight it never collects, one writing, one
    // in the middle of the handshake.
    let mut busy = go(&server, "md0");
    for i in 0..64 {
        busy.send(READ, 0, (i % 4) * MIB, MIB as u32, &[]);
    }
    let mut writing = go(&server, "md0");
    writing.send(WRITE, 0, 0, 2 * MIB as u32, &vec![1; MIB as usize]);
    let mut shaking = connect(&server);
    greet(&mut shaking, NEWSTYLE);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.connections() < 3 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(1));
    }
    server.stop();
    assert!(!path.exists(), "the socket file goes with the server");
    assert_eq!(rt.live_bios(), 0, "stop waits for every bio");
    assert!(closed_by_server(&mut writing.s));
    assert!(closed_by_server(&mut shaking));
    drop(busy);
    finish(rt);
}
