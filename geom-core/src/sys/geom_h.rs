//! The GEOM topology objects of `sys/geom/geom.h`: class, geom, consumer, provider, and the
//! method types a class fills in.
//!
//! `struct g_class` lost its `config` slot after FreeBSD 14 (176 → 168 bytes); the slot exists
//! here only when building for 14.

use super::bio_h::bio;
use super::geom_ctl_h::gctl_req;
use super::queue::{ListEntry, ListHead, TailqEntry};
use super::types::*;

/// `G_VERSION` (`G_VERSION_01`): the only `g_class.version` `g_modevent` accepts.
pub const G_VERSION: u_int = 0x2004_1207;

/// `g_taste_t`: a new provider appeared (or the class was loaded); topology lock held.
pub type g_taste_t = unsafe extern "C" fn(mp: *mut g_class, pp: *mut g_provider, flags: c_int) -> *mut g_geom;
/// `g_ctl_req_t`: a geom(8) request for the class; topology lock held.
pub type g_ctl_req_t = unsafe extern "C" fn(req: *mut gctl_req, mp: *mut g_class, verb: *const c_char);
/// `g_ctl_destroy_geom_t`: the class is being unloaded; non-zero vetoes.
pub type g_ctl_destroy_geom_t = unsafe extern "C" fn(req: *mut gctl_req, mp: *mut g_class, gp: *mut g_geom) -> c_int;
/// `g_config_t` (FreeBSD 14's `g_class.config` slot; unused by GEOM itself).
pub type g_config_t = unsafe extern "C" fn(ga: *mut c_void) -> c_int;
/// `g_init_t`: class load.
pub type g_init_t = unsafe extern "C" fn(mp: *mut g_class);
/// `g_fini_t`: class unload.
pub type g_fini_t = unsafe extern "C" fn(mp: *mut g_class);
/// `g_start_t`: a bio arrives at one of the geom's providers. Must not sleep.
pub type g_start_t = unsafe extern "C" fn(bp: *mut bio);
/// `g_orphan_t`: the provider below this consumer is going away; topology lock held.
pub type g_orphan_t = unsafe extern "C" fn(cp: *mut g_consumer);
/// `g_spoiled_t`: someone else opened the provider below for writing; topology lock held.
pub type g_spoiled_t = unsafe extern "C" fn(cp: *mut g_consumer);
/// `g_attrchanged_t`: an attribute of the provider below changed.
pub type g_attrchanged_t = unsafe extern "C" fn(cp: *mut g_consumer, attr: *const c_char);
/// `g_access_t`: open/close deltas on one of the geom's providers; topology lock held.
pub type g_access_t = unsafe extern "C" fn(pp: *mut g_provider, dr: c_int, dw: c_int, de: c_int) -> c_int;
/// `g_dumpconf_t`: write the XML configuration of the geom, a consumer or a provider.
pub type g_dumpconf_t = unsafe extern "C" fn(
    sb: *mut sbuf,
    indent: *const c_char,
    gp: *mut g_geom,
    cp: *mut g_consumer,
    pp: *mut g_provider,
);
/// `g_ioctl_t`: an ioctl on the provider's device node.
pub type g_ioctl_t =
    unsafe extern "C" fn(pp: *mut g_provider, cmd: u_long, data: *mut c_void, fflag: c_int, td: *mut thread) -> c_int;
/// `g_provgone_t`: a provider has been destroyed.
pub type g_provgone_t = unsafe extern "C" fn(pp: *mut g_provider);
/// `g_resize_t`: the provider below changed size.
pub type g_resize_t = unsafe extern "C" fn(cp: *mut g_consumer);
/// `g_event_t`: an event callback; `flag` is 0, or `EV_CANCEL` when the event is cancelled.
pub type g_event_t = unsafe extern "C" fn(arg: *mut c_void, flag: c_int);

/// `g_taste` flags: an ordinary taste.
pub const G_TF_NORMAL: c_int = 0;
/// `g_taste` flags: taste even if the provider looks in use.
pub const G_TF_INSIST: c_int = 1;
/// `g_taste` flags: transparent taste.
pub const G_TF_TRANSPARENT: c_int = 2;

/// `struct g_class`: a GEOM class, its methods, and the defaults its geoms inherit.
#[repr(C)]
pub struct g_class {
    /// Class name (`"STRIPE"`).
    pub name: *const c_char,
    /// Must be `G_VERSION`.
    pub version: u_int,
    /// Spare.
    pub spare0: u_int,
    /// Taste method.
    pub taste: Option<g_taste_t>,
    /// FreeBSD 14 only: the `config` slot.
    #[cfg(freebsd_release = "14")]
    pub config: Option<g_config_t>,
    /// geom(8) request handler.
    pub ctlreq: Option<g_ctl_req_t>,
    /// Called when the class is loaded.
    pub init: Option<g_init_t>,
    /// Called when the class is unloaded.
    pub fini: Option<g_fini_t>,
    /// Asked to destroy each geom when the class unloads.
    pub destroy_geom: Option<g_ctl_destroy_geom_t>,
    /// Default `start` for new geoms.
    pub start: Option<g_start_t>,
    /// Default `spoiled` for new geoms.
    pub spoiled: Option<g_spoiled_t>,
    /// Default `attrchanged` for new geoms.
    pub attrchanged: Option<g_attrchanged_t>,
    /// Default `dumpconf` for new geoms.
    pub dumpconf: Option<g_dumpconf_t>,
    /// Default `access` for new geoms.
    pub access: Option<g_access_t>,
    /// Default `orphan` for new geoms.
    pub orphan: Option<g_orphan_t>,
    /// Default `ioctl` for new geoms.
    pub ioctl: Option<g_ioctl_t>,
    /// Default `providergone` for new geoms.
    pub providergone: Option<g_provgone_t>,
    /// Default `resize` for new geoms.
    pub resize: Option<g_resize_t>,
    /// Spare.
    pub spare1: *mut c_void,
    /// Spare.
    pub spare2: *mut c_void,
    /// GEOM-private: linkage on the list of loaded classes.
    pub class: ListEntry<g_class>,
    /// GEOM-private: this class's geoms.
    pub geom: ListHead<g_geom>,
}

impl g_class {
    /// A class named `name` with `G_VERSION` and no methods: the base to fill in with struct
    /// update syntax (`g_class { start: Some(f), ..g_class::named(c"X") }`).
    pub const fn named(name: &'static core::ffi::CStr) -> g_class {
        g_class {
            name: name.as_ptr(),
            version: G_VERSION,
            spare0: 0,
            taste: None,
            #[cfg(freebsd_release = "14")]
            config: None,
            ctlreq: None,
            init: None,
            fini: None,
            destroy_geom: None,
            start: None,
            spoiled: None,
            attrchanged: None,
            dumpconf: None,
            access: None,
            orphan: None,
            ioctl: None,
            providergone: None,
            resize: None,
            spare1: core::ptr::null_mut(),
            spare2: core::ptr::null_mut(),
            class: ListEntry::new(),
            geom: ListHead::new(),
        }
    }
}

// sys/geom/geom.h: common head of struct g_class.
static_assertions::const_assert_eq!(core::mem::offset_of!(g_class, name), 0);
static_assertions::const_assert_eq!(core::mem::offset_of!(g_class, version), 8);
static_assertions::const_assert_eq!(core::mem::offset_of!(g_class, spare0), 12);
static_assertions::const_assert_eq!(core::mem::offset_of!(g_class, taste), 16);

macro_rules! class_offsets {
    ($($field:ident = $off:expr),* $(,)?) => {
        $(static_assertions::const_assert_eq!(core::mem::offset_of!(g_class, $field), $off);)*
    };
}

// sys/geom/geom.h @ f8167e04 (stable/14 era): `config` after `taste`, 176 bytes.
#[cfg(freebsd_release = "14")]
mod class_layout_14 {
    use super::*;
    static_assertions::assert_eq_size!(g_class, [u8; 176]);
    class_offsets! {
        config = 24, ctlreq = 32, init = 40, fini = 48, destroy_geom = 56, start = 64,
        spoiled = 72, attrchanged = 80, dumpconf = 88, access = 96, orphan = 104, ioctl = 112,
        providergone = 120, resize = 128, spare1 = 136, spare2 = 144, class = 152, geom = 168,
    }
}

// sys/geom/geom.h @ 6d13bb0e (2024 main, the 15 branch) and @ e4452d45 (16-CURRENT): no
// `config`, 168 bytes.
#[cfg(not(freebsd_release = "14"))]
mod class_layout_15_16 {
    use super::*;
    static_assertions::assert_eq_size!(g_class, [u8; 168]);
    class_offsets! {
        ctlreq = 24, init = 32, fini = 40, destroy_geom = 48, start = 56, spoiled = 64,
        attrchanged = 72, dumpconf = 80, access = 88, orphan = 96, ioctl = 104,
        providergone = 112, resize = 120, spare1 = 128, spare2 = 136, class = 144, geom = 160,
    }
}

/// `G_GEOM_WITHER`: the geom is being torn down.
pub const G_GEOM_WITHER: u32 = 0x01;
/// `G_GEOM_VOLATILE_BIO`: the geom may change its bios' caller fields while they are in
/// flight (DIAGNOSTIC kernels then skip the check that they are untouched).
pub const G_GEOM_VOLATILE_BIO: u32 = 0x02;
/// `G_GEOM_IN_ACCESS`: an access call on this geom is in progress (GEOM-internal).
pub const G_GEOM_IN_ACCESS: u32 = 0x04;
/// `G_GEOM_ACCESS_WAIT`: an access call waits for the one in progress (GEOM-internal).
pub const G_GEOM_ACCESS_WAIT: u32 = 0x08;

/// `struct g_geom`: one instance of a class, with its consumers below and providers above.
#[repr(C)]
pub struct g_geom {
    /// Name, owned by GEOM.
    pub name: *mut c_char,
    /// The class this geom belongs to.
    pub class: *mut g_class,
    /// Linkage on the class's list of geoms.
    pub geom: ListEntry<g_geom>,
    /// This geom's consumers.
    pub consumer: ListHead<g_consumer>,
    /// This geom's providers.
    pub provider: ListHead<g_provider>,
    /// Linkage on the global, rank-ordered list of geoms.
    pub geoms: TailqEntry<g_geom>,
    /// Depth in the graph (1 for geoms with no attached consumers).
    pub rank: c_int,
    /// I/O entry point for the geom's providers.
    pub start: Option<g_start_t>,
    /// Spoil notification for the geom's consumers.
    pub spoiled: Option<g_spoiled_t>,
    /// Attribute-change notification for the geom's consumers.
    pub attrchanged: Option<g_attrchanged_t>,
    /// XML configuration dump.
    pub dumpconf: Option<g_dumpconf_t>,
    /// Access (open/close) method for the geom's providers.
    pub access: Option<g_access_t>,
    /// Orphan notification for the geom's consumers.
    pub orphan: Option<g_orphan_t>,
    /// ioctl on the geom's providers.
    pub ioctl: Option<g_ioctl_t>,
    /// A provider of this geom was destroyed.
    pub providergone: Option<g_provgone_t>,
    /// The provider below a consumer changed size.
    pub resize: Option<g_resize_t>,
    /// Spare.
    pub spare0: *mut c_void,
    /// Spare.
    pub spare1: *mut c_void,
    /// Class-private state.
    pub softc: *mut c_void,
    /// `G_GEOM_*` flags.
    pub flags: c_uint,
}

/// `G_CF_SPOILED`: the consumer's provider was opened for writing by someone else.
pub const G_CF_SPOILED: c_int = 0x1;
/// `G_CF_ORPHAN`: the consumer's provider is gone.
pub const G_CF_ORPHAN: c_int = 0x4;
/// `G_CF_DIRECT_SEND`: requests may be sent by calling the provider's start directly.
pub const G_CF_DIRECT_SEND: c_int = 0x10;
/// `G_CF_DIRECT_RECEIVE`: completions may be delivered in the completing thread.
pub const G_CF_DIRECT_RECEIVE: c_int = 0x20;

/// `struct g_consumer`: a geom's attachment to a provider below it.
#[repr(C)]
pub struct g_consumer {
    /// The geom that owns this consumer.
    pub geom: *mut g_geom,
    /// Linkage on the owning geom's consumer list.
    pub consumer: ListEntry<g_consumer>,
    /// The provider attached to, or NULL.
    pub provider: *mut g_provider,
    /// Linkage on the provider's consumer list.
    pub consumers: ListEntry<g_consumer>,
    /// Read opens held.
    pub acr: c_int,
    /// Write opens held.
    pub acw: c_int,
    /// Exclusive opens held.
    pub ace: c_int,
    /// `G_CF_*` flags.
    pub flags: c_int,
    /// I/O statistics.
    pub stat: *mut devstat,
    /// Requests started through this consumer (INVARIANTS kernels).
    pub nstart: u_int,
    /// Requests ended through this consumer (INVARIANTS kernels).
    pub nend: u_int,
    /// Class-private.
    pub private: *mut c_void,
    /// Class-private.
    pub index: u_int,
}

/// `G_PF_WITHER`: the provider is being destroyed.
pub const G_PF_WITHER: u_int = 0x2;
/// `G_PF_ORPHAN`: the provider has been orphaned.
pub const G_PF_ORPHAN: u_int = 0x4;
/// `G_PF_ACCEPT_UNMAPPED`: start can take `BIO_UNMAPPED` bios.
pub const G_PF_ACCEPT_UNMAPPED: u_int = 0x8;
/// `G_PF_DIRECT_SEND`: start may complete requests in the caller's thread.
pub const G_PF_DIRECT_SEND: u_int = 0x10;
/// `G_PF_DIRECT_RECEIVE`: start may be called from the issuer's thread.
pub const G_PF_DIRECT_RECEIVE: u_int = 0x20;

/// `struct g_geom_alias`: an extra device name of a provider.
#[repr(C)]
pub struct g_geom_alias {
    /// Linkage on the provider's alias list.
    pub ga_next: ListEntry<g_geom_alias>,
    /// The alias.
    pub ga_alias: *const c_char,
}

/// `struct g_provider`: a storage device a geom offers to the geoms above it.
#[repr(C)]
pub struct g_provider {
    /// Name (also the device name under /dev).
    pub name: *mut c_char,
    /// Linkage on the owning geom's provider list.
    pub provider: ListEntry<g_provider>,
    /// The geom that owns this provider.
    pub geom: *mut g_geom,
    /// Consumers attached to this provider.
    pub consumers: ListHead<g_consumer>,
    /// Sum of the consumers' read opens.
    pub acr: c_int,
    /// Sum of the consumers' write opens.
    pub acw: c_int,
    /// Sum of the consumers' exclusive opens.
    pub ace: c_int,
    /// Non-zero: every new request and open fails with this errno. Starts as `ENXIO`.
    pub error: c_int,
    /// Linkage on GEOM's orphan queue.
    pub orphan: TailqEntry<g_provider>,
    /// Size in bytes.
    pub mediasize: off_t,
    /// Sector size in bytes; I/O must be aligned to it.
    pub sectorsize: u_int,
    /// Stripe size hint.
    pub stripesize: off_t,
    /// Stripe offset hint.
    pub stripeoffset: off_t,
    /// I/O statistics.
    pub stat: *mut devstat,
    /// Spare (was `nstart`).
    pub spare1: u_int,
    /// Spare (was `nend`).
    pub spare2: u_int,
    /// `G_PF_*` flags.
    pub flags: u_int,
    /// Extra device names.
    pub aliases: ListHead<g_geom_alias>,
    /// Class-private.
    pub private: *mut c_void,
    /// Class-private.
    pub index: u_int,
}

macro_rules! offsets {
    ($ty:ident: $($field:ident = $off:expr),* $(,)?) => {
        $(static_assertions::const_assert_eq!(core::mem::offset_of!($ty, $field), $off);)*
    };
}

// sys/geom/geom.h @ e4452d45, unchanged from stable/14 (f8167e04) through 16-CURRENT.
static_assertions::assert_eq_size!(g_geom, [u8; 176]);
offsets! { g_geom:
    name = 0, class = 8, geom = 16, consumer = 32, provider = 40, geoms = 48, rank = 64,
    start = 72, spoiled = 80, attrchanged = 88, dumpconf = 96, access = 104, orphan = 112,
    ioctl = 120, providergone = 128, resize = 136, spare0 = 144, spare1 = 152, softc = 160,
    flags = 168,
}
static_assertions::assert_eq_size!(g_consumer, [u8; 96]);
offsets! { g_consumer:
    geom = 0, consumer = 8, provider = 24, consumers = 32, acr = 48, acw = 52, ace = 56,
    flags = 60, stat = 64, nstart = 72, nend = 76, private = 80, index = 88,
}
static_assertions::assert_eq_size!(g_provider, [u8; 152]);
offsets! { g_provider:
    name = 0, provider = 8, geom = 24, consumers = 32, acr = 40, acw = 44, ace = 48,
    error = 52, orphan = 56, mediasize = 72, sectorsize = 80, stripesize = 88,
    stripeoffset = 96, stat = 104, spare1 = 112, spare2 = 116, flags = 120, aliases = 128,
    private = 136, index = 144,
}
static_assertions::assert_eq_size!(g_geom_alias, [u8; 24]);

/// `EV_CANCEL`: an event callback is being called because its event was cancelled.
pub const EV_CANCEL: c_int = 1;

/// `G_STATE_FAILED` (RAID-like classes).
pub const G_STATE_FAILED: c_int = 0;
/// `G_STATE_REBUILD`.
pub const G_STATE_REBUILD: c_int = 1;
/// `G_STATE_RESYNC`.
pub const G_STATE_RESYNC: c_int = 2;
/// `G_STATE_ACTIVE`.
pub const G_STATE_ACTIVE: c_int = 3;

/// `g_trace` level: topology changes.
pub const G_T_TOPOLOGY: c_int = 1;
/// `g_trace` level: bios.
pub const G_T_BIO: c_int = 2;
/// `g_trace` level: access calls.
pub const G_T_ACCESS: c_int = 4;
/// `kern.geom.debugflags`: allow writing to open disks ("foot-shooting").
pub const G_F_FOOTSHOOTING: c_int = 0x10;
/// `kern.geom.debugflags`: disk ioctl tracing.
pub const G_F_DISKIOCTL: c_int = 0x40;
/// `kern.geom.debugflags`: dump gctl requests.
pub const G_F_CTLDUMP: c_int = 0x80;

/// The linkage fields of GEOM's objects, as functions from an object pointer to its entry:
/// what [`super::queue::list_iter`] and friends take to walk `LIST`s and `TAILQ`s. They only
/// compute addresses (`wrapping_byte_add`), so they are safe; dereferencing the result is not.
pub mod links {
    use super::super::bio_h::bio;
    use super::super::queue::{ListEntry, TailqEntry};
    use super::{g_class, g_consumer, g_geom, g_geom_alias, g_provider};
    use core::mem::offset_of;

    /// `mp->class`: the class on the list of loaded classes.
    pub fn class_in_classes(mp: *mut g_class) -> *mut ListEntry<g_class> {
        mp.wrapping_byte_add(offset_of!(g_class, class)).cast()
    }
    /// `gp->geom`: the geom on its class's list.
    pub fn geom_in_class(gp: *mut g_geom) -> *mut ListEntry<g_geom> {
        gp.wrapping_byte_add(offset_of!(g_geom, geom)).cast()
    }
    /// `gp->geoms`: the geom on the global rank-ordered queue.
    pub fn geom_in_geoms(gp: *mut g_geom) -> *mut TailqEntry<g_geom> {
        gp.wrapping_byte_add(offset_of!(g_geom, geoms)).cast()
    }
    /// `cp->consumer`: the consumer on its geom's list.
    pub fn consumer_in_geom(cp: *mut g_consumer) -> *mut ListEntry<g_consumer> {
        cp.wrapping_byte_add(offset_of!(g_consumer, consumer)).cast()
    }
    /// `cp->consumers`: the consumer on its provider's list.
    pub fn consumer_in_provider(cp: *mut g_consumer) -> *mut ListEntry<g_consumer> {
        cp.wrapping_byte_add(offset_of!(g_consumer, consumers)).cast()
    }
    /// `pp->provider`: the provider on its geom's list.
    pub fn provider_in_geom(pp: *mut g_provider) -> *mut ListEntry<g_provider> {
        pp.wrapping_byte_add(offset_of!(g_provider, provider)).cast()
    }
    /// `ga->ga_next`: an alias on its provider's list.
    pub fn alias_in_provider(ga: *mut g_geom_alias) -> *mut ListEntry<g_geom_alias> {
        ga.wrapping_byte_add(offset_of!(g_geom_alias, ga_next)).cast()
    }
    /// `bp->bio_queue`: a bio on a bio queue.
    pub fn bio_in_queue(bp: *mut bio) -> *mut TailqEntry<bio> {
        bp.wrapping_byte_add(offset_of!(bio, bio_queue)).cast()
    }
}
