//! The `ctlreq` target: geom(8) requests, from a command line or as a raw parameter set,
//! through every path that parses them.
//!
//! Input: a class byte (NOP, STRIPE, JOURNAL), a form byte, then either a parameter set
//! (records of kind, name and value: strings, raw bytes of any length, an output buffer) or
//! a command line (words separated by NUL bytes). Each request goes
//!
//! * through the class's derived parser over userland parameters (`Gctl::from_params`, what
//!   a class library sees): it returns a verb or records why not;
//! * for the class library's own verbs (`label`, `clear`, `dump`), through `run_local` on
//!   memory disks, as geom(8) would run them: libgeom's rules for disk access hold;
//! * to the kernel side, `Runtime::ctl` (the `gctl_req` built and validated as `geom_ctl.c`
//!   does, the class's ctlreq trampoline and the same parser): no invariant breaks, a refusal
//!   carries a message, and whatever the userland parse refused the kernel refuses too.
//!
//! A command line also goes through `command::run`, the `geom` tool's entry point. The
//! runtime is built once per process (a static) with the three classes loaded and no disks,
//! so requests cannot change it: every input is judged against the same state.

use std::ffi::CString;
use std::sync::OnceLock;

use geom_class_journal::Journal;
use geom_class_nop::Nop;
use geom_class_stripe::Stripe;
use geom_core::ctl::{Gctl, Param};
use geom_core::module::DeclaredModule;
use geom_core::userland::run_local;
use geom_core::verbs::OptKind;
use geom_core::{GeomClass, Verbs};
use geom_host::{command, CtlRequest, CtlValue, InvariantPolicy, Runtime, RuntimeConfig};

use crate::input::{Input, Writer};
use crate::memdisk::MemDisks;

/// The classes, by the index the first byte selects.
pub const CLASSES: [&str; 3] = ["NOP", "STRIPE", "JOURNAL"];

/// Form byte: the rest is a parameter set.
pub const FORM_PARAMS: u8 = 0;
/// Form byte: the rest is a command line.
pub const FORM_ARGV: u8 = 1;

/// Parameter record kind (the byte modulo 3): a string, sent with its NUL.
pub const KIND_ASCII: u8 = 0;
/// A raw value (an `int` or `intmax_t` is 4 or 8 of these bytes, as geom(8) sends them).
pub const KIND_BYTES: u8 = 1;
/// The writable `"output"` buffer; its size is the value read as a little-endian `u16`.
pub const KIND_OUTPUT: u8 = 2;

/// The harness.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let class = usize::from(input.u8()) % CLASSES.len();
    let form = input.u8();
    match class {
        0 => one::<Nop>(form, &mut input),
        1 => one::<Stripe>(form, &mut input),
        _ => one::<Journal>(form, &mut input),
    }
}

fn one<C: GeomClass + DeclaredModule>(form: u8, input: &mut Input<'_>) {
    if form % 2 == FORM_ARGV {
        let words: Vec<String> =
            input.rest().split(|&b| b == 0).map(|w| String::from_utf8_lossy(w).into_owned()).collect();
        let argv: Vec<&str> = words.iter().map(String::as_str).collect();
        command_line::<C>(&argv);
    } else {
        let (req, plain) = parameters::<C>(input);
        request::<C>(&req, plain);
    }
}

/// A parameter set: the class's `"class"`, then the records in order (a later record of
/// the same name replaces an earlier one, as `CtlRequest` does). Also whether every name
/// is free of NUL bytes (the kernel reads a name up to its first NUL, userland drops such
/// names: the two views agree only without them).
fn parameters<C: GeomClass>(input: &mut Input<'_>) -> (CtlRequest, bool) {
    let mut req = CtlRequest::new(&C::NAME.to_string_lossy(), "");
    let mut plain = true;
    while !input.is_empty() {
        let kind = input.u8();
        let name = String::from_utf8_lossy(input.short()).into_owned();
        plain &= !name.contains('\0');
        let value = input.long();
        req = match kind % 3 {
            KIND_ASCII => req.param(&name, CtlValue::Ascii(String::from_utf8_lossy(value).into_owned())),
            KIND_BYTES => req.param(&name, CtlValue::Bytes(value.to_vec())),
            _ => req.output(usize::from(Input::new(value).u16())),
        };
    }
    (req, plain)
}

/// The process's runtime: NOP, STRIPE and JOURNAL loaded, no disks, violations collected.
fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        let rt = Runtime::new(RuntimeConfig {
            name: "fuzz".into(),
            policy: InvariantPolicy::Collect,
            echo_console: false,
            ..RuntimeConfig::default()
        });
        rt.load::<Nop>().expect("NOP loads");
        rt.load::<Stripe>().expect("STRIPE loads");
        rt.load::<Journal>().expect("JOURNAL loads");
        rt
    })
}

fn assert_no_violations(rt: &Runtime, what: &dyn std::fmt::Debug) {
    let v = rt.violations();
    assert!(v.is_empty(), "invariants broken by {what:?}: {v:?}");
}

/// A command line, as the `geom` tool runs it and as geom(8) would parse it.
fn command_line<C: GeomClass + DeclaredModule>(argv: &[&str]) {
    let rt = runtime();
    let out = command::run::<C>(rt, argv);
    assert_no_violations(rt, &argv);
    if let Some(e) = &out.error {
        assert!(!e.is_empty(), "{argv:?} failed without a message");
    }
    match command::parse::<C>(argv) {
        Ok(req) => request::<C>(&req, true),
        Err(e) => assert!(!e.0.is_empty(), "{argv:?} refused without a message"),
    }
}

/// One request through the userland parser, the class library and the kernel.
fn request<C: GeomClass + DeclaredModule>(req: &CtlRequest, plain: bool) {
    let values = req.user_params();
    let params: Vec<Param<'_>> = values.iter().map(|(name, value)| Param { name, value }).collect();

    let mut g = Gctl::from_params(&params);
    let verb = g.ascii(c"verb").map(CString::from);
    let parsed_in_userland = match &verb {
        Some(v) => match C::Verb::from_gctl(&mut g, v) {
            Some(parsed) => {
                assert!(!g.has_error(), "parsed {:?} yet recorded an error", parsed.name());
                assert_eq!(parsed.name().as_bytes(), v.to_bytes());
                true
            }
            None => {
                assert!(g.take_error().is_some_and(|e| !e.is_empty()), "a refused request says why: {req:?}");
                false
            }
        },
        None => false,
    };

    let local = verb.as_ref().and_then(|v| C::Verb::spec(v.to_bytes())).is_some_and(|s| s.local);
    if local {
        let mut disks = MemDisks::standard();
        let (mut out, mut err) = (String::new(), String::new());
        let error = run_local::<C>(&params, false, &mut disks, &mut out, &mut err);
        assert!(disks.misuse.is_empty(), "{req:?} used the disks as libgeom cannot: {:?}", disks.misuse);
        if let Some(e) = error {
            assert!(!e.is_empty(), "{req:?} failed without a message");
        }
    }

    let rt = runtime();
    let reply = rt.ctl(req);
    assert_no_violations(rt, req);
    assert!(reply.is_ok() || reply.message.as_deref().is_some_and(|m| !m.is_empty()), "{req:?}: {reply:?}");
    // The kernel runs the same parser over the same parameters, after more checks of its
    // own (copyin validation, the version): what userland refused, it refuses.
    let same_class = req.class().as_bytes() == C::NAME.to_bytes();
    if plain && same_class && !local && !parsed_in_userland {
        assert!(!reply.is_ok(), "the kernel accepted what its parser refuses in userland: {req:?}");
    }
}

/// A command-line input (for seeds).
pub fn argv_input(class: usize, argv: &[&str]) -> Vec<u8> {
    Writer::new().u8(class as u8).u8(FORM_ARGV).bytes(argv.join("\0").as_bytes()).finish()
}

/// One parameter record (for seeds).
pub enum Record<'a> {
    /// A string (sent with its NUL).
    Ascii(&'a str, &'a str),
    /// Raw bytes.
    Bytes(&'a str, &'a [u8]),
    /// The output buffer of this many bytes.
    Output(u16),
}

/// A parameter-set input (for seeds).
pub fn params_input(class: usize, records: &[Record<'_>]) -> Vec<u8> {
    let mut w = Writer::new().u8(class as u8).u8(FORM_PARAMS);
    for r in records {
        w = match r {
            Record::Ascii(name, v) => w.u8(KIND_ASCII).short(name.as_bytes()).long(v.as_bytes()),
            Record::Bytes(name, v) => w.u8(KIND_BYTES).short(name.as_bytes()).long(v),
            Record::Output(n) => w.u8(KIND_OUTPUT).short(b"output").long(&n.to_le_bytes()),
        };
    }
    w.finish()
}

/// The parameter-set input for what geom(8) sends for `argv` (for seeds): the request
/// `command::parse` builds, each parameter with the type geom(8) gives it.
pub fn params_from_argv<C: GeomClass>(class: usize, argv: &[&str]) -> Vec<u8> {
    let req = command::parse::<C>(argv).expect("a seed's command line parses");
    let spec = C::Verb::spec(argv[0].as_bytes()).expect("a seed's verb exists");
    let values = req.user_params();
    let mut records = Vec::new();
    for (name, value) in &values {
        let name = name.to_str().expect("parameter names are ASCII");
        let is_string = matches!(name, "class" | "verb")
            || (name.starts_with("arg") && name[3..].parse::<u32>().is_ok())
            || spec.option(name).is_some_and(|o| o.kind == OptKind::String);
        records.push(if is_string {
            Record::Ascii(name, std::str::from_utf8(&value[..value.len() - 1]).expect("seed strings are UTF-8"))
        } else {
            Record::Bytes(name, value)
        });
    }
    records.push(Record::Output(4096));
    params_input(class, &records)
}
