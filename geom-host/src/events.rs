//! The `g_event` queue (`geom_event.c`): posted events, the orphan queue and withering, run
//! one at a time with the topology lock held.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use geom_core::sys::{self, c_int, c_void, errno, g_event_t, g_provider};

use crate::invariants::{lock, ViolationKind};
use crate::runtime::{kernel, role, Kernel, Role, Topo};

/// FreeBSD's `G_N_EVENTREFS`: how many cancellation references one event may carry.
pub(crate) const G_N_EVENTREFS: usize = 20;

/// What an event runs.
pub(crate) enum EventFn {
    /// A KPI event: `func(arg, flag)`.
    C { func: g_event_t, arg: *mut c_void },
    /// A runtime-internal event (a host API call that must run under the topology lock).
    Rust(Box<dyn FnOnce(&Topo<'_>) + Send>),
}

/// One queued event.
pub(crate) struct Event {
    func: EventFn,
    refs: Vec<usize>,
    /// Set when it has run (for `g_waitfor_event`).
    done: Option<Arc<AtomicBool>>,
}

// SAFETY: an event's raw argument is only used on the event thread, as in FreeBSD.
unsafe impl Send for Event {}

/// The `g_event` queue's state.
#[derive(Default)]
pub(crate) struct EventState {
    events: VecDeque<Event>,
    /// `g_doorstep`: providers orphaned and waiting for their consumers to be told.
    orphans: VecDeque<usize>,
    /// `g_wither_work`: something may have become destroyable.
    wither_work: bool,
    /// The event thread is running an item.
    busy: bool,
}

impl EventState {
    pub(crate) fn has_work(&self) -> bool {
        !self.events.is_empty() || !self.orphans.is_empty() || self.wither_work
    }

    pub(crate) fn idle(&self) -> bool {
        !self.has_work() && !self.busy
    }
}

impl Kernel {
    /// Queue an event.
    pub(crate) fn post(&self, func: EventFn, refs: Vec<usize>, done: Option<Arc<AtomicBool>>) {
        self.events.push_with(|s| s.events.push_back(Event { func, refs, done }));
    }

    /// Queue a provider on the orphan doorstep (`g_orphan_provider`).
    pub(crate) fn post_orphan(&self, pp: *mut g_provider) {
        self.events.push_with(|s| s.orphans.push_back(pp as usize));
    }

    /// `g_do_wither`: ask the event thread to look for withered objects to destroy.
    pub(crate) fn do_wither(&self) {
        self.events.push_with(|s| s.wither_work = true);
    }

    /// Run one item of the event queue under the topology lock: orphans first, then one
    /// event, then a wither wash, as `g_run_events` orders them.
    pub(crate) fn step_event(&self) {
        enum Item {
            Orphan(usize),
            Event(Event),
            Wither,
        }
        let item = {
            let mut s = self.events.lock();
            let item = if let Some(pp) = s.orphans.pop_front() {
                Some(Item::Orphan(pp))
            } else if let Some(ev) = s.events.pop_front() {
                Some(Item::Event(ev))
            } else if s.wither_work {
                s.wither_work = false;
                Some(Item::Wither)
            } else {
                None
            };
            s.busy = item.is_some();
            item
        };
        let Some(item) = item else { return };
        self.topology.lock();
        match item {
            Item::Orphan(pp) => crate::topology::orphan_register(self, pp as *mut g_provider),
            Item::Event(ev) => {
                match ev.func {
                    // SAFETY: the poster promised func(arg, flag) is callable with the
                    // topology lock held; we hold it.
                    EventFn::C { func, arg } => unsafe { func(arg, 0) },
                    EventFn::Rust(f) => f(&Topo { k: self }),
                }
                if let Some(done) = ev.done {
                    self.sleepq.with_chan(Arc::as_ptr(&done) as usize, || done.store(true, Ordering::Release));
                    self.sleepq.wakeup(Arc::as_ptr(&done) as usize);
                }
            }
            Item::Wither => crate::topology::wither_washer(self),
        }
        if !self.topology.held() {
            self.inv.report(
                ViolationKind::Kassert,
                "an event handler returned without the topology lock (it dropped the lock and did not take it back)"
                    .into(),
            );
        } else {
            self.topology.unlock();
        }
        self.events.push_with(|s| s.busy = false);
    }

    /// `g_cancel_event(ref)`: remove every queued event naming `ref` and call it with
    /// `EV_CANCEL`. Called with the topology lock held.
    pub(crate) fn cancel_events(&self, r: usize) {
        let cancelled: Vec<Event> = {
            let mut s = self.events.lock();
            s.orphans.retain(|&pp| pp != r);
            let (gone, keep): (Vec<Event>, Vec<Event>) = s.events.drain(..).partition(|e| e.refs.contains(&r));
            s.events = keep.into();
            gone
        };
        for ev in cancelled {
            if let EventFn::C { func, arg } = ev.func {
                // SAFETY: cancellation calls the event once with EV_CANCEL, as FreeBSD does;
                // the topology lock is held by our caller.
                unsafe { func(arg, sys::EV_CANCEL) };
            }
            if let Some(done) = ev.done {
                self.sleepq.with_chan(Arc::as_ptr(&done) as usize, || done.store(true, Ordering::Release));
                self.sleepq.wakeup(Arc::as_ptr(&done) as usize);
            }
        }
    }
}

/// Run a closure on the event thread under the topology lock and return its result.
pub(crate) fn run_on_event_thread<R: Send + 'static>(
    k: &Arc<Kernel>,
    f: impl FnOnce(&Topo<'_>) -> R + Send + 'static,
) -> R {
    if role() == Role::Event && k.topology.held() {
        return f(&Topo { k });
    }
    let slot = Arc::new(Mutex::new(None));
    let done = Arc::new(AtomicBool::new(false));
    let result = Arc::clone(&slot);
    k.post(
        EventFn::Rust(Box::new(move |t| {
            *lock(&result) = Some(f(t));
        })),
        Vec::new(),
        Some(Arc::clone(&done)),
    );
    // Sleep as g_waitfor_event does, so the deterministic schedule sees the wait.
    k.sleepq.block(Arc::as_ptr(&done) as usize, None, || done.load(Ordering::Acquire));
    let r = lock(&slot).take();
    r.expect("geom-host: the event thread stopped while running a request")
}

/// The Rust side of `g_post_event` / `g_waitfor_event` (the variadic C wrappers collect the
/// NULL-terminated reference list).
///
/// # Safety
/// `refs` points at `nrefs` pointers; `func` is a valid event function.
#[no_mangle]
pub unsafe extern "C" fn geom_host_post_event(
    func: Option<g_event_t>,
    arg: *mut c_void,
    flag: c_int,
    refs: *const *mut c_void,
    nrefs: c_int,
    wait: c_int,
) -> c_int {
    let k = kernel();
    let Some(func) = func else {
        k.inv.report(ViolationKind::Kassert, "g_post_event with a NULL function".into());
        return errno::EINVAL;
    };
    if flag != sys::M_WAITOK && flag != sys::M_NOWAIT {
        k.inv.report(ViolationKind::Kassert, format!("g_post_event flag {flag:#x} is neither M_WAITOK nor M_NOWAIT"));
        return errno::EINVAL;
    }
    let n = nrefs.max(0) as usize;
    if n > G_N_EVENTREFS {
        k.inv.report(ViolationKind::Kassert, format!("g_post_event with {n} references (at most {G_N_EVENTREFS})"));
        return errno::EINVAL;
    }
    let refs: Vec<usize> = if n == 0 || refs.is_null() {
        Vec::new()
    } else {
        // SAFETY: the C wrapper passes an array of nrefs pointers.
        unsafe { std::slice::from_raw_parts(refs, n) }.iter().map(|&p| p as usize).collect()
    };
    if wait == 0 {
        k.post(EventFn::C { func, arg }, refs, None);
        return 0;
    }
    // g_waitfor_event: must not hold the topology lock nor run on the event thread.
    if role() == Role::Event || k.topology.held() {
        k.inv.report(
            ViolationKind::Kassert,
            "g_waitfor_event called from the event thread or with the topology lock held (it would wait forever)"
                .into(),
        );
        return errno::EDEADLK;
    }
    if !k.assert_sleepable("g_waitfor_event") {
        return errno::EDEADLK;
    }
    let done = Arc::new(AtomicBool::new(false));
    let chan = Arc::as_ptr(&done) as usize;
    k.post(EventFn::C { func, arg }, refs, Some(Arc::clone(&done)));
    k.sleepq.block(chan, None, || done.load(Ordering::Acquire));
    0
}

/// `g_cancel_event(ref)`.
///
/// # Safety
/// Called with the topology lock held.
#[no_mangle]
pub unsafe extern "C" fn g_cancel_event(r: *mut c_void) {
    let k = kernel();
    if !k.assert_topology("g_cancel_event") {
        return;
    }
    k.cancel_events(r as usize);
}
