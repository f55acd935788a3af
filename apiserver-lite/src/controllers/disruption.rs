//! The disruption controller (kube-controller-manager's): keeps the status of every PodDisruptionBudget —
//! the pods it expects, how many are healthy, how many must be, and so how many may be evicted now — which
//! the eviction subresource (`crate::eviction`) reads and decrements.
//!
//! PodDisruptionBudgets, pods, ReplicaSets, Deployments and StatefulSets are followed with
//! list-then-watch. Any change of a pod or workload requeues the budgets of its namespace (kube maps a
//! pod to its budget; a namespace is a coarser, simpler key with the same outcome). A sync computes the
//! status ([`status::compute`]), drops `disruptedPods` entries older than two minutes or whose pod is
//! gone or terminating, and writes `poddisruptionbudgets/status` when the status changed, with the
//! resourceVersion it read: a conflict means a newer version (an eviction's) is on its way through the
//! watch, and that one is synced instead.

pub(crate) mod status;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::events::{self, EventType, ObjectRef};
use super::owners::{self, Key, Stored, key_of};
use super::queue::Queue;
use super::reflector::{Change, Reflector};
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::status::ApiResult;
use crate::store::Store;

/// The component of the controller's events and its field manager.
const COMPONENT: &str = "controllermanager";
const MANAGER: &str = "kube-controller-manager";
/// At most this many already-delivered changes are folded into one round before syncing.
const BATCH: usize = 512;

/// One followed kind: its objects by `(namespace, name)`.
struct View {
    prefix: String,
    objects: BTreeMap<Key, Stored>,
    listed: bool,
}

impl View {
    fn new(prefix: String) -> View {
        View {
            prefix,
            objects: BTreeMap::new(),
            listed: false,
        }
    }

    /// Apply `change`; the namespaces it touched (`None`: all of them, after a re-list).
    fn apply(&mut self, change: Change) -> Option<Vec<String>> {
        match change {
            Change::Reset(items) => {
                self.objects = items
                    .iter()
                    .filter_map(|kv| Some((key_of(&self.prefix, kv)?, Stored::parse(kv)?)))
                    .collect();
                self.listed = true;
                None
            }
            Change::Put(kv) => {
                let key = key_of(&self.prefix, &kv)?;
                match Stored::parse(&kv) {
                    Some(obj) => self.objects.insert(key.clone(), obj),
                    None => self.objects.remove(&key),
                };
                Some(vec![key.0])
            }
            Change::Delete(kv) => {
                let key = key_of(&self.prefix, &kv)?;
                self.objects.remove(&key);
                Some(vec![key.0])
            }
        }
    }

    fn in_namespace<'a>(&'a self, ns: &'a str) -> impl Iterator<Item = (&'a Key, &'a Stored)> + 'a {
        self.objects
            .range((ns.to_string(), String::new())..)
            .take_while(move |((o_ns, _), _)| o_ns == ns)
    }
}

struct Cache {
    budgets: View,
    pods: View,
    replicasets: View,
    deployments: View,
    statefulsets: View,
    replicationcontrollers: View,
    /// Budgets to sync; a timer looks at one again at a UNIX time (a `disruptedPods` entry expiring, a
    /// failed sync).
    queue: Queue<Key>,
}

impl Cache {
    fn new() -> Cache {
        Cache {
            budgets: View::new(by_kind(Kind::PodDisruptionBudget).prefix(None)),
            pods: View::new(super::PODS_PREFIX.to_string()),
            replicasets: View::new(by_kind(Kind::ReplicaSet).prefix(None)),
            deployments: View::new(by_kind(Kind::Deployment).prefix(None)),
            statefulsets: View::new(by_kind(Kind::StatefulSet).prefix(None)),
            replicationcontrollers: View::new(by_kind(Kind::ReplicationController).prefix(None)),
            queue: Queue::new(),
        }
    }

    fn listed(&self) -> bool {
        [
            &self.budgets,
            &self.pods,
            &self.replicasets,
            &self.deployments,
            &self.statefulsets,
            &self.replicationcontrollers,
        ]
        .iter()
        .all(|v| v.listed)
    }

    /// Requeue the budgets of `namespaces` (all budgets for `None`).
    fn touch(&mut self, namespaces: Option<Vec<String>>) {
        match namespaces {
            None => self.queue.mark_all(self.budgets.objects.keys().cloned()),
            Some(namespaces) => {
                for ns in namespaces {
                    let keys: Vec<Key> = self
                        .budgets
                        .in_namespace(&ns)
                        .map(|(k, _)| k.clone())
                        .collect();
                    self.queue.mark_all(keys);
                }
            }
        }
    }

    fn budget_change(&mut self, change: Change) {
        let deleted = match &change {
            Change::Delete(kv) => key_of(&self.budgets.prefix, kv),
            _ => None,
        };
        let touched = self.budgets.apply(change);
        if let Some(key) = deleted {
            self.queue.forget(&key);
            self.queue.succeeded(&key);
        }
        self.touch(touched);
    }
}

/// Run the disruption controller until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let api = Api::new(store.clone());
    let mut cache = Cache::new();
    let mut budgets = Reflector::new(store.clone(), &cache.budgets.prefix);
    let mut pods = Reflector::new(store.clone(), &cache.pods.prefix);
    let mut replicasets = Reflector::new(store.clone(), &cache.replicasets.prefix);
    let mut deployments = Reflector::new(store.clone(), &cache.deployments.prefix);
    let mut statefulsets = Reflector::new(store.clone(), &cache.statefulsets.prefix);
    let mut replicationcontrollers = Reflector::new(store, &cache.replicationcontrollers.prefix);
    while !*shutdown.borrow() {
        let timer = cache.queue.sleep_for(jiff::Timestamp::now().as_second());
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            change = budgets.next() => cache.budget_change(change),
            change = pods.next() => { let t = cache.pods.apply(change); cache.touch(t) }
            change = replicasets.next() => { let t = cache.replicasets.apply(change); cache.touch(t) }
            change = deployments.next() => { let t = cache.deployments.apply(change); cache.touch(t) }
            change = statefulsets.next() => { let t = cache.statefulsets.apply(change); cache.touch(t) }
            change = replicationcontrollers.next() => { let t = cache.replicationcontrollers.apply(change); cache.touch(t) }
            _ = tokio::time::sleep(timer) => {}
        }
        pods.drain(BATCH, |change| {
            let t = cache.pods.apply(change);
            cache.touch(t);
        });
        budgets.drain(BATCH, |change| cache.budget_change(change));
        if !cache.listed() {
            continue;
        }
        let now = jiff::Timestamp::now().as_second();
        for key in cache.queue.take_due_and_dirty(now) {
            match sync(&api, &mut cache, &key, now).await {
                Ok(()) => {
                    cache.queue.succeeded(&key);
                }
                Err(err) => {
                    tracing::warn!(pdb = %format!("{}/{}", key.0, key.1), error = %err.message,
                        "failed to sync pod disruption budget; will retry");
                    cache.queue.failed(key, now);
                }
            }
        }
    }
    Ok(())
}

async fn event(api: &Api, pdb: &Value, type_: EventType, reason: &str, message: &str) {
    let object = ObjectRef::of("policy/v1", "PodDisruptionBudget", pdb);
    events::record_for(
        api.store.as_ref(),
        COMPONENT,
        &object,
        type_,
        reason,
        message,
    )
    .await;
}

/// Sync one budget: compute its status and write it when it changed.
async fn sync(api: &Api, cache: &mut Cache, key: &Key, now: i64) -> ApiResult<()> {
    let Some(pdb) = cache.budgets.objects.get(key).cloned() else {
        cache.queue.cancel(key);
        return Ok(());
    };
    let (ns, _) = key;
    let pods: Vec<&Value> = cache
        .pods
        .in_namespace(ns)
        .map(|(_, p)| p.value.as_ref())
        .collect();
    let workloads = status::Workloads {
        replicasets: &cache.replicasets.objects,
        deployments: &cache.deployments.objects,
        statefulsets: &cache.statefulsets.objects,
        replicationcontrollers: &cache.replicationcontrollers.objects,
    };
    let next = match status::compute(&pdb.value, &pods, &workloads, now) {
        Ok(computed) => {
            cache.queue.recheck(key, computed.recheck_at);
            if !computed.unmanaged.is_empty() {
                tracing::debug!(pdb = %format!("{}/{}", key.0, key.1), pods = ?computed.unmanaged,
                    "pods without a controller are selected by this budget");
            }
            computed.status
        }
        Err(err) => {
            event(
                api,
                &pdb.value,
                EventType::Warning,
                "CalculateExpectedPodCountFailed",
                &format!("Failed to calculate the number of expected pods: {err}"),
            )
            .await;
            write(api, &pdb.value, status::fail_safe(&pdb.value, &err)).await?;
            return Err(crate::status::ApiError::internal(err));
        }
    };
    write(api, &pdb.value, next).await
}

/// Write `status` through `poddisruptionbudgets/status` when it differs from the stored one.
async fn write(api: &Api, pdb: &Value, status: Value) -> ApiResult<()> {
    if pdb.get("status") == Some(&status) {
        return Ok(());
    }
    let mut body = pdb.clone();
    body["status"] = status;
    let ns = owners::str_at(pdb, "/metadata/namespace");
    let name = owners::str_at(pdb, "/metadata/name");
    match api
        .update(
            by_kind(Kind::PodDisruptionBudget),
            Some(ns),
            name,
            Some("status"),
            body,
            &[],
            &super::object::write_opts(MANAGER),
        )
        .await
    {
        // A newer version is on its way through the watch; its sync writes the status then.
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}
