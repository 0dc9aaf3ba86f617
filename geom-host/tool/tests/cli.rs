//! The `geom` tool as a user drives it, from the README: a host started with `geom serve -b`,
//! disks attached, classes labeled and assembled, providers exported over NBD and written and
//! read by real clients (qemu-io, qemu-img from Debian's qemu-utils; qemu-nbd as the peer
//! server whose export of the same bytes qemu-img compares with ours), then torn down, with
//! every byte checked on the backing files; and the userland verbs on bare image files
//! without a host.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MIB: u64 = 1 << 20;

/// A scratch directory, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("geom-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run `geom --socket SOCKET args...` in `dir`.
fn geom(dir: &Path, socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_geom"))
        .current_dir(dir)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env("GEOM_HOST_QUIET", "1")
        .output()
        .expect("run geom")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Run a geom command that must succeed; its stdout.
fn ok(dir: &Path, socket: &Path, args: &[&str]) -> String {
    let o = geom(dir, socket, args);
    assert!(o.status.success(), "geom {args:?} failed: {}{}", text(&o.stdout), text(&o.stderr));
    text(&o.stdout)
}

/// Run a geom command that must fail with `msg` on stderr.
fn fails(dir: &Path, socket: &Path, args: &[&str], msg: &str) {
    let o = geom(dir, socket, args);
    assert_eq!(o.status.code(), Some(1), "geom {args:?}: {}", text(&o.stdout));
    assert!(text(&o.stderr).contains(msg), "geom {args:?}: stderr {:?} lacks {msg:?}", text(&o.stderr));
}

/// A running `geom serve -b`; shut down (or killed, if a test failed) on drop.
struct Server {
    dir: PathBuf,
    socket: PathBuf,
    pid: u32,
}

impl Server {
    fn start(s: &Scratch) -> Server {
        let socket = s.path("ctl.sock");
        let out = ok(&s.0, &socket, &["serve", "-b"]);
        let pid = out
            .split("pid ")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no pid in {out:?}"));
        Server { dir: s.0.clone(), socket, pid }
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(&self.dir, &self.socket, args)
    }

    fn fails(&self, args: &[&str], msg: &str) {
        fails(&self.dir, &self.socket, args, msg)
    }

    /// `geom shutdown`, then wait for the process to go; its log must show a clean stop.
    fn shutdown(mut self) {
        self.ok(&["shutdown"]);
        let log_path = self.dir.join("ctl.sock.log");
        for _ in 0..500 {
            if !Path::new(&format!("/proc/{}", self.pid)).exists() || proc_is_zombie(self.pid) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        assert!(log.contains("geom: host stopped"), "the host did not stop cleanly:\n{log}");
        assert!(!log.contains("invariant violated"), "{log}");
        self.pid = 0;
    }
}

fn proc_is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.pid != 0 {
            let _ = Command::new("kill").arg("-9").arg(self.pid.to_string()).status();
        }
    }
}

/// Run qemu-io on `uri` with `cmds`; every command must succeed and every pattern match.
fn qemu_io(uri: &str, cmds: &[&str]) -> String {
    let mut c = Command::new("qemu-io");
    c.args(["-f", "raw", uri]);
    for cmd in cmds {
        c.args(["-c", cmd]);
    }
    let o = c.output().expect("qemu-io (Debian's qemu-utils) must be installed");
    let out = text(&o.stdout) + &text(&o.stderr);
    assert!(o.status.success(), "qemu-io {cmds:?}: {out}");
    assert!(!out.contains("Pattern verification failed") && !out.contains("failed:"), "qemu-io {cmds:?}: {out}");
    out
}

/// `qemu-img convert` of an export into `dest`.
fn qemu_img_convert(uri: &str, dest: &Path) {
    let o = Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "raw", uri])
        .arg(dest)
        .output()
        .expect("qemu-img (Debian's qemu-utils) must be installed");
    assert!(o.status.success(), "qemu-img convert: {}{}", text(&o.stdout), text(&o.stderr));
}

/// The bytes a client should see at `off` of a stripe over `disks` with `stripesize`.
fn stripe_byte_source(off: u64, ndisks: u64, stripesize: u64) -> (usize, u64) {
    let n = off / stripesize;
    ((n % ndisks) as usize, (n / ndisks) * stripesize + off % stripesize)
}

#[test]
fn a_stripe_served_over_nbd_is_written_by_qemu_io_and_read_back_by_qemu_img() {
    let s = Scratch::new("stripe");
    let host = Server::start(&s);
    // Three 8 MiB file disks, as mdconfig -a -t vnode would give.
    for i in 0..3 {
        let name = host.ok(&["disk", "attach", "-t", "file", "-s", "8m", &format!("d{i}.img")]);
        assert_eq!(name, format!("md{i}\n"));
    }
    let list = host.ok(&["disk", "list"]);
    assert!(list.starts_with("md0\tfile\t    8M\t"), "{list}");
    let label = host.ok(&["stripe", "label", "-v", "-s", "64k", "st0", "md0", "md1", "md2"]);
    assert!(label.starts_with("Metadata value stored on md0.\n") && label.ends_with("Done.\n"), "{label}");
    let status = host.ok(&["stripe", "status"]);
    assert!(status.contains("stripe/st0") && status.contains("UP") && status.contains("md2"), "{status}");
    assert!(host.ok(&["list"]).contains("Geom name: st0\n"));
    assert!(host.ok(&["confxml"]).contains("<name>stripe/st0</name>"));

    let uri = host.ok(&["nbd", "export", "stripe/st0"]).trim().to_owned();
    assert!(uri.starts_with("nbd+unix:///stripe%2Fst0?socket=") && uri.ends_with("ctl.sock.nbd"), "{uri}");
    assert!(host.ok(&["nbd", "list"]).contains(&uri));
    // Patterns across stripe boundaries, a whole row, the last sector, and a flush.
    // gstripe's size: each component's space below its label, cut to whole stripes.
    let size = 3 * ((8 * MIB - 512) / (64 * 1024) * (64 * 1024));
    let last = size - 4096;
    let writes =
        [(0u64, MIB, 0x5a), (2 * MIB - 4096, 8 * 1024, 0x11), (3 * MIB + 512, 200 * 1024, 0xa5), (last, 4096, 0xee)];
    let mut cmds: Vec<String> = writes.iter().map(|(o, l, p)| format!("write -P {p:#x} {o} {l}")).collect();
    cmds.push("flush".into());
    cmds.extend(writes.iter().map(|(o, l, p)| format!("read -P {p:#x} {o} {l}")));
    cmds.push("write -z 6M 64k".into());
    cmds.push("read -P 0 6M 64k".into());
    cmds.push("discard 7M 64k".into());
    let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
    qemu_io(&uri, &cmds);
    // Past the end: refused, and the host goes on.
    let o = Command::new("qemu-io").args(["-f", "raw", &uri, "-c", &format!("read {} 4096", size)]).output().unwrap();
    assert!(text(&o.stdout).contains("Input/output error") || text(&o.stderr).contains("error") || !o.status.success());

    // qemu-img reads the whole export; every byte must be the stripe of the three files.
    let whole = s.path("whole.img");
    qemu_img_convert(&uri, &whole);
    let got = std::fs::read(&whole).unwrap();
    assert_eq!(got.len() as u64, size);
    let disks: Vec<Vec<u8>> = (0..3).map(|i| std::fs::read(s.path(&format!("d{i}.img"))).unwrap()).collect();
    for off in (0..size).step_by(512) {
        let (d, doff) = stripe_byte_source(off, 3, 64 * 1024);
        assert_eq!(
            &got[off as usize..off as usize + 512],
            &disks[d][doff as usize..doff as usize + 512],
            "offset {off}: export vs md{d} at {doff}"
        );
    }
    for (o, l, p) in writes {
        assert!(got[o as usize..(o + l) as usize].iter().all(|b| *b == p as u8), "pattern {p:#x} at {o}");
    }
    assert!(got[6 * MIB as usize..(6 * MIB + 65536) as usize].iter().all(|b| *b == 0));

    // qemu-nbd, the peer server, serves the copy; qemu-img compares the two exports.
    let peer_sock = s.path("peer.sock");
    let mut peer = Command::new("qemu-nbd")
        .args(["-f", "raw", "-r", "-t", "-k"])
        .arg(&peer_sock)
        .arg(&whole)
        .spawn()
        .expect("qemu-nbd (Debian's qemu-utils) must be installed");
    for _ in 0..500 {
        if peer_sock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let peer_uri = format!("nbd+unix:///?socket={}", peer_sock.display());
    let cmp = Command::new("qemu-img").args(["compare", "-f", "raw", "-F", "raw", &uri, &peer_uri]).output().unwrap();
    let _ = peer.kill();
    let _ = peer.wait();
    assert!(cmp.status.success(), "qemu-img compare: {}{}", text(&cmp.stdout), text(&cmp.stderr));
    assert!(text(&cmp.stdout).contains("Images are identical."), "{}", text(&cmp.stdout));

    // geom copy goes through the stripe too, and gives the same bytes.
    host.ok(&["copy", "stripe/st0", "copied.img"]);
    assert_eq!(std::fs::read(s.path("copied.img")).unwrap(), got);

    // Tear down: unexport, stop, detach, shut down.
    host.fails(&["disk", "detach", "md9"], "Cannot detach md9: No such file or directory.");
    host.ok(&["nbd", "unexport", "stripe/st0"]);
    host.ok(&["stripe", "stop", "st0"]);
    for i in 0..3 {
        host.ok(&["disk", "detach", &format!("md{i}")]);
    }
    assert_eq!(host.ok(&["disk", "list"]), "");
    host.shutdown();
    // The labels stay on the images: geom(8)'s dump reads them without a host.
    let dump = ok(&s.0, &s.path("nohost.sock"), &["stripe", "dump", "d1.img"]);
    assert!(
        dump.contains("Metadata on d1.img:")
            && dump.contains("Device name: st0")
            && dump.contains("Stripe size: 65536"),
        "{dump}"
    );
}

#[test]
fn a_journal_served_over_nbd_keeps_what_qemu_io_wrote() {
    let s = Scratch::new("journal");
    let host = Server::start(&s);
    host.ok(&["disk", "attach", "-t", "file", "-s", "16m", "data.img"]);
    host.ok(&["disk", "attach", "-t", "file", "-s", "64m", "journal.img"]);
    host.ok(&["journal", "label", "md0", "md1"]);
    assert!(host.ok(&["journal", "status"]).contains("md0.journal"));
    let uri = host.ok(&["nbd", "export", "-n", "j", "md0.journal"]).trim().to_owned();
    qemu_io(
        &uri,
        &[
            "write -P 0x42 0 2M",
            "write -P 0x43 1M 4k",
            "flush",
            "write -P 0x44 10M 512k",
            "read -P 0x42 0 1M",
            "read -P 0x43 1M 4k",
            "read -P 0x44 10M 512k",
        ],
    );
    // A second client sees what the first wrote, as a second opener of the device would.
    qemu_io(&uri, &["read -P 0x42 1052672 1044480", "read -P 0x44 10M 512k"]);
    // The last client is gone: the journal copies home; sync waits for it.
    host.ok(&["journal", "sync"]);
    host.ok(&["nbd", "unexport", "j"]);
    host.ok(&["journal", "stop", "md0.journal"]);
    host.shutdown();
    let data = std::fs::read(s.path("data.img")).unwrap();
    assert!(data[..MIB as usize].iter().all(|b| *b == 0x42));
    assert!(data[MIB as usize..MIB as usize + 4096].iter().all(|b| *b == 0x43));
    assert!(data[MIB as usize + 4096..2 * MIB as usize].iter().all(|b| *b == 0x42));
    assert!(data[10 * MIB as usize..10 * MIB as usize + 512 * 1024].iter().all(|b| *b == 0x44));
}

#[test]
fn without_a_host_userland_verbs_work_on_image_files_and_the_rest_says_why_not() {
    let s = Scratch::new("oneshot");
    let sock = s.path("none.sock");
    for n in ["a.img", "b.img"] {
        std::fs::write(s.path(n), vec![0u8; 4 * MIB as usize]).unwrap();
    }
    assert_eq!(
        ok(&s.0, &sock, &["stripe", "label", "-v", "-s", "16k", "st1", "a.img", "b.img"]),
        "Metadata value stored on a.img.\nMetadata value stored on b.img.\nDone.\n"
    );
    let b = std::fs::read(s.path("b.img")).unwrap();
    let last = &b[b.len() - 512..];
    assert_eq!(&last[..13], b"GEOM::STRIPE\0", "the label is in the image's last sector");
    let dump = ok(&s.0, &sock, &["stripe", "dump", "b.img"]);
    assert!(
        dump.contains("Device name: st1") && dump.contains("Disk number: 1") && dump.contains("Stripe size: 16384"),
        "{dump}"
    );
    ok(&s.0, &sock, &["stripe", "clear", "a.img"]);
    assert!(std::fs::read(s.path("a.img")).unwrap()[4 * MIB as usize - 512..].iter().all(|b| *b == 0));
    fails(&s.0, &sock, &["disk", "list"], "needs a running host");
    fails(&s.0, &sock, &["stripe", "create", "st2", "a.img"], "needs a running host");
    fails(&s.0, &sock, &["stripe", "label", "st1"], "");
    fails(&s.0, &sock, &["frob", "list"], "Unknown class: frob.");
    assert!(ok(&s.0, &sock, &["help"]).contains("geom stripe label"));
}
