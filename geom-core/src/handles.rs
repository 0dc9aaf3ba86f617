//! Handles on GEOM's objects: [`Provider`], [`Consumer`] and [`GeomRef`].
//!
//! A handle is a pointer to an object GEOM owns. Changing the topology takes a
//! [`Topology`] token; the I/O path only reads fields GEOM does not change while I/O is
//! possible (a provider's sizes, a consumer's attachment).
//!
//! Invariant: a handle is only used while its object is alive. GEOM keeps that true for the
//! handles a class is given (the object of the method being called) and for the consumers
//! and providers of a geom until the class withers it; a class must not keep handles of
//! objects it does not own past the call that gave them.

use core::ffi::CStr;
use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::class::GeomClass;
use crate::context::{SleepCtx, Topology};
use crate::error::{Errno, Result};
use crate::sys::{self, g_consumer, g_geom, g_provider};

/// A provider: a storage device offered by some geom.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Provider(NonNull<g_provider>);

// SAFETY: providers are shared kernel objects; the fields read without the topology lock
// (sizes, name) do not change while I/O is possible, and everything else needs the token.
unsafe impl Send for Provider {}
// SAFETY: as above.
unsafe impl Sync for Provider {}

/// A consumer: one of our geom's attachments to a provider below.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Consumer(NonNull<g_consumer>);

// SAFETY: as for Provider; sending I/O through a consumer from any thread is what GEOM does.
unsafe impl Send for Consumer {}
// SAFETY: as above.
unsafe impl Sync for Consumer {}

impl Provider {
    /// # Safety
    /// `pp` is a live provider.
    pub unsafe fn from_raw(pp: *mut g_provider) -> Provider {
        // SAFETY: live objects are non-null (caller).
        Provider(unsafe { NonNull::new_unchecked(pp) })
    }

    /// The raw pointer.
    pub fn as_ptr(self) -> *mut g_provider {
        self.0.as_ptr()
    }

    fn raw(&self) -> &g_provider {
        // SAFETY: the handle invariant keeps the provider alive.
        unsafe { self.0.as_ref() }
    }

    /// Its name (`"md0"`, `"stripe/st0"`).
    pub fn name(&self) -> &CStr {
        // SAFETY: GEOM's provider names are NUL-terminated and live as long as the provider.
        unsafe { CStr::from_ptr(self.raw().name) }
    }

    /// Size in bytes.
    pub fn mediasize(&self) -> i64 {
        self.raw().mediasize
    }

    /// Sector size in bytes.
    pub fn sectorsize(&self) -> u32 {
        self.raw().sectorsize
    }

    /// Stripe size hint.
    pub fn stripesize(&self) -> i64 {
        self.raw().stripesize
    }

    /// Stripe offset hint.
    pub fn stripeoffset(&self) -> i64 {
        self.raw().stripeoffset
    }

    /// Open counts (read, write, exclusive).
    pub fn access_counts(&self, _topo: &Topology) -> (i32, i32, i32) {
        let p = self.raw();
        (p.acr, p.acw, p.ace)
    }

    /// Is anyone holding it open?
    pub fn is_open(&self, topo: &Topology) -> bool {
        self.access_counts(topo) != (0, 0, 0)
    }

    /// The provider's error (0: usable).
    pub fn error(&self) -> i32 {
        self.raw().error
    }

    /// The geom that owns it.
    pub fn geom_ptr(&self) -> *mut g_geom {
        self.raw().geom
    }

    /// The name of the class of the geom that owns it.
    pub fn class_name(&self, _topo: &Topology) -> &CStr {
        // SAFETY: a live provider's geom and class are live, with NUL-terminated names.
        unsafe { CStr::from_ptr((*(*self.raw().geom).class).name) }
    }

    /// Set size, sector size and stripe hints (before [`Provider::set_ready`]).
    pub fn set_geometry(
        &self,
        _topo: &mut Topology,
        mediasize: i64,
        sectorsize: u32,
        stripesize: i64,
        stripeoffset: i64,
    ) {
        // SAFETY: topology lock held (token); GEOM lets the owner set these while publishing.
        unsafe {
            let p = self.0.as_ptr();
            (*p).mediasize = mediasize;
            (*p).sectorsize = sectorsize;
            (*p).stripesize = stripesize;
            (*p).stripeoffset = stripeoffset;
        }
    }

    /// Allow direct dispatch both ways (`G_PF_DIRECT_SEND | G_PF_DIRECT_RECEIVE`): start may
    /// be called in the issuer's thread and may complete requests in it. Only for geoms
    /// whose start and done are fine being called from any thread (the safe API's are).
    pub fn set_direct(&self, _topo: &mut Topology) {
        // SAFETY: topology lock held (token).
        unsafe { (*self.0.as_ptr()).flags |= sys::G_PF_DIRECT_SEND | sys::G_PF_DIRECT_RECEIVE };
    }

    /// Does it take unmapped requests (`G_PF_ACCEPT_UNMAPPED`: data as a page array, not
    /// mapped into kernel memory)?
    pub fn accepts_unmapped(&self) -> bool {
        self.raw().flags & sys::G_PF_ACCEPT_UNMAPPED != 0
    }

    /// Say whether our provider takes unmapped requests. Only for geoms that never touch a
    /// request's data themselves (clones made by [`crate::Fanout::add`] follow the page
    /// array; bounce buffers and [`crate::Request::data`] need mapped requests).
    pub fn set_accept_unmapped(&self, _topo: &mut Topology, on: bool) {
        // SAFETY: topology lock held (token); the owner sets its provider's flags.
        unsafe {
            let p = self.0.as_ptr();
            if on {
                (*p).flags |= sys::G_PF_ACCEPT_UNMAPPED;
            } else {
                (*p).flags &= !sys::G_PF_ACCEPT_UNMAPPED;
            }
        }
    }

    /// `g_error_provider(pp, 0)`: open for business.
    pub fn set_ready(&self, _topo: &mut Topology) {
        // SAFETY: live provider (invariant).
        unsafe { sys::g_error_provider(self.0.as_ptr(), 0) };
    }

    /// `g_error_provider(pp, e)`: fail new requests and opens with `e`.
    pub fn set_error(&self, _topo: &mut Topology, e: Errno) {
        // SAFETY: live provider (invariant).
        unsafe { sys::g_error_provider(self.0.as_ptr(), e.get()) };
    }

    /// `g_wither_provider`.
    pub fn wither(&self, _topo: &mut Topology, e: Errno) {
        // SAFETY: topology lock held; live provider.
        unsafe { sys::g_wither_provider(self.0.as_ptr(), e.get()) };
    }

    /// `g_provider_by_name`.
    pub fn by_name(_topo: &Topology, name: &CStr) -> Option<Provider> {
        // SAFETY: topology lock held (token); the name is a valid C string.
        let pp = unsafe { sys::g_provider_by_name(name.as_ptr()) };
        NonNull::new(pp).map(Provider)
    }
}

impl Consumer {
    /// # Safety
    /// `cp` is a live consumer.
    pub unsafe fn from_raw(cp: *mut g_consumer) -> Consumer {
        // SAFETY: live objects are non-null (caller).
        Consumer(unsafe { NonNull::new_unchecked(cp) })
    }

    /// The raw pointer.
    pub fn as_ptr(self) -> *mut g_consumer {
        self.0.as_ptr()
    }

    fn raw(&self) -> &g_consumer {
        // SAFETY: the handle invariant keeps the consumer alive.
        unsafe { self.0.as_ref() }
    }

    /// The provider it is attached to.
    pub fn provider(&self) -> Option<Provider> {
        NonNull::new(self.raw().provider).map(Provider)
    }

    /// Open counts (read, write, exclusive).
    pub fn access_counts(&self, _topo: &Topology) -> (i32, i32, i32) {
        let c = self.raw();
        (c.acr, c.acw, c.ace)
    }

    /// Has its provider gone away?
    pub fn is_orphan(&self, _topo: &Topology) -> bool {
        self.raw().flags & sys::G_CF_ORPHAN != 0
    }

    /// A class-private number (`cp->index`), e.g. a component's position.
    pub fn index(&self) -> u32 {
        self.raw().index
    }

    /// Set the class-private number.
    pub fn set_index(&self, _topo: &mut Topology, index: u32) {
        // SAFETY: topology lock held (token).
        unsafe { (*self.0.as_ptr()).index = index };
    }

    /// `g_attach`.
    pub fn attach(&self, _topo: &mut Topology, pp: Provider) -> Result<()> {
        // SAFETY: topology lock held; both objects live.
        Errno::result(unsafe { sys::g_attach(self.0.as_ptr(), pp.as_ptr()) })
    }

    /// `g_detach` (closed, no I/O outstanding).
    pub fn detach(&self, _topo: &mut Topology) {
        // SAFETY: topology lock held; live consumer.
        unsafe { sys::g_detach(self.0.as_ptr()) };
    }

    /// `g_destroy_consumer` (detached). The handle must not be used afterwards.
    pub fn destroy(self, _topo: &mut Topology) {
        // SAFETY: topology lock held; the handle is consumed.
        unsafe { sys::g_destroy_consumer(self.0.as_ptr()) };
    }

    /// `g_access`: change the open counts by the deltas.
    pub fn access(&self, _topo: &mut Topology, dr: i32, dw: i32, de: i32) -> Result<()> {
        // SAFETY: topology lock held; live, attached consumer.
        Errno::result(unsafe { sys::g_access(self.0.as_ptr(), dr, dw, de) })
    }

    /// Allow direct dispatch both ways (`G_CF_DIRECT_SEND | G_CF_DIRECT_RECEIVE`).
    pub fn set_direct(&self, _topo: &mut Topology) {
        // SAFETY: topology lock held (token).
        unsafe { (*self.0.as_ptr()).flags |= sys::G_CF_DIRECT_SEND | sys::G_CF_DIRECT_RECEIVE };
    }

    /// `g_read_data`: read `length` bytes at `offset` synchronously. Sleeps.
    pub fn read_data(&self, _cx: &SleepCtx, offset: i64, length: i64) -> Result<GeomBuf> {
        let mut error = 0;
        // SAFETY: the consumer is attached and open for reading (g_io_check reports
        // otherwise); we may sleep (token).
        let p = unsafe { sys::g_read_data(self.0.as_ptr(), offset, length, &mut error) };
        match NonNull::new(p.cast::<u8>()) {
            Some(ptr) => Ok(GeomBuf { ptr, len: length as usize }),
            None => Err(Errno::new(error).unwrap_or(Errno::EIO)),
        }
    }

    /// `g_write_data`: write `data` at `offset` synchronously. Sleeps.
    pub fn write_data(&self, _cx: &SleepCtx, offset: i64, data: &[u8]) -> Result<()> {
        // SAFETY: GEOM only reads a WRITE's buffer; we may sleep (token).
        Errno::result(unsafe { sys::g_write_data(self.0.as_ptr(), offset, data.as_ptr() as *mut _, data.len() as i64) })
    }

    /// `g_io_flush`. Sleeps.
    pub fn flush(&self, _cx: &SleepCtx) -> Result<()> {
        // SAFETY: we may sleep (token).
        Errno::result(unsafe { sys::g_io_flush(self.0.as_ptr()) })
    }
}

/// A buffer `g_read_data` returned, in GEOM's malloc type; freed with `g_free` on drop.
pub struct GeomBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: plain memory owned by this value.
unsafe impl Send for GeomBuf {}

impl core::ops::Deref for GeomBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: g_read_data filled len bytes at ptr, owned by us.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for GeomBuf {
    fn drop(&mut self) {
        // SAFETY: the buffer came from malloc(M_GEOM) in g_read_data (`g_free` is free with
        // M_GEOM).
        unsafe { sys::platform::geom_rs_free(self.ptr.as_ptr().cast(), (&raw mut sys::M_GEOM).cast()) };
    }
}

/// One of a class's geoms, typed by the class so its softc can be reached.
pub struct GeomRef<C: GeomClass> {
    gp: NonNull<g_geom>,
    _class: PhantomData<fn() -> C>,
}

impl<C: GeomClass> Clone for GeomRef<C> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<C: GeomClass> Copy for GeomRef<C> {}

// SAFETY: as for Provider.
unsafe impl<C: GeomClass> Send for GeomRef<C> {}
// SAFETY: as above.
unsafe impl<C: GeomClass> Sync for GeomRef<C> {}

impl<C: GeomClass> GeomRef<C> {
    /// # Safety
    /// `gp` is a live geom of class `C` whose softc (if set) is a `C::Softc` made by
    /// [`crate::Class::new_geom`].
    pub unsafe fn from_raw(gp: *mut g_geom) -> Self {
        // SAFETY: caller's contract.
        GeomRef { gp: unsafe { NonNull::new_unchecked(gp) }, _class: PhantomData }
    }

    /// The raw pointer.
    pub fn as_ptr(self) -> *mut g_geom {
        self.gp.as_ptr()
    }

    /// Its name.
    pub fn name(&self) -> &CStr {
        // SAFETY: a live geom's name is a NUL-terminated string GEOM owns.
        unsafe { CStr::from_ptr((*self.gp.as_ptr()).name) }
    }

    /// Its state, if it has been given one.
    pub fn softc(&self) -> Option<&C::Softc> {
        // SAFETY: the softc pointer is NULL or a C::Softc owned by the geom (from_raw).
        unsafe { ((*self.gp.as_ptr()).softc as *const C::Softc).as_ref() }
    }

    /// Is it being torn down?
    pub fn is_withering(&self, _topo: &Topology) -> bool {
        // SAFETY: live geom.
        unsafe { (*self.gp.as_ptr()).flags & sys::G_GEOM_WITHER != 0 }
    }

    /// Its consumers.
    pub fn consumers<'t>(&self, _topo: &'t Topology) -> impl Iterator<Item = Consumer> + 't {
        // SAFETY: topology lock held for the token's borrow; the list links live consumers.
        unsafe {
            sys::list_iter(&raw const (*self.gp.as_ptr()).consumer, sys::links::consumer_in_geom)
                .map(|cp| Consumer(NonNull::new_unchecked(cp)))
        }
    }

    /// Its providers.
    pub fn providers<'t>(&self, _topo: &'t Topology) -> impl Iterator<Item = Provider> + 't {
        // SAFETY: as above.
        unsafe {
            sys::list_iter(&raw const (*self.gp.as_ptr()).provider, sys::links::provider_in_geom)
                .map(|pp| Provider(NonNull::new_unchecked(pp)))
        }
    }

    /// `g_new_consumer`.
    pub fn new_consumer(&self, _topo: &mut Topology) -> Consumer {
        // SAFETY: topology lock held; the class always has an orphan method (the framework
        // installs one), so GEOM accepts the consumer.
        unsafe { Consumer(NonNull::new_unchecked(sys::g_new_consumer(self.gp.as_ptr()))) }
    }

    /// `g_new_providerf(gp, "%s", name)`: a provider in error `ENXIO` until
    /// [`Provider::set_ready`].
    pub fn new_provider(&self, _topo: &mut Topology, name: &CStr) -> Provider {
        // SAFETY: topology lock held; the framework gives every geom start and access.
        unsafe {
            Provider(NonNull::new_unchecked(sys::g_new_providerf(self.gp.as_ptr(), c"%s".as_ptr(), name.as_ptr())))
        }
    }

    /// `g_wither_geom`: orphan the providers; GEOM destroys the geom once unused. A geom
    /// left without providers has its state dropped once the current topology event is over
    /// (nothing can reach it any more; see [`crate::class`]).
    pub fn wither(&self, _topo: &mut Topology, e: Errno) {
        // SAFETY: topology lock held; live geom.
        unsafe { sys::g_wither_geom(self.gp.as_ptr(), e.get()) };
        crate::class::release_softc_if_unreachable::<C>(self.gp.as_ptr());
    }

    /// `g_wither_geom_close`: close every consumer, then wither.
    pub fn wither_close(&self, _topo: &mut Topology, e: Errno) {
        // SAFETY: as above.
        unsafe { sys::g_wither_geom_close(self.gp.as_ptr(), e.get()) };
        crate::class::release_softc_if_unreachable::<C>(self.gp.as_ptr());
    }

    /// `g_destroy_geom` of a geom with no consumers or providers (a taste's scratch geom).
    pub fn destroy(self, _topo: &mut Topology) {
        crate::class::free_softc::<C>(self.gp.as_ptr());
        // SAFETY: topology lock held; the caller emptied the geom; the handle is consumed.
        unsafe { sys::g_destroy_geom(self.gp.as_ptr()) };
    }
}
