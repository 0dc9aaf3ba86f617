//! geom(8) requests: the host-side request builder ([`CtlRequest`] → [`CtlReply`]) and the
//! kernel side of `sys/geom/geom_ctl.c` that class `ctlreq` methods call (`gctl_get_param`,
//! `gctl_error`, `gctl_set_param`, ...).
//!
//! A [`CtlRequest`] is what geom(8) and libgeom build: an ASCII `"class"` and `"verb"`, the
//! options as named parameters, positional arguments as `"nargs"` and `"arg0"`, `"arg1"`, ...,
//! and a writable `"output"` buffer. `CtlRequest::to_raw` turns it into the `struct gctl_req`
//! the kernel's `gctl_copyin` would produce (after the same validation), the runtime runs the
//! class's `ctlreq` on it, and `RawRequest::finish` reads back what the ioctl would return:
//! the error number, the message copied into libgeom's error buffer, and the output text.
//!
//! Error rules, as in FreeBSD 14+: the messages of a request accumulate in `req->serror`
//! (`gctl_msg`, each later one on a new line indented by a tab) until they are posted
//! (`gctl_post_messages`, or `gctl_error`, which adds its message and posts). Once posted,
//! further messages are discarded; `gctl_error` then returns the request's error, setting it
//! to `EEXIST` if it was still 0. `gctl_error` sets the error to `EINVAL` unless one was
//! already set (by `gctl_msg`) and returns it.
#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::{CStr, CString};
use std::ptr;

use geom_core::sys::{
    self, c_char, c_int, c_void, errno, g_class, g_geom, g_provider, gctl_req, gctl_req_arg, ListHead,
    GCTL_PARAM_ASCII, GCTL_PARAM_CHANGED, GCTL_PARAM_NAMEKERNEL, GCTL_PARAM_RD, GCTL_PARAM_RW, GCTL_PARAM_VALUEKERNEL,
    GCTL_PARAM_WR, GCTL_VERSION, GEOM_CTL_ARG_MAX,
};

use crate::sbuf::{self as sb, Sbuf};

/// `SPECNAMELEN`: longest parameter name the kernel accepts, counting its NUL.
const SPECNAMELEN: usize = 255;
/// libgeom's error buffer (`BUFSIZ` bytes, of which `lerror = BUFSIZ - 1` may be written).
const ERROR_BUFSIZE: usize = 1024;

/// The value of one request parameter, encoded as geom(8) encodes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtlValue {
    /// A string: sent NUL-terminated with `GCTL_PARAM_ASCII` (geom(8)'s `G_TYPE_STRING`).
    Ascii(String),
    /// A C `int`, 4 bytes (`"nargs"`, geom(8)'s `G_TYPE_BOOL`).
    Int(i32),
    /// A `uint32_t`, 4 bytes (`"version"`).
    Uint32(u32),
    /// An `intmax_t`, 8 bytes (geom(8)'s `G_TYPE_NUMBER`).
    Intmax(i64),
    /// Raw bytes.
    Bytes(Vec<u8>),
}

impl CtlValue {
    /// The bytes the kernel sees, and the `GCTL_PARAM_ASCII` flag if it is a string.
    fn encode(&self) -> (Vec<u8>, c_int) {
        match self {
            CtlValue::Ascii(s) => {
                let mut v = Vec::with_capacity(s.len() + 1);
                v.extend_from_slice(s.as_bytes());
                v.push(0);
                (v, GCTL_PARAM_ASCII)
            }
            CtlValue::Int(i) => (i.to_ne_bytes().to_vec(), 0),
            CtlValue::Uint32(u) => (u.to_ne_bytes().to_vec(), 0),
            CtlValue::Intmax(i) => (i.to_ne_bytes().to_vec(), 0),
            CtlValue::Bytes(b) => (b.clone(), 0),
        }
    }
}

/// What a parameter is: a value the class reads, or a zeroed buffer it may write.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ParamKind {
    Read(CtlValue),
    /// `gctl_rw_param(req, "output", cap, buf)`: readable and writable, initially zero.
    Output(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Param {
    name: String,
    kind: ParamKind,
}

/// A geom(8) request, built on the host: `geom <class> <verb> [options] [args]`.
///
/// ```
/// use geom_host::{CtlRequest, CtlValue};
/// let req = CtlRequest::new("STRIPE", "create")
///     .param("version", CtlValue::Uint32(3))
///     .param("stripesize", CtlValue::Intmax(65536))
///     .arg("st0")
///     .arg("md0")
///     .arg("md1")
///     .output(4096);
/// assert_eq!(req.class(), "STRIPE");
/// assert_eq!(req.get("nargs"), Some(&CtlValue::Int(3)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtlRequest {
    params: Vec<Param>,
}

impl CtlRequest {
    /// A request for `verb` of `class`: the `"class"` and `"verb"` string parameters and
    /// `"nargs"` = 0, as geom(8) sends for every command. geom(8) sends the class name
    /// upper-cased (`geom stripe ...` → `"STRIPE"`); pass it as the class registered it.
    pub fn new(class: &str, verb: &str) -> Self {
        CtlRequest { params: Vec::new() }
            .param("class", CtlValue::Ascii(class.to_owned()))
            .param("verb", CtlValue::Ascii(verb.to_owned()))
            .param("nargs", CtlValue::Int(0))
    }

    fn set(mut self, name: &str, kind: ParamKind) -> Self {
        match self.params.iter_mut().find(|p| p.name == name) {
            Some(p) => p.kind = kind,
            None => self.params.push(Param { name: name.to_owned(), kind }),
        }
        self
    }

    /// Add a readable parameter (an option). Setting a name twice replaces the value.
    pub fn param(self, name: &str, v: CtlValue) -> Self {
        self.set(name, ParamKind::Read(v))
    }

    /// Add a positional argument: `"arg<n>"` (a string) and `"nargs"` (an `int`) = n + 1.
    pub fn arg(self, s: &str) -> Self {
        let n = match self.get("nargs") {
            Some(CtlValue::Int(n)) if *n >= 0 => *n,
            _ => 0,
        };
        self.param("nargs", CtlValue::Int(n.saturating_add(1))).param(&format!("arg{n}"), CtlValue::Ascii(s.to_owned()))
    }

    /// Add the `"output"` buffer of `cap` bytes that the class may write its answer into
    /// (geom(8) uses 4096). Like libgeom's `gctl_rw_param`, it is readable and writable, not
    /// flagged ASCII, and starts zeroed.
    pub fn output(self, cap: usize) -> Self {
        self.set("output", ParamKind::Output(cap))
    }

    /// The value of a readable parameter.
    pub fn get(&self, name: &str) -> Option<&CtlValue> {
        self.params.iter().find(|p| p.name == name).and_then(|p| match &p.kind {
            ParamKind::Read(v) => Some(v),
            ParamKind::Output(_) => None,
        })
    }

    fn ascii(&self, name: &str) -> &str {
        match self.get(name) {
            Some(CtlValue::Ascii(s)) => s,
            _ => "",
        }
    }

    /// The `"class"` parameter.
    pub fn class(&self) -> &str {
        self.ascii("class")
    }

    /// The `"verb"` parameter.
    pub fn verb(&self) -> &str {
        self.ascii("verb")
    }

    /// The readable parameters as a class library in userland sees them: each name as a C
    /// string and its bytes (a string with its NUL), in the order they were added.
    pub fn user_params(&self) -> Vec<(CString, Vec<u8>)> {
        self.params
            .iter()
            .filter_map(|p| match &p.kind {
                ParamKind::Read(v) => Some((CString::new(p.name.as_str()).ok()?, v.encode().0)),
                ParamKind::Output(_) => None,
            })
            .collect()
    }

    /// Build the kernel's view of the request, validated as `gctl_copyin` validates an ioctl:
    /// at most `GEOM_CTL_ARG_MAX` parameters, names of 1 to `SPECNAMELEN` bytes with their
    /// NUL, values longer than 0 bytes (and no longer than a C `int` can say), strings
    /// NUL-terminated. A rejected request comes back as the reply the ioctl would give
    /// (`EINVAL` and the kernel's message).
    pub(crate) fn to_raw(&self) -> Result<RawRequest, CtlReply> {
        let reject = |msg: String| CtlReply { error: errno::EINVAL, message: Some(msg), output: String::new() };
        if self.params.len() > GEOM_CTL_ARG_MAX as usize {
            return Err(reject("too many arguments".to_owned()));
        }
        let mut bufs = Vec::with_capacity(self.params.len() * 2);
        let mut args = Vec::with_capacity(self.params.len());
        let mut output = None;
        for (i, p) in self.params.iter().enumerate() {
            let nlen = p.name.len() + 1;
            if nlen > SPECNAMELEN {
                return Err(reject(format!("wrong param name length {i}: {nlen}")));
            }
            let mut name = Vec::with_capacity(nlen);
            name.extend_from_slice(p.name.as_bytes());
            name.push(0);
            let (value, flags) = match &p.kind {
                ParamKind::Read(v) => {
                    let (bytes, ascii) = v.encode();
                    (bytes, GCTL_PARAM_RD | ascii)
                }
                ParamKind::Output(cap) => {
                    output = Some(i);
                    (vec![0u8; *cap], GCTL_PARAM_RW)
                }
            };
            let Ok(len) = c_int::try_from(value.len()) else {
                // libgeom's int length would have wrapped negative.
                return Err(reject("negative param length".to_owned()));
            };
            if len <= 0 {
                return Err(reject("negative param length".to_owned()));
            }
            if flags & GCTL_PARAM_ASCII != 0 && value.last() != Some(&0) {
                return Err(reject("unterminated param value".to_owned()));
            }
            let mut name = RawSlice::new(name.into_boxed_slice());
            let mut value = RawSlice::new(value.into_boxed_slice());
            args.push(gctl_req_arg {
                nlen: nlen as u32,
                name: name.as_mut_ptr().cast(),
                offset: 0,
                flag: flags | GCTL_PARAM_NAMEKERNEL | GCTL_PARAM_VALUEKERNEL,
                len,
                value: value.as_mut_ptr().cast(),
                kvalue: value.as_mut_ptr().cast(),
            });
            bufs.push(name);
            bufs.push(value);
        }
        let narg = args.len() as u32;
        let mut args = RawSlice::new(args.into_boxed_slice());
        let mut error_buf = RawSlice::new(vec![0u8; ERROR_BUFSIZE].into_boxed_slice());
        let serror = Sbuf::new();
        let req = Box::into_raw(Box::new(gctl_req {
            version: GCTL_VERSION,
            serial: 0,
            narg,
            arg: args.as_mut_ptr(),
            lerror: (ERROR_BUFSIZE - 1) as u32,
            error: error_buf.as_mut_ptr().cast(),
            reqt: ptr::null_mut(),
            nerror: 0,
            serror: serror.as_ptr(),
        }));
        Ok(RawRequest { req, _args: args, _bufs: bufs, error_buf, serror, output })
    }
}

/// What the geom(8) ioctl returns for a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtlReply {
    /// 0 on success, else the request's FreeBSD errno: `EINVAL` after `gctl_error`, unless an
    /// earlier `gctl_msg` set another.
    pub error: i32,
    /// The posted message(s), as copied into libgeom's 1023-byte error buffer. A message
    /// with `error` 0 is informational (geom(8) prints it and succeeds); one starting with
    /// `"warning: "` is printed but not treated as a failure by geom(8).
    pub message: Option<String>,
    /// Text the class wrote into the `"output"` parameter (up to its first NUL); empty when
    /// the request failed, as the kernel copies parameters back only on success.
    pub output: String,
}

impl CtlReply {
    /// Whether the request succeeded (`error == 0`).
    pub fn is_ok(&self) -> bool {
        self.error == 0
    }
}

/// A heap slice handed to C as a raw pointer: owned here, freed on drop, never moved.
struct RawSlice<T> {
    ptr: *mut T,
    len: usize,
}

impl<T> RawSlice<T> {
    fn new(b: Box<[T]>) -> Self {
        let len = b.len();
        RawSlice { ptr: Box::into_raw(b).cast::<T>(), len }
    }

    fn as_mut_ptr(&mut self) -> *mut T {
        self.ptr
    }
}

impl<T> Drop for RawSlice<T> {
    fn drop(&mut self) {
        // SAFETY: ptr and len came from Box::into_raw of a Box<[T]> of len elements, which is
        // reclaimed exactly once, here.
        drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(self.ptr, self.len)) });
    }
}

/// A `struct gctl_req` as the kernel holds it during the ioctl: the request, its argument
/// array, every name and value buffer, the error buffer and the `serror` sbuf, all owned
/// here at stable addresses.
pub(crate) struct RawRequest {
    req: *mut gctl_req,
    _args: RawSlice<gctl_req_arg>,
    _bufs: Vec<RawSlice<u8>>,
    error_buf: RawSlice<u8>,
    serror: Sbuf,
    output: Option<usize>,
}

// SAFETY: a RawRequest exclusively owns every allocation its pointers reach; none of them is
// tied to the creating thread, so the request may be run on the event thread.
unsafe impl Send for RawRequest {}

impl RawRequest {
    /// The request, for the class's `ctlreq` and the `gctl_*` functions. Valid until `finish`.
    pub(crate) fn as_ptr(&mut self) -> *mut gctl_req {
        self.req
    }

    /// What the ioctl returns: the request's error, the posted message (copied the way the
    /// kernel copies it into libgeom's buffer), and the output text if the request succeeded
    /// and the class wrote the `"output"` parameter.
    pub(crate) fn finish(mut self) -> CtlReply {
        // SAFETY: req is the live request owned by self; the class call that used it is over.
        let req = unsafe { &*self.req };
        let error = req.nerror;
        // g_ctl_ioctl_ctl: a posted (finished) message buffer is copied out, at most lerror
        // bytes; an sbuf in error has length -1, so nothing is copied.
        let mut message = None;
        if self.serror.is_finished() && self.serror.error() == 0 {
            let text = self.serror.as_bytes();
            let lerror = (req.lerror as usize).min(self.error_buf.len);
            let n = text.len().min(lerror);
            // SAFETY: error_buf is an owned buffer of error_buf.len >= n bytes.
            let buf = unsafe { std::slice::from_raw_parts_mut(self.error_buf.as_mut_ptr(), n) };
            buf.copy_from_slice(&text[..n]);
            let buf: &[u8] = buf;
            let shown = buf.iter().position(|&b| b == 0).map_or(buf, |end| &buf[..end]);
            if !shown.is_empty() {
                message = Some(String::from_utf8_lossy(shown).into_owned());
            }
        }
        // gctl_copyout: changed parameters are copied back only when the request succeeded.
        let mut output = String::new();
        if let (0, Some(i)) = (error, self.output) {
            // SAFETY: i indexes the argument array built by to_raw (narg entries).
            let ap = unsafe { &*req.arg.add(i) };
            if ap.flag & GCTL_PARAM_CHANGED != 0 && !ap.kvalue.is_null() && ap.len > 0 {
                // SAFETY: kvalue is the output buffer of len bytes owned by self.
                let bytes = unsafe { std::slice::from_raw_parts(ap.kvalue.cast::<u8>(), ap.len as usize) };
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                output = String::from_utf8_lossy(&bytes[..end]).into_owned();
            }
        }
        CtlReply { error, message, output }
    }
}

impl Drop for RawRequest {
    fn drop(&mut self) {
        // SAFETY: req came from Box::into_raw in to_raw and is reclaimed exactly once, here.
        drop(unsafe { Box::from_raw(self.req) });
    }
}

/// The request's arguments.
///
/// # Safety
/// `req` is NULL or a live request whose `arg` points at `narg` arguments, not otherwise
/// borrowed for `'a`.
unsafe fn args<'a>(req: *mut gctl_req) -> &'a mut [gctl_req_arg] {
    if req.is_null() {
        return &mut [];
    }
    // SAFETY: req is live (caller).
    let (arg, narg) = unsafe { ((*req).arg, (*req).narg as usize) };
    if arg.is_null() || narg == 0 {
        return &mut [];
    }
    // SAFETY: arg points at narg arguments (caller).
    unsafe { std::slice::from_raw_parts_mut(arg, narg) }
}

/// The first argument named `param` whose flags include all of `flags`.
///
/// # Safety
/// As for [`args`]; every argument's name is NULL or NUL-terminated.
unsafe fn find<'a>(req: *mut gctl_req, param: &CStr, flags: c_int) -> Option<&'a mut gctl_req_arg> {
    // SAFETY: forwarded from the caller.
    let args = unsafe { args(req) };
    args.iter_mut().find(|ap| {
        // SAFETY: a non-NULL name is NUL-terminated (caller).
        !ap.name.is_null() && unsafe { CStr::from_ptr(ap.name) } == param && ap.flag & flags == flags
    })
}

/// `param` as a `CStr`, or None for NULL.
///
/// # Safety
/// `p` is NULL or NUL-terminated.
unsafe fn cstr<'a>(p: *const c_char) -> Option<&'a CStr> {
    // SAFETY: p is NUL-terminated when non-NULL (caller).
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) })
}

fn lossy(s: &CStr) -> String {
    s.to_string_lossy().into_owned()
}

/// Record an error message (`gctl_error` after formatting) and return the request's error.
///
/// # Safety
/// `req` is NULL or a live request whose `serror` is NULL or an sbuf.
unsafe fn post_error(req: *mut gctl_req, msg: &[u8]) -> c_int {
    if req.is_null() {
        return errno::EINVAL;
    }
    // SAFETY: req is live (caller); only plain fields are touched.
    let r = unsafe { &mut *req };
    let s = r.serror;
    // SAFETY: s is NULL or an sbuf (caller).
    if unsafe { sb::sbuf_done(s) } != 0 {
        if r.nerror == 0 {
            r.nerror = errno::EEXIST;
        }
        return r.nerror;
    }
    if r.nerror == 0 {
        r.nerror = errno::EINVAL;
    }
    // SAFETY: s is NULL (every call refuses it) or a live sbuf; msg is a valid slice.
    unsafe {
        if sb::sbuf_len(s) > 0 {
            sb::sbuf_bcat(s, b"\n\t".as_ptr().cast(), 2);
        }
        sb::sbuf_bcat(s, msg.as_ptr().cast(), msg.len());
        sb::sbuf_finish(s);
    }
    r.nerror
}

/// The Rust end of `gctl_error(req, fmt, ...)` (csrc/varargs.c): record the formatted message
/// unless messages were already posted, set the request's error to `EINVAL` unless it is
/// set, post the messages, and return the request's error (`EINVAL` for a NULL request).
/// A NULL `msg` (the format failed) records a fixed message instead.
///
/// # Safety
/// `req` is NULL or a live request; `msg` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn geom_host_gctl_error(req: *mut gctl_req, msg: *const c_char) -> c_int {
    // SAFETY: msg is NULL or NUL-terminated (caller).
    let text = match unsafe { cstr(msg) } {
        Some(m) => m.to_bytes(),
        None => b"(gctl_error: message could not be formatted)",
    };
    // SAFETY: forwarded from the caller.
    unsafe { post_error(req, text) }
}

/// The Rust end of `gctl_msg(req, errno, fmt, ...)`: add a message (on a new, tab-indented
/// line after the first) to be posted later by `gctl_post_messages` or `gctl_error`; the
/// first non-zero `error` becomes the request's error. Ignored once messages are posted.
///
/// # Safety
/// `req` is NULL or a live request; `msg` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn geom_host_gctl_msg(req: *mut gctl_req, error: c_int, msg: *const c_char) {
    if req.is_null() {
        return;
    }
    // SAFETY: req is live (caller).
    let r = unsafe { &mut *req };
    let s = r.serror;
    // SAFETY: s is NULL or an sbuf (caller).
    if unsafe { sb::sbuf_done(s) } != 0 {
        return;
    }
    if r.nerror == 0 {
        r.nerror = error;
    }
    // SAFETY: msg is NULL or NUL-terminated (caller).
    let text = match unsafe { cstr(msg) } {
        Some(m) => m.to_bytes(),
        None => b"(gctl_msg: message could not be formatted)",
    };
    // SAFETY: s is NULL (refused) or a live sbuf; text is a valid slice.
    unsafe {
        if sb::sbuf_len(s) > 0 {
            sb::sbuf_bcat(s, b"\n\t".as_ptr().cast(), 2);
        }
        sb::sbuf_bcat(s, text.as_ptr().cast(), text.len());
    }
}

/// `gctl_post_messages(req)`: post the messages collected by `gctl_msg` (they become the
/// reply's message). Does nothing if they were already posted.
///
/// # Safety
/// `req` is NULL or a live request.
#[no_mangle]
pub unsafe extern "C" fn gctl_post_messages(req: *mut gctl_req) {
    if req.is_null() {
        return;
    }
    // SAFETY: req is live (caller).
    let s = unsafe { (*req).serror };
    // SAFETY: s is NULL or an sbuf of the request.
    unsafe {
        if sb::sbuf_done(s) == 0 {
            sb::sbuf_finish(s);
        }
    }
}

/// `gctl_get_param_flags(req, param, flags, len)`: the value of the first parameter named
/// `param` whose flags include all of `flags` (`GCTL_PARAM_*`), or NULL; `*len` (if `len` is
/// not NULL) receives its size.
///
/// # Safety
/// `req` is NULL or a live request; `param` is NULL or NUL-terminated; `len` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn gctl_get_param_flags(
    req: *mut gctl_req,
    param: *const c_char,
    flags: c_int,
    len: *mut c_int,
) -> *mut c_void {
    // SAFETY: param is NULL or NUL-terminated (caller).
    let Some(name) = (unsafe { cstr(param) }) else {
        return ptr::null_mut();
    };
    // SAFETY: req is NULL or live (caller).
    let Some(ap) = (unsafe { find(req, name, flags) }) else {
        return ptr::null_mut();
    };
    if !len.is_null() {
        // SAFETY: len is writable (caller).
        unsafe { *len = ap.len };
    }
    ap.kvalue
}

/// `gctl_get_param(req, param, len)`: a readable parameter's value, or NULL.
///
/// # Safety
/// As for [`gctl_get_param_flags`].
#[no_mangle]
pub unsafe extern "C" fn gctl_get_param(req: *mut gctl_req, param: *const c_char, len: *mut c_int) -> *mut c_void {
    // SAFETY: same contract.
    unsafe { gctl_get_param_flags(req, param, GCTL_PARAM_RD, len) }
}

/// `gctl_get_asciiparam(req, param)`: a readable parameter that ends in a NUL, or NULL (with
/// an error recorded if it exists but is not a string).
///
/// # Safety
/// As for [`gctl_get_param_flags`].
#[no_mangle]
pub unsafe extern "C" fn gctl_get_asciiparam(req: *mut gctl_req, param: *const c_char) -> *const c_char {
    let mut len: c_int = 0;
    // SAFETY: same contract; len is a local.
    let p = unsafe { gctl_get_param_flags(req, param, GCTL_PARAM_RD, &mut len) };
    if p.is_null() {
        return ptr::null();
    }
    // SAFETY: param is non-NULL here (the lookup succeeded) and NUL-terminated.
    let name = unsafe { CStr::from_ptr(param) };
    if len < 1 {
        // SAFETY: req is live (caller).
        unsafe { post_error(req, format!("Argument without length ({})", lossy(name)).as_bytes()) };
        return ptr::null();
    }
    // SAFETY: the value has len bytes.
    if unsafe { *p.cast::<u8>().add(len as usize - 1) } != 0 {
        // SAFETY: req is live (caller).
        unsafe { post_error(req, format!("Unterminated argument ({})", lossy(name)).as_bytes()) };
        return ptr::null();
    }
    p.cast()
}

/// `gctl_get_paraml_opt(req, param, len)`: a readable parameter of exactly `len` bytes; NULL
/// if absent, or NULL with `Wrong length <param> argument` recorded if its size differs.
///
/// (FreeBSD's version compares an uninitialised length when the parameter is absent; this
/// one implements the evident intent: absence is not an error.)
///
/// # Safety
/// As for [`gctl_get_param_flags`].
#[no_mangle]
pub unsafe extern "C" fn gctl_get_paraml_opt(req: *mut gctl_req, param: *const c_char, len: c_int) -> *mut c_void {
    let mut got: c_int = 0;
    // SAFETY: same contract; got is a local.
    let p = unsafe { gctl_get_param(req, param, &mut got) };
    if p.is_null() {
        return ptr::null_mut();
    }
    if got != len {
        // SAFETY: param is non-NULL (found) and NUL-terminated; req is live.
        unsafe {
            let name = lossy(CStr::from_ptr(param));
            post_error(req, format!("Wrong length {name} argument").as_bytes());
        }
        return ptr::null_mut();
    }
    p
}

/// `gctl_get_paraml(req, param, len)`: like [`gctl_get_paraml_opt`], and absence records
/// `Missing <param> argument`.
///
/// # Safety
/// As for [`gctl_get_param_flags`].
#[no_mangle]
pub unsafe extern "C" fn gctl_get_paraml(req: *mut gctl_req, param: *const c_char, len: c_int) -> *mut c_void {
    // SAFETY: same contract.
    let p = unsafe { gctl_get_paraml_opt(req, param, len) };
    if p.is_null() {
        // SAFETY: param is NULL or NUL-terminated; req is NULL or live.
        let name = unsafe { cstr(param) }.map(lossy).unwrap_or_default();
        // SAFETY: as above.
        unsafe { post_error(req, format!("Missing {name} argument").as_bytes()) };
    }
    p
}

/// `gctl_set_param(req, param, ptr, len)`: write `len` bytes into a writable parameter and
/// mark it changed (so it is copied back). Returns 0; `EPERM` if the parameter is not
/// writable; `ENOSPC` if it is smaller than `len` (its whole size is written); `EINVAL` if it
/// is missing (or `len`/`ptr` are invalid).
///
/// # Safety
/// As for [`gctl_get_param_flags`]; `ptr` is valid for `len` bytes of reads.
#[no_mangle]
pub unsafe extern "C" fn gctl_set_param(
    req: *mut gctl_req,
    param: *const c_char,
    ptr: *const c_void,
    len: c_int,
) -> c_int {
    // SAFETY: param is NULL or NUL-terminated (caller).
    let Some(name) = (unsafe { cstr(param) }) else {
        return errno::EINVAL;
    };
    // SAFETY: req is NULL or live (caller).
    let Some(ap) = (unsafe { find(req, name, 0) }) else {
        return errno::EINVAL;
    };
    if ap.flag & GCTL_PARAM_WR == 0 {
        return errno::EPERM;
    }
    if len < 0 || (len > 0 && (ptr.is_null() || ap.kvalue.is_null())) {
        return errno::EINVAL;
    }
    ap.flag |= GCTL_PARAM_CHANGED;
    let room = ap.len.max(0);
    let n = len.min(room) as usize;
    if n > 0 {
        // SAFETY: ptr has len >= n readable bytes (caller), kvalue has ap.len >= n writable
        // bytes; ptr::copy allows the two to overlap.
        unsafe { ptr::copy(ptr.cast::<u8>(), ap.kvalue.cast::<u8>(), n) };
    }
    if room < len {
        errno::ENOSPC
    } else {
        0
    }
}

/// `gctl_set_param_err(req, param, ptr, len)`: [`gctl_set_param`], recording a failure in the
/// request ("No write access …", "Wrong length …", "Missing … argument").
///
/// # Safety
/// As for [`gctl_set_param`].
#[no_mangle]
pub unsafe extern "C" fn gctl_set_param_err(req: *mut gctl_req, param: *const c_char, ptr: *const c_void, len: c_int) {
    // SAFETY: same contract.
    let error = unsafe { gctl_set_param(req, param, ptr, len) };
    // SAFETY: param is NULL or NUL-terminated.
    let name = unsafe { cstr(param) }.map(lossy).unwrap_or_default();
    let msg = match error {
        errno::EPERM => format!("No write access {name} argument"),
        errno::ENOSPC => format!("Wrong length {name} argument"),
        errno::EINVAL => format!("Missing {name} argument"),
        _ => return,
    };
    // SAFETY: req is NULL or live.
    unsafe { post_error(req, msg.as_bytes()) };
}

/// `gctl_get_class(req, arg)`: the loaded class named by the string parameter `arg`; NULL
/// with `Missing <arg> argument` or `Class not found: "<name>"` recorded.
///
/// # Safety
/// As for [`gctl_get_param_flags`]; the topology lock is held.
#[no_mangle]
pub unsafe extern "C" fn gctl_get_class(req: *mut gctl_req, arg: *const c_char) -> *mut g_class {
    // SAFETY: same contract.
    let p = unsafe { gctl_get_asciiparam(req, arg) };
    // SAFETY: arg is NULL or NUL-terminated.
    let argname = unsafe { cstr(arg) }.map(lossy).unwrap_or_default();
    if p.is_null() {
        // SAFETY: req is NULL or live.
        unsafe { post_error(req, format!("Missing {argname} argument").as_bytes()) };
        return ptr::null_mut();
    }
    // SAFETY: gctl_get_asciiparam returns NUL-terminated strings.
    let name = unsafe { CStr::from_ptr(p) };
    let mp = crate::topology::class_by_name(name);
    if mp.is_null() {
        // SAFETY: req is live.
        unsafe { post_error(req, format!("Class not found: \"{}\"", lossy(name)).as_bytes()) };
    }
    mp
}

/// `gctl_get_geom(req, mp, arg)`: the geom of class `mp` named by the string parameter `arg`;
/// NULL with `Missing <arg> argument` or `Geom not found: "<name>"` recorded.
///
/// # Safety
/// As for [`gctl_get_param_flags`]; `mp` is NULL or a live class; the topology lock is held.
#[no_mangle]
pub unsafe extern "C" fn gctl_get_geom(req: *mut gctl_req, mp: *mut g_class, arg: *const c_char) -> *mut g_geom {
    // SAFETY: same contract.
    let p = unsafe { gctl_get_asciiparam(req, arg) };
    if p.is_null() {
        // SAFETY: arg is NULL or NUL-terminated; req is NULL or live.
        unsafe {
            let argname = cstr(arg).map(lossy).unwrap_or_default();
            post_error(req, format!("Missing {argname} argument").as_bytes());
        }
        return ptr::null_mut();
    }
    // SAFETY: gctl_get_asciiparam returns NUL-terminated strings.
    let name = unsafe { CStr::from_ptr(p) };
    if !mp.is_null() {
        // SAFETY: mp is a live class and its geom list is stable under the topology lock.
        let geoms = unsafe { sys::list_iter(&raw const (*mp).geom, |gp| &raw mut (*gp).geom) };
        for gp in geoms {
            // SAFETY: gp is a live geom of mp; a non-NULL name is NUL-terminated.
            let gname = unsafe { (*gp).name };
            // SAFETY: as above.
            if !gname.is_null() && unsafe { CStr::from_ptr(gname) } == name {
                return gp;
            }
        }
    }
    // SAFETY: req is live.
    unsafe { post_error(req, format!("Geom not found: \"{}\"", lossy(name)).as_bytes()) };
    ptr::null_mut()
}

/// `gctl_get_provider(req, arg)`: the provider named by the string parameter `arg` (a leading
/// "/dev/" is ignored); NULL with `Missing '<arg>' argument` or
/// `Provider not found: "<name>"` recorded.
///
/// # Safety
/// As for [`gctl_get_param_flags`]; the topology lock is held.
#[no_mangle]
pub unsafe extern "C" fn gctl_get_provider(req: *mut gctl_req, arg: *const c_char) -> *mut g_provider {
    // SAFETY: same contract.
    let p = unsafe { gctl_get_asciiparam(req, arg) };
    if p.is_null() {
        // SAFETY: arg is NULL or NUL-terminated; req is NULL or live.
        unsafe {
            let argname = cstr(arg).map(lossy).unwrap_or_default();
            post_error(req, format!("Missing '{argname}' argument").as_bytes());
        }
        return ptr::null_mut();
    }
    // SAFETY: p is a NUL-terminated string; the caller holds the topology lock.
    let pp = unsafe { sys::g_provider_by_name(p) };
    if pp.is_null() {
        // SAFETY: p is NUL-terminated; req is live.
        unsafe {
            let name = lossy(CStr::from_ptr(p));
            post_error(req, format!("Provider not found: \"{name}\"").as_bytes());
        }
    }
    pp
}

/// The built-in `"getxml"` verb (`g_ctl_getxml`): write the XML of class `mp`'s geoms (only
/// the one named by `"arg0"`, if given; with their parents' geoms if the `int` parameter
/// `"parents"` is non-zero) into the writable `"output"` parameter, NUL-terminated.
/// "output buffer overflow" is recorded if it does not fit.
///
/// # Safety
/// `req` is a live request; `mp` is a live class; `classes` is the loaded-class list; the
/// topology lock is held.
// Called by the runtime's request dispatch for the verb "getxml" (g_ctl_req's built-in).
pub(crate) unsafe fn getxml(req: *mut gctl_req, mp: *mut g_class, classes: &ListHead<g_class>) {
    // SAFETY: req is live (caller).
    let parents = unsafe { gctl_get_paraml(req, c"parents".as_ptr(), std::mem::size_of::<c_int>() as c_int) };
    if parents.is_null() || mp.is_null() {
        return;
    }
    // SAFETY: parents points at an int-sized value (length checked above).
    let parents = unsafe { parents.cast::<c_int>().read_unaligned() } != 0;
    // SAFETY: req is live (caller).
    let name = unsafe { gctl_get_asciiparam(req, c"arg0".as_ptr()) };
    // SAFETY: a non-NULL result is NUL-terminated.
    let name = unsafe { cstr(name) };
    let mut gps = Vec::new();
    // SAFETY: mp and its geoms, consumers and providers are live under the topology lock.
    unsafe {
        for gp in sys::list_iter(&raw const (*mp).geom, |gp| &raw mut (*gp).geom) {
            if let Some(name) = name {
                if (*gp).name.is_null() || CStr::from_ptr((*gp).name) != name {
                    continue;
                }
            }
            gps.push(gp);
            if parents {
                for cp in sys::list_iter(&raw const (*gp).consumer, |cp| &raw mut (*cp).consumer) {
                    if !(*cp).provider.is_null() {
                        gps.push((*(*cp).provider).geom);
                    }
                }
            }
        }
    }
    let mut len: c_int = 0;
    // SAFETY: req is live (caller).
    let buf = unsafe { gctl_get_param_flags(req, c"output".as_ptr(), GCTL_PARAM_WR, &mut len) };
    if buf.is_null() {
        // SAFETY: req is live.
        unsafe { post_error(req, b"output parameter missing") };
        return;
    }
    // SAFETY: buf is the output parameter's buffer of len bytes, owned by the request.
    let s = unsafe { sb::sbuf_new(ptr::null_mut(), buf.cast(), len, sb::SBUF_FIXEDLEN | sb::SBUF_INCLUDENUL) };
    if s.is_null() {
        // SAFETY: req is live.
        unsafe { post_error(req, b"output buffer overflow") };
        return;
    }
    // SAFETY: s is a live sbuf over the output buffer; the topology is stable (caller).
    unsafe {
        crate::confxml::conf_specific(s, classes, Some(&gps));
        gctl_set_param(req, c"output".as_ptr(), buf, 0);
        if sb::sbuf_error(s) != 0 {
            post_error(req, b"output buffer overflow");
        }
        sb::sbuf_delete(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geom_core::sys::list_insert_head;

    unsafe extern "C" {
        /// FreeBSD 14+'s `gctl_msg` (csrc/varargs.c); geom-core does not declare it.
        fn gctl_msg(req: *mut gctl_req, error: c_int, fmt: *const c_char, ...);
    }

    fn text(p: *const c_char) -> String {
        assert!(!p.is_null());
        // SAFETY: tests pass NUL-terminated strings.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    #[test]
    fn builder() {
        let r = CtlRequest::new("STRIPE", "create")
            .param("verbose", CtlValue::Int(1))
            .arg("st0")
            .arg("md0")
            .param("verbose", CtlValue::Int(0))
            .output(4096);
        assert_eq!(r.class(), "STRIPE");
        assert_eq!(r.verb(), "create");
        assert_eq!(r.get("nargs"), Some(&CtlValue::Int(2)));
        assert_eq!(r.get("arg1"), Some(&CtlValue::Ascii("md0".into())));
        assert_eq!(r.get("verbose"), Some(&CtlValue::Int(0)));
        assert_eq!(r.get("output"), None);
        assert_eq!(r.params.len(), 7);
    }

    #[test]
    fn raw_params_and_output() {
        let r = CtlRequest::new("TEST", "list")
            .param("size", CtlValue::Intmax(1 << 40))
            .param("version", CtlValue::Uint32(3))
            .arg("a")
            .arg("bee")
            .output(16);
        let mut raw = r.to_raw().unwrap();
        let req = raw.as_ptr();
        // SAFETY: req is live until finish.
        unsafe {
            assert_eq!((*req).narg, 8);
            assert_eq!(text(gctl_get_asciiparam(req, c"class".as_ptr())), "TEST");
            assert_eq!(text(gctl_get_asciiparam(req, c"arg1".as_ptr())), "bee");
            let mut len = 0;
            let p = gctl_get_param(req, c"size".as_ptr(), &mut len);
            assert_eq!(len, 8);
            assert_eq!(p.cast::<i64>().read_unaligned(), 1 << 40);
            let n = gctl_get_paraml(req, c"nargs".as_ptr(), 4);
            assert_eq!(n.cast::<i32>().read_unaligned(), 2);
            let v = gctl_get_paraml(req, c"version".as_ptr(), 4);
            assert_eq!(v.cast::<u32>().read_unaligned(), 3);
            assert!(gctl_get_paraml_opt(req, c"absent".as_ptr(), 4).is_null());
            assert!(gctl_get_param(req, c"absent".as_ptr(), ptr::null_mut()).is_null());
            assert!(gctl_get_asciiparam(req, c"absent".as_ptr()).is_null());
            assert!(gctl_get_param_flags(req, c"size".as_ptr(), GCTL_PARAM_WR, ptr::null_mut()).is_null());
            assert!(!gctl_get_param_flags(req, c"output".as_ptr(), GCTL_PARAM_RW, ptr::null_mut()).is_null());
            assert_eq!((*req).nerror, 0, "lookups of absent optional params record nothing");
            assert_eq!(gctl_set_param(req, c"size".as_ptr(), c"x".as_ptr().cast(), 2), errno::EPERM);
            assert_eq!(gctl_set_param(req, c"nope".as_ptr(), c"x".as_ptr().cast(), 2), errno::EINVAL);
            assert_eq!(gctl_set_param(req, c"output".as_ptr(), c"hello".as_ptr().cast(), 6), 0);
            // Informational messages do not fail the request.
            gctl_msg(req, 0, c"note %d".as_ptr(), 7);
            gctl_post_messages(req);
        }
        let reply = raw.finish();
        assert_eq!(reply, CtlReply { error: 0, message: Some("note 7".into()), output: "hello".into() });
        assert!(reply.is_ok());
    }

    #[test]
    fn first_error_wins_and_output_is_dropped() {
        let mut raw = CtlRequest::new("TEST", "create").param("flag", CtlValue::Int(1)).output(8).to_raw().unwrap();
        let req = raw.as_ptr();
        // SAFETY: req is live until finish.
        unsafe {
            assert_eq!(gctl_set_param(req, c"output".as_ptr(), c"too long!".as_ptr().cast(), 10), errno::ENOSPC);
            assert!(gctl_get_paraml(req, c"flag".as_ptr(), 8).is_null());
            assert_eq!((*req).nerror, errno::EINVAL);
            assert_eq!(sys::gctl_error(req, c"second %d".as_ptr(), 2), errno::EINVAL);
            assert!(gctl_get_paraml(req, c"missing".as_ptr(), 4).is_null());
        }
        let reply = raw.finish();
        assert_eq!(reply.error, errno::EINVAL);
        assert_eq!(reply.message.as_deref(), Some("Wrong length flag argument"));
        assert_eq!(reply.output, "", "parameters are not copied back on failure");
    }

    #[test]
    fn messages_accumulate_until_posted() {
        let mut raw = CtlRequest::new("TEST", "destroy").to_raw().unwrap();
        let req = raw.as_ptr();
        // SAFETY: req is live until finish.
        unsafe {
            geom_host_gctl_msg(req, 0, c"first".as_ptr());
            geom_host_gctl_msg(req, errno::EBUSY, c"second".as_ptr());
            geom_host_gctl_msg(req, errno::ENXIO, c"third".as_ptr());
            assert_eq!((*req).nerror, errno::EBUSY);
            // gctl_error adds its message and posts; the earlier errno stands.
            assert_eq!(geom_host_gctl_error(req, c"last".as_ptr()), errno::EBUSY);
            geom_host_gctl_msg(req, 0, c"ignored".as_ptr());
            gctl_post_messages(req);
        }
        let reply = raw.finish();
        assert_eq!(reply.error, errno::EBUSY);
        assert_eq!(reply.message.as_deref(), Some("first\n\tsecond\n\tthird\n\tlast"));
    }

    #[test]
    fn error_after_informational_post_is_eexist() {
        let mut raw = CtlRequest::new("TEST", "x").to_raw().unwrap();
        let req = raw.as_ptr();
        // SAFETY: req is live until finish.
        unsafe {
            geom_host_gctl_msg(req, 0, c"fine".as_ptr());
            gctl_post_messages(req);
            assert_eq!(geom_host_gctl_error(req, c"too late".as_ptr()), errno::EEXIST);
            assert_eq!(geom_host_gctl_error(ptr::null_mut(), c"x".as_ptr()), errno::EINVAL);
            geom_host_gctl_msg(ptr::null_mut(), 1, c"x".as_ptr());
            gctl_post_messages(ptr::null_mut());
            assert!(gctl_get_param(ptr::null_mut(), c"x".as_ptr(), ptr::null_mut()).is_null());
            assert!(gctl_get_param(req, ptr::null(), ptr::null_mut()).is_null());
        }
        let reply = raw.finish();
        assert_eq!(reply, CtlReply { error: errno::EEXIST, message: Some("fine".into()), output: String::new() });
    }

    #[test]
    fn set_param_err_messages() {
        let mut raw = CtlRequest::new("TEST", "x").to_raw().unwrap();
        let req = raw.as_ptr();
        // SAFETY: req is live until finish.
        unsafe { gctl_set_param_err(req, c"verb".as_ptr(), c"y".as_ptr().cast(), 2) };
        assert_eq!(raw.finish().message.as_deref(), Some("No write access verb argument"));
    }

    #[test]
    fn copyin_validation() {
        let long = "n".repeat(SPECNAMELEN);
        let reply = CtlRequest::new("T", "v").param(&long, CtlValue::Int(0)).to_raw().err().unwrap();
        assert_eq!(reply.error, errno::EINVAL);
        assert_eq!(reply.message.as_deref(), Some("wrong param name length 3: 256"));
        let ok_name = "n".repeat(SPECNAMELEN - 1);
        assert!(CtlRequest::new("T", "v").param(&ok_name, CtlValue::Int(0)).to_raw().is_ok());
        let reply = CtlRequest::new("T", "v").param("empty", CtlValue::Bytes(vec![])).to_raw().err().unwrap();
        assert_eq!(reply.message.as_deref(), Some("negative param length"));
        let reply = CtlRequest::new("T", "v").output(0).to_raw().err().unwrap();
        assert_eq!(reply.message.as_deref(), Some("negative param length"));
        let mut many = CtlRequest::new("T", "v");
        for i in 0..GEOM_CTL_ARG_MAX {
            many = many.param(&format!("p{i}"), CtlValue::Int(0));
        }
        let reply = many.to_raw().err().unwrap();
        assert_eq!(reply.message.as_deref(), Some("too many arguments"));
        // A string with an interior NUL is accepted (the kernel checks only the last byte) and
        // reads back truncated.
        let mut raw = CtlRequest::new("T", "v").param("s", CtlValue::Ascii("a\0b".into())).to_raw().unwrap();
        let req = raw.as_ptr();
        // SAFETY: req is live until finish.
        assert_eq!(text(unsafe { gctl_get_asciiparam(req, c"s".as_ptr()) }), "a");
        // A non-string without a trailing NUL is refused by gctl_get_asciiparam.
        let mut raw = CtlRequest::new("T", "v").param("b", CtlValue::Bytes(vec![1, 2])).to_raw().unwrap();
        let req = raw.as_ptr();
        // SAFETY: req is live until finish.
        assert!(unsafe { gctl_get_asciiparam(req, c"b".as_ptr()) }.is_null());
        assert_eq!(raw.finish().message.as_deref(), Some("Unterminated argument (b)"));
    }

    #[test]
    fn long_message_truncated_like_libgeom() {
        let mut raw = CtlRequest::new("T", "v").to_raw().unwrap();
        let long = std::ffi::CString::new("m".repeat(5000)).unwrap();
        // SAFETY: req is live until finish.
        unsafe { geom_host_gctl_error(raw.as_ptr(), long.as_ptr()) };
        assert_eq!(raw.finish().message.map(|m| m.len()), Some(ERROR_BUFSIZE - 1));
    }

    #[test]
    fn getxml_fills_output() {
        // SAFETY: zeroed topology structures are valid; each is linked once and outlives use.
        unsafe {
            let z = |n: usize| -> Vec<*mut u8> {
                (0..n).map(|_| Box::into_raw(Box::new([0u64; 32])).cast::<u8>()).collect()
            };
            let mem = z(6);
            let classes = mem[0].cast::<ListHead<g_class>>();
            let mp = mem[1].cast::<g_class>();
            let top = mem[2].cast::<g_geom>();
            let low = mem[3].cast::<g_geom>();
            let cp = mem[4].cast::<sys::g_consumer>();
            let pp = mem[5].cast::<g_provider>();
            const _: () = {
                use std::mem::size_of;
                assert!(size_of::<g_class>() <= 256 && size_of::<g_geom>() <= 256);
                assert!(size_of::<sys::g_consumer>() <= 256 && size_of::<g_provider>() <= 256);
            };
            (*mp).name = c"T".as_ptr();
            list_insert_head(classes, mp, |mp| &raw mut (*mp).class);
            (*top).name = c"top".as_ptr().cast_mut();
            (*low).name = c"low".as_ptr().cast_mut();
            for gp in [low, top] {
                (*gp).class = mp;
                list_insert_head(&raw mut (*mp).geom, gp, |gp| &raw mut (*gp).geom);
            }
            (*cp).geom = top;
            (*cp).provider = pp;
            list_insert_head(&raw mut (*top).consumer, cp, |cp| &raw mut (*cp).consumer);
            (*pp).geom = low;
            (*pp).name = c"low0".as_ptr().cast_mut();
            list_insert_head(&raw mut (*low).provider, pp, |pp| &raw mut (*pp).provider);

            let run = |r: CtlRequest| {
                let mut raw = r.to_raw().unwrap();
                getxml(raw.as_ptr(), mp, &*classes);
                raw.finish()
            };
            let base = || CtlRequest::new("T", "getxml");
            let r = run(base().param("parents", CtlValue::Int(0)).arg("top").output(4096));
            assert!(r.is_ok(), "{r:?}");
            assert!(r.output.starts_with("<mesh>\n") && r.output.ends_with("</mesh>\n"));
            assert!(r.output.contains("<name>top</name>") && !r.output.contains("<name>low</name>"));
            let r = run(base().param("parents", CtlValue::Int(1)).arg("top").output(4096));
            assert!(r.output.contains("<name>top</name>") && r.output.contains("<name>low</name>"));
            let r = run(base().param("parents", CtlValue::Int(0)).output(4096));
            assert!(r.output.contains("<name>top</name>") && r.output.contains("<name>low</name>"));
            let r = run(base().param("parents", CtlValue::Int(0)).output(64));
            assert_eq!((r.error, r.message.as_deref()), (errno::EINVAL, Some("output buffer overflow")));
            let r = run(base().output(4096));
            assert_eq!(r.message.as_deref(), Some("Missing parents argument"));
            let r = run(base().param("parents", CtlValue::Int(0)));
            assert_eq!(r.message.as_deref(), Some("output parameter missing"));

            for p in mem {
                drop(Box::from_raw(p.cast::<[u64; 32]>()));
            }
        }
    }

    #[test]
    fn get_geom_walks_the_class() {
        // SAFETY: zeroed topology structures are valid (NULL pointers, no methods).
        let mut mp: Box<g_class> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: as above.
        let mut g1: Box<g_geom> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: as above.
        let mut g2: Box<g_geom> = Box::new(unsafe { std::mem::zeroed() });
        g1.name = c"one".as_ptr().cast_mut();
        g2.name = c"two".as_ptr().cast_mut();
        let mpp: *mut g_class = &mut *mp;
        let g1p: *mut g_geom = &mut *g1;
        let g2p: *mut g_geom = &mut *g2;
        // SAFETY: the boxes outlive the list and are linked once each.
        unsafe {
            list_insert_head(&raw mut (*mpp).geom, g1p, |gp| &raw mut (*gp).geom);
            list_insert_head(&raw mut (*mpp).geom, g2p, |gp| &raw mut (*gp).geom);
        }
        let mut raw = CtlRequest::new("T", "v").arg("one").arg("three").to_raw().unwrap();
        let req = raw.as_ptr();
        // SAFETY: req is live until finish; the class is live.
        unsafe {
            assert_eq!(gctl_get_geom(req, mpp, c"arg0".as_ptr()), g1p);
            assert!(gctl_get_geom(req, mpp, c"arg1".as_ptr()).is_null());
        }
        assert_eq!(raw.finish().message.as_deref(), Some("Geom not found: \"three\""));
        let mut raw = CtlRequest::new("T", "v").to_raw().unwrap();
        // SAFETY: as above.
        assert!(unsafe { gctl_get_geom(raw.as_ptr(), mpp, c"arg0".as_ptr()) }.is_null());
        assert_eq!(raw.finish().message.as_deref(), Some("Missing arg0 argument"));
    }
}
