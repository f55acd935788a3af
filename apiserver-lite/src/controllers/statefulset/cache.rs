//! What the StatefulSet controller knows: the sets, the pods, the claims and the ControllerRevisions
//! (followed with list-then-watch), and which sets to sync when.

use std::collections::BTreeMap;

use super::claims;
use crate::controllers::owners::{self, Applied, Key, Stored, key_of, str_at};
use crate::controllers::queue::Queue;
use crate::controllers::reflector::Change;
use crate::resources::{Kind, by_kind};

pub(super) struct Cache {
    pub(super) prefix: String,
    claims_prefix: String,
    pub(super) sets: BTreeMap<Key, Stored>,
    pub(super) pods: BTreeMap<Key, Stored>,
    /// The PersistentVolumeClaims of every namespace (kube's claim lister).
    pub(super) claims: BTreeMap<Key, Stored>,
    /// The ControllerRevisions of every namespace.
    pub(super) revisions: BTreeMap<Key, Stored>,
    revisions_prefix: String,
    /// Sets to sync; a timer looks at one again at a UNIX time (minReadySeconds, retries); an expectation
    /// waits for the pod view to reach the revision of its last pod write.
    pub(super) queue: Queue<Key>,
    pub(super) sets_listed: bool,
    pub(super) pods_listed: bool,
    pub(super) claims_listed: bool,
    revisions_listed: bool,
}

impl Cache {
    pub(super) fn new() -> Cache {
        Cache {
            prefix: by_kind(Kind::StatefulSet).prefix(None),
            claims_prefix: by_kind(Kind::PersistentVolumeClaim).prefix(None),
            sets: BTreeMap::new(),
            pods: BTreeMap::new(),
            claims: BTreeMap::new(),
            revisions: BTreeMap::new(),
            revisions_prefix: by_kind(Kind::ControllerRevision).prefix(None),
            queue: Queue::new(),
            sets_listed: false,
            pods_listed: false,
            claims_listed: false,
            revisions_listed: false,
        }
    }

    pub(super) fn set_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.sets = items
                    .iter()
                    .filter_map(|kv| Some((key_of(&self.prefix, kv)?, Stored::parse(kv)?)))
                    .collect();
                self.queue.mark_all(self.sets.keys().cloned());
                self.sets_listed = true;
            }
            Change::Put(kv) => {
                if let Some(key) = key_of(&self.prefix, &kv)
                    && let Some(set) = Stored::parse(&kv)
                {
                    self.sets.insert(key.clone(), set);
                    self.queue.mark(key);
                }
            }
            Change::Delete(kv) => {
                if let Some(key) = key_of(&self.prefix, &kv) {
                    self.sets.remove(&key);
                    self.queue.forget(&key);
                    self.queue.succeeded(&key);
                }
            }
        }
    }

    pub(super) fn pod_change(&mut self, change: Change) {
        match owners::apply(&mut self.pods, crate::controllers::PODS_PREFIX, change) {
            Some(Applied::Reset) => {
                self.queue.mark_all(self.sets.keys().cloned());
                self.pods_listed = true;
            }
            // Requeue the controller of the pod or, for an orphan, every set of its namespace selecting it.
            Some(Applied::Changed { key, old, new }) => {
                for pod in old.iter().chain(&new) {
                    self.queue
                        .mark_all(owners::sets_for(&self.sets, &key.0, pod));
                }
            }
            None => {}
        }
    }

    /// Requeue the sets of the claim's namespace it belongs to (`<template>-<set>-<ordinal>`): one
    /// waiting for a claim to go, or missing one.
    fn touch_sets_of_claim(&mut self, ns: &str, claim: &str) {
        for ((set_ns, name), set) in self.sets.range((ns.to_string(), String::new())..) {
            if set_ns != ns {
                break;
            }
            let names: Vec<&str> = claims::templates(&set.value)
                .iter()
                .map(|t| str_at(t, "/metadata/name"))
                .collect();
            if claims::is_claim_of(claim, name, &names) {
                self.queue.mark((set_ns.clone(), name.clone()));
            }
        }
    }

    pub(super) fn claim_change(&mut self, change: Change) {
        match owners::apply(&mut self.claims, &self.claims_prefix, change) {
            Some(Applied::Reset) => {
                self.queue.mark_all(self.sets.keys().cloned());
                self.claims_listed = true;
            }
            Some(Applied::Changed { key, .. }) => self.touch_sets_of_claim(&key.0, &key.1),
            None => {}
        }
    }

    pub(super) fn revision_change(&mut self, change: Change) {
        match owners::apply(&mut self.revisions, &self.revisions_prefix, change) {
            Some(Applied::Reset) => {
                self.queue.mark_all(self.sets.keys().cloned());
                self.revisions_listed = true;
            }
            // Requeue the set controlling a revision that changed (one deleted by hand is made again).
            Some(Applied::Changed {
                key,
                old: Some(old),
                ..
            }) => {
                self.queue
                    .mark_all(owners::controller_in(&self.sets, &key.0, &old));
            }
            Some(Applied::Changed { .. }) | None => {}
        }
    }

    /// Whether every view has been listed once.
    pub(super) fn listed(&self) -> bool {
        self.sets_listed && self.pods_listed && self.claims_listed && self.revisions_listed
    }
}
