//! The scheduler: watches pods and nodes, places every pending pod of `default-scheduler` on a node that
//! passes the filters (readiness, unschedulable, taints, node selector/affinity, host ports, resources,
//! volumes), preferring the least allocated one, and binds it. Pods waiting together are placed by
//! `spec.priority`, highest first (kube's PrioritySort); there is no preemption.
//!
//! Like kube-scheduler it *assumes* a placement in its cache at once and binds in a separate task, so a
//! burst of pods is placed without waiting on a commit per pod and without overcommitting a node.
//!
//! It also follows claims, volumes and classes (kube's VolumeBinding plugin, `volumes`): a pod's claims must
//! exist and be bound, bound volumes must allow the node, and a pod with unbound `WaitForFirstConsumer`
//! claims is bound only after the provisioner has bound them to volumes on the node chosen for it
//! (`waiting`).

mod binding;
mod prebind;
pub(crate) mod predicates;
pub(crate) mod resources;
mod select;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_volumes;
mod volumes;
mod waiting;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::Value;
use tokio::sync::mpsc;

use super::reflector::{Change, Reflector};
use crate::handlers::Api;
use crate::store::{KeyValue, Revision, Store};
use binding::Outcome;
use predicates::HostPort;
use resources::{PODS, Resources};
use select::{NodeView, PodDemand};
use volumes::{ClaimUse, VolumeCache};
use waiting::{BIND_TIMEOUT, StorageReflectors, Waiting};

/// How often pods that did not fit are tried again even if nothing seems to have changed.
const RETRY_INTERVAL: Duration = Duration::from_secs(5);

struct PodEntry {
    revision: Revision,
    value: Value,
    pod: Pod,
    node: Option<String>,
    requests: Resources,
    requests_non_zero: Resources,
    ports: Vec<HostPort>,
    claims: Vec<ClaimUse>,
}

impl PodEntry {
    fn parse(kv: &KeyValue) -> Option<PodEntry> {
        let value: Value = serde_json::from_slice(&kv.value).ok()?;
        let pod: Pod = serde_json::from_value(value.clone()).ok()?;
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        Some(PodEntry {
            revision: kv.mod_revision,
            requests: resources::pod_requests(&pod, false),
            requests_non_zero: resources::pod_requests(&pod, true),
            ports: predicates::host_ports(&pod),
            claims: volumes::pod_claims(&pod),
            value,
            pod,
            node,
        })
    }

    fn terminal(&self) -> bool {
        matches!(
            self.pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
    }

    fn needs_scheduling(&self) -> bool {
        let Some(spec) = self.pod.spec.as_ref() else {
            return false;
        };
        self.node.is_none()
            && matches!(
                spec.scheduler_name.as_deref(),
                None | Some("") | Some(binding::COMPONENT)
            )
            && self.pod.metadata.deletion_timestamp.is_none()
            && spec.scheduling_gates.as_ref().is_none_or(Vec::is_empty)
            && !self.terminal()
    }

    /// The message of a `PodScheduled=False` condition already on the pod.
    fn reported_message(&self) -> Option<&str> {
        let conditions = self.pod.status.as_ref()?.conditions.as_ref()?;
        let condition = conditions
            .iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
        condition.message.as_deref()
    }
}

struct NodeEntry {
    node: Node,
    allocatable: Resources,
}

#[derive(Default)]
struct Usage {
    used: Resources,
    used_non_zero: Resources,
    ports: Vec<HostPort>,
}

impl Usage {
    fn add(&mut self, pod: &PodEntry) {
        for (into, from) in [
            (&mut self.used, &pod.requests),
            (&mut self.used_non_zero, &pod.requests_non_zero),
        ] {
            for (name, v) in from {
                *into.entry(name.clone()).or_insert(0) += v;
            }
            *into.entry(PODS.to_string()).or_insert(0) += 1000;
        }
        self.ports.extend(pod.ports.iter().cloned());
    }
}

struct Scheduler {
    store: Arc<dyn Store>,
    api: Arc<Api>,
    outcomes: mpsc::UnboundedSender<Outcome>,
    pods: HashMap<String, PodEntry>,
    nodes: BTreeMap<String, NodeEntry>,
    /// Pods with a bind in flight → the node they are assumed on.
    assumed: HashMap<String, String>,
    queue: VecDeque<String>,
    queued: HashSet<String>,
    /// Pods that fit nowhere → the message last reported for them.
    unschedulable: HashMap<String, String>,
    /// Pods whose bind failed; retried on the next tick.
    backoff: HashSet<String>,
    pods_synced: bool,
    nodes_synced: bool,
    volumes: VolumeCache,
    /// Claims, volumes, classes listed (by `waiting::StorageKind`).
    storage_synced: [bool; 3],
    /// Pods waiting (assumed on a node) for their `WaitForFirstConsumer` claims to be bound.
    waiting: HashMap<String, Waiting>,
    bind_timeout: Duration,
}

/// Run the scheduler until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    run_with(store, BIND_TIMEOUT, shutdown).await
}

/// [`run`] with how long a pod may wait for its claims to be bound.
pub(crate) async fn run_with(
    store: Arc<dyn Store>,
    bind_timeout: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (tx, mut outcomes) = mpsc::unbounded_channel();
    let mut scheduler = Scheduler {
        store: store.clone(),
        api: Arc::new(Api::new(store.clone())),
        outcomes: tx,
        pods: HashMap::new(),
        nodes: BTreeMap::new(),
        assumed: HashMap::new(),
        queue: VecDeque::new(),
        queued: HashSet::new(),
        unschedulable: HashMap::new(),
        backoff: HashSet::new(),
        pods_synced: false,
        nodes_synced: false,
        volumes: VolumeCache::default(),
        storage_synced: [false; 3],
        waiting: HashMap::new(),
        bind_timeout,
    };
    let mut pods = Reflector::new(store.clone(), super::PODS_PREFIX);
    let mut nodes = Reflector::new(store.clone(), super::NODES_PREFIX);
    let mut storage = StorageReflectors::new(&store);
    let mut retry = tokio::time::interval(RETRY_INTERVAL);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // List pods before nodes and storage, so those views are never older than the pod view they decide on.
    tokio::select! {
        changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return Ok(()) },
        _ = async {
            let change = pods.next().await;
            scheduler.on_pod_change(change);
            let change = nodes.next().await;
            scheduler.on_node_change(change);
            storage.list(&mut scheduler).await;
        } => {}
    }
    scheduler.schedule_pending();
    while !*shutdown.borrow() {
        let deadline = scheduler.next_deadline();
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            change = pods.next() => {
                // Node and storage changes committed before this pod change are already queued: apply them
                // first.
                while let Some(node_change) = nodes.try_next() {
                    scheduler.on_node_change(node_change);
                }
                storage.drain(&mut scheduler);
                scheduler.on_pod_change(change);
            }
            change = nodes.next() => scheduler.on_node_change(change),
            (kind, change) = storage.next() => {
                scheduler.on_storage_change(kind, change);
                // What a claim refers to may have changed with it: decide on the newest view.
                storage.drain(&mut scheduler);
            }
            Some(outcome) = outcomes.recv() => scheduler.on_outcome(outcome),
            _ = retry.tick() => scheduler.retry_all(),
            _ = waiting::sleep_until(deadline) => scheduler.expire_waiting(),
        }
        scheduler.schedule_pending();
    }
    Ok(())
}

impl Scheduler {
    fn enqueue(&mut self, key: &str) {
        if self.queued.insert(key.to_string()) {
            self.queue.push_back(key.to_string());
        }
    }

    fn retry_all(&mut self) {
        let keys: Vec<String> = self
            .unschedulable
            .keys()
            .chain(self.backoff.iter())
            .cloned()
            .collect();
        self.backoff.clear();
        for key in keys {
            self.enqueue(&key);
        }
    }

    fn on_pod_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.pods.clear();
                for kv in &items {
                    self.put_pod(kv);
                }
                self.unschedulable
                    .retain(|key, _| self.pods.contains_key(key));
                self.pods_synced = true;
                self.check_all_waiting();
            }
            Change::Put(kv) => self.put_pod(&kv),
            Change::Delete(kv) => {
                self.pods.remove(&kv.key);
                self.assumed.remove(&kv.key);
                self.waiting.remove(&kv.key);
                self.unschedulable.remove(&kv.key);
                self.backoff.remove(&kv.key);
                // Its resources and ports are free again.
                self.retry_all();
            }
        }
    }

    fn put_pod(&mut self, kv: &KeyValue) {
        if self
            .pods
            .get(&kv.key)
            .is_some_and(|known| known.revision >= kv.mod_revision)
        {
            return;
        }
        let Some(entry) = PodEntry::parse(kv) else {
            tracing::warn!(pod = %kv.key, "cannot parse stored pod; ignoring it");
            self.pods.remove(&kv.key);
            self.check_waiting(&kv.key);
            return;
        };
        let was_active = self.pods.get(&kv.key).is_some_and(|old| !old.terminal());
        let frees_resources = was_active && entry.terminal();
        if entry.node.is_some() {
            self.assumed.remove(&kv.key);
            self.unschedulable.remove(&kv.key);
        }
        let pending = entry.needs_scheduling();
        if !pending {
            self.unschedulable.remove(&kv.key);
        }
        self.pods.insert(kv.key.clone(), entry);
        self.check_waiting(&kv.key);
        if pending && !self.assumed.contains_key(&kv.key) {
            self.enqueue(&kv.key);
        }
        if frees_resources {
            self.retry_all();
        }
    }

    fn on_node_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.nodes.clear();
                for kv in &items {
                    self.put_node(kv);
                }
                self.nodes_synced = true;
            }
            Change::Put(kv) => self.put_node(&kv),
            Change::Delete(kv) => {
                let name = kv.key.rsplit('/').next().unwrap_or_default();
                self.nodes.remove(name);
            }
        }
        self.check_all_waiting();
        self.retry_all();
    }

    fn put_node(&mut self, kv: &KeyValue) {
        match serde_json::from_slice::<Node>(&kv.value) {
            Ok(node) => {
                let Some(name) = node.metadata.name.clone() else {
                    return;
                };
                let allocatable = resources::node_allocatable(&node);
                self.nodes.insert(name, NodeEntry { node, allocatable });
            }
            Err(err) => {
                tracing::warn!(node = %kv.key, error = %err, "cannot parse stored node; ignoring it")
            }
        }
    }

    fn on_outcome(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Bound {
                key,
                node,
                revision,
            } => {
                self.assumed.remove(&key);
                self.unschedulable.remove(&key);
                // Until the watch delivers the bound pod, count it on its node from the cache.
                if let Some(entry) = self.pods.get_mut(&key)
                    && entry.revision < revision
                {
                    entry.revision = revision;
                    entry.node = Some(node);
                }
            }
            Outcome::Lost { key } => {
                self.assumed.remove(&key);
            }
            Outcome::Failed { key, error } => {
                tracing::warn!(pod = %key, %error, "binding failed; will retry");
                self.assumed.remove(&key);
                self.backoff.insert(key);
            }
            Outcome::VolumesRequested { key, claims } => self.on_volumes_requested(&key, claims),
            Outcome::VolumesFailed { key, error } => self.on_volumes_failed(key, &error),
        }
    }

    /// What every node's pods (bound or assumed, not finished) take.
    fn usage(&self) -> HashMap<String, Usage> {
        let mut usage: HashMap<String, Usage> = HashMap::new();
        for (key, pod) in &self.pods {
            if pod.terminal() {
                continue;
            }
            if let Some(node) = pod.node.as_ref().or_else(|| self.assumed.get(key)) {
                usage.entry(node.clone()).or_default().add(pod);
            }
        }
        usage
    }

    fn schedule_pending(&mut self) {
        let storage_synced = self.storage_synced.iter().all(|s| *s);
        if !(self.pods_synced && self.nodes_synced && storage_synced) || self.queue.is_empty() {
            return;
        }
        let mut usage = self.usage();
        // kube's PrioritySort: of the pods waiting together, the higher `spec.priority` is placed first (it
        // takes the room a lower one would have taken); equal ones keep their queue order.
        let mut batch: Vec<String> = self.queue.drain(..).collect();
        batch.sort_by_cached_key(|key| {
            std::cmp::Reverse(
                self.pods
                    .get(key)
                    .and_then(|e| e.pod.spec.as_ref()?.priority)
                    .unwrap_or(0),
            )
        });
        for key in batch {
            self.queued.remove(&key);
            let Some(entry) = self.pods.get(&key) else {
                continue;
            };
            if !entry.needs_scheduling() || self.assumed.contains_key(&key) {
                continue;
            }
            // VolumeBinding's PreFilter first: a pod whose claims rule out every node is not filtered per node.
            let placed = volumes::prefilter(&entry.pod, &entry.claims, &self.volumes)
                .map_err(|reason| predicates::prefilter_message(self.nodes.len(), &reason))
                .and_then(|plan| {
                    let demand = PodDemand {
                        pod: &entry.pod,
                        requests: entry.requests.clone(),
                        requests_non_zero: entry.requests_non_zero.clone(),
                        ports: entry.ports.clone(),
                        volumes: plan,
                    };
                    let node = select::choose(&demand, &node_views(&self.nodes, &usage))?;
                    Ok((node.to_string(), demand.volumes.pending_claims()))
                });
            match placed {
                Ok((node, pending)) => {
                    usage.entry(node.clone()).or_default().add(entry);
                    self.unschedulable.remove(&key);
                    self.assumed.insert(key.clone(), node.clone());
                    if !pending.is_empty() {
                        // Bound once its claims are: provisioning starts on the chosen node.
                        self.start_waiting(key, node, pending);
                        continue;
                    }
                    let (store, outcomes) = (self.store.clone(), self.outcomes.clone());
                    let (revision, value) = (entry.revision, entry.value.clone());
                    tokio::spawn(async move {
                        let _ =
                            outcomes.send(binding::bind(store, key, node, revision, value).await);
                    });
                }
                Err(message) => {
                    let already = self
                        .unschedulable
                        .get(&key)
                        .map(String::as_str)
                        .or(entry.reported_message());
                    if already != Some(message.as_str()) {
                        let (store, revision, value) =
                            (self.store.clone(), entry.revision, entry.value.clone());
                        tokio::spawn(binding::report_unschedulable(
                            store,
                            key.clone(),
                            revision,
                            value,
                            message.clone(),
                        ));
                    }
                    self.unschedulable.insert(key, message);
                }
            }
        }
    }
}

/// Every node with what its pods (bound or assumed) already take.
fn node_views<'a>(
    nodes: &'a BTreeMap<String, NodeEntry>,
    usage: &'a HashMap<String, Usage>,
) -> Vec<NodeView<'a>> {
    static EMPTY: Usage = Usage {
        used: BTreeMap::new(),
        used_non_zero: BTreeMap::new(),
        ports: Vec::new(),
    };
    nodes
        .iter()
        .map(|(name, n)| {
            let u = usage.get(name).unwrap_or(&EMPTY);
            NodeView {
                name,
                node: &n.node,
                allocatable: n.allocatable.clone(),
                used: u.used.clone(),
                used_non_zero: u.used_non_zero.clone(),
                ports: u.ports.clone(),
            }
        })
        .collect()
}
