//! `geom copy [-b BLOCKSIZE] SOURCE DEST`: copy a provider into a file, a file onto a
//! provider, or a provider onto another, through the topology (so a copy of `stripe/st0`
//! goes through the stripe, and a copy onto it is striped), with progress on a terminal.
//! Each side is a provider if the host has one by that name, a file otherwise.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use geom_core::sys::errno::strerror;
use geom_host::command::expand_number;
use geom_host::Handle;

use crate::args::getopt;
use crate::host::{CmdResult, Host};
use crate::out::Out;

/// One end of a copy.
enum End {
    Provider(Handle),
    File(File),
}

impl End {
    fn read(&self, off: u64, len: usize) -> Result<Vec<u8>, String> {
        match self {
            End::Provider(h) => h.read(off as i64, len).map_err(|e| format!("{}: {}", h.name(), strerror(e))),
            End::File(f) => {
                let mut buf = vec![0; len];
                f.read_exact_at(&mut buf, off).map_err(|e| e.to_string())?;
                Ok(buf)
            }
        }
    }

    fn write(&self, off: u64, data: &[u8]) -> Result<(), String> {
        match self {
            End::Provider(h) => {
                h.write(off as i64, data).map(drop).map_err(|e| format!("{}: {}", h.name(), strerror(e)))
            }
            End::File(f) => f.write_all_at(data, off).map_err(|e| e.to_string()),
        }
    }

    /// Close; a destination is flushed first (`BIO_FLUSH`, or fdatasync for a file).
    fn finish(self, written: bool) -> Result<(), String> {
        match self {
            End::Provider(h) => {
                let name = h.name().to_owned();
                if written {
                    h.flush().map_err(|e| format!("{name}: {}", strerror(e)))?;
                }
                h.close().map_err(|e| format!("{name}: {}", strerror(e)))
            }
            End::File(f) if written => f.sync_data().map_err(|e| e.to_string()),
            End::File(_) => Ok(()),
        }
    }
}

/// Run `geom copy ...`.
pub fn run(host: &Host, cwd: &Path, argv: &[String], out: &mut dyn Out) -> CmdResult {
    let p = getopt(argv, "b:")?;
    let [src, dst] = p.args.as_slice() else { return Err("usage: geom copy [-b BLOCKSIZE] SOURCE DEST".into()) };
    let block = match p.value('b') {
        Some(b) => expand_number(b)
            .filter(|n| *n > 0 && *n <= 1 << 30)
            .ok_or_else(|| format!("Invalid block size: {b}."))? as u64,
        None => geom_core::maxphys(),
    };
    let provider = |name: &str| name.strip_prefix("/dev/").unwrap_or(name).to_owned();
    let (from, total, src_sector) = match host.rt.provider(&provider(src)) {
        Some(pi) => {
            let h =
                host.rt.open(&pi.name, 1, 0, 0).map_err(|e| format!("Cannot open {}: {}.", pi.name, strerror(e)))?;
            (End::Provider(h), pi.mediasize as u64, pi.sectorsize as u64)
        }
        None => {
            let f = File::open(cwd.join(src)).map_err(|e| format!("{src}: {e}"))?;
            let len = f.metadata().map_err(|e| format!("{src}: {e}"))?.len();
            (End::File(f), len, 1)
        }
    };
    let (to, dst_sector) = match host.rt.provider(&provider(dst)) {
        Some(pi) => {
            if (pi.mediasize as u64) < total {
                return Err(format!("{dst} ({} bytes) is smaller than {src} ({total} bytes).", pi.mediasize));
            }
            if total % pi.sectorsize as u64 != 0 {
                return Err(format!("{src} is not a whole number of {dst}'s {}-byte sectors.", pi.sectorsize));
            }
            let h =
                host.rt.open(&pi.name, 0, 1, 0).map_err(|e| format!("Cannot open {}: {}.", pi.name, strerror(e)))?;
            (End::Provider(h), pi.sectorsize as u64)
        }
        None => {
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(cwd.join(dst))
                .map_err(|e| format!("{dst}: {e}"))?;
            f.set_len(total).map_err(|e| format!("{dst}: {e}"))?;
            (End::File(f), 1)
        }
    };
    // Whole sectors of both sides per request.
    let unit = src_sector.max(dst_sector);
    let block = (block / unit).max(1) * unit;
    let what = format!("copy {src} -> {dst}");
    let mut done = 0u64;
    while done < total {
        let n = block.min(total - done) as usize;
        let data = from.read(done, n)?;
        if data.len() != n {
            return Err(format!("{src}: short read at {done}."));
        }
        to.write(done, &data)?;
        done += n as u64;
        out.progress(&what, done, total);
    }
    from.finish(false)?;
    to.finish(true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::host::{Host, Mode};
    use crate::out::Captured;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn a_copy_moves_every_byte_and_reports_its_progress() {
        let dir = std::env::temp_dir().join(format!("geom-copy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let host = Host::new(Mode::Server, dir.join("unused.sock"));
        let mut out = Captured::default();
        for cmd in ["disk attach -t malloc -s 4m", "disk attach -t malloc -s 4m"] {
            assert_eq!(host.execute(&dir, &words(cmd), &mut out), 0, "{out:?}");
        }
        let pattern: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.join("in.img"), &pattern).unwrap();
        // file -> md0 -> md1 -> file, 1 MiB at a time.
        for cmd in ["copy -b 1m in.img md0", "copy md0 md1", "copy -b 1m md1 out.img"] {
            assert_eq!(host.execute(&dir, &words(cmd), &mut out), 0, "{cmd}: {out:?}");
        }
        assert_eq!(std::fs::read(dir.join("out.img")).unwrap(), pattern);
        let steps: Vec<u64> = out.progress.iter().filter(|p| p.0 == "copy md1 -> out.img").map(|p| p.1).collect();
        assert_eq!(steps, [1 << 20, 2 << 20, 3 << 20, 4 << 20]);
        assert!(out.progress.iter().all(|p| p.2 == 4 << 20));
        // A destination too small, and a missing source, are refused with a reason.
        std::fs::write(dir.join("big.img"), vec![0u8; 5 << 20]).unwrap();
        assert_eq!(host.execute(&dir, &words("copy big.img md0"), &mut out), 1);
        assert!(
            out.stderr.contains("geom: md0 (4194304 bytes) is smaller than big.img (5242880 bytes)."),
            "{}",
            out.stderr
        );
        assert_eq!(host.execute(&dir, &words("copy nothing.img md0"), &mut out), 1);
        assert!(host.shutdown().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
