//! C scalar types as FreeBSD amd64 defines them (`sys/sys/_types.h`, `x86/_types.h`).

pub use core::ffi::{c_char, c_int, c_long, c_uint, c_ulong, c_ushort, c_void};

/// `off_t`: a signed 64-bit byte offset.
pub type off_t = i64;
/// `daddr_t`: a signed 64-bit block number.
pub type daddr_t = i64;
/// `u_int`.
pub type u_int = c_uint;
/// `u_long`.
pub type u_long = c_ulong;
/// `sbintime_t`: 32.32 fixed-point seconds.
pub type sbintime_t = i64;
/// `caddr_t`: a kernel virtual address.
pub type caddr_t = *mut c_char;

/// `struct bintime` (`sys/sys/_time.h`): seconds and a 64-bit binary fraction.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct bintime {
    /// Whole seconds.
    pub sec: i64,
    /// Fraction of a second in units of 2^-64 s.
    pub frac: u64,
}

static_assertions::assert_eq_size!(bintime, [u8; 16]);

/// Opaque kernel objects a GEOM class only ever holds pointers to.
macro_rules! opaque {
    ($($(#[$m:meta])* $name:ident;)*) => {$(
        $(#[$m])*
        #[repr(C)]
        pub struct $name {
            _opaque: [u8; 0],
            _pin: core::marker::PhantomData<(*mut u8, core::marker::PhantomPinned)>,
        }
    )*};
}

opaque! {
    /// `struct cdev`: a devfs device (the layer above GEOM; classes do not use it).
    cdev;
    /// `struct disk`: a disk driver's description (below `geom_disk` only).
    disk;
    /// `struct vm_page`: a physical page, for unmapped I/O.
    vm_page;
    /// `struct devstat`: I/O statistics.
    devstat;
    /// `struct thread`.
    thread;
    /// `struct proc`.
    proc_;
    /// `struct sbuf`: a growable string buffer, used only through the `sbuf_*` KPI.
    sbuf;
    /// `struct module`: a registered kernel module.
    module;
    /// `struct g_event`: a preallocated GEOM event.
    g_event;
    /// A UMA zone (`uma_zone_t` points at one).
    uma_zone;
}

/// `module_t`.
pub type module_t = *mut module;
/// `uma_zone_t`.
pub type uma_zone_t = *mut uma_zone;

/// A static that C code (the kernel, or `geom-host`) reads and writes through raw pointers:
/// a `g_class`, a `malloc_type`, a `sysinit` record, the topology lock.
///
/// Invariant: Rust code never forms a reference to the contents while the kernel may write
/// them; it only hands out the raw pointer from [`KernelCell::get`].
#[repr(transparent)]
pub struct KernelCell<T>(core::cell::UnsafeCell<T>);

// SAFETY: the contents are only reached through raw pointers handed to the kernel, which
// serialises its own accesses (the topology lock, module load order), as in C.
unsafe impl<T> Sync for KernelCell<T> {}
// SAFETY: as above; moving the cell moves plain C data.
unsafe impl<T> Send for KernelCell<T> {}

impl<T> KernelCell<T> {
    /// Wrap a value.
    pub const fn new(v: T) -> Self {
        KernelCell(core::cell::UnsafeCell::new(v))
    }

    /// The raw pointer the kernel gets.
    pub const fn get(&self) -> *mut T {
        self.0.get()
    }
}
