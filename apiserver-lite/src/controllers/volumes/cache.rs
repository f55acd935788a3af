//! The volume controllers' view of the store: claims, volumes, classes, the pods that use claims and the
//! nodes' labels, and which claims and volumes a change makes worth syncing again.

use std::collections::BTreeMap;

use serde_json::Value;

use super::super::owners::{Key, Stored, key_of, labels_at, str_at};
use super::super::reflector::Change;
use super::{
    ANN_SELECTED_NODE, Controller, Item, bind_completed, claims_of_pod, matching, put_newer,
};
use crate::resources::{Kind, by_kind};
use crate::store::KeyValue;

pub(super) struct Cache {
    pub(super) claims: BTreeMap<Key, Stored>,
    pub(super) volumes: BTreeMap<String, Stored>,
    pub(super) classes: BTreeMap<String, Stored>,
    pub(super) pods: BTreeMap<Key, Stored>,
    /// Node name → labels (for volume node affinity).
    pub(super) nodes: BTreeMap<String, BTreeMap<String, String>>,
    /// Whether each view (claims, volumes, classes, pods, nodes) has had its first listing.
    pub(super) listed: [bool; 5],
}

impl Cache {
    pub(super) fn new() -> Cache {
        Cache {
            claims: BTreeMap::new(),
            volumes: BTreeMap::new(),
            classes: BTreeMap::new(),
            pods: BTreeMap::new(),
            nodes: BTreeMap::new(),
            listed: [false; 5],
        }
    }
}

/// `/registry/<resource>/<name>` → name (cluster-scoped objects).
fn name_of(prefix: &str, kv: &KeyValue) -> Option<String> {
    kv.key
        .strip_prefix(prefix)
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .map(str::to_string)
}

impl Controller {
    pub(super) fn claims_prefix() -> String {
        by_kind(Kind::PersistentVolumeClaim).prefix(None)
    }

    /// Mark every claim not bound yet (optionally only those `pick` chooses).
    fn touch_unbound(&mut self, pick: impl Fn(&Value) -> bool) {
        for (key, claim) in &self.cache.claims {
            if !bind_completed(&claim.value) && pick(&claim.value) {
                self.queue.mark(Item::Claim(key.clone()));
            }
        }
    }

    pub(super) fn claim_change(&mut self, change: Change) {
        let prefix = Self::claims_prefix();
        match change {
            Change::Reset(items) => {
                self.cache.claims = items
                    .iter()
                    .filter_map(|kv| Some((key_of(&prefix, kv)?, Stored::parse(kv)?)))
                    .collect();
                let keys: Vec<Key> = self.cache.claims.keys().cloned().collect();
                self.queue.mark_all(keys.into_iter().map(Item::Claim));
                // Claims deleted while the view was away: forget their events, release their volumes.
                let uids: std::collections::HashSet<&str> =
                    self.cache.claims.values().map(Stored::uid).collect();
                self.recorded.retain(|uid, _| uids.contains(uid.as_str()));
                let names: Vec<String> = self.cache.volumes.keys().cloned().collect();
                self.queue.mark_all(names.into_iter().map(Item::Volume));
                self.cache.listed[0] = true;
            }
            Change::Put(kv) => {
                let (Some(key), Some(claim)) = (key_of(&prefix, &kv), Stored::parse(&kv)) else {
                    return;
                };
                let volume = str_at(&claim.value, "/spec/volumeName").to_string();
                if !volume.is_empty() {
                    self.queue.mark(Item::Volume(volume));
                }
                put_newer(&mut self.cache.claims, key.clone(), claim);
                self.queue.mark(Item::Claim(key));
            }
            Change::Delete(kv) => {
                let Some(key) = key_of(&prefix, &kv) else {
                    return;
                };
                if let Some(old) = self.cache.claims.remove(&key) {
                    self.recorded.remove(old.uid());
                }
                // Its volume is Released now.
                for (name, volume) in &self.cache.volumes {
                    let r = volume.value.pointer("/spec/claimRef");
                    if r.is_some_and(|r| {
                        str_at(r, "/namespace") == key.0 && str_at(r, "/name") == key.1
                    }) {
                        self.queue.mark(Item::Volume(name.clone()));
                    }
                }
            }
        }
    }

    pub(super) fn volume_change(&mut self, change: Change) {
        let prefix = by_kind(Kind::PersistentVolume).prefix(None);
        match change {
            Change::Reset(items) => {
                self.cache.volumes = items
                    .iter()
                    .filter_map(|kv| Some((name_of(&prefix, kv)?, Stored::parse(kv)?)))
                    .collect();
                let names: Vec<String> = self.cache.volumes.keys().cloned().collect();
                self.queue.mark_all(names.into_iter().map(Item::Volume));
                self.touch_unbound(|_| true);
                self.cache.listed[1] = true;
            }
            Change::Put(kv) => {
                let (Some(name), Some(volume)) = (name_of(&prefix, &kv), Stored::parse(&kv)) else {
                    return;
                };
                self.touch_claim_of(&volume.value);
                // A volume that may be free now can satisfy any waiting claim.
                if str_at(&volume.value, "/status/phase") == "Available"
                    || volume
                        .value
                        .pointer("/spec/claimRef")
                        .is_none_or(Value::is_null)
                {
                    self.touch_unbound(|_| true);
                }
                put_newer(&mut self.cache.volumes, name.clone(), volume);
                self.queue.mark(Item::Volume(name));
            }
            Change::Delete(kv) => {
                let Some(name) = name_of(&prefix, &kv) else {
                    return;
                };
                if let Some(old) = self.cache.volumes.remove(&name) {
                    self.touch_claim_of(&old.value);
                }
                // Claims bound to it are Lost.
                for (key, claim) in &self.cache.claims {
                    if str_at(&claim.value, "/spec/volumeName") == name {
                        self.queue.mark(Item::Claim(key.clone()));
                    }
                }
            }
        }
    }

    /// Mark the claim a volume's `claimRef` names.
    fn touch_claim_of(&mut self, volume: &Value) {
        if let Some(r) = volume.pointer("/spec/claimRef").filter(|r| r.is_object()) {
            let key = (
                str_at(r, "/namespace").to_string(),
                str_at(r, "/name").to_string(),
            );
            if self.cache.claims.contains_key(&key) {
                self.queue.mark(Item::Claim(key));
            }
        }
    }

    pub(super) fn class_change(&mut self, change: Change) {
        let prefix = by_kind(Kind::StorageClass).prefix(None);
        let touched = match change {
            Change::Reset(items) => {
                self.cache.classes = items
                    .iter()
                    .filter_map(|kv| Some((name_of(&prefix, kv)?, Stored::parse(kv)?)))
                    .collect();
                self.cache.listed[2] = true;
                None
            }
            Change::Put(kv) => {
                let (Some(name), Some(class)) = (name_of(&prefix, &kv), Stored::parse(&kv)) else {
                    return;
                };
                self.cache.classes.insert(name.clone(), class);
                Some(name)
            }
            Change::Delete(kv) => {
                let name = name_of(&prefix, &kv);
                if let Some(name) = &name {
                    self.cache.classes.remove(name);
                }
                name
            }
        };
        match touched {
            Some(name) => self.touch_unbound(|c| matching::claim_class(c) == name),
            None => self.touch_unbound(|_| true),
        }
    }

    pub(super) fn pod_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.cache.pods = items
                    .iter()
                    .filter_map(|kv| {
                        Some((
                            key_of(crate::controllers::PODS_PREFIX, kv)?,
                            Stored::parse(kv)?,
                        ))
                    })
                    .filter(|(_, pod)| !claims_of_pod(&pod.value).is_empty())
                    .collect();
                let keys: Vec<Key> = self.cache.claims.keys().cloned().collect();
                self.queue.mark_all(keys.into_iter().map(Item::Claim));
                self.cache.listed[3] = true;
            }
            Change::Put(kv) => {
                let (Some(key), Some(pod)) = (
                    key_of(crate::controllers::PODS_PREFIX, &kv),
                    Stored::parse(&kv),
                ) else {
                    return;
                };
                let claims = claims_of_pod(&pod.value);
                if claims.is_empty() {
                    self.cache.pods.remove(&key);
                    return;
                }
                self.touch_claims_of_pod(&key.0, claims);
                self.cache.pods.insert(key, pod);
            }
            Change::Delete(kv) => {
                if let Some(key) = key_of(crate::controllers::PODS_PREFIX, &kv)
                    && let Some(old) = self.cache.pods.remove(&key)
                {
                    self.touch_claims_of_pod(&key.0, claims_of_pod(&old.value));
                }
            }
        }
    }

    /// Mark the claims a pod uses that a pod matters to: being deleted (protection) or not bound yet
    /// (waiting for the pod to be scheduled).
    fn touch_claims_of_pod(&mut self, ns: &str, claims: Vec<String>) {
        for name in claims {
            let key = (ns.to_string(), name);
            if let Some(claim) = self.cache.claims.get(&key)
                && (claim.deleting() || !bind_completed(&claim.value))
            {
                self.queue.mark(Item::Claim(key));
            }
        }
    }

    pub(super) fn node_change(&mut self, change: Change) {
        let touched = match change {
            Change::Reset(items) => {
                self.cache.nodes = items
                    .iter()
                    .filter_map(|kv| {
                        let name = name_of(crate::controllers::NODES_PREFIX, kv)?;
                        Some((
                            name,
                            labels_at(&Stored::parse(kv)?.value, "/metadata/labels"),
                        ))
                    })
                    .collect();
                self.cache.listed[4] = true;
                None
            }
            Change::Put(kv) => {
                let (Some(name), Some(node)) = (
                    name_of(crate::controllers::NODES_PREFIX, &kv),
                    Stored::parse(&kv),
                ) else {
                    return;
                };
                let labels = labels_at(&node.value, "/metadata/labels");
                if self.cache.nodes.get(&name) == Some(&labels) {
                    return;
                }
                self.cache.nodes.insert(name.clone(), labels);
                Some(name)
            }
            Change::Delete(kv) => {
                let name = name_of(crate::controllers::NODES_PREFIX, &kv);
                if let Some(name) = &name {
                    self.cache.nodes.remove(name);
                }
                name
            }
        };
        let selected = |c: &Value, node: &str| {
            c.pointer("/metadata/annotations")
                .and_then(|a| a.get(ANN_SELECTED_NODE))
                .and_then(Value::as_str)
                == Some(node)
        };
        match touched {
            Some(node) => self.touch_unbound(|c| selected(c, &node)),
            None => self.touch_unbound(|_| true),
        }
    }
}
