//! Decoding geom(8)'s `class_commands` table (`sbin/geom/core/geom.h`, `G_LIB_VERSION` 5) out of
//! a loaded image, through the [`Image`] abstraction so that it can be tested on hand-made
//! bytes without a whole shared object.
//!
//! Layout (amd64): `struct g_command` is 544 bytes: `gc_name` @0, `gc_flags` u32 @8, `gc_func`
//! @16, `gc_options[16]` @24, `gc_usage` @536; `struct g_option` is 32 bytes: `go_char` @0,
//! `go_name` @8, `go_val` @16, `go_type` u32 @24. The table ends with an entry whose
//! `gc_name` is NULL; each option list ends with an entry whose `go_name` is NULL.

use std::borrow::Cow;
use std::fmt;

use super::{Findings, Rule};

/// `sizeof(struct g_command)`.
pub(crate) const G_COMMAND_SIZE: u64 = 544;
/// `sizeof(struct g_option)`.
pub(crate) const G_OPTION_SIZE: u64 = 32;
/// `G_OPT_MAX`.
pub(crate) const G_OPT_MAX: u64 = 16;
/// `G_FLAG_VERBOSE | G_FLAG_LOADKLD`.
const KNOWN_FLAGS: u32 = 0x3;
/// `G_TYPE_MASK`.
const G_TYPE_MASK: u32 = 0x0f;
/// `G_TYPE_MULTI`: the option may be repeated (geom(8) numbers the parameters).
const G_TYPE_MULTI: u32 = 0x20;

/// What a pointer-sized field of a loaded shared object holds once `rtld` has relocated it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DynPtr {
    /// Zero, no relocation.
    Null,
    /// An address inside the object.
    Addr(u64),
    /// A symbol of another object (libc, libgeom).
    Import(String),
    /// A non-zero value with no relocation: a constant such as `G_VAL_OPTIONAL` ((void *)-1),
    /// not an address (rtld would not adjust it).
    Constant(u64),
    /// Unreadable, or a relocation that cannot make a pointer; the text says which.
    Bad(String),
}

/// The section an address falls in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Region {
    /// Section name.
    pub name: String,
    /// `SHF_WRITE`.
    pub writable: bool,
    /// `SHF_EXECINSTR`.
    pub exec: bool,
}

/// A loaded image, seen by address.
pub(crate) trait Image {
    /// The bytes from `addr` to the end of the section holding it (zeros for `SHT_NOBITS`),
    /// or `None` if no loaded section holds `addr`.
    fn bytes_from(&self, addr: u64) -> Option<Cow<'_, [u8]>>;
    /// What the 8-byte pointer stored at `addr` holds after relocation.
    fn pointer(&self, addr: u64) -> DynPtr;
    /// The section holding `addr`.
    fn region(&self, addr: u64) -> Option<Region>;
    /// A symbol defined exactly at `addr`, for messages.
    fn symbol_at(&self, addr: u64) -> Option<String>;

    /// `len` bytes at `addr`, if they lie in one section.
    fn bytes(&self, addr: u64, len: usize) -> Option<Cow<'_, [u8]>> {
        match self.bytes_from(addr)? {
            Cow::Borrowed(b) => b.get(..len).map(Cow::Borrowed),
            Cow::Owned(b) => b.get(..len).map(|s| Cow::Owned(s.to_vec())),
        }
    }
    /// The little-endian `u32` at `addr`.
    fn u32_at(&self, addr: u64) -> Option<u32> {
        self.bytes(addr, 4).map(|b| u32::from_le_bytes(b[..4].try_into().expect("4 bytes")))
    }
    /// The NUL-terminated string at `addr`.
    fn cstr(&self, addr: u64) -> Option<String> {
        let b = self.bytes_from(addr)?;
        let end = b.iter().position(|&c| c == 0)?;
        Some(String::from_utf8_lossy(&b[..end]).into_owned())
    }
    /// A short name for an address: `symbol` or `section+0xoff`-style `0xaddr (section)`.
    fn describe(&self, p: &DynPtr) -> String {
        match p {
            DynPtr::Null => "NULL".to_owned(),
            DynPtr::Addr(a) => match (self.symbol_at(*a), self.region(*a)) {
                (Some(s), _) => s,
                (None, Some(r)) => format!("{a:#x} ({})", r.name),
                (None, None) => format!("{a:#x} (unmapped)"),
            },
            DynPtr::Import(n) => format!("{n} (imported)"),
            DynPtr::Constant(v) => format!("unrelocated constant {v:#x}"),
            DynPtr::Bad(why) => why.clone(),
        }
    }
}

/// A geom(8) option's value type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionType {
    /// `G_TYPE_BOOL`: a flag.
    Bool,
    /// `G_TYPE_STRING`.
    String,
    /// `G_TYPE_NUMBER` (`expand_number` syntax).
    Number,
}

impl fmt::Display for OptionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OptionType::Bool => "bool",
            OptionType::String => "string",
            OptionType::Number => "number",
        })
    }
}

/// An option's `go_val`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionDefault {
    /// NULL: a BOOL, or an option that must be given.
    None,
    /// `G_VAL_OPTIONAL`: may be omitted, no default sent.
    Optional,
    /// A default value.
    Value(String),
}

/// One decoded `struct g_option`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandOption {
    /// `go_char`: the getopt letter.
    pub letter: char,
    /// `go_name`: the long name and request parameter name.
    pub name: String,
    /// `go_type & G_TYPE_MASK`.
    pub typ: OptionType,
    /// `G_TYPE_MULTI` is set.
    pub multi: bool,
    /// `go_val`.
    pub default: OptionDefault,
}

/// One decoded `struct g_command` (a geom(8) verb).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// `gc_name`.
    pub name: String,
    /// `gc_flags` (`G_FLAG_VERBOSE` 1, `G_FLAG_LOADKLD` 2).
    pub flags: u32,
    /// `gc_func`: the userland handler's symbol (or address), `None` when the verb goes to
    /// the kernel.
    pub func: Option<String>,
    /// `gc_options` up to the terminator.
    pub options: Vec<CommandOption>,
    /// `gc_usage`.
    pub usage: String,
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.usage)?;
        let mut flags = Vec::new();
        if self.flags & 1 != 0 {
            flags.push("VERBOSE");
        }
        if self.flags & 2 != 0 {
            flags.push("LOADKLD");
        }
        if !flags.is_empty() {
            write!(f, "  [{}]", flags.join("|"))?;
        }
        match &self.func {
            Some(func) => writeln!(f, "  {func}")?,
            None => writeln!(f, "  -> kernel")?,
        }
        for o in &self.options {
            let default = match &o.default {
                OptionDefault::None => "-".to_owned(),
                OptionDefault::Optional => "(optional)".to_owned(),
                OptionDefault::Value(v) => format!("{v:?}"),
            };
            let multi = if o.multi { " multi" } else { "" };
            writeln!(f, "    -{} {} {}{multi} {default}", o.letter, o.name, o.typ)?;
        }
        Ok(())
    }
}

/// Whether `s` is a number `expand_number(3)` accepts as a default: digits with an optional
/// sign and one k/m/g/t/p/e suffix (either case).
pub(crate) fn is_number(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    let digits = s.strip_suffix(|c: char| "kmgtpeKMGTPE".contains(c)).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Decode the table at `addr` (the `class_commands` symbol). Findings go to
/// [`Rule::LibCommands`].
pub(crate) fn decode_commands(img: &dyn Image, addr: u64, f: &mut Findings) -> Vec<Command> {
    let rule = Rule::LibCommands;
    match img.region(addr) {
        None => {
            f.push(rule, format!("class_commands at {addr:#x} lies in no loaded section"));
            return Vec::new();
        }
        Some(r) if !r.writable => f.push(
            rule,
            format!(
                "class_commands is in {}, which is read-only: geom(8) marks given options by writing G_TYPE_DONE \
                 into go_type and would fault",
                r.name
            ),
        ),
        Some(_) => {}
    }
    let mut out = Vec::new();
    for i in 0.. {
        let base = addr + i * G_COMMAND_SIZE;
        if img.bytes(base, G_COMMAND_SIZE as usize).is_none() {
            f.push(
                rule,
                format!(
                    "class_commands[{i}] runs past the end of its section: the table has no terminating entry \
                     with a NULL gc_name, so geom(8) reads beyond it"
                ),
            );
            break;
        }
        let name_ptr = img.pointer(base);
        if name_ptr == DynPtr::Null {
            break;
        }
        let name = match &name_ptr {
            DynPtr::Addr(a) => img.cstr(*a),
            _ => None,
        };
        let Some(name) = name else {
            f.push(rule, format!("class_commands[{i}]: gc_name points to {}, not a string", img.describe(&name_ptr)));
            continue;
        };
        let at = format!("class_commands[{i}] {name:?}");
        let flags = img.u32_at(base + 8).unwrap_or(0);
        if flags & !KNOWN_FLAGS != 0 {
            f.push(
                rule,
                format!(
                    "{at}: gc_flags {flags:#x} has bits other than G_FLAG_VERBOSE (1) and G_FLAG_LOADKLD (2), \
                     which geom(8) does not define"
                ),
            );
        }
        let func_ptr = img.pointer(base + 16);
        let func = match &func_ptr {
            DynPtr::Null => None,
            DynPtr::Addr(a) if img.region(*a).is_some_and(|r| r.exec) => Some(img.describe(&func_ptr)),
            other => {
                f.push(
                    rule,
                    format!(
                        "{at}: gc_func points to {}, not into the library's code: geom(8) calls it",
                        img.describe(other)
                    ),
                );
                Some(img.describe(other))
            }
        };
        let options = decode_options(img, base + 24, &at, f);
        let usage_ptr = img.pointer(base + 536);
        let usage = match &usage_ptr {
            DynPtr::Addr(a) => img.cstr(*a),
            _ => None,
        };
        let usage = usage.unwrap_or_else(|| {
            f.push(
                rule,
                format!(
                    "{at}: gc_usage points to {}, not a string: geom(8) prints it for `geom <class> help`",
                    img.describe(&usage_ptr)
                ),
            );
            String::new()
        });
        out.push(Command { name, flags, func, options, usage });
    }
    out
}

/// The option array of one command.
fn decode_options(img: &dyn Image, base: u64, at: &str, f: &mut Findings) -> Vec<CommandOption> {
    let rule = Rule::LibCommands;
    let mut out: Vec<CommandOption> = Vec::new();
    let mut terminated = false;
    for j in 0..G_OPT_MAX {
        let o = base + j * G_OPTION_SIZE;
        let name_ptr = img.pointer(o + 8);
        if name_ptr == DynPtr::Null {
            terminated = true;
            break;
        }
        let Some(name) = (match &name_ptr {
            DynPtr::Addr(a) => img.cstr(*a),
            _ => None,
        }) else {
            f.push(rule, format!("{at} option {j}: go_name points to {}, not a string", img.describe(&name_ptr)));
            continue;
        };
        let oat = format!("{at} option {name:?}");
        let letter = img.bytes(o, 1).map_or(0, |b| b[0]);
        if !letter.is_ascii_graphic() {
            f.push(rule, format!("{oat}: go_char {letter:#x} is not a printable getopt letter"));
        } else if out.iter().any(|p| p.letter == letter as char) {
            f.push(rule, format!("{oat}: letter -{} is used twice: getopt cannot tell them apart", letter as char));
        }
        let go_type = img.u32_at(o + 24).unwrap_or(0);
        let typ = match go_type & G_TYPE_MASK {
            1 => Some(OptionType::Bool),
            2 => Some(OptionType::String),
            3 => Some(OptionType::Number),
            _ => None,
        };
        if typ.is_none() || go_type & !(G_TYPE_MASK | G_TYPE_MULTI) != 0 {
            f.push(
                rule,
                format!(
                    "{oat}: go_type {go_type:#x} is not G_TYPE_BOOL (1), G_TYPE_STRING (2) or G_TYPE_NUMBER (3) \
                     (optionally | G_TYPE_MULTI): geom(8) owns the other bits (G_TYPE_DONE, the counter)"
                ),
            );
        }
        let typ = typ.unwrap_or(OptionType::String);
        let val = img.pointer(o + 16);
        let default = match (&val, typ) {
            (DynPtr::Null, _) => OptionDefault::None,
            (_, OptionType::Bool) => {
                f.push(rule, format!("{oat}: a BOOL option with go_val {}: geom(8) expects NULL", img.describe(&val)));
                OptionDefault::None
            }
            (DynPtr::Constant(u64::MAX), _) => OptionDefault::Optional,
            (DynPtr::Addr(a), _) => match img.cstr(*a) {
                Some(s) => {
                    if typ == OptionType::Number && !is_number(&s) {
                        f.push(rule, format!("{oat}: NUMBER default {s:?} is not a number expand_number(3) accepts"));
                    }
                    OptionDefault::Value(s)
                }
                None => {
                    f.push(rule, format!("{oat}: go_val {} is not a string", img.describe(&val)));
                    OptionDefault::None
                }
            },
            (other, _) => {
                f.push(
                    rule,
                    format!(
                        "{oat}: go_val is {}: it must be NULL, G_VAL_OPTIONAL ((void *)-1) or a default string",
                        img.describe(other)
                    ),
                );
                OptionDefault::None
            }
        };
        out.push(CommandOption { letter: letter as char, name, typ, multi: go_type & G_TYPE_MULTI != 0, default });
    }
    if !terminated {
        f.push(
            rule,
            format!("{at}: all {G_OPT_MAX} option slots are used: geom(8) needs a NULL go_name terminator within them"),
        );
    }
    out
}
