//! Tests of [`check_ko`] on modules built in memory with `object::write`: one good module that
//! passes every rule, then one bad variant per rule.

use std::collections::HashSet;

use object::write::{Comdat, Object, Relocation, SectionId, Symbol, SymbolId, SymbolSection};
use object::{
    Architecture, BinaryFormat, ComdatKind, Endianness, RelocationFlags, SectionFlags, SectionKind, SymbolFlags,
    SymbolKind, SymbolScope,
};

use super::{check_ko, Finding, KoExpect, Metadata, Rule};

const R_64: u32 = 1;
const R_PLT32: u32 = 4;
const R_GOTPCREL: u32 = 9;
const R_32: u32 = 10;

/// `push rbp; mov rbp, rsp; pop rbp; ret`.
const FRAME_FN: [u8; 6] = [0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3];

/// Offsets in `.data` of the good module.
const CLASS: u64 = 0; // struct g_class, 168 bytes (FreeBSD 15)
const MODDATA: u64 = 168; // moduledata_t, 24
const SI_MODULE: u64 = 192; // struct sysinit, 32
const MTYPE: u64 = 224; // struct malloc_type, 112
const SI_MALLOC: u64 = 336; // struct sysinit, 32
const SU_MALLOC: u64 = 368; // struct sysinit, 32
const DATA_SIZE: usize = 400;

/// Offsets in `.rodata`.
const S_KERNEL: u64 = 0; // "kernel"
const S_MODULE: u64 = 8; // "g_test"
const S_KLD: u64 = 16; // "geom_test"
const S_CLASS: u64 = 32; // "TEST"
const S_DESC: u64 = 40; // "test"
const DEPEND: u64 = 48; // struct mod_depend
const VERSION: u64 = 60; // struct mod_version
const MD_DEPEND: u64 = 64; // struct mod_metadata x 3
const MD_MODULE: u64 = 88;
const MD_VERSION: u64 = 112;
const RODATA_SIZE: usize = 136;

/// The kernel range the good module depends on (FreeBSD 15).
const DEPEND_RANGE: (i32, i32, i32) = (1_500_068, 1_500_068, 1_599_999);
/// `M_VERSION` of FreeBSD 15.
const M_VERSION: u64 = 2_024_073_001;

/// A module under construction; tests change it before [`Module::bytes`].
struct Module {
    obj: Object<'static>,
    text: SectionId,
    rodata: SectionId,
    data: SectionId,
    set_sysinit: SectionId,
    /// The two functions in `.text` (taste at 0, start at 8).
    taste: SymbolId,
}

/// ELF relocation flags of type `r_type`.
fn rflags(r_type: u32) -> RelocationFlags {
    RelocationFlags::Elf { r_type: object::elf::RelocationType(r_type) }
}

/// ELF section flags: type `sh_type`, flags `sh_flags`.
fn sflags(sh_type: u32, sh_flags: u64) -> SectionFlags {
    SectionFlags::Elf { sh_type: object::elf::SectionType(sh_type), sh_flags: object::elf::SectionFlags(sh_flags) }
}

fn put(obj: &mut Object<'_>, sec: SectionId, off: u64, bytes: &[u8]) {
    obj.section_mut(sec).data_mut()[off as usize..off as usize + bytes.len()].copy_from_slice(bytes);
}

/// An `R_X86_64_64` pointer at (`sec`, `off`) to `target` + `addend`.
fn ptr(obj: &mut Object<'_>, sec: SectionId, off: u64, target: SymbolId, addend: i64) {
    obj.add_relocation(sec, Relocation { offset: off, symbol: target, addend, flags: rflags(R_64) })
        .expect("relocation");
}

fn undefined(obj: &mut Object<'_>, name: &str) -> SymbolId {
    obj.add_symbol(Symbol {
        name: name.as_bytes().to_vec(),
        value: 0,
        size: 0,
        kind: SymbolKind::Unknown,
        scope: SymbolScope::Dynamic,
        weak: false,
        section: SymbolSection::Undefined,
        flags: SymbolFlags::None,
    })
}

fn local_fn(obj: &mut Object<'_>, name: &str, text: SectionId, value: u64) -> SymbolId {
    obj.add_symbol(Symbol {
        name: name.as_bytes().to_vec(),
        value,
        size: FRAME_FN.len() as u64,
        kind: SymbolKind::Text,
        scope: SymbolScope::Compilation,
        weak: false,
        section: SymbolSection::Section(text),
        flags: SymbolFlags::None,
    })
}

impl Module {
    /// A module that satisfies every rule for [`expect`].
    fn good() -> Module {
        Module::build(MODDATA)
    }

    /// The good module, except that its `module_register_init` record hands over the
    /// `.data` offset `register_udata` (the moduledata in the good module).
    fn build(register_udata: u64) -> Module {
        let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
        let text = obj.add_section(Vec::new(), b".text".to_vec(), SectionKind::Text);
        let rodata = obj.add_section(Vec::new(), b".rodata".to_vec(), SectionKind::ReadOnlyData);
        let data = obj.add_section(Vec::new(), b".data".to_vec(), SectionKind::Data);
        let set_mm = obj.add_section(Vec::new(), b"set_modmetadata_set".to_vec(), SectionKind::Data);
        let set_sysinit = obj.add_section(Vec::new(), b"set_sysinit_set".to_vec(), SectionKind::Data);
        let set_sysuninit = obj.add_section(Vec::new(), b"set_sysuninit_set".to_vec(), SectionKind::Data);

        let mut code = FRAME_FN.to_vec();
        code.resize(8, 0xcc);
        code.extend_from_slice(&FRAME_FN);
        obj.set_section_data(text, code, 16);
        obj.set_section_data(rodata, vec![0u8; RODATA_SIZE], 8);
        obj.set_section_data(data, vec![0u8; DATA_SIZE], 8);
        obj.set_section_data(set_mm, vec![0u8; 24], 8);
        obj.set_section_data(set_sysinit, vec![0u8; 16], 8);
        obj.set_section_data(set_sysuninit, vec![0u8; 8], 8);

        let taste = local_fn(&mut obj, "test_taste", text, 0);
        let start = local_fn(&mut obj, "test_start", text, 8);
        let ro = obj.section_symbol(rodata);
        let da = obj.section_symbol(data);
        let g_modevent = undefined(&mut obj, "g_modevent");
        let register = undefined(&mut obj, "module_register_init");
        let malloc_init = undefined(&mut obj, "malloc_init");
        let malloc_uninit = undefined(&mut obj, "malloc_uninit");

        // .rodata: strings, mod_depend, mod_version, the three mod_metadata records.
        put(&mut obj, rodata, S_KERNEL, b"kernel\0");
        put(&mut obj, rodata, S_MODULE, b"g_test\0");
        put(&mut obj, rodata, S_KLD, b"geom_test\0");
        put(&mut obj, rodata, S_CLASS, b"TEST\0");
        put(&mut obj, rodata, S_DESC, b"test\0");
        let (min, pref, max) = DEPEND_RANGE;
        put(&mut obj, rodata, DEPEND, &[min.to_le_bytes(), pref.to_le_bytes(), max.to_le_bytes()].concat());
        put(&mut obj, rodata, VERSION, &0i32.to_le_bytes());
        for (md, kind, data_sym, data_off, cval) in [
            (MD_DEPEND, 1i32, ro, DEPEND, S_KERNEL),
            (MD_MODULE, 2, da, MODDATA, S_MODULE),
            (MD_VERSION, 3, ro, VERSION, S_KLD),
        ] {
            put(&mut obj, rodata, md, &1i32.to_le_bytes());
            put(&mut obj, rodata, md + 4, &kind.to_le_bytes());
            ptr(&mut obj, rodata, md + 8, data_sym, data_off as i64);
            ptr(&mut obj, rodata, md + 16, ro, cval as i64);
        }

        // .data: the class, the moduledata, the malloc type and the three sysinit records.
        ptr(&mut obj, data, CLASS, ro, S_CLASS as i64);
        put(&mut obj, data, CLASS + 8, &0x2004_1207u32.to_le_bytes());
        ptr(&mut obj, data, CLASS + 16, taste, 0); // taste
        ptr(&mut obj, data, CLASS + 56, start, 0); // start (FreeBSD 15 layout)
        ptr(&mut obj, data, MODDATA, ro, S_MODULE as i64);
        ptr(&mut obj, data, MODDATA + 8, g_modevent, 0);
        ptr(&mut obj, data, MODDATA + 16, da, CLASS as i64);
        put(&mut obj, data, SI_MODULE, &[0x310_0000u32.to_le_bytes(), 2u32.to_le_bytes()].concat());
        ptr(&mut obj, data, SI_MODULE + 16, register, 0);
        ptr(&mut obj, data, SI_MODULE + 24, da, register_udata as i64);
        put(&mut obj, data, MTYPE + 8, &M_VERSION.to_le_bytes());
        ptr(&mut obj, data, MTYPE + 16, ro, S_DESC as i64);
        put(&mut obj, data, SI_MALLOC, &[0x180_0000u32.to_le_bytes(), 2u32.to_le_bytes()].concat());
        ptr(&mut obj, data, SI_MALLOC + 16, malloc_init, 0);
        ptr(&mut obj, data, SI_MALLOC + 24, da, MTYPE as i64);
        put(&mut obj, data, SU_MALLOC, &[0x180_0000u32.to_le_bytes(), 0x0fff_ffffu32.to_le_bytes()].concat());
        ptr(&mut obj, data, SU_MALLOC + 16, malloc_uninit, 0);
        ptr(&mut obj, data, SU_MALLOC + 24, da, MTYPE as i64);

        // The linker sets.
        for (i, md) in [MD_DEPEND, MD_MODULE, MD_VERSION].into_iter().enumerate() {
            ptr(&mut obj, set_mm, i as u64 * 8, ro, md as i64);
        }
        ptr(&mut obj, set_sysinit, 0, da, SI_MODULE as i64);
        ptr(&mut obj, set_sysinit, 8, da, SI_MALLOC as i64);
        ptr(&mut obj, set_sysuninit, 0, da, SU_MALLOC as i64);

        Module { obj, text, rodata, data, set_sysinit, taste }
    }

    /// Append `code` to `.text`; returns its offset.
    fn add_code(&mut self, code: &[u8]) -> u64 {
        self.obj.append_section_data(self.text, code, 1)
    }

    fn bytes(&self) -> Vec<u8> {
        self.obj.write().expect("write the object")
    }
}

fn kernel_allowlist() -> HashSet<String> {
    super::allowlist(super::FREEBSD_KERNEL)
}

/// What the good module declares: taste and start, FreeBSD 15.
fn expect<'a>(allowed: &'a HashSet<String>, methods: &'a [&'a str]) -> KoExpect<'a> {
    KoExpect {
        kld: "geom_test",
        module: "g_test",
        module_version: 0,
        kernel_depend: DEPEND_RANGE,
        class_name: "TEST",
        release: 15,
        methods,
        allowed_undefined: allowed,
        exports: &[],
        max_size: 65536,
        m_version: M_VERSION,
    }
}

const METHODS: [&str; 2] = ["taste", "start"];

fn findings(bytes: &[u8]) -> Vec<Finding> {
    let allowed = kernel_allowlist();
    match check_ko(bytes, &expect(&allowed, &METHODS)) {
        Ok(r) => panic!("the module passed, expected findings:\n{r}"),
        Err(f) => f,
    }
}

/// Assert that some finding of `rule` mentions every word of `words`, and return the findings.
fn assert_fires(f: &[Finding], rule: Rule, words: &[&str]) {
    assert!(
        f.iter().any(|x| x.rule == rule && words.iter().all(|w| x.message.contains(w))),
        "no {rule} finding mentioning {words:?}; got:\n{}",
        f.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n")
    );
    for x in f {
        assert!(x.to_string().starts_with("ko rule "), "finding not labelled: {x}");
    }
}

#[test]
fn good_module_passes_and_decodes() {
    let allowed = kernel_allowlist();
    let bytes = Module::good().bytes();
    let report = match check_ko(&bytes, &expect(&allowed, &METHODS)) {
        Ok(r) => r,
        Err(f) => panic!("good module refused:\n{}", f.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n")),
    };
    assert_eq!(report.metadata.len(), 3);
    assert_eq!(report.metadata[0].cval, "kernel");
    assert_eq!(report.metadata[0].data, Metadata::Depend { min: 1_500_068, pref: 1_500_068, max: 1_599_999 });
    assert!(matches!(&report.metadata[1].data, Metadata::Module { name, evhand, .. }
        if name == "g_test" && evhand == "UND:g_modevent"));
    assert_eq!(report.metadata[2].data, Metadata::Version(0));
    let class = report.class.as_ref().expect("class decoded");
    assert_eq!(class.name, "TEST");
    assert_eq!(class.version, 0x2004_1207);
    let slots: Vec<(&str, &str)> = class.methods.iter().map(|(s, t)| (s.as_str(), t.as_str())).collect();
    assert_eq!(slots, [("taste", ".text:test_taste"), ("start", ".text:test_start")]);
    assert_eq!(report.sysinits.len(), 2);
    assert_eq!(report.sysinits[0].func, "UND:module_register_init");
    assert_eq!(report.sysinits[0].subsystem, 0x310_0000);
    let mt = report.sysinits[1].malloc_type.as_ref().expect("malloc type decoded");
    assert_eq!((mt.ks_version, mt.shortdesc.as_str()), (M_VERSION, "test"));
    assert_eq!(report.sysuninits[0].func, "UND:malloc_uninit");
    assert_eq!(report.undefined, ["g_modevent", "malloc_init", "malloc_uninit", "module_register_init"]);
    assert!(report.exported.is_empty());
    assert_eq!(report.relocations.get("R_X86_64_64"), Some(&25));
    let text = report.to_string();
    assert!(text.contains("set_modmetadata_set: 3 entries, flags WA"), "{text}");
    assert!(text.contains("md_version=1 MDT_DEPEND  cval=\"kernel\" depend=(1500068, 1500068, 1599999)"), "{text}");
    assert!(text.contains("set_sysinit_set: 2 entries, flags WA"), "{text}");
    assert!(text.contains("func@+16=UND:module_register_init udata@+24=.data+0xa8"), "{text}");
}

#[test]
fn rule1_wrong_e_type() {
    let mut bytes = Module::good().bytes();
    bytes[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
    assert_fires(&findings(&bytes), Rule::Header, &["ET_DYN", "not ET_REL"]);
}

#[test]
fn rule1_not_elf64() {
    let mut bytes = Module::good().bytes();
    bytes[4] = 1; // ELFCLASS32
    let f = findings(&bytes);
    assert_fires(&f, Rule::Header, &["ELFCLASS64"]);
    assert_eq!(f.len(), 1, "nothing else can be decoded: {f:?}");
}

#[test]
fn rule3_gotpcrel() {
    let mut m = Module::good();
    let off = m.add_code(&[0x48, 0x8b, 0x05, 0, 0, 0, 0]); // mov rax, [rip + x@GOTPCREL]
    let sym = undefined(&mut m.obj, "memcpy");
    m.obj
        .add_relocation(m.text, Relocation { offset: off + 3, symbol: sym, addend: -4, flags: rflags(R_GOTPCREL) })
        .unwrap();
    let f = findings(&m.bytes());
    assert_fires(&f, Rule::Relocations, &["1 x R_X86_64_GOTPCREL", ".text", "GOT"]);
    assert_fires(&f, Rule::Symbols, &["memcpy"]);
}

#[test]
fn rule3_absolute_32() {
    let mut m = Module::good();
    let off = m.add_code(&[0xb8, 0, 0, 0, 0]); // mov eax, imm32
    let ro = m.obj.section_symbol(m.rodata);
    m.obj.add_relocation(m.text, Relocation { offset: off + 1, symbol: ro, addend: 0, flags: rflags(R_32) }).unwrap();
    assert_fires(&findings(&m.bytes()), Rule::Relocations, &["R_X86_64_32 ", "code-model=kernel"]);
}

#[test]
fn rule4_comdat_group() {
    let mut m = Module::good();
    let sec = m.obj.add_section(Vec::new(), b".text.dup".to_vec(), SectionKind::Text);
    m.obj.set_section_data(sec, FRAME_FN.to_vec(), 1);
    let sym = m.obj.add_symbol(Symbol {
        name: b"dup".to_vec(),
        value: 0,
        size: 6,
        kind: SymbolKind::Text,
        scope: SymbolScope::Compilation,
        weak: false,
        section: SymbolSection::Section(sec),
        flags: SymbolFlags::None,
    });
    m.obj.add_comdat(Comdat { kind: ComdatKind::Any, symbol: sym, sections: vec![sec] });
    assert_fires(&findings(&m.bytes()), Rule::Forbidden, &["COMDAT"]);
}

#[test]
fn rule4_eh_frame() {
    let mut m = Module::good();
    let sec = m.obj.add_section(Vec::new(), b".eh_frame".to_vec(), SectionKind::ReadOnlyData);
    m.obj.set_section_data(sec, vec![0u8; 16], 8);
    assert_fires(&findings(&m.bytes()), Rule::Forbidden, &[".eh_frame", "unwind"]);
}

#[test]
fn rule4_init_array() {
    let mut m = Module::good();
    let sec = m.obj.add_section(Vec::new(), b".init_array".to_vec(), SectionKind::Data);
    m.obj.set_section_data(sec, vec![0u8; 8], 8);
    *m.obj.section_flags_mut(sec) = sflags(14, 0x3);
    let taste = m.taste;
    ptr(&mut m.obj, sec, 0, taste, 0);
    assert_fires(&findings(&m.bytes()), Rule::Forbidden, &[".init_array", "constructors"]);
}

#[test]
fn rule5_read_only_sysinit_set() {
    let mut m = Module::good();
    *m.obj.section_flags_mut(m.set_sysinit) = sflags(1, 0x2); // A, no W
    assert_fires(&findings(&m.bytes()), Rule::Sets, &["set_sysinit_set", "not writable", "sorts it in place"]);
}

#[test]
fn rule6_missing_modmetadata_set() {
    let m = Module::good();
    let mut bytes = m.bytes();
    // Rename the section in .shstrtab: same length, so nothing else moves.
    let at = bytes.windows(19).position(|w| w == b"set_modmetadata_set").expect("name in shstrtab");
    bytes[at..at + 19].copy_from_slice(b"set_xxxxxxxxxxx_set");
    let f = findings(&bytes);
    assert_fires(&f, Rule::Metadata, &["no set_modmetadata_set", "finds no module"]);
}

#[test]
fn rule6_wrong_kernel_range() {
    let mut m = Module::good();
    let rodata = m.rodata;
    put(&mut m.obj, rodata, DEPEND, &[1_400_097i32, 1_400_097, 1_499_999].map(i32::to_le_bytes).concat());
    assert_fires(
        &findings(&m.bytes()),
        Rule::Metadata,
        &["(1400097, 1400097, 1499999)", "expected (1500068, 1500068, 1599999)", "__FreeBSD_version"],
    );
}

#[test]
fn rule6_module_name_mismatch() {
    let mut m = Module::good();
    let rodata = m.rodata;
    put(&mut m.obj, rodata, S_MODULE, b"g_tost\0");
    assert_fires(&findings(&m.bytes()), Rule::Metadata, &["no MDT_MODULE named \"g_test\"", "\"g_tost\""]);
}

#[test]
fn rule7_class_version() {
    let mut m = Module::good();
    let data = m.data;
    put(&mut m.obj, data, CLASS + 8, &0x2004_1206u32.to_le_bytes());
    assert_fires(&findings(&m.bytes()), Rule::Class, &["version 0x20041206", "G_VERSION", "EINVAL"]);
}

#[test]
fn rule7_method_set_but_not_expected_and_expected_but_null() {
    let allowed = kernel_allowlist();
    let bytes = Module::good().bytes();
    // The module sets taste and start; declare taste and access instead.
    let f = check_ko(&bytes, &expect(&allowed, &["taste", "access"])).expect_err("slot mismatch must fire");
    assert_fires(&f, Rule::Class, &["method start is set", "not expected"]);
    assert_fires(&f, Rule::Class, &["method access is NULL", "declares it"]);
    assert_eq!(f.len(), 2, "{f:?}");
}

#[test]
fn rule7_config_slot_on_release_14_layout() {
    // The FreeBSD 15 module read with the FreeBSD 14 layout: start (offset 56) is then the
    // destroy_geom slot, and the 176-byte class no longer matches what the module built.
    let allowed = kernel_allowlist();
    let bytes = Module::good().bytes();
    let mut e = expect(&allowed, &METHODS);
    e.release = 14;
    let f = check_ko(&bytes, &e).expect_err("14 layout must not match");
    assert_fires(&f, Rule::Class, &["method destroy_geom is set"]);
    assert_fires(&f, Rule::Class, &["method start is NULL"]);
}

#[test]
fn rule8_register_init_with_wrong_udata() {
    let m = Module::build(MTYPE);
    let f = findings(&m.bytes());
    assert_fires(&f, Rule::Sysinit, &["module_register_init", "moduledata of \"g_test\"", "MOD_LOAD"]);
}

#[test]
fn rule8_malloc_type_version() {
    let mut m = Module::good();
    let data = m.data;
    put(&mut m.obj, data, MTYPE + 8, &2_020_110_501u64.to_le_bytes());
    assert_fires(&findings(&m.bytes()), Rule::Sysinit, &["ks_version 2020110501", "M_VERSION 2024073001", "panics"]);
}

#[test]
fn rule9_undefined_symbol_not_allowed() {
    let mut m = Module::good();
    let off = m.add_code(&[0xe8, 0, 0, 0, 0]); // call puts
    let sym = undefined(&mut m.obj, "puts");
    m.obj
        .add_relocation(m.text, Relocation { offset: off + 1, symbol: sym, addend: -4, flags: rflags(R_PLT32) })
        .unwrap();
    assert_fires(&findings(&m.bytes()), Rule::Symbols, &["undefined symbol puts", "allow-list"]);
}

#[test]
fn rule9_unlocalised_global() {
    let mut m = Module::good();
    let taste = m.taste;
    m.obj.symbol_mut(taste).scope = SymbolScope::Dynamic;
    m.obj.symbol_mut(taste).name = b"_RNvCs123_4geom5taste".to_vec();
    assert_fires(&findings(&m.bytes()), Rule::Symbols, &["_RNvCs123_4geom5taste", "EXPORT_SYMS", "localise"]);
}

#[test]
fn rule10_sse_instruction() {
    let mut m = Module::good();
    let off = m.add_code(&[0x0f, 0x28, 0xc1]); // movaps xmm0, xmm1
    let f = findings(&m.bytes());
    assert_fires(&f, Rule::Code, &[&format!(".text+{off:#x}"), "movaps xmm0,xmm1", "test_start+"]);
}

#[test]
fn rule10_x87_instruction() {
    let mut m = Module::good();
    m.add_code(&[0xd9, 0xe8]); // fld1
    assert_fires(&findings(&m.bytes()), Rule::Code, &["fld1", "FPU"]);
}

#[test]
fn rule11_oversize() {
    let allowed = kernel_allowlist();
    let bytes = Module::good().bytes();
    let mut e = expect(&allowed, &METHODS);
    e.max_size = 1024;
    let f = check_ko(&bytes, &e).expect_err("size limit");
    assert_fires(&f, Rule::Size, &[&format!("{} bytes", bytes.len()), "1024-byte limit"]);
    assert_eq!(f.len(), 1);
}
