//! What [`check_ko`](super::check_ko) decodes from a module, and its build-log layout
//! (kmod-build.md section 4).

use std::collections::BTreeMap;
use std::fmt;

/// A decoded, accepted kernel module.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KoReport {
    /// `EI_OSABI` (9 = FreeBSD, 0 = SYSV; the kernel ignores it).
    pub osabi: u8,
    /// File size in bytes.
    pub file_size: u64,
    /// Every section header after the null one.
    pub sections: Vec<SectionSummary>,
    /// Relocations of loaded sections, counted by type name (`R_X86_64_PLT32` ...).
    pub relocations: BTreeMap<String, usize>,
    /// `set_modmetadata_set`.
    pub modmetadata_set: Option<SetSummary>,
    /// The `struct mod_metadata` records, in set order.
    pub metadata: Vec<MetadataRecord>,
    /// `set_sysinit_set`.
    pub sysinit_set: Option<SetSummary>,
    /// The `struct sysinit` records of `set_sysinit_set`, in set order.
    pub sysinits: Vec<SysinitRecord>,
    /// `set_sysuninit_set`.
    pub sysuninit_set: Option<SetSummary>,
    /// The `struct sysinit` records of `set_sysuninit_set`, in set order.
    pub sysuninits: Vec<SysinitRecord>,
    /// The registered GEOM class.
    pub class: Option<ClassSummary>,
    /// Undefined symbols (resolved by the kernel at load), sorted.
    pub undefined: Vec<String>,
    /// Defined global or weak symbols, sorted.
    pub exported: Vec<String>,
}

/// One section header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionSummary {
    /// Name.
    pub name: String,
    /// `sh_type`.
    pub sh_type: u32,
    /// Flag letters: `W` write, `A` alloc, `X` exec (`-` for none).
    pub flags: String,
    /// `sh_size`.
    pub size: u64,
}

/// One linker set section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetSummary {
    /// Section name (`set_sysinit_set`).
    pub name: String,
    /// Number of 8-byte entries.
    pub entries: u64,
    /// Flag letters.
    pub flags: String,
}

/// One `struct mod_metadata`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetadataRecord {
    /// `md_version` (1).
    pub md_version: i32,
    /// `md_cval`: the dependency's or the module's name.
    pub cval: String,
    /// What `md_data` points to, by `md_type`.
    pub data: Metadata,
}

/// The record a `mod_metadata` describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Metadata {
    /// `MDT_DEPEND`: `struct mod_depend`.
    Depend {
        /// `md_ver_minimum`.
        min: i32,
        /// `md_ver_preferred`.
        pref: i32,
        /// `md_ver_maximum`.
        max: i32,
    },
    /// `MDT_MODULE`: `moduledata_t`.
    Module {
        /// `name`.
        name: String,
        /// Where `evhand` points.
        evhand: String,
        /// Where `priv` points.
        priv_: String,
    },
    /// `MDT_VERSION`: `struct mod_version`.
    Version(i32),
    /// Another `md_type` (`MDT_PNP_INFO` ...), not decoded.
    Other(i32),
}

/// One `struct sysinit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysinitRecord {
    /// `subsystem`.
    pub subsystem: u32,
    /// `order`.
    pub order: u32,
    /// Where `func` points.
    pub func: String,
    /// Where `udata` points.
    pub udata: String,
    /// For `malloc_init`/`malloc_uninit`: the `struct malloc_type` `udata` points to.
    pub malloc_type: Option<MallocTypeSummary>,
}

/// A `struct malloc_type` registered by the module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MallocTypeSummary {
    /// `ks_version` (must be the kernel's `M_VERSION`).
    pub ks_version: u64,
    /// `ks_shortdesc`.
    pub shortdesc: String,
}

/// The `struct g_class` of the module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassSummary {
    /// Where it lives (`.data:CLASS`).
    pub place: String,
    /// `name`.
    pub name: String,
    /// `version`.
    pub version: u32,
    /// The non-NULL method slots and where each points, in layout order.
    pub methods: Vec<(String, String)>,
}

/// `MDT_*` names padded like the reference layout.
fn md_name(data: &Metadata) -> &'static str {
    match data {
        Metadata::Depend { .. } => "MDT_DEPEND ",
        Metadata::Module { .. } => "MDT_MODULE ",
        Metadata::Version(_) => "MDT_VERSION",
        Metadata::Other(_) => "MDT_?      ",
    }
}

fn write_set(f: &mut fmt::Formatter<'_>, set: &SetSummary) -> fmt::Result {
    let plural = if set.entries == 1 { "entry" } else { "entries" };
    writeln!(f, "{}: {} {plural}, flags {}", set.name, set.entries, set.flags)
}

fn write_sysinit(f: &mut fmt::Formatter<'_>, r: &SysinitRecord) -> fmt::Result {
    write!(f, "   subsystem={:#x} order={:#x} func@+16={} udata@+24={}", r.subsystem, r.order, r.func, r.udata)?;
    if let Some(m) = &r.malloc_type {
        write!(f, " malloc_type(ks_version={} shortdesc={:?})", m.ks_version, m.shortdesc)?;
    }
    writeln!(f)
}

impl fmt::Display for KoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "ELF64 ET_REL x86-64, OSABI {}, {} bytes", self.osabi, self.file_size)?;
        if let Some(set) = &self.modmetadata_set {
            write_set(f, set)?;
        }
        for r in &self.metadata {
            write!(f, "   md_version={} {} cval={:?}", r.md_version, md_name(&r.data), r.cval)?;
            match &r.data {
                Metadata::Depend { min, pref, max } => writeln!(f, " depend=({min}, {pref}, {max})")?,
                Metadata::Module { name, evhand, priv_ } => {
                    writeln!(f, " moduledata.name={name:?} evhand={evhand} priv={priv_}")?
                }
                Metadata::Version(v) => writeln!(f, " version={v}")?,
                Metadata::Other(t) => writeln!(f, " md_type={t}")?,
            }
        }
        if let Some(set) = &self.sysinit_set {
            write_set(f, set)?;
        }
        for r in &self.sysinits {
            write_sysinit(f, r)?;
        }
        if let Some(set) = &self.sysuninit_set {
            write_set(f, set)?;
        }
        for r in &self.sysuninits {
            write_sysinit(f, r)?;
        }
        if let Some(c) = &self.class {
            writeln!(f, "g_class {:?} version={:#x} at {}", c.name, c.version, c.place)?;
            for (slot, target) in &c.methods {
                writeln!(f, "   {slot}={target}")?;
            }
        }
        writeln!(f, "undefined: {}", list_or_none(&self.undefined))?;
        writeln!(f, "exported: {}", list_or_none(&self.exported))?;
        let relocs: Vec<String> = self.relocations.iter().map(|(n, c)| format!("{n} {c}")).collect();
        writeln!(f, "relocations: {}", list_or_none(&relocs))?;
        writeln!(f, "sections:")?;
        for s in &self.sections {
            writeln!(f, "   {:<24} type={:<#10x} flags={:<3} size={:#x}", s.name, s.sh_type, s.flags, s.size)?;
        }
        Ok(())
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}
