//! Offline checks of what `cargo xtask kmod` produces, written from FreeBSD's loader sources
//! (see `/work/shared/reference/kmod-build.md`, sections 1, 3, 4 and 6).
//!
//! * [`check_ko`]: an amd64 kernel module (`geom_<class>.ko`, ELF64 `ET_REL`) against what
//!   `sys/kern/link_elf_obj.c`, `sys/amd64/amd64/elf_machdep.c` and `kern_linker.c` accept,
//!   and against what the module is supposed to declare ([`KoExpect`]).
//! * [`check_geom_lib`]: the userland class library geom(8) `dlopen`s (`geom_<class>.so`,
//!   ELF64 `ET_DYN`) and its `class_commands` table ([`LibExpect`]).
//!
//! Both are pure functions of the file's bytes: no process is spawned. They collect every
//! finding instead of stopping at the first; each [`Finding`] is one line naming the rule, the
//! offending item and why FreeBSD would refuse it. On success they return a decoded report
//! whose `Display` is meant for the build log.
//!
//! The kernel export allow-list lives in `xtask/allowlist/` and is loaded with
//! [`allowlist()`].

mod allowlist;
mod code;
mod commands;
mod geomlib;
mod ko;
mod relobj;
mod relocs;
mod report;

#[cfg(test)]
mod tests_ko;
#[cfg(test)]
mod tests_lib;

use std::fmt;

// The types below are the checkers' public API (fields of the reports), named here for callers.
#[allow(unused_imports)]
pub use allowlist::{allowlist, FREEBSD_KERNEL, FREEBSD_USERLAND};
#[allow(unused_imports)]
pub use commands::{Command, CommandOption, OptionDefault, OptionType};
#[allow(unused_imports)]
pub use geomlib::{check_geom_lib, LibExpect, LibReport};
#[allow(unused_imports)]
pub use ko::{check_ko, KoExpect, CLASS_METHODS};
#[allow(unused_imports)]
pub use report::{
    ClassSummary, KoReport, MallocTypeSummary, Metadata, MetadataRecord, SectionSummary, SetSummary, SysinitRecord,
};

/// The rule a [`Finding`] belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// `.ko` rule 1: ELF64, little endian, `ET_REL`, `EM_X86_64`.
    Header,
    /// `.ko` rule 2: exactly one `SHT_SYMTAB` linked to an `SHT_STRTAB`.
    Symtab,
    /// `.ko` rule 3: only relocation types the amd64 kernel linker applies; no `SHT_REL`.
    Relocations,
    /// `.ko` rule 4: no COMDAT groups, `.eh_frame`, constructors or destructors.
    Forbidden,
    /// `.ko` rule 5: the linker sets are well-formed arrays of pointers to defined symbols.
    Sets,
    /// `.ko` rule 6: the module metadata (`MDT_DEPEND`, `MDT_MODULE`, `MDT_VERSION`).
    Metadata,
    /// `.ko` rule 7: the `struct g_class` the module registers.
    Class,
    /// `.ko` rule 8: the `SYSINIT`/`SYSUNINIT` records (module registration, malloc types).
    Sysinit,
    /// `.ko` rule 9: undefined symbols are kernel exports; defined globals are the exports.
    Symbols,
    /// `.ko` rule 10: no FPU, MMX, SSE or AVX instruction.
    Code,
    /// `.ko` rule 11: the file size limit.
    Size,
    /// Library rule 1: ELF64, little endian, `ET_DYN`, `EM_X86_64`, a dynamic symbol table.
    LibHeader,
    /// Library rule 2: exactly `lib_version`, `version` and `class_commands` exported.
    LibExports,
    /// Library rule 3: `lib_version` is `G_LIB_VERSION` and `version` the class version.
    LibVersions,
    /// Library rule 4: every imported symbol is a libc/libgeom export.
    LibImports,
    /// Library rule 5: no text relocations and only RELATIVE, GLOB_DAT, JUMP_SLOT, 64.
    LibRelocations,
    /// Library rule 6: the `class_commands` table is well-formed.
    LibCommands,
}

impl Rule {
    /// A short label: the rule's number and name, as printed in front of each finding
    /// (`"ko rule 3 (relocations)"`).
    pub fn label(self) -> &'static str {
        match self {
            Rule::Header => "ko rule 1 (header)",
            Rule::Symtab => "ko rule 2 (symtab)",
            Rule::Relocations => "ko rule 3 (relocations)",
            Rule::Forbidden => "ko rule 4 (forbidden sections)",
            Rule::Sets => "ko rule 5 (linker sets)",
            Rule::Metadata => "ko rule 6 (module metadata)",
            Rule::Class => "ko rule 7 (g_class)",
            Rule::Sysinit => "ko rule 8 (sysinit)",
            Rule::Symbols => "ko rule 9 (symbols)",
            Rule::Code => "ko rule 10 (no FPU/SIMD code)",
            Rule::Size => "ko rule 11 (size)",
            Rule::LibHeader => "lib rule 1 (header)",
            Rule::LibExports => "lib rule 2 (exports)",
            Rule::LibVersions => "lib rule 3 (versions)",
            Rule::LibImports => "lib rule 4 (imports)",
            Rule::LibRelocations => "lib rule 5 (relocations)",
            Rule::LibCommands => "lib rule 6 (class_commands)",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One reason the checked file would not load (or would misbehave) on FreeBSD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The rule that fired.
    pub rule: Rule,
    /// One line: the offending item and why FreeBSD refuses it.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.message)
    }
}

/// The findings of one check, in the order the rules ran.
#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    /// Record one finding.
    fn push(&mut self, rule: Rule, message: impl Into<String>) {
        self.0.push(Finding { rule, message: message.into() });
    }

    /// `Ok(report)` when nothing was found, else every finding.
    fn finish<T>(self, report: T) -> Result<T, Vec<Finding>> {
        if self.0.is_empty() {
            Ok(report)
        } else {
            Err(self.0)
        }
    }
}
