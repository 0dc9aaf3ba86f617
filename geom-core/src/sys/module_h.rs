//! Module declaration records (`sys/sys/module.h`, `sys/sys/kernel.h`,
//! `sys/sys/linker_set.h`): what `DECLARE_MODULE`, `MODULE_VERSION`, `MODULE_DEPEND` and
//! `SYSINIT` put into a `.ko`.

use super::types::*;

/// `modeventhand_t`: a module event handler.
pub type modeventhand_t = unsafe extern "C" fn(m: module_t, what: c_int, arg: *mut c_void) -> c_int;

/// Module event: load.
pub const MOD_LOAD: c_int = 0;
/// Module event: unload.
pub const MOD_UNLOAD: c_int = 1;
/// Module event: system shutdown.
pub const MOD_SHUTDOWN: c_int = 2;
/// Module event: may the module be unloaded?
pub const MOD_QUIESCE: c_int = 3;

/// `moduledata_t`: a module's name, event handler and private argument.
#[repr(C)]
pub struct moduledata {
    /// Module name (`"g_stripe"`).
    pub name: *const c_char,
    /// Event handler (`g_modevent` for GEOM classes).
    pub evhand: Option<modeventhand_t>,
    /// Handler argument (the `g_class` for GEOM classes).
    pub priv_: *mut c_void,
}

/// `MDT_STRUCT_VERSION`.
pub const MDT_STRUCT_VERSION: c_int = 1;
/// Metadata record: a dependency.
pub const MDT_DEPEND: c_int = 1;
/// Metadata record: a module.
pub const MDT_MODULE: c_int = 2;
/// Metadata record: a module version.
pub const MDT_VERSION: c_int = 3;
/// Metadata record: PnP information.
pub const MDT_PNP_INFO: c_int = 4;

/// `struct mod_metadata`: one entry of `set_modmetadata_set`.
#[repr(C)]
pub struct mod_metadata {
    /// `MDT_STRUCT_VERSION`.
    pub md_version: c_int,
    /// `MDT_*`.
    pub md_type: c_int,
    /// The record (`moduledata`, `mod_depend` or `mod_version`).
    pub md_data: *const c_void,
    /// The module or dependency name.
    pub md_cval: *const c_char,
}

/// `struct mod_depend`: the version range of a dependency.
#[repr(C)]
pub struct mod_depend {
    /// Lowest acceptable version.
    pub md_ver_minimum: c_int,
    /// Preferred version.
    pub md_ver_preferred: c_int,
    /// Highest acceptable version.
    pub md_ver_maximum: c_int,
}

/// `struct mod_version`.
#[repr(C)]
pub struct mod_version {
    /// The version.
    pub mv_version: c_int,
}

/// `sysinit_cfunc_t`.
pub type sysinit_cfunc_t = unsafe extern "C" fn(arg: *const c_void);

/// `struct sysinit`: one entry of `set_sysinit_set` / `set_sysuninit_set`.
#[repr(C)]
pub struct sysinit {
    /// `enum sysinit_sub_id`.
    pub subsystem: c_uint,
    /// `enum sysinit_elem_order`.
    pub order: c_uint,
    /// `STAILQ_ENTRY(sysinit) next` (kernel-owned).
    pub next: *mut sysinit,
    /// The function to run.
    pub func: Option<sysinit_cfunc_t>,
    /// Its argument.
    pub udata: *const c_void,
}

// sys/sys/module.h @ ba0fe1dd and sys/sys/kernel.h @ d28066d8 (same in 14, 15 and 16).
static_assertions::assert_eq_size!(moduledata, [u8; 24]);
static_assertions::const_assert_eq!(core::mem::offset_of!(moduledata, evhand), 8);
static_assertions::const_assert_eq!(core::mem::offset_of!(moduledata, priv_), 16);
static_assertions::assert_eq_size!(mod_metadata, [u8; 24]);
static_assertions::const_assert_eq!(core::mem::offset_of!(mod_metadata, md_type), 4);
static_assertions::const_assert_eq!(core::mem::offset_of!(mod_metadata, md_data), 8);
static_assertions::const_assert_eq!(core::mem::offset_of!(mod_metadata, md_cval), 16);
static_assertions::assert_eq_size!(mod_depend, [u8; 12]);
static_assertions::const_assert_eq!(core::mem::offset_of!(mod_depend, md_ver_preferred), 4);
static_assertions::const_assert_eq!(core::mem::offset_of!(mod_depend, md_ver_maximum), 8);
static_assertions::assert_eq_size!(mod_version, [u8; 4]);
static_assertions::assert_eq_size!(sysinit, [u8; 32]);
static_assertions::const_assert_eq!(core::mem::offset_of!(sysinit, order), 4);
static_assertions::const_assert_eq!(core::mem::offset_of!(sysinit, next), 8);
static_assertions::const_assert_eq!(core::mem::offset_of!(sysinit, func), 16);
static_assertions::const_assert_eq!(core::mem::offset_of!(sysinit, udata), 24);

/// `SI_SUB_KMEM`: kernel memory (malloc types are registered here).
pub const SI_SUB_KMEM: c_uint = 0x180_0000;
/// `SI_SUB_KLD`.
pub const SI_SUB_KLD: c_uint = 0x200_0000;
/// `SI_SUB_DRIVERS`: where `DECLARE_GEOM_CLASS` registers the module.
pub const SI_SUB_DRIVERS: c_uint = 0x310_0000;
/// `SI_SUB_CONFIGURE`.
pub const SI_SUB_CONFIGURE: c_uint = 0x380_0000;
/// `SI_SUB_PSEUDO`.
pub const SI_SUB_PSEUDO: c_uint = 0x700_0000;
/// `SI_SUB_LAST`.
pub const SI_SUB_LAST: c_uint = 0xfff_ffff;
/// `SI_ORDER_FIRST`.
pub const SI_ORDER_FIRST: c_uint = 0;
/// `SI_ORDER_SECOND`.
pub const SI_ORDER_SECOND: c_uint = 1;
/// `SI_ORDER_THIRD`.
pub const SI_ORDER_THIRD: c_uint = 2;
/// `SI_ORDER_MIDDLE`.
pub const SI_ORDER_MIDDLE: c_uint = 0x100_0000;
/// `SI_ORDER_ANY`.
pub const SI_ORDER_ANY: c_uint = 0xfff_ffff;
/// The order `DECLARE_GEOM_CLASS` uses on the target release (SECOND on 14, THIRD later).
#[cfg(freebsd_release = "14")]
pub const GEOM_CLASS_SI_ORDER: c_uint = SI_ORDER_SECOND;
/// The order `DECLARE_GEOM_CLASS` uses on the target release (SECOND on 14, THIRD later).
#[cfg(not(freebsd_release = "14"))]
pub const GEOM_CLASS_SI_ORDER: c_uint = SI_ORDER_THIRD;
