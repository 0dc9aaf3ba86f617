//! Rule 10: no FPU, MMX, SSE or AVX instruction in a kernel module's code.
//!
//! The amd64 kernel does not save the FPU/SIMD state on entry (kern.mk builds it with
//! `-mno-mmx -mno-sse -msoft-float`, clang also `-mno-avx`); a module that touches `xmm`,
//! `ymm`, `st(i)` or `mm` registers corrupts the interrupted user thread's registers unless
//! it brackets the code with `fpu_kern_enter(9)`, which geom-rs never does. Every executable
//! section is decoded with iced-x86 (64-bit mode).

use std::collections::HashMap;

use iced_x86::{
    CpuidFeature, Decoder, DecoderOptions, Formatter, Instruction, InstructionInfoFactory, IntelFormatter, Register,
};

use super::relobj::{RelObj, SHF_EXECINSTR, SHT_NOBITS};

/// At most this many offending instructions are listed per section; the rest are counted.
const MAX_LISTED_PER_SECTION: usize = 16;

/// One offending instruction.
#[derive(Clone, Debug)]
pub(crate) struct FpuUse {
    /// Section name.
    pub section: String,
    /// Offset of the instruction in the section.
    pub offset: u64,
    /// Intel-syntax text.
    pub text: String,
    /// `symbol+0xoff` of the nearest preceding symbol, or the section name.
    pub near: String,
    /// What makes it FPU/SIMD: a register or a CPUID feature.
    pub why: String,
}

/// The result of scanning one section.
#[derive(Clone, Debug)]
pub(crate) struct SectionScan {
    /// The first offenders (at most [`MAX_LISTED_PER_SECTION`]).
    pub listed: Vec<FpuUse>,
    /// How many offenders there were in all.
    pub total: usize,
    /// Section name.
    pub section: String,
}

/// Whether a register belongs to the FPU, MMX, SSE, AVX or AVX-512/AMX state.
fn fpu_register(r: Register) -> bool {
    r.is_xmm() || r.is_ymm() || r.is_zmm() || r.is_mm() || r.is_st() || r.is_k() || r.is_tmm()
}

/// Whether a CPUID feature means FPU/SIMD state (x87, MMX, 3DNow!, SSE*, AVX*, FMA, F16C, XOP,
/// AMX and the SIMD crypto extensions).
fn fpu_feature(f: CpuidFeature) -> bool {
    let name = format!("{f:?}");
    const PREFIXES: [&str; 12] =
        ["FPU", "CYRIX_FPU", "MMX", "D3NOW", "CYRIX_D3NOW", "SSE", "SSSE3", "AVX", "FMA", "F16C", "XOP", "AMX"];
    PREFIXES.iter().any(|p| name.starts_with(p))
        || matches!(
            f,
            CpuidFeature::AES
                | CpuidFeature::VAES
                | CpuidFeature::PCLMULQDQ
                | CpuidFeature::VPCLMULQDQ
                | CpuidFeature::SHA
                | CpuidFeature::GFNI
                | CpuidFeature::KNC
        )
}

/// Scan every executable section of `obj`; returns one entry per section with offenders.
pub(crate) fn scan(obj: &RelObj<'_>) -> Vec<SectionScan> {
    let mut out = Vec::new();
    let mut factory = InstructionInfoFactory::new();
    let mut formatter = IntelFormatter::new();
    // Named symbols of each section sorted by offset, for "nearest preceding symbol"; one pass
    // over the symbol table.
    let mut marks_of: HashMap<usize, Vec<(u64, &str)>> = HashMap::new();
    for s in obj.symbols.iter().filter(|s| s.in_section() && s.is_named_place()) {
        marks_of.entry(s.shndx as usize).or_default().push((s.value, s.name.as_str()));
    }
    for (idx, sec) in obj.sections.iter().enumerate() {
        if sec.flags & SHF_EXECINSTR == 0 || sec.sh_type == SHT_NOBITS || sec.data.is_empty() {
            continue;
        }
        let mut marks = marks_of.remove(&idx).unwrap_or_default();
        marks.sort_unstable();

        let mut scan = SectionScan { listed: Vec::new(), total: 0, section: sec.name.clone() };
        let mut decoder = Decoder::with_ip(64, sec.data, 0, DecoderOptions::NONE);
        let mut instr = Instruction::default();
        while decoder.can_decode() {
            decoder.decode_out(&mut instr);
            if instr.is_invalid() {
                continue;
            }
            let why = offending(&instr, &mut factory);
            let Some(why) = why else { continue };
            scan.total += 1;
            if scan.listed.len() >= MAX_LISTED_PER_SECTION {
                continue;
            }
            let offset = instr.ip();
            let mut text = String::new();
            formatter.format(&instr, &mut text);
            let near = match marks.partition_point(|&(v, _)| v <= offset) {
                0 => sec.name.clone(),
                n => {
                    let (v, name) = marks[n - 1];
                    format!("{name}+{:#x}", offset - v)
                }
            };
            scan.listed.push(FpuUse { section: sec.name.clone(), offset, text, near, why });
        }
        if scan.total > 0 {
            out.push(scan);
        }
    }
    out
}

/// Why `instr` uses FPU/SIMD state, or `None`.
fn offending(instr: &Instruction, factory: &mut InstructionInfoFactory) -> Option<String> {
    if let Some(f) = instr.cpuid_features().iter().copied().find(|&f| fpu_feature(f)) {
        return Some(format!("CPUID feature {f:?}"));
    }
    let info = factory.info(instr);
    info.used_registers().iter().map(|u| u.register()).find(|&r| fpu_register(r)).map(|r| format!("register {r:?}"))
}
