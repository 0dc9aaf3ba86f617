//! The scheduling seam: who runs the `g_event`, `g_down` and `g_up` queues, and how a thread
//! waits for something another queue will do.
//!
//! The queues themselves are data owned by the kernel ([`WorkQueue`]); this module decides
//! when their items run. The threaded mode gives each queue its own thread, as FreeBSD does.
//! All blocking in the runtime goes through [`SleepQueues::block`] (FreeBSD's sleep queues:
//! sleep on a channel address until a condition holds, woken by `wakeup(chan)`), so a
//! single-threaded mode can replace blocking by running queued work in a seeded order without
//! touching the rest of the runtime.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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

/// A queue of work items with a condition variable its runner sleeps on.
pub(crate) struct WorkQueue<T> {
    state: Mutex<T>,
    cv: Condvar,
}

impl<T> WorkQueue<T> {
    pub(crate) fn new(state: T) -> Self {
        WorkQueue { state: Mutex::new(state), cv: Condvar::new() }
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
}

impl SleepQueues {
    pub(crate) fn new() -> Self {
        SleepQueues { buckets: (0..SLEEPQ_BUCKETS).map(|_| (Mutex::new(0), Condvar::new())).collect() }
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
        let (m, cv) = self.bucket(chan);
        let mut g = lock(m);
        *g = g.wrapping_add(1);
        cv.notify_all();
    }
}
