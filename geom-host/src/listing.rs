//! geom(8)'s generic `list` and `status` commands, computed from `kern.geom.confxml`.
//!
//! FreeBSD's `geom CLASS list` and `geom CLASS status` are not kernel verbs: geom(8) reads the
//! configuration XML, turns it into libgeom's tree (`struct gmesh`) and prints from that
//! (`sbin/geom/core/geom.c` @ 6149dd85: `std_list`, `list_one_geom`, `list_one_provider`,
//! `list_one_consumer`, `std_status`, `status_one_geom`, `status_one_geom_prs`,
//! `status_one_consumer`; `lib/libgeom/geom_xml2tree.c`). This module does the same with the XML
//! a [`Runtime`](crate::Runtime) produces ([`Runtime::confxml`](crate::Runtime::confxml)):
//!
//! * [`Mesh::parse`] builds the tree ([`Mesh`], [`Class`], [`Geom`], [`Provider`],
//!   [`Consumer`]), the way libgeom does;
//! * [`list`] and [`status`] return exactly the text geom(8) prints, or the message it prints
//!   as an error;
//! * [`humanize_number`] is libutil's `humanize_number(3)`, which `list` uses for sizes.
//!
//! What libgeom does that shows in the output, and that this module reproduces:
//!
//! * **Every list comes out reversed.** libgeom inserts each class, geom, provider, consumer
//!   and configuration entry at the head of its list, so geom(8) shows them in the opposite
//!   order of the XML. The kernel (and this runtime) in turn puts new geoms, providers and
//!   consumers at the head of theirs, so geoms and their parts come out oldest first, while
//!   a dumpconf's keys come out last first: a class that writes `<ID>` then `<State>` is
//!   listed `State:` then `ID:`.
//! * **Element text is trimmed piece by piece.** The XML parser (expat) hands text over in
//!   pieces that end at each entity or character reference and at each line end; libgeom
//!   strips white space from both ends of every piece. `a &amp; b` therefore reads `a&b`.
//! * **Empty text is NULL.** An empty element gives a NULL value, which FreeBSD's `printf`
//!   prints as `(null)` (`ident: (null)` in `geom disk list`). In this data model an empty
//!   string stands for that NULL.
//! * **`<wither/>`** in a geom or provider becomes a configuration entry named `wither` with
//!   a NULL value, so a withering geom lists `wither: (null)`.
//! * Character references are Unicode code points: the kernel escapes each byte above 0x7e of
//!   a name as `&#xNN;`, which reads back as U+00NN, exactly as on FreeBSD.
//!
//! The parser is hand-written for this regular, small input, but it is strict: anything that
//! is not well-formed XML, nests deeper than libgeom's 19 levels, or leaves a reference
//! unresolved (where libgeom would crash) is a [`ParseError`], never a panic.
//!
//! ```
//! use geom_host::listing::{humanize_number, Mesh, Scale, HN_B, HN_DECIMAL, HN_NOSPACE};
//!
//! let xml = "<mesh><class id=\"0x1\"><name>MD</name>\
//!            <geom id=\"0x2\"><class ref=\"0x1\"/><name>md0</name><rank>1</rank>\
//!            <provider id=\"0x3\"><geom ref=\"0x2\"/><mode>r0w0e0</mode><name>md0</name>\
//!            <mediasize>3145728</mediasize><sectorsize>512</sectorsize>\
//!            <stripesize>0</stripesize><stripeoffset>0</stripeoffset></provider>\
//!            </geom></class></mesh>";
//! let mesh = Mesh::parse(xml).unwrap();
//! let pp = &mesh.classes[0].geoms[0].providers[0];
//! assert_eq!((pp.name.as_str(), pp.mediasize), ("md0", 3 << 20));
//! let size = humanize_number(5, pp.mediasize, "", Scale::Auto, HN_B | HN_NOSPACE | HN_DECIMAL);
//! assert_eq!(size.as_deref(), Some("3.0M"));
//! ```

use std::collections::HashMap;
use std::fmt;

/// libgeom's parser keeps one text buffer per open element in a 20-slot array indexed from 1:
/// deeper documents overflow it. Ours refuses them.
const MAX_DEPTH: usize = 19;

/// geom(8)'s component buffer in `status_one_consumer` (`char buf[256]`, so 255 bytes of text).
const COMPONENT_MAX: usize = 255;

/// The message geom(8) prints when libgeom cannot read the XML: `errc(…, error, "Cannot get
/// GEOM tree")` with the parser's `EILSEQ`.
const TREE_ERROR: &str = "Cannot get GEOM tree: Illegal byte sequence";

/// The whole configuration, libgeom's `struct gmesh`.
///
/// Lists are in libgeom's order (the reverse of the XML's; see the [module](self) docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mesh {
    /// The classes.
    pub classes: Vec<Class>,
}

/// One class (`struct gclass`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Class {
    /// Its name (`<name>`), e.g. `NOP`.
    pub name: String,
    /// A `<config>` directly inside the class, as key/value pairs (the kernel writes none).
    pub config: Vec<(String, String)>,
    /// Its geoms.
    pub geoms: Vec<Geom>,
}

/// One geom (`struct ggeom`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Geom {
    /// Its name.
    pub name: String,
    /// Its rank (`<rank>`).
    pub rank: u32,
    /// The geom's dumpconf output: one `(element name, text)` pair per element, in libgeom's
    /// order; an empty text is libgeom's NULL. A withering geom has a `("wither", "")` entry.
    pub config: Vec<(String, String)>,
    /// Its providers.
    pub providers: Vec<Provider>,
    /// Its consumers.
    pub consumers: Vec<Consumer>,
}

/// One provider (`struct gprovider`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Provider {
    /// Its name, e.g. `md0.nop`.
    pub name: String,
    /// Its access counts as the XML writes them, e.g. `r1w1e0`.
    pub mode: String,
    /// Size in bytes.
    pub mediasize: i64,
    /// Sector size in bytes.
    pub sectorsize: u32,
    /// Stripe size in bytes (libgeom's `off_t`).
    pub stripesize: i64,
    /// Stripe offset in bytes.
    pub stripeoffset: i64,
    /// The dumpconf output for this provider, like [`Geom::config`]; a withering provider has
    /// a `("wither", "")` entry.
    pub config: Vec<(String, String)>,
}

/// One consumer (`struct gconsumer`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Consumer {
    /// The provider it is attached to, if any (the XML's `<provider ref>`, resolved).
    pub provider: Option<ProviderRef>,
    /// Its access counts, e.g. `r1w1e1`.
    pub mode: String,
    /// The dumpconf output for this consumer, like [`Geom::config`].
    pub config: Vec<(String, String)>,
}

/// Where a consumer's provider is in the [`Mesh`]: libgeom's resolved pointer, as indexes.
///
/// Invariant (for a `ProviderRef` made by [`Mesh::parse`]): `mesh.classes[class].geoms[geom]
/// .providers[provider]` exists and is named `name`; [`Mesh::provider`] looks it up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderRef {
    /// The provider's name.
    pub name: String,
    /// Index of its class in [`Mesh::classes`].
    pub class: usize,
    /// Index of its geom in [`Class::geoms`].
    pub geom: usize,
    /// Index of the provider in [`Geom::providers`].
    pub provider: usize,
}

/// Why [`Mesh::parse`] refused its input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset in the input where the problem was found.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

impl std::error::Error for ParseError {}

impl Mesh {
    /// Parse `kern.geom.confxml` (as [`Runtime::confxml`](crate::Runtime::confxml) returns it)
    /// into libgeom's tree. See the [module](self) docs for what libgeom does to the text.
    ///
    /// Errors: input that is not well-formed XML (unbalanced or mismatched tags, undefined
    /// entities, invalid characters, text outside the root element, DOCTYPE or CDATA), more
    /// than 19 nested elements, a `<geom>` outside a `<class>` or a `<provider>`/`<consumer>`
    /// outside a `<geom>`, an empty or missing number where libgeom reads one, and an id
    /// reference that does not resolve (a consumer's `<provider ref>` must name a provider).
    pub fn parse(xml: &str) -> Result<Mesh, ParseError> {
        Parser { s: xml, pos: 0, open: Vec::new(), root_done: false, b: Builder::default() }.run()
    }

    /// The class named exactly `name`.
    pub fn class(&self, name: &str) -> Option<&Class> {
        self.classes.iter().find(|c| c.name == name)
    }

    /// The provider a [`ProviderRef`] points at.
    pub fn provider(&self, r: &ProviderRef) -> Option<&Provider> {
        self.classes.get(r.class)?.geoms.get(r.geom)?.providers.get(r.provider)
    }
}

// ---------------------------------------------------------------------------------------------
// humanize_number(3)

/// `HN_DECIMAL`: one decimal for values below 10 (after scaling).
pub const HN_DECIMAL: u32 = 0x01;
/// `HN_NOSPACE`: no space between the number and the prefix.
pub const HN_NOSPACE: u32 = 0x02;
/// `HN_B`: `B` as the prefix of unscaled values.
pub const HN_B: u32 = 0x04;
/// `HN_DIVISOR_1000`: scale by 1000 (prefixes `k`, `M`, …) instead of 1024 (`K`, `M`, …).
pub const HN_DIVISOR_1000: u32 = 0x08;
/// `HN_IEC_PREFIXES`: IEC prefixes (`Ki`, `Mi`, …), always by 1024.
pub const HN_IEC_PREFIXES: u32 = 0x10;

/// How [`humanize_number`] scales.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// `HN_AUTOSCALE`: divide until the number fits the buffer.
    Auto,
    /// Divide exactly this many times (at most 6).
    Fixed(u32),
}

/// libutil's `humanize_number(buf, len, quotient, suffix, scale, flags)`, returning what it
/// writes into a buffer of `len` bytes (like `snprintf`, at most `len - 1` bytes of text), or
/// `None` where it returns -1 (a buffer too small for one digit, the prefix and the suffix;
/// a fixed scale above 6; `HN_DIVISOR_1000` with `HN_IEC_PREFIXES`).
///
/// The rules are FreeBSD's (`lib/libutil/humanize_number.c` @ 589bc2ca): the divisor is 1024
/// unless `HN_DIVISOR_1000`; with [`Scale::Auto`] the value is divided while it has more
/// digits than the buffer leaves room for, or is one below that limit and would round up to
/// it, at most 6 times; a scaled value below 10 (9 with a remainder under 95%) gets one
/// rounded decimal with `HN_DECIMAL`; otherwise the value is rounded to the nearest whole
/// unit. geom(8) calls it with a 5-byte buffer, [`Scale::Auto`] and
/// `HN_B | HN_NOSPACE | HN_DECIMAL`.
///
/// ```
/// use geom_host::listing::{humanize_number, Scale, HN_B, HN_DECIMAL, HN_NOSPACE};
///
/// let h = |n| humanize_number(5, n, "", Scale::Auto, HN_B | HN_NOSPACE | HN_DECIMAL).unwrap();
/// assert_eq!(h(512), "512B");
/// assert_eq!(h(1 << 30), "1.0G");
/// assert_eq!(h(100 << 20), "100M");
/// ```
pub fn humanize_number(len: usize, quotient: i64, suffix: &str, scale: Scale, flags: u32) -> Option<String> {
    const MAXSCALE: u32 = 6;
    if let Scale::Fixed(s) = scale {
        if s > MAXSCALE {
            return None;
        }
    }
    if flags & HN_DIVISOR_1000 != 0 && flags & HN_IEC_PREFIXES != 0 {
        return None;
    }
    let iec = flags & HN_IEC_PREFIXES != 0;
    let (divisor, cut, prefixes): (i64, i64, [&str; 7]) = if iec {
        (1024, 973, ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"])
    } else if flags & HN_DIVISOR_1000 != 0 {
        (1000, 950, ["", "k", "M", "G", "T", "P", "E"])
    } else {
        (1024, 973, ["", "K", "M", "G", "T", "P", "E"])
    };
    // Room taken besides the digits: the prefix, then a sign, a space and the suffix.
    let mut baselen: usize = if iec { 2 } else { 1 };
    let (sign, mut q) = if quotient < 0 { (-1i64, quotient.wrapping_neg()) } else { (1, quotient) };
    baselen += if sign < 0 { 2 } else { 1 };
    let sep = if flags & HN_NOSPACE != 0 {
        ""
    } else {
        baselen += 1;
        " "
    };
    baselen += suffix.len();
    if len < baselen + 1 {
        return None;
    }
    let mut rem: i64 = 0;
    let mut i: u32 = 0;
    match scale {
        Scale::Auto => {
            let max = (0..(len - baselen).min(19)).fold(1i64, |m, _| m.saturating_mul(10));
            while (q >= max || (q == max - 1 && (rem >= cut || rem >= divisor / 2))) && i < MAXSCALE {
                rem = q % divisor;
                q /= divisor;
                i += 1;
            }
        }
        Scale::Fixed(s) => {
            while i < s {
                rem = q % divisor;
                q /= divisor;
                i += 1;
            }
        }
    }
    let prefix = if i == 0 && flags & HN_B != 0 { "B" } else { prefixes[i as usize] };
    let text = if ((q == 9 && rem < cut) || q < 9) && i > 0 && flags & HN_DECIMAL != 0 {
        let tenths = (rem * 10 + divisor / 2) / divisor;
        let whole = q + tenths / 10;
        format!("{}.{}{sep}{prefix}{suffix}", sign * whole, tenths % 10)
    } else {
        let whole = q.wrapping_add((rem + divisor / 2) / divisor);
        format!("{}{sep}{prefix}{suffix}", sign.wrapping_mul(whole))
    };
    Some(truncate(text, len - 1))
}

/// At most `max` bytes of `s` (cut at a character boundary).
fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

// ---------------------------------------------------------------------------------------------
// list and status

/// `printf("%s", s)` where an empty string stands for NULL.
fn nul(s: &str) -> &str {
    if s.is_empty() {
        "(null)"
    } else {
        s
    }
}

/// `printf("%*s", width, s)`: right-justified in `width` bytes.
fn pad(out: &mut String, width: usize, s: &str) {
    for _ in s.len()..width {
        out.push(' ');
    }
    out.push_str(s);
}

/// Parse, and find the class geom(8) means by `class`: the argument upper-cased (ASCII, as
/// `set_class_name` does) and compared exactly. `verb` is the command name for the error a
/// missing class gives (`std_available` refuses the command before it runs).
fn load(xml: &str, class: &str, verb: &str) -> Result<(Mesh, usize, String), String> {
    let mesh = Mesh::parse(xml).map_err(|_| TREE_ERROR.to_owned())?;
    let gclass = class.to_ascii_uppercase();
    match mesh.classes.iter().position(|c| c.name == gclass) {
        Some(i) => Ok((mesh, i, gclass)),
        None => Err(format!("Command '{verb}' not available; try 'load' first.")),
    }
}

/// `find_geom`: the first geom named `name`, after dropping a leading `/dev/`.
fn find_geom<'m>(class: &'m Class, name: &str) -> Option<&'m Geom> {
    let name = name.strip_prefix("/dev/").unwrap_or(name);
    class.geoms.iter().find(|g| g.name == name)
}

/// The size lines shared by providers and consumers' providers.
fn list_sizes(out: &mut String, pp: &Provider, prefix: &str) {
    let human = humanize_number(5, pp.mediasize, "", Scale::Auto, HN_B | HN_NOSPACE | HN_DECIMAL).unwrap_or_default();
    out.push_str(&format!("Name: {}\n", nul(&pp.name)));
    out.push_str(&format!("{prefix}Mediasize: {} ({human})\n", pp.mediasize));
    out.push_str(&format!("{prefix}Sectorsize: {}\n", pp.sectorsize));
    if pp.stripesize > 0 || pp.stripeoffset > 0 {
        out.push_str(&format!("{prefix}Stripesize: {}\n", pp.stripesize as u64));
        out.push_str(&format!("{prefix}Stripeoffset: {}\n", pp.stripeoffset as u64));
    }
}

fn list_config(out: &mut String, config: &[(String, String)], prefix: &str) {
    for (k, v) in config {
        out.push_str(&format!("{prefix}{k}: {}\n", nul(v)));
    }
}

/// `list_one_geom`.
fn list_one_geom(out: &mut String, mesh: &Mesh, gp: &Geom) {
    const PREFIX: &str = "   ";
    out.push_str(&format!("Geom name: {}\n", nul(&gp.name)));
    list_config(out, &gp.config, "");
    if !gp.providers.is_empty() {
        out.push_str("Providers:\n");
        for (n, pp) in gp.providers.iter().enumerate() {
            out.push_str(&format!("{}. ", n + 1));
            list_sizes(out, pp, PREFIX);
            out.push_str(&format!("{PREFIX}Mode: {}\n", nul(&pp.mode)));
            list_config(out, &pp.config, PREFIX);
        }
    }
    if !gp.consumers.is_empty() {
        out.push_str("Consumers:\n");
        for (n, cp) in gp.consumers.iter().enumerate() {
            out.push_str(&format!("{}. ", n + 1));
            match cp.provider.as_ref().and_then(|r| mesh.provider(r)) {
                None => out.push_str("[no provider]\n"),
                Some(pp) => {
                    list_sizes(out, pp, PREFIX);
                    out.push_str(&format!("{PREFIX}Mode: {}\n", nul(&cp.mode)));
                }
            }
            list_config(out, &cp.config, PREFIX);
        }
    }
    out.push('\n');
}

/// What `geom CLASS list [-a] [name ...]` prints (`std_list`).
///
/// * `class` is compared with the class names after ASCII upper-casing, as geom(8) does
///   (`nop` finds `NOP`).
/// * Without names, every geom of the class that has a provider is listed; `all` (`-a`) lists
///   the geoms without providers too. Names select geoms by geom name (a leading `/dev/` is
///   dropped), in the order given; `all` then has no effect.
/// * Each geom: `Geom name:`, its configuration as `Key: value` lines, then `Providers:` and
///   `Consumers:` (each omitted when empty) with numbered entries: `Name:`, `Mediasize: N
///   (human)`, `Sectorsize:`, `Stripesize:`/`Stripeoffset:` when either is non-zero, `Mode:`
///   (the consumer's own mode for a consumer) and the entry's configuration indented by three
///   spaces; a consumer attached to nothing shows `[no provider]`. A blank line ends each geom.
///
/// Errors, as geom(8) prints them (without its `geom: ` prefix): `Cannot get GEOM tree:
/// Illegal byte sequence` for XML [`Mesh::parse`] refuses, `Command 'list' not available; try
/// 'load' first.` for a class not in the XML, and `Class 'NOP' does not have an instance named
/// 'x'.` for a name that is no geom of the class (geom(8) has printed the geoms named before
/// it by then; this function returns only the error).
///
/// ```
/// let xml = "<mesh><class id=\"0x1\"><name>MD</name>\
///            <geom id=\"0x2\"><class ref=\"0x1\"/><name>md0</name><rank>1</rank>\
///            <provider id=\"0x3\"><geom ref=\"0x2\"/><mode>r1w0e0</mode><name>md0</name>\
///            <mediasize>3145728</mediasize><sectorsize>512</sectorsize>\
///            <stripesize>0</stripesize><stripeoffset>0</stripeoffset>\
///            <config><type>malloc</type><length>3145728</length></config></provider>\
///            </geom></class></mesh>";
/// let text = geom_host::listing::list(xml, "md", false, &[]).unwrap();
/// assert_eq!(
///     text,
///     "Geom name: md0\n\
///      Providers:\n\
///      1. Name: md0\n   \
///      Mediasize: 3145728 (3.0M)\n   \
///      Sectorsize: 512\n   \
///      Mode: r1w0e0\n   \
///      length: 3145728\n   \
///      type: malloc\n\
///      \n"
/// );
/// assert_eq!(
///     geom_host::listing::list(xml, "MD", false, &["md9"]),
///     Err("Class 'MD' does not have an instance named 'md9'.".to_owned())
/// );
/// ```
pub fn list(xml: &str, class: &str, all: bool, names: &[&str]) -> Result<String, String> {
    let (mesh, ci, gclass) = load(xml, class, "list")?;
    let cls = &mesh.classes[ci];
    let mut out = String::new();
    if names.is_empty() {
        for gp in cls.geoms.iter().filter(|g| all || !g.providers.is_empty()) {
            list_one_geom(&mut out, &mesh, gp);
        }
    } else {
        for name in names {
            let Some(gp) = find_geom(cls, name) else {
                return Err(format!("Class '{gclass}' does not have an instance named '{name}'."));
            };
            list_one_geom(&mut out, &mesh, gp);
        }
    }
    Ok(out)
}

/// The first configuration value named `state` (any case), as `strcasecmp` finds it.
fn first_state(config: &[(String, String)]) -> Option<&str> {
    config.iter().find(|(k, _)| k.eq_ignore_ascii_case("state")).map(|(_, v)| nul(v))
}

/// `status_one_consumer`: `provider`, `provider (state)`, `provider (synchronized)` or
/// `provider (state, synchronized)` (the last matching entries win); `None` when detached.
fn component(mesh: &Mesh, cp: &Consumer) -> Option<String> {
    let pp = mesh.provider(cp.provider.as_ref()?)?;
    let mut state = None;
    let mut sync = None;
    for (k, v) in &cp.config {
        if k.eq_ignore_ascii_case("state") {
            state = Some(nul(v));
        }
        if k.eq_ignore_ascii_case("synchronized") {
            sync = Some(nul(v));
        }
    }
    let name = nul(&pp.name);
    let text = match (state, sync) {
        (None, None) => name.to_owned(),
        (Some(st), Some(sy)) => format!("{name} ({st}, {sy})"),
        (Some(one), None) | (None, Some(one)) => format!("{name} ({one})"),
    };
    Some(truncate(text, COMPONENT_MAX))
}

/// Column widths: `(name, status)`.
type Widths = (usize, usize);

/// One row per component of `gp`, the first showing `name` and `status` (every row, in script
/// mode); a single `N/A` row when no consumer is attached.
fn status_rows(out: &mut String, mesh: &Mesh, gp: &Geom, name: &str, status: &str, script: bool, w: Widths) {
    let (mut name, mut status) = (name, status);
    let mut any = false;
    for comp in gp.consumers.iter().filter_map(|cp| component(mesh, cp)) {
        any = true;
        pad(out, w.0, name);
        out.push_str("  ");
        pad(out, w.1, status);
        out.push_str("  ");
        out.push_str(&comp);
        out.push('\n');
        if !script {
            (name, status) = ("", "");
        }
    }
    if !any {
        pad(out, w.0, name);
        out.push_str("  ");
        pad(out, w.1, status);
        out.push_str("  N/A\n");
    }
}

/// What `geom CLASS status [-ags] [name ...]` prints (`std_status`).
///
/// * The table has the columns `Name`, `Status` and `Components`, separated by two spaces;
///   `Name` and `Status` are right-justified to their widest entry (at least the header's,
///   unless `script`).
/// * By default (`by_geom` false) there is one row group per provider, named after the
///   provider, with the status of the provider's `State` configuration entry, else the geom's,
///   else `N/A`. With `by_geom` (`-g`) there is one group per geom, named after the geom, with
///   the geom's `State` (keys compare case-insensitively). Only `State` counts: a `Status`
///   entry is not the status.
/// * Each group has one row per attached consumer, showing its provider and, in parentheses,
///   the consumer's `State` and/or `Synchronized` entries; the name and status appear on the
///   first row only, unless `script`. A geom without attached consumers gets one `N/A` row.
/// * `script` (`-s`): no header, name and status on every row, widths from the content only.
/// * Geom selection is as for [`list`]: geoms with providers, all geoms with `all` (`-a`),
///   or the named geoms (by geom name, not provider name; a leading `/dev/` is dropped).
///   Nothing at all is printed (not even the header) when no geom is selected.
///
/// Errors, as geom(8) prints them: `Cannot get GEOM tree: Illegal byte sequence`, `Command
/// 'status' not available; try 'load' first.` and `No such geom: x.` (checked for every name
/// before anything is printed).
pub fn status(
    xml: &str,
    class: &str,
    all: bool,
    by_geom: bool,
    script: bool,
    names: &[&str],
) -> Result<String, String> {
    let (mesh, ci, _) = load(xml, class, "status")?;
    let cls = &mesh.classes[ci];
    let geoms: Vec<&Geom> = if names.is_empty() {
        cls.geoms.iter().filter(|g| all || !g.providers.is_empty()).collect()
    } else {
        names
            .iter()
            .map(|n| find_geom(cls, n).ok_or_else(|| format!("No such geom: {n}.")))
            .collect::<Result<_, _>>()?
    };
    let mut out = String::new();
    if geoms.is_empty() {
        return Ok(out);
    }
    let mut w: Widths = if script { (0, 0) } else { ("Name".len(), "Status".len()) };
    for gp in &geoms {
        if by_geom {
            // status_update_len: every State entry counts, not just the first.
            w.0 = w.0.max(nul(&gp.name).len());
            for (_, v) in gp.config.iter().filter(|(k, _)| k.eq_ignore_ascii_case("state")) {
                w.1 = w.1.max(nul(v).len());
            }
        } else {
            // status_update_len_prs: "N/A" is not measured.
            let glen = first_state(&gp.config).map_or(0, str::len);
            for pp in &gp.providers {
                w.0 = w.0.max(nul(&pp.name).len());
                w.1 = w.1.max(first_state(&pp.config).map_or(glen, str::len));
            }
        }
    }
    if !script {
        pad(&mut out, w.0, "Name");
        out.push_str("  ");
        pad(&mut out, w.1, "Status");
        out.push_str("  Components\n");
    }
    for gp in geoms {
        let gstate = first_state(&gp.config).unwrap_or("N/A");
        if by_geom {
            status_rows(&mut out, &mesh, gp, nul(&gp.name), gstate, script, w);
        } else {
            for pp in &gp.providers {
                let st = first_state(&pp.config).unwrap_or(gstate);
                status_rows(&mut out, &mesh, gp, nul(&pp.name), st, script, w);
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The parser: a small XML tokenizer feeding a port of libgeom's element handlers.

/// `strtoul(s, NULL, 0)`/`strtoumax`: leading white space, an optional sign, `0x` for hex, a
/// leading `0` for octal; stops at the first non-digit; saturates on overflow; a minus sign
/// negates modulo 2^64; no digits gives 0.
fn strtou64(s: &str) -> u64 {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && is_c_space(b[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        neg = b[i] == b'-';
        i += 1;
    }
    let mut base = 10;
    if i + 1 < b.len() && b[i] == b'0' && (b[i + 1] | 0x20) == b'x' && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit) {
        base = 16;
        i += 2;
    } else if i < b.len() && b[i] == b'0' {
        base = 8;
    }
    let mut v: u64 = 0;
    let mut overflow = false;
    while let Some(d) = b.get(i).and_then(|&c| (c as char).to_digit(base)) {
        match v.checked_mul(u64::from(base)).and_then(|x| x.checked_add(u64::from(d))) {
            Some(x) => v = x,
            None => overflow = true,
        }
        i += 1;
    }
    if overflow {
        u64::MAX
    } else if neg {
        v.wrapping_neg()
    } else {
        v
    }
}

/// C's `isspace` in the C locale.
fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// A character XML 1.0 allows in a document.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..='\u{10ffff}')
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || !c.is_ascii()
}

fn is_name_char(c: char) -> bool {
    is_name_start(c) || c.is_ascii_digit() || c == '-' || c == '.'
}

/// Which object an open `<config>` fills (libgeom's `mt->config`).
#[derive(Clone, Copy)]
enum Target {
    Class(usize),
    Geom(usize, usize),
    Provider(usize, usize, usize),
    Consumer(usize, usize, usize),
}

/// An object as read, before its lists are reversed and its references resolved. Ids and
/// references are the XML's pointer values; 0 is NULL.
#[derive(Default)]
struct RawClass {
    id: u64,
    name: Option<String>,
    config: Vec<(String, String)>,
    geoms: Vec<RawGeom>,
}

#[derive(Default)]
struct RawGeom {
    at: usize,
    id: u64,
    class_ref: u64,
    name: Option<String>,
    rank: u32,
    config: Vec<(String, String)>,
    providers: Vec<RawProvider>,
    consumers: Vec<RawConsumer>,
}

#[derive(Default)]
struct RawProvider {
    at: usize,
    id: u64,
    geom_ref: u64,
    pp: Provider,
}

#[derive(Default)]
struct RawConsumer {
    at: usize,
    id: u64,
    geom_ref: u64,
    provider_ref: u64,
    mode: Option<String>,
    config: Vec<(String, String)>,
}

/// libgeom's parser state (`struct mystate`): the objects being filled and one text buffer
/// per open element.
#[derive(Default)]
struct Builder {
    classes: Vec<RawClass>,
    class: Option<usize>,
    geom: Option<(usize, usize)>,
    provider: Option<(usize, usize, usize)>,
    consumer: Option<(usize, usize, usize)>,
    config: Option<Target>,
    text: Vec<String>,
}

type PResult<T> = Result<T, ParseError>;

fn perr<T>(offset: usize, message: impl Into<String>) -> PResult<T> {
    Err(ParseError { offset, message: message.into() })
}

impl Builder {
    fn geom_mut(&mut self, (c, g): (usize, usize)) -> &mut RawGeom {
        &mut self.classes[c].geoms[g]
    }

    fn provider_mut(&mut self, (c, g, p): (usize, usize, usize)) -> &mut RawProvider {
        &mut self.classes[c].geoms[g].providers[p]
    }

    fn consumer_mut(&mut self, (c, g, k): (usize, usize, usize)) -> &mut RawConsumer {
        &mut self.classes[c].geoms[g].consumers[k]
    }

    fn config_mut(&mut self, t: Target) -> &mut Vec<(String, String)> {
        match t {
            Target::Class(c) => &mut self.classes[c].config,
            Target::Geom(c, g) => &mut self.classes[c].geoms[g].config,
            Target::Provider(c, g, p) => &mut self.classes[c].geoms[g].providers[p].pp.config,
            Target::Consumer(c, g, k) => &mut self.classes[c].geoms[g].consumers[k].config,
        }
    }

    /// libgeom's `StartElement`.
    fn start(&mut self, at: usize, name: &str, attrs: &[(&str, String)]) -> PResult<()> {
        self.text.push(String::new());
        let mut id = 0;
        let mut rf = 0;
        for (k, v) in attrs {
            match *k {
                "id" => id = strtou64(v),
                "ref" => rf = strtou64(v),
                _ => {}
            }
        }
        match name {
            "class" if self.class.is_none() => {
                self.classes.push(RawClass { id, ..Default::default() });
                self.class = Some(self.classes.len() - 1);
            }
            "geom" if self.geom.is_none() => {
                let Some(c) = self.class else { return perr(at, "<geom> outside a <class>") };
                let geoms = &mut self.classes[c].geoms;
                geoms.push(RawGeom { at, id, ..Default::default() });
                self.geom = Some((c, geoms.len() - 1));
            }
            "class" if self.geom.is_some() => {
                if let Some(g) = self.geom {
                    self.geom_mut(g).class_ref = rf;
                }
            }
            "consumer" if self.consumer.is_none() => {
                let Some((c, g)) = self.geom else { return perr(at, "<consumer> outside a <geom>") };
                let cps = &mut self.classes[c].geoms[g].consumers;
                cps.push(RawConsumer { at, id, ..Default::default() });
                self.consumer = Some((c, g, cps.len() - 1));
            }
            "geom" if self.consumer.is_some() => {
                if let Some(k) = self.consumer {
                    self.consumer_mut(k).geom_ref = rf;
                }
            }
            "provider" if self.consumer.is_some() => {
                if let Some(k) = self.consumer {
                    self.consumer_mut(k).provider_ref = rf;
                }
            }
            "provider" if self.provider.is_none() => {
                let Some((c, g)) = self.geom else { return perr(at, "<provider> outside a <geom>") };
                let pps = &mut self.classes[c].geoms[g].providers;
                pps.push(RawProvider { at, id, ..Default::default() });
                self.provider = Some((c, g, pps.len() - 1));
            }
            "geom" if self.provider.is_some() => {
                if let Some(p) = self.provider {
                    self.provider_mut(p).geom_ref = rf;
                }
            }
            "config" => {
                if let Some((c, g, p)) = self.provider {
                    self.config = Some(Target::Provider(c, g, p));
                } else if let Some((c, g, k)) = self.consumer {
                    self.config = Some(Target::Consumer(c, g, k));
                } else if let Some((c, g)) = self.geom {
                    self.config = Some(Target::Geom(c, g));
                } else if let Some(c) = self.class {
                    self.config = Some(Target::Class(c));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// One piece of character data (libgeom's `CharData`): trimmed of C white space at both
    /// ends, and appended to the innermost open element's text if anything is left.
    fn chars(&mut self, piece: &str) {
        let t = piece.trim_matches(|c: char| c.is_ascii() && is_c_space(c as u8));
        if let Some(buf) = self.text.last_mut() {
            buf.push_str(t);
        }
    }

    /// libgeom's `EndElement`.
    fn end(&mut self, at: usize, name: &str) -> PResult<()> {
        let text = self.text.pop().unwrap_or_default();
        let p = if text.is_empty() { None } else { Some(text) };
        let number = |p: &Option<String>| match p {
            Some(s) => Ok(strtou64(s)),
            None => perr(at, format!("empty <{name}>")),
        };
        if name == "name" {
            if let Some(pi) = self.provider {
                self.provider_mut(pi).pp.name = p.unwrap_or_default();
                return Ok(());
            } else if let Some(g) = self.geom {
                self.geom_mut(g).name = p;
                return Ok(());
            } else if let Some(c) = self.class {
                self.classes[c].name = p;
                return Ok(());
            }
        }
        if name == "rank" {
            if let Some(g) = self.geom {
                self.geom_mut(g).rank = number(&p)? as u32;
                return Ok(());
            }
        }
        if name == "mode" {
            if let Some(pi) = self.provider {
                self.provider_mut(pi).pp.mode = p.unwrap_or_default();
                return Ok(());
            }
            if let Some(k) = self.consumer {
                self.consumer_mut(k).mode = p;
                return Ok(());
            }
        }
        if let Some(pi) = self.provider {
            let pp = &mut self.provider_mut(pi).pp;
            match name {
                "mediasize" => pp.mediasize = number(&p)? as i64,
                "sectorsize" => pp.sectorsize = number(&p)? as u32,
                "stripesize" => pp.stripesize = number(&p)? as i64,
                "stripeoffset" => pp.stripeoffset = number(&p)? as i64,
                _ => {}
            }
            if matches!(name, "mediasize" | "sectorsize" | "stripesize" | "stripeoffset") {
                return Ok(());
            }
        }
        if name == "config" {
            self.config = None;
            return Ok(());
        }
        let wither = name == "wither" && (self.provider.is_some() || self.geom.is_some());
        if self.config.is_some() || wither {
            let target = match (self.config, self.provider, self.geom) {
                (Some(t), _, _) => t,
                (None, Some((c, g, p)), _) => Target::Provider(c, g, p),
                (None, None, Some((c, g))) => Target::Geom(c, g),
                (None, None, None) => return Ok(()),
            };
            self.config_mut(target).push((name.to_owned(), p.unwrap_or_default()));
            return Ok(());
        }
        match name {
            "consumer" if self.consumer.is_some() => self.consumer = None,
            "provider" if self.provider.is_some() => self.provider = None,
            "geom" if self.consumer.is_some() || self.provider.is_some() => {}
            "geom" if self.geom.is_some() => self.geom = None,
            "class" if self.geom.is_some() => {}
            "class" if self.class.is_some() => self.class = None,
            _ => {}
        }
        Ok(())
    }

    /// Reverse every list (libgeom inserts at the head), then resolve the references as
    /// `geom_xml2tree` does, through the table of ids in tree order; like libgeom's lookup,
    /// the table ends at the first object without an id.
    fn finish(mut self) -> PResult<Mesh> {
        #[derive(Clone, Copy)]
        enum Ident {
            Other,
            Provider(usize, usize, usize),
        }
        self.classes.reverse();
        for cl in &mut self.classes {
            cl.config.reverse();
            cl.geoms.reverse();
            for gp in &mut cl.geoms {
                gp.config.reverse();
                gp.providers.reverse();
                gp.consumers.reverse();
                for pp in &mut gp.providers {
                    pp.pp.config.reverse();
                }
                for cp in &mut gp.consumers {
                    cp.config.reverse();
                }
            }
        }
        let mut idents: HashMap<u64, Ident> = HashMap::new();
        let mut ended = false;
        let mut add = |id: u64, what: Ident| {
            ended |= id == 0;
            if !ended {
                idents.entry(id).or_insert(what);
            }
        };
        for (ci, cl) in self.classes.iter().enumerate() {
            add(cl.id, Ident::Other);
            for (gi, gp) in cl.geoms.iter().enumerate() {
                add(gp.id, Ident::Other);
                for (pi, pp) in gp.providers.iter().enumerate() {
                    add(pp.id, Ident::Provider(ci, gi, pi));
                }
                for cp in &gp.consumers {
                    add(cp.id, Ident::Other);
                }
            }
        }
        let names: Vec<Vec<Vec<String>>> = self
            .classes
            .iter()
            .map(|cl| cl.geoms.iter().map(|gp| gp.providers.iter().map(|pp| pp.pp.name.clone()).collect()).collect())
            .collect();
        let resolves = |r: u64| r != 0 && idents.contains_key(&r);
        let mut mesh = Mesh { classes: Vec::with_capacity(self.classes.len()) };
        for cl in self.classes {
            let mut class = Class { name: cl.name.unwrap_or_default(), config: cl.config, geoms: Vec::new() };
            for gp in cl.geoms {
                if !resolves(gp.class_ref) {
                    return perr(gp.at, "a geom's <class ref> does not resolve");
                }
                let mut geom = Geom {
                    name: gp.name.unwrap_or_default(),
                    rank: gp.rank,
                    config: gp.config,
                    providers: Vec::with_capacity(gp.providers.len()),
                    consumers: Vec::with_capacity(gp.consumers.len()),
                };
                for pp in gp.providers {
                    if !resolves(pp.geom_ref) {
                        return perr(pp.at, "a provider's <geom ref> does not resolve");
                    }
                    geom.providers.push(pp.pp);
                }
                for cp in gp.consumers {
                    if !resolves(cp.geom_ref) {
                        return perr(cp.at, "a consumer's <geom ref> does not resolve");
                    }
                    let provider = match cp.provider_ref {
                        0 => None,
                        r => match idents.get(&r) {
                            Some(&Ident::Provider(c, g, p)) => {
                                Some(ProviderRef { name: names[c][g][p].clone(), class: c, geom: g, provider: p })
                            }
                            _ => return perr(cp.at, "a consumer's <provider ref> is no provider"),
                        },
                    };
                    geom.consumers.push(Consumer { provider, mode: cp.mode.unwrap_or_default(), config: cp.config });
                }
                class.geoms.push(geom);
            }
            mesh.classes.push(class);
        }
        Ok(mesh)
    }
}

/// The tokenizer. Text is handed to the builder in the pieces expat makes: a run of plain
/// characters up to a line end, a reference or markup; each line end and each reference is a
/// piece of its own.
struct Parser<'a> {
    s: &'a str,
    pos: usize,
    /// Names of the open elements.
    open: Vec<&'a str>,
    /// The root element has been closed.
    root_done: bool,
    b: Builder,
}

impl<'a> Parser<'a> {
    fn run(mut self) -> PResult<Mesh> {
        while self.pos < self.s.len() {
            match self.s.as_bytes()[self.pos] {
                b'<' => self.markup()?,
                b'&' => {
                    let at = self.pos;
                    if self.open.is_empty() {
                        return perr(at, "reference outside the root element");
                    }
                    let c = self.reference()?;
                    self.b.chars(c.encode_utf8(&mut [0; 4]));
                }
                _ => self.text()?,
            }
        }
        if let Some(name) = self.open.last() {
            return perr(self.pos, format!("<{name}> is not closed"));
        }
        if !self.root_done {
            return perr(self.pos, "no root element");
        }
        self.b.finish()
    }

    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    /// Plain character data up to the next `<` or `&`.
    fn text(&mut self) -> PResult<()> {
        let start = self.pos;
        let end = self.rest().find(['<', '&']).map_or(self.s.len(), |i| start + i);
        let run = &self.s[start..end];
        if let Some((i, c)) = run.char_indices().find(|&(_, c)| !is_xml_char(c)) {
            return perr(start + i, format!("invalid character U+{:04X}", c as u32));
        }
        if self.open.is_empty() {
            if let Some(i) = run.find(|c: char| !(c.is_ascii() && is_c_space(c as u8))) {
                return perr(start + i, "text outside the root element");
            }
        }
        for piece in run.split(['\n', '\r']) {
            self.b.chars(piece);
        }
        self.pos = end;
        Ok(())
    }

    /// `&name;`, `&#N;` or `&#xN;` at `pos`: the character it stands for.
    fn reference(&mut self) -> PResult<char> {
        let at = self.pos;
        let rest = &self.rest()[1..];
        let Some(semi) = rest.find(';').filter(|&i| i <= 32) else {
            return perr(at, "unterminated reference");
        };
        let body = &rest[..semi];
        let c = match body {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "apos" => Some('\''),
            "quot" => Some('"'),
            _ => {
                let num = if let Some(hex) = body.strip_prefix("#x") {
                    Some((hex, 16))
                } else {
                    body.strip_prefix('#').map(|dec| (dec, 10))
                };
                let Some((digits, radix)) = num else {
                    return perr(at, format!("undefined entity &{body};"));
                };
                if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
                    return perr(at, format!("malformed character reference &{body};"));
                }
                u32::from_str_radix(digits, radix).ok().and_then(char::from_u32).filter(|&c| is_xml_char(c))
            }
        };
        let Some(c) = c else { return perr(at, format!("reference to an invalid character &{body};")) };
        self.pos = at + 1 + semi + 1;
        Ok(c)
    }

    fn skip_space(&mut self) -> bool {
        let n = self.rest().len() - self.rest().trim_start_matches([' ', '\t', '\n', '\r']).len();
        self.pos += n;
        n > 0
    }

    fn expect(&mut self, what: &str) -> PResult<()> {
        if self.rest().starts_with(what) {
            self.pos += what.len();
            Ok(())
        } else {
            perr(self.pos, format!("expected `{what}`"))
        }
    }

    fn name(&mut self) -> PResult<&'a str> {
        let rest = self.rest();
        let len = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
        match rest.chars().next() {
            Some(c) if len > 0 && is_name_start(c) => {
                self.pos += len;
                Ok(&rest[..len])
            }
            _ => perr(self.pos, "expected a name"),
        }
    }

    /// A quoted attribute value, references decoded and white space normalised to spaces.
    fn attr_value(&mut self) -> PResult<String> {
        let quote = match self.rest().chars().next() {
            Some(q @ ('"' | '\'')) => q,
            _ => return perr(self.pos, "expected a quoted attribute value"),
        };
        self.pos += 1;
        let mut value = String::new();
        loop {
            let Some(c) = self.rest().chars().next() else { return perr(self.pos, "unterminated attribute value") };
            match c {
                _ if c == quote => {
                    self.pos += 1;
                    return Ok(value);
                }
                '<' => return perr(self.pos, "`<` in an attribute value"),
                '&' => value.push(self.reference()?),
                _ if !is_xml_char(c) => return perr(self.pos, format!("invalid character U+{:04X}", c as u32)),
                '\t' | '\n' | '\r' => {
                    value.push(' ');
                    self.pos += 1;
                }
                _ => {
                    value.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }

    /// Whatever starts with `<` at `pos`.
    fn markup(&mut self) -> PResult<()> {
        let at = self.pos;
        let rest = self.rest();
        if let Some(body) = rest.strip_prefix("<!--") {
            let Some(end) = body.find("-->") else { return perr(at, "unterminated comment") };
            self.pos = at + 4 + end + 3;
            return Ok(());
        }
        if let Some(body) = rest.strip_prefix("<?") {
            let Some(end) = body.find("?>") else { return perr(at, "unterminated processing instruction") };
            self.pos = at + 2 + end + 2;
            return Ok(());
        }
        if rest.starts_with("<!") {
            return perr(at, "DOCTYPE and CDATA are not supported");
        }
        if rest.starts_with("</") {
            self.pos += 2;
            let name = self.name()?;
            self.skip_space();
            self.expect(">")?;
            match self.open.pop() {
                Some(open) if open == name => {}
                Some(open) => return perr(at, format!("</{name}> closes <{open}>")),
                None => return perr(at, format!("</{name}> closes nothing")),
            }
            self.root_done = self.open.is_empty();
            return self.b.end(at, name);
        }
        if self.root_done {
            return perr(at, "a second root element");
        }
        self.pos += 1;
        let name = self.name()?;
        let mut attrs: Vec<(&str, String)> = Vec::new();
        let empty = loop {
            let spaced = self.skip_space();
            if self.rest().starts_with("/>") {
                self.pos += 2;
                break true;
            }
            if self.rest().starts_with('>') {
                self.pos += 1;
                break false;
            }
            if !spaced {
                return perr(self.pos, "expected white space, `>` or `/>`");
            }
            let attr_at = self.pos;
            let key = self.name()?;
            self.skip_space();
            self.expect("=")?;
            self.skip_space();
            let value = self.attr_value()?;
            if attrs.iter().any(|(k, _)| *k == key) {
                return perr(attr_at, format!("duplicate attribute {key}"));
            }
            attrs.push((key, value));
        };
        if self.open.len() >= MAX_DEPTH {
            return perr(at, format!("elements nested deeper than {MAX_DEPTH}"));
        }
        self.open.push(name);
        self.b.start(at, name, &attrs)?;
        if empty {
            self.open.pop();
            self.root_done = self.open.is_empty();
            self.b.end(at, name)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2-disk stripe as the kernel writes it (newest objects first): `st0` over `md0` and
    /// `md1`, and a newer `st1` that lost its disks. MD holds the disks; `md2` is withering.
    const STRIPE: &str = "<mesh>
  <class id=\"0x1000\">
    <name>STRIPE</name>
    <geom id=\"0x1200\">
      <class ref=\"0x1000\"/>
      <name>st1</name>
      <rank>1</rank>
      <config>
\t<ID>42</ID>
\t<Stripesize>4096</Stripesize>
\t<Type>MANUAL</Type>
\t<Status>Total=2, Online=0</Status>
\t<State>DOWN</State>
      </config>
    </geom>
    <geom id=\"0x1100\">
      <class ref=\"0x1000\"/>
      <name>st0</name>
      <rank>2</rank>
      <config>
\t<ID>3735928559</ID>
\t<Stripesize>65536</Stripesize>
\t<Type>AUTOMATIC</Type>
\t<Status>Total=2, Online=2</Status>
\t<State>UP</State>
      </config>
\t<consumer id=\"0x1120\">
\t  <geom ref=\"0x1100\"/>
\t  <provider ref=\"0x2210\"/>
\t  <mode>r1w1e1</mode>
\t  <config>
\t    <Number>1</Number>
\t  </config>
\t</consumer>
\t<consumer id=\"0x1110\">
\t  <geom ref=\"0x1100\"/>
\t  <provider ref=\"0x2110\"/>
\t  <mode>r1w1e1</mode>
\t  <config>
\t    <Number>0</Number>
\t  </config>
\t</consumer>
\t<provider id=\"0x1130\">
\t  <geom ref=\"0x1100\"/>
\t  <mode>r1w1e0</mode>
\t  <name>stripe/st0</name>
\t  <mediasize>1073741824</mediasize>
\t  <sectorsize>512</sectorsize>
\t  <stripesize>65536</stripesize>
\t  <stripeoffset>0</stripeoffset>
\t  <config>
\t  </config>
\t</provider>
    </geom>
  </class>
  <class id=\"0x2000\">
    <name>MD</name>
    <geom id=\"0x2300\">
      <class ref=\"0x2000\"/>
      <name>md2</name>
      <rank>1</rank>
      <wither/>
\t<provider id=\"0x2310\">
\t  <geom ref=\"0x2300\"/>
\t  <mode>r0w0e0</mode>
\t  <name>md2</name>
\t  <mediasize>1000</mediasize>
\t  <sectorsize>512</sectorsize>
\t  <stripesize>0</stripesize>
\t  <stripeoffset>0</stripeoffset>
\t  <wither/>
\t</provider>
    </geom>
    <geom id=\"0x2200\">
      <class ref=\"0x2000\"/>
      <name>md1</name>
      <rank>1</rank>
\t<provider id=\"0x2210\">
\t  <geom ref=\"0x2200\"/>
\t  <mode>r1w1e1</mode>
\t  <name>md1</name>
\t  <mediasize>536870912</mediasize>
\t  <sectorsize>512</sectorsize>
\t  <stripesize>0</stripesize>
\t  <stripeoffset>0</stripeoffset>
\t</provider>
    </geom>
    <geom id=\"0x2100\">
      <class ref=\"0x2000\"/>
      <name>md0</name>
      <rank>1</rank>
\t<provider id=\"0x2110\">
\t  <geom ref=\"0x2100\"/>
\t  <mode>r1w1e1</mode>
\t  <name>md0</name>
\t  <mediasize>1073741824</mediasize>
\t  <sectorsize>512</sectorsize>
\t  <stripesize>0</stripesize>
\t  <stripeoffset>4096</stripeoffset>
\t  <config>
\t    <type>malloc</type>
\t    <Label></Label>
\t  </config>
\t</provider>
    </geom>
  </class>
</mesh>
";

    const ST0: &str = "Geom name: st0
State: UP
Status: Total=2, Online=2
Type: AUTOMATIC
Stripesize: 65536
ID: 3735928559
Providers:
1. Name: stripe/st0
   Mediasize: 1073741824 (1.0G)
   Sectorsize: 512
   Stripesize: 65536
   Stripeoffset: 0
   Mode: r1w1e0
Consumers:
1. Name: md0
   Mediasize: 1073741824 (1.0G)
   Sectorsize: 512
   Stripesize: 0
   Stripeoffset: 4096
   Mode: r1w1e1
   Number: 0
2. Name: md1
   Mediasize: 536870912 (512M)
   Sectorsize: 512
   Mode: r1w1e1
   Number: 1

";

    const ST1: &str = "Geom name: st1
State: DOWN
Status: Total=2, Online=0
Type: MANUAL
Stripesize: 4096
ID: 42

";

    fn st(a: bool, g: bool, s: bool, names: &[&str]) -> String {
        status(STRIPE, "stripe", a, g, s, names).unwrap()
    }

    #[test]
    fn the_tree_is_libgeoms() {
        let mesh = Mesh::parse(STRIPE).unwrap();
        let names = |c: &Class| c.geoms.iter().map(|g| g.name.clone()).collect::<Vec<_>>();
        assert_eq!(mesh.classes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["MD", "STRIPE"]);
        assert_eq!(names(&mesh.classes[0]), ["md0", "md1", "md2"]);
        let stripe = mesh.class("STRIPE").unwrap();
        assert_eq!(names(stripe), ["st0", "st1"]);
        let st0 = &stripe.geoms[0];
        assert_eq!(st0.rank, 2);
        assert_eq!(st0.config[0], ("State".to_owned(), "UP".to_owned()));
        assert_eq!(st0.config[4], ("ID".to_owned(), "3735928559".to_owned()));
        let pp = &st0.providers[0];
        assert_eq!((pp.mediasize, pp.sectorsize, pp.stripesize, pp.stripeoffset), (1 << 30, 512, 65536, 0));
        let cp = &st0.consumers[1];
        let r = cp.provider.as_ref().unwrap();
        assert_eq!((r.name.as_str(), r.class, r.geom, r.provider), ("md1", 0, 1, 0));
        assert_eq!(mesh.provider(r).unwrap().mediasize, 512 << 20);
        assert_eq!((cp.mode.as_str(), &cp.config[..]), ("r1w1e1", &[("Number".to_owned(), "1".to_owned())][..]));
        // <wither/> is a configuration entry with a NULL value, for the geom and the provider.
        let md2 = &mesh.classes[0].geoms[2];
        assert_eq!(md2.config, [("wither".to_owned(), String::new())]);
        assert_eq!(md2.providers[0].config, [("wither".to_owned(), String::new())]);
    }

    #[test]
    fn list_prints_what_geom_8_prints() {
        assert_eq!(list(STRIPE, "stripe", false, &[]).unwrap(), ST0);
        assert_eq!(
            list(STRIPE, "STRIPE", true, &[]).unwrap(),
            format!("{ST0}{ST1}"),
            "-a adds geoms without providers"
        );
        assert_eq!(list(STRIPE, "Stripe", false, &["st1", "/dev/st0"]).unwrap(), format!("{ST1}{ST0}"));
        let md = list(STRIPE, "md", false, &["md0", "md2"]).unwrap();
        let want = "Geom name: md0
Providers:
1. Name: md0
   Mediasize: 1073741824 (1.0G)
   Sectorsize: 512
   Stripesize: 0
   Stripeoffset: 4096
   Mode: r1w1e1
   Label: (null)
   type: malloc

Geom name: md2
wither: (null)
Providers:
1. Name: md2
   Mediasize: 1000 (1.0K)
   Sectorsize: 512
   Mode: r0w0e0
   wither: (null)

";
        assert_eq!(md, want);
    }

    #[test]
    fn list_errors_are_geom_8s() {
        assert_eq!(
            list(STRIPE, "stripe", false, &["st0", "st9"]),
            Err("Class 'STRIPE' does not have an instance named 'st9'.".to_owned())
        );
        assert_eq!(
            list(STRIPE, "stripe", false, &["stripe/st0"]),
            Err("Class 'STRIPE' does not have an instance named 'stripe/st0'.".to_owned()),
            "names are geom names, not provider names"
        );
        assert_eq!(
            list(STRIPE, "mirror", false, &[]),
            Err("Command 'list' not available; try 'load' first.".to_owned())
        );
        assert_eq!(list("<mesh>", "md", false, &[]), Err("Cannot get GEOM tree: Illegal byte sequence".to_owned()));
        assert_eq!(
            list("<mesh>\n</mesh>\n", "md", true, &[]),
            Err("Command 'list' not available; try 'load' first.".to_owned())
        );
    }

    #[test]
    fn status_per_provider_and_per_geom() {
        let by_provider = "      Name  Status  Components
stripe/st0      UP  md0
                    md1
";
        assert_eq!(st(false, false, false, &[]), by_provider);
        assert_eq!(st(true, false, false, &[]), by_provider, "a geom without providers has no provider rows");
        assert_eq!(
            st(false, true, false, &[]),
            "Name  Status  Components
 st0      UP  md0
              md1
"
        );
        assert_eq!(
            st(true, true, false, &[]),
            "Name  Status  Components
 st0      UP  md0
              md1
 st1    DOWN  N/A
"
        );
        assert_eq!(st(false, false, true, &[]), "stripe/st0  UP  md0\nstripe/st0  UP  md1\n", "script mode");
        assert_eq!(st(true, true, true, &[]), "st0    UP  md0\nst0    UP  md1\nst1  DOWN  N/A\n");
        assert_eq!(st(false, true, false, &["st1"]), "Name  Status  Components\n st1    DOWN  N/A\n");
        assert_eq!(st(false, false, false, &["st1"]), "Name  Status  Components\n", "geom(8) prints the header alone");
        assert_eq!(st(false, false, false, &["/dev/st0"]), by_provider);
        // MD geoms have neither a State nor consumers.
        let md = status(STRIPE, "md", false, true, false, &["md1", "md0"]).unwrap();
        assert_eq!(md, "Name  Status  Components\n md1     N/A  N/A\n md0     N/A  N/A\n");
    }

    #[test]
    fn status_errors_and_empty_classes() {
        assert_eq!(
            status(STRIPE, "stripe", false, false, false, &["st0", "nope"]),
            Err("No such geom: nope.".to_owned())
        );
        assert_eq!(
            status(STRIPE, "raid3", false, false, false, &[]),
            Err("Command 'status' not available; try 'load' first.".to_owned())
        );
        let empty = "<mesh>\n  <class id=\"0x1\">\n    <name>NOP</name>\n  </class>\n</mesh>\n";
        assert_eq!(status(empty, "nop", true, false, false, &[]).unwrap(), "", "no geom, no header");
        assert_eq!(list(empty, "nop", true, &[]).unwrap(), "");
    }

    /// A mirror-like geom: consumer states, a detached consumer, a provider-level State.
    const MIRROR: &str = "<mesh><class id=\"0x1\"><name>MIRROR</name>\
        <geom id=\"0x10\"><class ref=\"0x1\"/><name>gm0</name><rank>2</rank>\
        <config><State>COMPLETE</State></config>\
        <consumer id=\"0x13\"><geom ref=\"0x10\"/><mode>r0w0e0</mode></consumer>\
        <consumer id=\"0x12\"><geom ref=\"0x10\"/><provider ref=\"0x31\"/><mode>r1w1e1</mode>\
        <config><Synchronized>42%</Synchronized><State>SYNCHRONIZING</State></config></consumer>\
        <consumer id=\"0x11\"><geom ref=\"0x10\"/><provider ref=\"0x21\"/><mode>r1w1e1</mode>\
        <config><State>ACTIVE</State></config></consumer>\
        <provider id=\"0x15\"><geom ref=\"0x10\"/><mode>r0w0e0</mode><name>mirror/gm0b</name>\
        <mediasize>512</mediasize><sectorsize>512</sectorsize><stripesize>0</stripesize>\
        <stripeoffset>0</stripeoffset><config><state>DEGRADED</state></config></provider>\
        <provider id=\"0x14\"><geom ref=\"0x10\"/><mode>r0w0e0</mode><name>mirror/gm0</name>\
        <mediasize>512</mediasize><sectorsize>512</sectorsize><stripesize>0</stripesize>\
        <stripeoffset>0</stripeoffset></provider></geom></class>\
        <class id=\"0x2\"><name>DISK</name>\
        <geom id=\"0x30\"><class ref=\"0x2\"/><name>ada1</name><rank>1</rank>\
        <provider id=\"0x31\"><geom ref=\"0x30\"/><mode>r1w1e1</mode><name>ada1</name>\
        <mediasize>512</mediasize><sectorsize>512</sectorsize><stripesize>0</stripesize>\
        <stripeoffset>0</stripeoffset></provider></geom>\
        <geom id=\"0x20\"><class ref=\"0x2\"/><name>ada0</name><rank>1</rank>\
        <provider id=\"0x21\"><geom ref=\"0x20\"/><mode>r1w1e1</mode><name>ada0</name>\
        <mediasize>512</mediasize><sectorsize>512</sectorsize><stripesize>0</stripesize>\
        <stripeoffset>0</stripeoffset></provider></geom></class></mesh>";

    #[test]
    fn components_show_the_consumers_state() {
        let want = "       Name    Status  Components
 mirror/gm0  COMPLETE  ada0 (ACTIVE)
                       ada1 (SYNCHRONIZING, 42%)
mirror/gm0b  DEGRADED  ada0 (ACTIVE)
                       ada1 (SYNCHRONIZING, 42%)
";
        assert_eq!(status(MIRROR, "mirror", false, false, false, &[]).unwrap(), want);
        let by_geom = "Name    Status  Components
 gm0  COMPLETE  ada0 (ACTIVE)
                ada1 (SYNCHRONIZING, 42%)
";
        assert_eq!(status(MIRROR, "mirror", false, true, false, &[]).unwrap(), by_geom);
        let listed = list(MIRROR, "mirror", false, &[]).unwrap();
        assert!(listed.ends_with("Consumers:\n1. Name: ada0\n   Mediasize: 512 (512B)\n   Sectorsize: 512\n   Mode: r1w1e1\n   State: ACTIVE\n2. Name: ada1\n   Mediasize: 512 (512B)\n   Sectorsize: 512\n   Mode: r1w1e1\n   State: SYNCHRONIZING\n   Synchronized: 42%\n3. [no provider]\n\n"), "{listed}");
        assert!(listed.starts_with("Geom name: gm0\nState: COMPLETE\nProviders:\n1. Name: mirror/gm0\n"), "{listed}");
    }

    #[test]
    fn text_is_decoded_and_trimmed_as_libgeom_does() {
        let xml = "<mesh><class id='0x1'><name> T&#x26;C </name>\
            <geom id='0x2'><class ref='0x1'/><name>g&#x3C;0&#x3E;</name><rank> 0x10 </rank>\
            <config><A>x &amp; y</A><B>\n\t  two\n   lines  \n</B><C>&#xC3;&#xA9;</C>\
            <D>&lt;&gt;&apos;&quot;&#65;&#x20;z</D><!-- a comment --><E/></config>\
            <provider id='0x3'><geom ref='0x2'/><name>p</name><mode>r0w0e0</mode>\
            <mediasize>010</mediasize><sectorsize>-1</sectorsize><stripesize>99999999999999999999</stripesize>\
            <stripeoffset>12abc</stripeoffset></provider></geom></class></mesh>";
        let mesh = Mesh::parse(xml).unwrap();
        let cl = &mesh.classes[0];
        assert_eq!(cl.name, "T&C");
        let gp = &cl.geoms[0];
        assert_eq!((gp.name.as_str(), gp.rank), ("g<0>", 16));
        let cfg: Vec<(&str, &str)> = gp.config.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(cfg, [("E", ""), ("D", "<>'\"Az"), ("C", "Ã©"), ("B", "twolines"), ("A", "x&y")]);
        let pp = &gp.providers[0];
        assert_eq!((pp.mediasize, pp.sectorsize, pp.stripesize, pp.stripeoffset), (8, u32::MAX, -1, 12));
        assert_eq!(list(xml, "t&c", false, &[]).unwrap().lines().nth(1), Some("E: (null)"));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        // Every proper prefix of a good document is refused (except the one missing only the
        // final newline), and so is every one-byte corruption into markup characters.
        for end in 0..STRIPE.len() {
            let r = Mesh::parse(&STRIPE[..end]);
            assert_eq!(r.is_ok(), end == STRIPE.len() - 1, "prefix of {end} bytes: {r:?}");
        }
        for at in (0..STRIPE.len()).step_by(13) {
            for c in ["<", ">", "&", "/", "\"", "\u{1}"] {
                let mut s = STRIPE.to_owned();
                s.replace_range(at..at + 1, c);
                if Mesh::parse(&s).is_ok() {
                    let _ = list(&s, "stripe", true, &[]);
                    let _ = status(&s, "stripe", true, false, false, &[]);
                }
            }
        }
        let bad = [
            ("<mesh><class></mesh>", "</mesh> closes <class>"),
            ("<mesh>&nbsp;</mesh>", "undefined entity"),
            ("<mesh>&#0;</mesh>", "invalid character"),
            ("<mesh>&#xD800;</mesh>", "invalid character"),
            ("<mesh>&#x41</mesh>", "unterminated reference"),
            ("<mesh>\u{1}</mesh>", "invalid character"),
            ("x<mesh/>", "outside the root"),
            ("<mesh/><mesh/>", "second root"),
            ("<mesh a='1' a='2'/>", "duplicate attribute"),
            ("<mesh a='1'b='2'/>", "expected white space"),
            ("<mesh a=1/>", "quoted attribute value"),
            ("<!DOCTYPE mesh><mesh/>", "DOCTYPE"),
            ("<mesh><!-- open", "unterminated comment"),
            ("", "no root element"),
            ("<mesh><geom id='0x1'/></mesh>", "<geom> outside a <class>"),
            (
                "<mesh><class id='0x1'><geom id='0x2'><name>g</name></geom></class></mesh>",
                "<class ref> does not resolve",
            ),
            (
                "<mesh><class id='0x1'><geom id='0x2'><class ref='0x1'/><consumer id='0x3'><geom ref='0x2'/>\
                 <provider ref='0x2'/></consumer></geom></class></mesh>",
                "is no provider",
            ),
            (
                "<mesh><class id='0x1'><geom id='0x2'><class ref='0x1'/><provider id='0x3'><geom ref='0x2'/>\
                 <mediasize></mediasize></provider></geom></class></mesh>",
                "empty <mediasize>",
            ),
        ];
        for (xml, why) in bad {
            let e = Mesh::parse(xml).expect_err(xml);
            assert!(e.message.contains(why), "{xml}: {e}");
        }
        let deep = format!("{}{}", "<a>".repeat(19), "</a>".repeat(19));
        assert!(Mesh::parse(&deep).is_ok(), "19 levels are libgeom's limit");
        let deeper = format!("{}{}", "<a>".repeat(20), "</a>".repeat(20));
        assert!(Mesh::parse(&deeper).unwrap_err().message.contains("nested deeper"));
    }

    #[test]
    fn humanize_number_rounds_like_libutil() {
        let h = |n: i64| humanize_number(5, n, "", Scale::Auto, HN_B | HN_NOSPACE | HN_DECIMAL).unwrap();
        let cases: [(i64, &str); 19] = [
            (0, "0B"),
            (1, "1B"),
            (999, "999B"),
            (1000, "1.0K"),
            (1023, "1.0K"),
            (1024, "1.0K"),
            (1536, "1.5K"),
            (9 * 1024 + 972, "9.9K"),
            (9 * 1024 + 973, "10K"),
            (10 * 1024 - 1, "10K"),
            (999 * 1024 + 511, "999K"),
            (999 * 1024 + 512, "1.0M"),
            (3 << 20, "3.0M"),
            (100 << 20, "100M"),
            (512 << 20, "512M"),
            (1 << 30, "1.0G"),
            (1 << 60, "1.0E"),
            (i64::MAX, "8.0E"),
            (-1536, "-1.5"),
        ];
        for (n, want) in cases {
            assert_eq!(h(n), want, "{n}");
        }
        assert_eq!(humanize_number(2, 5, "", Scale::Auto, HN_B | HN_NOSPACE | HN_DECIMAL), None, "no room");
        assert_eq!(humanize_number(8, 1 << 20, "", Scale::Fixed(1), 0).as_deref(), Some("1024 K"));
        assert_eq!(humanize_number(8, 1 << 20, "", Scale::Fixed(7), 0), None);
        assert_eq!(
            humanize_number(5, 1500, "", Scale::Auto, HN_DIVISOR_1000 | HN_NOSPACE | HN_DECIMAL).as_deref(),
            Some("1.5k")
        );
        assert_eq!(
            humanize_number(6, 1536, "", Scale::Auto, HN_IEC_PREFIXES | HN_B | HN_NOSPACE | HN_DECIMAL).as_deref(),
            Some("1.5Ki")
        );
        assert_eq!(humanize_number(5, 1, "", Scale::Auto, HN_DIVISOR_1000 | HN_IEC_PREFIXES), None);
    }
}
