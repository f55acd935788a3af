//! The ReplicaSet controller (kube-controller-manager's): every ReplicaSet keeps `spec.replicas` active
//! pods made from its template. The same loop runs core/v1 ReplicationControllers (kube's replication
//! manager is the ReplicaSet controller over RCs): a [`Flavor`] says which kind, how its selector reads
//! (an RC's is a plain label map) and whose name its events carry.
//!
//! ReplicaSets and pods are followed with list-then-watch; a pod change requeues its controller (and, for
//! an orphan, the ReplicaSets of its namespace whose selector picks it), so the status follows pod
//! readiness within milliseconds. A sync claims pods (adopts selected orphans, releases pods that no longer
//! match), creates missing pods in slow-start batches (1, 2, 4, …) or deletes the surplus through the REST
//! delete (graceful), records events, and writes the status when it changed.
//!
//! Like kube's expectations, a ReplicaSet is not synced again until the pod view has caught up with the
//! pods it wrote (the store revision of its last write), so a slow watch never makes it create twice.

pub(crate) mod pods;
mod status;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::join_all;
use serde_json::Value;

use super::events::{self, EventType, ObjectRef};
use super::owners::{self, Applied, Claim, Key, Selector, Stored, int_at, key_of};
use super::queue::Queue;
use super::reflector::{Change, Reflector};
use crate::handlers::{Api, DeleteOpts};
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult};
use crate::store::{Revision, Store};

/// The field manager of the controller's writes (both flavours).
const MANAGER: &str = "kube-controller-manager";
/// At most this many pods are created or deleted in one sync (kube's `burstReplicas`).
const BURST: usize = 500;
/// At most this many already-delivered changes are folded into one round before syncing.
const BATCH: usize = 512;

/// What differs between the kinds the controller runs.
pub(crate) struct Flavor {
    pub kind: Kind,
    /// `apiVersion` and `kind` of the events' involved object.
    pub api_version: &'static str,
    pub kind_name: &'static str,
    /// The component of the controller's events (`replicaset-controller`, `replication-controller`).
    pub component: &'static str,
    /// The set's selector; `None` when malformed.
    pub selector: fn(&Value) -> Option<Selector>,
}

/// apps/v1 ReplicaSets.
pub(crate) static REPLICA_SET: Flavor = Flavor {
    kind: Kind::ReplicaSet,
    api_version: "apps/v1",
    kind_name: "ReplicaSet",
    component: "replicaset-controller",
    selector: |rs| Selector::parse(rs.pointer("/spec/selector")),
};

/// core/v1 ReplicationControllers: the selector map is `matchLabels`.
pub(crate) static REPLICATION_CONTROLLER: Flavor = Flavor {
    kind: Kind::ReplicationController,
    api_version: "v1",
    kind_name: "ReplicationController",
    component: "replication-controller",
    selector: |rc| {
        Selector::parse(Some(
            &crate::resources::replicationcontroller::label_selector(rc),
        ))
    },
};

impl Flavor {
    /// The sets of `ns` to requeue for `child`: its controller, or for an orphan every set selecting it
    /// (an empty selector selects nothing).
    fn sets_for(&self, sets: &BTreeMap<Key, Stored>, ns: &str, child: &Stored) -> Vec<Key> {
        let owner = child.controller_uid();
        sets.range((ns.to_string(), String::new())..)
            .take_while(|((set_ns, _), _)| set_ns == ns)
            .filter(|(_, set)| match owner {
                Some(uid) => uid == set.uid(),
                None => (self.selector)(&set.value)
                    .is_some_and(|s| !s.is_empty() && s.matches(&child.labels())),
            })
            .map(|(key, _)| key.clone())
            .collect()
    }
}

struct Cache {
    flavor: &'static Flavor,
    rs_prefix: String,
    sets: BTreeMap<Key, Stored>,
    pods: BTreeMap<Key, Stored>,
    /// ReplicaSets to sync; a timer looks at one again at a UNIX time (pods becoming available after
    /// minReadySeconds); an expectation waits for the pod view to reach the revision of its last pod write.
    queue: Queue<Key>,
    sets_listed: bool,
    pods_listed: bool,
}

impl Cache {
    fn new(flavor: &'static Flavor) -> Cache {
        Cache {
            flavor,
            rs_prefix: by_kind(flavor.kind).prefix(None),
            sets: BTreeMap::new(),
            pods: BTreeMap::new(),
            queue: Queue::new(),
            sets_listed: false,
            pods_listed: false,
        }
    }

    fn rs_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.sets = items
                    .iter()
                    .filter_map(|kv| Some((key_of(&self.rs_prefix, kv)?, Stored::parse(kv)?)))
                    .collect();
                self.queue.mark_all(self.sets.keys().cloned());
                self.sets_listed = true;
            }
            Change::Put(kv) => {
                if let Some(key) = key_of(&self.rs_prefix, &kv)
                    && let Some(rs) = Stored::parse(&kv)
                {
                    self.sets.insert(key.clone(), rs);
                    self.queue.mark(key);
                }
            }
            Change::Delete(kv) => {
                if let Some(key) = key_of(&self.rs_prefix, &kv) {
                    self.sets.remove(&key);
                    self.queue.forget(&key);
                }
            }
        }
    }

    fn pod_change(&mut self, change: Change) {
        match owners::apply(&mut self.pods, super::PODS_PREFIX, change) {
            Some(Applied::Reset) => {
                self.queue.mark_all(self.sets.keys().cloned());
                self.pods_listed = true;
            }
            // Requeue the controller of the pod or, for an orphan, every ReplicaSet of its namespace selecting it.
            Some(Applied::Changed { key, old, new }) => {
                for pod in old.iter().chain(&new) {
                    let sets = self.flavor.sets_for(&self.sets, &key.0, pod);
                    self.queue.mark_all(sets);
                }
            }
            None => {}
        }
    }
}

/// Run the ReplicaSet controller until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    run_flavor(&REPLICA_SET, store, shutdown).await
}

/// Run the ReplicationController controller (kube's replication manager) until `shutdown` turns true.
pub async fn run_replication(
    store: Arc<dyn Store>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    run_flavor(&REPLICATION_CONTROLLER, store, shutdown).await
}

async fn run_flavor(
    flavor: &'static Flavor,
    store: Arc<dyn Store>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let api = Api::new(store.clone());
    let mut cache = Cache::new(flavor);
    let mut sets = Reflector::new(store.clone(), &cache.rs_prefix);
    let mut pods = Reflector::new(store, super::PODS_PREFIX);
    while !*shutdown.borrow() {
        let timer = cache.queue.sleep_for(jiff::Timestamp::now().as_second());
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            change = sets.next() => cache.rs_change(change),
            change = pods.next() => cache.pod_change(change),
            _ = tokio::time::sleep(timer) => {}
        }
        pods.drain(BATCH, |change| cache.pod_change(change));
        sets.drain(BATCH, |change| cache.rs_change(change));
        if !(cache.sets_listed && cache.pods_listed) {
            continue;
        }
        let now = jiff::Timestamp::now().as_second();
        let seen = pods.revision();
        // A ReplicaSet waiting for the pod view stays dirty: synced again once the view has caught up.
        for key in cache.queue.take_ready(now, |rev| *rev > seen) {
            let result = sync(&api, &mut cache, &key).await;
            if result.is_ok() {
                cache.queue.succeeded(&key);
            }
            match result {
                Ok(Some(rev)) if rev > seen => {
                    cache.queue.expect(key, rev);
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(kind = flavor.kind_name, set = %format!("{}/{}", key.0, key.1),
                        error = %err.message, "failed to sync replica set; will retry");
                    cache.queue.failed(key, jiff::Timestamp::now().as_second());
                }
            }
        }
    }
    Ok(())
}

async fn event(
    api: &Api,
    flavor: &Flavor,
    rs: &Value,
    type_: EventType,
    reason: &str,
    message: &str,
) {
    let object = ObjectRef::of(flavor.api_version, flavor.kind_name, rs);
    events::record_for(
        api.store.as_ref(),
        flavor.component,
        &object,
        type_,
        reason,
        message,
    )
    .await;
}

/// Sync one ReplicaSet; `Some(revision)` of the last pod write it made.
async fn sync(api: &Api, cache: &mut Cache, key: &Key) -> ApiResult<Option<Revision>> {
    let Some(rs) = cache.sets.get(key).cloned() else {
        return Ok(None);
    };
    let (ns, _) = key;
    let flavor = cache.flavor;
    let Some(selector) = (flavor.selector)(&rs.value) else {
        tracing::warn!(kind = flavor.kind_name, set = %format!("{}/{}", key.0, key.1), "invalid selector; not syncing");
        return Ok(None);
    };
    let mut last_write: Option<Revision> = None;
    // Claim the active pods of the namespace.
    let candidates: Vec<Stored> = cache
        .pods
        .range((ns.clone(), String::new())..)
        .take_while(|((pod_ns, _), _)| pod_ns == ns)
        .map(|(_, p)| p)
        .filter(|p| pods::active(p))
        .cloned()
        .collect();
    let pod_def = by_kind(Kind::Pod);
    let mut owned: Vec<Stored> = Vec::new();
    for pod in candidates {
        let adopt = match owners::claim(rs.uid(), rs.deleting(), &selector, &pod) {
            Claim::Owned => {
                owned.push(pod);
                continue;
            }
            Claim::Ignore => continue,
            Claim::Adopt => true,
            Claim::Release => false,
        };
        let written = owners::rewrite_owner(api, pod_def, ns, pod.name(), &rs.value, adopt).await?;
        if let Some(written) = written {
            owners::note_write(&mut last_write, &written);
            if adopt {
                owned.push(Stored {
                    value: std::sync::Arc::new(written),
                    revision: pod.revision,
                });
            }
        }
    }
    let owned_refs: Vec<&Stored> = owned.iter().collect();
    let mut manage_error: Option<(String, ApiError)> = None;
    if !rs.deleting() {
        let want = int_at(&rs.value, "/spec/replicas").unwrap_or(1).max(0) as usize;
        if owned.len() < want {
            let count = (want - owned.len()).min(BURST);
            let (rev, err) = create_pods(api, flavor, &rs.value, count).await;
            if let Some(rev) = rev {
                last_write = Some(last_write.map_or(rev, |l| l.max(rev)));
            }
            manage_error = err.map(|e| ("FailedCreate".to_string(), e));
        } else if owned.len() > want {
            let victims = pods::to_delete(&owned_refs, (owned.len() - want).min(BURST));
            let (rev, err) = delete_pods(api, flavor, &rs.value, &victims).await;
            if let Some(rev) = rev {
                last_write = Some(last_write.map_or(rev, |l| l.max(rev)));
            }
            manage_error = err.map(|e| ("FailedDelete".to_string(), e));
        }
    }
    let now = jiff::Timestamp::now().as_second();
    let counts = pods::counts(&rs.value, &owned_refs, now);
    cache.queue.recheck(key, counts.recheck_at);
    status::write(api, flavor.kind, &rs.value, &counts, manage_error.as_ref()).await?;
    match manage_error {
        Some((_, e)) => Err(e),
        None => Ok(last_write),
    }
}

/// Create `count` pods in slow-start batches (1, 2, 4, …), stopping at the first batch with an error.
async fn create_pods(
    api: &Api,
    flavor: &Flavor,
    rs: &Value,
    count: usize,
) -> (Option<Revision>, Option<ApiError>) {
    let def = by_kind(Kind::Pod);
    let ns = owners::str_at(rs, "/metadata/namespace");
    let opts = super::object::write_opts(MANAGER);
    let mut last: Option<Revision> = None;
    let mut remaining = count;
    let mut batch = 1usize;
    while remaining > 0 {
        let size = batch.min(remaining);
        let results = join_all(
            (0..size).map(|_| api.create(def, Some(ns), pods::from_template(rs), &[], &opts)),
        )
        .await;
        let mut error = None;
        for result in results {
            match result {
                Ok((pod, _)) => {
                    let name = owners::str_at(&pod, "/metadata/name");
                    owners::note_write(&mut last, &pod);
                    event(
                        api,
                        flavor,
                        rs,
                        EventType::Normal,
                        "SuccessfulCreate",
                        &format!("Created pod: {name}"),
                    )
                    .await;
                }
                Err(e) => {
                    event(
                        api,
                        flavor,
                        rs,
                        EventType::Warning,
                        "FailedCreate",
                        &format!("Error creating: {}", e.message),
                    )
                    .await;
                    error = Some(e);
                }
            }
        }
        if error.is_some() {
            return (last, error);
        }
        remaining -= size;
        batch = batch.saturating_mul(2);
    }
    (last, None)
}

/// Delete `victims` through the REST delete (graceful), each guarded by its uid.
async fn delete_pods(
    api: &Api,
    flavor: &Flavor,
    rs: &Value,
    victims: &[Stored],
) -> (Option<Revision>, Option<ApiError>) {
    let def = by_kind(Kind::Pod);
    let ns = owners::str_at(rs, "/metadata/namespace");
    let results = join_all(victims.iter().map(|pod| {
        let opts = DeleteOpts {
            uid: Some(pod.uid().to_string()),
            ..DeleteOpts::default()
        };
        async move {
            (
                pod.name(),
                api.delete(def, Some(ns), pod.name(), &opts, false).await,
            )
        }
    }))
    .await;
    let mut last: Option<Revision> = None;
    let mut error = None;
    for (name, result) in results {
        match result {
            Ok(gone) => {
                owners::note_write(&mut last, &gone);
                event(
                    api,
                    flavor,
                    rs,
                    EventType::Normal,
                    "SuccessfulDelete",
                    &format!("Deleted pod: {name}"),
                )
                .await;
            }
            Err(e) if e.code == 404 || e.code == 409 => {}
            Err(e) => {
                event(
                    api,
                    flavor,
                    rs,
                    EventType::Warning,
                    "FailedDelete",
                    &format!("Error deleting: {}", e.message),
                )
                .await;
                error = Some(e);
            }
        }
    }
    (last, error)
}
