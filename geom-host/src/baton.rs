//! The deterministic scheduler: every thread of a runtime is a *task*, and only the task
//! holding the baton runs. Where a task would block (a sleep queue, a GEOM queue, the topology
//! lock, a mutex, a pause), it hands the baton back and a seeded generator picks the next
//! task among those that may have something to do. With the same seed, the same program makes
//! the same choices, so the interleaving of `g_event`, `g_down`, `g_up`, the workers and the
//! caller replays exactly, and with it every `arc4random` a class draws and every byte.
//!
//! Tasks are kernel threads (started by the runtime and registered before they run) and
//! *foreign* threads: a thread outside the runtime becomes a task for the length of its
//! outermost call into the runtime. It enters only when the runtime is quiescent (no task
//! can make progress without time passing or someone calling in), and its call returns only
//! once the runtime is quiescent again, so what it sees between calls does not depend on
//! timing. Time is virtual: it advances, to the next deadline, only when nothing else can
//! run and a foreign task is waiting inside a call; with nobody inside, the runtime freezes.
//!
//! One driving thread gives full determinism; several foreign threads still work (they take
//! turns at quiescent points) but their order is up to the host's scheduler.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::invariants::lock;
use crate::rng::Rng;

thread_local! {
    /// The baton (its address) the calling thread is a task of, and its id there; id 0 when
    /// it is none. A thread is a task of at most one runtime at a time.
    static TASK: Cell<(usize, u64)> = const { Cell::new((0, 0)) };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Wants the baton (new, or yielded).
    Ready,
    /// Blocked on a condition it last found false at generation `checked`.
    Waiting { checked: u64 },
    /// Holds the baton.
    Running,
}

struct Task {
    /// Woken alone when the baton comes its way (waking every task at each hand-over would
    /// cost more than the work in between).
    turn: Arc<Condvar>,
    name: String,
    foreign: bool,
    state: State,
    /// Virtual time (ns) at which a timed wait gives up.
    deadline: Option<u64>,
}

struct Inner {
    holder: Option<u64>,
    tasks: BTreeMap<u64, Task>,
    next_id: u64,
    /// Bumped whenever a task hands the baton back after running: a condition found false
    /// before may hold now. A task woken only to find its condition still false does not
    /// bump it, so the search for a runnable task ends.
    generation: u64,
    rng: Rng,
    now_ns: u64,
    decisions: u64,
    /// FNV-1a over the sequence of chosen tasks' names: equal traces, equal schedules.
    trace: u64,
}

/// What the scheduler did so far: enough to tell two runs apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduleTrace {
    /// How many times the baton was handed to a task.
    pub decisions: u64,
    /// A hash of the sequence of tasks it was handed to.
    pub hash: u64,
    /// Virtual time, in nanoseconds since the runtime started.
    pub now_ns: u64,
}

/// The baton and its tasks (see the module documentation).
pub(crate) struct Baton {
    inner: Mutex<Inner>,
    /// Foreign threads waiting for the runtime to become quiescent.
    quiescent: Condvar,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

impl Baton {
    pub(crate) fn new(seed: u64) -> Baton {
        Baton {
            inner: Mutex::new(Inner {
                holder: None,
                tasks: BTreeMap::new(),
                next_id: 1,
                generation: 0,
                // Apart from arc4random's stream, which starts from the same seed.
                rng: Rng::new(seed ^ 0x5CED_5CED_5CED_5CED),
                now_ns: 0,
                decisions: 0,
                trace: FNV_OFFSET,
            }),
            quiescent: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// The calling thread's task id here, if it is one of this baton's tasks.
    fn current_task(&self) -> Option<u64> {
        let (baton, id) = TASK.with(Cell::get);
        (baton == self as *const Baton as usize && id != 0).then_some(id)
    }

    fn set_current_task(&self, id: u64) {
        TASK.with(|t| t.set(if id == 0 { (0, 0) } else { (self as *const Baton as usize, id) }));
    }

    fn wait_for_turn<'a>(&self, mut g: MutexGuard<'a, Inner>, id: u64) -> MutexGuard<'a, Inner> {
        let Some(turn) = g.tasks.get(&id).map(|t| Arc::clone(&t.turn)) else { return g };
        while g.holder != Some(id) {
            g = turn.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        if let Some(t) = g.tasks.get_mut(&id) {
            t.state = State::Running;
        }
        g
    }

    /// Hand the baton to a task that may make progress, chosen by the generator; with none,
    /// let virtual time pass if a foreign task waits inside a call, else leave the runtime
    /// quiescent (no holder).
    fn dispatch(&self, g: &mut Inner) {
        loop {
            let (generation, now) = (g.generation, g.now_ns);
            let candidates: Vec<u64> = g
                .tasks
                .iter()
                .filter(|(_, t)| match t.state {
                    State::Ready => true,
                    State::Waiting { checked } => checked < generation || t.deadline.is_some_and(|d| d <= now),
                    State::Running => false,
                })
                .map(|(&id, _)| id)
                .collect();
            if !candidates.is_empty() {
                let pick = candidates[g.rng.below(candidates.len() as u64) as usize];
                g.holder = Some(pick);
                g.decisions += 1;
                let name = g.tasks[&pick].name.as_bytes();
                let mut h = g.trace;
                for &b in name.iter().chain(&[0]) {
                    h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
                }
                g.trace = h;
                g.tasks[&pick].turn.notify_one();
                return;
            }
            let someone_inside = g.tasks.values().any(|t| t.foreign && matches!(t.state, State::Waiting { .. }));
            let next_deadline =
                g.tasks.values().filter(|t| matches!(t.state, State::Waiting { .. })).filter_map(|t| t.deadline).min();
            match next_deadline {
                Some(d) if someone_inside => g.now_ns = g.now_ns.max(d),
                None if someone_inside => {
                    let waiting: Vec<&str> = g.tasks.values().map(|t| t.name.as_str()).collect();
                    crate::invariants::abort_with(&crate::invariants::Violation {
                        kind: crate::invariants::ViolationKind::Deadlock,
                        message: format!(
                            "every task waits and nothing can wake them (tasks: {}; virtual time {} ns)",
                            waiting.join(", "),
                            g.now_ns
                        ),
                        thread: crate::invariants::thread_name(),
                    });
                }
                _ => {
                    g.holder = None;
                    self.quiescent.notify_all();
                    return;
                }
            }
        }
    }

    /// Register a kernel thread about to start; it runs when [`Baton::start_task`] is
    /// called on it and the baton comes its way.
    pub(crate) fn register(&self, name: String) -> u64 {
        let mut g = self.lock();
        let id = g.next_id;
        g.next_id += 1;
        g.tasks.insert(id, Task { turn: Arc::default(), name, foreign: false, state: State::Ready, deadline: None });
        if g.holder.is_none() {
            self.dispatch(&mut g);
        }
        id
    }

    /// First thing on a registered kernel thread: become task `id` and wait for the baton.
    pub(crate) fn start_task(&self, id: u64) {
        self.set_current_task(id);
        drop(self.wait_for_turn(self.lock(), id));
    }

    /// Last thing on a kernel thread: leave, handing the baton on.
    pub(crate) fn exit_task(&self) {
        let Some(id) = self.current_task() else { return };
        self.set_current_task(0);
        let mut g = self.lock();
        g.tasks.remove(&id);
        if g.holder == Some(id) {
            g.generation += 1;
            self.dispatch(&mut g);
        }
    }

    /// A registered task whose thread never started leaves the schedule.
    pub(crate) fn forget(&self, id: u64) {
        let mut g = self.lock();
        g.tasks.remove(&id);
        if g.holder == Some(id) {
            self.dispatch(&mut g);
        }
    }

    /// A foreign thread calls in: wait until the runtime is quiescent, then hold the baton
    /// as a task of its own. Returns false if the thread already is a task (a nested call).
    pub(crate) fn enter_foreign(&self) -> bool {
        if self.current_task().is_some() {
            return false;
        }
        assert!(
            TASK.with(Cell::get).1 == 0,
            "geom-host: a thread inside one deterministic runtime called into another"
        );
        let mut g = self.lock();
        while g.holder.is_some() {
            g = self.quiescent.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        let id = g.next_id;
        g.next_id += 1;
        let name = std::thread::current().name().unwrap_or("user").to_owned();
        let task = Task {
            turn: Arc::default(),
            name: format!("user:{name}"),
            foreign: true,
            state: State::Running,
            deadline: None,
        };
        g.tasks.insert(id, task);
        g.holder = Some(id);
        drop(g);
        self.set_current_task(id);
        true
    }

    /// The foreign call returns: hand the baton on, and wait until the runtime is quiescent
    /// again, so the caller's next look at it does not race the work its call started.
    pub(crate) fn leave_foreign(&self) {
        self.exit_task();
        let mut g = self.lock();
        while g.holder.is_some() {
            g = self.quiescent.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Block the calling task until `ready()` holds (true) or `timeout` of virtual time
    /// passes (false). `ready` runs with the baton held, so it sees a state no other task is
    /// changing.
    pub(crate) fn wait_until(&self, mut ready: impl FnMut() -> bool, timeout: Option<Duration>) -> bool {
        let Some(id) = self.current_task() else {
            // Not a task: a thread of the process that was never entered. It cannot take part
            // in the schedule; it may only poll, which the caller's condition allows.
            panic!("geom-host: a thread outside the deterministic schedule tried to block in the runtime");
        };
        let deadline = timeout.map(|t| self.lock().now_ns.saturating_add(t.as_nanos() as u64));
        let mut ran = true;
        loop {
            if ready() {
                return true;
            }
            let mut g = self.lock();
            if deadline.is_some_and(|d| g.now_ns >= d) {
                return false;
            }
            if ran {
                g.generation += 1;
            }
            let generation = g.generation;
            if let Some(t) = g.tasks.get_mut(&id) {
                t.state = State::Waiting { checked: generation };
                t.deadline = deadline;
            }
            self.dispatch(&mut g);
            let g = self.wait_for_turn(g, id);
            drop(g);
            ran = false;
        }
    }

    /// A scheduling point with nothing to wait for: let the generator pick who runs next
    /// (perhaps the caller again).
    pub(crate) fn yield_now(&self) {
        let Some(id) = self.current_task() else { return };
        let mut g = self.lock();
        g.generation += 1;
        if let Some(t) = g.tasks.get_mut(&id) {
            t.state = State::Ready;
        }
        self.dispatch(&mut g);
        drop(self.wait_for_turn(g, id));
    }

    /// Virtual time in nanoseconds.
    pub(crate) fn now_ns(&self) -> u64 {
        self.lock().now_ns
    }

    pub(crate) fn trace(&self) -> ScheduleTrace {
        let g = self.lock();
        ScheduleTrace { decisions: g.decisions, hash: g.trace, now_ns: g.now_ns }
    }
}
