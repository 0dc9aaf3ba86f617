//! Labels: written by `gstripe label` here and decoded as FreeBSD decodes them; written the
//! way FreeBSD's gstripe writes them and tasted here, components arriving in any order; old,
//! too new, stale and foreign labels; `clear` and `dump`.

mod common;

use std::path::PathBuf;

use common::*;
use geom_class_stripe::Stripe;
use geom_host::disk::MdConfig;
use geom_host::{Runtime, RuntimeConfig};

/// A label as FreeBSD's `stripe_metadata_decode` reads it.
#[derive(Debug, PartialEq)]
struct FreeBsdLabel {
    magic: String,
    version: u32,
    name: String,
    id: u32,
    no: u16,
    all: u16,
    stripesize: u32,
    provider: String,
    provsize: u64,
}

fn c_string(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn decode_freebsd(sector: &[u8]) -> FreeBsdLabel {
    let le16 = |at: usize| u16::from_le_bytes(sector[at..at + 2].try_into().unwrap());
    let le32 = |at: usize| u32::from_le_bytes(sector[at..at + 4].try_into().unwrap());
    FreeBsdLabel {
        magic: c_string(&sector[0..16]),
        version: le32(16),
        name: c_string(&sector[20..36]),
        id: le32(36),
        no: le16(40),
        all: le16(42),
        stripesize: le32(44),
        provider: c_string(&sector[48..64]),
        provsize: u64::from_le_bytes(sector[64..72].try_into().unwrap()),
    }
}

/// A sector as FreeBSD's `gstripe label` writes it: `strlcpy` into an uninitialised struct,
/// so the bytes after each string's NUL are whatever was on the stack (here 0xee).
fn encode_freebsd(l: &FreeBsdLabel) -> Vec<u8> {
    let mut s = vec![0u8; 512];
    let mut field = |at: usize, v: &str| {
        s[at..at + 16].fill(0xee);
        s[at..at + v.len()].copy_from_slice(v.as_bytes());
        s[at + v.len()] = 0;
    };
    field(0, &l.magic);
    field(20, &l.name);
    field(48, &l.provider);
    s[16..20].copy_from_slice(&l.version.to_le_bytes());
    s[36..40].copy_from_slice(&l.id.to_le_bytes());
    s[40..42].copy_from_slice(&l.no.to_le_bytes());
    s[42..44].copy_from_slice(&l.all.to_le_bytes());
    s[44..48].copy_from_slice(&l.stripesize.to_le_bytes());
    s[64..72].copy_from_slice(&l.provsize.to_le_bytes());
    s
}

fn label(name: &str, id: u32, no: u16, all: u16, stripesize: u32, provsize: u64) -> FreeBsdLabel {
    FreeBsdLabel {
        magic: "GEOM::STRIPE".into(),
        version: 3,
        name: name.into(),
        id,
        no,
        all,
        stripesize,
        provider: String::new(),
        provsize,
    }
}

fn console_has(rt: &Runtime, line: &str) -> bool {
    rt.console_log().iter().any(|l| l.trim_end() == line)
}

#[test]
fn labels_decode_as_freebsd_decodes_them_and_assemble() {
    let (rt, disks) = runtime("stripe-label", &[MIB, MIB, MIB + 64 * KIB]);
    let out = ok(&rt, &["label", "-v", "-s", "16k", "st0", "md0", "/dev/md1", "md2"]);
    assert_eq!(
        out.stdout,
        "Metadata value stored on md0.\nMetadata value stored on /dev/md1.\nMetadata value stored on md2.\nDone.\n"
    );
    assert_eq!(
        out.stderr,
        format!("warning: md2: only {} bytes from {} bytes used.\n", MIB - 512, MIB + 64 * KIB - 512)
    );
    rt.settle();
    let labels: Vec<FreeBsdLabel> =
        disks.iter().map(|d| decode_freebsd(&d.read_backing(d.mediasize() - 512, 512))).collect();
    let id = labels[0].id;
    for (i, l) in labels.iter().enumerate() {
        let size = disks[i].mediasize();
        assert_eq!(*l, FreeBsdLabel { no: i as u16, provsize: size, ..label("st0", id, 0, 3, 16384, 0) });
        assert!(disks[i].read_backing(size - 512 + 72, 440).iter().all(|&b| b == 0), "rest of the sector zero");
    }
    let pp = rt.provider("stripe/st0").expect("assembled from its labels");
    assert_eq!(pp.mediasize, 3 * (MIB - 16 * KIB) as i64, "one sector kept for the label, then whole stripes");
    let xml = rt.confxml();
    for line in [
        format!("<ID>{id}</ID>"),
        "<Stripesize>16384</Stripesize>".into(),
        "<Type>AUTOMATIC</Type>".into(),
        "<Status>Total=3, Online=3</Status>".into(),
        "<State>UP</State>".into(),
        "<Number>2</Number>".into(),
    ] {
        assert!(xml.contains(&line), "{line} in {xml}");
    }
    let dump = ok(&rt, &["dump", "md1"]).stdout;
    assert_eq!(
        dump,
        format!(
            "Metadata on md1:\n         Magic string: GEOM::STRIPE\n     Metadata version: 3\n          Device name: st0\n            Device ID: {id}\n          Disk number: 1\nTotal number of disks: 3\n          Stripe size: 16384\n   Hardcoded provider: \n\n"
        )
    );
    // Data goes where the model says, past a relabel with hard-coded names.
    let h = rt.open("stripe/st0", 1, 1, 0).unwrap();
    let data = Rng::new(5).bytes(200 * 1024);
    h.write(8192, &data).unwrap();
    h.close().unwrap();
    assert!(model_read(&disks, 16384, 8192, data.len()) == data);
    ok(&rt, &["stop", "st0"]);
    ok(&rt, &["label", "-h", "-s", "16k", "st0", "md0", "md1", "md2"]);
    rt.settle();
    assert_eq!(decode_freebsd(&disks[1].read_backing(MIB - 512, 512)).provider, "md1");
    let h = rt.open("stripe/st0", 1, 0, 0).unwrap();
    assert!(h.read(8192, data.len()).unwrap() == data, "relabeling keeps the data");
    h.close().unwrap();
    finish(rt);
}

/// Component images, in files, labeled the way FreeBSD writes labels, each holding its
/// share of a known pattern.
struct Images {
    dir: PathBuf,
    paths: Vec<PathBuf>,
    data: Vec<u8>,
}

impl Images {
    fn new(tag: &str, labels: &[FreeBsdLabel], size: u64, stripe: u64) -> Images {
        let dir = std::env::temp_dir().join(format!("geom-stripe-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let n = labels.len() as u64;
        let usable = (size - 512) / stripe * stripe * n;
        let data = Rng::new(9).bytes(usable as usize);
        let mut images = vec![vec![0u8; size as usize]; labels.len()];
        for (off, &b) in data.iter().enumerate() {
            let (d, o) = locate(off as u64, n, stripe);
            images[d][o as usize] = b;
        }
        let mut paths = Vec::new();
        for (i, (img, l)) in images.iter_mut().zip(labels).enumerate() {
            let at = img.len() - 512;
            img[at..].copy_from_slice(&encode_freebsd(l));
            let p = dir.join(format!("disk{i}.img"));
            std::fs::write(&p, &*img).unwrap();
            paths.push(p);
        }
        Images { dir, paths, data }
    }
}

impl Drop for Images {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn freebsd_labels_taste_in_any_order() {
    let size = MIB;
    let labels: Vec<_> = (0..3).map(|i| label("fbsd", 0x1234_5678, i, 3, 8192, size)).collect();
    let img = Images::new("order", &labels, size, 8192);
    for order in [[2usize, 0, 1], [1, 2, 0], [0, 1, 2]] {
        let rt = Runtime::new(RuntimeConfig { echo_console: false, ..Default::default() });
        rt.load::<Stripe>().unwrap();
        for (k, &i) in order.iter().enumerate() {
            assert!(rt.provider("stripe/fbsd").is_none(), "published before its last component");
            rt.md_create(MdConfig::file(&img.paths[i], 0).named(&format!("ada{i}"))).unwrap();
            rt.settle();
            let online = rt.confxml().contains(&format!("<Status>Total=3, Online={}</Status>", k + 1));
            assert!(online, "{order:?}: component {k} attached");
        }
        let h = rt.open("stripe/fbsd", 1, 0, 0).expect("assembled");
        assert_eq!(h.mediasize() as usize, img.data.len());
        assert!(h.read(0, MIB as usize).unwrap() == img.data[..MIB as usize]);
        let tail = img.data.len() - 64 * 1024;
        assert!(h.read(tail as i64, 64 * 1024).unwrap() == img.data[tail..]);
        h.close().unwrap();
        assert!(console_has(&rt, "GEOM_STRIPE: Device stripe/fbsd activated."));
        finish(rt);
    }
}

#[test]
fn older_versions_are_read_and_newer_refused() {
    // Version 1: no provider name and no size yet; the fields hold leftovers.
    let size = MIB;
    let old: Vec<_> = (0..2)
        .map(|i| FreeBsdLabel {
            version: 1,
            provider: "garbage".into(),
            provsize: 0xdead_beef,
            ..label("old", 77, i, 2, 4096, size)
        })
        .collect();
    let img = Images::new("v1", &old, size, 4096);
    let rt = Runtime::new(RuntimeConfig { echo_console: false, ..Default::default() });
    rt.load::<Stripe>().unwrap();
    for (i, p) in img.paths.iter().enumerate() {
        rt.md_create(MdConfig::file(p, 0).named(&format!("da{i}"))).unwrap();
    }
    rt.settle();
    let h = rt.open("stripe/old", 1, 0, 0).expect("a version 1 label assembles");
    assert!(h.read(0, 8192).unwrap() == img.data[..8192]);
    h.close().unwrap();
    // Version 4 is from the future.
    let new = rt.md_create(MdConfig::malloc(MIB)).unwrap();
    let mut sector = encode_freebsd(&FreeBsdLabel { version: 4, ..label("new", 1, 0, 2, 4096, MIB) });
    sector[20..36].fill(0);
    sector[20..23].copy_from_slice(b"new");
    new.write_backing(MIB - 512, &sector);
    // Retaste: open for writing and close.
    rt.open(new.name(), 0, 1, 0).unwrap().close().unwrap();
    rt.settle();
    assert!(console_has(&rt, &format!("geom_stripe.ko module is too old to handle {}.", new.name())));
    assert!(!rt.confxml().contains("<name>new</name>"));
    finish(rt);
}

#[test]
fn stale_hardcoded_and_foreign_labels_are_refused() {
    let (rt, disks) = runtime("stripe-stale", &[MIB, MIB, MIB, MIB]);
    rt.load::<Stripe>().unwrap();
    let put = |i: usize, l: &FreeBsdLabel| {
        disks[i].write_backing(MIB - 512, &encode_freebsd(l));
        rt.open(disks[i].name(), 0, 1, 0).unwrap().close().unwrap();
        rt.settle();
    };
    // Written for a provider of another size: a stale label from before a resize.
    put(0, &label("st", 5, 0, 2, 4096, 2 * MIB));
    assert!(console_has(
        &rt,
        &format!("GEOM_STRIPE: Label on md0 was written for {} bytes, the provider has {MIB}; ignored.", 2 * MIB)
    ));
    // Hard-coded for another provider.
    put(1, &FreeBsdLabel { provider: "ada7".into(), ..label("st", 5, 1, 2, 4096, MIB) });
    assert!(console_has(&rt, "GEOM_STRIPE: Label on md1 is hardcoded for provider ada7; ignored."));
    assert!(!rt.confxml().contains("<name>st</name>"), "neither label made a device");
    // A device, then a component of another device of the same name (another id).
    put(2, &label("st", 5, 0, 2, 4096, MIB));
    put(3, &label("st", 6, 1, 2, 4096, MIB));
    assert!(console_has(&rt, "GEOM_STRIPE: Device st already configured."));
    assert!(console_has(&rt, "GEOM_STRIPE: Cannot create device st."));
    assert!(rt.confxml().contains("<Status>Total=2, Online=1</Status>"));
    // Two components claiming the same number.
    put(0, &label("st", 5, 0, 2, 4096, MIB));
    assert!(console_has(&rt, "GEOM_STRIPE: Cannot add disk md0 to st (error=17)."));
    // A component number past the count.
    put(1, &label("st", 5, 2, 2, 4096, MIB));
    assert!(console_has(&rt, "GEOM_STRIPE: Cannot add disk md1 to st (error=22)."));
    assert!(rt.provider("stripe/st").is_none());
    finish(rt);
}

#[test]
fn clear_dump_and_label_errors() {
    let (rt, disks) = runtime("stripe-clear", &[MIB, MIB, 8 * KIB]);
    ok(&rt, &["label", "-s", "4k", "st0", "md0", "md1"]);
    rt.settle();
    assert!(rt.provider("stripe/st0").is_some());
    // Clearing a component spoils the device (the write-open) and removes its label.
    let out = ok(&rt, &["clear", "-v", "md0"]);
    assert_eq!(out.stdout, "Metadata cleared on md0.\nDone.\n");
    rt.settle();
    assert!(disks[0].read_backing(MIB - 512, 512).iter().all(|&b| b == 0));
    assert!(rt.provider("stripe/st0").is_none(), "the device stopped");
    assert!(console_has(&rt, "GEOM_STRIPE: Disk md0 removed from st0."));
    let out = gstripe(&rt, &["clear", "md0", "md1"]);
    assert_eq!(out.error.as_deref(), Some("Not fully done."));
    assert_eq!(out.stderr, "Can't clear metadata on md0: Invalid argument.\n");
    let out = gstripe(&rt, &["dump", "md0"]);
    assert_eq!(out.error.as_deref(), Some("Not fully done."));
    assert_eq!(out.stderr, "Can't read metadata from md0: Invalid argument.\n");
    fails(&rt, &["dump"], "Missing device(s).");
    fails(&rt, &["label", "st1", "md0"], "Too few arguments.");
    fails(&rt, &["label", "-s", "256", "st1", "md0", "md1"], "Stripesize should be multiple of 512.");
    fails(&rt, &["label", "-s", "12k", "st1", "md0", "md1"], "Invalid stripe size 12288: it must be a power of two.");
    fails(
        &rt,
        &["label", "-s", "8k", "st1", "md0", "md2"],
        "Provider md2 is too small: 7680 bytes of data, less than one 8192-byte stripe.",
    );
    fails(&rt, &["label", "st1", "md0", "md9"], "Can't get informations about md9: No such file or directory.");
    fails(
        &rt,
        &["label", "-x", "st1", "md0", "md1"],
        "Invalid option -- 'x'.\nusage: label [-hv] [-s stripesize] name prov prov ...",
    );
    finish(rt);
}

/// Labels are untrusted: random values in every field (counts up to 65535, any stripe size,
/// numbers past the count, names without a NUL, garbage that is not UTF-8) are tasted
/// without a crash; whatever devices they make come and go cleanly.
#[test]
fn hostile_labels_are_survived() {
    let (rt, disks) = runtime("stripe-hostile", &[MIB, MIB]);
    rt.load::<Stripe>().unwrap();
    let mut rng = Rng::new(99);
    for _ in 0..150 {
        for d in &disks {
            let mut sector = rng.bytes(512);
            sector[..16].copy_from_slice(b"GEOM::STRIPE\0\0\0\0");
            sector[16..20].copy_from_slice(&(rng.below(4) as u32).to_le_bytes());
            // Sometimes a plausible shape, so devices do get made.
            if rng.below(2) == 0 {
                sector[20..36].copy_from_slice(b"h\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
                sector[40..42].copy_from_slice(&(rng.below(3) as u16).to_le_bytes());
                sector[42..44].copy_from_slice(&(rng.below(3) as u16).to_le_bytes());
                sector[44..48].copy_from_slice(&(512u32 << rng.below(24)).to_le_bytes());
                sector[48..64].fill(0);
                sector[64..72].copy_from_slice(&MIB.to_le_bytes());
            }
            d.write_backing(MIB - 512, &sector);
            rt.open(d.name(), 0, 1, 0).unwrap().close().unwrap();
        }
        rt.settle();
        if let Ok(h) = rt.open("stripe/h", 1, 1, 0) {
            let len = (h.mediasize() as usize).min(64 * 1024);
            let data = rng.bytes(len);
            h.write(0, &data).unwrap();
            assert!(h.read(0, len).unwrap() == data);
            h.close().unwrap();
        }
    }
    finish(rt);
}
