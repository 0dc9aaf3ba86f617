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
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::CStr;
use core::fmt::Write;

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
    /// Its type.
    pub kind: OptKind,
    /// Its default.
    pub default: OptDefault,
    /// One line of help.
    pub help: &'static str,
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
    /// Its options, in declaration order.
    pub options: &'static [OptSpec],
    /// Its positional arguments.
    pub args: ArgSpec,
    /// Handled in userland by the class library (geom(8)'s `gc_func`: labels written from
    /// userland, dumps), not sent to the kernel.
    pub local: bool,
    /// One line of help.
    pub help: &'static str,
}

impl VerbSpec {
    /// Does it take `-v` (geom(8)'s `G_FLAG_VERBOSE`, sent as the `verbose` flag)?
    pub fn verbose(&self) -> bool {
        self.option("verbose").is_some_and(|o| o.kind == OptKind::Bool && o.short == 'v')
    }

    /// An option by name.
    pub fn option(&self, name: &str) -> Option<&OptSpec> {
        self.options.iter().find(|o| o.name == name)
    }

    /// The usage line geom(8) prints after the verb: the flags together (`[-fv]`), then the
    /// options with values in alphabetical order of their letters, then the positional
    /// arguments.
    pub fn usage(&self) -> String {
        let mut s = String::new();
        let mut flags: Vec<char> = self.options.iter().filter(|o| o.kind == OptKind::Bool).map(|o| o.short).collect();
        flags.sort_unstable();
        if !flags.is_empty() {
            s.push_str("[-");
            s.extend(flags);
            s.push_str("] ");
        }
        let mut valued: Vec<&OptSpec> = self.options.iter().filter(|o| o.kind != OptKind::Bool).collect();
        valued.sort_by_key(|o| (o.short.to_ascii_lowercase(), o.short.is_ascii_uppercase()));
        for o in valued {
            let _ = write!(s, "[-{} {}] ", o.short, o.name);
        }
        s.push_str(self.args.name);
        while s.ends_with(' ') {
            s.pop();
        }
        s
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
    if out.try_reserve(n as usize).is_err() {
        req.error(format_args!("Out of memory."));
        return None;
    }
    for i in 0..n {
        let Some(a) = req.arg(i) else {
            req.error(format_args!("No 'arg{i}' argument."));
            return None;
        };
        let a = if spec.dev { strip_dev(a) } else { a };
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
