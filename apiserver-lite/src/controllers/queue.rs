//! The work queue the controllers share, in the shape of client-go's rate-limited delaying queue: the keys
//! to sync (dirty), per-key timers (a UNIX second to look at a key again), consecutive failures with their
//! back-off ([`owners::backoff_secs`]), and kube's expectations (a key is not synced again until the views
//! have caught up with what its last sync wrote). Time is always passed in, so the queue is pure.
//!
//! Timers are UNIX seconds by default; the DaemonSet and Job controllers, which retry failures on a fixed
//! tick rather than with a back-off, keep monotonic [`Instant`]s.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::owners;
use crate::store::Revision;

/// How long a controller sleeps when no timer is set.
const IDLE: Duration = Duration::from_secs(86_400);

/// A time a timer fires at.
pub trait Moment: Ord + Copy {
    /// How long from `now` until `self` (zero when it has passed).
    fn remaining(self, now: Self) -> Duration;
}

/// UNIX seconds.
impl Moment for i64 {
    fn remaining(self, now: i64) -> Duration {
        Duration::from_secs((self - now).max(0) as u64)
    }
}

impl Moment for Instant {
    fn remaining(self, now: Instant) -> Duration {
        self.saturating_duration_since(now)
    }
}

impl Moment for tokio::time::Instant {
    fn remaining(self, now: tokio::time::Instant) -> Duration {
        self.saturating_duration_since(now)
    }
}

/// Keys to sync, their timers, failures and expectations. `W` is what a key waits for after a write (the
/// store revision of its last write, for most controllers); controllers without expectations ignore it.
/// `T` is the time of the timers.
#[derive(Debug)]
pub struct Queue<K, W = Revision, T = i64> {
    dirty: BTreeSet<K>,
    timers: BTreeMap<K, T>,
    failures: BTreeMap<K, u32>,
    waiting: BTreeMap<K, W>,
}

impl<K: Ord + Clone, W, T> Default for Queue<K, W, T> {
    fn default() -> Self {
        Queue {
            dirty: BTreeSet::new(),
            timers: BTreeMap::new(),
            failures: BTreeMap::new(),
            waiting: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone, W, T: Moment> Queue<K, W, T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sync `key` in the next round.
    pub fn mark(&mut self, key: K) {
        self.dirty.insert(key);
    }

    /// Sync all of `keys` in the next round.
    pub fn mark_all(&mut self, keys: impl IntoIterator<Item = K>) {
        self.dirty.extend(keys);
    }

    /// Whether any key is marked.
    pub fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Look at `key` again at `at`, replacing its timer.
    pub fn after(&mut self, key: K, at: T) {
        self.timers.insert(key, at);
    }

    /// Look at `key` again at `at` at the latest: keeps an earlier timer.
    pub fn no_later_than(&mut self, key: K, at: T) {
        let timer = self.timers.entry(key).or_insert(at);
        *timer = (*timer).min(at);
    }

    /// Drop the timer of `key`.
    pub fn cancel(&mut self, key: &K) {
        self.timers.remove(key);
    }

    /// Set `key`'s timer to `at`, or drop it for `None` (a sync's "look again at").
    pub fn recheck(&mut self, key: &K, at: Option<T>) {
        match at {
            Some(at) => self.after(key.clone(), at),
            None => self.cancel(key),
        }
    }

    /// The object of `key` is gone: forget its timer and expectation (not its failures, which
    /// [`Queue::succeeded`] clears).
    pub fn forget(&mut self, key: &K) {
        self.timers.remove(key);
        self.waiting.remove(key);
    }

    /// How long from `now` until the first timer (a day when there is none).
    pub fn sleep_for(&self, now: T) -> Duration {
        self.timers
            .values()
            .min()
            .map_or(IDLE, |at| at.remaining(now))
    }

    /// Move the timers due at `now` into the dirty keys, then take all dirty keys (in key order).
    pub fn take_due_and_dirty(&mut self, now: T) -> Vec<K> {
        let due: Vec<K> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.timers.remove(&key);
            self.dirty.insert(key);
        }
        std::mem::take(&mut self.dirty).into_iter().collect()
    }

    /// [`Queue::take_due_and_dirty`] for controllers with expectations: first drops the expectations that
    /// `pending` says are met, then keeps the keys still waiting dirty (synced once the views have caught
    /// up) and returns the others.
    pub fn take_ready(&mut self, now: T, pending: impl Fn(&W) -> bool) -> Vec<K> {
        self.waiting.retain(|_, w| pending(w));
        let mut ready = self.take_due_and_dirty(now);
        ready.retain(|key| {
            let waits = self.waiting.contains_key(key);
            if waits {
                self.dirty.insert(key.clone());
            }
            !waits
        });
        ready
    }

    /// Do not sync `key` again until `pending` (see [`Queue::take_ready`]) says `waiting_for` is met.
    pub fn expect(&mut self, key: K, waiting_for: W) {
        self.waiting.insert(key, waiting_for);
    }

    /// A sync of `key` succeeded: its back-off starts over.
    pub fn succeeded(&mut self, key: &K) {
        self.failures.remove(key);
    }
}

impl<K: Ord + Clone, W> Queue<K, W, i64> {
    /// A sync of `key` failed at UNIX second `now`: count it and retry after the back-off (or earlier, when
    /// a timer is already set sooner). Returns the retry time.
    pub fn failed(&mut self, key: K, now: i64) -> i64 {
        let n = self.failures.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        let at = now + owners::backoff_secs(*n);
        self.no_later_than(key, at);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> Queue<&'static str> {
        Queue::new()
    }

    #[test]
    fn sleeps_until_the_first_timer_or_a_day() {
        let mut q = q();
        assert_eq!(q.sleep_for(100), IDLE);
        q.after("a", 130);
        q.after("b", 110);
        assert_eq!(q.sleep_for(100), Duration::from_secs(10));
        // A timer in the past wakes at once.
        assert_eq!(q.sleep_for(200), Duration::ZERO);
        q.cancel(&"b");
        assert_eq!(q.sleep_for(100), Duration::from_secs(30));
        q.recheck(&"a", None);
        assert_eq!(q.sleep_for(100), IDLE);
    }

    #[test]
    fn instants_work_as_timers() {
        let mut q: Queue<&str, (), Instant> = Queue::new();
        let now = Instant::now();
        q.no_later_than("a", now + Duration::from_secs(5));
        q.no_later_than("a", now + Duration::from_secs(9));
        assert_eq!(q.sleep_for(now), Duration::from_secs(5));
        assert!(q.take_due_and_dirty(now).is_empty());
        assert_eq!(
            q.take_due_and_dirty(now + Duration::from_secs(5)),
            vec!["a"]
        );
    }

    #[test]
    fn due_timers_join_the_dirty_keys_once() {
        let mut q = q();
        q.mark("c");
        q.after("a", 10);
        q.after("b", 20);
        assert_eq!(q.take_due_and_dirty(10), vec!["a", "c"]);
        assert!(q.take_due_and_dirty(10).is_empty());
        assert!(!q.has_dirty());
        assert_eq!(q.take_due_and_dirty(25), vec!["b"]);
        assert_eq!(q.sleep_for(25), IDLE);
    }

    #[test]
    fn failures_back_off_and_keep_an_earlier_timer() {
        let mut q = q();
        assert_eq!(q.failed("a", 100), 100 + owners::backoff_secs(1));
        assert_eq!(q.failed("a", 100), 100 + owners::backoff_secs(2));
        // The first (earlier) retry time stays.
        assert_eq!(
            q.sleep_for(100),
            Duration::from_secs(owners::backoff_secs(1) as u64)
        );
        q.succeeded(&"a");
        q.cancel(&"a");
        assert_eq!(q.failed("a", 100), 100 + owners::backoff_secs(1));
        // A sooner timer is kept over the back-off; a later one is pulled in.
        q.after("b", 100);
        q.failed("b", 100);
        assert_eq!(q.take_due_and_dirty(100), vec!["b"]);
        q.after("c", 10_000);
        let at = q.failed("c", 100);
        assert_eq!(q.take_due_and_dirty(at), vec!["a", "c"]);
    }

    #[test]
    fn expectations_hold_keys_back_until_met() {
        let mut q = q();
        q.expect("a", 7);
        q.mark_all(["a", "b"]);
        assert_eq!(q.take_ready(0, |rev| *rev > 5), vec!["b"]);
        // "a" stays dirty while it waits.
        assert!(q.has_dirty());
        assert_eq!(q.take_ready(0, |rev| *rev > 6), Vec::<&str>::new());
        assert_eq!(q.take_ready(0, |rev| *rev > 7), vec!["a"]);
        // A forgotten key waits no longer.
        q.expect("c", 9);
        q.forget(&"c");
        q.mark("c");
        assert_eq!(q.take_ready(0, |rev| *rev > 0), vec!["c"]);
    }
}
