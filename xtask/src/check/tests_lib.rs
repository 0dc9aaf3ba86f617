//! Tests of the `class_commands` decoder on hand-made address spaces, and of
//! [`check_geom_lib`] on small ELF64 `ET_DYN` files written by a tiny writer below
//! (`object::write` cannot produce shared objects).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use super::commands::{decode_commands, DynPtr, Image, Region};
use super::{check_geom_lib, Command, CommandOption, Finding, Findings, LibExpect, OptionDefault, OptionType, Rule};

// ---------------------------------------------------------------------------------------------
// A fake address space.

/// Regions of bytes at addresses, pointers set explicitly (as if relocated), symbol names.
#[derive(Default)]
struct Space {
    regions: Vec<(String, u64, Vec<u8>, bool, bool)>,
    pointers: HashMap<u64, DynPtr>,
    symbols: HashMap<u64, String>,
}

impl Space {
    fn add_region(&mut self, name: &str, addr: u64, len: usize, writable: bool, exec: bool) {
        self.regions.push((name.to_owned(), addr, vec![0; len], writable, exec));
    }

    fn bytes_mut(&mut self, addr: u64, len: usize) -> &mut [u8] {
        let r = self.regions.iter_mut().find(|r| r.1 <= addr && addr < r.1 + r.2.len() as u64).expect("mapped");
        let off = (addr - r.1) as usize;
        &mut r.2[off..off + len]
    }

    fn put(&mut self, addr: u64, bytes: &[u8]) {
        self.bytes_mut(addr, bytes.len()).copy_from_slice(bytes);
    }

    fn ptr(&mut self, at: u64, to: u64) {
        self.pointers.insert(at, DynPtr::Addr(to));
    }
}

impl Image for Space {
    fn bytes_from(&self, addr: u64) -> Option<Cow<'_, [u8]>> {
        let r = self.regions.iter().find(|r| r.1 <= addr && addr < r.1 + r.2.len() as u64)?;
        Some(Cow::Borrowed(&r.2[(addr - r.1) as usize..]))
    }

    fn pointer(&self, addr: u64) -> DynPtr {
        if let Some(p) = self.pointers.get(&addr) {
            return p.clone();
        }
        match self.bytes(addr, 8) {
            Some(b) => match u64::from_le_bytes(b[..8].try_into().unwrap()) {
                0 => DynPtr::Null,
                v => DynPtr::Constant(v),
            },
            None => DynPtr::Bad("unmapped".to_owned()),
        }
    }

    fn region(&self, addr: u64) -> Option<Region> {
        let r = self.regions.iter().find(|r| r.1 <= addr && addr < r.1 + r.2.len() as u64)?;
        Some(Region { name: r.0.clone(), writable: r.3, exec: r.4 })
    }

    fn symbol_at(&self, addr: u64) -> Option<String> {
        self.symbols.get(&addr).cloned()
    }
}

const TEXT: u64 = 0x1000;
const RODATA: u64 = 0x2000;
const DATA: u64 = 0x3000;

/// A string in `.rodata` at `RODATA + off`.
fn string(s: &mut Space, off: u64, text: &str) -> u64 {
    let addr = RODATA + off;
    s.put(addr, text.as_bytes());
    s.put(addr + text.len() as u64, &[0]);
    addr
}

/// One option: (letter, name address, value, type) at command `cmd`, slot `j`.
fn option(s: &mut Space, cmd: u64, j: u64, letter: u8, name: u64, val: Option<DynPtr>, go_type: u32) {
    let o = cmd + 24 + j * 32;
    s.put(o, &[letter]);
    s.ptr(o + 8, name);
    if let Some(v) = val {
        match v {
            DynPtr::Constant(c) => s.put(o + 16, &c.to_le_bytes()),
            other => {
                s.pointers.insert(o + 16, other);
            }
        }
    }
    s.put(o + 24, &go_type.to_le_bytes());
}

/// A gstripe-like table: `create` (kernel verb, two options) and `dump` (userland verb).
fn good_space() -> Space {
    let mut s = Space::default();
    s.add_region(".text", TEXT, 0x100, false, true);
    s.add_region(".rodata", RODATA, 0x200, false, false);
    s.add_region(".data", DATA, 3 * 544, true, false);
    s.symbols.insert(TEXT + 0x40, "stripe_dump".to_owned());

    let create = string(&mut s, 0x00, "create");
    let create_usage = string(&mut s, 0x10, "[-hv] [-s stripesize] name prov prov ...");
    let stripesize = string(&mut s, 0x40, "stripesize");
    let default = string(&mut s, 0x50, "64k");
    let hardcode = string(&mut s, 0x60, "hardcode");
    let dump = string(&mut s, 0x70, "dump");
    let dump_usage = string(&mut s, 0x80, "prov ...");
    let output = string(&mut s, 0x90, "output");

    let c0 = DATA;
    s.ptr(c0, create);
    s.put(c0 + 8, &3u32.to_le_bytes());
    option(&mut s, c0, 0, b's', stripesize, Some(DynPtr::Addr(default)), 3);
    option(&mut s, c0, 1, b'h', hardcode, None, 1);
    s.ptr(c0 + 536, create_usage);

    let c1 = DATA + 544;
    s.ptr(c1, dump);
    s.ptr(c1 + 16, TEXT + 0x40);
    option(&mut s, c1, 0, b'o', output, Some(DynPtr::Constant(u64::MAX)), 2 | 0x20);
    s.ptr(c1 + 536, dump_usage);
    s
}

fn decode(s: &Space) -> (Vec<Command>, Vec<Finding>) {
    let mut f = Findings::default();
    let cmds = decode_commands(s, DATA, &mut f);
    (cmds, f.0)
}

fn assert_fires(f: &[Finding], rule: Rule, words: &[&str]) {
    assert!(
        f.iter().any(|x| x.rule == rule && words.iter().all(|w| x.message.contains(w))),
        "no {rule} finding mentioning {words:?}; got:\n{}",
        f.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn table_decodes() {
    let (cmds, f) = decode(&good_space());
    assert!(f.is_empty(), "{f:?}");
    assert_eq!(cmds.len(), 2);
    assert_eq!(cmds[0].name, "create");
    assert_eq!(cmds[0].flags, 3);
    assert_eq!(cmds[0].func, None);
    assert_eq!(
        cmds[0].options,
        [
            CommandOption {
                letter: 's',
                name: "stripesize".into(),
                typ: OptionType::Number,
                multi: false,
                default: OptionDefault::Value("64k".into()),
            },
            CommandOption {
                letter: 'h',
                name: "hardcode".into(),
                typ: OptionType::Bool,
                multi: false,
                default: OptionDefault::None,
            },
        ]
    );
    assert_eq!(cmds[1].func.as_deref(), Some("stripe_dump"));
    assert_eq!(cmds[1].options[0].default, OptionDefault::Optional);
    assert!(cmds[1].options[0].multi);
    let text: String = cmds.iter().map(|c| c.to_string()).collect();
    assert_eq!(
        text,
        "create [-hv] [-s stripesize] name prov prov ...  [VERBOSE|LOADKLD]  -> kernel\n\
         \x20   -s stripesize number \"64k\"\n\
         \x20   -h hardcode bool -\n\
         dump prov ...  stripe_dump\n\
         \x20   -o output string multi (optional)\n"
    );
}

#[test]
fn table_in_read_only_memory() {
    let mut s = good_space();
    s.regions[2].3 = false;
    assert_fires(&decode(&s).1, Rule::LibCommands, &["read-only", "G_TYPE_DONE"]);
}

#[test]
fn unknown_flags_and_type_bits() {
    let mut s = good_space();
    s.put(DATA + 8, &7u32.to_le_bytes());
    s.put(DATA + 24 + 24, &0x13u32.to_le_bytes()); // NUMBER | G_TYPE_DONE
    let f = decode(&s).1;
    assert_fires(&f, Rule::LibCommands, &["\"create\"", "gc_flags 0x7"]);
    assert_fires(&f, Rule::LibCommands, &["\"stripesize\"", "go_type 0x13"]);
}

#[test]
fn bool_with_value_and_bad_number_default() {
    let mut s = good_space();
    let junk = string(&mut s, 0xa0, "12x");
    s.ptr(DATA + 24 + 32 + 16, junk); // hardcode's go_val
    s.ptr(DATA + 24 + 16, junk); // stripesize's default
    let f = decode(&s).1;
    assert_fires(&f, Rule::LibCommands, &["\"hardcode\"", "BOOL", "expects NULL"]);
    assert_fires(&f, Rule::LibCommands, &["\"stripesize\"", "NUMBER default \"12x\""]);
}

#[test]
fn gc_func_outside_code_and_missing_usage() {
    let mut s = good_space();
    s.ptr(DATA + 544 + 16, RODATA); // dump's gc_func into .rodata
    s.pointers.remove(&(DATA + 536)); // create without usage
    let f = decode(&s).1;
    assert_fires(&f, Rule::LibCommands, &["\"dump\"", "gc_func", "not into the library's code"]);
    assert_fires(&f, Rule::LibCommands, &["\"create\"", "gc_usage"]);
}

#[test]
fn table_without_terminator() {
    let mut s = good_space();
    s.regions[2].2.truncate(2 * 544); // no room for the NULL entry
    assert_fires(&decode(&s).1, Rule::LibCommands, &["class_commands[2]", "no terminating entry"]);
}

#[test]
fn sixteen_options_without_terminator() {
    let mut s = good_space();
    let name = string(&mut s, 0xb0, "opt");
    for j in 0..16u64 {
        option(&mut s, DATA + 544, j, b'A' + j as u8, name, None, 1);
    }
    assert_fires(&decode(&s).1, Rule::LibCommands, &["\"dump\"", "all 16 option slots"]);
}

#[test]
fn number_syntax() {
    use super::commands::is_number;
    for ok in ["0", "65536", "64k", "1M", "-1", "2t"] {
        assert!(is_number(ok), "{ok}");
    }
    for bad in ["", "k", "12x", "1.5", "0x10", "--1"] {
        assert!(!is_number(bad), "{bad}");
    }
}

// ---------------------------------------------------------------------------------------------
// A tiny ELF64 ET_DYN writer: every section at file offset == address.

const DYNSYM: u64 = 0x5000;
const DYNSTR: u64 = 0x6000;
const RELA: u64 = 0x7000;
const DYNAMIC: u64 = 0x4000;
const SHSTRTAB: u64 = 0x8000;
const R_RELATIVE: u32 = 8;

/// One section of the test writer: (name, type, flags, address = file offset, data, link,
/// info, entsize).
type SectionSpec<'a> = (&'a str, u32, u64, u64, &'a [u8], u32, u32, u64);

/// The parts of a class library the tests vary.
struct Lib {
    e_type: u16,
    text: Vec<u8>,
    rodata: Vec<u8>,
    data: Vec<u8>,
    dynstr: Vec<u8>,
    /// (name offset, info, shndx, value, size)
    syms: Vec<(u32, u8, u16, u64, u64)>,
    /// (offset, type, symbol, addend)
    relas: Vec<(u64, u32, u32, i64)>,
    dynamic: Vec<(i64, u64)>,
}

impl Lib {
    /// A good library: `lib_version` 5, `version` 3, one verb `list [-a] [name ...]`,
    /// importing `printf`.
    fn good() -> Lib {
        let mut rodata = vec![0u8; 0x60];
        rodata[0..4].copy_from_slice(&5u32.to_le_bytes());
        rodata[4..8].copy_from_slice(&3u32.to_le_bytes());
        rodata[0x10..0x15].copy_from_slice(b"list\0");
        rodata[0x20..0x30].copy_from_slice(b"[-a] [name ...]\0");
        rodata[0x40..0x44].copy_from_slice(b"all\0");
        let mut data = vec![0u8; 2 * 544];
        data[24] = b'a';
        data[24 + 24..24 + 28].copy_from_slice(&1u32.to_le_bytes());
        let mut lib = Lib {
            e_type: 3,
            text: vec![0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3],
            rodata,
            data,
            dynstr: vec![0],
            syms: vec![(0, 0, 0, 0, 0)],
            relas: vec![
                (DATA, R_RELATIVE, 0, (RODATA + 0x10) as i64),
                (DATA + 16, R_RELATIVE, 0, TEXT as i64),
                (DATA + 24 + 8, R_RELATIVE, 0, (RODATA + 0x40) as i64),
                (DATA + 536, R_RELATIVE, 0, (RODATA + 0x20) as i64),
            ],
            dynamic: vec![],
        };
        lib.sym("lib_version", 0x11, 2, RODATA, 4);
        lib.sym("version", 0x11, 2, RODATA + 4, 4);
        lib.sym("class_commands", 0x11, 3, DATA, 2 * 544);
        lib.sym("printf", 0x12, 0, 0, 0);
        lib
    }

    /// Add a dynamic symbol (info = bind << 4 | type); returns its index.
    fn sym(&mut self, name: &str, info: u8, shndx: u16, value: u64, size: u64) -> u32 {
        let off = self.dynstr.len() as u32;
        self.dynstr.extend_from_slice(name.as_bytes());
        self.dynstr.push(0);
        self.syms.push((off, info, shndx, value, size));
        self.syms.len() as u32 - 1
    }

    fn bytes(&self) -> Vec<u8> {
        let mut dynsym = Vec::new();
        for &(name, info, shndx, value, size) in &self.syms {
            dynsym.extend_from_slice(&name.to_le_bytes());
            dynsym.extend_from_slice(&[info, 0]);
            dynsym.extend_from_slice(&shndx.to_le_bytes());
            dynsym.extend_from_slice(&value.to_le_bytes());
            dynsym.extend_from_slice(&size.to_le_bytes());
        }
        let mut rela = Vec::new();
        for &(off, t, sym, addend) in &self.relas {
            rela.extend_from_slice(&off.to_le_bytes());
            rela.extend_from_slice(&((u64::from(sym) << 32) | u64::from(t)).to_le_bytes());
            rela.extend_from_slice(&addend.to_le_bytes());
        }
        let mut dynamic = Vec::new();
        for &(tag, val) in self.dynamic.iter().chain([(0, 0)].iter()) {
            dynamic.extend_from_slice(&tag.to_le_bytes());
            dynamic.extend_from_slice(&val.to_le_bytes());
        }
        let mut shstrtab = vec![0u8];
        let sections: Vec<SectionSpec<'_>> = vec![
            (".text", 1, 0x6, TEXT, &self.text, 0, 0, 0),
            (".rodata", 1, 0x2, RODATA, &self.rodata, 0, 0, 0),
            (".data", 1, 0x3, DATA, &self.data, 0, 0, 0),
            (".dynamic", 6, 0x3, DYNAMIC, &dynamic, 6, 0, 16),
            (".dynsym", 11, 0x2, DYNSYM, &dynsym, 6, 1, 24),
            (".dynstr", 3, 0x2, DYNSTR, &self.dynstr, 0, 0, 0),
            (".rela.dyn", 4, 0x2, RELA, &rela, 5, 0, 24),
            (".shstrtab", 3, 0, SHSTRTAB, &[], 0, 0, 0),
        ];
        let mut names = Vec::new();
        for s in &sections {
            names.push(shstrtab.len() as u32);
            shstrtab.extend_from_slice(s.0.as_bytes());
            shstrtab.push(0);
        }
        let mut out = vec![0u8; 64];
        for (i, s) in sections.iter().enumerate() {
            let data: &[u8] = if i == sections.len() - 1 { &shstrtab } else { s.4 };
            out.resize(s.3 as usize, 0);
            out.extend_from_slice(data);
        }
        while out.len() % 8 != 0 {
            out.push(0);
        }
        let shoff = out.len() as u64;
        out.extend_from_slice(&[0u8; 64]); // the null section header
        for (i, s) in sections.iter().enumerate() {
            let size = if i == sections.len() - 1 { shstrtab.len() } else { s.4.len() } as u64;
            out.extend_from_slice(&names[i].to_le_bytes());
            out.extend_from_slice(&s.1.to_le_bytes());
            out.extend_from_slice(&s.2.to_le_bytes());
            out.extend_from_slice(&if s.2 & 0x2 != 0 { s.3 } else { 0 }.to_le_bytes());
            out.extend_from_slice(&s.3.to_le_bytes()); // offset == address
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&s.5.to_le_bytes());
            out.extend_from_slice(&s.6.to_le_bytes());
            out.extend_from_slice(&8u64.to_le_bytes());
            out.extend_from_slice(&s.7.to_le_bytes());
        }
        // ELF header.
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2; // ELFCLASS64
        out[5] = 1; // little endian
        out[6] = 1; // EV_CURRENT
        out[7] = 9; // FreeBSD
        out[16..18].copy_from_slice(&self.e_type.to_le_bytes());
        out[18..20].copy_from_slice(&62u16.to_le_bytes());
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        out[40..48].copy_from_slice(&shoff.to_le_bytes());
        out[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        out[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
        out[60..62].copy_from_slice(&(sections.len() as u16 + 1).to_le_bytes());
        out[62..64].copy_from_slice(&(sections.len() as u16).to_le_bytes()); // .shstrtab
        out
    }
}

fn userland() -> HashSet<String> {
    super::allowlist(super::FREEBSD_USERLAND)
}

fn lib_findings(lib: &Lib) -> Vec<Finding> {
    let allowed = userland();
    match check_geom_lib(&lib.bytes(), &LibExpect { class_version: 3, allowed_undefined: &allowed }) {
        Ok(r) => panic!("the library passed, expected findings:\n{r}"),
        Err(f) => f,
    }
}

#[test]
fn good_library_passes() {
    let allowed = userland();
    let report =
        match check_geom_lib(&Lib::good().bytes(), &LibExpect { class_version: 3, allowed_undefined: &allowed }) {
            Ok(r) => r,
            Err(f) => {
                panic!("good library refused:\n{}", f.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n"))
            }
        };
    assert_eq!((report.lib_version, report.version), (5, 3));
    assert_eq!(report.imports, ["printf"]);
    assert_eq!(report.commands.len(), 1);
    assert_eq!(report.commands[0].name, "list");
    assert_eq!(report.commands[0].usage, "[-a] [name ...]");
    assert_eq!(report.commands[0].func.as_deref(), Some("0x1000 (.text)"));
    assert_eq!(
        report.to_string(),
        "lib_version=5 version=3\nlist [-a] [name ...]  0x1000 (.text)\n    -a all bool -\nimports: printf\n"
    );
}

#[test]
fn library_not_et_dyn() {
    let mut lib = Lib::good();
    lib.e_type = 1;
    assert_fires(&lib_findings(&lib), Rule::LibHeader, &["e_type 1", "ET_DYN"]);
}

#[test]
fn library_exports_more_than_the_three() {
    let mut lib = Lib::good();
    lib.sym("helper", 0x12, 1, TEXT, 6);
    assert_fires(&lib_findings(&lib), Rule::LibExports, &["helper is exported"]);
}

#[test]
fn library_without_class_commands() {
    let mut lib = Lib::good();
    lib.syms[3].1 = 0x01; // class_commands becomes a local symbol
    assert_fires(&lib_findings(&lib), Rule::LibExports, &["class_commands is not exported"]);
}

#[test]
fn library_versions() {
    let mut lib = Lib::good();
    lib.rodata[0..4].copy_from_slice(&4u32.to_le_bytes());
    let allowed = userland();
    let f = check_geom_lib(&lib.bytes(), &LibExpect { class_version: 4, allowed_undefined: &allowed }).unwrap_err();
    assert_fires(&f, Rule::LibVersions, &["lib_version is 4", "G_LIB_VERSION (5)"]);
    assert_fires(&f, Rule::LibVersions, &["version is 3", "class version 4"]);
}

#[test]
fn library_imports_outside_the_allow_list() {
    let mut lib = Lib::good();
    lib.sym("puts", 0x12, 0, 0, 0);
    assert_fires(&lib_findings(&lib), Rule::LibImports, &["imported symbol puts"]);
}

#[test]
fn library_relocations() {
    let mut lib = Lib::good();
    let printf = 4;
    lib.relas.push((DATA + 0x400, 18, printf, 0)); // R_X86_64_TPOFF64
    lib.dynamic.push((22, 0)); // DT_TEXTREL
    let f = lib_findings(&lib);
    assert_fires(&f, Rule::LibRelocations, &["1 x R_X86_64_TPOFF64"]);
    assert_fires(&f, Rule::LibRelocations, &["DT_TEXTREL"]);
}

#[test]
fn library_table_findings_reach_the_caller() {
    let mut lib = Lib::good();
    lib.data[8..12].copy_from_slice(&0x10u32.to_le_bytes()); // gc_flags with an unknown bit
    assert_fires(&lib_findings(&lib), Rule::LibCommands, &["\"list\"", "gc_flags 0x10"]);
}
