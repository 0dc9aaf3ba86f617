//! Verbs and their options, declared once.
//!
//! A class lists its geom(8) verbs as an enum with one variant per verb, each holding a
//! struct of that verb's options and positional arguments, and derives [`Verbs`] and
//! [`VerbArgs`] (from `geom-macros`). That one declaration gives:
//!
//! * the parsing of a request in the kernel: the ctlreq trampoline checks the class version,
//!   finds the verb, reads every option with its type and default, and hands the class's
//!   [`GeomClass::ctlreq`](crate::GeomClass::ctlreq) a filled-in value; a missing or
//!   malformed parameter becomes a `gctl_error` message and `ctlreq` is not called;
//! * the tables ([`VerbSpec`], [`OptSpec`], [`ArgSpec`]) from which the host's `geom`
//!   command and FreeBSD's geom(8) class library (`struct g_command`) are generated, with
//!   the usage line ([`VerbSpec::usage`]) and the doc comments as help.
//!
//! ```
//! use alloc::ffi::CString;
//! # extern crate alloc;
//! use geom_core::{VerbArgs, Verbs};
//!
//! /// Create a device on top of each provider.
//! #[derive(VerbArgs)]
//! struct Create {
//!     /// Error to fail requests with.
//!     #[opt(short = 'e', default = 5)]
//!     error: i32,
//!     /// Read failure probability, in percent.
//!     #[opt(short = 'r', default = -1)]
//!     rfailprob: i64,
//!     /// Name the device (optional: not sent when not given).
//!     #[opt(short = 'l')]
//!     label: Option<CString>,
//!     /// Be verbose.
//!     #[opt(short = 'v')]
//!     verbose: bool,
//!     /// The providers.
//!     #[args(min = 1, name = "dev ...", dev)]
//!     providers: Vec<CString>,
//! }
//!
//! /// Destroy devices.
//! #[derive(VerbArgs)]
//! struct Destroy {
//!     /// Destroy even if open.
//!     #[opt(short = 'f')]
//!     force: bool,
//!     /// The devices.
//!     #[args(min = 1, name = "dev ...", dev)]
//!     devices: Vec<CString>,
//! }
//!
//! #[derive(Verbs)]
//! enum Verb {
//!     Create(Create),
//!     Destroy(Destroy),
//!     /// Another name for destroy.
//!     #[verb(name = "stop")]
//!     Stop(Destroy),
//! }
//!
//! let create = &Verb::VERBS[0];
//! assert_eq!(create.name, "create");
//! assert_eq!(create.usage(), "[-v] [-e error] [-l label] [-r rfailprob] dev ...");
//! assert_eq!(Verb::VERBS[2].name, "stop");
//! ```

use alloc::ffi::CString;
use alloc::vec::Vec;
use core::ffi::CStr;

use crate::ctl::Gctl;

/// The type of an option's value, as geom(8) sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptKind {
    /// A flag: an `int`, 0 or 1 (`G_TYPE_BOOL`).
    Bool,
    /// A number: an `intmax_t` (`G_TYPE_NUMBER`; geom(8) accepts "64k" and the like).
    Number,
    /// A string (`G_TYPE_STRING`).
    String,
}

/// What is sent when the user does not give an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptDefault {
    /// Nothing (`G_VAL_OPTIONAL`); flags default to 0.
    Absent,
    /// This number.
    Number(i64),
    /// This string.
    Str(&'static str),
}

/// One option of a verb (`struct g_option`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptSpec {
    /// Its letter (`-e`).
    pub short: char,
    /// Its name, which is the request parameter's name.
    pub name: &'static str,
    /// The name as a C string, for geom(8)'s tables.
    pub c_name: &'static CStr,
    /// Its type.
    pub kind: OptKind,
    /// Its default.
    pub default: OptDefault,
    /// The default as geom(8)'s `go_val` spells it (a number in decimal, or the string);
    /// `None` when there is none.
    pub c_default: Option<&'static CStr>,
    /// One line of help.
    pub help: &'static str,
}

impl OptSpec {
    /// Is this the `-v` flag, which geom(8) handles itself (`G_FLAG_VERBOSE`) and never sends?
    pub const fn is_verbose_flag(&self) -> bool {
        matches!(self.kind, OptKind::Bool) && self.short == 'v' && bytes_eq(self.name.as_bytes(), b"verbose")
    }
}

/// `a == b`, in a const context.
const fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// A verb's positional arguments (`"nargs"`, `"arg0"`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgSpec {
    /// Fewest accepted.
    pub min: u32,
    /// Most accepted.
    pub max: u32,
    /// How usage shows them (`"prov ..."`, `"name prov prov ..."`).
    pub name: &'static str,
    /// Device names: a leading `/dev/` is dropped, as FreeBSD's tools do.
    pub dev: bool,
}

impl ArgSpec {
    /// No positional arguments.
    pub const NONE: ArgSpec = ArgSpec { min: 0, max: 0, name: "", dev: false };
}

/// One verb (`struct g_command`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerbSpec {
    /// Its name (`"create"`).
    pub name: &'static str,
    /// The name as a C string, for geom(8)'s tables.
    pub c_name: &'static CStr,
    /// Its options, in declaration order.
    pub options: &'static [OptSpec],
    /// Its positional arguments.
    pub args: ArgSpec,
    /// Handled in userland by the class library (geom(8)'s `gc_func`: labels written from
    /// userland, dumps), not sent to the kernel.
    pub local: bool,
    /// geom(8) loads the class's module first if it is not loaded (`G_FLAG_LOADKLD`; for the
    /// verbs that make devices, such as `create` and `label`).
    pub loadkld: bool,
    /// The usage line (see [`VerbSpec::usage`]), as a C string for geom(8)'s tables.
    pub c_usage: &'static CStr,
    /// One line of help.
    pub help: &'static str,
}

impl VerbSpec {
    /// Does it take `-v` (geom(8)'s `G_FLAG_VERBOSE`)? geom(8) handles the flag itself: it
    /// prints "Done." and tells a userland verb through its flags, but never sends it to the
    /// kernel.
    pub fn verbose(&self) -> bool {
        self.options.iter().any(OptSpec::is_verbose_flag)
    }

    /// An option by name.
    pub fn option(&self, name: &str) -> Option<&OptSpec> {
        self.options.iter().find(|o| o.name == name)
    }

    /// The usage line geom(8) prints after the verb: the flags together (`[-fv]`), then the
    /// options with values in alphabetical order of their letters, then the positional
    /// arguments. `#[derive(VerbArgs)]` writes it from the declaration.
    pub fn usage(&self) -> &'static str {
        self.c_usage.to_str().unwrap_or("")
    }
}

/// A verb's options and arguments, read from a request. Derived with
/// `#[derive(VerbArgs)]` from a struct whose fields carry `#[opt(...)]` or `#[args(...)]`:
///
/// | field type | option |
/// |---|---|
/// | `bool` | a flag |
/// | `i64`, `i32`, `u32`, `u64`, ... with `default = n` | a number (range-checked) |
/// | `Option<i64>`, ... | a number that may be left out |
/// | `CString` with `default = "s"` | a string |
/// | `Option<CString>` | a string that may be left out |
/// | `Vec<CString>` with `#[args(min, max, name, dev)]` | the positional arguments |
pub trait VerbArgs: Sized {
    /// One line of help (the struct's doc comment).
    const HELP: &'static str;
    /// The options.
    const OPTIONS: &'static [OptSpec];
    /// The positional arguments.
    const ARGS: ArgSpec;
    /// The usage line: options and arguments as geom(8) shows them (`[-fv] name ...`).
    const USAGE: &'static CStr;
    /// Read them from `req`; on a missing or malformed parameter, record the error in
    /// `req` and return `None`.
    fn from_gctl(req: &mut Gctl<'_>) -> Option<Self>;
}

/// A class's verbs. Derived with `#[derive(Verbs)]` on an enum whose variants each hold one
/// [`VerbArgs`] struct; the verb name is the variant's in lower case unless
/// `#[verb(name = "...")]` says otherwise, and `#[verb(local)]` marks a verb geom(8)'s class
/// library handles in userland.
pub trait Verbs: Sized {
    /// The verbs, in declaration order.
    const VERBS: &'static [VerbSpec];
    /// The verb named `verb`, read from `req`; records an error and returns `None` for an
    /// unknown verb or bad parameters.
    fn from_gctl(req: &mut Gctl<'_>, verb: &CStr) -> Option<Self>;
    /// This verb's name.
    fn name(&self) -> &'static str;
    /// The declaration of the verb named `name`.
    fn spec(name: &[u8]) -> Option<&'static VerbSpec> {
        Self::VERBS.iter().find(|v| v.name.as_bytes() == name)
    }
}

/// geom(8)'s `class_commands` for `verbs`: one `struct g_command` per verb and the
/// all-NULL sentinel, `N` entries in all. Verbs marked local get `func` as their `gc_func`
/// (the class library's handler); the others have none, so geom(8) sends them to the kernel.
/// A `-v` flag becomes `G_FLAG_VERBOSE` instead of an option, as geom(8) expects.
///
/// Used in a `static` (the class library's exported table), so a verb with more options than
/// `struct g_command` holds fails the build.
pub const fn command_table<const N: usize>(
    verbs: &[VerbSpec],
    func: Option<crate::sys::g_command_func>,
) -> [crate::sys::g_command; N] {
    assert!(N == verbs.len() + 1, "the table holds one command per verb and the sentinel");
    let mut table = [crate::sys::g_command::SENTINEL; N];
    let mut i = 0;
    while i < verbs.len() {
        table[i] = command(&verbs[i], if verbs[i].local { func } else { None });
        i += 1;
    }
    table
}

/// One verb as geom(8)'s `struct g_command`.
const fn command(v: &VerbSpec, func: Option<crate::sys::g_command_func>) -> crate::sys::g_command {
    use crate::sys::{g_option, G_FLAG_LOADKLD, G_FLAG_VERBOSE, G_OPT_MAX};
    let mut options = [g_option::SENTINEL; G_OPT_MAX];
    let mut flags = if v.loadkld { G_FLAG_LOADKLD } else { 0 };
    let (mut i, mut n) = (0, 0);
    while i < v.options.len() {
        let o = &v.options[i];
        if o.is_verbose_flag() {
            flags |= G_FLAG_VERBOSE;
        } else {
            assert!(n < G_OPT_MAX - 1, "a geom(8) command holds at most 15 options");
            options[n] = option(o);
            n += 1;
        }
        i += 1;
    }
    crate::sys::g_command {
        gc_name: v.c_name.as_ptr(),
        gc_flags: flags,
        gc_func: func,
        gc_options: options,
        gc_usage: v.c_usage.as_ptr(),
    }
}

/// One option as geom(8)'s `struct g_option`: a flag has no default value; an option that
/// may be left out has `G_VAL_OPTIONAL`; the others their default as text.
const fn option(o: &OptSpec) -> crate::sys::g_option {
    use crate::sys::{G_TYPE_BOOL, G_TYPE_NUMBER, G_TYPE_STRING, G_VAL_OPTIONAL};
    assert!(o.short.is_ascii(), "option letters are ASCII");
    let (go_type, go_val) = match o.kind {
        OptKind::Bool => (G_TYPE_BOOL, core::ptr::null()),
        OptKind::Number | OptKind::String => (
            if matches!(o.kind, OptKind::Number) { G_TYPE_NUMBER } else { G_TYPE_STRING },
            match o.c_default {
                Some(d) => d.as_ptr().cast(),
                None => G_VAL_OPTIONAL,
            },
        ),
    };
    crate::sys::g_option { go_char: o.short as u8 as crate::sys::c_char, go_name: o.c_name.as_ptr(), go_val, go_type }
}

/// The verbs of a class that has none: every request is refused with "Unknown verb.".
pub enum NoVerbs {}

impl Verbs for NoVerbs {
    const VERBS: &'static [VerbSpec] = &[];
    fn from_gctl(req: &mut Gctl<'_>, _verb: &CStr) -> Option<Self> {
        unknown_verb(req)
    }
    fn name(&self) -> &'static str {
        match *self {}
    }
}

/// Check the `"version"` parameter geom(8) sends against the class's: missing or different is
/// an error, with FreeBSD's messages.
pub fn check_version(req: &mut Gctl<'_>, version: u32) -> bool {
    match req.param(c"version") {
        None => {
            req.error(format_args!("No 'version' argument."));
            false
        }
        Some(v) if v.len() == 4 && u32::from_ne_bytes([v[0], v[1], v[2], v[3]]) == version => true,
        Some(_) => {
            req.error(format_args!("Userland and kernel parts are out of sync."));
            false
        }
    }
}

/// Record "Unknown verb." (what the derived parser does for a name it does not know).
pub fn unknown_verb<T>(req: &mut Gctl<'_>) -> Option<T> {
    req.error(format_args!("Unknown verb."));
    None
}

fn invalid<T>(req: &mut Gctl<'_>, name: &CStr) -> Option<T> {
    req.error(format_args!("Invalid '{}' argument.", name.to_string_lossy()));
    None
}

/// A flag option: absent is `false`; it must be an `int`.
pub fn opt_bool(req: &mut Gctl<'_>, name: &CStr) -> Option<bool> {
    match req.param(name) {
        None => Some(false),
        Some(v) if v.len() == 4 => Some(i32::from_ne_bytes([v[0], v[1], v[2], v[3]]) != 0),
        Some(_) => invalid(req, name),
    }
}

/// A number option that may be left out: it must be an `intmax_t` that fits `T`.
pub fn opt_number_maybe<T: TryFrom<i64>>(req: &mut Gctl<'_>, name: &CStr) -> Option<Option<T>> {
    let Some(v) = req.param(name) else { return Some(None) };
    let Ok(bytes) = <[u8; 8]>::try_from(v) else { return invalid(req, name) };
    match T::try_from(i64::from_ne_bytes(bytes)) {
        Ok(n) => Some(Some(n)),
        Err(_) => invalid(req, name),
    }
}

/// A number option with a default (what geom(8) would have sent when the user gave none).
pub fn opt_number<T: TryFrom<i64>>(req: &mut Gctl<'_>, name: &CStr, default: i64) -> Option<T> {
    match opt_number_maybe::<T>(req, name)? {
        Some(n) => Some(n),
        None => match T::try_from(default) {
            Ok(n) => Some(n),
            Err(_) => invalid(req, name),
        },
    }
}

/// A string option that may be left out: it must be a NUL-terminated string.
pub fn opt_string_maybe(req: &mut Gctl<'_>, name: &CStr) -> Option<Option<CString>> {
    if req.param(name).is_none() {
        return Some(None);
    }
    match req.ascii(name) {
        Some(s) => Some(Some(CString::from(s))),
        None => invalid(req, name),
    }
}

/// A string option with a default.
pub fn opt_string(req: &mut Gctl<'_>, name: &CStr, default: &str) -> Option<CString> {
    match opt_string_maybe(req, name)? {
        Some(s) => Some(s),
        None => match CString::new(default) {
            Ok(s) => Some(s),
            Err(_) => invalid(req, name),
        },
    }
}

/// The positional arguments: `"nargs"` and `"arg0"`.., counted against `spec`.
pub fn positional(req: &mut Gctl<'_>, spec: &ArgSpec) -> Option<Vec<CString>> {
    let n = match req.param(c"nargs") {
        None if spec.min == 0 => 0,
        None => {
            req.error(format_args!("No 'nargs' argument."));
            return None;
        }
        Some(v) => match <[u8; 4]>::try_from(v).map(i32::from_ne_bytes).map(u32::try_from) {
            Ok(Ok(n)) => n,
            _ => return invalid(req, c"nargs"),
        },
    };
    if n < spec.min {
        if n == 0 && spec.dev {
            req.error(format_args!("Missing device(s)."));
        } else {
            req.error(format_args!("Too few arguments."));
        }
        return None;
    }
    if n > spec.max {
        req.error(format_args!("Too many arguments."));
        return None;
    }
    let mut out = Vec::new();
    for i in 0..n {
        let Some(a) = req.arg(i) else {
            req.error(format_args!("No 'arg{i}' argument."));
            return None;
        };
        let a = if spec.dev { strip_dev(a) } else { a };
        // Grow with the arguments actually present: "nargs" is the caller's claim, and
        // reserving for it up front let one request ask for tens of gigabytes.
        if out.try_reserve(1).is_err() {
            req.error(format_args!("Out of memory."));
            return None;
        }
        out.push(CString::from(a));
    }
    Some(out)
}

/// Drop a leading `/dev/` from a device name.
pub fn strip_dev(name: &CStr) -> &CStr {
    match name.to_bytes_with_nul().strip_prefix(b"/dev/") {
        Some(rest) => CStr::from_bytes_with_nul(rest).unwrap_or(name),
        None => name,
    }
}

/// [`strip_dev`] for a name already in Rust form: how `g_compare_names` compares a label's
/// hard-coded provider with a provider's name.
pub fn strip_dev_str(name: &str) -> &str {
    name.strip_prefix("/dev/").unwrap_or(name)
}
