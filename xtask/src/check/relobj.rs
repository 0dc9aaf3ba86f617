//! A read-only model of an amd64 `ET_REL` object (a `.ko`): its sections, its symbols, the
//! relocations that apply to loaded sections, and a resolver for "what does the pointer stored
//! at (section, offset) point to".
//!
//! In an `ET_REL` file a pointer field holds nothing useful (RELA puts the value in the
//! addend); the kernel linker computes it from the `R_X86_64_64` relocation at that place:
//! the target symbol's section base + the symbol's value + the addend. [`RelObj::pointer`]
//! does the same arithmetic, offline.

use std::borrow::Cow;
use std::collections::HashMap;

use object::elf;
use object::read::elf::{FileHeader, Rela as _, SectionHeader as _, Sym as _};
use object::LittleEndian as LE;

/// `SHT_PROGBITS`.
pub(crate) const SHT_PROGBITS: u32 = 1;
/// `SHT_SYMTAB`.
pub(crate) const SHT_SYMTAB: u32 = 2;
/// `SHT_STRTAB`.
pub(crate) const SHT_STRTAB: u32 = 3;
/// `SHT_RELA`.
pub(crate) const SHT_RELA: u32 = 4;
/// `SHT_NOBITS`.
pub(crate) const SHT_NOBITS: u32 = 8;
/// `SHT_REL`.
pub(crate) const SHT_REL: u32 = 9;
/// `SHT_INIT_ARRAY`.
pub(crate) const SHT_INIT_ARRAY: u32 = 14;
/// `SHT_FINI_ARRAY`.
pub(crate) const SHT_FINI_ARRAY: u32 = 15;
/// `SHT_GROUP`.
pub(crate) const SHT_GROUP: u32 = 17;
/// `SHT_X86_64_UNWIND`.
pub(crate) const SHT_X86_64_UNWIND: u32 = 0x7000_0001;

/// `SHF_WRITE`.
pub(crate) const SHF_WRITE: u64 = 0x1;
/// `SHF_ALLOC`.
pub(crate) const SHF_ALLOC: u64 = 0x2;
/// `SHF_EXECINSTR`.
pub(crate) const SHF_EXECINSTR: u64 = 0x4;

/// `STB_GLOBAL`.
pub(crate) const STB_GLOBAL: u8 = 1;
/// `STB_WEAK`.
pub(crate) const STB_WEAK: u8 = 2;
/// `STB_GNU_UNIQUE`.
pub(crate) const STB_GNU_UNIQUE: u8 = 10;
/// `STT_OBJECT`.
pub(crate) const STT_OBJECT: u8 = 1;
/// `STT_FUNC`.
pub(crate) const STT_FUNC: u8 = 2;
/// `STT_SECTION`.
pub(crate) const STT_SECTION: u8 = 3;
/// `STT_FILE`.
pub(crate) const STT_FILE: u8 = 4;

/// `SHN_UNDEF`.
pub(crate) const SHN_UNDEF: u32 = 0;
/// `SHN_ABS`.
pub(crate) const SHN_ABS: u32 = 0xfff1;
/// `SHN_COMMON`.
pub(crate) const SHN_COMMON: u32 = 0xfff2;

/// `R_X86_64_64`.
pub(crate) const R_X86_64_64: u32 = 1;

/// One section header, decoded.
#[derive(Clone, Debug)]
pub(crate) struct Section<'d> {
    /// Its name (lossy UTF-8).
    pub name: String,
    /// `sh_type`.
    pub sh_type: u32,
    /// `sh_flags`.
    pub flags: u64,
    /// `sh_size`.
    pub size: u64,
    /// `sh_link`.
    pub link: u32,
    /// Its bytes in the file (empty for `SHT_NOBITS`, which reads as zeros).
    pub data: &'d [u8],
}

impl Section<'_> {
    /// The kernel linker's "progtab" predicate (`link_elf_obj.c`): loaded into memory.
    pub fn is_loaded(&self) -> bool {
        matches!(self.sh_type, SHT_PROGBITS | SHT_NOBITS | SHT_X86_64_UNWIND | SHT_INIT_ARRAY | SHT_FINI_ARRAY)
            && self.flags & SHF_ALLOC != 0
            && self.size != 0
    }

    /// `readelf`-style flag letters (W, A, X).
    pub fn flag_letters(&self) -> String {
        flag_letters(self.flags)
    }
}

/// `readelf`-style letters for the flags that matter to the kernel linker.
pub(crate) fn flag_letters(flags: u64) -> String {
    let mut s = String::new();
    if flags & SHF_WRITE != 0 {
        s.push('W');
    }
    if flags & SHF_ALLOC != 0 {
        s.push('A');
    }
    if flags & SHF_EXECINSTR != 0 {
        s.push('X');
    }
    if s.is_empty() {
        s.push('-');
    }
    s
}

/// One symbol-table entry, decoded.
#[derive(Clone, Debug)]
pub(crate) struct Symbol {
    /// Its name (lossy UTF-8; empty for unnamed and section symbols).
    pub name: String,
    /// `STB_*`.
    pub bind: u8,
    /// `STT_*`.
    pub typ: u8,
    /// Section index (`SHN_UNDEF`, `SHN_ABS`, `SHN_COMMON` or a real index), extended
    /// indices resolved.
    pub shndx: u32,
    /// `st_value`: the offset in its section for an `ET_REL` file.
    pub value: u64,
}

impl Symbol {
    /// Whether it names a real section of the file.
    pub fn in_section(&self) -> bool {
        self.shndx != SHN_UNDEF && self.shndx < 0xff00
    }

    /// Whether it is a named function, object or plain label (not a section or file symbol).
    pub fn is_named_place(&self) -> bool {
        !self.name.is_empty() && self.typ != STT_SECTION && self.typ != STT_FILE
    }
}

/// One relocation that applies to a loaded section.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reloc {
    /// `R_X86_64_*`.
    pub r_type: u32,
    /// Symbol index.
    pub sym: u32,
    /// `r_addend`.
    pub addend: i64,
}

/// What a pointer field holds once the kernel linker has relocated it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ptr {
    /// No relocation and zero bytes: NULL.
    Null,
    /// A place inside a section of this object.
    Local {
        /// Section index.
        section: usize,
        /// Byte offset in it.
        offset: u64,
    },
    /// An undefined symbol (resolved by the kernel at load), plus an addend.
    Undefined {
        /// The symbol.
        name: String,
        /// Addend.
        addend: i64,
    },
    /// An absolute value (an `SHN_ABS` symbol or a symbol-less relocation).
    Absolute(u64),
    /// Non-zero bytes with no relocation: not an address the loader would produce.
    Unrelocated(u64),
    /// A relocation of another type than `R_X86_64_64` sits at the field.
    WrongType(u32),
    /// The field lies outside its section, or refers to a symbol that does not exist.
    Broken,
}

/// The decoded object.
pub(crate) struct RelObj<'d> {
    /// `EI_OSABI`.
    pub osabi: u8,
    /// All section headers, index 0 included.
    pub sections: Vec<Section<'d>>,
    /// All symbols, index 0 included; empty when the symbol table is unusable.
    pub symbols: Vec<Symbol>,
    /// Relocations of loaded sections by (target section, offset).
    pub relocs: HashMap<(usize, u64), Reloc>,
    /// Every relocation of an `SHF_ALLOC` section: (RELA section index, target section, type).
    pub alloc_reloc_types: Vec<(usize, usize, u32)>,
    /// Named, defined symbols by (section, value), for naming places.
    by_place: HashMap<(usize, u64), Vec<usize>>,
    /// Problems met while decoding (the header rule reports them).
    pub decode_errors: Vec<String>,
}

/// Why the bytes cannot be decoded as an ELF64 little-endian object at all.
pub(crate) type FatalHeader = String;

impl<'d> RelObj<'d> {
    /// Decode `bytes`. Fails only when no section can be read at all (wrong magic, class,
    /// byte order, version, or unreadable section headers).
    pub fn parse(bytes: &'d [u8]) -> Result<RelObj<'d>, FatalHeader> {
        let hdr = elf::FileHeader64::<LE>::parse(bytes).map_err(|e| e.to_string())?;
        let endian = LE;
        let table = hdr.sections(endian, bytes).map_err(|e| format!("section headers unreadable: {e}"))?;
        let mut decode_errors = Vec::new();
        let mut sections = Vec::with_capacity(table.len());
        for (i, sh) in table.iter().enumerate() {
            let name = match table.section_name(endian, sh) {
                Ok(n) => String::from_utf8_lossy(n).into_owned(),
                Err(_) => {
                    decode_errors.push(format!("section {i}: name unreadable"));
                    format!("<section {i}>")
                }
            };
            let sh_type = sh.sh_type(endian).0;
            let data: &[u8] = if sh_type == SHT_NOBITS {
                &[]
            } else {
                match sh.data(endian, bytes) {
                    Ok(d) => d,
                    Err(_) => {
                        decode_errors.push(format!("section {name}: contents lie outside the file"));
                        &[]
                    }
                }
            };
            sections.push(Section {
                name,
                sh_type,
                flags: sh.sh_flags(endian).0,
                size: sh.sh_size(endian),
                link: sh.sh_link(endian),
                data,
            });
        }

        let mut symbols = Vec::new();
        let symtabs = sections.iter().filter(|s| s.sh_type == SHT_SYMTAB).count();
        if symtabs >= 1 {
            match table.symbols(endian, bytes, elf::SHT_SYMTAB) {
                Ok(st) => {
                    for (i, sym) in st.iter().enumerate() {
                        let name = match st.symbol_name(endian, sym) {
                            Ok(n) => String::from_utf8_lossy(n).into_owned(),
                            Err(_) => {
                                decode_errors.push(format!("symbol {i}: name unreadable"));
                                String::new()
                            }
                        };
                        let raw = u32::from(sym.st_shndx(endian).0);
                        let shndx = if raw == 0xffff {
                            st.shndx(endian, object::SymbolIndex(i)).unwrap_or(SHN_UNDEF)
                        } else {
                            raw
                        };
                        symbols.push(Symbol {
                            name,
                            bind: sym.st_bind().0,
                            typ: sym.st_type().0,
                            shndx,
                            value: sym.st_value(endian),
                        });
                    }
                }
                Err(e) => decode_errors.push(format!("symbol table unreadable: {e}")),
            }
        }

        let mut relocs = HashMap::new();
        let mut alloc_reloc_types = Vec::new();
        for (i, sh) in table.iter().enumerate() {
            if sh.sh_type(endian).0 != SHT_RELA {
                continue;
            }
            let target = sh.sh_info(endian) as usize;
            let Some(tsec) = sections.get(target) else {
                decode_errors.push(format!("{}: sh_info {target} names no section", sections[i].name));
                continue;
            };
            if tsec.flags & SHF_ALLOC == 0 {
                continue;
            }
            match sh.rela(endian, bytes) {
                Ok(Some((entries, _))) => {
                    for r in entries {
                        let rel = Reloc {
                            r_type: r.r_type(endian, false).0,
                            sym: r.r_sym(endian, false),
                            addend: r.r_addend(endian),
                        };
                        alloc_reloc_types.push((i, target, rel.r_type));
                        relocs.insert((target, r.r_offset(endian)), rel);
                    }
                }
                Ok(None) => {}
                Err(e) => decode_errors.push(format!("{}: relocations unreadable: {e}", sections[i].name)),
            }
        }

        let mut by_place: HashMap<(usize, u64), Vec<usize>> = HashMap::new();
        for (i, s) in symbols.iter().enumerate() {
            if s.in_section() && s.is_named_place() {
                by_place.entry((s.shndx as usize, s.value)).or_default().push(i);
            }
        }

        Ok(RelObj {
            osabi: hdr.e_ident().os_abi.0,
            sections,
            symbols,
            relocs,
            alloc_reloc_types,
            by_place,
            decode_errors,
        })
    }

    /// `len` bytes at `offset` in section `sec`; zeros for `SHT_NOBITS`; `None` if out of
    /// bounds.
    pub fn read(&self, sec: usize, offset: u64, len: usize) -> Option<Cow<'d, [u8]>> {
        let s = self.sections.get(sec)?;
        let end = offset.checked_add(len as u64)?;
        if end > s.size {
            return None;
        }
        if s.sh_type == SHT_NOBITS {
            return Some(Cow::Owned(vec![0; len]));
        }
        s.data.get(offset as usize..end as usize).map(Cow::Borrowed)
    }

    /// The little-endian `u32` at (section, offset).
    pub fn u32_at(&self, sec: usize, offset: u64) -> Option<u32> {
        self.read(sec, offset, 4).map(|b| u32::from_le_bytes(b[..4].try_into().expect("4 bytes")))
    }

    /// The little-endian `i32` at (section, offset).
    pub fn i32_at(&self, sec: usize, offset: u64) -> Option<i32> {
        self.u32_at(sec, offset).map(|v| v as i32)
    }

    /// The little-endian `u64` at (section, offset).
    pub fn u64_at(&self, sec: usize, offset: u64) -> Option<u64> {
        self.read(sec, offset, 8).map(|b| u64::from_le_bytes(b[..8].try_into().expect("8 bytes")))
    }

    /// The NUL-terminated string at (section, offset): `None` if out of bounds or
    /// unterminated within the section.
    pub fn cstr_at(&self, sec: usize, offset: u64) -> Option<String> {
        let s = self.sections.get(sec)?;
        if offset >= s.size {
            return None;
        }
        if s.sh_type == SHT_NOBITS {
            return Some(String::new());
        }
        let tail = s.data.get(offset as usize..)?;
        let end = tail.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&tail[..end]).into_owned())
    }

    /// The string a pointer points to, if it points into this object.
    pub fn cstr(&self, ptr: &Ptr) -> Option<String> {
        match ptr {
            Ptr::Local { section, offset } => self.cstr_at(*section, *offset),
            _ => None,
        }
    }

    /// The relocation at (section, offset), if any.
    pub fn reloc_at(&self, sec: usize, offset: u64) -> Option<&Reloc> {
        self.relocs.get(&(sec, offset))
    }

    /// What the 8-byte pointer stored at (section, offset) points to after relocation.
    pub fn pointer(&self, sec: usize, offset: u64) -> Ptr {
        let Some(raw) = self.u64_at(sec, offset) else {
            return Ptr::Broken;
        };
        let Some(r) = self.reloc_at(sec, offset) else {
            return if raw == 0 { Ptr::Null } else { Ptr::Unrelocated(raw) };
        };
        if r.r_type != R_X86_64_64 {
            return Ptr::WrongType(r.r_type);
        }
        if r.sym == 0 {
            return Ptr::Absolute(r.addend as u64);
        }
        let Some(sym) = self.symbols.get(r.sym as usize) else {
            return Ptr::Broken;
        };
        match sym.shndx {
            SHN_UNDEF | SHN_COMMON => Ptr::Undefined { name: sym.name.clone(), addend: r.addend },
            SHN_ABS => Ptr::Absolute(sym.value.wrapping_add(r.addend as u64)),
            s if (s as usize) < self.sections.len() => {
                Ptr::Local { section: s as usize, offset: sym.value.wrapping_add(r.addend as u64) }
            }
            _ => Ptr::Broken,
        }
    }

    /// The named symbols defined exactly at (section, offset).
    pub fn symbols_at(&self, sec: usize, offset: u64) -> impl Iterator<Item = &Symbol> {
        self.by_place.get(&(sec, offset)).into_iter().flatten().map(move |&i| &self.symbols[i])
    }

    /// A defined `STT_FUNC` symbol at (section, offset), if any.
    pub fn function_at(&self, sec: usize, offset: u64) -> Option<&Symbol> {
        self.symbols_at(sec, offset).find(|s| s.typ == STT_FUNC)
    }

    /// Is `offset` inside executable section `sec`? A stripped module (local symbols no
    /// relocation needs are dropped, as kmod.mk's strip does) reaches its functions through
    /// the section symbol, so an address in code is what can be checked; where a symbol is
    /// left, it must be a function.
    pub fn is_code(&self, sec: usize, offset: u64) -> bool {
        let Some(s) = self.sections.get(sec) else { return false };
        let in_code = s.flags & SHF_EXECINSTR != 0 && offset < s.size;
        let named_other =
            self.symbols_at(sec, offset).any(|s| s.typ != STT_FUNC && s.typ != STT_SECTION && !s.name.is_empty());
        in_code && (self.function_at(sec, offset).is_some() || !named_other)
    }

    /// A short human name for a place: `section:symbol` when a symbol starts there, else
    /// `section+0xoff`.
    pub fn place_name(&self, sec: usize, offset: u64) -> String {
        let sname = self.sections.get(sec).map_or("<bad section>", |s| s.name.as_str());
        let best = self
            .symbols_at(sec, offset)
            .min_by_key(|s| match s.typ {
                STT_FUNC | STT_OBJECT => 0,
                _ => 1,
            })
            .map(|s| s.name.clone());
        match best {
            Some(n) => format!("{sname}:{n}"),
            None => format!("{sname}+{offset:#x}"),
        }
    }

    /// A short human name for a pointer's target.
    pub fn describe(&self, ptr: &Ptr) -> String {
        match ptr {
            Ptr::Null => "NULL".to_owned(),
            Ptr::Local { section, offset } => self.place_name(*section, *offset),
            Ptr::Undefined { name, addend: 0 } => format!("UND:{name}"),
            Ptr::Undefined { name, addend } => format!("UND:{name}{addend:+}"),
            Ptr::Absolute(v) => format!("ABS:{v:#x}"),
            Ptr::Unrelocated(v) => format!("unrelocated {v:#x}"),
            Ptr::WrongType(t) => format!("a {} relocation", super::relocs::reloc_name(*t)),
            Ptr::Broken => "<out of bounds>".to_owned(),
        }
    }
}
