//! The Deployment controller (kube-controller-manager's): each Deployment owns one ReplicaSet per pod
//! template, `<deployment>-<pod-template-hash>`, and moves replicas from the old ones to the new one
//! (RollingUpdate within maxSurge/maxUnavailable, or Recreate), keeps `revisionHistoryLimit` old ones,
//! and reports the rollout in its status (`Available`, `Progressing`) for `kubectl rollout status`.
//!
//! Deployments, ReplicaSets and pods are followed with list-then-watch. A ReplicaSet change requeues its
//! controller (an orphan: the Deployments selecting it); a pod change requeues the Deployment of its
//! ReplicaSet when that one uses Recreate (which waits for old pods to be gone). As in the ReplicaSet
//! controller, a Deployment is not synced again until the views have caught up with its own writes.

mod rollout;
mod status;
mod strategy;
mod sync;
pub(crate) mod template;

use std::collections::BTreeMap;
use std::sync::Arc;

use super::owners::{Key, Selector, Stored, key_of, str_at};
use super::queue::Queue;
use super::reflector::{Change, Reflector};
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::store::{Revision, Store};

const BATCH: usize = 512;

/// A pod as far as this controller cares: its controller and whether it has finished.
struct PodEntry {
    owner: Option<String>,
    finished: bool,
}

struct Cache {
    d_prefix: String,
    rs_prefix: String,
    deployments: BTreeMap<Key, Stored>,
    sets: BTreeMap<Key, Stored>,
    pods: BTreeMap<Key, PodEntry>,
    /// Deployments to sync; a timer looks at one again at a UNIX time (progress deadline); an expectation
    /// waits for the (ReplicaSet, Deployment) views to reach its last writes.
    queue: Queue<Key, (Revision, Revision)>,
    listed: [bool; 3],
}

impl Cache {
    fn new() -> Cache {
        Cache {
            d_prefix: by_kind(Kind::Deployment).prefix(None),
            rs_prefix: by_kind(Kind::ReplicaSet).prefix(None),
            deployments: BTreeMap::new(),
            sets: BTreeMap::new(),
            pods: BTreeMap::new(),
            queue: Queue::new(),
            listed: [false; 3],
        }
    }

    fn deployment_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.deployments = items
                    .iter()
                    .filter_map(|kv| Some((key_of(&self.d_prefix, kv)?, Stored::parse(kv)?)))
                    .collect();
                self.queue.mark_all(self.deployments.keys().cloned());
                self.listed[0] = true;
            }
            Change::Put(kv) => {
                if let Some(key) = key_of(&self.d_prefix, &kv)
                    && let Some(d) = Stored::parse(&kv)
                {
                    self.deployments.insert(key.clone(), d);
                    self.queue.mark(key);
                }
            }
            Change::Delete(kv) => {
                if let Some(key) = key_of(&self.d_prefix, &kv) {
                    self.deployments.remove(&key);
                    self.queue.forget(&key);
                }
            }
        }
    }

    /// Requeue the controller of `rs` or, for an orphan, the Deployments of its namespace selecting it.
    fn touch_owners_of(&mut self, ns: &str, rs: &Stored) {
        let owner = rs.controller_uid();
        for ((d_ns, name), d) in self.deployments.range((ns.to_string(), String::new())..) {
            if d_ns != ns {
                break;
            }
            let wanted = match owner {
                Some(uid) => uid == d.uid(),
                None => Selector::parse(d.value.pointer("/spec/selector"))
                    .is_some_and(|s| s.matches(&rs.labels())),
            };
            if wanted {
                self.queue.mark((d_ns.clone(), name.clone()));
            }
        }
    }

    fn rs_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.sets = items
                    .iter()
                    .filter_map(|kv| Some((key_of(&self.rs_prefix, kv)?, Stored::parse(kv)?)))
                    .collect();
                self.queue.mark_all(self.deployments.keys().cloned());
                self.listed[1] = true;
            }
            Change::Put(kv) => {
                let Some(key) = key_of(&self.rs_prefix, &kv) else {
                    return;
                };
                let old = match Stored::parse(&kv) {
                    Some(rs) => {
                        self.touch_owners_of(&key.0, &rs);
                        self.sets.insert(key.clone(), rs)
                    }
                    None => self.sets.remove(&key),
                };
                if let Some(old) = old {
                    self.touch_owners_of(&key.0, &old);
                }
            }
            Change::Delete(kv) => {
                if let Some(key) = key_of(&self.rs_prefix, &kv)
                    && let Some(old) = self.sets.remove(&key)
                {
                    self.touch_owners_of(&key.0, &old);
                }
            }
        }
    }

    /// A pod of a ReplicaSet of a Recreate Deployment changed: that Deployment may go on.
    fn touch_recreate_of(&mut self, ns: &str, rs_uid: &str) {
        let Some(rs) = self
            .sets
            .range((ns.to_string(), String::new())..)
            .take_while(|((n, _), _)| n == ns)
            .map(|(_, rs)| rs)
            .find(|rs| rs.uid() == rs_uid)
        else {
            return;
        };
        let Some(d_uid) = rs.controller_uid() else {
            return;
        };
        let found = self
            .deployments
            .range((ns.to_string(), String::new())..)
            .take_while(|((n, _), _)| n == ns)
            .find(|(_, d)| d.uid() == d_uid)
            .filter(|(_, d)| str_at(&d.value, "/spec/strategy/type") == "Recreate")
            .map(|(k, _)| k.clone());
        if let Some(key) = found {
            self.queue.mark(key);
        }
    }

    fn pod_change(&mut self, change: Change) {
        let entry = |pod: &Stored| PodEntry {
            owner: pod.controller_uid().map(str::to_string),
            finished: matches!(str_at(&pod.value, "/status/phase"), "Succeeded" | "Failed"),
        };
        match change {
            Change::Reset(items) => {
                self.pods = items
                    .iter()
                    .filter_map(|kv| {
                        Some((key_of(super::PODS_PREFIX, kv)?, entry(&Stored::parse(kv)?)))
                    })
                    .collect();
                self.queue.mark_all(self.deployments.keys().cloned());
                self.listed[2] = true;
            }
            Change::Put(kv) => {
                let Some(key) = key_of(super::PODS_PREFIX, &kv) else {
                    return;
                };
                let Some(pod) = Stored::parse(&kv) else {
                    return;
                };
                let next = entry(&pod);
                let old = self.pods.insert(key.clone(), entry(&pod));
                let changed = old
                    .as_ref()
                    .is_none_or(|o| o.finished != next.finished || o.owner != next.owner);
                if changed {
                    for uid in [old.and_then(|o| o.owner), next.owner]
                        .into_iter()
                        .flatten()
                    {
                        self.touch_recreate_of(&key.0, &uid);
                    }
                }
            }
            Change::Delete(kv) => {
                if let Some(key) = key_of(super::PODS_PREFIX, &kv)
                    && let Some(old) = self.pods.remove(&key)
                    && let Some(uid) = old.owner
                {
                    self.touch_recreate_of(&key.0, &uid);
                }
            }
        }
    }

    fn pod_owners(&self, ns: &str) -> sync::PodOwners {
        let mut owners = sync::PodOwners::default();
        for (_, pod) in self
            .pods
            .range((ns.to_string(), String::new())..)
            .take_while(|((n, _), _)| n == ns)
        {
            if let Some(uid) = &pod.owner {
                owners.any.insert(uid.clone());
                if !pod.finished {
                    owners.running.insert(uid.clone());
                }
            }
        }
        owners
    }

    fn sets_of(&self, ns: &str) -> Vec<Stored> {
        self.sets
            .range((ns.to_string(), String::new())..)
            .take_while(|((n, _), _)| n == ns)
            .map(|(_, rs)| rs.clone())
            .collect()
    }
}

/// Run the Deployment controller until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let api = Api::new(store.clone());
    let mut cache = Cache::new();
    let mut deployments = Reflector::new(store.clone(), &cache.d_prefix);
    let mut sets = Reflector::new(store.clone(), &cache.rs_prefix);
    let mut pods = Reflector::new(store, super::PODS_PREFIX);
    while !*shutdown.borrow() {
        let timer = cache.queue.sleep_for(jiff::Timestamp::now().as_second());
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            change = deployments.next() => cache.deployment_change(change),
            change = sets.next() => cache.rs_change(change),
            change = pods.next() => cache.pod_change(change),
            _ = tokio::time::sleep(timer) => {}
        }
        // Pods, then ReplicaSets, then Deployments: a view is never newer than the ones it is read with.
        pods.drain(BATCH, |change| cache.pod_change(change));
        sets.drain(BATCH, |change| cache.rs_change(change));
        deployments.drain(BATCH, |change| cache.deployment_change(change));
        if cache.listed.contains(&false) {
            continue;
        }
        let now = jiff::Timestamp::now().as_second();
        let seen = (sets.revision(), deployments.revision());
        // A Deployment waiting for the views stays dirty: synced again once they have caught up.
        let ready = cache
            .queue
            .take_ready(now, |(rs, d)| *rs > seen.0 || *d > seen.1);
        for key in ready {
            let Some(d) = cache.deployments.get(&key).cloned() else {
                continue;
            };
            let candidates = cache.sets_of(&key.0);
            let pod_owners = cache.pod_owners(&key.0);
            match sync::Sync::new(&api, &d).run(candidates, &pod_owners).await {
                Ok(out) => {
                    cache.queue.succeeded(&key);
                    let rs = out.rs_write.filter(|r| *r > seen.0).unwrap_or(0);
                    let dw = out.d_write.filter(|r| *r > seen.1).unwrap_or(0);
                    if rs > 0 || dw > 0 {
                        cache.queue.expect(key.clone(), (rs, dw));
                    }
                    cache.queue.recheck(&key, out.recheck_at);
                }
                Err(err) => {
                    tracing::warn!(deployment = %format!("{}/{}", key.0, key.1), error = %err.message,
                        "failed to sync deployment; will retry");
                    cache.queue.failed(key, jiff::Timestamp::now().as_second());
                }
            }
        }
    }
    Ok(())
}
