//! The main job's userland half: start a runtime on its embedded defaults, build a stack of
//! pass-through geoms over a memory disk, move data through it from several threads, check
//! every byte on the disk, and print the topology.
//!
//! `geom-demo [--size MIB] [--threads N] [--xml]`

use std::sync::Arc;
use std::time::Instant;

use geom_host::disk::MdConfig;
use geom_host::{CtlRequest, Runtime, RuntimeConfig};

struct Options {
    size_mib: u64,
    threads: u64,
    xml: bool,
}

fn parse() -> Result<Options, String> {
    let mut o = Options { size_mib: 64, threads: 8, xml: false };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> Result<u64, String> {
            args.next().and_then(|v| v.parse().ok()).ok_or_else(|| format!("{what} needs a number"))
        };
        match a.as_str() {
            "--size" => o.size_mib = num("--size")?,
            "--threads" => o.threads = num("--threads")?,
            "--xml" => o.xml = true,
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    if o.threads == 0 || o.size_mib == 0 || o.size_mib % o.threads != 0 {
        return Err("--size must be a positive multiple of --threads".into());
    }
    Ok(o)
}

/// splitmix64, so the demo needs no dependency and is the same on every run.
fn fill(seed: &mut u64, buf: &mut [u8]) {
    for chunk in buf.chunks_mut(8) {
        *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes()[..chunk.len()]);
    }
}

fn run(o: &Options) -> Result<(), String> {
    let rt = Runtime::new(RuntimeConfig { name: "demo".into(), echo_console: false, ..Default::default() });
    let size = o.size_mib << 20;
    let md = rt.md_create(MdConfig::malloc(size)).map_err(|e| format!("md_create: errno {e}"))?;
    rt.load_raw_pass().map_err(|e| format!("load PASS: errno {e}"))?;
    for p in ["md0", "md0.pass"] {
        let r = rt.ctl(&CtlRequest::new("PASS", "create").arg(p));
        if r.error != 0 {
            return Err(format!("pass create {p}: {}", r.message.unwrap_or_default()));
        }
    }
    let top = "md0.pass.pass";
    let h = Arc::new(rt.open(top, 1, 1, 0).map_err(|e| format!("open {top}: errno {e}"))?);
    println!("Writing {} MiB through {top} from {} threads...", o.size_mib, o.threads);
    let t0 = Instant::now();
    let region = size / o.threads;
    let workers: Vec<_> = (0..o.threads)
        .map(|t| {
            let h = Arc::clone(&h);
            std::thread::spawn(move || -> Result<(), String> {
                let mut seed = t;
                let mut buf = vec![0u8; 128 * 1024];
                let mut off = t * region;
                while off < (t + 1) * region {
                    let n = (buf.len() as u64).min((t + 1) * region - off) as usize;
                    fill(&mut seed, &mut buf[..n]);
                    h.write(off as i64, &buf[..n]).map_err(|e| format!("write at {off}: errno {e}"))?;
                    let back = h.read(off as i64, n).map_err(|e| format!("read at {off}: errno {e}"))?;
                    if back != buf[..n] {
                        return Err(format!("read back differs at {off}"));
                    }
                    off += n as u64;
                }
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join().map_err(|_| "a writer panicked".to_string())??;
    }
    let secs = t0.elapsed().as_secs_f64();
    // Check every byte on the disk itself against what each thread wrote.
    for t in 0..o.threads {
        let mut seed = t;
        let mut expect = vec![0u8; 128 * 1024];
        let mut off = t * region;
        while off < (t + 1) * region {
            let n = (expect.len() as u64).min((t + 1) * region - off) as usize;
            fill(&mut seed, &mut expect[..n]);
            if md.read_backing(off, n) != expect[..n] {
                return Err(format!("md0 holds the wrong bytes at {off}"));
            }
            off += n as u64;
        }
    }
    println!(
        "Verified {} MiB on md0 byte for byte ({:.0} MiB/s written and read back).",
        o.size_mib,
        2.0 * o.size_mib as f64 / secs
    );
    println!("\nTopology:\n{}", rt.topology_text());
    if o.xml {
        println!("{}", rt.confxml());
    }
    Arc::try_unwrap(h).ok().map(|h| h.close());
    let violations = rt.shutdown();
    if !violations.is_empty() {
        return Err(format!("{} invariant violations", violations.len()));
    }
    println!("Runtime shut down cleanly: no bio leaked, no invariant broken.");
    Ok(())
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("geom-demo: {e}");
            }
            eprintln!("usage: geom-demo [--size MIB] [--threads N] [--xml]");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&o) {
        eprintln!("geom-demo: {e}");
        std::process::exit(1);
    }
}
