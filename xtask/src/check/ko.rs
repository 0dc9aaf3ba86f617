//! [`check_ko`]: the rules an amd64 `.ko` must pass (kmod-build.md section 4).

use std::collections::{BTreeMap, HashSet};

use super::code;
use super::relobj::*;
use super::relocs::{kernel_accepts, rejected_kind, reloc_name};
use super::report::*;
use super::{Finding, Findings, Rule};

/// What a module is supposed to be; the checker compares the file against it.
#[derive(Clone, Copy, Debug)]
pub struct KoExpect<'a> {
    /// The file's module name, which its `MDT_VERSION` record carries (`"geom_stripe"`).
    pub kld: &'a str,
    /// The `moduledata_t` name, which its `MDT_MODULE` record carries (`"g_stripe"`).
    pub module: &'a str,
    /// The `MDT_VERSION` value (`MODULE_VERSION(geom_stripe, 0)`).
    pub module_version: i32,
    /// `(min, preferred, max)` of the `MDT_DEPEND` on `"kernel"`.
    pub kernel_depend: (i32, i32, i32),
    /// `g_class.name` (`"STRIPE"`).
    pub class_name: &'a str,
    /// FreeBSD major release, 14, 15 or 16: picks the `struct g_class` layout.
    pub release: u32,
    /// The `g_class` method slots that must be non-NULL, by FreeBSD field name (see
    /// [`CLASS_METHODS`]); every other slot must be NULL.
    pub methods: &'a [&'a str],
    /// The kernel exports an undefined symbol may name (see [`allowlist()`](super::allowlist())).
    pub allowed_undefined: &'a HashSet<String>,
    /// The defined global or weak symbols the module keeps (EXPORT_SYMS); normally empty.
    pub exports: &'a [&'a str],
    /// Largest acceptable file size in bytes.
    pub max_size: u64,
    /// `M_VERSION` of the release: every `struct malloc_type` must carry it.
    pub m_version: u64,
}

/// The method slots of `struct g_class` in layout order, by FreeBSD field name. `config`
/// exists only in FreeBSD 14.
pub const CLASS_METHODS: [&str; 15] = [
    "taste",
    "config",
    "ctlreq",
    "init",
    "fini",
    "destroy_geom",
    "start",
    "spoiled",
    "attrchanged",
    "dumpconf",
    "access",
    "orphan",
    "ioctl",
    "providergone",
    "resize",
];

/// `G_VERSION`.
const G_VERSION: u32 = 0x2004_1207;
/// `MDT_DEPEND`, `MDT_MODULE`, `MDT_VERSION`.
const MDT_DEPEND: i32 = 1;
const MDT_MODULE: i32 = 2;
const MDT_VERSION: i32 = 3;
/// `sizeof(struct mod_metadata)`, `sizeof(struct sysinit)`, `sizeof(struct malloc_type)`.
const MOD_METADATA_SIZE: usize = 24;
const SYSINIT_SIZE: usize = 32;
const MALLOC_TYPE_SIZE: usize = 112;

/// The `struct g_class` of a release: its size and each method slot's offset.
fn class_layout(release: u32) -> Option<(usize, Vec<(&'static str, u64)>)> {
    let (size, has_config) = match release {
        14 => (176, true),
        15 | 16 => (168, false),
        _ => return None,
    };
    let mut off = 16;
    let mut slots = Vec::new();
    for m in CLASS_METHODS {
        if m == "config" && !has_config {
            continue;
        }
        slots.push((m, off));
        off += 8;
    }
    Some((size, slots))
}

/// Check an amd64 kernel module.
///
/// `bytes` is the whole `.ko`. Returns the decoded report when every rule passes, else every
/// finding (all rules run; a rule that cannot run because an earlier one failed is skipped).
pub fn check_ko(bytes: &[u8], expect: &KoExpect<'_>) -> Result<KoReport, Vec<Finding>> {
    let mut f = Findings::default();
    let mut report = KoReport { file_size: bytes.len() as u64, ..KoReport::default() };

    // Rule 11: size (independent of everything else).
    if bytes.len() as u64 > expect.max_size {
        f.push(
            Rule::Size,
            format!(
                "the file is {} bytes, over the {}-byte limit: a module this size carries code it should not \
                 (check LTO, --gc-sections and compiler_builtins codegen-units)",
                bytes.len(),
                expect.max_size
            ),
        );
    }

    // Rule 1: the header, from the raw bytes first so that every field gets its own finding.
    if !header(bytes, &mut f) {
        return Err(f.0);
    }
    let obj = match RelObj::parse(bytes) {
        Ok(o) => o,
        Err(e) => {
            f.push(Rule::Header, format!("not a readable ELF64 object ({e}): link_elf_obj.c cannot load it"));
            return Err(f.0);
        }
    };
    for e in &obj.decode_errors {
        f.push(Rule::Header, format!("malformed object: {e}; the kernel linker would read garbage or fail"));
    }
    report.osabi = obj.osabi;
    report.sections = obj
        .sections
        .iter()
        .skip(1)
        .map(|s| SectionSummary { name: s.name.clone(), sh_type: s.sh_type, flags: s.flag_letters(), size: s.size })
        .collect();

    symtab(&obj, &mut f);
    report.relocations = relocations(&obj, &mut f);
    forbidden(&obj, &mut f);

    let mm = set(&obj, "set_modmetadata_set", false, &mut f);
    let si = set(&obj, "set_sysinit_set", true, &mut f);
    let su = set(&obj, "set_sysuninit_set", true, &mut f);
    report.modmetadata_set = mm.as_ref().map(|s| s.summary.clone());
    report.sysinit_set = si.as_ref().map(|s| s.summary.clone());
    report.sysuninit_set = su.as_ref().map(|s| s.summary.clone());

    let module = metadata(&obj, mm.as_ref(), expect, &mut f, &mut report.metadata);
    if let Some(m) = &module {
        report.class = class(&obj, &m.priv_, expect, &mut f);
    }
    sysinits(&obj, si.as_ref(), su.as_ref(), module.as_ref(), expect, &mut f, &mut report);
    symbols(&obj, expect, &mut f, &mut report);

    // Rule 10: instructions.
    for scan in code::scan(&obj) {
        for u in &scan.listed {
            f.push(
                Rule::Code,
                format!(
                    "{}+{:#x} ({}): `{}` uses {}: the kernel does not save FPU/SIMD state for module code \
                     (kern.mk: -mno-mmx -mno-sse -msoft-float); build for x86_64-unknown-none with soft-float",
                    u.section, u.offset, u.near, u.text, u.why
                ),
            );
        }
        if scan.total > scan.listed.len() {
            f.push(
                Rule::Code,
                format!(
                    "{}: {} more FPU/SIMD instructions not listed ({} in all)",
                    scan.section,
                    scan.total - scan.listed.len(),
                    scan.total
                ),
            );
        }
    }

    f.finish(report)
}

/// Rule 1 on the raw bytes. Returns false when the rest cannot be decoded.
fn header(bytes: &[u8], f: &mut Findings) -> bool {
    if bytes.len() < 64 {
        f.push(Rule::Header, format!("{} bytes is shorter than an ELF64 header (64): not an object file", bytes.len()));
        return false;
    }
    if bytes[..4] != [0x7f, b'E', b'L', b'F'] {
        f.push(Rule::Header, "no ELF magic (7f 45 4c 46): kldload finds no linker class for the file");
        return false;
    }
    let mut decodable = true;
    if bytes[4] != 2 {
        f.push(Rule::Header, format!("EI_CLASS is {}, not ELFCLASS64 (2): amd64 klds are ELF64", bytes[4]));
        decodable = false;
    }
    if bytes[5] != 1 {
        f.push(Rule::Header, format!("EI_DATA is {}, not ELFDATA2LSB (1): amd64 is little endian", bytes[5]));
        decodable = false;
    }
    if bytes[6] != 1 {
        f.push(Rule::Header, format!("EI_VERSION is {}, not EV_CURRENT (1): link_elf_obj.c refuses it", bytes[6]));
        decodable = false;
    }
    if !decodable {
        return false;
    }
    let e_type = u16::from_le_bytes([bytes[16], bytes[17]]);
    if e_type != 1 {
        f.push(
            Rule::Header,
            format!(
                "e_type is {e_type} ({}), not ET_REL (1): amd64 klds are relocatable objects \
                 (link_elf_obj.c answers ENOSYS for anything else; kmod.mk links with ld -r)",
                match e_type {
                    0 => "ET_NONE",
                    2 => "ET_EXEC",
                    3 => "ET_DYN",
                    4 => "ET_CORE",
                    _ => "unknown",
                }
            ),
        );
    }
    let e_machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    if e_machine != 62 {
        f.push(Rule::Header, format!("e_machine is {e_machine}, not EM_X86_64 (62): the kernel linker refuses it"));
    }
    true
}

/// Rule 2.
fn symtab(obj: &RelObj<'_>, f: &mut Findings) {
    let tabs: Vec<&Section<'_>> = obj.sections.iter().filter(|s| s.sh_type == SHT_SYMTAB).collect();
    if tabs.len() != 1 {
        f.push(
            Rule::Symtab,
            format!(
                "{} SHT_SYMTAB sections: link_elf_obj.c requires exactly one and fails the load otherwise \
                 (strip with --strip-debug, never --strip-all)",
                tabs.len()
            ),
        );
        return;
    }
    let link = tabs[0].link as usize;
    match obj.sections.get(link) {
        Some(s) if s.sh_type == SHT_STRTAB => {}
        _ => f.push(
            Rule::Symtab,
            format!(
                "{}: sh_link {link} is not an SHT_STRTAB: the kernel linker cannot read symbol names",
                tabs[0].name
            ),
        ),
    }
}

/// Rule 3. Returns the counts of every relocation type of loaded sections.
fn relocations(obj: &RelObj<'_>, f: &mut Findings) -> BTreeMap<String, usize> {
    for s in obj.sections.iter().filter(|s| s.sh_type == SHT_REL) {
        f.push(
            Rule::Relocations,
            format!(
                "{}: an SHT_REL section: rustc and clang emit RELA only, so this comes from a foreign object \
                 linked into the module",
                s.name
            ),
        );
    }
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    let mut bad: BTreeMap<u32, (usize, Vec<String>)> = BTreeMap::new();
    for &(_, target, t) in &obj.alloc_reloc_types {
        *counts.entry(t).or_default() += 1;
        if !kernel_accepts(t) {
            let e = bad.entry(t).or_default();
            e.0 += 1;
            let name = &obj.sections[target].name;
            if !e.1.contains(name) {
                e.1.push(name.clone());
            }
        }
    }
    for (t, (n, secs)) in bad {
        f.push(
            Rule::Relocations,
            format!(
                "{n} x {} in {}: {}; sys/amd64/amd64/elf_machdep.c applies only NONE, 64, PC32, PLT32, GLOB_DAT, \
                 JUMP_SLOT, RELATIVE, 32S and IRELATIVE, so kldload fails",
                reloc_name(t),
                secs.join(", "),
                rejected_kind(t)
            ),
        );
    }
    counts.into_iter().map(|(t, n)| (reloc_name(t), n)).collect()
}

/// Rule 4.
fn forbidden(obj: &RelObj<'_>, f: &mut Findings) {
    for s in obj.sections.iter().skip(1) {
        if s.sh_type == SHT_GROUP {
            f.push(
                Rule::Forbidden,
                format!(
                    "{}: a section group (COMDAT): the kernel linker ignores groups, so duplicate COMDAT copies \
                     are never folded; kmod.mk output has none",
                    s.name
                ),
            );
        }
        if s.name == ".eh_frame" || s.name.starts_with(".eh_frame.") {
            f.push(
                Rule::Forbidden,
                format!(
                    "{}: unwind tables: the kernel never unwinds, and kern.mk builds with \
                     -fno-asynchronous-unwind-tables; build with -C force-unwind-tables=no and panic=abort",
                    s.name
                ),
            );
        }
        let ctor_name =
            |n: &str| n == ".ctors" || n == ".dtors" || n.starts_with(".ctors.") || n.starts_with(".dtors.");
        if s.sh_type == SHT_INIT_ARRAY || s.sh_type == SHT_FINI_ARRAY || ctor_name(&s.name) {
            f.push(
                Rule::Forbidden,
                format!(
                    "{}: constructors/destructors: link_elf_obj.c runs them at load/unload (and fails with more \
                     than one); a geom-rs module registers itself through SYSINIT only",
                    s.name
                ),
            );
        }
    }
}

/// A linker set that passed rule 5's shape checks.
struct SetInfo {
    /// Report line.
    summary: SetSummary,
    /// Each entry's target, in order (only the ones that resolve into this object).
    entries: Vec<(u64, Ptr)>,
}

/// Rule 5 for one set. Returns the set if it exists (even with findings in its entries).
fn set(obj: &RelObj<'_>, name: &str, writable: bool, f: &mut Findings) -> Option<SetInfo> {
    let all: Vec<usize> = obj.sections.iter().enumerate().filter(|(_, s)| s.name == name).map(|(i, _)| i).collect();
    let &idx = all.first()?;
    if all.len() > 1 {
        f.push(
            Rule::Sets,
            format!(
                "{} sections named {name}: link_elf_lookup_set uses only the first, so the other entries are \
                 never seen (link with a script that merges them)",
                all.len()
            ),
        );
    }
    let s = &obj.sections[idx];
    let why_set = match name {
        "set_modmetadata_set" => "kern_linker.c reads the module metadata from it",
        "set_sysinit_set" => "kern_linker.c sorts it in place and calls every entry at load",
        _ => "kern_linker.c sorts it in place and calls every entry at unload",
    };
    if s.sh_type != SHT_PROGBITS || s.flags & SHF_ALLOC == 0 {
        f.push(
            Rule::Sets,
            format!(
                "{name}: type {:#x} flags {}, not PROGBITS+ALLOC: the kernel linker does not load it, and {why_set}",
                s.sh_type,
                s.flag_letters()
            ),
        );
    }
    if writable && s.flags & SHF_WRITE == 0 {
        f.push(
            Rule::Sets,
            format!(
                "{name}: not writable (flags {}): {why_set}, which faults on a read-only page \
                 (use DATA_WSET semantics: an UnsafeCell entry)",
                s.flag_letters()
            ),
        );
    }
    if s.size % 8 != 0 {
        f.push(
            Rule::Sets,
            format!("{name}: size {} is not a multiple of 8: a linker set is an array of pointers", s.size),
        );
    }
    let mut entries = Vec::new();
    for i in 0..s.size / 8 {
        let off = i * 8;
        let p = obj.pointer(idx, off);
        match &p {
            Ptr::Local { .. } => entries.push((off, p)),
            other => f.push(
                Rule::Sets,
                format!(
                    "{name}[{i}] points to {}: each entry needs an R_X86_64_64 relocation to a symbol defined in \
                     the module, or {why_set} through a bad pointer",
                    obj.describe(other)
                ),
            ),
        }
    }
    let summary = SetSummary { name: name.to_owned(), entries: s.size / 8, flags: s.flag_letters() };
    Some(SetInfo { summary, entries })
}

/// What rule 6 learnt about the module's `moduledata_t`.
struct ModuleInfo {
    /// Where the `moduledata_t` lives.
    place: (usize, u64),
    /// Its `priv` (the `g_class`).
    priv_: Ptr,
}

/// Rule 6.
fn metadata(
    obj: &RelObj<'_>,
    mm: Option<&SetInfo>,
    expect: &KoExpect<'_>,
    f: &mut Findings,
    out: &mut Vec<MetadataRecord>,
) -> Option<ModuleInfo> {
    let Some(mm) = mm else {
        f.push(
            Rule::Metadata,
            "no set_modmetadata_set section: kern_linker.c finds no module in the file, so nothing registers \
             (declare the module with MDT_DEPEND, MDT_MODULE and MDT_VERSION records)",
        );
        return None;
    };
    let mut kernel_dep = None;
    let mut module = None;
    let mut version = None;
    for (entry, p) in &mm.entries {
        let Ptr::Local { section, offset } = *p else { continue };
        let at = obj.place_name(section, offset);
        if obj.read(section, offset, MOD_METADATA_SIZE).is_none() {
            f.push(
                Rule::Metadata,
                format!(
                    "set_modmetadata_set[{}] -> {at}: a 24-byte struct mod_metadata does not fit in its section",
                    entry / 8
                ),
            );
            continue;
        }
        let md_version = obj.i32_at(section, offset).unwrap_or(0);
        let md_type = obj.i32_at(section, offset + 4).unwrap_or(0);
        let data = obj.pointer(section, offset + 8);
        let cval_ptr = obj.pointer(section, offset + 16);
        if md_version != 1 {
            f.push(
                Rule::Metadata,
                format!("{at}: md_version {md_version}, not MDT_STRUCT_VERSION (1): the record is misread"),
            );
        }
        let Some(cval) = obj.cstr(&cval_ptr) else {
            f.push(
                Rule::Metadata,
                format!(
                    "{at}: md_cval points to {}, not a NUL-terminated string in the module: the kernel reads the \
                     module or dependency name from it",
                    obj.describe(&cval_ptr)
                ),
            );
            continue;
        };
        let Ptr::Local { section: ds, offset: doff } = data else {
            f.push(
                Rule::Metadata,
                format!("{at} (cval {cval:?}): md_data points to {}, not into the module", obj.describe(&data)),
            );
            continue;
        };
        let record = match md_type {
            MDT_DEPEND => match (obj.i32_at(ds, doff), obj.i32_at(ds, doff + 4), obj.i32_at(ds, doff + 8)) {
                (Some(min), Some(pref), Some(max)) => {
                    if cval == "kernel" {
                        kernel_dep = Some((min, pref, max));
                    }
                    Metadata::Depend { min, pref, max }
                }
                _ => {
                    f.push(Rule::Metadata, format!("{at}: MDT_DEPEND {cval:?}: struct mod_depend out of bounds"));
                    continue;
                }
            },
            MDT_MODULE => {
                if obj.read(ds, doff, 24).is_none() {
                    f.push(Rule::Metadata, format!("{at}: MDT_MODULE {cval:?}: moduledata_t out of bounds"));
                    continue;
                }
                let name_ptr = obj.pointer(ds, doff);
                let evhand = obj.pointer(ds, doff + 8);
                let priv_ = obj.pointer(ds, doff + 16);
                let name = obj.cstr(&name_ptr).unwrap_or_else(|| format!("<{}>", obj.describe(&name_ptr)));
                check_evhand(obj, &cval, &evhand, f);
                if cval == expect.module {
                    module = Some(ModuleInfo { place: (ds, doff), priv_: priv_.clone() });
                    if name != expect.module {
                        f.push(
                            Rule::Metadata,
                            format!(
                                "MDT_MODULE {cval:?}: moduledata.name is {name:?}, expected {:?}: \
                                 module_register() registers the module under moduledata.name",
                                expect.module
                            ),
                        );
                    }
                }
                Metadata::Module { name, evhand: obj.describe(&evhand), priv_: obj.describe(&priv_) }
            }
            MDT_VERSION => match obj.i32_at(ds, doff) {
                Some(v) => {
                    if cval == expect.kld {
                        version = Some(v);
                    }
                    Metadata::Version(v)
                }
                None => {
                    f.push(Rule::Metadata, format!("{at}: MDT_VERSION {cval:?}: struct mod_version out of bounds"));
                    continue;
                }
            },
            other => Metadata::Other(other),
        };
        out.push(MetadataRecord { md_version, cval, data: record });
    }

    let (emin, epref, emax) = expect.kernel_depend;
    match kernel_dep {
        None => f.push(
            Rule::Metadata,
            format!(
                "no MDT_DEPEND on \"kernel\": DECLARE_MODULE always records one ({emin}..{emax}); without it the \
                 module claims to load on any kernel, whatever its ABI"
            ),
        ),
        Some(d) if d != expect.kernel_depend => f.push(
            Rule::Metadata,
            format!(
                "MDT_DEPEND on \"kernel\" is ({}, {}, {}), expected ({emin}, {epref}, {emax}): \
                 linker_load_dependencies refuses a kernel whose __FreeBSD_version is outside [min, max], \
                 and the struct layouts were built for the expected release",
                d.0, d.1, d.2
            ),
        ),
        Some(_) => {}
    }
    if module.is_none() {
        let names: Vec<String> =
            out.iter().filter(|r| matches!(r.data, Metadata::Module { .. })).map(|r| format!("{:?}", r.cval)).collect();
        f.push(
            Rule::Metadata,
            format!(
                "no MDT_MODULE named {:?} (found: {}): linker_file_register_modules registers modules by this \
                 record, so the class would never be loaded under its expected name",
                expect.module,
                if names.is_empty() { "none".to_owned() } else { names.join(", ") }
            ),
        );
    }
    match version {
        None => f.push(
            Rule::Metadata,
            format!(
                "no MDT_VERSION named {:?}: the loader and kldxref register the file's module name and version \
                 from it (MODULE_VERSION)",
                expect.kld
            ),
        ),
        Some(v) if v != expect.module_version => f.push(
            Rule::Metadata,
            format!(
                "MDT_VERSION {:?} is {v}, expected {}: MODULE_DEPEND users and kldxref see the wrong version",
                expect.kld, expect.module_version
            ),
        ),
        Some(_) => {}
    }
    module
}

/// `moduledata.evhand`: `g_modevent` from the kernel, or a function of the module.
fn check_evhand(obj: &RelObj<'_>, cval: &str, evhand: &Ptr, f: &mut Findings) {
    let ok = match evhand {
        Ptr::Undefined { name, addend: 0 } => name == "g_modevent",
        Ptr::Local { section, offset } => {
            obj.function_at(*section, *offset).is_some() && obj.sections[*section].flags & SHF_EXECINSTR != 0
        }
        _ => false,
    };
    if !ok {
        f.push(
            Rule::Metadata,
            format!(
                "MDT_MODULE {cval:?}: evhand points to {}, neither the kernel's g_modevent nor a function of the \
                 module: module_register_init calls it with MOD_LOAD",
                obj.describe(evhand)
            ),
        );
    }
}

/// Rule 7.
fn class(obj: &RelObj<'_>, priv_: &Ptr, expect: &KoExpect<'_>, f: &mut Findings) -> Option<ClassSummary> {
    let Some((size, slots)) = class_layout(expect.release) else {
        f.push(Rule::Class, format!("release {} has no known struct g_class layout (14, 15 or 16)", expect.release));
        return None;
    };
    for m in expect.methods {
        if !slots.iter().any(|(s, _)| s == m) {
            f.push(
                Rule::Class,
                format!("expected method {m:?} is not a struct g_class slot on FreeBSD {}", expect.release),
            );
        }
    }
    let Ptr::Local { section, offset } = *priv_ else {
        f.push(
            Rule::Class,
            format!(
                "moduledata.priv points to {}, not to a struct g_class in the module: g_modevent dereferences it",
                obj.describe(priv_)
            ),
        );
        return None;
    };
    let place = obj.place_name(section, offset);
    if obj.read(section, offset, size).is_none() {
        f.push(
            Rule::Class,
            format!("{place}: a {size}-byte struct g_class (FreeBSD {}) does not fit in its section", expect.release),
        );
        return None;
    }
    let sec = &obj.sections[section];
    if sec.flags & SHF_WRITE == 0 {
        f.push(
            Rule::Class,
            format!(
                "{place}: the g_class is in {} (flags {}), not writable: g_load_class links it into the class list \
                 and writes its geom list head, which faults on a read-only page",
                sec.name,
                sec.flag_letters()
            ),
        );
    }
    let name_ptr = obj.pointer(section, offset);
    let name = obj.cstr(&name_ptr);
    match &name {
        Some(n) if n == expect.class_name => {}
        Some(n) => f.push(
            Rule::Class,
            format!(
                "{place}: class name {n:?}, expected {:?}: geom(8) and gctl requests find the class by name",
                expect.class_name
            ),
        ),
        None => f.push(
            Rule::Class,
            format!("{place}: name points to {}, not a string in the module", obj.describe(&name_ptr)),
        ),
    }
    let version = obj.u32_at(section, offset + 8).unwrap_or(0);
    if version != G_VERSION {
        f.push(
            Rule::Class,
            format!(
                "{place}: version {version:#x}, not G_VERSION ({G_VERSION:#x}): g_modevent refuses the class with \
                 EINVAL (\"has Wrong version\")"
            ),
        );
    }
    let mut methods = Vec::new();
    for (slot, off) in &slots {
        let p = obj.pointer(section, offset + off);
        let expected = expect.methods.contains(slot);
        if p == Ptr::Null {
            if expected {
                f.push(
                    Rule::Class,
                    format!("{place}: method {slot} is NULL but the class declares it: GEOM would never call it"),
                );
            }
            continue;
        }
        let target = obj.describe(&p);
        if !expected {
            f.push(
                Rule::Class,
                format!(
                    "{place}: method {slot} is set (-> {target}) but not expected: GEOM calls every non-NULL slot \
                     (for FreeBSD {}: check the layout and the class's method list)",
                    expect.release
                ),
            );
        }
        let ok = match &p {
            Ptr::Local { section: ts, offset: to } => obj.is_code(*ts, *to),
            Ptr::Undefined { name, addend: 0 } => expect.allowed_undefined.contains(name),
            _ => false,
        };
        if !ok {
            f.push(
                Rule::Class,
                format!(
                    "{place}: method {slot} points to {target}, not code (an address inside an executable section, at a \
                     function if a symbol names it, or an allowed kernel export): GEOM would jump there"
                ),
            );
        }
        methods.push((slot.to_string(), target));
    }
    Some(ClassSummary { place, name: name.unwrap_or_default(), version, methods })
}

/// Rule 8.
fn sysinits(
    obj: &RelObj<'_>,
    si: Option<&SetInfo>,
    su: Option<&SetInfo>,
    module: Option<&ModuleInfo>,
    expect: &KoExpect<'_>,
    f: &mut Findings,
    report: &mut KoReport,
) {
    let mut registers = false;
    let mut inits = HashSet::new();
    let mut uninits = HashSet::new();
    match si {
        None => f.push(
            Rule::Sysinit,
            "no set_sysinit_set: nothing calls module_register_init, so the module loads but never registers \
             (DECLARE_MODULE adds that SYSINIT)",
        ),
        Some(set) => {
            for (entry, p) in &set.entries {
                let Some(r) =
                    sysinit_record(obj, "set_sysinit_set", entry / 8, p, "malloc_init", expect, f, &mut inits)
                else {
                    continue;
                };
                if let (Some(m), Ptr::Local { section, offset }) = (module, p) {
                    let func = obj.pointer(*section, offset + 16);
                    let udata = obj.pointer(*section, offset + 24);
                    let is_register =
                        matches!(&func, Ptr::Undefined { name, addend: 0 } if name == "module_register_init");
                    if is_register && udata == (Ptr::Local { section: m.place.0, offset: m.place.1 }) {
                        registers = true;
                    }
                }
                report.sysinits.push(r);
            }
            if module.is_some() && !registers {
                f.push(
                    Rule::Sysinit,
                    format!(
                        "no set_sysinit_set record calls module_register_init with the moduledata of {:?}: the module \
                         would load but never send MOD_LOAD to its event handler",
                        expect.module
                    ),
                );
            }
        }
    }
    if let Some(set) = su {
        for (entry, p) in &set.entries {
            if let Some(r) =
                sysinit_record(obj, "set_sysuninit_set", entry / 8, p, "malloc_uninit", expect, f, &mut uninits)
            {
                report.sysuninits.push(r);
            }
        }
    }
    for place in inits.difference(&uninits) {
        f.push(
            Rule::Sysinit,
            format!(
                "malloc type {} is registered by malloc_init but never unregistered by a malloc_uninit \
                 SYSUNINIT: after kldunload the kernel's malloc type list points into freed module memory",
                obj.place_name(place.0, place.1)
            ),
        );
    }
}

/// One `struct sysinit` of set `set_name`. Checks its place and, for `malloc_fn`, its malloc
/// type (recorded in `malloc_types`).
#[allow(clippy::too_many_arguments)]
fn sysinit_record(
    obj: &RelObj<'_>,
    set_name: &str,
    index: u64,
    p: &Ptr,
    malloc_fn: &str,
    expect: &KoExpect<'_>,
    f: &mut Findings,
    malloc_types: &mut HashSet<(usize, u64)>,
) -> Option<SysinitRecord> {
    let Ptr::Local { section, offset } = *p else { return None };
    let at = format!("{set_name}[{index}] -> {}", obj.place_name(section, offset));
    if obj.read(section, offset, SYSINIT_SIZE).is_none() {
        f.push(Rule::Sysinit, format!("{at}: a 32-byte struct sysinit does not fit in its section"));
        return None;
    }
    let sec = &obj.sections[section];
    if sec.flags & SHF_WRITE == 0 {
        f.push(
            Rule::Sysinit,
            format!(
                "{at}: the struct sysinit is in {} (flags {}), not writable: the kernel links records through \
                 their `next` field, which faults on a read-only page",
                sec.name,
                sec.flag_letters()
            ),
        );
    }
    let subsystem = obj.u32_at(section, offset).unwrap_or(0);
    let order = obj.u32_at(section, offset + 4).unwrap_or(0);
    let func = obj.pointer(section, offset + 16);
    let udata = obj.pointer(section, offset + 24);
    let func_ok = match &func {
        Ptr::Undefined { addend: 0, .. } => true,
        Ptr::Local { section: ts, offset: to } => obj.is_code(*ts, *to),
        _ => false,
    };
    if !func_ok {
        f.push(
            Rule::Sysinit,
            format!(
                "{at}: func points to {}, not a function: the kernel calls it at {}",
                obj.describe(&func),
                if set_name == "set_sysinit_set" { "load" } else { "unload" }
            ),
        );
    }
    let mut malloc_type = None;
    if matches!(&func, Ptr::Undefined { name, .. } if name == malloc_fn) {
        malloc_type = check_malloc_type(obj, &at, &udata, expect, f, malloc_types);
    }
    Some(SysinitRecord { subsystem, order, func: obj.describe(&func), udata: obj.describe(&udata), malloc_type })
}

/// The `struct malloc_type` a `malloc_init`/`malloc_uninit` record hands over.
fn check_malloc_type(
    obj: &RelObj<'_>,
    at: &str,
    udata: &Ptr,
    expect: &KoExpect<'_>,
    f: &mut Findings,
    malloc_types: &mut HashSet<(usize, u64)>,
) -> Option<MallocTypeSummary> {
    let Ptr::Local { section, offset } = *udata else {
        f.push(
            Rule::Sysinit,
            format!("{at}: udata points to {}, not to a struct malloc_type of the module", obj.describe(udata)),
        );
        return None;
    };
    let place = obj.place_name(section, offset);
    if obj.read(section, offset, MALLOC_TYPE_SIZE).is_none() {
        f.push(Rule::Sysinit, format!("{at}: a 112-byte struct malloc_type at {place} does not fit in its section"));
        return None;
    }
    malloc_types.insert((section, offset));
    let sec = &obj.sections[section];
    if sec.flags & SHF_WRITE == 0 {
        f.push(
            Rule::Sysinit,
            format!(
                "{at}: malloc type {place} is in {} (flags {}), not writable: malloc_init links it into the \
                 kernel's list and fills its statistics",
                sec.name,
                sec.flag_letters()
            ),
        );
    }
    let ks_version = obj.u64_at(section, offset + 8).unwrap_or(0);
    if ks_version != expect.m_version {
        f.push(
            Rule::Sysinit,
            format!(
                "{at}: malloc type {place} has ks_version {ks_version}, expected M_VERSION {} for FreeBSD {}: \
                 malloc_init panics on a mismatch",
                expect.m_version, expect.release
            ),
        );
    }
    let desc_ptr = obj.pointer(section, offset + 16);
    let shortdesc = match obj.cstr(&desc_ptr) {
        Some(s) => s,
        None => {
            f.push(
                Rule::Sysinit,
                format!(
                    "{at}: malloc type {place}: ks_shortdesc points to {}, not a string: vmstat -m and the kernel \
                     print it",
                    obj.describe(&desc_ptr)
                ),
            );
            String::new()
        }
    };
    Some(MallocTypeSummary { ks_version, shortdesc })
}

/// Rule 9.
fn symbols(obj: &RelObj<'_>, expect: &KoExpect<'_>, f: &mut Findings, report: &mut KoReport) {
    let loaded: HashSet<&str> = obj.sections.iter().filter(|s| s.is_loaded()).map(|s| s.name.as_str()).collect();
    let mut undefined = Vec::new();
    let mut exported = Vec::new();
    for s in obj.symbols.iter().skip(1) {
        if s.name.is_empty() || s.typ == STT_SECTION || s.typ == STT_FILE {
            continue;
        }
        if s.shndx == SHN_UNDEF {
            undefined.push(s.name.clone());
            if expect.allowed_undefined.contains(&s.name) {
                continue;
            }
            let set_bound = s.name.strip_prefix("__start_").or_else(|| s.name.strip_prefix("__stop_"));
            if let Some(sec) = set_bound {
                if loaded.contains(sec) {
                    continue;
                }
            }
            let weak = if s.bind == STB_WEAK { " (weak: it would silently become NULL)" } else { "" };
            f.push(
                Rule::Symbols,
                format!(
                    "undefined symbol {}{weak} is not in the FreeBSD {} kernel export allow-list: relocate_file \
                     fails the load with \"undefined symbol\" unless the kernel or a MODULE_DEPEND provides it",
                    s.name, expect.release
                ),
            );
        } else if matches!(s.bind, STB_GLOBAL | STB_WEAK | STB_GNU_UNIQUE) {
            exported.push(s.name.clone());
            if !expect.exports.contains(&s.name.as_str()) {
                f.push(
                    Rule::Symbols,
                    format!(
                        "{} is a defined global symbol but not in EXPORT_SYMS: it joins the kernel's global \
                         namespace and can clash with another module's (localise it: objcopy --localize-symbol)",
                        s.name
                    ),
                );
            }
        }
    }
    for e in expect.exports {
        if !exported.iter().any(|x| x == e) {
            f.push(
                Rule::Symbols,
                format!("EXPORT_SYMS entry {e} is not a defined global symbol: modules depending on it fail to load"),
            );
        }
    }
    undefined.sort();
    undefined.dedup();
    exported.sort();
    report.undefined = undefined;
    report.exported = exported;
}
