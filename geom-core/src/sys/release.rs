//! Which FreeBSD release the ABI is built for, and the values that differ between releases.
//!
//! One release is in force per build. `freebsd-14` or `freebsd-16` win when enabled (the
//! default feature `freebsd-15` cannot be switched off inside a workspace build once any member
//! asks for defaults, so the non-default releases take precedence); enabling both is an error.

#[cfg(all(feature = "freebsd-14", feature = "freebsd-16"))]
compile_error!("geom-core: enable at most one of the features `freebsd-14` and `freebsd-16`");

/// The releases geom-rs can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// FreeBSD 14 (stable/14): `struct g_class` still has `config`; `bio_error` is a field.
    FreeBsd14,
    /// FreeBSD 15 (stable/15): no `config`; `bio_error` is a field.
    FreeBsd15,
    /// FreeBSD 16-CURRENT: `struct bio` carries a `struct kexterr`, `bio_error` lives in it.
    FreeBsd16,
}

/// The release this build targets.
#[cfg(freebsd_release = "14")]
pub const RELEASE: Release = Release::FreeBsd14;
/// The release this build targets.
#[cfg(freebsd_release = "16")]
pub const RELEASE: Release = Release::FreeBsd16;
/// The release this build targets.
#[cfg(freebsd_release = "15")]
pub const RELEASE: Release = Release::FreeBsd15;

impl Release {
    /// The `__FreeBSD_version` a module for this release is built against: the first release
    /// of the branch (14.0-RELEASE, 15.0-RELEASE) or the CURRENT version the layouts were read
    /// from. `DECLARE_MODULE` makes it the minimum kernel version the module loads on.
    pub const fn freebsd_version(self) -> i32 {
        match self {
            Release::FreeBsd14 => 1_400_097,
            Release::FreeBsd15 => 1_500_068,
            Release::FreeBsd16 => 1_600_019,
        }
    }

    /// The highest kernel version the module accepts: the end of its major branch
    /// (`roundup(__FreeBSD_version, 100000) - 1`), as `DECLARE_MODULE` computes it.
    pub const fn max_kernel_version(self) -> i32 {
        (self.freebsd_version() / 100_000 + 1) * 100_000 - 1
    }

    /// `M_VERSION` from `sys/sys/malloc.h`: `malloc_init` refuses a `malloc_type` whose
    /// `ks_version` differs from the running kernel's.
    pub const fn m_version(self) -> u64 {
        match self {
            Release::FreeBsd14 => 2_020_110_501,
            Release::FreeBsd15 | Release::FreeBsd16 => 2_024_073_001,
        }
    }

    /// The major version number (14, 15 or 16).
    pub const fn major(self) -> u32 {
        (self.freebsd_version() / 100_000) as u32
    }
}

/// `__FreeBSD_version` of the target release.
pub const __FreeBSD_version: i32 = RELEASE.freebsd_version();
/// `M_VERSION` of the target release.
pub const M_VERSION: u64 = RELEASE.m_version();
