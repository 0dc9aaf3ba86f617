//! amd64 relocation types: names, and which ones FreeBSD's kernel linker applies
//! (`sys/amd64/amd64/elf_machdep.c`, `elf_reloc_internal`).

/// The types `elf_reloc_internal` handles: NONE, 64, PC32, PLT32, GLOB_DAT, JUMP_SLOT,
/// RELATIVE, 32S, IRELATIVE. Every other type fails the load.
pub(crate) const KERNEL_ACCEPTED: [u32; 9] = [0, 1, 2, 4, 6, 7, 8, 11, 37];

/// Whether the amd64 kernel linker applies relocations of this type.
pub(crate) fn kernel_accepts(r_type: u32) -> bool {
    KERNEL_ACCEPTED.contains(&r_type)
}

/// The `R_X86_64_*` name of a relocation type.
pub(crate) fn reloc_name(r_type: u32) -> String {
    let name = match r_type {
        0 => "NONE",
        1 => "64",
        2 => "PC32",
        3 => "GOT32",
        4 => "PLT32",
        5 => "COPY",
        6 => "GLOB_DAT",
        7 => "JUMP_SLOT",
        8 => "RELATIVE",
        9 => "GOTPCREL",
        10 => "32",
        11 => "32S",
        12 => "16",
        13 => "PC16",
        14 => "8",
        15 => "PC8",
        16 => "DTPMOD64",
        17 => "DTPOFF64",
        18 => "TPOFF64",
        19 => "TLSGD",
        20 => "TLSLD",
        21 => "DTPOFF32",
        22 => "GOTTPOFF",
        23 => "TPOFF32",
        24 => "PC64",
        25 => "GOTOFF64",
        26 => "GOTPC32",
        27 => "GOT64",
        28 => "GOTPCREL64",
        29 => "GOTPC64",
        30 => "GOTPLT64",
        31 => "PLTOFF64",
        32 => "SIZE32",
        33 => "SIZE64",
        34 => "GOTPC32_TLSDESC",
        35 => "TLSDESC_CALL",
        36 => "TLSDESC",
        37 => "IRELATIVE",
        38 => "RELATIVE64",
        41 => "GOTPCRELX",
        42 => "REX_GOTPCRELX",
        43 => "CODE_4_GOTPCRELX",
        44 => "CODE_4_GOTTPOFF",
        45 => "CODE_4_GOTPC32_TLSDESC",
        _ => return format!("R_X86_64_<{r_type}>"),
    };
    format!("R_X86_64_{name}")
}

/// Why a rejected type appears, in a few words: GOT and TLS types get named as such.
pub(crate) fn rejected_kind(r_type: u32) -> &'static str {
    match r_type {
        16..=23 | 34..=36 | 44 | 45 => {
            "thread-local storage (TLS): the kernel has no TLS for modules; use per-CPU or explicit state"
        }
        3 | 9 | 25..=30 | 41..=43 => {
            "GOT-relative: a kld has no GOT; build with -C relocation-model=static and -C relro-level=off"
        }
        5 => "COPY: only executables use copy relocations",
        10 => "32-bit absolute: the small code model; keep -C code-model=kernel (32S)",
        24 | 13 | 15 | 12 | 14 => "an address size the kernel linker does not patch",
        32 | 33 => "symbol-size relocation",
        _ => "not handled by elf_reloc_internal",
    }
}
