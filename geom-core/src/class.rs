//! A GEOM class in Rust: the [`GeomClass`] trait (the class: taste, ctlreq, init, fini,
//! destroy_geom) and the [`Geom`] trait (the state of one geom, its softc: start, access,
//! orphan, spoiled, dumpconf, resize), and the glue that turns them into FreeBSD's
//! `struct g_class`.
//!
//! [`class_table`] builds the `g_class`. Each C slot points at a generic `extern "C"`
//! trampoline that finds the Rust state and calls the trait method with the right context
//! token. Only the methods a class implements get a slot (the `IMPLEMENTED` constants, which
//! the `geom-macros` attribute fills from the methods written in the impl); the rest stay
//! NULL, as in a C class, except the few the framework itself needs: `init`/`fini` (to
//! create and free the class state), `orphan` (GEOM requires one for consumers; the default
//! withers the geom), `access` (`g_std_access` semantics) and `providergone` (to free a
//! geom's state when its last provider goes).

use alloc::boxed::Box;
use core::ffi::{c_char, c_int, c_void, CStr};
use core::ptr;

use crate::bio::{Children, Request};
use crate::context::{IoCtx, SleepCtx, Topology};
use crate::ctl::Gctl;
use crate::error::{Errno, Result};
use crate::handles::{Consumer, GeomRef, Provider};
use crate::metadata::{read_last_sector, with_opened, write_last_sector, MetaError, Metadata};
use crate::sys::{self, bio, g_class, g_consumer, g_geom, g_provider, gctl_req, sbuf};
use crate::userland::Userland;
use crate::verbs::{check_version, unknown_verb, Verbs};
use crate::xml::{Dump, XmlWriter};

bitflags::bitflags! {
    /// The methods a class implements, which decide which `g_class` slots are filled.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Methods: u32 {
        /// `GeomClass::taste`.
        const TASTE = 1 << 0;
        /// `GeomClass::ctlreq`.
        const CTLREQ = 1 << 1;
        /// `GeomClass::destroy_geom`.
        const DESTROY_GEOM = 1 << 2;
        /// `Geom::access`.
        const ACCESS = 1 << 3;
        /// `Geom::spoiled`.
        const SPOILED = 1 << 4;
        /// `Geom::dumpconf`.
        const DUMPCONF = 1 << 5;
        /// `Geom::resize`.
        const RESIZE = 1 << 6;
        /// `Geom::orphan` (the framework installs a default otherwise).
        const ORPHAN = 1 << 7;
        /// `GeomClass::fini`.
        const FINI = 1 << 8;
    }
}

impl Methods {
    /// The flags for a list of method names (what the `geom-macros` attribute passes).
    pub const fn from_names(names: &[&str]) -> Methods {
        let mut m = Methods::empty();
        let mut i = 0;
        while i < names.len() {
            let f = match names[i].as_bytes() {
                b"taste" => Methods::TASTE,
                b"ctlreq" => Methods::CTLREQ,
                b"destroy_geom" => Methods::DESTROY_GEOM,
                b"access" => Methods::ACCESS,
                b"spoiled" => Methods::SPOILED,
                b"dumpconf" => Methods::DUMPCONF,
                b"resize" => Methods::RESIZE,
                b"orphan" => Methods::ORPHAN,
                b"fini" => Methods::FINI,
                _ => Methods::empty(),
            };
            m = m.union(f);
            i += 1;
        }
        m
    }
}

/// A GEOM class. The implementing type is the class's own state (made by `init` when the
/// class is loaded, dropped after `fini`): the counterpart of a C class's file-level
/// variables, but one per loaded copy of the class.
pub trait GeomClass: Sized + Send + Sync + 'static {
    /// The class name (`c"STRIPE"`).
    const NAME: &'static CStr;
    /// The class version geom(8)'s class library sends with every request (`G_STRIPE_VERSION`
    /// and the like); a request with another one is refused before [`GeomClass::ctlreq`]
    /// runs. `None`: not checked.
    const VERSION: Option<u32> = None;
    /// The methods this impl writes (set by `#[geom_macros::geom_class]`).
    const IMPLEMENTED: Methods = Methods::empty();
    /// The state of one geom of this class (its softc).
    type Softc: Geom<Class = Self>;
    /// The class's verbs, declared once (see [`crate::verbs`]); [`crate::NoVerbs`] for none.
    type Verb: Verbs;

    /// The class is being loaded: make its state.
    fn init(topo: &mut Topology) -> Self;

    /// The class is being unloaded (after every geom is gone).
    fn fini(&self, _topo: &mut Topology) {}

    /// A provider appeared (or the class was loaded): look at it, and return the geom made
    /// for it, if any.
    fn taste(_cls: &Class<Self>, _topo: &mut Topology, _pp: Provider) -> Option<GeomRef<Self>> {
        None
    }

    /// A geom(8) request for this class, already checked and parsed into one of its verbs.
    /// Errors are reported with [`Gctl::error`].
    fn ctlreq(_cls: &Class<Self>, _topo: &mut Topology, _req: &mut Gctl<'_>, _verb: Self::Verb) {}

    /// A verb of the class library that runs in userland (`#[verb(local)]`: geom(8)'s
    /// `gc_func`, such as `label`, `clear` and `dump`), with the providers reached by name as
    /// `/dev` nodes. Report failures with [`Userland::error`]. The default refuses every verb.
    fn userland(u: &mut Userland<'_>, verb: Self::Verb) {
        u.error(format_args!("Unknown command: {}.", verb.name()));
    }

    /// The class is being unloaded: destroy `gp`, or refuse (`EBUSY` while it is open).
    fn destroy_geom(_cls: &Class<Self>, _topo: &mut Topology, _gp: GeomRef<Self>) -> Result<()> {
        Err(Errno::EOPNOTSUPP)
    }
}

/// The state of one geom (its softc) and the methods GEOM calls on it.
pub trait Geom: Sized + Send + Sync + 'static {
    /// The class it belongs to.
    type Class: GeomClass<Softc = Self>;
    /// The methods this impl writes (set by `#[geom_macros::geom_class]`).
    const IMPLEMENTED: Methods = Methods::empty();

    /// A request arrived at one of the geom's providers. Runs on `g_down` or in the issuer's
    /// thread; must not sleep (the [`IoCtx`] token allows nothing that does).
    fn start(&self, cx: &IoCtx, req: Request);

    /// Every clone of a request sent with [`Fanout::send_to_done`](crate::Fanout::send_to_done)
    /// is home: look at them (copy bounce buffers back, check what each did, change the
    /// result) before the framework delivers the request with the first error and frees the
    /// clones. Runs in done context; must not sleep. The default does nothing.
    fn done(&self, _cx: &IoCtx, _children: &mut Children<'_>) {}

    /// Open/close deltas on one of the geom's providers; an error refuses an open.
    fn access(
        &self,
        _topo: &mut Topology,
        _gp: GeomRef<Self::Class>,
        _pp: Provider,
        _dr: i32,
        _dw: i32,
        _de: i32,
    ) -> Result<()> {
        Ok(())
    }

    /// The provider under `cp` is going away. The default withers the geom.
    fn orphan(&self, topo: &mut Topology, gp: GeomRef<Self::Class>, _cp: Consumer) {
        gp.wither(topo, Errno::ENXIO);
    }

    /// Someone else opened the provider under `cp` for writing.
    ///
    /// Only a class that writes this method gets a `spoiled` slot: without one GEOM leaves
    /// the geom alone when it is spoiled, as it does a C class whose slot is NULL, so this
    /// default body is never called. A class whose geom depends on the bytes below (a
    /// label, a journal) writes it, usually to wither the geom and let a retaste decide.
    fn spoiled(&self, _topo: &mut Topology, _gp: GeomRef<Self::Class>, _cp: Consumer) {}

    /// Describe the geom, one of its consumers, or one of its providers in XML.
    fn dumpconf(&self, _topo: &Topology, _xml: &mut XmlWriter<'_>, _what: Dump) {}

    /// The provider under `cp` changed size.
    ///
    /// Only a class that writes this method gets a `resize` slot. Without one, GEOM orphans
    /// the consumer when the provider below shrinks (the geom's data may be gone) and
    /// ignores a growth, as for a C class whose slot is NULL; this default body is never
    /// called.
    fn resize(&self, _topo: &mut Topology, _gp: GeomRef<Self::Class>, _cp: Consumer) {}
}

/// A loaded class: its `g_class` and its state.
pub struct Class<C: GeomClass> {
    mp: *mut g_class,
    state: C,
}

// SAFETY: the state is Send + Sync (trait bound); mp is only used under the topology lock.
unsafe impl<C: GeomClass> Send for Class<C> {}
// SAFETY: as above.
unsafe impl<C: GeomClass> Sync for Class<C> {}

impl<C: GeomClass> core::ops::Deref for Class<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.state
    }
}

impl<C: GeomClass> Class<C> {
    /// The state of a loaded class.
    ///
    /// # Safety
    /// `mp` is a loaded `g_class` made from [`class_table::<C>`](class_table), and the
    /// topology lock is held while the reference is used.
    pub unsafe fn from_raw<'a>(mp: *mut g_class) -> Option<&'a Class<C>> {
        // SAFETY: caller's contract; spare1 is NULL before init and after fini.
        unsafe { ((*mp).spare1 as *const Class<C>).as_ref() }
    }

    /// The raw `g_class`.
    pub fn as_ptr(&self) -> *mut g_class {
        self.mp
    }

    /// `g_new_geomf(mp, "%s", name)` with `softc` as its state. Never fails (it may wait for
    /// memory, which the topology lock allows).
    pub fn new_geom(&self, _topo: &mut Topology, name: &CStr, softc: C::Softc) -> GeomRef<C> {
        // SAFETY: topology lock held (token); the class is loaded; the softc is boxed and
        // owned by the geom from here (freed by free_softc).
        unsafe {
            let gp = sys::g_new_geomf(self.mp, c"%s".as_ptr(), name.as_ptr());
            (*gp).softc = Box::into_raw(Box::new(softc)).cast();
            GeomRef::from_raw(gp)
        }
    }

    /// `g_new_geomf(mp, "%s", name)`, then `make` builds the state with the new geom in hand
    /// (to create and attach its consumers first). If `make` fails, the geom is destroyed
    /// (it must have no providers; consumers it created must be gone).
    pub fn new_geom_with(
        &self,
        topo: &mut Topology,
        name: &CStr,
        make: impl FnOnce(&mut Topology, GeomRef<C>) -> Result<C::Softc>,
    ) -> Result<GeomRef<C>> {
        // SAFETY: topology lock held (token); the class is loaded.
        let g = unsafe { GeomRef::from_raw(sys::g_new_geomf(self.mp, c"%s".as_ptr(), name.as_ptr())) };
        match make(topo, g) {
            Ok(softc) => {
                // SAFETY: the geom is ours and has no state yet; boxed state is owned by it.
                unsafe { (*g.as_ptr()).softc = Box::into_raw(Box::new(softc)).cast() };
                Ok(g)
            }
            Err(e) => {
                g.destroy(topo);
                Err(e)
            }
        }
    }

    /// This class's geoms.
    pub fn geoms<'t>(&self, _topo: &'t Topology) -> impl Iterator<Item = GeomRef<C>> + 't {
        let mp = self.mp;
        // SAFETY: topology lock held for the token's borrow; the class's list links its live
        // geoms, whose softcs are C::Softc (made by new_geom).
        unsafe { sys::list_iter(&raw const (*mp).geom, sys::links::geom_in_class).map(|gp| GeomRef::from_raw(gp)) }
    }

    /// A geom of this class by name (not withering).
    pub fn geom_by_name(&self, topo: &Topology, name: &CStr) -> Option<GeomRef<C>> {
        self.geoms(topo).find(|g| g.name() == name && !g.is_withering(topo))
    }

    /// Read `M` from the last sector of `pp` the way a C class's taste does: a scratch geom
    /// (`"<class>:taste"`, no state) with a consumer attached to `pp` and opened for reading,
    /// the topology lock dropped around the read, and everything torn down again before
    /// returning.
    pub fn taste_metadata<M: Metadata>(&self, topo: &mut Topology, pp: Provider) -> core::result::Result<M, MetaError> {
        self.with_scratch_consumer(topo, pp, (1, 0, 0), |cx, cp| read_last_sector::<M>(cx, cp))
    }

    /// Write `md` into the last sector of `pp` (a kernel-side `label`), through a scratch
    /// consumer opened for writing with the topology lock dropped around the write. Fails
    /// with `EPERM` while someone holds `pp` exclusively.
    pub fn store_metadata<M: Metadata>(
        &self,
        topo: &mut Topology,
        pp: Provider,
        md: &M,
    ) -> core::result::Result<(), MetaError> {
        self.with_scratch_consumer(topo, pp, (0, 1, 0), |cx, cp| write_last_sector(cx, cp, md))
    }

    /// Run `f` with a consumer of a stateless scratch geom attached to `pp` and opened with
    /// `acc`, the topology lock dropped; tear it all down afterwards. Orphan events for `pp`
    /// cannot be handled meanwhile (they run on the event thread, which is ours while a
    /// class method runs), so the scratch objects stay valid.
    fn with_scratch_consumer<R>(
        &self,
        topo: &mut Topology,
        pp: Provider,
        acc: (i32, i32, i32),
        f: impl FnOnce(&SleepCtx, Consumer) -> core::result::Result<R, MetaError>,
    ) -> core::result::Result<R, MetaError> {
        // SAFETY: topology lock held (token); the class is loaded. The scratch geom has no
        // softc, so a request reaching it would fail with ENXIO; it has no provider anyway.
        let gp = unsafe { sys::g_new_geomf(self.mp, c"%s:taste".as_ptr(), C::NAME.as_ptr()) };
        // SAFETY: gp is our live geom of class C, without state.
        let g = unsafe { GeomRef::<C>::from_raw(gp) };
        let cp = g.new_consumer(topo);
        let result = match cp.attach(topo, pp) {
            Err(e) => Err(MetaError::Io(e)),
            Ok(()) => {
                let r = with_opened(topo, cp, acc, f);
                cp.detach(topo);
                r
            }
        };
        cp.destroy(topo);
        g.destroy(topo);
        result
    }
}

/// Free a geom's softc (when the geom is destroyed or its last provider is gone).
pub(crate) fn free_softc<C: GeomClass>(gp: *mut g_geom) {
    // SAFETY: the softc is NULL or the Box made by new_geom; it is freed once and the pointer
    // cleared, under the topology lock.
    unsafe {
        let sc = core::mem::replace(&mut (*gp).softc, ptr::null_mut());
        if !sc.is_null() {
            drop(Box::from_raw(sc.cast::<C::Softc>()));
        }
    }
}

/// A withering geom with no provider left can no longer be reached by a request, so its
/// softc can go. The method that withered it may still hold `&Softc`, though, so the softc is
/// unhooked from the geom now (later events see none) and dropped by an event of its own,
/// which runs after the current one.
pub(crate) fn release_softc_if_unreachable<C: GeomClass>(gp: *mut g_geom) {
    // SAFETY: called under the topology lock right after g_wither_geom on our live geom; the
    // softc is NULL or the Box made by new_geom, unhooked once.
    unsafe {
        if (*gp).flags & sys::G_GEOM_WITHER == 0 || !(*gp).provider.is_empty() || (*gp).softc.is_null() {
            return;
        }
        let sc = core::mem::replace(&mut (*gp).softc, ptr::null_mut());
        let posted = sys::g_post_event(drop_softc_event::<C>, sc, sys::M_WAITOK, ptr::null_mut::<c_void>());
        if posted != 0 {
            // The event could not be queued: leak rather than free under a live borrow.
            crate::kprintln!("GEOM: a withered geom's state could not be released");
        }
    }
}

/// The event that drops a softc unhooked by [`release_softc_if_unreachable`] (also when
/// the event is cancelled: the memory is ours either way).
unsafe extern "C" fn drop_softc_event<C: GeomClass>(arg: *mut c_void, _flag: c_int) {
    // SAFETY: arg is the Box<C::Softc> unhooked from its geom; this event is its only owner.
    unsafe { drop(Box::from_raw(arg.cast::<C::Softc>())) };
}

/// # Safety
/// `mp` is a loaded class of type `C` (its `spare1` set by `init_tramp`).
unsafe fn class_of<'a, C: GeomClass>(mp: *mut g_class) -> &'a Class<C> {
    // SAFETY: caller's contract.
    unsafe { &*((*mp).spare1 as *const Class<C>) }
}

/// # Safety
/// `gp` is a live geom of class `C`.
unsafe fn softc_of<'a, C: GeomClass>(gp: *mut g_geom) -> Option<&'a C::Softc> {
    // SAFETY: caller's contract; softc is NULL or a C::Softc.
    unsafe { ((*gp).softc as *const C::Softc).as_ref() }
}

unsafe extern "C" fn init_tramp<C: GeomClass>(mp: *mut g_class) {
    // SAFETY: GEOM calls init with the topology lock held, once per load.
    unsafe {
        let mut topo = Topology::assume_locked();
        let state = C::init(&mut topo);
        (*mp).spare1 = Box::into_raw(Box::new(Class { mp, state })).cast();
    }
}

unsafe extern "C" fn fini_tramp<C: GeomClass>(mp: *mut g_class) {
    // SAFETY: GEOM calls fini with the topology lock held after the last geom is gone; the
    // state was made by init_tramp and is freed once.
    unsafe {
        let p = core::mem::replace(&mut (*mp).spare1, ptr::null_mut()).cast::<Class<C>>();
        if !p.is_null() {
            let cls = Box::from_raw(p);
            if C::IMPLEMENTED.contains(Methods::FINI) {
                cls.state.fini(&mut Topology::assume_locked());
            }
        }
    }
}

unsafe extern "C" fn taste_tramp<C: GeomClass>(mp: *mut g_class, pp: *mut g_provider, _flags: c_int) -> *mut g_geom {
    // SAFETY: GEOM calls taste with the topology lock held, a loaded class and a live
    // provider.
    unsafe {
        let mut topo = Topology::assume_locked();
        match C::taste(class_of::<C>(mp), &mut topo, Provider::from_raw(pp)) {
            Some(g) => g.as_ptr(),
            None => ptr::null_mut(),
        }
    }
}

unsafe extern "C" fn ctlreq_tramp<C: GeomClass>(req: *mut gctl_req, mp: *mut g_class, verb: *const c_char) {
    // SAFETY: GEOM calls ctlreq with the topology lock held, a valid request, and `verb`
    // pointing at the value of its "verb" parameter (checked to be a string below).
    unsafe {
        let mut topo = Topology::assume_locked();
        let mut g = Gctl::from_raw(req);
        if let Some(v) = C::VERSION {
            if !check_version(&mut g, v) {
                return;
            }
        }
        // FreeBSD's g_ctl_req passes the "verb" parameter without checking it ends in a NUL;
        // reading it as a string first refuses an unterminated one (with FreeBSD's message)
        // before it is used as a C string.
        if g.ascii(c"verb").is_none() {
            if !g.has_error() {
                g.error(format_args!("Verb missing"));
            }
            return;
        }
        let verb = CStr::from_ptr(verb);
        // Verbs the class library runs in userland (label, clear, dump) are unknown to the
        // kernel, as in C where ctlreq never lists them.
        if C::Verb::spec(verb.to_bytes()).is_some_and(|v| v.local) {
            unknown_verb::<()>(&mut g);
            return;
        }
        if let Some(parsed) = C::Verb::from_gctl(&mut g, verb) {
            C::ctlreq(class_of::<C>(mp), &mut topo, &mut g, parsed);
        }
    }
}

unsafe extern "C" fn destroy_geom_tramp<C: GeomClass>(_req: *mut gctl_req, mp: *mut g_class, gp: *mut g_geom) -> c_int {
    // SAFETY: GEOM calls destroy_geom with the topology lock held, on one of our geoms.
    unsafe {
        let mut topo = Topology::assume_locked();
        Errno::raw(C::destroy_geom(class_of::<C>(mp), &mut topo, GeomRef::from_raw(gp)))
    }
}

unsafe extern "C" fn start_tramp<C: GeomClass>(bp: *mut bio) {
    // SAFETY: GEOM calls start with a live bio aimed at one of our providers; the geom (and
    // its softc) lives while the provider has I/O.
    unsafe {
        let gp = (*(*bp).bio_to).geom;
        let req = Request::from_raw(bp);
        match softc_of::<C>(gp) {
            Some(sc) => sc.start(&IoCtx::assume(), req),
            None => req.fail(Errno::ENXIO),
        }
    }
}

unsafe extern "C" fn access_tramp<C: GeomClass>(pp: *mut g_provider, dr: c_int, dw: c_int, de: c_int) -> c_int {
    // SAFETY: GEOM calls access with the topology lock held on one of our live providers.
    unsafe {
        let gp = (*pp).geom;
        if !C::Softc::IMPLEMENTED.contains(Methods::ACCESS) {
            return 0;
        }
        match softc_of::<C>(gp) {
            Some(sc) => Errno::raw(sc.access(
                &mut Topology::assume_locked(),
                GeomRef::from_raw(gp),
                Provider::from_raw(pp),
                dr,
                dw,
                de,
            )),
            // Closing is always allowed; a geom without state accepts no new opens.
            None if dr <= 0 && dw <= 0 && de <= 0 => 0,
            None => sys::errno::ENXIO,
        }
    }
}

/// orphan and spoiled: call the geom's method, or wither a geom whose state is already gone.
///
/// # Safety
/// GEOM is calling one of these methods: topology lock held, `cp` one of our live consumers.
unsafe fn consumer_event<C: GeomClass>(
    cp: *mut g_consumer,
    method: impl FnOnce(&C::Softc, &mut Topology, GeomRef<C>, Consumer),
) {
    // SAFETY: caller's contract.
    unsafe {
        let gp = (*cp).geom;
        let mut topo = Topology::assume_locked();
        let g = GeomRef::<C>::from_raw(gp);
        match softc_of::<C>(gp) {
            Some(sc) => method(sc, &mut topo, g, Consumer::from_raw(cp)),
            None => g.wither(&mut topo, Errno::ENXIO),
        }
    }
}

unsafe extern "C" fn orphan_tramp<C: GeomClass>(cp: *mut g_consumer) {
    // SAFETY: GEOM calls orphan with the topology lock held on one of our live consumers.
    unsafe { consumer_event::<C>(cp, |sc, topo, g, cp| sc.orphan(topo, g, cp)) }
}

unsafe extern "C" fn spoiled_tramp<C: GeomClass>(cp: *mut g_consumer) {
    // SAFETY: as for orphan.
    unsafe { consumer_event::<C>(cp, |sc, topo, g, cp| sc.spoiled(topo, g, cp)) }
}

unsafe extern "C" fn resize_tramp<C: GeomClass>(cp: *mut g_consumer) {
    // SAFETY: as for orphan.
    unsafe {
        let gp = (*cp).geom;
        if let Some(sc) = softc_of::<C>(gp) {
            sc.resize(&mut Topology::assume_locked(), GeomRef::from_raw(gp), Consumer::from_raw(cp));
        }
    }
}

unsafe extern "C" fn dumpconf_tramp<C: GeomClass>(
    sb: *mut sbuf,
    indent: *const c_char,
    gp: *mut g_geom,
    cp: *mut g_consumer,
    pp: *mut g_provider,
) {
    // SAFETY: GEOM calls dumpconf with the topology lock held, a valid sbuf and indent, our
    // live geom, and at most one of a live consumer or provider of it.
    unsafe {
        let Some(sc) = softc_of::<C>(gp) else { return };
        let what = if !cp.is_null() {
            Dump::Consumer(Consumer::from_raw(cp))
        } else if !pp.is_null() {
            Dump::Provider(Provider::from_raw(pp))
        } else {
            Dump::Geom
        };
        let mut xml = XmlWriter::from_raw(sb, CStr::from_ptr(indent));
        sc.dumpconf(&Topology::assume_locked(), &mut xml, what);
    }
}

unsafe extern "C" fn providergone_tramp<C: GeomClass>(pp: *mut g_provider) {
    // SAFETY: GEOM calls providergone with the topology lock held while destroying pp, which
    // is already off its geom's list. When the geom is withering and has no provider left,
    // no request can reach its state any more: free it.
    unsafe {
        let gp = (*pp).geom;
        if (*gp).flags & sys::G_GEOM_WITHER != 0 && (*gp).provider.is_empty() {
            free_softc::<C>(gp);
        }
    }
}

/// The `g_class` for `C`: its name, `G_VERSION`, and trampolines for the methods it
/// implements (see the module documentation for the few the framework always installs).
pub const fn class_table<C: GeomClass>() -> g_class {
    let cm = C::IMPLEMENTED;
    let gm = <C::Softc as Geom>::IMPLEMENTED;
    g_class {
        taste: if cm.contains(Methods::TASTE) { Some(taste_tramp::<C>) } else { None },
        ctlreq: if cm.contains(Methods::CTLREQ) { Some(ctlreq_tramp::<C>) } else { None },
        init: Some(init_tramp::<C>),
        fini: Some(fini_tramp::<C>),
        destroy_geom: if cm.contains(Methods::DESTROY_GEOM) { Some(destroy_geom_tramp::<C>) } else { None },
        start: Some(start_tramp::<C>),
        spoiled: if gm.contains(Methods::SPOILED) { Some(spoiled_tramp::<C>) } else { None },
        dumpconf: if gm.contains(Methods::DUMPCONF) { Some(dumpconf_tramp::<C>) } else { None },
        access: Some(access_tramp::<C>),
        orphan: Some(orphan_tramp::<C>),
        providergone: Some(providergone_tramp::<C>),
        resize: if gm.contains(Methods::RESIZE) { Some(resize_tramp::<C>) } else { None },
        ..g_class::named(C::NAME)
    }
}
