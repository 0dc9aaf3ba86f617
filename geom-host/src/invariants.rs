//! INVARIANTS-style checking: what a FreeBSD kernel built with `options INVARIANTS` (and a
//! careful reader of the GEOM manual pages) would catch, reported with enough context to find
//! the bug.
//!
//! By default a violation prints a report and aborts the process, as a `KASSERT` panics the
//! kernel. A runtime built with [`InvariantPolicy::Collect`] records violations instead and
//! carries on as safely as it can (the offending call is refused); tests use that to prove
//! each check fires.

use std::fmt;
use std::sync::Mutex;

/// What a runtime does when an invariant is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum InvariantPolicy {
    /// Print the report to stderr and abort the process (the default, like `KASSERT`).
    #[default]
    Abort,
    /// Record the report (see `Runtime::violations`) and refuse the offending call.
    Collect,
}

/// The kinds of broken rule the runtime detects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ViolationKind {
    /// `g_io_deliver` on a bio that was already delivered (or destroyed).
    BioDeliveredTwice,
    /// A bio still allocated when the runtime shut down.
    BioLeaked,
    /// A parent bio delivered while some of its clones had not come back.
    ParentDeliveredWithChildrenInFlight,
    /// `g_io_request` on a bio that is already in flight.
    BioRequestedTwice,
    /// `g_destroy_bio` on a bio in flight or already destroyed.
    BioDestroyedBadly,
    /// An access change that would leave a count below zero.
    AccessCountNegative,
    /// A sleeping KPI (`g_read_data`, `g_write_data`, `biowait`, waiting allocation,
    /// `msleep`, ...) called from start, done, or the `g_up`/`g_down` threads.
    SleepInIoPath,
    /// A topology KPI called without the topology lock.
    TopologyNotLocked,
    /// Any other `KASSERT` of the GEOM KPI (destroying an attached consumer, a provider on a
    /// geom without start, ...).
    Kassert,
    /// A KPI called from a thread that belongs to no runtime.
    NoRuntime,
    /// Under the deterministic schedule, a caller waits for something no task can ever do:
    /// every task is blocked and no timer is pending. (On a real kernel, a hang.)
    Deadlock,
}

/// One broken rule.
#[derive(Clone, Debug)]
pub struct Violation {
    /// What was broken.
    pub kind: ViolationKind,
    /// The report: which call, which object, what state.
    pub message: String,
    /// The thread it happened on.
    pub thread: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "geom-host INVARIANT {:?} on thread {}: {}", self.kind, self.thread, self.message)
    }
}

/// A runtime's invariant checker.
pub(crate) struct Invariants {
    policy: InvariantPolicy,
    seen: Mutex<Vec<Violation>>,
}

impl Invariants {
    pub(crate) fn new(policy: InvariantPolicy) -> Self {
        Invariants { policy, seen: Mutex::new(Vec::new()) }
    }

    /// Report a violation. Returns only under [`InvariantPolicy::Collect`]; the caller must
    /// then refuse the offending operation.
    pub(crate) fn report(&self, kind: ViolationKind, message: String) {
        let v = Violation { kind, message, thread: thread_name() };
        match self.policy {
            InvariantPolicy::Abort => abort_with(&v),
            InvariantPolicy::Collect => {
                eprintln!("{v}");
                lock(&self.seen).push(v);
            }
        }
    }

    pub(crate) fn all(&self) -> Vec<Violation> {
        lock(&self.seen).clone()
    }
}

/// Report and abort: the path for violations no runtime can own (see [`ViolationKind::NoRuntime`]).
pub(crate) fn abort_with(v: &Violation) -> ! {
    eprintln!("{v}");
    eprintln!("geom-host: aborting, as an INVARIANTS kernel would panic");
    std::process::abort()
}

pub(crate) fn thread_name() -> String {
    let t = std::thread::current();
    t.name().map(str::to_owned).unwrap_or_else(|| format!("{:?}", t.id()))
}

/// Lock a mutex, ignoring poisoning: a panicking test thread must not hide later reports.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
