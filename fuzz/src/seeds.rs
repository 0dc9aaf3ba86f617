//! The seed corpus: meaningful inputs for each target, so the fuzzer starts from what real
//! disks, geom(8) and NBD clients send rather than from nothing.
//!
//! Labels come from the classes' own encoders and from bytes laid out here the way
//! FreeBSD's tools write them (offsets by hand, MD5 computed independently, the garbage
//! FreeBSD leaves after strings and in unwritten fields); ctl requests from every verb's
//! command line, both as a command line and as the parameters geom(8) sends; NBD streams
//! from a client's handshake and requests. `cargo run --bin seed_corpus` writes them to
//! `corpus/<target>/`; `tests/corpus.rs` checks the committed corpus still holds them.

use geom_class_journal::format::{JournalHeader, RecordHeader};
use geom_class_journal::metadata::{GJ_FLAG_CHECKSUM, GJ_FLAG_CLEAN, GJ_TYPE_COMPLETE, GJ_TYPE_DATA, GJ_TYPE_JOURNAL};
use geom_class_journal::{Journal, JournalMetadata};
use geom_class_nop::Nop;
use geom_class_stripe::{Stripe, StripeMetadata};
use geom_core::metadata;
use geom_host::nbd::proto;
use md5::{Digest, Md5};

use crate::ctlreq::{argv_input, params_from_argv, params_input, Record};
use crate::input::Writer;
use crate::metadata::{
    dump_input, recovery_geometry, recovery_input, toy_sector, Kind, WALK_ANY_START, WALK_CHECKSUM, WALK_IO_ERRORS,
};

/// One corpus file.
pub struct Seed {
    /// The target it feeds.
    pub target: &'static str,
    /// Its file name.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

fn seed(target: &'static str, name: impl Into<String>, bytes: Vec<u8>) -> Seed {
    Seed { target, name: name.into(), bytes }
}

/// Every seed.
pub fn all() -> Vec<Seed> {
    let mut v = Vec::new();
    metadata_seeds(&mut v);
    ctlreq_seeds(&mut v);
    nbd_seeds(&mut v);
    v
}

fn with_kind(kind: Kind, bytes: &[u8]) -> Vec<u8> {
    Writer::new().u8(kind as u8).bytes(bytes).finish()
}

/// A sector as the class's encoder writes it.
fn encoded<M: metadata::Metadata>(md: &M, sectorsize: usize) -> Vec<u8> {
    let mut s = vec![0u8; sectorsize];
    metadata::encode(md, &mut s).expect("a seed label encodes");
    s
}

/// Only the bytes up to the last non-zero one: the harnesses pad with zeros, so the
/// corpus need not carry a sector's empty tail.
fn trimmed(mut b: Vec<u8>) -> Vec<u8> {
    let len = b.iter().rposition(|&x| x != 0).map_or(0, |i| i + 1);
    b.truncate(len);
    b
}

/// A C string in a fixed field the way `strlcpy` into an uninitialised struct leaves it:
/// the string, its NUL, then whatever was there (`junk`).
fn c_field(out: &mut [u8], s: &str, junk: u8) {
    out.fill(junk);
    out[..s.len()].copy_from_slice(s.as_bytes());
    if s.len() < out.len() {
        out[s.len()] = 0;
    }
}

/// A gstripe label as FreeBSD's `gstripe label` (or an older one) writes it.
#[allow(clippy::too_many_arguments)]
fn freebsd_stripe(
    version: u32,
    name: &str,
    id: u32,
    no: u16,
    all: u16,
    stripesize: u32,
    prov: &str,
    size: u64,
) -> Vec<u8> {
    let mut s = vec![0u8; 512];
    c_field(&mut s[0..16], "GEOM::STRIPE", 0xee);
    s[16..20].copy_from_slice(&version.to_le_bytes());
    c_field(&mut s[20..36], name, 0xee);
    s[36..40].copy_from_slice(&id.to_le_bytes());
    s[40..42].copy_from_slice(&no.to_le_bytes());
    s[42..44].copy_from_slice(&all.to_le_bytes());
    s[44..48].copy_from_slice(&stripesize.to_le_bytes());
    if version >= 2 {
        c_field(&mut s[48..64], prov, 0xee);
    } else {
        // Fields an old gstripe did not know hold stack garbage.
        s[48..64].fill(0xcd);
    }
    if version >= 3 {
        s[64..72].copy_from_slice(&size.to_le_bytes());
    } else {
        s[64..72].fill(0xcd);
    }
    s
}

/// A gjournal label as `journal_metadata_encode` lays it out, hashed here.
#[allow(clippy::too_many_arguments)]
fn freebsd_journal(
    id: u32,
    kind: u8,
    jstart: u64,
    jend: u64,
    joffset: u64,
    jid: u32,
    flags: u64,
    prov: &str,
    size: u64,
) -> Vec<u8> {
    let mut s = vec![0u8; 512];
    s[..13].copy_from_slice(b"GEOM::JOURNAL");
    s[20..24].copy_from_slice(&id.to_le_bytes());
    s[24] = kind;
    s[25..33].copy_from_slice(&jstart.to_le_bytes());
    s[33..41].copy_from_slice(&jend.to_le_bytes());
    s[41..49].copy_from_slice(&joffset.to_le_bytes());
    s[49..53].copy_from_slice(&jid.to_le_bytes());
    s[53..61].copy_from_slice(&flags.to_le_bytes());
    s[61..61 + prov.len()].copy_from_slice(prov.as_bytes());
    s[77..85].copy_from_slice(&size.to_le_bytes());
    let hash = Md5::digest(&s[..85]);
    s[85..101].copy_from_slice(&hash);
    s
}

/// A journal header sector as gjournal writes it (the buffer is not zeroed first).
fn freebsd_jh(id: u32, next: u32) -> Vec<u8> {
    let mut s = vec![0xa5u8; 512];
    s[..6].copy_from_slice(b"GJHDR\0");
    s[6..10].copy_from_slice(&id.to_le_bytes());
    s[10..14].copy_from_slice(&next.to_le_bytes());
    s
}

/// A record header sector as gjournal writes it: entries (joffset, offset, length), the
/// four bytes after the id never written.
fn freebsd_rh(id: u32, entries: &[(u64, u64, u64)], sum: [u8; 8]) -> Vec<u8> {
    let mut s = vec![0x5au8; 512];
    s[..7].copy_from_slice(b"GJRHDR\0");
    s[7..11].copy_from_slice(&id.to_le_bytes());
    s[15..17].copy_from_slice(&(entries.len() as u16).to_le_bytes());
    s[17..25].copy_from_slice(&sum);
    for (i, &(j, o, l)) in entries.iter().enumerate() {
        let at = 25 + i * 24;
        s[at..at + 8].copy_from_slice(&j.to_le_bytes());
        s[at + 8..at + 16].copy_from_slice(&o.to_le_bytes());
        s[at + 16..at + 24].copy_from_slice(&l.to_le_bytes());
    }
    s
}

/// `n` bytes of a recognisable pattern.
fn pattern(tag: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| tag.wrapping_mul(31).wrapping_add(i as u8)).collect()
}

/// A journal provider image (from offset 0) written at the given offsets.
fn image(parts: &[(u64, &[u8])]) -> Vec<u8> {
    let end = parts.iter().map(|(at, b)| *at as usize + b.len()).max().unwrap_or(0);
    let mut img = vec![0u8; end];
    for (at, b) in parts {
        img[*at as usize..*at as usize + b.len()].copy_from_slice(b);
    }
    img
}

/// A dirty journal the FreeBSD way, in 512-byte sectors with 512-byte entries, starting one
/// sector into the provider: journal A (two records; complete, as B's header follows),
/// then journal B (one record, never completed). `corrupt` damages the second record's
/// data; `checksum` fills in the record sums.
fn freebsd_area(checksum: bool, corrupt: bool) -> Vec<u8> {
    let (a, b, c) = (0x1111_1111u32, 0x2222_2222u32, 0x3333_3333u32);
    let j = 512u64;
    let sum = |parts: &[&[u8]]| -> [u8; 8] {
        if !checksum {
            return [0; 8];
        }
        let mut h = Md5::new();
        for p in parts {
            h.update(p);
        }
        h.finalize()[..8].try_into().expect("eight bytes")
    };
    let (d1, d2, d3, d4) = (pattern(1, 512), pattern(2, 512), pattern(3, 512), pattern(4, 512));
    let rh1 = freebsd_rh(a, &[(j + 1024, 8192, 512), (j + 1536, 65536, 512)], sum(&[&d1, &d2]));
    let rh2 = freebsd_rh(a, &[(j + 2560, 8704, 512)], sum(&[&d3]));
    let rh3 = freebsd_rh(b, &[(j + 4096, 0, 512)], sum(&[&d4]));
    let d3_on_disk = if corrupt { &d1 } else { &d3 };
    image(&[
        (j, &freebsd_jh(a, b)),
        (j + 512, &rh1),
        (j + 1024, &d1),
        (j + 1536, &d2),
        (j + 2048, &rh2),
        (j + 2560, d3_on_disk),
        (j + 3072, &freebsd_jh(b, c)),
        (j + 3584, &rh3),
        (j + 4096, &d4),
    ])
}

fn metadata_seeds(v: &mut Vec<Seed>) {
    const T: &str = "metadata";
    let stripe = StripeMetadata {
        version: 3,
        name: "st0".try_into().expect("short"),
        id: 0x1234_abcd,
        no: 1,
        all: 3,
        stripesize: 65536,
        provider: Default::default(),
        provsize: Some(64 << 20),
    };
    let hardcoded = StripeMetadata {
        name: "sixteen-bytes-nm".try_into().expect("sixteen"),
        provider: "md1".try_into().expect("short"),
        no: 0,
        all: 2,
        stripesize: 4096,
        ..stripe.clone()
    };
    v.push(seed(T, "stripe-label-v3", with_kind(Kind::StripeLabel, &encoded(&stripe, 512))));
    v.push(seed(T, "stripe-label-hardcoded", with_kind(Kind::StripeLabel, &encoded(&hardcoded, 512))));
    for version in 0..=4 {
        let s = freebsd_stripe(version, "data", 0xdead_beef, 2, 4, 131072, "ada0p2", 1 << 30);
        v.push(seed(T, format!("stripe-freebsd-v{version}"), with_kind(Kind::StripeLabel, &s)));
    }

    let journal = JournalMetadata {
        id: 0x4242,
        kind: GJ_TYPE_DATA,
        jstart: 0,
        jend: (48 << 20) - 512,
        joffset: 0,
        jid: 0x1111_1111,
        flags: GJ_FLAG_CLEAN,
        provider: Default::default(),
        provsize: 4 << 20,
    };
    let complete = JournalMetadata {
        kind: GJ_TYPE_COMPLETE,
        jstart: 1 << 30,
        jend: (2 << 30) - 512,
        joffset: 1 << 30,
        flags: GJ_FLAG_CHECKSUM,
        provider: "ada1".try_into().expect("short"),
        provsize: 2 << 30,
        ..journal.clone()
    };
    v.push(seed(T, "journal-label-data", with_kind(Kind::JournalLabel, &encoded(&journal, 512))));
    v.push(seed(T, "journal-label-complete", with_kind(Kind::JournalLabel, &encoded(&complete, 512))));
    let fb = freebsd_journal(
        0x1234_5678,
        GJ_TYPE_JOURNAL,
        0,
        0x3ff_fe00,
        0x200,
        0xabcd_ef01,
        GJ_FLAG_CHECKSUM,
        "md1",
        0x400_0000,
    );
    v.push(seed(T, "journal-freebsd", with_kind(Kind::JournalLabel, &fb)));
    let mut bad = fb;
    bad[30] ^= 1;
    v.push(seed(T, "journal-freebsd-bad-hash", with_kind(Kind::JournalLabel, &bad)));

    let mut jh = vec![0u8; 512];
    JournalHeader { id: 7, next_id: 8 }.encode(&mut jh);
    v.push(seed(T, "journal-header", with_kind(Kind::JournalRecord, &jh)));
    v.push(seed(T, "journal-header-freebsd", with_kind(Kind::JournalRecord, &freebsd_jh(7, 8))));
    let mut entries = heapless::Vec::new();
    for i in 0..20u64 {
        let e = geom_class_journal::format::Entry { joffset: 1024 + i * 4096, offset: i << 20, length: 4096 };
        entries.push(e).expect("20 entries fit");
    }
    let full = RecordHeader { journal_id: 7, sum: *b"checksum", entries };
    let mut rh = vec![0u8; 512];
    full.encode(&mut rh).expect("a record header fits a sector");
    v.push(seed(T, "record-header-full", with_kind(Kind::JournalRecord, &rh)));
    let rh = freebsd_rh(7, &[(1024, 8192, 4096), (5120, 65536, 1024)], [0; 8]);
    v.push(seed(T, "record-header-freebsd", with_kind(Kind::JournalRecord, &rh)));

    // Recovery: 512-byte sectors, maxphys of one sector, the area one sector in.
    let (flags, mul, extra, jss) = (0u8, 0u8, 0u8, 1u8);
    let (ss, _, jstart, jend) = recovery_geometry(flags, mul, extra, jss);
    // Each also checks the area of a 48 MiB journal provider's label.
    let check = (0, (48 << 20) - 512, 0, 1 << 20);
    let walk = |flags, start, id, fail, img: &[u8]| {
        recovery_input(check, flags, mul, extra, jss, start, id, 1 << 20, fail, img)
    };
    v.push(seed(T, "recovery-freebsd", walk(flags, 0, 0x1111_1111, 0, &freebsd_area(false, false))));
    v.push(seed(
        T,
        "recovery-freebsd-checksum",
        walk(flags | WALK_CHECKSUM, 0, 0x1111_1111, 0, &freebsd_area(true, false)),
    ));
    v.push(seed(
        T,
        "recovery-corrupt-checksum",
        walk(flags | WALK_CHECKSUM, 0, 0x1111_1111, 0, &freebsd_area(true, true)),
    ));
    v.push(seed(T, "recovery-io-error", walk(flags | WALK_IO_ERRORS, 0, 0x1111_1111, 3, &freebsd_area(false, false))));
    v.push(seed(
        T,
        "recovery-wild-start",
        walk(flags | WALK_ANY_START, u64::MAX - 511, 0x1111_1111, 0, &freebsd_area(false, false)),
    ));
    // A journal whose next record does not fit before the area's end: it wraps to jstart.
    let record_max = ss + ss * 20;
    let x = jend - record_max - ss;
    let d = pattern(9, 512);
    let wrap = image(&[
        (x, &freebsd_jh(5, 6)),
        (jstart, &freebsd_rh(5, &[(jstart + 512, 4096, 512)], [0; 8])),
        (jstart + 512, &d),
        (jstart + 1024, &freebsd_jh(6, 7)),
    ]);
    v.push(seed(T, "recovery-wrap", walk(flags, (x - jstart) / ss, 5, 0, &wrap)));

    // The generic layer: toy labels of each version, and reader programs.
    let generic = |sector: &[u8], program: &[u8], buf: &[u8]| {
        Writer::new()
            .u8(Kind::Generic as u8)
            .long(sector)
            .short(b"GEOM::FUZZ")
            .short("naïve-name-longer-than-16".as_bytes())
            .short(program)
            .bytes(buf)
            .finish()
    };
    let reads: Vec<u8> = (0..7).collect();
    let mut buf = b"GEOM::FUZZ\0\xee\xee\xee\xee\xee".to_vec();
    buf.extend_from_slice(&pattern(5, 40));
    for version in 1..=3 {
        v.push(seed(
            T,
            format!("generic-toy-v{version}"),
            generic(&toy_sector(version, "toy0", 3, 1 << 40), &reads, &buf),
        ));
    }
    let mut bad = toy_sector(3, "toy0", 3, 1 << 40);
    bad[40] ^= 0x80;
    v.push(seed(T, "generic-toy-bad-sum", generic(&bad, &[4, 5, 200, 3], &buf)));
    v.push(seed(T, "generic-toy-v4", generic(&toy_sector(4, "toy0", 3, 0), &[6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6], &buf)));

    // dump of last sectors.
    v.push(seed(T, "dump-stripe", dump_input(0, &trimmed(encoded(&stripe, 512)))));
    v.push(seed(T, "dump-stripe-4k", dump_input(3, &trimmed(encoded(&hardcoded, 4096)))));
    v.push(seed(T, "dump-stripe-freebsd-v1", dump_input(0, &freebsd_stripe(1, "old", 1, 0, 2, 512, "", 0)[..72])));
    v.push(seed(T, "dump-journal", dump_input(0, &trimmed(encoded(&complete, 512)))));
}

/// Command lines for every verb of every class, on the harness's disks `md0`..`md4`.
const COMMANDS: [(usize, &str, &[&str]); 27] = [
    (0, "nop-create", &["create", "-v", "-e", "5", "-r", "50", "-w", "100", "-s", "1m", "md0"]),
    (
        0,
        "nop-create-named",
        &["create", "-o", "512", "-S", "4096", "-p", "8k", "-P", "1k", "-z", "phys", "-Z", "fast", "md1"],
    ),
    (0, "nop-configure", &["configure", "-c", "10", "-d", "5", "-q", "50", "-x", "50", "md0.nop"]),
    (0, "nop-destroy", &["destroy", "-f", "md0.nop", "/dev/md1.nop"]),
    (0, "nop-reset", &["reset", "-v", "md0.nop"]),
    (0, "nop-list", &["list", "-a"]),
    (0, "nop-status", &["status", "-gs", "md0.nop"]),
    (1, "stripe-label", &["label", "-v", "-s", "64k", "st0", "md0", "md1", "md2"]),
    (1, "stripe-label-hardcoded", &["label", "-h", "-s", "4096", "st0", "/dev/md0", "md3"]),
    (1, "stripe-label-small", &["label", "st0", "md4", "md0"]),
    (1, "stripe-create", &["create", "-s", "131072", "st1", "md0", "md1"]),
    (1, "stripe-destroy", &["destroy", "-f", "st0", "st1"]),
    (1, "stripe-stop", &["stop", "-v", "st0"]),
    (1, "stripe-clear", &["clear", "-v", "md0", "md1"]),
    (1, "stripe-dump", &["dump", "md0", "md2"]),
    (1, "stripe-help", &["help"]),
    (2, "journal-label", &["label", "-c", "md0", "md1"]),
    (2, "journal-label-single", &["label", "-v", "-s", "200m", "md2"]),
    (2, "journal-label-default", &["label", "-fh", "md3"]),
    (2, "journal-label-tiny", &["label", "md4"]),
    (2, "journal-stop", &["stop", "-f", "md0.journal"]),
    (2, "journal-destroy", &["destroy", "md0"]),
    (2, "journal-sync", &["sync", "-v"]),
    (2, "journal-clear", &["clear", "md0", "md1"]),
    (2, "journal-dump", &["dump", "md1"]),
    (2, "journal-status", &["status"]),
    (2, "journal-bad-option", &["label", "-k", "md0"]),
];

fn ctlreq_seeds(v: &mut Vec<Seed>) {
    const T: &str = "ctlreq";
    for (class, name, argv) in COMMANDS {
        v.push(seed(T, format!("argv-{name}"), argv_input(class, argv)));
        // geom(8)'s own verbs (list, status) and unknown ones make no request.
        let parses = match class {
            0 => geom_host::command::parse::<Nop>(argv).is_ok(),
            1 => geom_host::command::parse::<Stripe>(argv).is_ok(),
            _ => geom_host::command::parse::<Journal>(argv).is_ok(),
        };
        if parses {
            let bytes = match class {
                0 => params_from_argv::<Nop>(class, argv),
                1 => params_from_argv::<Stripe>(class, argv),
                _ => params_from_argv::<Journal>(class, argv),
            };
            v.push(seed(T, format!("params-{name}"), bytes));
        }
    }
    // Requests geom(8) would never build: what a hostile or confused caller sends.
    let version = |v: u32| v.to_ne_bytes();
    let int = |v: i32| v.to_ne_bytes();
    let (v3, one, two, minus) = (version(3), int(1), int(2), int(-1));
    let hostile: [(&str, usize, Vec<Record<'_>>); 5] = [
        (
            "params-wrong-version",
            1,
            vec![Record::Ascii("verb", "destroy"), Record::Bytes("version", &[9, 0, 0, 0]), Record::Output(4096)],
        ),
        (
            "params-nargs-lies",
            1,
            vec![
                Record::Ascii("verb", "destroy"),
                Record::Bytes("version", &v3),
                Record::Bytes("nargs", &two),
                Record::Ascii("arg0", "st0"),
            ],
        ),
        (
            "params-short-flag",
            1,
            vec![
                Record::Ascii("verb", "destroy"),
                Record::Bytes("version", &v3),
                Record::Bytes("force", &[1, 0, 0]),
                Record::Bytes("nargs", &one),
                Record::Ascii("arg0", "st0"),
            ],
        ),
        (
            "params-unterminated-arg",
            2,
            vec![
                Record::Ascii("verb", "stop"),
                Record::Bytes("version", &[0; 4]),
                Record::Bytes("nargs", &one),
                Record::Bytes("arg0", b"md0.journal"),
                Record::Output(0),
            ],
        ),
        ("params-no-verb", 0, vec![Record::Bytes("version", &[4, 0, 0, 0]), Record::Bytes("nargs", &minus)]),
    ];
    for (name, class, records) in &hostile {
        v.push(seed(T, *name, params_input(*class, records)));
    }
}

/// A client's flags, as it sends them.
fn client_flags(no_zeroes: bool) -> Vec<u8> {
    let f = proto::CLIENT_FIXED_NEWSTYLE | if no_zeroes { proto::CLIENT_NO_ZEROES } else { 0 };
    f.to_be_bytes().to_vec()
}

fn request(cmd: u16, flags: u16, offset: u64, length: u32) -> Vec<u8> {
    proto::encode_request(&proto::Request { flags, cmd, cookie: 0x1000 + u64::from(cmd), offset, length }).to_vec()
}

fn nbd_seeds(v: &mut Vec<Seed>) {
    const T: &str = "nbd";
    let go = proto::encode_option(
        proto::OPT_GO,
        &proto::encode_info_request("md0", &[proto::INFO_NAME, proto::INFO_BLOCK_SIZE, proto::INFO_DESCRIPTION, 99]),
    );
    let mut io = client_flags(true);
    io.extend(go);
    io.extend(request(proto::CMD_READ, 0, 0, 4096));
    io.extend(request(proto::CMD_WRITE, proto::CMD_FLAG_FUA, 512, 512));
    io.extend(pattern(7, 512));
    io.extend(request(proto::CMD_FLUSH, 0, 0, 0));
    io.extend(request(proto::CMD_TRIM, 0, 1 << 20, 1 << 20));
    io.extend(request(proto::CMD_WRITE_ZEROES, proto::CMD_FLAG_NO_HOLE, 4096, 8192));
    io.extend(request(proto::CMD_CACHE, 0, 0, 65536));
    io.extend(request(proto::CMD_BLOCK_STATUS, proto::CMD_FLAG_REQ_ONE, 0, 512));
    io.extend(request(proto::CMD_DISC, 0, 0, 0));
    v.push(seed(T, "go-and-requests", io));

    let mut list = client_flags(false);
    list.extend(proto::encode_option(proto::OPT_LIST, &[]));
    list.extend(proto::encode_option(proto::OPT_INFO, &proto::encode_info_request("", &[proto::INFO_EXPORT])));
    list.extend(proto::encode_option(proto::OPT_STARTTLS, &[]));
    list.extend(proto::encode_option(proto::OPT_STRUCTURED_REPLY, &[]));
    list.extend(proto::encode_option(proto::OPT_ABORT, &[]));
    v.push(seed(T, "list-info-abort", list));

    let mut old = client_flags(false);
    old.extend(proto::encode_option(proto::OPT_EXPORT_NAME, b"stripe/st0"));
    old.extend(request(proto::CMD_READ, 0, u64::MAX - 100, 4096));
    old.extend(request(proto::CMD_WRITE, 0, 0, u32::MAX));
    v.push(seed(T, "export-name-hostile", old));

    let mut big = client_flags(true);
    let mut head = proto::encode_option(proto::OPT_INFO, &[]);
    head[12..16].copy_from_slice(&(proto::MAX_NAME_LEN as u32 * 100).to_be_bytes());
    big.extend(head);
    big.extend(proto::encode_option(proto::OPT_GO, &[0, 0, 0, 3, b'm', b'd']));
    v.push(seed(T, "oversized-and-malformed-options", big));

    let mut unknown = client_flags(true);
    unknown.extend(proto::encode_option(proto::OPT_GO, &proto::encode_info_request("md0", &[])));
    unknown.extend(request(77, proto::CMD_FLAG_PAYLOAD_LEN, 0, 512));
    v.push(seed(T, "unknown-command-with-payload", unknown));

    v.push(seed(T, "request-header", request(proto::CMD_WRITE, proto::CMD_FLAG_FUA, 1 << 30, 65536)));
    v.push(seed(T, "info-payload", proto::encode_info_request("md0.journal", &[3, 2, 1, 0])));
}
