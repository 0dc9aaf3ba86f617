//! [`check_geom_lib`]: the userland class library geom(8) loads (`geom_<class>.so`).
//!
//! geom(8) `dlopen`s `/lib/geom/geom_<class>.so` and looks up exactly three symbols:
//! `lib_version` (must equal `G_LIB_VERSION`, 5), `version` (the class version, sent to the
//! kernel with every request) and `class_commands` (the verb table), then writes into the
//! table while parsing options (`sbin/geom/core/geom.c`).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;

use object::elf;
use object::read::elf::{Dyn as _, FileHeader, Rela as _, SectionHeader as _, Sym as _};
use object::LittleEndian as LE;

use super::commands::{decode_commands, Command, DynPtr, Image, Region};
use super::relobj::{SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHT_NOBITS, SHT_REL, SHT_RELA};
use super::relocs::reloc_name;
use super::{Finding, Findings, Rule};

/// `G_LIB_VERSION`.
const G_LIB_VERSION: u32 = 5;
/// `SHT_DYNSYM`, `SHT_DYNAMIC`.
const SHT_DYNSYM: u32 = 11;
const SHT_DYNAMIC: u32 = 6;
/// `DT_TEXTREL`, `DT_FLAGS`, `DF_TEXTREL`.
const DT_TEXTREL: i64 = 22;
const DT_FLAGS: i64 = 30;
const DF_TEXTREL: u64 = 0x4;
/// Relocation types rtld applies to a geom class library here: NONE, 64, GLOB_DAT,
/// JUMP_SLOT, RELATIVE.
const LIB_RELOCS: [u32; 5] = [0, 1, 6, 7, 8];
/// The symbols geom(8) looks up.
const LIB_EXPORTS: [&str; 3] = ["class_commands", "lib_version", "version"];

/// What a class library is supposed to be.
#[derive(Clone, Copy, Debug)]
pub struct LibExpect<'a> {
    /// The class version the library's `version` must hold (the kernel class's
    /// `G_<CLASS>_VERSION`).
    pub class_version: u32,
    /// The libc/libgeom symbols it may import (see [`allowlist()`](super::allowlist())).
    pub allowed_undefined: &'a HashSet<String>,
}

/// A decoded, accepted class library.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LibReport {
    /// `lib_version`.
    pub lib_version: u32,
    /// `version`.
    pub version: u32,
    /// The verbs of `class_commands`, in table order.
    pub commands: Vec<Command>,
    /// Imported symbols, sorted.
    pub imports: Vec<String>,
}

impl fmt::Display for LibReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "lib_version={} version={}", self.lib_version, self.version)?;
        for c in &self.commands {
            write!(f, "{c}")?;
        }
        let imports = if self.imports.is_empty() { "(none)".to_owned() } else { self.imports.join(", ") };
        writeln!(f, "imports: {imports}")
    }
}

/// A loaded section of the library.
struct LibSection<'d> {
    name: String,
    addr: u64,
    size: u64,
    flags: u64,
    nobits: bool,
    data: &'d [u8],
}

/// A dynamic symbol.
struct DynSym {
    name: String,
    bind: u8,
    typ: u8,
    visibility: u8,
    shndx: u16,
    value: u64,
}

/// The library as geom(8) sees it once loaded at base 0.
struct Lib<'d> {
    /// `SHF_ALLOC` sections sorted by address.
    sections: Vec<LibSection<'d>>,
    /// Dynamic symbols, index 0 included.
    symbols: Vec<DynSym>,
    /// Dynamic relocations by address: (type, symbol index, addend).
    relocs: HashMap<u64, (u32, u32, i64)>,
    /// Defined symbols by address, for naming.
    by_addr: HashMap<u64, usize>,
}

impl Lib<'_> {
    fn section_of(&self, addr: u64) -> Option<&LibSection<'_>> {
        let i = self.sections.partition_point(|s| s.addr <= addr);
        let s = self.sections.get(i.checked_sub(1)?)?;
        (addr < s.addr + s.size).then_some(s)
    }
}

impl Image for Lib<'_> {
    fn bytes_from(&self, addr: u64) -> Option<Cow<'_, [u8]>> {
        let s = self.section_of(addr)?;
        let off = (addr - s.addr) as usize;
        if s.nobits {
            Some(Cow::Owned(vec![0; s.size as usize - off]))
        } else {
            s.data.get(off..).map(Cow::Borrowed)
        }
    }

    fn pointer(&self, addr: u64) -> DynPtr {
        if let Some(&(t, sym, addend)) = self.relocs.get(&addr) {
            return match t {
                8 => DynPtr::Addr(addend as u64),
                1 | 6 | 7 => match self.symbols.get(sym as usize) {
                    Some(s) if s.shndx == 0 => DynPtr::Import(s.name.clone()),
                    Some(s) => DynPtr::Addr(s.value.wrapping_add(addend as u64)),
                    None => DynPtr::Bad(format!("a relocation naming missing symbol {sym}")),
                },
                other => DynPtr::Bad(format!("a {} relocation", reloc_name(other))),
            };
        }
        match self.bytes(addr, 8) {
            Some(b) => match u64::from_le_bytes(b[..8].try_into().expect("8 bytes")) {
                0 => DynPtr::Null,
                v => DynPtr::Constant(v),
            },
            None => DynPtr::Bad(format!("{addr:#x} (unmapped)")),
        }
    }

    fn region(&self, addr: u64) -> Option<Region> {
        self.section_of(addr).map(|s| Region {
            name: s.name.clone(),
            writable: s.flags & SHF_WRITE != 0,
            exec: s.flags & SHF_EXECINSTR != 0,
        })
    }

    fn symbol_at(&self, addr: u64) -> Option<String> {
        self.by_addr.get(&addr).map(|&i| self.symbols[i].name.clone())
    }
}

/// Check a geom(8) class library (`geom_<class>.so`, ELF64 `ET_DYN`).
pub fn check_geom_lib(bytes: &[u8], expect: &LibExpect<'_>) -> Result<LibReport, Vec<Finding>> {
    let mut f = Findings::default();
    let h = Rule::LibHeader;
    if bytes.len() < 64 || bytes[..4] != [0x7f, b'E', b'L', b'F'] {
        f.push(h, "not an ELF file: dlopen fails");
        return Err(f.0);
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        f.push(h, format!("EI_CLASS {} / EI_DATA {}: amd64 libraries are ELF64 little endian", bytes[4], bytes[5]));
        return Err(f.0);
    }
    let hdr = match elf::FileHeader64::<LE>::parse(bytes) {
        Ok(hdr) => hdr,
        Err(e) => {
            f.push(h, format!("unreadable ELF header ({e}): dlopen fails"));
            return Err(f.0);
        }
    };
    let endian = LE;
    let e_type = hdr.e_type(endian).0;
    if e_type != 3 {
        f.push(h, format!("e_type {e_type}, not ET_DYN (3): geom(8) dlopens a shared object"));
    }
    let e_machine = hdr.e_machine(endian).0;
    if e_machine != 62 {
        f.push(h, format!("e_machine {e_machine}, not EM_X86_64 (62): rtld refuses it"));
    }
    let table = match hdr.sections(endian, bytes) {
        Ok(t) => t,
        Err(e) => {
            f.push(h, format!("section headers unreadable ({e})"));
            return Err(f.0);
        }
    };

    let mut sections = Vec::new();
    let mut dynsym_index = None;
    let mut textrel = false;
    let mut has_dynamic = false;
    for (i, sh) in table.iter().enumerate() {
        let sh_type = sh.sh_type(endian).0;
        let name = table.section_name(endian, sh).map(|n| String::from_utf8_lossy(n).into_owned());
        let name = name.unwrap_or_else(|_| format!("<section {i}>"));
        if sh_type == SHT_DYNSYM && dynsym_index.is_none() {
            dynsym_index = Some(i);
        }
        if sh_type == SHT_REL {
            f.push(
                Rule::LibRelocations,
                format!("{name}: SHT_REL relocations: amd64 objects use RELA; this comes from a foreign object"),
            );
        }
        if sh_type == SHT_DYNAMIC {
            has_dynamic = true;
            match sh.dynamic(endian, bytes) {
                Ok(Some((entries, _))) => {
                    for d in entries {
                        let tag = d.d_tag(endian).0;
                        if tag == DT_TEXTREL || (tag == DT_FLAGS && d.d_val(endian) & DF_TEXTREL != 0) {
                            textrel = true;
                        }
                    }
                }
                _ => f.push(h, format!("{name}: the dynamic section is unreadable")),
            }
        }
        let flags = sh.sh_flags(endian).0;
        if flags & SHF_ALLOC == 0 || sh.sh_size(endian) == 0 {
            continue;
        }
        let nobits = sh_type == SHT_NOBITS;
        let data = if nobits { &[][..] } else { sh.data(endian, bytes).unwrap_or(&[]) };
        sections.push(LibSection { name, addr: sh.sh_addr(endian), size: sh.sh_size(endian), flags, nobits, data });
    }
    sections.sort_by_key(|s| s.addr);
    if !has_dynamic {
        f.push(h, "no dynamic section: not a shared object rtld can load");
    }
    if textrel {
        f.push(
            Rule::LibRelocations,
            "DT_TEXTREL: the library patches its own code at load time (not position-independent); build it with \
             -fPIC / the default cdylib relocation model",
        );
    }

    let Some(dynsym_index) = dynsym_index else {
        f.push(h, "no dynamic symbol table (SHT_DYNSYM): dlsym cannot find lib_version, version, class_commands");
        return Err(f.0);
    };
    let symtab = match table.symbols(endian, bytes, elf::SHT_DYNSYM) {
        Ok(s) => s,
        Err(e) => {
            f.push(h, format!("dynamic symbol table unreadable ({e})"));
            return Err(f.0);
        }
    };
    let mut symbols = Vec::new();
    for sym in symtab.iter() {
        let name = symtab.symbol_name(endian, sym).map(|n| String::from_utf8_lossy(n).into_owned());
        symbols.push(DynSym {
            name: name.unwrap_or_default(),
            bind: sym.st_bind().0,
            typ: sym.st_type().0,
            visibility: sym.st_visibility().0,
            shndx: sym.st_shndx(endian).0,
            value: sym.st_value(endian),
        });
    }

    let mut relocs = HashMap::new();
    let mut bad_relocs: HashMap<u32, usize> = HashMap::new();
    for sh in table.iter() {
        if sh.sh_type(endian).0 != SHT_RELA || sh.sh_flags(endian).0 & SHF_ALLOC == 0 {
            continue;
        }
        if sh.sh_link(endian) as usize != dynsym_index {
            continue;
        }
        let Ok(Some((entries, _))) = sh.rela(endian, bytes) else {
            f.push(h, "a dynamic relocation section is unreadable");
            continue;
        };
        for r in entries {
            let t = r.r_type(endian, false).0;
            if !LIB_RELOCS.contains(&t) {
                *bad_relocs.entry(t).or_default() += 1;
            }
            relocs.insert(r.r_offset(endian), (t, r.r_sym(endian, false), r.r_addend(endian)));
        }
    }
    let mut bad: Vec<_> = bad_relocs.into_iter().collect();
    bad.sort_unstable();
    for (t, n) in bad {
        f.push(
            Rule::LibRelocations,
            format!(
                "{n} x {} dynamic relocations: a geom class library needs only RELATIVE, GLOB_DAT, JUMP_SLOT and 64 \
                 (TLS, COPY and IRELATIVE mean code that does not belong in a class library)",
                reloc_name(t)
            ),
        );
    }

    let mut by_addr = HashMap::new();
    for (i, s) in symbols.iter().enumerate() {
        if s.shndx != 0 && !s.name.is_empty() {
            by_addr.entry(s.value).or_insert(i);
        }
    }
    let lib = Lib { sections, symbols, relocs, by_addr };

    // Rule 2: exports.
    let mut exported: HashMap<&str, &DynSym> = HashMap::new();
    let mut imports = Vec::new();
    for s in lib.symbols.iter().skip(1) {
        if s.name.is_empty() {
            continue;
        }
        if s.shndx == 0 {
            imports.push(s.name.clone());
            if !expect.allowed_undefined.contains(&s.name) {
                let weak = if s.bind == 2 { " (weak)" } else { "" };
                f.push(
                    Rule::LibImports,
                    format!(
                        "imported symbol {}{weak} is not in the libc/libgeom allow-list: dlopen fails (or binds it \
                         to something unexpected) on FreeBSD",
                        s.name
                    ),
                );
            }
            continue;
        }
        let global = matches!(s.bind, 1 | 2 | 10);
        let visible = matches!(s.visibility, 0 | 3);
        if global && visible {
            exported.insert(&s.name, s);
            if !LIB_EXPORTS.contains(&s.name.as_str()) {
                f.push(
                    Rule::LibExports,
                    format!(
                        "{} is exported: a class library exports only lib_version, version and class_commands \
                         (anything else can interpose on libc/libgeom symbols in geom(8))",
                        s.name
                    ),
                );
            }
        }
    }
    for name in LIB_EXPORTS {
        match exported.get(name) {
            None => f.push(
                Rule::LibExports,
                format!("{name} is not exported: geom(8) dlsym()s it and refuses the library without it"),
            ),
            Some(s) if s.typ != 1 => f.push(
                Rule::LibExports,
                format!("{name} is not an object (STT_OBJECT) symbol but type {}: geom(8) reads it as data", s.typ),
            ),
            Some(_) => {}
        }
    }
    imports.sort();
    imports.dedup();

    // Rule 3: the two version words.
    let read_u32 = |name: &str, f: &mut Findings| -> Option<u32> {
        let s = exported.get(name)?;
        let v = lib.u32_at(s.value);
        if v.is_none() {
            f.push(Rule::LibVersions, format!("{name} at {:#x} is not readable as a uint32_t", s.value));
        }
        v
    };
    let lib_version = read_u32("lib_version", &mut f).unwrap_or(0);
    if exported.contains_key("lib_version") && lib_version != G_LIB_VERSION {
        f.push(
            Rule::LibVersions,
            format!(
                "lib_version is {lib_version}, not G_LIB_VERSION ({G_LIB_VERSION}): geom(8) refuses the library \
                 (\"not compatible\")"
            ),
        );
    }
    let version = read_u32("version", &mut f).unwrap_or(0);
    if exported.contains_key("version") && version != expect.class_version {
        f.push(
            Rule::LibVersions,
            format!(
                "version is {version}, expected the class version {}: the kernel's ctlreq refuses requests from a \
                 mismatched userland (\"Userland and kernel parts are out of sync\")",
                expect.class_version
            ),
        );
    }

    // Rule 6: the command table.
    let commands = match exported.get("class_commands") {
        Some(s) => decode_commands(&lib, s.value, &mut f),
        None => Vec::new(),
    };

    f.finish(LibReport { lib_version, version, commands, imports })
}
