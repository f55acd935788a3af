//! The DaemonSet controller's views of DaemonSets, pods, nodes and ControllerRevisions, the sets to sync (dirty, failed,
//! timers), the expectations, and the per-node back-off of failed daemon pods.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use serde_json::{Value, json};

use super::super::owners::{self, Applied, Key, Stored, key_of};
use super::super::queue::Queue;
use super::super::reflector::Change;
use super::super::{NODES_PREFIX, PODS_PREFIX};
use crate::resources::{Kind, by_kind};
use crate::store::{KeyValue, Revision};

/// kube's `failedPodsBackoff`: 1 s, doubling, at most 15 min.
const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

/// A node as the eligibility checks see it, and what about it requeues DaemonSets.
pub(super) struct NodeEntry {
    pub(super) node: Node,
    /// Labels and taints: a change may change where daemon pods belong.
    shape: Value,
}

impl NodeEntry {
    fn parse(kv: &KeyValue) -> Option<(String, NodeEntry)> {
        let value: Value = serde_json::from_slice(&kv.value).ok()?;
        let node: Node = serde_json::from_value(value.clone()).ok()?;
        let name = node.metadata.name.clone()?;
        let shape = json!([
            value.pointer("/metadata/labels"),
            value.pointer("/spec/taints")
        ]);
        Some((name, NodeEntry { node, shape }))
    }
}

/// Per (DaemonSet uid, node): the current delay and when it was last raised.
pub(super) type Backoff = HashMap<(String, String), (Duration, Instant)>;

pub(super) struct Cache {
    pub(super) ds_prefix: String,
    pub(super) sets: BTreeMap<Key, Stored>,
    pub(super) pods: BTreeMap<Key, Stored>,
    pub(super) nodes: BTreeMap<String, NodeEntry>,
    pub(super) revisions_prefix: String,
    /// The ControllerRevisions of every namespace.
    pub(super) revisions: BTreeMap<Key, Stored>,
    /// DaemonSets to sync; a timer looks at one again at an instant (minReadySeconds, failed-pod backoff);
    /// an expectation waits for the pod view to reach the revision of its last pod write.
    pub(super) queue: Queue<Key, Revision, Instant>,
    pub(super) failed: BTreeSet<Key>,
    pub(super) backoff: Backoff,
    /// DaemonSets, pods, nodes, revisions.
    pub(super) listed: [bool; 4],
}

impl Cache {
    pub(super) fn new() -> Cache {
        Cache {
            ds_prefix: by_kind(Kind::DaemonSet).prefix(None),
            sets: BTreeMap::new(),
            pods: BTreeMap::new(),
            nodes: BTreeMap::new(),
            revisions_prefix: by_kind(Kind::ControllerRevision).prefix(None),
            revisions: BTreeMap::new(),
            queue: Queue::new(),
            failed: BTreeSet::new(),
            backoff: HashMap::new(),
            listed: [false; 4],
        }
    }

    pub(super) fn ds_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.sets = items
                    .iter()
                    .filter_map(|kv| Some((key_of(&self.ds_prefix, kv)?, Stored::parse(kv)?)))
                    .collect();
                self.queue.mark_all(self.sets.keys().cloned());
                self.listed[0] = true;
            }
            Change::Put(kv) => {
                if let Some(key) = key_of(&self.ds_prefix, &kv)
                    && let Some(ds) = Stored::parse(&kv)
                {
                    self.sets.insert(key.clone(), ds);
                    self.queue.mark(key);
                }
            }
            Change::Delete(kv) => {
                if let Some(key) = key_of(&self.ds_prefix, &kv)
                    && let Some(gone) = self.sets.remove(&key)
                {
                    self.queue.forget(&key);
                    self.backoff.retain(|(uid, _), _| uid != gone.uid());
                }
            }
        }
    }

    pub(super) fn pod_change(&mut self, change: Change) {
        match owners::apply(&mut self.pods, PODS_PREFIX, change) {
            Some(Applied::Reset) => {
                self.queue.mark_all(self.sets.keys().cloned());
                self.listed[1] = true;
            }
            // Requeue the controller of the pod or, for an orphan, every DaemonSet of its namespace selecting it.
            Some(Applied::Changed { key, old, new }) => {
                for pod in old.iter().chain(&new) {
                    self.queue
                        .mark_all(owners::sets_for(&self.sets, &key.0, pod));
                }
            }
            None => {}
        }
    }

    pub(super) fn revision_change(&mut self, change: Change) {
        match owners::apply(&mut self.revisions, &self.revisions_prefix, change) {
            Some(Applied::Reset) => {
                self.queue.mark_all(self.sets.keys().cloned());
                self.listed[3] = true;
            }
            // Requeue the DaemonSet controlling a revision that changed (one deleted by hand is made again).
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

    pub(super) fn node_change(&mut self, change: Change) {
        let changed = match change {
            Change::Reset(items) => {
                self.nodes = items.iter().filter_map(NodeEntry::parse).collect();
                self.listed[2] = true;
                true
            }
            Change::Put(kv) => match NodeEntry::parse(&kv) {
                Some((name, entry)) => {
                    let shape = entry.shape.clone();
                    self.nodes
                        .insert(name, entry)
                        .is_none_or(|old| old.shape != shape)
                }
                None => false,
            },
            Change::Delete(kv) => {
                let name = kv.key.strip_prefix(NODES_PREFIX).unwrap_or("");
                self.nodes.remove(name).is_some()
            }
        };
        if changed {
            self.queue.mark_all(self.sets.keys().cloned());
        }
    }
}

/// kube's `flowcontrol.Backoff` as the failed-pod check uses it: `true` while the node is backing off
/// (then `retry_at` is when to look again); otherwise the delay grows and the pod may go.
pub(super) fn backoff_holds(
    backoff: &mut Backoff,
    key: (String, String),
    now: Instant,
) -> Result<(), Instant> {
    match backoff.get_mut(&key) {
        Some((delay, last)) if now.duration_since(*last) < *delay => Err(*last + *delay),
        Some((delay, last)) => {
            *delay = if now.duration_since(*last) > 2 * BACKOFF_MAX {
                BACKOFF_INITIAL
            } else {
                (*delay * 2).min(BACKOFF_MAX)
            };
            *last = now;
            Ok(())
        }
        None => {
            backoff.insert(key, (BACKOFF_INITIAL, now));
            Ok(())
        }
    }
}

pub(super) fn set_timer(cache: &mut Cache, key: &Key, at: Instant) {
    cache.queue.no_later_than(key.clone(), at);
}
