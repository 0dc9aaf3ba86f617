//! NBD: `geom`'s export beside `qemu-nbd`, both serving the same bytes from memory, driven by
//! `qemu-img bench` over Unix sockets.
//!
//! Our side is a memory disk in a runtime of its own, exported by [`NbdServer`]; the peer is
//! `qemu-nbd` serving a raw file of the same size and content in `/dev/shm` (tmpfs, so it too
//! serves memory: the page cache is the file). Both get the same `qemu-img bench` command
//! lines, one after the other, the order swapped every round; a rate is the median over the
//! rounds, a ratio the median of each round's ratio. The time is `qemu-img bench`'s own ("Run
//! completed in ..."), which starts after the image is open: process start-up and the NBD
//! handshake are not counted. Every point is a goal of its own (geom at or above qemu-nbd):
//! one mean would let a fast path hide a slow one.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use geom_host::nbd::{Listen, NbdServer};

use crate::report::{mb_per_s, per_s, Goal, Part, Table};
use crate::stacks::{self, Stack};
use crate::Options;

/// Bytes each server serves: big enough that 4 KiB random requests miss the CPU caches.
const SIZE: u64 = 256 << 20;
/// The export's name on both servers.
const EXPORT: &str = "bench";
/// The byte `qemu-img bench -w` writes: not zero, so no layer can turn writes into holes.
const WRITE_PATTERN: &str = "165";

/// One measured point.
#[derive(Clone, Copy, Debug)]
struct Workload {
    /// Request size in bytes.
    size: u64,
    /// Requests in flight (`qemu-img bench -d`).
    depth: u32,
    write: bool,
    /// Offsets scattered over the disk (else one after the other).
    random: bool,
}

impl Workload {
    fn name(&self) -> String {
        let size =
            if self.size >= 1 << 20 { format!("{} MiB", self.size >> 20) } else { format!("{} KiB", self.size >> 10) };
        let pattern = if self.random { "random" } else { "sequential" };
        let op = if self.write { "write" } else { "read" };
        format!("{size} {pattern} {op}")
    }

    /// `qemu-img bench`'s step between offsets. It walks `offset += step` modulo
    /// `SIZE - size`, so a random walk is a step of `s` blocks with `s` coprime to that
    /// modulus (in blocks): every block is visited once per lap, in a scattered order. `s`
    /// near the golden ratio of the lap keeps consecutive offsets far apart.
    fn step(&self) -> u64 {
        if !self.random {
            return self.size;
        }
        let blocks = (SIZE - self.size) / self.size;
        let mut s = (blocks as f64 * 0.618) as u64;
        while s > 1 && gcd(s, blocks) != 1 {
            s -= 1;
        }
        s.max(1) * self.size
    }

    /// A first run's request count: short, only to measure the rate.
    fn probe_count(&self) -> u64 {
        if self.size >= 1 << 20 {
            64
        } else {
            2000
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The points the issue asks for: 4 KiB random and 1 MiB sequential, read and write, at
/// queue depths 1 and 32.
fn workloads() -> Vec<Workload> {
    let mut v = Vec::new();
    for (size, random) in [(4096, true), (1 << 20, false)] {
        for write in [false, true] {
            for depth in [1, 32] {
                v.push(Workload { size, depth, write, random });
            }
        }
    }
    v
}

/// A scratch directory removed with everything in it when dropped, even on error.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, String> {
        // tmpfs when there is one, so the peer's file lives in memory as our disk does.
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        let dir = base.join(format!("geom-bench-nbd.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed and reaped when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The content both servers start with: a splitmix64 stream keyed by offset, so the bytes
/// are the same whichever way they are written, and not compressible or zero.
fn pattern(offset: u64, buf: &mut [u8]) {
    for (i, word) in buf.chunks_mut(8).enumerate() {
        let mut z = (offset / 8 + i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let bytes = z.to_le_bytes();
        word.copy_from_slice(&bytes[..word.len()]);
    }
}

/// Check that a program runs at all, for a clear message when it is missing.
fn require(program: &str) -> Result<(), String> {
    match Command::new(program).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{program} --version: {s}")),
        Err(e) => Err(format!("{program} not runnable ({e}); install qemu-utils")),
    }
}

/// Run `cmd` to its end, killed after `limit`; its stdout, or why it failed.
fn run_limited(cmd: &mut Command, limit: Duration) -> Result<String, String> {
    let what = format!("{cmd:?}");
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = Reaped(child.map_err(|e| format!("{what}: {e}"))?);
    // Outputs are a few lines; the pipes cannot fill while we poll.
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.0.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => return Err(format!("{what}: no answer after {limit:?}")),
            Err(e) => return Err(format!("{what}: {e}")),
        }
    };
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(o) = child.0.stdout.as_mut() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(e) = child.0.stderr.as_mut() {
        let _ = e.read_to_string(&mut err);
    }
    if status.success() {
        Ok(out)
    } else {
        Err(format!("{what}: {status}: {}", err.trim()))
    }
}

/// One `qemu-img bench` run of `count` requests against `uri`; its own measured seconds.
fn bench(uri: &str, w: &Workload, count: u64, limit: Duration) -> Result<f64, String> {
    let mut cmd = Command::new("qemu-img");
    cmd.args(["bench", "-q", "-f", "raw"]).args(["-c", &count.to_string()]).args(["-d", &w.depth.to_string()]);
    cmd.args(["-s", &w.size.to_string(), "-S", &w.step().to_string(), "-o", "0"]);
    if w.write {
        cmd.args(["-w", "--pattern", WRITE_PATTERN]);
    }
    cmd.arg(uri);
    let out = run_limited(&mut cmd, limit)?;
    out.lines()
        .find_map(|l| l.strip_prefix("Run completed in ")?.strip_suffix(" seconds.")?.trim().parse::<f64>().ok())
        .filter(|s| *s >= 0.0)
        .ok_or_else(|| format!("qemu-img bench printed no time: {out:?}"))
}

/// Fill `path` and the memory disk with [`pattern`], a MiB at a time.
fn fill(path: &Path, disk: &geom_host::disk::MdDisk) -> Result<(), String> {
    let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = BufWriter::new(file);
    let mut buf = vec![0u8; 1 << 20];
    for offset in (0..SIZE).step_by(buf.len()) {
        pattern(offset, &mut buf);
        out.write_all(&buf).map_err(|e| format!("{}: {e}", path.display()))?;
        disk.write_backing(offset, &buf);
    }
    out.flush().map_err(|e| format!("{}: {e}", path.display()))
}

/// Start `qemu-nbd` on `image`, listening at `socket`; returns once it accepts.
fn start_peer(image: &Path, socket: &Path, log: &Path) -> Result<Reaped, String> {
    let log = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    // -t: serve one client after another (each qemu-img run is one). --cache=writeback is
    // qemu-nbd's default: requests become pread/pwrite on the tmpfs file, a memory copy, as
    // our memory disk's are; O_DIRECT (cache=none) would only add a refusal or a detour on
    // tmpfs. --aio=threads is its default too, the setup users run.
    let child = Command::new("qemu-nbd")
        .args(["-t", "-f", "raw", "--cache=writeback", "--aio=threads", "-x", EXPORT, "-k"])
        .arg(socket)
        .arg(image)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("qemu-nbd: {e}"))?;
    let mut child = Reaped(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if UnixStream::connect(socket).is_ok() {
            return Ok(child);
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            return Err(format!("qemu-nbd exited at start: {status}"));
        }
        if Instant::now() > deadline {
            return Err("qemu-nbd did not listen within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Measure.
pub fn run(opts: &Options) -> Result<Part, String> {
    require("qemu-img")?;
    require("qemu-nbd")?;
    // Declared in this order so they drop in reverse: the peer is killed and our server
    // stopped before the runtime goes, and the scratch directory last.
    let scratch = Scratch::new()?;
    let built = stacks::build(Stack::Md, SIZE)?;
    let disk = built.disks.first().ok_or("no memory disk")?;
    let image = scratch.0.join("peer.raw");
    fill(&image, disk)?;
    let ours_sock = scratch.0.join("geom.sock");
    let server = NbdServer::start(&built.rt, Listen::Unix(ours_sock)).map_err(|e| format!("NBD server: {e}"))?;
    server.export(EXPORT, &built.top, false)?;
    let ours = server.local_addr().uri(EXPORT);
    let peer_sock = scratch.0.join("qemu.sock");
    let peer_proc = start_peer(&image, &peer_sock, &scratch.0.join("qemu-nbd.log"))?;
    let peer = Listen::Unix(peer_sock).uri(EXPORT);

    let result = measure(opts, &Server { uri: &ours, pid: None }, &Server { uri: &peer, pid: Some(peer_proc.0.id()) });

    drop(peer_proc);
    server.stop();
    let torn = built.teardown(Stack::Md);
    drop(scratch);
    let part = result?;
    torn?;
    Ok(part)
}

/// One NBD server under test.
struct Server<'a> {
    uri: &'a str,
    /// Its process, for its CPU time (`None`: this process).
    pid: Option<u32>,
}

/// CPU seconds (user and system) a process has used so far, from `/proc/PID/stat`; 0 where
/// there is no `/proc`. Dead threads count (our connection threads end with each run).
fn cpu_seconds(pid: Option<u32>) -> f64 {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let Ok(stat) = std::fs::read_to_string(path) else { return 0.0 };
    // Fields after the command name (which may hold spaces), from field 3: utime is the
    // 14th field, stime the 15th, in USER_HZ ticks (100 on Linux's ABI).
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// One run on `server`: qemu-img's seconds and the server's CPU seconds.
fn sample(server: &Server, w: &Workload, count: u64, limit: Duration) -> Result<(f64, f64), String> {
    let before = cpu_seconds(server.pid);
    let t = bench(server.uri, w, count, limit)?;
    Ok((t, cpu_seconds(server.pid) - before))
}

/// Check both servers serve the same bytes, then run every workload on both.
fn measure(opts: &Options, ours: &Server, peer: &Server) -> Result<Part, String> {
    // A whole read through both servers: the same bytes, and both page caches warm.
    let limit = Duration::from_secs(120);
    run_limited(Command::new("qemu-img").args(["compare", "-q", "-f", "raw", "-F", "raw", ours.uri, peer.uri]), limit)
        .map_err(|e| format!("the two exports differ or cannot be read: {e}"))?;

    let loads = workloads();
    // Each point's count, so the faster server's run takes about `opts.seconds` (the slower
    // one's takes longer); from the faster probe, since a probe is only ever slowed by noise.
    let mut counts = Vec::with_capacity(loads.len());
    for w in &loads {
        let probe = w.probe_count();
        let fastest = bench(ours.uri, w, probe, limit)?.min(bench(peer.uri, w, probe, limit)?);
        let per_request = (fastest / probe as f64).max(1e-7);
        counts.push(((opts.seconds / per_request).ceil() as u64).clamp(probe, 50_000_000));
    }
    // A run may take several times its estimate on a loaded machine, but not forever.
    let run_limit = limit + Duration::from_secs_f64(opts.seconds * 50.0);

    // Per point, per round: (ours, peer), each (seconds, CPU seconds).
    let mut runs = vec![Vec::new(); loads.len()];
    for round in 0..opts.rounds {
        for (i, w) in loads.iter().enumerate() {
            // Alternate who goes first, so a drift in the machine's load favours neither.
            let (o, p) = if round % 2 == 0 {
                let o = sample(ours, w, counts[i], run_limit)?;
                (o, sample(peer, w, counts[i], run_limit)?)
            } else {
                let p = sample(peer, w, counts[i], run_limit)?;
                (sample(ours, w, counts[i], run_limit)?, p)
            };
            runs[i].push((o, p));
        }
    }

    let mut table = Table::new(
        "NBD export: geom beside qemu-nbd (qemu-img bench over a Unix socket)",
        &[
            "workload",
            "depth",
            "requests",
            "geom bios/s",
            "geom MB/s",
            "qemu-nbd bios/s",
            "qemu-nbd MB/s",
            "geom / qemu-nbd",
            "geom CPU µs/bio",
            "qemu-nbd CPU µs/bio",
        ],
    );
    let mut goals = Vec::new();
    for ((w, &count), rs) in loads.iter().zip(&counts).zip(&runs) {
        let mut ot: Vec<f64> = rs.iter().map(|r| r.0 .0).collect();
        let mut pt: Vec<f64> = rs.iter().map(|r| r.1 .0).collect();
        // The same count ran on both, so a round's ratio of rates is the inverse one of
        // times; the median of paired ratios cancels a load that changed between rounds.
        let mut ratios: Vec<f64> = rs.iter().map(|r| r.1 .0 / r.0 .0.max(1e-9)).collect();
        let (o_rate, p_rate) = (count as f64 / median(&mut ot).max(1e-9), count as f64 / median(&mut pt).max(1e-9));
        let ratio = median(&mut ratios);
        let bios = (count * rs.len() as u64).max(1) as f64;
        let cpu_us = |cpu: f64| format!("{:.1}", cpu * 1e6 / bios);
        table.row(vec![
            w.name(),
            w.depth.to_string(),
            count.to_string(),
            per_s(o_rate),
            mb_per_s(o_rate * w.size as f64),
            per_s(p_rate),
            mb_per_s(p_rate * w.size as f64),
            format!("{ratio:.2}"),
            cpu_us(rs.iter().map(|r| r.0 .1).sum()),
            cpu_us(rs.iter().map(|r| r.1 .1).sum()),
        ]);
        goals.push(Goal {
            what: format!("NBD {}, depth {}: geom / qemu-nbd", w.name(), w.depth),
            ratio,
            bound: 1.0,
            at_most: false,
        });
    }
    let random = loads.iter().find(|w| w.random).map(|w| w.step() / w.size).unwrap_or(1);
    table.notes.push(format!(
        "Each server serves the same {} MiB from memory: geom a memory disk (`md0`) through \
         `NbdServer`, qemu-nbd a raw file in /dev/shm (`--cache=writeback --aio=threads`, its \
         defaults). Times are qemu-img bench's own (after the open, so process start-up and the \
         handshake are not counted); the rates are the median of {} rounds, the two servers \
         alternating which runs first, and the ratio is the median of each round's ratio. CPU is \
         the server process's user and system time over all rounds per request (10 ms ticks; \
         ours includes this benchmark's idle waiting). \"Random\" is qemu-img bench's step of \
         {random} blocks, coprime to the disk's blocks, so every offset is visited once per lap \
         in a scattered order. Writes write the byte {WRITE_PATTERN}; no flush is sent during a \
         run. qemu's NBD client keeps at most 16 requests on the wire, so depth 32 is 16 at the \
         server.",
        SIZE >> 20,
        opts.rounds
    ));
    Ok(Part { tables: vec![table], goals })
}
