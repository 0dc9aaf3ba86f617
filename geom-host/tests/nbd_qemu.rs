//! The NBD server against real clients: qemu's `qemu-io` and `qemu-img` (Debian's
//! qemu-utils). The tools are required: a missing tool fails the test rather than skipping
//! it, so CI cannot pass without having talked to qemu.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{finish, runtime};
use geom_host::disk::MdConfig;
use geom_host::nbd::{Listen, NbdServer};
use geom_host::rng::Rng;
use geom_host::Runtime;

const MIB: u64 = 1 << 20;

fn sock_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("geom-nbdq-{}-{tag}.sock", std::process::id()))
}

fn socket_of(server: &NbdServer) -> PathBuf {
    match server.local_addr() {
        Listen::Unix(p) => p,
        other => panic!("not a unix server: {other}"),
    }
}

/// Run a tool; its status and its stdout and stderr together.
fn run(tool: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} ({e}): install qemu-utils (qemu-io and qemu-img are required)"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// qemu-io's commands on one image, which must all succeed.
fn qemu_io(image_args: &[&str], cmds: &[&str]) -> String {
    let mut args: Vec<&str> = image_args.to_vec();
    for c in cmds {
        args.extend(["-c", c]);
    }
    let (ok, out) = run("qemu-io", &args);
    assert!(ok, "qemu-io {args:?} failed:\n{out}");
    for bad in ["failed", "error", "Error"] {
        assert!(!out.contains(bad), "qemu-io {args:?} reported a failure:\n{out}");
    }
    out
}

fn image_opts(sock: &Path, export: &str) -> String {
    format!("driver=nbd,server.type=unix,server.path={},export={export}", sock.display())
}

fn no_leaks(server: NbdServer, rt: Runtime) {
    server.stop();
    assert_eq!(rt.live_bios(), 0);
    finish(rt);
}

#[test]
fn qemu_io_writes_reads_flushes_and_discards() {
    let rt = runtime("nbdq-io");
    let md = rt.md_create(MdConfig::malloc(16 * MIB)).unwrap();
    let server = NbdServer::start(&rt, Listen::Unix(sock_path("io"))).unwrap();
    server.export("md0", "md0", false).unwrap();
    let sock = socket_of(&server);
    let opts = image_opts(&sock, "md0");

    let out = qemu_io(
        &["--image-opts", &opts],
        &[
            "write -P 0xab 0 1M",
            "read -P 0xab 0 1M",
            "flush",
            // Larger than maxphys and not aligned to it: several bios per request.
            "write -P 0xcd 1536k 3M",
            "read -P 0xcd 1536k 3M",
            "write -f -P 0x11 8M 64k",
            "discard 8M 32k",
            "read -P 0 8M 32k",
            "read -P 0x11 8224k 32k",
            "write -z 12M 1M",
            "read -P 0 12M 1M",
            // Unaligned: qemu does the read-modify-write around it.
            "write -P 0x77 13631489 1000",
            "read -P 0x77 13631489 1000",
        ],
    );
    assert!(out.contains("wrote 1048576/1048576 bytes at offset 0"), "{out}");
    assert!(out.contains("read 3145728/3145728 bytes at offset 1572864"), "{out}");
    assert_eq!(md.read_backing(0, MIB as usize), vec![0xab; MIB as usize]);
    assert_eq!(md.read_backing(1536 << 10, 3 * MIB as usize), vec![0xcd; 3 * MIB as usize]);
    assert_eq!(md.read_backing(8 * MIB, 32 << 10), vec![0; 32 << 10]);
    assert_eq!(md.read_backing(8 * MIB + (32 << 10), 32 << 10), vec![0x11; 32 << 10]);
    assert_eq!(md.read_backing(12 * MIB, MIB as usize), vec![0; MIB as usize]);
    assert_eq!(md.read_backing(13_631_489, 1000), vec![0x77; 1000]);
    assert_eq!(md.read_backing(13_631_488, 1), vec![0]);

    // The URI form, and bytes written behind qemu's back are what it reads.
    let mut rng = Rng::new(3);
    let mut pattern = vec![0u8; 4096];
    rng.fill(&mut pattern);
    md.write_backing(4 * MIB, &[0x3c; 65536]);
    let uri = server.local_addr().uri("md0");
    qemu_io(&["-f", "raw", &uri], &["read -P 0x3c 4M 64k", "write -P 0x42 5M 4k"]);
    assert_eq!(md.read_backing(5 * MIB, 4096), vec![0x42; 4096]);

    // qemu-io has exited, but the server may still be closing its side of the connection.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.exports()[0].clients != 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let stats = &server.exports()[0];
    assert_eq!((stats.clients, stats.errors), (0, 0), "{stats:?}");
    assert!(stats.bytes_written >= 4 * MIB && stats.bytes_read >= 4 * MIB, "{stats:?}");
    no_leaks(server, rt);
}

#[test]
fn qemu_img_converts_an_export_to_the_same_bytes() {
    let rt = runtime("nbdq-img");
    let md = rt.md_create(MdConfig::malloc(8 * MIB)).unwrap();
    let mut rng = Rng::new(5);
    let mut image = vec![0u8; 8 * MIB as usize];
    rng.fill(&mut image[..3 * MIB as usize]);
    rng.fill(&mut image[6 * MIB as usize..]);
    md.write_backing(0, &image);
    let server = NbdServer::start(&rt, Listen::Unix(sock_path("img"))).unwrap();
    server.export("disk", "md0", true).unwrap();
    let uri = server.local_addr().uri("disk");

    let (ok, info) = run("qemu-img", &["info", "-f", "raw", &uri]);
    assert!(ok && info.contains("8 MiB") && info.contains("8388608"), "qemu-img info:\n{info}");
    let out = std::env::temp_dir().join(format!("geom-nbdq-{}.img", std::process::id()));
    let out_s = out.to_string_lossy().into_owned();
    let (ok, text) = run("qemu-img", &["convert", "-f", "raw", "-O", "raw", &uri, &out_s]);
    assert!(ok, "qemu-img convert:\n{text}");
    let copied = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    assert_eq!(copied.len(), image.len());
    assert!(copied == image, "the converted image differs from the backing store");
    assert_eq!(md.read_backing(0, image.len()), image);

    // The export is read-only: qemu-io opened read-only reads, a write is refused.
    let opts = image_opts(&socket_of(&server), "disk");
    qemu_io(&["-r", "--image-opts", &opts], &["read -v 0 16"]);
    let (_, text) = run("qemu-io", &["--image-opts", &opts, "-c", "write -P 1 0 4k"]);
    assert!(!text.contains("wrote"), "a read-only export took a write:\n{text}");
    assert_eq!(md.read_backing(0, 4096), image[..4096]);
    no_leaks(server, rt);
}
