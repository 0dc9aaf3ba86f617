//! One userland "kernel": its state, its threads, and the public [`Runtime`] handle.
//!
//! Every KPI entry point finds its kernel through a thread-local pointer: the runtime's own
//! threads (`g_event`, `g_down`, `g_up`, workers) carry it for life, and a user thread carries
//! it for the duration of a [`Runtime`] or [`crate::disk`]/I/O handle call. That is what lets
//! several runtimes share one process, and why a KPI called from a foreign thread is a
//! reported violation rather than a guess.

use std::cell::{Cell, UnsafeCell};
use std::collections::{HashMap, VecDeque};
use std::ffi::{CStr, CString};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

use geom_core::sys::{self, g_class, g_geom, g_provider, ListHead, TailqHead};

use crate::biomem::BioRegistry;
use crate::events::EventState;
use crate::invariants::{self, lock, InvariantPolicy, Invariants, Violation, ViolationKind};
use crate::sched::{Baton, Fifo, Queue, SleepQueues, WorkQueue};

/// How a runtime is set up.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// A name for messages and thread names.
    pub name: String,
    /// What a broken invariant does.
    pub policy: InvariantPolicy,
    /// Allow FreeBSD's direct dispatch (start called in the issuer's thread, done in the
    /// completer's) where consumer and provider both ask for it.
    pub direct_dispatch: bool,
    /// Echo the kernel console (`printf`) to stderr.
    pub echo_console: bool,
    /// Seed of the runtime's random numbers (`arc4random` for classes).
    pub seed: u64,
    /// How long shutdown waits for outstanding events and bios before it reports what is
    /// left as leaked.
    pub shutdown_grace: Duration,
    /// Run under the deterministic schedule: one thread at a time, the next chosen by a
    /// generator seeded from `seed`, time virtual. The same seed and the same calls from one
    /// driving thread give the same interleaving, the same faults and the same bytes (see
    /// [`Runtime::schedule_trace`]). Not for runtimes served to outside clients (NBD).
    pub deterministic: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            name: "geom".into(),
            policy: InvariantPolicy::Abort,
            direct_dispatch: true,
            echo_console: std::env::var_os("GEOM_HOST_QUIET").is_none(),
            shutdown_grace: Duration::from_secs(10),
            seed: 0x5EED,
            deterministic: false,
        }
    }
}

/// What a thread is to the runtime; decides which KPI it may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// A thread outside the runtime calling in (a test, the `geom` tool).
    User,
    /// The `g_event` thread.
    Event,
    /// The `g_down` thread.
    Down,
    /// The `g_up` thread.
    Up,
    /// A kernel thread a class created.
    Worker,
}

thread_local! {
    static CURRENT: Cell<*const Kernel> = const { Cell::new(ptr::null()) };
    static ROLE: Cell<Role> = const { Cell::new(Role::User) };
    static IO_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// The topology lock (`struct sx topology_lock`): exclusive, not recursive, and it knows its
/// owner so `g_topology_assert` can be checked.
pub(crate) struct TopologyLock {
    owner: Mutex<Option<ThreadId>>,
    cv: Condvar,
    baton: Option<Arc<Baton>>,
}

impl TopologyLock {
    fn new(baton: Option<Arc<Baton>>) -> Self {
        TopologyLock { owner: Mutex::new(None), cv: Condvar::new(), baton }
    }

    pub(crate) fn lock(&self) {
        let me = thread::current().id();
        if let Some(b) = &self.baton {
            b.wait_until(
                || {
                    let mut g = lock(&self.owner);
                    let free = g.is_none();
                    if free {
                        *g = Some(me);
                    }
                    free
                },
                None,
            );
            return;
        }
        let mut g = lock(&self.owner);
        while g.is_some() {
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        *g = Some(me);
    }

    pub(crate) fn unlock(&self) {
        *lock(&self.owner) = None;
        self.cv.notify_one();
    }

    pub(crate) fn held(&self) -> bool {
        *lock(&self.owner) == Some(thread::current().id())
    }
}

/// Topology state: what FreeBSD keeps in `g_classes`, `geoms` and a few globals. Only
/// touched with the topology lock held.
pub(crate) struct TopoState {
    /// `g_classes`: the loaded classes (this runtime's copies), linked through `class`.
    pub(crate) classes: ListHead<g_class>,
    /// `geoms`: every geom in rank order.
    pub(crate) geoms: TailqHead<g_geom>,
    /// Class copies this runtime owns (freed when the runtime goes).
    pub(crate) class_copies: Vec<*mut g_class>,
    /// Where each copy came from (the class's static), to refuse loading it twice.
    pub(crate) class_origins: Vec<(*const g_class, *mut g_class)>,
    /// `g_shutdown`: no more tasting.
    pub(crate) shutdown: bool,
}

/// One userland GEOM kernel.
pub(crate) struct Kernel {
    pub(crate) config: RuntimeConfig,
    pub(crate) topology: TopologyLock,
    topo: UnsafeCell<TopoState>,
    pub(crate) events: WorkQueue<EventState>,
    pub(crate) down: Fifo<usize>,
    pub(crate) up: Fifo<usize>,
    pub(crate) sleepq: SleepQueues,
    /// The deterministic schedule, when `config.deterministic`.
    pub(crate) baton: Option<Arc<Baton>>,
    pub(crate) bios: BioRegistry,
    pub(crate) malloc: crate::platform::MallocStats,
    pub(crate) inv: Invariants,
    /// Bios delivered onto `g_up` whose biodone has not returned yet: work in progress that
    /// `in_flight` no longer counts.
    pub(crate) completions_queued: AtomicUsize,
    /// FreeBSD's `pace`: an `ENOMEM` delivery asks `g_down` to slow down.
    pub(crate) pace: AtomicU32,
    pub(crate) stopping: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) console: Mutex<Vec<String>>,
    pub(crate) next_name: AtomicU64,
    /// State of `arc4random`.
    pub(crate) random: AtomicU64,
    /// Consumers opened by user handles, closed by force at shutdown.
    pub(crate) user_consumers: Mutex<HashMap<usize, Arc<AtomicBool>>>,
    /// Modules loaded from their records (`kldstat`).
    pub(crate) modules: Mutex<Vec<crate::modules::LoadedModule>>,
    /// What the last `module_register_init` got back from `MOD_LOAD`.
    pub(crate) module_error: Mutex<i32>,
}

// SAFETY: the raw pointers inside (topology, queued bios) are only dereferenced under the
// topology lock or by the single queue runner that popped them, as in FreeBSD's kernel; the
// UnsafeCell is accessed only through `topo()`, which requires the topology lock.
unsafe impl Send for Kernel {}
// SAFETY: as above.
unsafe impl Sync for Kernel {}

impl Kernel {
    /// The topology state.
    ///
    /// # Safety
    /// The calling thread holds the topology lock, and does not keep the reference past
    /// releasing it or across a call that may release it.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn topo(&self) -> &mut TopoState {
        // SAFETY: the lock serialises every access (caller's contract).
        unsafe { &mut *self.topo.get() }
    }

    /// Nothing to do: no event queued or running, no bio in flight, no completion waiting
    /// for its done.
    pub(crate) fn quiet(&self) -> bool {
        self.bios.in_flight() == 0 && self.completions_queued.load(Ordering::Acquire) == 0 && self.events.lock().idle()
    }

    /// Check that the topology lock is held (`g_topology_assert`); report otherwise.
    pub(crate) fn assert_topology(&self, what: &str) -> bool {
        if self.topology.held() {
            return true;
        }
        self.inv.report(ViolationKind::TopologyNotLocked, format!("{what} called without the topology lock held"));
        false
    }

    /// Check that the calling context may sleep; report otherwise.
    pub(crate) fn assert_sleepable(&self, what: &str) -> bool {
        let role = ROLE.with(Cell::get);
        let depth = IO_DEPTH.with(Cell::get);
        if depth == 0 && role != Role::Down && role != Role::Up {
            return true;
        }
        let place = if depth > 0 { "a start or done method" } else { "the g_down/g_up thread" };
        self.inv.report(
            ViolationKind::SleepInIoPath,
            format!("{what} may sleep, but was called from {place} (role {role:?}); start and done must never sleep"),
        );
        false
    }

    /// Print a kernel console line.
    pub(crate) fn console(&self, msg: &str) {
        let line = msg.trim_end_matches('\n');
        if self.config.echo_console {
            eprintln!("[{}] {}", self.config.name, line);
        }
        lock(&self.console).push(line.to_owned());
    }

    fn spawn(self: &Arc<Self>, role: Role, name: String, body: impl FnOnce(&Arc<Kernel>) + Send + 'static) {
        let k = Arc::clone(self);
        let task = TaskSlot::register(self, &name);
        let h = thread::Builder::new()
            .name(name)
            .spawn(move || {
                let _task = task.start();
                let _e = enter_as(&k, role);
                body(&k);
            })
            .expect("geom-host: cannot start a runtime thread");
        lock(&self.threads).push(h);
    }

    /// Start a worker (kernel) thread for a class.
    pub(crate) fn spawn_worker(
        self: &Arc<Self>,
        name: String,
        body: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<()> {
        let k = Arc::clone(self);
        let task = TaskSlot::register(self, &name);
        let spawned = thread::Builder::new().name(name).spawn(move || {
            let _task = task.start();
            let _e = enter_as(&k, Role::Worker);
            body();
        });
        // On failure the closure, and with it the task's slot, is dropped: the task leaves
        // the schedule without having run.
        spawned.map(drop)
    }

    fn start_threads(self: &Arc<Self>) {
        let n = &self.config.name;
        self.spawn(Role::Event, format!("{n}:g_event"), |k| while k.run_queue(Queue::Event) {});
        self.spawn(Role::Down, format!("{n}:g_down"), |k| while k.run_queue(Queue::Down) {});
        self.spawn(Role::Up, format!("{n}:g_up"), |k| while k.run_queue(Queue::Up) {});
    }

    /// A queue thread's loop body: wait for and run one item of `q`. Returns false when the
    /// runtime stops. Under the deterministic schedule the wait (and a yield before each
    /// item) goes through the baton, so the generator orders the queues' steps.
    fn run_queue(&self, q: Queue) -> bool {
        let stop = || self.stopping.load(Ordering::Acquire);
        match q {
            Queue::Event => {
                let work = self.events.take_or_wait(|s| s.has_work().then_some(()), stop);
                if work.is_some() {
                    self.step_event();
                }
                work.is_some()
            }
            Queue::Down => match self.down.take_or_wait(|d| d.pop_front(), stop) {
                Some(bp) => {
                    self.step_down(bp as *mut sys::bio);
                    true
                }
                None => false,
            },
            Queue::Up => match self.up.take_or_wait(|d| d.pop_front(), stop) {
                Some(bp) => {
                    self.step_up(bp as *mut sys::bio);
                    true
                }
                None => false,
            },
        }
    }
}

/// A kernel thread's place in the deterministic schedule, taken before the thread starts so
/// the schedule (not the host's thread start-up) decides when it first runs.
struct TaskSlot {
    task: Option<(Arc<Baton>, u64)>,
}

impl TaskSlot {
    fn register(k: &Kernel, name: &str) -> TaskSlot {
        TaskSlot { task: k.baton.as_ref().map(|b| (Arc::clone(b), b.register(name.to_owned()))) }
    }

    /// On the new thread: wait for the baton; the thread leaves the schedule when the
    /// returned guard drops (also if its body panics, so the baton is never lost).
    fn start(mut self) -> RunningTask {
        match self.task.take() {
            Some((b, id)) => {
                b.start_task(id);
                RunningTask(Some(b))
            }
            None => RunningTask(None),
        }
    }
}

impl Drop for TaskSlot {
    fn drop(&mut self) {
        if let Some((b, id)) = self.task.take() {
            b.forget(id);
        }
    }
}

struct RunningTask(Option<Arc<Baton>>);

impl Drop for RunningTask {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            b.exit_task();
        }
    }
}

/// Marks the current thread as running inside a start or done method for its lifetime.
pub(crate) struct IoContext(());

impl IoContext {
    pub(crate) fn enter() -> Self {
        IO_DEPTH.with(|d| d.set(d.get() + 1));
        IoContext(())
    }

    /// How deeply direct dispatch has nested start/done calls on this thread.
    pub(crate) fn depth() -> u32 {
        IO_DEPTH.with(Cell::get)
    }
}

impl Drop for IoContext {
    fn drop(&mut self) {
        IO_DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// The calling thread's role.
pub(crate) fn role() -> Role {
    ROLE.with(Cell::get)
}

/// Binds the calling thread to a kernel until dropped. Under the deterministic schedule, the
/// outermost `Enter` of a thread that is not one of the runtime's own also makes it a task
/// for the length of the call (see `baton.rs`).
pub(crate) struct Enter {
    prev: *const Kernel,
    prev_role: Role,
    keep: Arc<Kernel>,
    foreign_task: bool,
}

fn enter_as(k: &Arc<Kernel>, role: Role) -> Enter {
    let foreign_task = k.baton.as_ref().is_some_and(|b| b.enter_foreign());
    let prev = CURRENT.with(|c| c.replace(Arc::as_ptr(k)));
    let prev_role = ROLE.with(|r| r.replace(role));
    Enter { prev, prev_role, keep: Arc::clone(k), foreign_task }
}

pub(crate) fn enter(k: &Arc<Kernel>) -> Enter {
    let r = role();
    enter_as(k, r)
}

impl Drop for Enter {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.prev));
        ROLE.with(|r| r.set(self.prev_role));
        if self.foreign_task {
            if let Some(b) = &self.keep.baton {
                b.leave_foreign();
            }
        }
    }
}

/// The kernel the calling thread belongs to. A KPI call from a thread that belongs to none
/// cannot be routed anywhere: that aborts with a report.
pub(crate) fn kernel() -> &'static Kernel {
    let p = CURRENT.with(Cell::get);
    if p.is_null() {
        invariants::abort_with(&Violation {
            kind: ViolationKind::NoRuntime,
            message: "a GEOM KPI function was called from a thread that belongs to no geom-host runtime".into(),
            thread: invariants::thread_name(),
        });
    }
    // SAFETY: CURRENT is non-null only while an `Enter` guard on this thread holds an Arc of
    // that kernel, so it is alive; callers use the reference within the KPI call.
    unsafe { &*p }
}

/// The calling thread's kernel, if it belongs to one.
pub(crate) fn current_kernel() -> Option<&'static Kernel> {
    let p = CURRENT.with(Cell::get);
    // SAFETY: as in `kernel()`: non-null only while an `Enter` guard keeps the kernel alive.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// The calling thread's kernel as an `Arc`, for work that outlives the call (workers).
pub(crate) fn kernel_arc() -> Arc<Kernel> {
    let k = kernel() as *const Kernel;
    // SAFETY: `kernel()` came from `Arc::as_ptr` of a live Arc (see `enter_as`); bumping the
    // count and rebuilding an Arc from that pointer is the documented way to share it.
    unsafe {
        Arc::increment_strong_count(k);
        Arc::from_raw(k)
    }
}

/// Print a line on the current runtime's console (`printf(9)`).
pub(crate) fn console(msg: &str) {
    kernel().console(msg);
}

/// Proof that the topology lock is held, handed to closures run by [`Runtime::run`].
pub struct Topo<'a> {
    pub(crate) k: &'a Kernel,
}

impl Topo<'_> {
    /// `g_provider_by_name`.
    pub fn provider_by_name(&self, name: &str) -> *mut g_provider {
        let Ok(c) = CString::new(name) else { return ptr::null_mut() };
        // SAFETY: we hold the topology lock (this token exists only under it).
        unsafe { sys::g_provider_by_name(c.as_ptr()) }
    }

    /// A loaded class by name.
    pub fn class_by_name(&self, name: &str) -> *mut g_class {
        let Ok(c) = CString::new(name) else { return ptr::null_mut() };
        crate::topology::class_by_name(&c)
    }
}

/// A provider's state, as `geom list` would show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderInfo {
    /// Provider name.
    pub name: String,
    /// Name of the geom that owns it.
    pub geom: String,
    /// Name of that geom's class.
    pub class: String,
    /// Size in bytes.
    pub mediasize: i64,
    /// Sector size in bytes.
    pub sectorsize: u32,
    /// Stripe size.
    pub stripesize: i64,
    /// Stripe offset.
    pub stripeoffset: i64,
    /// Read, write and exclusive open counts.
    pub access: (i32, i32, i32),
    /// The provider's error (0: usable).
    pub error: i32,
    /// `G_PF_*` flags.
    pub flags: u32,
}

/// A consumer's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerInfo {
    /// The provider it is attached to, if any.
    pub provider: Option<String>,
    /// Read, write and exclusive open counts.
    pub access: (i32, i32, i32),
    /// `G_CF_*` flags.
    pub flags: i32,
}

/// A geom's state: its class, rank, providers and consumers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeomInfo {
    /// Class name.
    pub class: String,
    /// Geom name.
    pub name: String,
    /// Depth in the graph.
    pub rank: i32,
    /// `G_GEOM_*` flags.
    pub flags: u32,
    /// Its providers.
    pub providers: Vec<ProviderInfo>,
    /// Its consumers.
    pub consumers: Vec<ConsumerInfo>,
}

/// The topology as a tree of text, class by class (for people; `confxml` is for programs).
pub fn format_topology(geoms: &[GeomInfo]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut class = "";
    for g in geoms {
        if g.class != class {
            class = &g.class;
            let _ = writeln!(out, "class {class}");
        }
        let wither = if g.flags & sys::G_GEOM_WITHER != 0 { ", withering" } else { "" };
        let _ = writeln!(out, "  geom {} (rank {}{wither})", g.name, g.rank);
        for c in &g.consumers {
            let (r, w, e) = c.access;
            let _ = writeln!(out, "    consumer -> {} r{r}w{w}e{e}", c.provider.as_deref().unwrap_or("(detached)"));
        }
        for p in &g.providers {
            let (r, w, e) = p.access;
            let _ = writeln!(
                out,
                "    provider {}: {} bytes, {}-byte sectors, r{r}w{w}e{e}{}",
                p.name,
                p.mediasize,
                p.sectorsize,
                if p.error != 0 { format!(", error {}", p.error) } else { String::new() }
            );
        }
    }
    out
}

/// The result of a bio issued from outside the runtime.
pub type BioResult<T> = Result<T, i32>;

/// One userland GEOM kernel: topology, threads, classes, bios.
///
/// Dropping it shuts it down (see [`Runtime::shutdown`]).
pub struct Runtime {
    pub(crate) k: Arc<Kernel>,
    down: bool,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime::new(RuntimeConfig::default())
    }
}

impl Runtime {
    /// Start a runtime: its topology, and its `g_event`, `g_down` and `g_up` threads.
    pub fn new(config: RuntimeConfig) -> Runtime {
        crate::topology::BOOTED.store(true, std::sync::atomic::Ordering::SeqCst);
        let seed = config.seed;
        let baton = config.deterministic.then(|| Arc::new(Baton::new(seed)));
        let k = Arc::new(Kernel {
            inv: Invariants::new(config.policy),
            config,
            topology: TopologyLock::new(baton.clone()),
            topo: UnsafeCell::new(TopoState {
                classes: ListHead::new(),
                geoms: TailqHead { tqh_first: ptr::null_mut(), tqh_last: ptr::null_mut() },
                class_copies: Vec::new(),
                class_origins: Vec::new(),
                shutdown: false,
            }),
            events: WorkQueue::new(EventState::default(), baton.clone()),
            down: WorkQueue::new(VecDeque::new(), baton.clone()),
            up: WorkQueue::new(VecDeque::new(), baton.clone()),
            sleepq: SleepQueues::new(baton.clone()),
            baton,
            bios: BioRegistry::new(),
            malloc: Default::default(),
            completions_queued: AtomicUsize::new(0),
            pace: AtomicU32::new(0),
            stopping: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
            console: Mutex::new(Vec::new()),
            next_name: AtomicU64::new(0),
            random: AtomicU64::new(seed),
            user_consumers: Mutex::new(HashMap::new()),
            modules: Mutex::new(Vec::new()),
            module_error: Mutex::new(0),
        });
        // SAFETY: no thread runs yet, so nobody else can touch the state; the TAILQ head gets
        // its self-pointer now that the kernel has its final address inside the Arc.
        unsafe { sys::tailq_init(&raw mut (*k.topo.get()).geoms) };
        // Deterministic: the threads are registered while this thread holds the baton, and
        // `new` returns once they have run up to their first wait, so the caller's first call
        // finds the same state every time.
        let creating = enter(&k);
        k.start_threads();
        drop(creating);
        Runtime { k, down: false }
    }

    /// A handle on a running kernel that does not shut it down when dropped (for KPI entry
    /// points such as `g_modevent` that need the host API from inside).
    pub(crate) fn non_owning(k: Arc<Kernel>) -> Runtime {
        Runtime { k, down: true }
    }

    /// A runtime that records invariant violations instead of aborting (for tests that break
    /// rules on purpose).
    pub fn collecting(name: &str) -> Runtime {
        Runtime::new(RuntimeConfig { name: name.into(), policy: InvariantPolicy::Collect, ..Default::default() })
    }

    /// The runtime's name.
    pub fn name(&self) -> &str {
        &self.k.config.name
    }

    /// Bind the calling thread to this runtime while the guard lives. Needed only to call the
    /// raw KPI from a thread of your own; every method of `Runtime` does it itself.
    pub fn enter(&self) -> impl Drop + '_ {
        enter(&self.k)
    }

    /// Run `f` on the `g_event` thread with the topology lock held, and wait for it, as
    /// `g_waitfor_event` does. Called from the event thread itself, it runs `f` in place.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce(&Topo<'_>) -> R + Send + 'static) -> R {
        let _e = enter(&self.k);
        crate::events::run_on_event_thread(&self.k, f)
    }

    /// Wait until the event queue is empty and nothing runs on it (`g_waitidle`).
    pub fn wait_idle(&self) {
        let _e = enter(&self.k);
        self.k.events.wait_for(|s| s.idle());
    }

    /// Wait until events are idle and no bio is in flight.
    pub fn settle(&self) {
        let _e = enter(&self.k);
        self.wait_idle();
        self.k.sleepq.poll_until(Duration::from_millis(1), None, || self.k.quiet());
    }

    /// What the deterministic schedule has done so far (`None` for a threaded runtime): two
    /// runs with the same seed and the same calls have equal traces.
    pub fn schedule_trace(&self) -> Option<crate::ScheduleTrace> {
        self.k.baton.as_ref().map(|b| b.trace())
    }

    /// Load a class written against the raw KPI, as `kldload` followed by `g_modevent`
    /// (`MOD_LOAD`) would: the runtime takes its own copy of the `g_class` (each kernel has
    /// its own copy of a module's data), links it, calls `init`, and offers it every
    /// provider to taste.
    ///
    /// # Safety
    /// `mp` points at a valid `g_class` whose name and methods stay valid for the runtime's
    /// life, and whose methods keep the GEOM KPI's contracts.
    pub unsafe fn load_class_raw(&self, mp: *const g_class) -> Result<(), i32> {
        let origin = mp as usize;
        self.run(move |t| crate::topology::load_class(t.k, origin as *const g_class))
    }

    /// Unload a class by name (`g_unload_class`): refused with `EBUSY` while any of its
    /// providers or consumers is open; otherwise every geom is destroyed through the class's
    /// `destroy_geom`, then `fini` runs.
    pub fn unload_class(&self, name: &str) -> Result<(), i32> {
        let _e = enter(&self.k);
        crate::topology::unload_class(self, name)
    }

    /// The names of the loaded classes, most recent first.
    pub fn classes(&self) -> Vec<String> {
        self.run(|t| {
            // SAFETY: the topology lock is held (we run on the event thread under it), and the
            // class list links only live copies.
            unsafe {
                sys::list_iter(&t.k.topo().classes, |c| &raw mut (*c).class)
                    .map(|mp| CStr::from_ptr((*mp).name).to_string_lossy().into_owned())
                    .collect()
            }
        })
    }

    /// Every provider, in topology order.
    pub fn providers(&self) -> Vec<ProviderInfo> {
        self.run(|t| crate::topology::provider_infos(t.k))
    }

    /// Every geom, class by class.
    pub fn geoms(&self) -> Vec<GeomInfo> {
        self.run(|t| crate::topology::geom_infos(t.k))
    }

    /// The topology as indented text (see [`format_topology`]).
    pub fn topology_text(&self) -> String {
        format_topology(&self.geoms())
    }

    /// Make the next `n` non-waiting bio allocations (`g_new_bio`, `g_clone_bio`) fail, as
    /// memory pressure would: the I/O path must turn that into `ENOMEM`, not a crash.
    pub fn fail_next_bio_allocations(&self, n: u64) {
        self.k.bios.fail_next_nowait(n);
    }

    /// One provider by name.
    pub fn provider(&self, name: &str) -> Option<ProviderInfo> {
        self.providers().into_iter().find(|p| p.name == name)
    }

    /// Issue a geom(8) request: `class` selects the class, `verb` the action; the class's
    /// ctlreq runs on the event thread with the topology lock held.
    pub fn ctl(&self, req: &crate::gctl::CtlRequest) -> crate::gctl::CtlReply {
        let _e = enter(&self.k);
        crate::topology::dispatch_ctl(self, req)
    }

    /// The whole topology as XML, in the shape of FreeBSD's `kern.geom.confxml`.
    pub fn confxml(&self) -> String {
        self.run(|t| {
            // SAFETY: the topology lock is held for the whole walk.
            unsafe { crate::confxml::confxml(&t.k.topo().classes) }
        })
    }

    /// Everything printed on this runtime's console so far.
    pub fn console_log(&self) -> Vec<String> {
        lock(&self.k.console).clone()
    }

    /// Violations recorded so far (under [`InvariantPolicy::Collect`]).
    pub fn violations(&self) -> Vec<Violation> {
        self.k.inv.all()
    }

    /// Bios allocated and not yet destroyed.
    pub fn live_bios(&self) -> usize {
        self.k.bios.live()
    }

    /// Shut the runtime down and return every violation seen: wait for outstanding work,
    /// report bios still alive (leaks), close user handles, unload every class (most recent
    /// first) and stop the threads.
    pub fn shutdown(mut self) -> Vec<Violation> {
        self.shutdown_inner();
        self.k.inv.all()
    }

    fn shutdown_inner(&mut self) {
        if self.down {
            return;
        }
        self.down = true;
        // The guard is dropped before the threads are joined: under the deterministic
        // schedule they can only see `stopping` and end once this thread hands the baton on.
        let e = enter(&self.k);
        self.settle_bounded(self.k.config.shutdown_grace);
        crate::io::close_user_consumers(self);
        let names = self.classes();
        for name in names {
            if let Err(e) = crate::topology::unload_class(self, &name) {
                self.k.console(&format!("shutdown: class {name} did not unload (error {e})"));
            }
        }
        self.settle_bounded(self.k.config.shutdown_grace);
        // A bio alive now outlived its class: unloading stopped every worker that could still
        // have been between two of its requests when the runtime first settled.
        self.k.bios.report_leaks(&self.k);
        for (name, bytes, n) in self.k.malloc.outstanding() {
            self.k.console(&format!(
                "Warning: memory type {name} leaked memory on destroy ({n} allocations, {bytes} bytes)"
            ));
        }
        self.k.stopping.store(true, Ordering::Release);
        self.k.events.kick();
        self.k.down.kick();
        self.k.up.kick();
        drop(e);
        let threads = std::mem::take(&mut *lock(&self.k.threads));
        for t in threads {
            let _ = t.join();
        }
    }

    fn settle_bounded(&self, limit: Duration) {
        let settled = self.k.sleepq.poll_until(Duration::from_millis(1), Some(limit), || self.k.quiet());
        if !settled {
            self.k.console("shutdown: work still outstanding after the wait; going on");
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown_inner();
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        // Class copies are this kernel's memory; everything else was torn down at shutdown.
        for mp in self.topo.get_mut().class_copies.drain(..) {
            // SAFETY: each copy came from Box::into_raw in load_class and is no longer linked
            // anywhere once the runtime's threads are gone.
            drop(unsafe { Box::from_raw(mp) });
        }
        self.bios.free_quarantine();
    }
}
