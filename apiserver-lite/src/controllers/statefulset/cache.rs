//! What the StatefulSet controller knows: the sets, the pods and the claims (followed with
//! list-then-watch), the templates of the sets' revisions, and which sets to sync when.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use super::{claims, pods};
use crate::controllers::owners::{Key, Selector, Stored, key_of, str_at};
use crate::controllers::reflector::Change;
use crate::resources::{Kind, by_kind};
use crate::store::Revision;

pub(super) struct Cache {
    pub(super) prefix: String,
    claims_prefix: String,
    pub(super) sets: BTreeMap<Key, Stored>,
    pub(super) pods: BTreeMap<Key, Stored>,
    /// The PersistentVolumeClaims of every namespace (kube's claim lister).
    pub(super) claims: BTreeMap<Key, Stored>,
    /// Templates of the revisions of each set (its current and its update revision).
    pub(super) templates: HashMap<Key, BTreeMap<String, Value>>,
    pub(super) dirty: BTreeSet<Key>,
    pub(super) failures: HashMap<Key, u32>,
    /// Sets waiting for the pod view to reach the revision of their last pod write.
    pub(super) expect: HashMap<Key, Revision>,
    /// Sets to look at again at a UNIX time (minReadySeconds, retries).
    pub(super) timers: BTreeMap<Key, i64>,
    pub(super) sets_listed: bool,
    pub(super) pods_listed: bool,
    pub(super) claims_listed: bool,
}

impl Cache {
    pub(super) fn new() -> Cache {
        Cache {
            prefix: by_kind(Kind::StatefulSet).prefix(None),
            claims_prefix: by_kind(Kind::PersistentVolumeClaim).prefix(None),
            sets: BTreeMap::new(),
            pods: BTreeMap::new(),
            claims: BTreeMap::new(),
            templates: HashMap::new(),
            dirty: BTreeSet::new(),
            failures: HashMap::new(),
            expect: HashMap::new(),
            timers: BTreeMap::new(),
            sets_listed: false,
            pods_listed: false,
            claims_listed: false,
        }
    }

    fn remember(&mut self, key: &Key, set: &Stored) {
        let template = set
            .value
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null);
        let revision = pods::revision_name(&set.value, &template);
        let current = str_at(&set.value, "/status/currentRevision").to_string();
        let known = self.templates.entry(key.clone()).or_default();
        known.retain(|r, _| *r == current);
        known.insert(revision, template);
    }

    pub(super) fn set_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.sets = items
                    .iter()
                    .filter_map(|kv| Some((key_of(&self.prefix, kv)?, Stored::parse(kv)?)))
                    .collect();
                let sets: Vec<(Key, Stored)> = self
                    .sets
                    .iter()
                    .map(|(k, s)| (k.clone(), s.clone()))
                    .collect();
                for (key, set) in &sets {
                    self.remember(key, set);
                }
                self.dirty.extend(self.sets.keys().cloned());
                self.sets_listed = true;
            }
            Change::Put(kv) => {
                if let Some(key) = key_of(&self.prefix, &kv)
                    && let Some(set) = Stored::parse(&kv)
                {
                    self.remember(&key, &set);
                    self.sets.insert(key.clone(), set);
                    self.dirty.insert(key);
                }
            }
            Change::Delete(kv) => {
                if let Some(key) = key_of(&self.prefix, &kv) {
                    self.sets.remove(&key);
                    self.templates.remove(&key);
                    self.expect.remove(&key);
                    self.timers.remove(&key);
                    self.failures.remove(&key);
                }
            }
        }
    }

    /// Requeue the controller of `pod` or, for an orphan, every set of its namespace selecting it.
    fn touch_owners_of(&mut self, ns: &str, pod: &Stored) {
        let owner = pod.controller_uid();
        for ((set_ns, name), set) in self.sets.range((ns.to_string(), String::new())..) {
            if set_ns != ns {
                break;
            }
            let wanted = match owner {
                Some(uid) => uid == set.uid(),
                None => Selector::parse(set.value.pointer("/spec/selector"))
                    .is_some_and(|s| s.matches(&pod.labels())),
            };
            if wanted {
                self.dirty.insert((set_ns.clone(), name.clone()));
            }
        }
    }

    pub(super) fn pod_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.pods = items
                    .iter()
                    .filter_map(|kv| {
                        Some((
                            key_of(crate::controllers::PODS_PREFIX, kv)?,
                            Stored::parse(kv)?,
                        ))
                    })
                    .collect();
                self.dirty.extend(self.sets.keys().cloned());
                self.pods_listed = true;
            }
            Change::Put(kv) => {
                let Some(key) = key_of(crate::controllers::PODS_PREFIX, &kv) else {
                    return;
                };
                let old = match Stored::parse(&kv) {
                    Some(pod) => {
                        self.touch_owners_of(&key.0, &pod);
                        self.pods.insert(key.clone(), pod)
                    }
                    None => self.pods.remove(&key),
                };
                if let Some(old) = old {
                    self.touch_owners_of(&key.0, &old);
                }
            }
            Change::Delete(kv) => {
                if let Some(key) = key_of(crate::controllers::PODS_PREFIX, &kv)
                    && let Some(old) = self.pods.remove(&key)
                {
                    self.touch_owners_of(&key.0, &old);
                }
            }
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
                self.dirty.insert((set_ns.clone(), name.clone()));
            }
        }
    }

    pub(super) fn claim_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.claims = items
                    .iter()
                    .filter_map(|kv| Some((key_of(&self.claims_prefix, kv)?, Stored::parse(kv)?)))
                    .collect();
                self.dirty.extend(self.sets.keys().cloned());
                self.claims_listed = true;
            }
            Change::Put(kv) => {
                if let Some(key) = key_of(&self.claims_prefix, &kv) {
                    match Stored::parse(&kv) {
                        Some(claim) => self.claims.insert(key.clone(), claim),
                        None => self.claims.remove(&key),
                    };
                    self.touch_sets_of_claim(&key.0, &key.1);
                }
            }
            Change::Delete(kv) => {
                if let Some(key) = key_of(&self.claims_prefix, &kv) {
                    self.claims.remove(&key);
                    self.touch_sets_of_claim(&key.0, &key.1);
                }
            }
        }
    }

    /// Whether every view has been listed once.
    pub(super) fn listed(&self) -> bool {
        self.sets_listed && self.pods_listed && self.claims_listed
    }
}
