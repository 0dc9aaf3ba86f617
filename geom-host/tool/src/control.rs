//! The control socket between `geom` commands and `geom serve`: a UNIX stream socket, one
//! command per connection.
//!
//! The client sends `GEOMCTL1`, then a count and that many length-prefixed strings (its
//! working directory, then argv). The server answers with frames, `[tag u8][len u32 LE]
//! [payload]`: stdout text (1), stderr text (2), progress (3: done u64, total u64, what),
//! and last the exit status (4: i32). Progress streams while the command runs, so a copy
//! shows it on the client's terminal.
//!
//! Both sides treat the other's bytes as untrusted: bounded counts and lengths, and a clear
//! error instead of a crash.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::out::{Out, Progress};

const MAGIC: &[u8; 8] = b"GEOMCTL1";
/// At most this many strings in a request (cwd + argv).
const MAX_WORDS: u32 = 4096;
/// At most this many bytes in one string or frame.
const MAX_LEN: u32 = 16 << 20;

const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const PROGRESS: u8 = 3;
const EXIT: u8 = 4;

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_bytes(r: &mut impl Read, len: u32) -> io::Result<Vec<u8>> {
    if len > MAX_LEN {
        return Err(bad("control message too long"));
    }
    let mut v = vec![0; len as usize];
    r.read_exact(&mut v)?;
    Ok(v)
}

/// Send a command: `cwd` and `argv`.
pub fn write_request(w: &mut impl Write, cwd: &Path, argv: &[String]) -> io::Result<()> {
    let mut msg = MAGIC.to_vec();
    msg.extend((argv.len() as u32 + 1).to_le_bytes());
    let cwd = cwd.as_os_str().as_encoded_bytes();
    for word in std::iter::once(cwd).chain(argv.iter().map(|a| a.as_bytes())) {
        msg.extend((word.len() as u32).to_le_bytes());
        msg.extend(word);
    }
    w.write_all(&msg)
}

/// Read a command: the client's working directory and argv.
pub fn read_request(r: &mut impl Read) -> io::Result<(PathBuf, Vec<String>)> {
    let mut magic = [0; 8];
    r.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(bad("not a geom control request"));
    }
    let n = read_u32(r)?;
    if n == 0 || n > MAX_WORDS {
        return Err(bad("bad word count"));
    }
    let mut words = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let len = read_u32(r)?;
        let b = read_bytes(r, len)?;
        words.push(String::from_utf8(b).map_err(|_| bad("argument is not UTF-8"))?);
    }
    let cwd = PathBuf::from(words.remove(0));
    Ok((cwd, words))
}

/// The server's end of one command: output goes back as frames as it is produced.
pub struct Remote<'a> {
    stream: &'a UnixStream,
    /// Set when the client went away; the command still finishes, its output is dropped.
    gone: bool,
}

impl<'a> Remote<'a> {
    /// Frames onto `stream`.
    pub fn new(stream: &'a UnixStream) -> Self {
        Remote { stream, gone: false }
    }

    fn frame(&mut self, tag: u8, payload: &[u8]) {
        if self.gone {
            return;
        }
        let mut f = Vec::with_capacity(5 + payload.len());
        f.push(tag);
        f.extend((payload.len() as u32).to_le_bytes());
        f.extend(payload);
        if (&*self.stream).write_all(&f).is_err() {
            self.gone = true;
        }
    }

    /// The last frame: the exit status.
    pub fn exit(mut self, status: i32) {
        self.frame(EXIT, &status.to_le_bytes());
    }
}

impl Out for Remote<'_> {
    fn stdout(&mut self, s: &str) {
        for chunk in s.as_bytes().chunks(1 << 20) {
            self.frame(STDOUT, chunk);
        }
    }

    fn stderr(&mut self, s: &str) {
        for chunk in s.as_bytes().chunks(1 << 20) {
            self.frame(STDERR, chunk);
        }
    }

    fn progress(&mut self, what: &str, done: u64, total: u64) {
        let mut p = done.to_le_bytes().to_vec();
        p.extend(total.to_le_bytes());
        p.extend(what.as_bytes().iter().take(256));
        self.frame(PROGRESS, &p);
    }
}

/// Run `argv` on the server at `socket`, printing its output here; returns the exit
/// status. `Err` if no server answers there.
pub fn call(socket: &Path, cwd: &Path, argv: &[String]) -> io::Result<i32> {
    let mut stream = UnixStream::connect(socket)?;
    write_request(&mut stream, cwd, argv)?;
    let mut progress = Progress::new(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    loop {
        let mut tag = [0; 1];
        if let Err(e) = stream.read_exact(&mut tag) {
            progress.clear();
            return Err(io::Error::new(e.kind(), "the host closed the connection before the command ended"));
        }
        let len = read_u32(&mut stream)?;
        let payload = read_bytes(&mut stream, len)?;
        match tag[0] {
            STDOUT => {
                progress.clear();
                stdout.write_all(&payload)?;
                stdout.flush()?;
            }
            STDERR => {
                progress.clear();
                stderr.write_all(&payload)?;
            }
            PROGRESS if payload.len() >= 16 => {
                let done = u64::from_le_bytes(payload[..8].try_into().unwrap_or_default());
                let total = u64::from_le_bytes(payload[8..16].try_into().unwrap_or_default());
                progress.show(&String::from_utf8_lossy(&payload[16..]), done, total);
            }
            EXIT if payload.len() == 4 => {
                progress.clear();
                return Ok(i32::from_le_bytes(payload[..4].try_into().unwrap_or_default()));
            }
            _ => return Err(bad("unexpected frame from the host")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reads_back_and_garbage_is_refused() {
        let mut buf = Vec::new();
        let argv = vec!["stripe".to_owned(), "label".to_owned(), "st0".to_owned()];
        write_request(&mut buf, Path::new("/tmp"), &argv).unwrap();
        let (cwd, got) = read_request(&mut &buf[..]).unwrap();
        assert_eq!((cwd, got), (PathBuf::from("/tmp"), argv));
        assert!(read_request(&mut &b"GEOMCTL0\x01\0\0\0"[..]).is_err(), "bad magic");
        assert!(read_request(&mut &b"GEOMCTL1\xff\xff\xff\xff"[..]).is_err(), "huge count");
        assert!(read_request(&mut &b"GEOMCTL1\x01\0\0\0\xff\xff\xff\x7f"[..]).is_err(), "huge length");
        assert!(read_request(&mut &buf[..buf.len() - 1]).is_err(), "truncated");
    }
}
