//! The CronJob controller (kube-controller-manager's cronjob v2 controller): at each start time of a
//! CronJob's schedule it creates a Job `<cronjob>-<start time in minutes since the epoch>` from the job
//! template, following `concurrencyPolicy` (Allow, Forbid, Replace), `suspend` and
//! `startingDeadlineSeconds`; it keeps `status.active`, `lastScheduleTime` and `lastSuccessfulTime`, and
//! deletes the oldest finished Jobs beyond the history limits.
//!
//! CronJobs and Jobs are followed with list-then-watch; each CronJob is synced on a change of itself or of
//! a Job it controls, and again at its next start time. Time comes from a [`Clock`], so tests move it.

mod sync;
mod times;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;
use tokio::sync::watch;

use super::owners::{self, Key, Stored, key_of};
use super::reflector::{Change, Reflector};
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::store::Store;

/// Failed syncs are tried again this often.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Where the controller reads the time: the system clock, or one a test sets.
#[derive(Clone)]
pub struct Clock(Option<Arc<watch::Sender<Timestamp>>>);

impl Clock {
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that stands still at `start` until [`Clock::set`].
    #[cfg(test)]
    pub fn manual(start: Timestamp) -> Clock {
        Clock(Some(Arc::new(watch::channel(start).0)))
    }

    /// Move a manual clock (the controller looks at its CronJobs again).
    #[cfg(test)]
    pub fn set(&self, now: Timestamp) {
        if let Some(tx) = &self.0 {
            tx.send_replace(now);
        }
    }

    pub fn now(&self) -> Timestamp {
        match &self.0 {
            Some(tx) => *tx.borrow(),
            None => Timestamp::now(),
        }
    }

    fn subscribe(&self) -> Option<watch::Receiver<Timestamp>> {
        self.0.as_ref().map(|tx| tx.subscribe())
    }
}

/// Resolves when a manual clock moves; never for the system clock.
async fn moved(rx: &mut Option<watch::Receiver<Timestamp>>) {
    match rx {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

struct Cache {
    cronjob_prefix: String,
    job_prefix: String,
    cronjobs: BTreeMap<Key, Stored>,
    jobs: BTreeMap<Key, Stored>,
    dirty: BTreeSet<Key>,
    failed: BTreeSet<Key>,
    /// CronJobs to look at again at their next start time.
    timers: BTreeMap<Key, Timestamp>,
    cronjobs_listed: bool,
    jobs_listed: bool,
}

/// The CronJob controlling `job`: `(namespace, name)`.
fn owner_of(key: &Key, job: &Stored) -> Option<Key> {
    let r = owners::controller_ref(&job.value)?;
    if r.get("kind").and_then(Value::as_str) != Some("CronJob") {
        return None;
    }
    Some((key.0.clone(), r.get("name")?.as_str()?.to_string()))
}

impl Cache {
    fn cronjob_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.cronjobs = items
                    .iter()
                    .filter_map(|kv| Some((key_of(&self.cronjob_prefix, kv)?, Stored::parse(kv)?)))
                    .collect();
                self.timers.retain(|k, _| self.cronjobs.contains_key(k));
                self.dirty.extend(self.cronjobs.keys().cloned());
                self.cronjobs_listed = true;
            }
            Change::Put(kv) => {
                if let Some(key) = key_of(&self.cronjob_prefix, &kv)
                    && let Some(cj) = Stored::parse(&kv)
                {
                    self.cronjobs.insert(key.clone(), cj);
                    self.dirty.insert(key);
                }
            }
            Change::Delete(kv) => {
                if let Some(key) = key_of(&self.cronjob_prefix, &kv) {
                    self.cronjobs.remove(&key);
                    self.timers.remove(&key);
                    self.dirty.remove(&key);
                }
            }
        }
    }

    fn job_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.jobs = items
                    .iter()
                    .filter_map(|kv| Some((key_of(&self.job_prefix, kv)?, Stored::parse(kv)?)))
                    .collect();
                let owners: Vec<Key> = self
                    .jobs
                    .iter()
                    .filter_map(|(k, j)| owner_of(k, j))
                    .collect();
                self.dirty.extend(owners);
                self.jobs_listed = true;
            }
            Change::Put(kv) => {
                if let Some(key) = key_of(&self.job_prefix, &kv)
                    && let Some(job) = Stored::parse(&kv)
                {
                    self.dirty.extend(owner_of(&key, &job));
                    self.jobs.insert(key, job);
                }
            }
            Change::Delete(kv) => {
                if let Some(key) = key_of(&self.job_prefix, &kv)
                    && let Some(gone) = self.jobs.remove(&key)
                {
                    self.dirty.extend(owner_of(&key, &gone));
                }
            }
        }
    }

    /// The Jobs of namespace `ns` controlled by the CronJob with `uid`.
    fn jobs_of(&self, ns: &str, uid: &str) -> Vec<Stored> {
        self.jobs
            .range((ns.to_string(), String::new())..)
            .take_while(|((n, _), _)| n == ns)
            .filter(|(_, j)| j.controller_uid() == Some(uid))
            .map(|(_, j)| j.clone())
            .collect()
    }
}

/// Run the CronJob controller on the system clock until `shutdown` turns true.
pub async fn run(store: Arc<dyn Store>, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    run_with(store, Clock::system(), shutdown).await
}

/// [`run`] on `clock`.
pub async fn run_with(
    store: Arc<dyn Store>,
    clock: Clock,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let api = Api::new(store.clone());
    let mut cache = Cache {
        cronjob_prefix: by_kind(Kind::CronJob).prefix(None),
        job_prefix: by_kind(Kind::Job).prefix(None),
        cronjobs: BTreeMap::new(),
        jobs: BTreeMap::new(),
        dirty: BTreeSet::new(),
        failed: BTreeSet::new(),
        timers: BTreeMap::new(),
        cronjobs_listed: false,
        jobs_listed: false,
    };
    let mut cronjobs = Reflector::new(store.clone(), &cache.cronjob_prefix);
    let mut jobs = Reflector::new(store, &cache.job_prefix);
    let mut ticks = clock.subscribe();
    let mut retry = tokio::time::interval(RETRY_INTERVAL);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*shutdown.borrow() {
        let now = clock.now();
        let wait = cache
            .timers
            .values()
            .min()
            .map(|at| at.as_millisecond() - now.as_millisecond())
            .map_or(Duration::from_secs(3600), |ms| {
                Duration::from_millis(ms.clamp(0, 3_600_000) as u64)
            });
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            change = cronjobs.next() => cache.cronjob_change(change),
            change = jobs.next() => cache.job_change(change),
            // A test clock jumps: every CronJob may be due.
            _ = moved(&mut ticks) => cache.dirty.extend(cache.cronjobs.keys().cloned()),
            _ = retry.tick() => {
                let failed = std::mem::take(&mut cache.failed);
                cache.dirty.extend(failed);
            }
            _ = tokio::time::sleep(wait) => {}
        }
        jobs.drain(usize::MAX, |change| cache.job_change(change));
        cronjobs.drain(usize::MAX, |change| cache.cronjob_change(change));
        if !(cache.cronjobs_listed && cache.jobs_listed) {
            continue;
        }
        let now = clock.now();
        let due: Vec<Key> = cache
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            cache.timers.remove(&key);
            cache.dirty.insert(key);
        }
        let dirty: Vec<Key> = std::mem::take(&mut cache.dirty).into_iter().collect();
        for key in dirty {
            let Some(uid) = cache.cronjobs.get(&key).map(|c| c.uid().to_string()) else {
                continue;
            };
            let children = cache.jobs_of(&key.0, &uid);
            match sync::sync(&api, &clock, &key, &children).await {
                Ok(Some(at)) => {
                    cache.timers.insert(key, at);
                }
                Ok(None) => {
                    cache.timers.remove(&key);
                }
                Err(err) => {
                    tracing::warn!(cronjob = %format!("{}/{}", key.0, key.1), error = %err.message,
                        "failed to sync cronjob; will retry");
                    cache.failed.insert(key);
                }
            }
        }
    }
    Ok(())
}
