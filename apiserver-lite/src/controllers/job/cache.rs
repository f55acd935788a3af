//! The Job controller's views of Jobs and pods, the Jobs to sync (dirty, failed, timers), the orphaned
//! tracked pods, the back-off records, and the expectations (store revisions the views must reach).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::super::PODS_PREFIX;
use super::super::owners::{self, Key, Selector, Stored, key_of, str_at};
use super::super::queue::Queue;
use super::super::reflector::Change;
use super::status::finished;
use super::{backoff, pods};
use crate::resources::{Kind, by_kind};
use crate::store::Revision;

/// The store revisions a Job's views must reach before it is synced again.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Expect {
    pub(super) pods: Revision,
    pub(super) jobs: Revision,
}

impl Expect {
    pub(super) fn pod(&mut self, v: &Value) {
        if let Ok(rev) = str_at(v, "/metadata/resourceVersion").parse::<Revision>() {
            self.pods = self.pods.max(rev);
        }
    }
    pub(super) fn job(&mut self, v: &Value) {
        if let Ok(rev) = str_at(v, "/metadata/resourceVersion").parse::<Revision>() {
            self.jobs = self.jobs.max(rev);
        }
    }
}

pub(super) struct Cache {
    pub(super) job_prefix: String,
    pub(super) jobs: BTreeMap<Key, Stored>,
    pub(super) pods: BTreeMap<Key, Stored>,
    /// Jobs to sync; a timer looks at one again at an instant (back-off, active deadline, TTL); an
    /// expectation waits for the views to reach its last writes.
    pub(super) queue: Queue<Key, Expect, Instant>,
    pub(super) failed: BTreeSet<Key>,
    /// Pods with the tracking finalizer whose Job may be gone or finished.
    pub(super) orphans: BTreeSet<Key>,
    /// Failures since the last success, per Job uid.
    pub(super) backoff: HashMap<String, backoff::Record>,
    pub(super) jobs_listed: bool,
    pub(super) pods_listed: bool,
}

impl Cache {
    pub(super) fn new() -> Cache {
        Cache {
            job_prefix: by_kind(Kind::Job).prefix(None),
            jobs: BTreeMap::new(),
            pods: BTreeMap::new(),
            queue: Queue::new(),
            failed: BTreeSet::new(),
            orphans: BTreeSet::new(),
            backoff: HashMap::new(),
            jobs_listed: false,
            pods_listed: false,
        }
    }

    pub(super) fn schedule(&mut self, key: &Key, after: Duration) {
        self.queue
            .no_later_than(key.clone(), Instant::now() + after);
    }

    pub(super) fn job_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.jobs = items
                    .iter()
                    .filter_map(|kv| Some((key_of(&self.job_prefix, kv)?, Stored::parse(kv)?)))
                    .collect();
                self.queue.mark_all(self.jobs.keys().cloned());
                let known: BTreeSet<String> =
                    self.jobs.values().map(|j| j.uid().to_string()).collect();
                self.backoff.retain(|uid, _| known.contains(uid));
                self.jobs_listed = true;
                let tracked: Vec<Key> = self
                    .pods
                    .iter()
                    .filter(|(_, p)| pods::has_tracking_finalizer(&p.value))
                    .map(|(k, _)| k.clone())
                    .collect();
                self.orphans.extend(tracked);
            }
            Change::Put(kv) => {
                if let Some(key) = key_of(&self.job_prefix, &kv)
                    && let Some(job) = Stored::parse(&kv)
                {
                    if finished(&job.value) {
                        self.backoff.remove(job.uid());
                    }
                    self.jobs.insert(key.clone(), job);
                    self.queue.mark(key);
                }
            }
            Change::Delete(kv) => {
                if let Some(key) = key_of(&self.job_prefix, &kv)
                    && let Some(gone) = self.jobs.remove(&key)
                {
                    self.queue.forget(&key);
                    self.backoff.remove(gone.uid());
                    // Its pods keep the finalizer until someone removes it.
                    let tracked: Vec<Key> = self
                        .pods
                        .range((key.0.clone(), String::new())..)
                        .take_while(|((ns, _), _)| *ns == key.0)
                        .filter(|(_, p)| {
                            pods::has_tracking_finalizer(&p.value)
                                && p.controller_uid() == Some(gone.uid())
                        })
                        .map(|(k, _)| k.clone())
                        .collect();
                    self.orphans.extend(tracked);
                }
            }
        }
    }

    /// Requeue the Job controlling `pod` or, for an orphan, every Job of its namespace selecting it; a
    /// tracked pod without a live Job is queued for finalizer removal.
    fn touch_owners_of(&mut self, key: &Key, pod: &Stored, mark_orphan: bool) {
        let owner = owners::controller_ref(&pod.value)
            .filter(|r| r.get("kind").and_then(Value::as_str) == Some("Job"))
            .and_then(|r| r.get("uid")?.as_str());
        let foreign = owners::controller_ref(&pod.value).is_some() && owner.is_none();
        let mut found = false;
        for ((ns, name), job) in self.jobs.range((key.0.clone(), String::new())..) {
            if *ns != key.0 {
                break;
            }
            let wanted = match owner {
                Some(uid) => uid == job.uid(),
                None if foreign => false,
                None => Selector::parse(job.value.pointer("/spec/selector"))
                    .is_some_and(|s| s.matches(&pod.labels())),
            };
            if wanted {
                found = owner.is_some();
                if finished(&job.value) {
                    found = false;
                }
                self.queue.mark((ns.clone(), name.clone()));
            }
        }
        if mark_orphan && !found && pods::has_tracking_finalizer(&pod.value) {
            self.orphans.insert(key.clone());
        }
    }

    pub(super) fn pod_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.pods = items
                    .iter()
                    .filter_map(|kv| Some((key_of(PODS_PREFIX, kv)?, Stored::parse(kv)?)))
                    .collect();
                let all: Vec<(Key, Stored)> = self
                    .pods
                    .iter()
                    .map(|(k, p)| (k.clone(), p.clone()))
                    .collect();
                for (key, pod) in all {
                    self.touch_owners_of(&key, &pod, true);
                }
                self.pods_listed = true;
            }
            Change::Put(kv) => {
                let Some(key) = key_of(PODS_PREFIX, &kv) else {
                    return;
                };
                self.orphans.remove(&key);
                // The previous owner too (the pod may have been released).
                if let Some(old) = self.pods.remove(&key) {
                    self.touch_owners_of(&key, &old, false);
                }
                if let Some(pod) = Stored::parse(&kv) {
                    self.touch_owners_of(&key, &pod, true);
                    self.pods.insert(key, pod);
                }
            }
            Change::Delete(kv) => {
                if let Some(key) = key_of(PODS_PREFIX, &kv)
                    && let Some(old) = self.pods.remove(&key)
                {
                    self.touch_owners_of(&key, &old, false);
                    self.orphans.remove(&key);
                }
            }
        }
    }
}
