//! A class as a kernel module: everything C's `DECLARE_GEOM_CLASS` and `MODULE_VERSION`
//! put into a `.ko`, made by [`declare_geom_class!`](crate::declare_geom_class) (which the
//! `#[geom_class]` attribute invokes for every `impl GeomClass`).
//!
//! For class `NOP` that is:
//!
//! | C | record | where |
//! |---|---|---|
//! | `static struct g_class g_nop_class` | the class table ([`crate::class_table`]) | `.data` |
//! | `static moduledata_t g_nop_mod = { "g_nop", g_modevent, &g_nop_class }` | [`sys::moduledata`] | `.data` |
//! | `MODULE_DEPEND(g_nop, kernel, V, V, roundup(V, 100000) - 1)` | `MDT_DEPEND` on `"kernel"` | `set_modmetadata_set` |
//! | `MODULE_METADATA(_md_g_nop, MDT_MODULE, &g_nop_mod, "g_nop")` | `MDT_MODULE` | `set_modmetadata_set` |
//! | `MODULE_VERSION(geom_nop, 0)` | `MDT_VERSION` | `set_modmetadata_set` |
//! | `SYSINIT(g_nopmodule, SI_SUB_DRIVERS, order, module_register_init, &g_nop_mod)` | [`sys::sysinit`] | `set_sysinit_set` |
//!
//! `V` is the target release's `__FreeBSD_version`. The kernel linker reads the records when
//! the module is loaded and runs the `SYSINIT`, which hands `MOD_LOAD` to `g_modevent`, which
//! loads the class. geom-host's `Runtime::load` walks the same records (through
//! [`DeclaredModule`]) and runs the same `SYSINIT`, so the records a `.ko` carries are the
//! ones the tests exercise.

use core::ffi::CStr;

use crate::sys::{self, c_char, c_int, c_void, g_class, mod_depend, mod_metadata, mod_version, moduledata, KernelCell};

/// The records of one class module (all `'static`, in writable memory as the kernel wants).
pub struct ClassModule {
    /// The class.
    pub class: &'static KernelCell<g_class>,
    /// The module data (`moduledata_t`).
    pub data: &'static KernelCell<moduledata>,
    /// The `set_modmetadata_set` records: the kernel dependency, the module, its version.
    pub metadata: [&'static KernelCell<mod_metadata>; 3],
    /// The registration `SYSINIT`.
    pub sysinit: &'static KernelCell<sys::sysinit>,
}

impl ClassModule {
    /// Each metadata record's type (`MDT_*`) and name, in set order.
    pub fn records(&self) -> impl Iterator<Item = (c_int, &'static CStr)> + '_ {
        self.metadata.iter().map(|md| {
            // SAFETY: the records are statics made by declare_geom_class!, with a C string
            // name; neither the kernel nor Rust writes a metadata record after it is built.
            unsafe {
                let md = &*md.get();
                (md.md_type, CStr::from_ptr(md.md_cval))
            }
        })
    }

    /// The module's name (`g_nop`).
    pub fn name(&self) -> &'static CStr {
        // SAFETY: as above; the module data's name is a C string literal.
        unsafe { CStr::from_ptr((*self.data.get()).name) }
    }
}

/// A class that carries its module records (implemented by `declare_geom_class!`).
pub trait DeclaredModule {
    /// The records.
    fn module() -> &'static ClassModule;
}

/// A metadata record (`MODULE_METADATA`).
pub const fn metadata(md_type: c_int, data: *const c_void, cval: *const c_char) -> mod_metadata {
    mod_metadata { md_version: sys::MDT_STRUCT_VERSION, md_type, md_data: data, md_cval: cval }
}

/// The kernel dependency `DECLARE_MODULE` adds: from the target release's
/// `__FreeBSD_version` to the end of its branch.
pub const fn kernel_dependency() -> mod_depend {
    mod_depend {
        md_ver_minimum: sys::__FreeBSD_version,
        md_ver_preferred: sys::__FreeBSD_version,
        md_ver_maximum: sys::RELEASE.max_kernel_version(),
    }
}

/// `moduledata_t` of a GEOM class: its name, `g_modevent`, and the class.
pub const fn class_moduledata(name: &'static core::ffi::CStr, class: &'static KernelCell<g_class>) -> moduledata {
    moduledata { name: name.as_ptr(), evhand: Some(sys::g_modevent), priv_: class.get().cast() }
}

/// `mod_version`.
pub const fn version(v: c_int) -> mod_version {
    mod_version { mv_version: v }
}

/// Declare class `$class` as a kernel module, as `DECLARE_GEOM_CLASS($class, $module)` and
/// `MODULE_VERSION($kld, $version)` do in C: the static `g_class`, the module data, the
/// metadata records in `set_modmetadata_set` and the registration `SYSINIT` (see the
/// [module documentation](crate::module)). Implements [`DeclaredModule`] for `$class`.
///
/// `#[geom_class]` invokes it with `g_<name>` and `geom_<name>` (the class name in lower
/// case) and version 0, FreeBSD's conventions.
#[macro_export]
macro_rules! declare_geom_class {
    ($class:ty, $module:literal, $kld:literal, $version:expr) => {
        const _: () = {
            use $crate::sys::KernelCell;
            static CLASS: KernelCell<$crate::sys::g_class> = KernelCell::new($crate::class_table::<$class>());
            static DATA: KernelCell<$crate::sys::moduledata> =
                KernelCell::new($crate::module::class_moduledata($module, &CLASS));
            static KERNEL_DEPEND: KernelCell<$crate::sys::mod_depend> =
                KernelCell::new($crate::module::kernel_dependency());
            static VERSION: KernelCell<$crate::sys::mod_version> = KernelCell::new($crate::module::version($version));
            static MD_DEPEND: KernelCell<$crate::sys::mod_metadata> = KernelCell::new($crate::module::metadata(
                $crate::sys::MDT_DEPEND,
                KERNEL_DEPEND.get().cast_const().cast(),
                c"kernel".as_ptr(),
            ));
            static MD_MODULE: KernelCell<$crate::sys::mod_metadata> = KernelCell::new($crate::module::metadata(
                $crate::sys::MDT_MODULE,
                DATA.get().cast_const().cast(),
                $module.as_ptr(),
            ));
            static MD_VERSION: KernelCell<$crate::sys::mod_metadata> = KernelCell::new($crate::module::metadata(
                $crate::sys::MDT_VERSION,
                VERSION.get().cast_const().cast(),
                $kld.as_ptr(),
            ));
            #[allow(unsafe_code)]
            #[cfg_attr(not(target_os = "freebsd"), used)]
            #[link_section = "set_modmetadata_set"]
            static SET_DEPEND: $crate::sys::SetEntry = $crate::sys::SetEntry::new(&MD_DEPEND);
            #[allow(unsafe_code)]
            #[cfg_attr(not(target_os = "freebsd"), used)]
            #[link_section = "set_modmetadata_set"]
            static SET_MODULE: $crate::sys::SetEntry = $crate::sys::SetEntry::new(&MD_MODULE);
            #[allow(unsafe_code)]
            #[cfg_attr(not(target_os = "freebsd"), used)]
            #[link_section = "set_modmetadata_set"]
            static SET_VERSION: $crate::sys::SetEntry = $crate::sys::SetEntry::new(&MD_VERSION);
            $crate::sysinit!(
                REGISTER,
                $crate::sys::SI_SUB_DRIVERS,
                $crate::sys::GEOM_CLASS_SI_ORDER,
                $crate::sys::module_register_init,
                DATA.get().cast_const().cast()
            );
            static MODULE: $crate::module::ClassModule = $crate::module::ClassModule {
                class: &CLASS,
                data: &DATA,
                metadata: [&MD_DEPEND, &MD_MODULE, &MD_VERSION],
                sysinit: &REGISTER,
            };
            impl $crate::module::DeclaredModule for $class {
                fn module() -> &'static $crate::module::ClassModule {
                    &MODULE
                }
            }
            // Built for the kernel, the module also gets its Rust heap and runtime; built as
            // FreeBSD userland, the geom(8) class library. Both come from kmod-glue, which a
            // class lists as a dependency for those two targets only.
            #[cfg(target_os = "none")]
            ::kmod_glue::kernel_module!($kld);
            #[cfg(target_os = "freebsd")]
            ::kmod_glue::geom_library!($class);
        };
    };
}
