//! The NBD wire format, with no I/O: constants, decoders for what a client sends, encoders for
//! what the server answers. Every decoder takes untrusted bytes and returns a [`ProtoError`]
//! rather than panicking, so the whole module can be fed random input.
//!
//! Only the fixed-newstyle handshake and simple replies are covered; the server negotiates
//! nothing else (no structured replies, no extended headers, no TLS).

use geom_core::sys::errno;

/// First word of the server's greeting: "NBDMAGIC" in ASCII.
pub const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
/// Second word of a newstyle greeting, and the prefix of every option: "IHAVEOPT".
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// Prefix of every option reply.
pub const OPT_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// Prefix of every transmission request.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Prefix of every simple reply.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;

/// Server handshake flag: the server speaks the fixed newstyle handshake.
pub const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
/// Server handshake flag: the client may ask to skip the 124 zero bytes after EXPORT_NAME.
pub const FLAG_NO_ZEROES: u16 = 1 << 1;
/// Client flag: the client speaks the fixed newstyle handshake.
pub const CLIENT_FIXED_NEWSTYLE: u32 = 1 << 0;
/// Client flag: leave out the 124 zero bytes after the EXPORT_NAME reply.
pub const CLIENT_NO_ZEROES: u32 = 1 << 1;
/// Every client flag this server understands; a client setting another is refused.
pub const CLIENT_KNOWN_FLAGS: u32 = CLIENT_FIXED_NEWSTYLE | CLIENT_NO_ZEROES;

/// Option: choose an export and enter transmission (the old way, no error path).
pub const OPT_EXPORT_NAME: u32 = 1;
/// Option: the client gives up.
pub const OPT_ABORT: u32 = 2;
/// Option: list the exports.
pub const OPT_LIST: u32 = 3;
/// Option: upgrade to TLS.
pub const OPT_STARTTLS: u32 = 5;
/// Option: describe an export.
pub const OPT_INFO: u32 = 6;
/// Option: describe an export and enter transmission.
pub const OPT_GO: u32 = 7;
/// Option: ask for structured replies.
pub const OPT_STRUCTURED_REPLY: u32 = 8;
/// Option: list metadata contexts.
pub const OPT_LIST_META_CONTEXT: u32 = 9;
/// Option: select metadata contexts.
pub const OPT_SET_META_CONTEXT: u32 = 10;

/// Option reply: the option is done.
pub const REP_ACK: u32 = 1;
/// Option reply: one export of a LIST.
pub const REP_SERVER: u32 = 2;
/// Option reply: one piece of information for INFO or GO.
pub const REP_INFO: u32 = 3;
/// Bit set in every error reply type.
pub const REP_FLAG_ERROR: u32 = 1 << 31;
/// Error reply: option not supported.
pub const REP_ERR_UNSUP: u32 = REP_FLAG_ERROR | 1;
/// Error reply: refused by policy.
pub const REP_ERR_POLICY: u32 = REP_FLAG_ERROR | 2;
/// Error reply: the option's payload is malformed.
pub const REP_ERR_INVALID: u32 = REP_FLAG_ERROR | 3;
/// Error reply: not possible on this platform.
pub const REP_ERR_PLATFORM: u32 = REP_FLAG_ERROR | 4;
/// Error reply: TLS is required first.
pub const REP_ERR_TLS_REQD: u32 = REP_FLAG_ERROR | 5;
/// Error reply: no such export.
pub const REP_ERR_UNKNOWN: u32 = REP_FLAG_ERROR | 6;
/// Error reply: the server is shutting down.
pub const REP_ERR_SHUTDOWN: u32 = REP_FLAG_ERROR | 7;
/// Error reply: the client must ask for block sizes.
pub const REP_ERR_BLOCK_SIZE_REQD: u32 = REP_FLAG_ERROR | 8;
/// Error reply: the option's payload is too large.
pub const REP_ERR_TOO_BIG: u32 = REP_FLAG_ERROR | 9;

/// Information: export size and transmission flags (always sent for INFO and GO).
pub const INFO_EXPORT: u16 = 0;
/// Information: the export's name.
pub const INFO_NAME: u16 = 1;
/// Information: a human-readable description.
pub const INFO_DESCRIPTION: u16 = 2;
/// Information: minimum, preferred and maximum block sizes.
pub const INFO_BLOCK_SIZE: u16 = 3;

/// Transmission flag: the other flags are meaningful.
pub const TFLAG_HAS_FLAGS: u16 = 1 << 0;
/// Transmission flag: the export is read-only.
pub const TFLAG_READ_ONLY: u16 = 1 << 1;
/// Transmission flag: FLUSH is supported.
pub const TFLAG_SEND_FLUSH: u16 = 1 << 2;
/// Transmission flag: the FUA command flag is supported.
pub const TFLAG_SEND_FUA: u16 = 1 << 3;
/// Transmission flag: the medium is rotational.
pub const TFLAG_ROTATIONAL: u16 = 1 << 4;
/// Transmission flag: TRIM is supported.
pub const TFLAG_SEND_TRIM: u16 = 1 << 5;
/// Transmission flag: WRITE_ZEROES is supported.
pub const TFLAG_SEND_WRITE_ZEROES: u16 = 1 << 6;
/// Transmission flag: the DF command flag is supported.
pub const TFLAG_SEND_DF: u16 = 1 << 7;
/// Transmission flag: several connections to the export see one consistent medium.
pub const TFLAG_CAN_MULTI_CONN: u16 = 1 << 8;
/// Transmission flag: RESIZE is supported.
pub const TFLAG_SEND_RESIZE: u16 = 1 << 9;
/// Transmission flag: CACHE is supported.
pub const TFLAG_SEND_CACHE: u16 = 1 << 10;
/// Transmission flag: the FAST_ZERO command flag is supported.
pub const TFLAG_SEND_FAST_ZERO: u16 = 1 << 11;

/// Command: read.
pub const CMD_READ: u16 = 0;
/// Command: write (the only command carrying a payload here).
pub const CMD_WRITE: u16 = 1;
/// Command: disconnect after the requests in flight.
pub const CMD_DISC: u16 = 2;
/// Command: flush.
pub const CMD_FLUSH: u16 = 3;
/// Command: discard a range.
pub const CMD_TRIM: u16 = 4;
/// Command: prefetch a range.
pub const CMD_CACHE: u16 = 5;
/// Command: write zeroes over a range.
pub const CMD_WRITE_ZEROES: u16 = 6;
/// Command: allocation status (needs structured replies).
pub const CMD_BLOCK_STATUS: u16 = 7;

/// Command flag: force unit access (durable before the reply).
pub const CMD_FLAG_FUA: u16 = 1 << 0;
/// Command flag: WRITE_ZEROES must not punch holes.
pub const CMD_FLAG_NO_HOLE: u16 = 1 << 1;
/// Command flag: do not fragment a structured read reply.
pub const CMD_FLAG_DF: u16 = 1 << 2;
/// Command flag: BLOCK_STATUS wants one extent.
pub const CMD_FLAG_REQ_ONE: u16 = 1 << 3;
/// Command flag: WRITE_ZEROES must fail rather than be slow.
pub const CMD_FLAG_FAST_ZERO: u16 = 1 << 4;
/// Command flag: the length field is a payload length (extended headers only).
pub const CMD_FLAG_PAYLOAD_LEN: u16 = 1 << 5;

/// NBD error: operation not permitted.
pub const NBD_EPERM: u32 = 1;
/// NBD error: input/output error.
pub const NBD_EIO: u32 = 5;
/// NBD error: out of memory.
pub const NBD_ENOMEM: u32 = 12;
/// NBD error: invalid argument.
pub const NBD_EINVAL: u32 = 22;
/// NBD error: no space left.
pub const NBD_ENOSPC: u32 = 28;
/// NBD error: value too large.
pub const NBD_EOVERFLOW: u32 = 75;
/// NBD error: not supported.
pub const NBD_ENOTSUP: u32 = 95;
/// NBD error: the server is shutting down.
pub const NBD_ESHUTDOWN: u32 = 108;

/// Size of the server's greeting.
pub const GREETING_LEN: usize = 18;
/// Size of an option header (magic, option, length).
pub const OPTION_HEADER_LEN: usize = 16;
/// Size of a transmission request header.
pub const REQUEST_LEN: usize = 28;
/// Size of a simple reply header.
pub const SIMPLE_REPLY_LEN: usize = 16;
/// Longest export name accepted in INFO or GO (the protocol's string bound).
pub const MAX_NAME_LEN: usize = 4096;
/// Most information requests accepted in one INFO or GO (there are four kinds).
pub const MAX_INFO_REQUESTS: usize = 256;

/// Why bytes from a client do not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoError {
    /// A magic number is wrong: the stream is not (or no longer) NBD.
    BadMagic,
    /// Fewer bytes than the structure needs.
    Truncated,
    /// The lengths inside do not add up, or a string is not UTF-8.
    Invalid,
    /// A name or a list is longer than this server accepts.
    TooLong,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The server's greeting: NBDMAGIC, IHAVEOPT and the handshake flags.
pub fn encode_greeting(flags: u16) -> [u8; GREETING_LEN] {
    let mut b = [0; GREETING_LEN];
    b[0..8].copy_from_slice(&NBDMAGIC.to_be_bytes());
    b[8..16].copy_from_slice(&IHAVEOPT.to_be_bytes());
    b[16..18].copy_from_slice(&flags.to_be_bytes());
    b
}

/// The client's flags, checked: `Ok(no_zeroes)` for a fixed-newstyle client that sets no
/// flag unknown to us, `Err(Invalid)` otherwise (the server then closes).
pub fn check_client_flags(flags: u32) -> Result<bool, ProtoError> {
    if flags & CLIENT_FIXED_NEWSTYLE == 0 || flags & !CLIENT_KNOWN_FLAGS != 0 {
        return Err(ProtoError::Invalid);
    }
    Ok(flags & CLIENT_NO_ZEROES != 0)
}

/// An option's header; `length` payload bytes follow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionHeader {
    /// The option (`OPT_*`).
    pub option: u32,
    /// Its payload length, as the client claims it.
    pub length: u32,
}

/// Decode an option header (the first [`OPTION_HEADER_LEN`] bytes of `b`).
pub fn decode_option_header(b: &[u8]) -> Result<OptionHeader, ProtoError> {
    let (Some(magic), Some(option), Some(length)) = (be64(b, 0), be32(b, 8), be32(b, 12)) else {
        return Err(ProtoError::Truncated);
    };
    if magic != IHAVEOPT {
        return Err(ProtoError::BadMagic);
    }
    Ok(OptionHeader { option, length })
}

/// Encode an option header with its payload (what a client sends; tests and fuzzers use it).
pub fn encode_option(option: u32, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(OPTION_HEADER_LEN + data.len());
    b.extend_from_slice(&IHAVEOPT.to_be_bytes());
    b.extend_from_slice(&option.to_be_bytes());
    b.extend_from_slice(&(data.len() as u32).to_be_bytes());
    b.extend_from_slice(data);
    b
}

/// The payload of INFO and GO: an export name and the information asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InfoRequest {
    /// The export's name (empty: the default export).
    pub name: String,
    /// The `INFO_*` types asked for, in order, as sent (duplicates and unknown types kept).
    pub requests: Vec<u16>,
}

/// Decode an INFO or GO payload: a 32-bit name length, the name, a 16-bit count and that
/// many 16-bit information types. Every length is checked against the payload, which must
/// be used up exactly.
pub fn decode_info_request(payload: &[u8]) -> Result<InfoRequest, ProtoError> {
    let name_len = be32(payload, 0).ok_or(ProtoError::Truncated)? as usize;
    if name_len > MAX_NAME_LEN {
        return Err(ProtoError::TooLong);
    }
    let name_end = 4 + name_len;
    let name = payload.get(4..name_end).ok_or(ProtoError::Invalid)?;
    let name = std::str::from_utf8(name).map_err(|_| ProtoError::Invalid)?.to_owned();
    let count = be16(payload, name_end).ok_or(ProtoError::Invalid)? as usize;
    if count > MAX_INFO_REQUESTS {
        return Err(ProtoError::TooLong);
    }
    let list = payload.get(name_end + 2..).ok_or(ProtoError::Invalid)?;
    if list.len() != count * 2 {
        return Err(ProtoError::Invalid);
    }
    let requests = list.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
    Ok(InfoRequest { name, requests })
}

/// Encode an INFO or GO payload (the client's side of [`decode_info_request`]).
pub fn encode_info_request(name: &str, requests: &[u16]) -> Vec<u8> {
    let mut b = Vec::with_capacity(6 + name.len() + 2 * requests.len());
    b.extend_from_slice(&(name.len() as u32).to_be_bytes());
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(&(requests.len() as u16).to_be_bytes());
    for r in requests {
        b.extend_from_slice(&r.to_be_bytes());
    }
    b
}

/// An option reply: magic, the option it answers, the reply type and its data.
pub fn encode_option_reply(option: u32, reply: u32, data: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(20 + data.len());
    b.extend_from_slice(&OPT_REPLY_MAGIC.to_be_bytes());
    b.extend_from_slice(&option.to_be_bytes());
    b.extend_from_slice(&reply.to_be_bytes());
    b.extend_from_slice(&(data.len() as u32).to_be_bytes());
    b.extend_from_slice(data);
    b
}

/// The data of a `REP_SERVER` reply to LIST: the export's name with its length.
pub fn encode_server_data(name: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + name.len());
    b.extend_from_slice(&(name.len() as u32).to_be_bytes());
    b.extend_from_slice(name.as_bytes());
    b
}

/// The data of an `INFO_EXPORT` reply: size and transmission flags.
pub fn encode_info_export(size: u64, flags: u16) -> Vec<u8> {
    let mut b = Vec::with_capacity(12);
    b.extend_from_slice(&INFO_EXPORT.to_be_bytes());
    b.extend_from_slice(&size.to_be_bytes());
    b.extend_from_slice(&flags.to_be_bytes());
    b
}

/// The data of an `INFO_NAME` or `INFO_DESCRIPTION` reply.
pub fn encode_info_text(info: u16, text: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(2 + text.len());
    b.extend_from_slice(&info.to_be_bytes());
    b.extend_from_slice(text.as_bytes());
    b
}

/// The data of an `INFO_BLOCK_SIZE` reply.
pub fn encode_info_block_size(min: u32, preferred: u32, max: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(14);
    b.extend_from_slice(&INFO_BLOCK_SIZE.to_be_bytes());
    for v in [min, preferred, max] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b
}

/// The answer to EXPORT_NAME: size, transmission flags, and 124 zero bytes unless the
/// client asked to leave them out.
pub fn encode_export_name_reply(size: u64, flags: u16, no_zeroes: bool) -> Vec<u8> {
    let mut b = Vec::with_capacity(134);
    b.extend_from_slice(&size.to_be_bytes());
    b.extend_from_slice(&flags.to_be_bytes());
    if !no_zeroes {
        b.resize(b.len() + 124, 0);
    }
    b
}

/// A transmission request header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Command flags (`CMD_FLAG_*`).
    pub flags: u16,
    /// The command (`CMD_*`).
    pub cmd: u16,
    /// The client's tag, echoed in the reply.
    pub cookie: u64,
    /// Byte offset.
    pub offset: u64,
    /// Byte length (for WRITE, also the payload length that follows).
    pub length: u32,
}

/// Decode a request header (the first [`REQUEST_LEN`] bytes of `b`).
pub fn decode_request(b: &[u8]) -> Result<Request, ProtoError> {
    let h: &[u8; REQUEST_LEN] = b.get(..REQUEST_LEN).and_then(|h| h.try_into().ok()).ok_or(ProtoError::Truncated)?;
    if u32::from_be_bytes([h[0], h[1], h[2], h[3]]) != REQUEST_MAGIC {
        return Err(ProtoError::BadMagic);
    }
    let mut cookie = [0; 8];
    cookie.copy_from_slice(&h[8..16]);
    let mut offset = [0; 8];
    offset.copy_from_slice(&h[16..24]);
    Ok(Request {
        flags: u16::from_be_bytes([h[4], h[5]]),
        cmd: u16::from_be_bytes([h[6], h[7]]),
        cookie: u64::from_be_bytes(cookie),
        offset: u64::from_be_bytes(offset),
        length: u32::from_be_bytes([h[24], h[25], h[26], h[27]]),
    })
}

/// Encode a request header (the client's side of [`decode_request`]).
pub fn encode_request(r: &Request) -> [u8; REQUEST_LEN] {
    let mut b = [0; REQUEST_LEN];
    b[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
    b[4..6].copy_from_slice(&r.flags.to_be_bytes());
    b[6..8].copy_from_slice(&r.cmd.to_be_bytes());
    b[8..16].copy_from_slice(&r.cookie.to_be_bytes());
    b[16..24].copy_from_slice(&r.offset.to_be_bytes());
    b[24..28].copy_from_slice(&r.length.to_be_bytes());
    b
}

/// A simple reply header; for a successful READ the data follows it.
pub fn encode_simple_reply(error: u32, cookie: u64) -> [u8; SIMPLE_REPLY_LEN] {
    let mut b = [0; SIMPLE_REPLY_LEN];
    b[0..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    b[4..8].copy_from_slice(&error.to_be_bytes());
    b[8..16].copy_from_slice(&cookie.to_be_bytes());
    b
}

/// A FreeBSD errno as the NBD error a client understands (the protocol's numbers are
/// Linux's); 0 stays 0 and anything without a counterpart becomes `EIO`.
pub fn nbd_error(e: i32) -> u32 {
    match e {
        0 => 0,
        errno::EPERM => NBD_EPERM,
        errno::EIO => NBD_EIO,
        errno::ENOMEM => NBD_ENOMEM,
        errno::EINVAL => NBD_EINVAL,
        errno::ENOSPC => NBD_ENOSPC,
        errno::EOVERFLOW => NBD_EOVERFLOW,
        errno::EOPNOTSUPP => NBD_ENOTSUP,
        ESHUTDOWN => NBD_ESHUTDOWN,
        _ => NBD_EIO,
    }
}

/// FreeBSD's `ESHUTDOWN` (not among `geom_core`'s errno values).
pub const ESHUTDOWN: i32 = 58;
