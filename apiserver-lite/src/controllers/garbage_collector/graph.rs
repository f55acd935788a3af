//! The collector's view of the store (kube's `GraphBuilder`, reduced to what it needs): for every object
//! with owner references its key and its owners' uids, the reverse index owner uid → dependents' keys,
//! and the objects being deleted with one of the collector's finalizers. No object is kept whole.
//!
//! Each change returns the work it causes: dependents to check, owners to finish.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::Deserialize;

use super::decide::{self, DependentFacts, OwnerRef, OwnerState, Verdict};
use crate::handlers::{FINALIZER_FOREGROUND, FINALIZER_ORPHAN};
use crate::resources::{RESOURCES, ResourceDef};
use crate::store::KeyValue;

/// The part of a stored object the collector reads.
#[derive(Debug, Default, Deserialize)]
pub struct Object {
    #[serde(default)]
    pub metadata: Option<Meta>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub owner_references: Option<Vec<OwnerRef>>,
    #[serde(default)]
    pub deletion_timestamp: Option<String>,
    #[serde(default)]
    pub finalizers: Option<Vec<String>>,
}

impl Meta {
    /// The metadata of stored bytes; empty when they are not an object (logged: stored data is ours).
    pub fn parse(key: &str, bytes: &[u8]) -> Meta {
        match serde_json::from_slice::<Object>(bytes) {
            Ok(o) => o.metadata.unwrap_or_default(),
            Err(err) => {
                tracing::debug!(key, error = %err, "garbage collector: unreadable object");
                Meta::default()
            }
        }
    }

    pub fn uid(&self) -> &str {
        self.uid.as_deref().unwrap_or("")
    }

    pub fn refs(&self) -> &[OwnerRef] {
        self.owner_references.as_deref().unwrap_or(&[])
    }

    pub fn finalizers(&self) -> &[String] {
        self.finalizers.as_deref().unwrap_or(&[])
    }

    fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers().iter().any(|x| x == f)
    }

    /// How this object is being deleted, if with one of the collector's finalizers.
    pub fn deleting(&self) -> Option<Mode> {
        self.deletion_timestamp.as_ref()?;
        if self.has_finalizer(FINALIZER_ORPHAN) {
            Some(Mode::Orphan)
        } else if self.has_finalizer(FINALIZER_FOREGROUND) {
            Some(Mode::Foreground)
        } else {
            None
        }
    }
}

/// An object being deleted with a collector finalizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `orphan`: its dependents lose their references to it, then the finalizer goes.
    Orphan,
    /// `foregroundDeletion`: its dependents are deleted; the finalizer goes once none blocks it.
    Foreground,
}

/// Work for the collector, by store key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Work {
    /// Check a dependent's owners.
    Dependent(String),
    /// Orphan or delete the dependents of an object being deleted with a collector finalizer.
    Owner(String),
}

/// The resource and namespace of a store key, for the kinds in [`RESOURCES`] (other keys under
/// `/registry/`, like allocations, are not objects).
pub fn resolve_key(key: &str) -> Option<(&'static ResourceDef, Option<&str>, &str)> {
    let rest = key.strip_prefix("/registry/")?;
    let (storage, rest) = rest.split_once('/')?;
    // The first definition of a storage name is the stored form (core/v1 events before events.k8s.io).
    let def = RESOURCES.iter().find(|d| d.storage_name() == storage)?;
    if def.namespaced {
        let (ns, name) = rest.split_once('/')?;
        (!ns.is_empty() && !name.is_empty() && !name.contains('/')).then_some((def, Some(ns), name))
    } else {
        (!rest.is_empty() && !rest.contains('/')).then_some((def, None, rest))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    owner_uid: Box<str>,
    blocks: bool,
}

#[derive(Debug, Default)]
pub struct Graph {
    /// Objects with owner references: key → links to their owners.
    owners: HashMap<Arc<str>, Vec<Link>>,
    /// Owner uid → its dependents' keys.
    dependents: HashMap<Box<str>, HashSet<Arc<str>>>,
    /// Objects being deleted with a collector finalizer: uid → (key, mode).
    deleting: HashMap<Box<str>, (Arc<str>, Mode)>,
    /// Objects with owner references that are being deleted (`deletionTimestamp`): nothing to do for them
    /// but wait.
    terminating: HashSet<Arc<str>>,
}

/// A dependent of an owner, as the graph knows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DependentLink {
    pub key: String,
    /// Its reference has `blockOwnerDeletion: true`.
    pub blocks: bool,
    /// It is being deleted already.
    pub terminating: bool,
}

fn links(meta: &Meta) -> Vec<Link> {
    meta.refs()
        .iter()
        .filter(|r| !r.uid.is_empty())
        .map(|r| Link {
            owner_uid: r.uid.as_str().into(),
            blocks: r.blocks(),
        })
        .collect()
}

impl Graph {
    /// The dependents of the object with `uid`.
    pub fn dependents_of(&self, uid: &str) -> Vec<DependentLink> {
        let Some(keys) = self.dependents.get(uid) else {
            return Vec::new();
        };
        let mut out: Vec<DependentLink> =
            keys.iter()
                .map(|k| DependentLink {
                    key: k.to_string(),
                    blocks: self.owners.get(k).is_some_and(|links| {
                        links.iter().any(|l| &*l.owner_uid == uid && l.blocks)
                    }),
                    terminating: self.terminating.contains(k),
                })
                .collect();
        out.sort();
        out
    }

    /// Whether the object stored under `key` is deleting its dependents in the foreground.
    pub fn is_deleting_dependents(&self, key: &str) -> bool {
        self.deleting
            .values()
            .any(|(k, mode)| &**k == key && *mode == Mode::Foreground)
    }

    /// What the collector knows about the object with `uid` as an owner.
    pub fn facts(&self, uid: &str) -> DependentFacts {
        let deps = self.dependents.get(uid);
        DependentFacts {
            has_dependents: deps.is_some_and(|d| !d.is_empty()),
            dependent_deleting_dependents: deps
                .is_some_and(|d| d.iter().any(|k| self.is_deleting_dependents(k))),
        }
    }

    /// How many objects have owner references (for logs and tests).
    pub fn dependent_count(&self) -> usize {
        self.owners.len()
    }

    fn unlink(&mut self, key: &Arc<str>, old: &[Link]) {
        for l in old {
            if let Some(set) = self.dependents.get_mut(&l.owner_uid) {
                set.remove(key);
                if set.is_empty() {
                    self.dependents.remove(&l.owner_uid);
                }
            }
        }
    }

    /// Owners waiting in the foreground that a change of these links may unblock.
    fn waiting_owners(&self, links: &[Link], out: &mut BTreeSet<Work>) {
        for l in links {
            if let Some((key, Mode::Foreground)) = self.deleting.get(&l.owner_uid) {
                out.insert(Work::Owner(key.to_string()));
            }
        }
    }

    /// Record an object's links and deletion state; returns the work the change causes.
    fn put(&mut self, key: &str, meta: &Meta, out: &mut BTreeSet<Work>) {
        let new = links(meta);
        let old = self.owners.get(key).cloned().unwrap_or_default();
        if new != old {
            let shared: Arc<str> = self
                .owners
                .get_key_value(key)
                .map(|(k, _)| k.clone())
                .unwrap_or_else(|| key.into());
            self.unlink(&shared, &old);
            // Owners this object no longer blocks may finish; new owners must be checked.
            let released: Vec<Link> = old
                .iter()
                .filter(|l| l.blocks && !new.iter().any(|n| n.owner_uid == l.owner_uid && n.blocks))
                .cloned()
                .collect();
            self.waiting_owners(&released, out);
            if new
                .iter()
                .any(|n| !old.iter().any(|o| o.owner_uid == n.owner_uid))
            {
                out.insert(Work::Dependent(key.to_string()));
            }
            for l in &new {
                self.dependents
                    .entry(l.owner_uid.clone())
                    .or_default()
                    .insert(shared.clone());
            }
            if new.is_empty() {
                self.owners.remove(key);
            } else {
                self.owners.insert(shared, new);
            }
        }
        match self.owners.get_key_value(key) {
            Some((shared, _)) if meta.deletion_timestamp.is_some() => {
                let shared = shared.clone();
                self.terminating.insert(shared);
            }
            _ => {
                self.terminating.remove(key);
            }
        }
        let uid = meta.uid();
        if uid.is_empty() {
            return;
        }
        let before = self.deleting.get(uid).map(|(_, m)| *m);
        match meta.deleting() {
            Some(mode) if before != Some(mode) => {
                self.deleting.insert(uid.into(), (key.into(), mode));
                out.insert(Work::Owner(key.to_string()));
                if mode == Mode::Foreground {
                    // Every dependent now has an owner that waits for it.
                    for dep in self.dependents_of(uid) {
                        out.insert(Work::Dependent(dep.key));
                    }
                }
            }
            Some(_) => {}
            None => {
                self.deleting.remove(uid);
            }
        }
    }

    /// Forget a deleted object; its dependents must be checked.
    fn delete(&mut self, key: &str, meta: &Meta, out: &mut BTreeSet<Work>) {
        self.terminating.remove(key);
        if let Some((shared, old)) = self.owners.remove_entry(key) {
            self.unlink(&shared, &old);
            let blocking: Vec<Link> = old.into_iter().filter(|l| l.blocks).collect();
            self.waiting_owners(&blocking, out);
        }
        let uid = meta.uid();
        if uid.is_empty() {
            return;
        }
        self.deleting.remove(uid);
        for dep in self.dependents_of(uid) {
            out.insert(Work::Dependent(dep.key));
        }
    }

    /// Apply one watched change to an object key.
    pub fn apply_put(&mut self, kv: &KeyValue) -> BTreeSet<Work> {
        let mut out = BTreeSet::new();
        if resolve_key(&kv.key).is_some() {
            self.put(&kv.key, &Meta::parse(&kv.key, &kv.value), &mut out);
        }
        out
    }

    pub fn apply_delete(&mut self, kv: &KeyValue) -> BTreeSet<Work> {
        let mut out = BTreeSet::new();
        if resolve_key(&kv.key).is_some() {
            self.delete(&kv.key, &Meta::parse(&kv.key, &kv.value), &mut out);
        }
        out
    }

    /// Start over from a complete listing. The work returned is every dependent whose owners, as listed,
    /// are not all there (what changed while no collector watched) and every object being deleted with a
    /// collector finalizer.
    pub fn reset(&mut self, kvs: &[KeyValue]) -> BTreeSet<Work> {
        *self = Graph::default();
        let mut out = BTreeSet::new();
        let objects: Vec<(&str, Meta)> = kvs
            .iter()
            .filter(|kv| resolve_key(&kv.key).is_some())
            .map(|kv| (kv.key.as_str(), Meta::parse(&kv.key, &kv.value)))
            .collect();
        let mut listed: HashMap<&str, OwnerState> = HashMap::with_capacity(objects.len());
        for (key, meta) in &objects {
            listed.insert(
                key,
                OwnerState::Present {
                    uid: meta.uid().to_string(),
                    deleting_dependents: meta.deleting() == Some(Mode::Foreground),
                },
            );
            // New links would each ask for a check: the listing below decides instead.
            let mut ignored = BTreeSet::new();
            self.put(key, meta, &mut ignored);
            out.extend(ignored.into_iter().filter(|w| matches!(w, Work::Owner(_))));
        }
        for (key, meta) in &objects {
            if meta.refs().is_empty() {
                continue;
            }
            let ns = resolve_key(key).and_then(|(_, ns, _)| ns);
            let states: Vec<Option<OwnerState>> = meta
                .refs()
                .iter()
                .map(|r| {
                    decide::owner_target(ns, r).map(|t| {
                        listed
                            .get(t.key.as_str())
                            .cloned()
                            .unwrap_or(OwnerState::Absent)
                    })
                })
                .collect();
            let verdict = decide::decide(
                meta.refs(),
                &states,
                meta.finalizers(),
                self.facts(meta.uid()),
            );
            if !matches!(verdict, Verdict::Keep | Verdict::Unresolvable) {
                out.insert(Work::Dependent(key.to_string()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
