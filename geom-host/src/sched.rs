//! The scheduling seam: who runs the `g_event`, `g_down` and `g_up` queues, and how a thread
//! waits for something another queue will do.
//!
//! The queues themselves are data owned by the kernel ([`WorkQueue`]); this module decides
//! when their items run. The threaded mode gives each queue its own thread, as FreeBSD does.
//! All blocking in the runtime goes through [`SleepQueues::block`] (FreeBSD's sleep queues:
//! sleep on a channel address until a condition holds, woken by `wakeup(chan)`), so a
//! deterministic mode ([`Baton`]) can replace each wait by a seeded choice of which thread
//! runs next without touching the rest of the runtime.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub(crate) use crate::baton::Baton;
use crate::invariants::lock;

/// The three GEOM queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Queue {
    /// Topology events, orphans and withering (`g_event`).
    Event,
    /// Requests on their way to a start method (`g_down`).
    Down,
    /// Completions on their way to a done method (`g_up`).
    Up,
}

/// A queue of work items with a condition variable its runner sleeps on (threaded mode) or
/// the baton it waits for (deterministic mode).
pub(crate) struct WorkQueue<T> {
    state: Mutex<T>,
    cv: Condvar,
    baton: Option<Arc<Baton>>,
}

impl<T> WorkQueue<T> {
    pub(crate) fn new(state: T, baton: Option<Arc<Baton>>) -> Self {
        WorkQueue { state: Mutex::new(state), cv: Condvar::new(), baton }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        lock(&self.state)
    }

    /// Change the queue and wake its runner.
    pub(crate) fn push_with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let r = f(&mut self.lock());
        self.cv.notify_all();
        r
    }

    /// Wait until `take` yields work or `stop()` holds; `None` means stop.
    pub(crate) fn take_or_wait<W>(
        &self,
        mut take: impl FnMut(&mut T) -> Option<W>,
        stop: impl Fn() -> bool,
    ) -> Option<W> {
        if let Some(b) = &self.baton {
            // Every item is a scheduling point: another queue or a worker may go first.
            b.yield_now();
            let mut work = None;
            b.wait_until(
                || {
                    work = take(&mut self.lock());
                    work.is_some() || stop()
                },
                None,
            );
            return work;
        }
        let mut g = self.lock();
        loop {
            if let Some(w) = take(&mut g) {
                return Some(w);
            }
            if stop() {
                return None;
            }
            g = self.cv.wait_timeout(g, Duration::from_millis(100)).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Wake the runner (for shutdown).
    pub(crate) fn kick(&self) {
        let _g = self.lock();
        self.cv.notify_all();
    }

    /// Wait until `ready` holds on the queue's state (checked whenever the queue changes).
    pub(crate) fn wait_for(&self, ready: impl Fn(&T) -> bool) {
        if let Some(b) = &self.baton {
            b.wait_until(|| ready(&self.lock()), None);
            return;
        }
        let mut g = self.lock();
        while !ready(&g) {
            g = self.cv.wait_timeout(g, Duration::from_millis(100)).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

/// A FIFO of raw items (bios).
pub(crate) type Fifo<T> = WorkQueue<VecDeque<T>>;

const SLEEPQ_BUCKETS: usize = 64;

/// FreeBSD-style sleep queues: threads sleep on a channel (an address) and are woken by
/// `wakeup(chan)`. Channels hash onto a fixed set of buckets; a spurious wakeup only means the
/// condition is checked again.
pub(crate) struct SleepQueues {
    /// Each bucket counts the wakeups it has seen, so `msleep` can wait for "the next one".
    buckets: Vec<(Mutex<u64>, Condvar)>,
    /// The deterministic schedule, if the runtime runs under one.
    baton: Option<Arc<Baton>>,
    /// Deterministic mode only: per channel with sleepers, (wakeups seen, sleepers). Buckets
    /// would do for threads, but which channels share a bucket depends on addresses, and a
    /// spurious wakeup is a scheduling decision that must not depend on them.
    channels: Mutex<HashMap<usize, (u64, u32)>>,
}

impl SleepQueues {
    pub(crate) fn new(baton: Option<Arc<Baton>>) -> Self {
        SleepQueues {
            buckets: (0..SLEEPQ_BUCKETS).map(|_| (Mutex::new(0), Condvar::new())).collect(),
            baton,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// The deterministic schedule, if any.
    pub(crate) fn baton(&self) -> Option<&Baton> {
        self.baton.as_deref()
    }

    /// Wait until `ready()` holds (true) or `limit` passes (false), where no sleep channel is
    /// involved (a lock's owner, a counter): on the baton when deterministic (virtual time),
    /// else by polling every `poll`.
    pub(crate) fn poll_until(&self, poll: Duration, limit: Option<Duration>, mut ready: impl FnMut() -> bool) -> bool {
        match &self.baton {
            Some(b) => b.wait_until(ready, limit),
            None => {
                let start = Instant::now();
                while !ready() {
                    if limit.is_some_and(|l| start.elapsed() >= l) {
                        return false;
                    }
                    std::thread::sleep(poll);
                }
                true
            }
        }
    }

    /// `pause(9)`: let `d` pass (virtual time when deterministic).
    pub(crate) fn pause(&self, d: Duration) {
        match &self.baton {
            Some(b) => {
                b.wait_until(|| false, Some(d));
            }
            None => std::thread::sleep(d),
        }
    }

    fn bucket(&self, chan: usize) -> &(Mutex<u64>, Condvar) {
        // Channels are addresses: drop the low bits that alignment makes constant.
        &self.buckets[(chan >> 4).wrapping_mul(0x9E37_79B9) % SLEEPQ_BUCKETS]
    }

    /// Run `f` with the channel's bucket locked: state that a sleeper on `chan` tests must be
    /// changed inside such a section (or under a lock the sleeper also holds) before
    /// [`SleepQueues::wakeup`].
    pub(crate) fn with_chan<R>(&self, chan: usize, f: impl FnOnce() -> R) -> R {
        let _g = lock(&self.bucket(chan).0);
        f()
    }

    /// Sleep on `chan` until `ready()` holds, or the timeout passes. Returns false on timeout.
    pub(crate) fn block(&self, chan: usize, timeout: Option<Duration>, ready: impl Fn() -> bool) -> bool {
        self.sleep(chan, timeout, || {}, |_| ready())
    }

    /// `msleep`: run `before_sleep` with the channel's bucket locked (the caller drops its
    /// own mutex there, so no wakeup can slip between its test and the sleep), then sleep
    /// until the next `wakeup` of the bucket or the timeout. Returns false on timeout.
    pub(crate) fn sleep_once(&self, chan: usize, timeout: Option<Duration>, before_sleep: impl FnOnce()) -> bool {
        if let Some(b) = &self.baton {
            let start = {
                let mut chans = lock(&self.channels);
                let e = chans.entry(chan).or_insert((0, 0));
                e.1 += 1;
                e.0
            };
            before_sleep();
            let woken = b.wait_until(|| lock(&self.channels).get(&chan).is_some_and(|e| e.0 != start), timeout);
            let mut chans = lock(&self.channels);
            if let Some(e) = chans.get_mut(&chan) {
                e.1 -= 1;
                if e.1 == 0 {
                    chans.remove(&chan);
                }
            }
            return woken;
        }
        let start = *lock(&self.bucket(chan).0);
        // A wakeup between reading `start` and sleeping bumps the count, which ends the sleep.
        self.sleep(chan, timeout, before_sleep, move |gen| gen != start)
    }

    fn sleep(
        &self,
        chan: usize,
        timeout: Option<Duration>,
        before_sleep: impl FnOnce(),
        ready: impl Fn(u64) -> bool,
    ) -> bool {
        let (m, cv) = self.bucket(chan);
        if let Some(b) = &self.baton {
            before_sleep();
            return b.wait_until(|| ready(*lock(m)), timeout);
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut g = lock(m);
        before_sleep();
        loop {
            if ready(*g) {
                return true;
            }
            let wait = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return false,
                },
                None => Duration::from_millis(250),
            };
            g = cv.wait_timeout(g, wait).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// `wakeup(chan)`: wake every sleeper on the channel's bucket.
    pub(crate) fn wakeup(&self, chan: usize) {
        if self.baton.is_some() {
            if let Some(e) = lock(&self.channels).get_mut(&chan) {
                e.0 += 1;
            }
        }
        let (m, cv) = self.bucket(chan);
        let mut g = lock(m);
        *g = g.wrapping_add(1);
        cv.notify_all();
    }
}
