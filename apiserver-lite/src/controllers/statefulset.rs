//! The StatefulSet controller (kube-controller-manager's): every StatefulSet keeps pods
//! `<set>-<ordinal>` for the ordinals `[spec.ordinals.start, start + spec.replicas)`, each with a stable
//! hostname and the subdomain `spec.serviceName`, in the order `podManagementPolicy` asks for, and rolls
//! template changes out from the highest ordinal down to the partition (see [`plan`]).
//!
//! StatefulSets and pods are followed with list-then-watch; a pod change requeues its controller (and,
//! for an orphan, the sets of its namespace whose selector picks it). Like the ReplicaSet controller, a
//! set is not synced again until the pod view has caught up with its last pod write.
//!
//! Revisions: no ControllerRevision objects; a revision is `<set>-<hash of the template>`, kept on the
//! pods as `controller-revision-hash` and in `status.currentRevision` / `updateRevision`. The templates of
//! revisions are remembered in memory as the sets change, so a pod below the partition that is deleted
//! comes back from the current revision's template; after a restart of the controllers, when that
//! template is not known any more, it comes back from the update revision's.

mod plan;
mod pods;
mod status;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::events::{self, EventType, ObjectRef};
use super::owners::{self, Claim, Key, Selector, Stored, int_at, key_of, str_at};
use super::reflector::{Change, Reflector};
use crate::handlers::{Api, DeleteOpts};
use crate::resources::{Kind, by_kind};
use crate::status::ApiResult;
use crate::store::{Revision, Store};
use plan::Action;

/// The component of the controller's events and its field manager.
const COMPONENT: &str = "statefulset-controller";
const MANAGER: &str = "kube-controller-manager";
/// At most this many already-delivered changes are folded into one round before syncing.
const BATCH: usize = 512;

struct Cache {
    prefix: String,
    sets: BTreeMap<Key, Stored>,
    pods: BTreeMap<Key, Stored>,
    /// Templates of the revisions of each set (its current and its update revision).
    templates: HashMap<Key, BTreeMap<String, Value>>,
    dirty: BTreeSet<Key>,
    failures: HashMap<Key, u32>,
    /// Sets waiting for the pod view to reach the revision of their last pod write.
    expect: HashMap<Key, Revision>,
    /// Sets to look at again at a UNIX time (minReadySeconds, retries).
    timers: BTreeMap<Key, i64>,
    sets_listed: bool,
    pods_listed: bool,
}

impl Cache {
    fn new() -> Cache {
        Cache {
            prefix: by_kind(Kind::StatefulSet).prefix(None),
            sets: BTreeMap::new(),
            pods: BTreeMap::new(),
            templates: HashMap::new(),
            dirty: BTreeSet::new(),
            failures: HashMap::new(),
            expect: HashMap::new(),
            timers: BTreeMap::new(),
            sets_listed: false,
            pods_listed: false,
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

    fn set_change(&mut self, change: Change) {
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

    fn pod_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.pods = items
                    .iter()
                    .filter_map(|kv| Some((key_of(super::PODS_PREFIX, kv)?, Stored::parse(kv)?)))
                    .collect();
                self.dirty.extend(self.sets.keys().cloned());
                self.pods_listed = true;
            }
            Change::Put(kv) => {
                let Some(key) = key_of(super::PODS_PREFIX, &kv) else {
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
                if let Some(key) = key_of(super::PODS_PREFIX, &kv)
                    && let Some(old) = self.pods.remove(&key)
                {
                    self.touch_owners_of(&key.0, &old);
                }
            }
        }
    }
}

/// Run the StatefulSet controller until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let api = Api::new(store.clone());
    let mut cache = Cache::new();
    let mut sets = Reflector::new(store.clone(), &cache.prefix);
    let mut pods = Reflector::new(store, super::PODS_PREFIX);
    while !*shutdown.borrow() {
        let timer = next_timer(&cache.timers);
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            change = sets.next() => cache.set_change(change),
            change = pods.next() => cache.pod_change(change),
            _ = tokio::time::sleep(timer) => {}
        }
        for _ in 0..BATCH {
            match pods.try_next() {
                Some(change) => cache.pod_change(change),
                None => break,
            }
        }
        for _ in 0..BATCH {
            match sets.try_next() {
                Some(change) => cache.set_change(change),
                None => break,
            }
        }
        if !(cache.sets_listed && cache.pods_listed) {
            continue;
        }
        let now = jiff::Timestamp::now().as_second();
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
        let seen = pods.revision();
        cache.expect.retain(|_, rev| *rev > seen);
        let dirty: Vec<Key> = std::mem::take(&mut cache.dirty).into_iter().collect();
        for key in dirty {
            if cache.expect.contains_key(&key) {
                cache.dirty.insert(key);
                continue;
            }
            match sync(&api, &mut cache, &key).await {
                Ok(last) => {
                    cache.failures.remove(&key);
                    if let Some(rev) = last.filter(|rev| *rev > seen) {
                        cache.expect.insert(key, rev);
                    }
                }
                Err(err) => {
                    tracing::warn!(statefulset = %format!("{}/{}", key.0, key.1), error = %err.message,
                        "failed to sync stateful set; will retry");
                    let n = cache.failures.entry(key.clone()).or_insert(0);
                    *n = n.saturating_add(1);
                    let at = jiff::Timestamp::now().as_second() + owners::backoff_secs(*n);
                    let timer = cache.timers.entry(key).or_insert(at);
                    *timer = (*timer).min(at);
                }
            }
        }
    }
    Ok(())
}

/// How long until the first timer (a day when there is none).
fn next_timer(timers: &BTreeMap<Key, i64>) -> Duration {
    let now = jiff::Timestamp::now().as_second();
    timers
        .values()
        .min()
        .map(|at| Duration::from_secs((at - now).max(0) as u64))
        .unwrap_or(Duration::from_secs(86_400))
}

async fn event(api: &Api, set: &Value, type_: EventType, reason: &str, message: &str) {
    let object = ObjectRef {
        api_version: "apps/v1".into(),
        kind: "StatefulSet".into(),
        namespace: str_at(set, "/metadata/namespace").into(),
        name: str_at(set, "/metadata/name").into(),
        uid: str_at(set, "/metadata/uid").into(),
        resource_version: str_at(set, "/metadata/resourceVersion").into(),
    };
    if let Err(err) = events::record_about(
        api.store.as_ref(),
        COMPONENT,
        &object,
        type_,
        reason,
        message,
    )
    .await
    {
        tracing::warn!(statefulset = %object.name, error = %err, "failed to record event");
    }
}

/// Claim the pods of the set's namespace that are its members (`<set>-<ordinal>`): adopt selected
/// orphans, release pods no longer selected. Returns the owned pods with their ordinals.
async fn claim_pods(
    api: &Api,
    cache: &Cache,
    set: &Stored,
    selector: &Selector,
    last_write: &mut Option<Revision>,
) -> ApiResult<Vec<(i64, Stored)>> {
    let ns = str_at(&set.value, "/metadata/namespace").to_string();
    let candidates: Vec<(i64, Stored)> = cache
        .pods
        .range((ns.clone(), String::new())..)
        .take_while(|((pod_ns, _), _)| *pod_ns == ns)
        .filter_map(|(_, p)| Some((pods::ordinal_of(set.name(), p.name())?, p.clone())))
        .collect();
    let pod_def = by_kind(Kind::Pod);
    let mut owned = Vec::new();
    for (ordinal, pod) in candidates {
        let adopt = match owners::claim(set.uid(), set.deleting(), selector, &pod) {
            Claim::Owned => {
                owned.push((ordinal, pod));
                continue;
            }
            Claim::Ignore => continue,
            Claim::Adopt => true,
            Claim::Release => false,
        };
        let written =
            owners::rewrite_owner(api, pod_def, &ns, pod.name(), &set.value, adopt).await?;
        if let Some(written) = written {
            owners::note_write(last_write, &written);
            if adopt {
                owned.push((
                    ordinal,
                    Stored {
                        value: std::sync::Arc::new(written),
                        revision: pod.revision,
                    },
                ));
            }
        }
    }
    Ok(owned)
}

/// Sync one StatefulSet; `Some(revision)` of the last pod write it made.
async fn sync(api: &Api, cache: &mut Cache, key: &Key) -> ApiResult<Option<Revision>> {
    let Some(set) = cache.sets.get(key).cloned() else {
        return Ok(None);
    };
    let Some(selector) = Selector::parse(set.value.pointer("/spec/selector")) else {
        tracing::warn!(statefulset = %format!("{}/{}", key.0, key.1), "invalid selector; not syncing");
        return Ok(None);
    };
    let mut last_write: Option<Revision> = None;
    let owned = claim_pods(api, cache, &set, &selector, &mut last_write).await?;
    let template = set
        .value
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    let update_revision = pods::revision_name(&set.value, &template);
    let stored_current = str_at(&set.value, "/status/currentRevision");
    let current_revision = if stored_current.is_empty() {
        update_revision.clone()
    } else {
        stored_current.to_string()
    };
    let now = jiff::Timestamp::now().as_second();
    let min_ready = int_at(&set.value, "/spec/minReadySeconds").unwrap_or(0);
    let (start, replicas) = pods::ordinal_range(&set.value);
    let rolling = str_at(&set.value, "/spec/updateStrategy/type") == "RollingUpdate";
    let partition = rolling
        .then(|| int_at(&set.value, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0));
    let mut failure = None;
    if !set.deleting() {
        let states: Vec<plan::PodState> = owned
            .iter()
            .map(|(ordinal, pod)| pods::state(pod, *ordinal, min_ready, now))
            .collect();
        let spec = plan::Spec {
            start,
            replicas,
            parallel: str_at(&set.value, "/spec/podManagementPolicy") == "Parallel",
            partition,
            update_revision: &update_revision,
        };
        for action in plan::plan(&spec, &states) {
            let result = match action {
                Action::Create(ordinal) => {
                    // Below the partition a pod comes back at the current revision, when it is known.
                    let old = partition
                        .filter(|p| ordinal - start < *p && current_revision != update_revision)
                        .and_then(|_| cache.templates.get(key)?.get(&current_revision));
                    let (template, revision) = match old {
                        Some(t) => (t, &current_revision),
                        None => (&template, &update_revision),
                    };
                    let pod = pods::new_pod(&set.value, template, revision, ordinal);
                    create_pod(api, &set.value, pod).await
                }
                Action::Delete(name) => match owned.iter().find(|(_, p)| p.name() == name) {
                    Some((_, pod)) => delete_pod(api, &set.value, pod).await,
                    None => Ok(None),
                },
            };
            match result {
                Ok(Some(written)) => owners::note_write(&mut last_write, &written),
                Ok(None) => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    let owned_refs: Vec<&Stored> = owned.iter().map(|(_, p)| p).collect();
    let counts = pods::counts(
        &owned_refs,
        &current_revision,
        &update_revision,
        min_ready,
        now,
    );
    match counts.recheck_at {
        Some(at) => cache.timers.insert(key.clone(), at),
        None => cache.timers.remove(key),
    };
    let (current, update) = status::revisions(&set.value, &update_revision, &counts);
    status::write(
        api,
        &set.value,
        status::next_status(&set.value, &counts, &current, &update),
    )
    .await?;
    match failure {
        Some(e) => Err(e),
        None => Ok(last_write),
    }
}

/// Create one pod; an existing pod of that name (the old one still going away) is no error.
async fn create_pod(api: &Api, set: &Value, pod: Value) -> ApiResult<Option<Value>> {
    let ns = str_at(set, "/metadata/namespace");
    let set_name = str_at(set, "/metadata/name");
    let name = str_at(&pod, "/metadata/name").to_string();
    let opts = super::object::write_opts(MANAGER);
    match api
        .create(by_kind(Kind::Pod), Some(ns), pod, &[], &opts)
        .await
    {
        Ok((written, _)) => {
            let message = format!("create Pod {name} in StatefulSet {set_name} successful");
            event(api, set, EventType::Normal, "SuccessfulCreate", &message).await;
            Ok(Some(written))
        }
        Err(e) if e.code == 409 => Ok(None),
        Err(e) => {
            let message = format!(
                "create Pod {name} in StatefulSet {set_name} failed error: {}",
                e.message
            );
            event(api, set, EventType::Warning, "FailedCreate", &message).await;
            Err(e)
        }
    }
}

/// Delete one pod through the REST delete (graceful), guarded by its uid.
async fn delete_pod(api: &Api, set: &Value, pod: &Stored) -> ApiResult<Option<Value>> {
    let ns = str_at(set, "/metadata/namespace");
    let set_name = str_at(set, "/metadata/name");
    let opts = DeleteOpts {
        uid: Some(pod.uid().to_string()),
        ..DeleteOpts::default()
    };
    match api
        .delete(by_kind(Kind::Pod), Some(ns), pod.name(), &opts, false)
        .await
    {
        Ok(gone) => {
            let message = format!(
                "delete Pod {} in StatefulSet {set_name} successful",
                pod.name()
            );
            event(api, set, EventType::Normal, "SuccessfulDelete", &message).await;
            Ok(Some(gone))
        }
        Err(e) if e.code == 404 || e.code == 409 => Ok(None),
        Err(e) => {
            let message = format!(
                "delete Pod {} in StatefulSet {set_name} failed error: {}",
                pod.name(),
                e.message
            );
            event(api, set, EventType::Warning, "FailedDelete", &message).await;
            Err(e)
        }
    }
}
