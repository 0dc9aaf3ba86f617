//! The `nbd` target: what an NBD client sends, through `geom_host::nbd::proto`.
//!
//! The input is a client's byte stream. Each decoder first sees the raw bytes (a peer may
//! send anything anywhere); then the stream is walked as the server walks it: the client's
//! flags, options until one enters transmission (or the client gives up), then request
//! headers, skipping write payloads. Where a decode succeeds, its value re-encodes to the
//! bytes it came from and stays within the server's limits, and the server's answers to it
//! encode without trouble.

use geom_host::nbd::proto::{self, ProtoError};
use geom_host::nbd::server::{MAX_OPTIONS, MAX_OPTION_PAYLOAD, MAX_REQUEST};

/// The harness.
pub fn run(data: &[u8]) {
    decoders(data);
    stream(data);
}

fn decoders(b: &[u8]) {
    if let Some(flags) = b.get(..4) {
        let flags = u32::from_be_bytes(flags.try_into().expect("four bytes"));
        if let Ok(no_zeroes) = proto::check_client_flags(flags) {
            assert!(flags & proto::CLIENT_FIXED_NEWSTYLE != 0 && flags & !proto::CLIENT_KNOWN_FLAGS == 0);
            assert_eq!(no_zeroes, flags & proto::CLIENT_NO_ZEROES != 0);
        }
    }
    match proto::decode_option_header(b) {
        Ok(h) => {
            let head = proto::encode_option(h.option, &[]);
            assert_eq!(head[..12], b[..12]);
            assert_eq!(h.length.to_be_bytes(), b[12..16]);
        }
        Err(e) => assert!(b.len() < proto::OPTION_HEADER_LEN || e == ProtoError::BadMagic),
    }
    info_request(b);
    match proto::decode_request(b) {
        Ok(r) => assert_eq!(proto::encode_request(&r)[..], b[..proto::REQUEST_LEN]),
        Err(e) => assert!(b.len() < proto::REQUEST_LEN || e == ProtoError::BadMagic),
    }
}

/// An INFO or GO payload: a decoded one is exactly its own encoding, within the limits.
fn info_request(payload: &[u8]) -> Option<proto::InfoRequest> {
    let r = proto::decode_info_request(payload).ok()?;
    assert!(r.name.len() <= proto::MAX_NAME_LEN);
    assert!(r.requests.len() <= proto::MAX_INFO_REQUESTS);
    assert_eq!(proto::encode_info_request(&r.name, &r.requests), payload);
    Some(r)
}

/// A cursor over the client's stream.
struct Stream<'a> {
    rest: &'a [u8],
}

impl<'a> Stream<'a> {
    /// Exactly `n` bytes, or `None` when the client stopped sending (the server's
    /// `read_exact` fails).
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }
}

fn stream(data: &[u8]) {
    let mut s = Stream { rest: data };
    let Some(flags) = s.take(4) else { return };
    let Ok(no_zeroes) = proto::check_client_flags(u32::from_be_bytes(flags.try_into().expect("four bytes"))) else {
        return;
    };
    if !handshake(&mut s, no_zeroes) {
        return;
    }
    transmission(&mut s);
}

/// The options; `true` once the client enters transmission.
fn handshake(s: &mut Stream<'_>, no_zeroes: bool) -> bool {
    // What the server would say about its one export.
    let (size, tflags) = (64u64 << 20, proto::TFLAG_HAS_FLAGS | proto::TFLAG_SEND_FLUSH);
    for _ in 0..MAX_OPTIONS {
        let Some(head) = s.take(proto::OPTION_HEADER_LEN) else { return false };
        let Ok(opt) = proto::decode_option_header(head) else { return false };
        if opt.length > MAX_OPTION_PAYLOAD {
            // The server skips it (or, for EXPORT_NAME, which has no error reply, closes).
            if opt.option == proto::OPT_EXPORT_NAME || s.take(opt.length as usize).is_none() {
                return false;
            }
            continue;
        }
        let Some(payload) = s.take(opt.length as usize) else { return false };
        match opt.option {
            proto::OPT_EXPORT_NAME => {
                let reply = proto::encode_export_name_reply(size, tflags, no_zeroes);
                assert_eq!(reply.len(), if no_zeroes { 10 } else { 134 });
                return std::str::from_utf8(payload).is_ok();
            }
            proto::OPT_ABORT => return false,
            proto::OPT_LIST => {
                let name = "md0";
                let data = proto::encode_server_data(name);
                assert_eq!(data.len(), 4 + name.len());
                let reply = proto::encode_option_reply(opt.option, proto::REP_SERVER, &data);
                assert_eq!(reply.len(), 20 + data.len());
            }
            proto::OPT_INFO | proto::OPT_GO => {
                let Some(req) = info_request(payload) else { continue };
                // The answers the server gives: the export always, then each known type
                // asked for once, each reply starting with its type.
                let export = proto::encode_info_export(size, tflags);
                assert_eq!((export.len(), &export[..2]), (12, &proto::INFO_EXPORT.to_be_bytes()[..]));
                let mut sent = [false; 4];
                for &info in &req.requests {
                    let Some(done) = sent.get_mut(usize::from(info)) else { continue };
                    if std::mem::replace(done, true) {
                        continue;
                    }
                    let data = match info {
                        proto::INFO_NAME | proto::INFO_DESCRIPTION => proto::encode_info_text(info, &req.name),
                        proto::INFO_BLOCK_SIZE => proto::encode_info_block_size(1, 4096, MAX_REQUEST),
                        _ => continue,
                    };
                    assert_eq!(data[..2], info.to_be_bytes());
                    let reply = proto::encode_option_reply(opt.option, proto::REP_INFO, &data);
                    assert_eq!(reply.len(), 20 + data.len());
                }
                if opt.option == proto::OPT_GO {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// Requests until the client disconnects, stops, or loses step.
fn transmission(s: &mut Stream<'_>) {
    loop {
        let Some(head) = s.take(proto::REQUEST_LEN) else { return };
        let Ok(req) = proto::decode_request(head) else { return };
        let reply = proto::encode_simple_reply(proto::nbd_error(i32::from(req.flags)), req.cookie);
        assert_eq!(reply[8..16], req.cookie.to_be_bytes());
        match req.cmd {
            proto::CMD_DISC => return,
            // A write's payload follows its header: one too large to read ends the stream, as
            // does a stream that stops inside it (the guard consumes the payload).
            proto::CMD_WRITE if req.length > MAX_REQUEST => return,
            proto::CMD_WRITE if s.take(req.length as usize).is_none() => return,
            // A command the server does not serve, claiming a payload it cannot size.
            _ if req.flags & proto::CMD_FLAG_PAYLOAD_LEN != 0 && !served(req.cmd) => return,
            _ => {}
        }
    }
}

fn served(cmd: u16) -> bool {
    use proto::*;
    matches!(cmd, CMD_READ | CMD_WRITE | CMD_DISC | CMD_FLUSH | CMD_TRIM | CMD_CACHE | CMD_WRITE_ZEROES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_protocol() {
        for e in -1000..1000 {
            let n = proto::nbd_error(e);
            assert_eq!(n == 0, e == 0);
        }
    }
}
