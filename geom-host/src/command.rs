//! geom(8)'s command line, driven by a class's verb declaration: `geom nop create -w 100
//! md0` becomes the same request geom(8) would send (`"class"`, `"verb"`, `"version"`, every
//! option with its type and default, `"nargs"` and `"arg0"`.., a 4 KiB `"output"`).
//!
//! The option tables are the class's own ([`geom_core::Verbs::VERBS`]), so what this parses
//! is exactly what the kernel side will accept.
//!
//! ```
//! use geom_class_nop::{Nop, NopVerb};
//! use geom_host::command;
//!
//! let req = command::parse::<Nop>(&["create", "-v", "-w", "100", "-d", "1k", "md0"]).unwrap();
//! assert_eq!(req.verb(), "create");
//! assert_eq!(command::usage::<Nop>("nop")[2], "geom nop destroy [-fv] prov ...");
//! assert!(command::parse::<Nop>(&["create", "-w"]).is_err());
//! ```

use std::ffi::CStr;

use geom_core::ctl::Param;
use geom_core::module::DeclaredModule;
use geom_core::userland::run_local;
use geom_core::verbs::{ArgSpec, OptDefault, OptKind, OptSpec, VerbSpec};
use geom_core::{GeomClass, Verbs};

use crate::gctl::{CtlRequest, CtlValue};
use crate::userland::HostEnv;
use crate::Runtime;

/// geom(8)'s output buffer size.
const OUTPUT: usize = 4096;

/// A command line geom(8) would refuse, with its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandError(pub String);

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CommandError {}

fn err<T>(msg: String) -> Result<T, CommandError> {
    Err(CommandError(msg))
}

/// The usage lines of every verb of `C` (`geom <class> <verb> ...`), as `geom <class> help`
/// prints them.
pub fn usage<C: GeomClass>(class: &str) -> Vec<String> {
    C::Verb::VERBS.iter().map(|v| format!("geom {class} {} {}", v.name, v.usage()).trim_end().to_string()).collect()
}

/// Parse `argv` (the verb, then its options and arguments) into the request geom(8) builds
/// for class `C` (sent to the kernel, or handed to the class library for userland verbs). Options come before arguments (geom(8) uses BSD getopt: the first
/// argument that is not an option ends them; `--` too).
pub fn parse<C: GeomClass>(argv: &[&str]) -> Result<CtlRequest, CommandError> {
    let Some((&verb, rest)) = argv.split_first() else { return err("No command given.".into()) };
    let Some(spec) = C::Verb::VERBS.iter().find(|v| v.name == verb) else {
        return err(format!("Unknown command: {verb}."));
    };
    let class = C::NAME.to_string_lossy().into_owned();
    let mut req = CtlRequest::new(&class, verb);
    if let Some(v) = C::VERSION {
        req = req.param("version", CtlValue::Uint32(v));
    }
    let (given, args) = options(spec, rest)?;
    // geom(8) keeps -v to itself (G_FLAG_VERBOSE): it says "Done." and tells a userland
    // verb through its flags, but sends nothing to the kernel.
    for o in spec.options.iter().filter(|o| !o.is_verbose_flag()) {
        let value = match given.iter().find(|(c, _)| *c == o.short) {
            Some((_, v)) => Some(value_of(o, v.as_deref())?),
            None => default_of(o),
        };
        if let Some(v) = value {
            req = req.param(o.name, v);
        }
    }
    for a in args {
        req = req.arg(a);
    }
    Ok(req.output(OUTPUT))
}

/// What a `geom CLASS VERB ...` command does for its user: what it printed, and the error it
/// exits with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// The error geom(8) prints (as `geom: <error>`) before exiting with status 1; `None`
    /// when the command succeeded.
    pub error: Option<String>,
    /// What it printed on standard output.
    pub stdout: String,
    /// What it printed on standard error besides the error (warnings).
    pub stderr: String,
}

impl Output {
    fn failed(msg: impl Into<String>) -> Output {
        Output { error: Some(msg.into()), ..Output::default() }
    }
}

/// Run a geom(8) command line for class `C` on `rt`, as `geom <class> <argv...>` does on
/// FreeBSD: `list` and `status` from the runtime's configuration; other verbs parsed
/// against the class's verbs; load the class if it is not loaded yet
/// (geom(8) kldloads `geom_<class>`); run userland verbs (`label`, `clear`, `dump`) here,
/// against the runtime's providers by name, and send the others to the kernel's ctlreq;
/// with `-v`, say `Done.` on success.
pub fn run<C: GeomClass + DeclaredModule>(rt: &Runtime, argv: &[&str]) -> Output {
    if let Some((&verb @ ("list" | "status"), rest)) = argv.split_first() {
        return run_standard(rt, &C::NAME.to_string_lossy(), verb, rest);
    }
    let req = match parse::<C>(argv) {
        Ok(req) => req,
        Err(e) => return Output::failed(e.0),
    };
    let name = C::NAME.to_string_lossy();
    if !rt.classes().iter().any(|c| *c == name) {
        if let Err(e) = rt.load::<C>() {
            return Output::failed(format!("geom_{} module not available! (error {e})", name.to_lowercase()));
        }
    }
    let spec = C::Verb::spec(req.verb().as_bytes());
    let verbose = spec.is_some_and(|v| v.verbose())
        && argv[1..].iter().take_while(|a| a.starts_with('-') && **a != "--").any(|a| a[1..].contains('v'));
    let local = spec.is_some_and(|v| v.local);
    let mut out = if local { run_userland::<C>(rt, &req, verbose) } else { run_kernel(rt, &req) };
    if out.error.is_none() && verbose {
        out.stdout.push_str("Done.\n");
    }
    out
}

/// A flag of geom(8)'s standard verbs.
const fn flag(short: char, name: &'static str, c_name: &'static CStr) -> OptSpec {
    OptSpec { short, name, c_name, kind: OptKind::Bool, default: OptDefault::Absent, c_default: None, help: "" }
}

/// The names a standard verb takes.
const NAMES: ArgSpec = ArgSpec { min: 0, max: u32::MAX, name: "[name ...]", dev: true };

/// `list [-a] [name ...]`.
const LIST: VerbSpec = VerbSpec {
    name: "list",
    c_name: c"list",
    options: &[flag('a', "all", c"all")],
    args: NAMES,
    local: true,
    loadkld: false,
    c_usage: c"[-a] [name ...]",
    help: "",
};

/// `status [-ags] [name ...]`.
const STATUS: VerbSpec = VerbSpec {
    name: "status",
    c_name: c"status",
    options: &[flag('a', "all", c"all"), flag('g', "geoms", c"geoms"), flag('s', "script", c"script")],
    args: NAMES,
    local: true,
    loadkld: false,
    c_usage: c"[-ags] [name ...]",
    help: "",
};

/// geom(8)'s own verbs for every class: `list [-a] [name ...]` and `status [-ags] [name
/// ...]`, read from the runtime's confxml.
fn run_standard(rt: &Runtime, class: &str, verb: &str, argv: &[&str]) -> Output {
    let spec = if verb == "list" { &LIST } else { &STATUS };
    let (given, names) = match options(spec, argv) {
        Ok(parsed) => parsed,
        Err(e) => return Output::failed(e.0),
    };
    let given: String = given.into_iter().map(|(c, _)| c).collect();
    let names = names.as_slice();
    let xml = rt.confxml();
    let all = given.contains('a');
    let result = if verb == "list" {
        crate::listing::list(&xml, class, all, names)
    } else {
        crate::listing::status(&xml, class, all, given.contains('g'), given.contains('s'), names)
    };
    match result {
        Ok(stdout) => Output { stdout, ..Output::default() },
        Err(e) => Output::failed(e),
    }
}

/// A verb of the class's userland library: what `geom_<class>.so` does on FreeBSD, through
/// the same [`run_local`], with the runtime's providers by name.
fn run_userland<C: GeomClass>(rt: &Runtime, req: &CtlRequest, verbose: bool) -> Output {
    let values = req.user_params();
    let params: Vec<Param<'_>> = values.iter().map(|(name, value)| Param { name, value }).collect();
    let mut env = HostEnv::new(rt);
    let (mut stdout, mut stderr) = (String::new(), String::new());
    let error = run_local::<C>(&params, verbose, &mut env, &mut stdout, &mut stderr);
    Output { error, stdout, stderr }
}

/// A kernel verb: the class's ctlreq answers.
fn run_kernel(rt: &Runtime, req: &CtlRequest) -> Output {
    let reply = rt.ctl(req);
    if !reply.is_ok() {
        let msg = reply.message.unwrap_or_else(|| geom_core::sys::errno::strerror(reply.error).to_owned());
        return Output::failed(msg);
    }
    let stderr = reply.message.map(|m| m + "\n").unwrap_or_default();
    Output { error: None, stdout: reply.output, stderr }
}

/// The options a command line gave, in order (`(letter, value)`), and the words after them.
pub type Getopt<'a> = (Vec<(char, Option<String>)>, Vec<&'a str>);

/// BSD getopt(3) as geom(8) uses it: options first, each letter at most once, a letter that
/// takes a value takes the rest of its word or the next word; the first word that is not an
/// option (or `--`) ends them. `takes_value(c)` says whether letter `c` is an option and
/// whether it takes a value (`None`: not an option).
pub fn getopt<'a>(argv: &[&'a str], takes_value: impl Fn(char) -> Option<bool>) -> Result<Getopt<'a>, CommandError> {
    let mut given: Vec<(char, Option<String>)> = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let a = argv[i];
        if a == "--" {
            i += 1;
            break;
        }
        let Some(letters) = a.strip_prefix('-').filter(|l| !l.is_empty()) else { break };
        for (at, c) in letters.char_indices() {
            let Some(valued) = takes_value(c) else {
                return err(format!("Invalid option -- '{c}'."));
            };
            if given.iter().any(|(g, _)| *g == c) {
                return err(format!("Option '{c}' specified twice."));
            }
            if !valued {
                given.push((c, None));
                continue;
            }
            // A valued option takes the rest of this word, or the next word.
            let tail = &letters[at + c.len_utf8()..];
            let value = if !tail.is_empty() {
                tail.to_string()
            } else {
                i += 1;
                match argv.get(i) {
                    Some(v) => v.to_string(),
                    None => return err(format!("Option requires an argument -- '{c}'.")),
                }
            };
            given.push((c, Some(value)));
            break;
        }
        i += 1;
    }
    Ok((given, argv[i.min(argv.len())..].to_vec()))
}

/// getopt over `spec`'s options; an unknown letter's message ends with the verb's usage.
fn options<'a>(spec: &VerbSpec, argv: &[&'a str]) -> Result<Getopt<'a>, CommandError> {
    getopt(argv, |c| spec.options.iter().find(|o| o.short == c).map(|o| o.kind != OptKind::Bool)).map_err(|e| {
        if e.0.starts_with("Invalid option") {
            CommandError(format!("{}\nusage: {} {}", e.0, spec.name, spec.usage()))
        } else {
            e
        }
    })
}

/// The parameter for an option the user gave.
fn value_of(o: &OptSpec, v: Option<&str>) -> Result<CtlValue, CommandError> {
    match (o.kind, v) {
        (OptKind::Bool, _) => Ok(CtlValue::Int(1)),
        (OptKind::Number, Some(v)) => match expand_number(v) {
            Some(n) => Ok(CtlValue::Intmax(n)),
            None => err(format!("Invalid value for '{}' argument.", o.short)),
        },
        (OptKind::String, Some(v)) => Ok(CtlValue::Ascii(v.to_string())),
        (_, None) => err(format!("Option requires an argument -- '{}'.", o.short)),
    }
}

/// The parameter geom(8) sends for an option the user left out.
fn default_of(o: &OptSpec) -> Option<CtlValue> {
    match (o.kind, o.default) {
        (OptKind::Bool, _) => Some(CtlValue::Int(0)),
        (_, OptDefault::Absent) => None,
        (_, OptDefault::Number(n)) => Some(CtlValue::Intmax(n)),
        (_, OptDefault::Str(s)) => Some(CtlValue::Ascii(s.to_string())),
    }
}

/// expand_number(3): an integer with an optional k, m, g, t, p or e suffix (powers of 1024,
/// either case); `None` for anything else or an overflow.
pub fn expand_number(s: &str) -> Option<i64> {
    let s = s.trim();
    let (digits, shift) = match s.chars().last()?.to_ascii_lowercase() {
        'k' => (&s[..s.len() - 1], 10),
        'm' => (&s[..s.len() - 1], 20),
        'g' => (&s[..s.len() - 1], 30),
        't' => (&s[..s.len() - 1], 40),
        'p' => (&s[..s.len() - 1], 50),
        'e' => (&s[..s.len() - 1], 60),
        'b' => (&s[..s.len() - 1], 0),
        _ => (s, 0),
    };
    let n: i64 = digits.parse().ok()?;
    n.checked_mul(1i64.checked_shl(shift)?)
}

#[cfg(test)]
mod tests {
    use super::expand_number;

    #[test]
    fn numbers_expand_like_expand_number() {
        assert_eq!(expand_number("64k"), Some(65536));
        assert_eq!(expand_number("1M"), Some(1 << 20));
        assert_eq!(expand_number("-1"), Some(-1));
        assert_eq!(expand_number("512"), Some(512));
        assert_eq!(expand_number("8e"), None, "overflow");
        assert_eq!(expand_number("k"), None);
        assert_eq!(expand_number("12x"), None);
    }
}
