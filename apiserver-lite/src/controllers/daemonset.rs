//! The DaemonSet controller (kube-controller-manager's `daemon` controller): one pod of each DaemonSet
//! on every node it belongs on.
//!
//! DaemonSets, pods and nodes are followed with list-then-watch. A pod change requeues its controller (or,
//! for an orphan, the DaemonSets of its namespace selecting it); a node that appears, goes, or changes its
//! labels or taints requeues every DaemonSet, so a new node gets its pods within milliseconds.
//!
//! A sync claims pods (adopts selected orphans, releases pods no longer selected), groups them by node
//! (`spec.nodeName`, or the node their affinity pins them to), and per node (see [`pods::should_run`]):
//! creates a pod pinned to the node with a required node affinity `metadata.name In [node]` (the scheduler
//! binds it), deletes surplus pods and pods on nodes that are no longer eligible, deletes failed pods (with
//! a per-node backoff of 1 s doubling to 15 min, kube's `failedPodsBackoff`) and succeeded ones. Deletion
//! goes through the REST delete (graceful). With `updateStrategy: RollingUpdate`, pods of an older template
//! (label `controller-revision-hash` / `pod-template-generation`) are replaced node by node within
//! `maxUnavailable` (or surged within `maxSurge`); with `OnDelete` only new pods get the new template.
//! Then the status is written (`observedGeneration` and kube's counters, what `kubectl rollout status`
//! reads). ControllerRevisions are not kept: the template hash is computed from the DaemonSet itself.
//!
//! Like kube's expectations, a DaemonSet is not synced again until the pod view has caught up with the
//! pods it wrote (the store revision of its last write), so a slow watch never makes it create twice.

mod plan;
mod pods;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::core::v1::Node;
use serde_json::{Value, json};

use super::deployment::template::pod_template_hash;
use super::events::{self, EventType, ObjectRef};
use super::owners::{self, Claim, Key, Selector, Stored, int_at, key_of, str_at};
use super::reflector::{Change, Reflector};
use crate::handlers::{Api, DeleteOpts};
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult};
use crate::store::{KeyValue, Revision, Store};

/// The component of the controller's events.
const COMPONENT: &str = "daemonset-controller";
const MANAGER: &str = "kube-controller-manager";
/// At most this many pods are created or deleted in one sync (kube's `burstReplicas`).
const BURST: usize = 250;
/// Failed syncs are tried again this often.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// At most this many already-delivered changes are folded into one round before syncing.
const BATCH: usize = 512;
/// kube's `failedPodsBackoff`: 1 s, doubling, at most 15 min.
const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(15 * 60);

/// A node as the eligibility checks see it, and what about it requeues DaemonSets.
struct NodeEntry {
    node: Node,
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
type Backoff = HashMap<(String, String), (Duration, Instant)>;

struct Cache {
    ds_prefix: String,
    sets: BTreeMap<Key, Stored>,
    pods: BTreeMap<Key, Stored>,
    nodes: BTreeMap<String, NodeEntry>,
    dirty: BTreeSet<Key>,
    failed: BTreeSet<Key>,
    /// DaemonSets waiting for the pod view to reach the revision of their last pod write.
    expect: HashMap<Key, Revision>,
    /// DaemonSets to look at again at an instant (minReadySeconds, failed-pod backoff).
    timers: BTreeMap<Key, Instant>,
    backoff: Backoff,
    listed: [bool; 3],
}

impl Cache {
    fn new() -> Cache {
        Cache {
            ds_prefix: by_kind(Kind::DaemonSet).prefix(None),
            sets: BTreeMap::new(),
            pods: BTreeMap::new(),
            nodes: BTreeMap::new(),
            dirty: BTreeSet::new(),
            failed: BTreeSet::new(),
            expect: HashMap::new(),
            timers: BTreeMap::new(),
            backoff: HashMap::new(),
            listed: [false; 3],
        }
    }

    fn ds_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.sets = items
                    .iter()
                    .filter_map(|kv| Some((key_of(&self.ds_prefix, kv)?, Stored::parse(kv)?)))
                    .collect();
                self.dirty.extend(self.sets.keys().cloned());
                self.listed[0] = true;
            }
            Change::Put(kv) => {
                if let Some(key) = key_of(&self.ds_prefix, &kv)
                    && let Some(ds) = Stored::parse(&kv)
                {
                    self.sets.insert(key.clone(), ds);
                    self.dirty.insert(key);
                }
            }
            Change::Delete(kv) => {
                if let Some(key) = key_of(&self.ds_prefix, &kv)
                    && let Some(gone) = self.sets.remove(&key)
                {
                    self.expect.remove(&key);
                    self.timers.remove(&key);
                    self.backoff.retain(|(uid, _), _| uid != gone.uid());
                }
            }
        }
    }

    /// Requeue the controller of `pod` or, for an orphan, every DaemonSet of its namespace selecting it.
    fn touch_owners_of(&mut self, ns: &str, pod: &Stored) {
        let owner = pod.controller_uid();
        for ((ds_ns, name), ds) in self.sets.range((ns.to_string(), String::new())..) {
            if ds_ns != ns {
                break;
            }
            let wanted = match owner {
                Some(uid) => uid == ds.uid(),
                None => Selector::parse(ds.value.pointer("/spec/selector"))
                    .is_some_and(|s| s.matches(&pod.labels())),
            };
            if wanted {
                self.dirty.insert((ds_ns.clone(), name.clone()));
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
                self.listed[1] = true;
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

    fn node_change(&mut self, change: Change) {
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
                let name = kv.key.strip_prefix(super::NODES_PREFIX).unwrap_or("");
                self.nodes.remove(name).is_some()
            }
        };
        if changed {
            self.dirty.extend(self.sets.keys().cloned());
        }
    }
}

/// Run the DaemonSet controller until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let api = Api::new(store.clone());
    let mut cache = Cache::new();
    let mut sets = Reflector::new(store.clone(), &cache.ds_prefix);
    let mut pods = Reflector::new(store.clone(), super::PODS_PREFIX);
    let mut nodes = Reflector::new(store, super::NODES_PREFIX);
    let mut retry = tokio::time::interval(RETRY_INTERVAL);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*shutdown.borrow() {
        let timer = cache
            .timers
            .values()
            .min()
            .map(|at| at.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(86_400));
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            change = sets.next() => cache.ds_change(change),
            change = pods.next() => cache.pod_change(change),
            change = nodes.next() => cache.node_change(change),
            _ = retry.tick() => {
                let failed = std::mem::take(&mut cache.failed);
                cache.dirty.extend(failed);
            }
            _ = tokio::time::sleep(timer) => {}
        }
        for _ in 0..BATCH {
            match pods.try_next() {
                Some(change) => cache.pod_change(change),
                None => break,
            }
        }
        for _ in 0..BATCH {
            match nodes.try_next() {
                Some(change) => cache.node_change(change),
                None => break,
            }
        }
        for _ in 0..BATCH {
            match sets.try_next() {
                Some(change) => cache.ds_change(change),
                None => break,
            }
        }
        if cache.listed.contains(&false) {
            continue;
        }
        let now = Instant::now();
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
                // Synced again once the pod view has caught up (the loop re-marks it then).
                cache.dirty.insert(key);
                continue;
            }
            match sync(&api, &mut cache, &key).await {
                Ok(Some(rev)) if rev > seen => {
                    cache.expect.insert(key, rev);
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(daemonset = %format!("{}/{}", key.0, key.1), error = %err.message,
                        "failed to sync daemon set; will retry");
                    cache.failed.insert(key);
                }
            }
        }
    }
    Ok(())
}

async fn event(api: &Api, ds: &Value, type_: EventType, reason: &str, message: &str) {
    let object = ObjectRef {
        api_version: "apps/v1".into(),
        kind: "DaemonSet".into(),
        namespace: str_at(ds, "/metadata/namespace").into(),
        name: str_at(ds, "/metadata/name").into(),
        uid: str_at(ds, "/metadata/uid").into(),
        resource_version: str_at(ds, "/metadata/resourceVersion").into(),
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
        tracing::warn!(daemonset = %object.name, error = %err, "failed to record event");
    }
}

/// The revision a write produced, folded into `last`.
fn note_write(last: &mut Option<Revision>, written: &Value) {
    if let Ok(rev) = str_at(written, "/metadata/resourceVersion").parse::<Revision>() {
        *last = Some(last.map_or(rev, |l| l.max(rev)));
    }
}

/// kube's `flowcontrol.Backoff` as the failed-pod check uses it: `true` while the node is backing off
/// (then `retry_at` is when to look again); otherwise the delay grows and the pod may go.
fn backoff_holds(
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

fn set_timer(cache: &mut Cache, key: &Key, at: Instant) {
    let slot = cache.timers.entry(key.clone()).or_insert(at);
    if at < *slot {
        *slot = at;
    }
}

/// Sync one DaemonSet; `Some(revision)` of the last pod write it made.
async fn sync(api: &Api, cache: &mut Cache, key: &Key) -> ApiResult<Option<Revision>> {
    let Some(ds) = cache.sets.get(key).cloned() else {
        return Ok(None);
    };
    // Its pods cannot be judged reliably while it goes (kube returns without a status update too).
    if ds.deleting() {
        return Ok(None);
    }
    let (ns, _) = key;
    let Some(selector) = Selector::parse(ds.value.pointer("/spec/selector")) else {
        tracing::warn!(daemonset = %format!("{}/{}", key.0, key.1), "invalid selector; not syncing");
        return Ok(None);
    };
    if selector.is_empty() {
        event(
            api,
            &ds.value,
            EventType::Warning,
            "SelectingAll",
            "This daemon set is selecting all pods. A non-empty selector is required.",
        )
        .await;
        return Ok(None);
    }
    let mut last_write: Option<Revision> = None;
    let owned = claim(api, &ds, &selector, cache, &mut last_write).await?;
    let Some(daemon_pod) = pods::daemon_pod(&ds.value) else {
        tracing::warn!(daemonset = %format!("{}/{}", key.0, key.1), "template is not a pod; not syncing");
        return Ok(None);
    };
    // Daemon pods by node; pods both finished and being deleted are done with.
    let mut node_pods: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
    for pod in owned {
        let terminal = matches!(str_at(&pod.value, "/status/phase"), "Succeeded" | "Failed");
        if terminal && pod.deleting() {
            continue;
        }
        if let Some(node) = pods::target_node(&pod.value) {
            node_pods.entry(node).or_default().push(pod);
        }
    }
    let hash = pod_template_hash(
        ds.value.pointer("/spec/template").unwrap_or(&Value::Null),
        int_at(&ds.value, "/status/collisionCount"),
    );
    let ctx = plan::Ctx {
        ds: &ds.value,
        hash: &hash,
        min_ready: int_at(&ds.value, "/spec/minReadySeconds").unwrap_or(0),
        now: jiff::Timestamp::now().as_second(),
    };
    let eligible: Vec<(String, bool, bool)> = cache
        .nodes
        .iter()
        .map(|(name, entry)| {
            let (run, keep) = pods::should_run(&daemon_pod, &entry.node);
            (name.clone(), run, keep)
        })
        .collect();
    // The manage step.
    let mut create_on: Vec<String> = Vec::new();
    let mut delete: Vec<Stored> = Vec::new();
    let now = Instant::now();
    for (node, run, keep) in &eligible {
        let on_node = node_pods.get(node).map(Vec::as_slice).unwrap_or(&[]);
        let p = plan::node_plan(&ctx, *run, *keep, on_node);
        if p.create {
            create_on.push(node.clone());
        }
        delete.extend(p.delete);
        for pod in p.failed {
            match backoff_holds(
                &mut cache.backoff,
                (ds.uid().to_string(), node.clone()),
                now,
            ) {
                Err(at) => set_timer(cache, key, at),
                Ok(()) => {
                    let msg = format!(
                        "Found failed daemon pod {ns}/{} on node {node}, will try to kill it",
                        pod.name()
                    );
                    event(api, &ds.value, EventType::Warning, "FailedDaemonPod", &msg).await;
                    delete.push(pod);
                }
            }
        }
        for pod in p.succeeded {
            let msg = format!(
                "Found succeeded daemon pod {ns}/{} on node {node}, will try to delete it",
                pod.name()
            );
            event(
                api,
                &ds.value,
                EventType::Normal,
                "SucceededDaemonPod",
                &msg,
            )
            .await;
            delete.push(pod);
        }
    }
    // Unscheduled pods pinned to nodes that no longer exist (bound ones are the pod GC's).
    for (node, on_node) in &node_pods {
        if !cache.nodes.contains_key(node) {
            delete.extend(
                on_node
                    .iter()
                    .filter(|p| str_at(&p.value, "/spec/nodeName").is_empty() && !p.deleting())
                    .cloned(),
            );
        }
    }
    let mut errors: Vec<ApiError> = Vec::new();
    let managed = !create_on.is_empty() || !delete.is_empty();
    write_pods(
        api,
        &ds.value,
        &hash,
        &create_on,
        &delete,
        &mut last_write,
        &mut errors,
    )
    .await;
    // The rolling update, once the manage step has nothing left to do (kube waits for its expectations).
    if !managed && errors.is_empty() {
        let mut update_view: BTreeMap<String, Vec<Stored>> = node_pods.clone();
        let mut desired = 0;
        for (node, run, _) in &eligible {
            if *run {
                desired += 1;
                update_view.entry(node.clone()).or_default();
            }
        }
        let (old, surge) = plan::rolling_update(&ctx, &update_view, desired);
        write_pods(
            api,
            &ds.value,
            &hash,
            &surge,
            &old,
            &mut last_write,
            &mut errors,
        )
        .await;
    }
    // The status, over what this sync saw.
    let counts = plan::counts(
        &ctx,
        eligible
            .iter()
            .map(|(node, run, _)| (*run, node_pods.get(node).map(Vec::as_slice).unwrap_or(&[]))),
    );
    if ctx.min_ready > 0 && counts.ready != counts.available {
        set_timer(
            cache,
            key,
            now + Duration::from_secs(ctx.min_ready.unsigned_abs()),
        );
    }
    write_status(api, &ds.value, &counts).await?;
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(last_write),
    }
}

/// Claim the DaemonSet's pods among its namespace's: adopt selected orphans, release unselected ones.
async fn claim(
    api: &Api,
    ds: &Stored,
    selector: &Selector,
    cache: &Cache,
    last_write: &mut Option<Revision>,
) -> ApiResult<Vec<Stored>> {
    let ns = str_at(&ds.value, "/metadata/namespace").to_string();
    let candidates: Vec<Stored> = cache
        .pods
        .range((ns.clone(), String::new())..)
        .take_while(|((pod_ns, _), _)| *pod_ns == ns)
        .map(|(_, p)| p.clone())
        .collect();
    let pod_def = by_kind(Kind::Pod);
    let opts = super::object::write_opts(MANAGER);
    let mut owned = Vec::new();
    for pod in candidates {
        let next = match owners::claim(ds.uid(), ds.deleting(), selector, &pod) {
            Claim::Owned => {
                owned.push(pod);
                continue;
            }
            Claim::Ignore => continue,
            Claim::Adopt => owners::with_controller(&pod.value, &ds.value),
            Claim::Release => Some(owners::without_owner(&pod.value, ds.uid())),
        };
        let Some(next) = next else { continue };
        let adopt = owners::controller_ref(&next).is_some();
        match api
            .update(pod_def, Some(&ns), pod.name(), None, next, &[], &opts)
            .await
        {
            Ok((written, _, _)) => {
                note_write(last_write, &written);
                if adopt {
                    owned.push(Stored {
                        value: written,
                        revision: pod.revision,
                    });
                }
            }
            // Gone or changed meanwhile: its watch event brings this set back.
            Err(e) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(owned)
}

/// Create a pod on each of `nodes` (slow-start batches 1, 2, 4, …, stopping at the first batch with an
/// error) and delete `victims` (graceful, guarded by uid); at most [`BURST`] of each.
async fn write_pods(
    api: &Api,
    ds: &Value,
    hash: &str,
    nodes: &[String],
    victims: &[Stored],
    last: &mut Option<Revision>,
    errors: &mut Vec<ApiError>,
) {
    let def = by_kind(Kind::Pod);
    let ns = str_at(ds, "/metadata/namespace");
    let opts = super::object::write_opts(MANAGER);
    let nodes = &nodes[..nodes.len().min(BURST)];
    let mut pos = 0;
    let mut batch = 1usize;
    while pos < nodes.len() {
        let chunk = &nodes[pos..(pos + batch).min(nodes.len())];
        let results = join_all(
            chunk
                .iter()
                .map(|node| api.create(def, Some(ns), pods::new_pod(ds, node, hash), &[], &opts)),
        )
        .await;
        let mut failed = false;
        for result in results {
            match result {
                Ok((pod, _)) => {
                    note_write(last, &pod);
                    let msg = format!("Created pod: {}", str_at(&pod, "/metadata/name"));
                    event(api, ds, EventType::Normal, "SuccessfulCreate", &msg).await;
                }
                Err(e) => {
                    let msg = format!("Error creating: {}", e.message);
                    event(api, ds, EventType::Warning, "FailedCreate", &msg).await;
                    errors.push(e);
                    failed = true;
                }
            }
        }
        if failed {
            break;
        }
        pos += chunk.len();
        batch = batch.saturating_mul(2);
    }
    let victims = &victims[..victims.len().min(BURST)];
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
    for (name, result) in results {
        match result {
            Ok(gone) => {
                note_write(last, &gone);
                let msg = format!("Deleted pod: {name}");
                event(api, ds, EventType::Normal, "SuccessfulDelete", &msg).await;
            }
            Err(e) if e.code == 404 || e.code == 409 => {}
            Err(e) => {
                let msg = format!("Error deleting: {}", e.message);
                event(api, ds, EventType::Warning, "FailedDelete", &msg).await;
                errors.push(e);
            }
        }
    }
}

/// The status kube writes: the four required counters always, the others when not zero (`omitempty`),
/// `observedGeneration`; what else is there (`collisionCount`, `conditions`) stays.
fn next_status(ds: &Value, c: &plan::Counts) -> Value {
    let mut status = ds
        .get("status")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (field, n) in [
        ("desiredNumberScheduled", c.desired),
        ("currentNumberScheduled", c.current),
        ("numberMisscheduled", c.misscheduled),
        ("numberReady", c.ready),
    ] {
        status.insert(field.into(), json!(n));
    }
    for (field, n) in [
        ("updatedNumberScheduled", c.updated),
        ("numberAvailable", c.available),
        ("numberUnavailable", c.desired - c.available),
    ] {
        if n != 0 {
            status.insert(field.into(), json!(n));
        } else {
            status.remove(field);
        }
    }
    if let Some(generation) = int_at(ds, "/metadata/generation") {
        status.insert("observedGeneration".into(), json!(generation));
    }
    Value::Object(status)
}

/// Write the status through `daemonsets/status` when it differs from the stored one.
async fn write_status(api: &Api, ds: &Value, counts: &plan::Counts) -> ApiResult<()> {
    let status = next_status(ds, counts);
    if ds.get("status") == Some(&status) {
        return Ok(());
    }
    let mut body = ds.clone();
    body["status"] = status;
    let def = by_kind(Kind::DaemonSet);
    let ns = str_at(ds, "/metadata/namespace");
    let name = str_at(ds, "/metadata/name");
    match api
        .update(
            def,
            Some(ns),
            name,
            Some("status"),
            body,
            &[],
            &super::object::write_opts(MANAGER),
        )
        .await
    {
        // A newer version is on its way through the watch; that sync writes the status then.
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
