//! The endpoints controller (kube-controller-manager's): every Service with a selector gets an Endpoints
//! object of the same name listing the pods it selects, ready ones under `addresses`, the others under
//! `notReadyAddresses`.
//!
//! Pods and Services are followed with list-then-watch; a pod change re-evaluates the Services of its
//! namespace that select it (before or after the change), a Service change that Service. An Endpoints object
//! is written only when its subsets or labels differ from what is stored, so unrelated pod updates cause no
//! writes. Endpoints of selector-less Services are the user's and never touched. Nothing is written before
//! both first listings are in, so a (re)starting leader never publishes a partial view; a deleted Endpoints
//! object of a Service with a selector is made again at once.

mod subsets;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{EndpointSubset, Pod, Service};
use serde_json::{Value, json};

use super::reflector::{Change, Reflector};
use crate::handlers::{Api, DeleteOpts, WriteOpts};
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult};
use crate::store::{KeyValue, Store};

/// The field manager of the controller's writes (kube-controller-manager's user agent).
const MANAGER: &str = "kube-controller-manager";
/// Failed syncs are tried again this often.
const RETRY_INTERVAL: Duration = Duration::from_secs(2);
/// At most this many already-delivered changes are folded into one round before syncing.
const BATCH: usize = 512;

/// `(namespace, name)`.
type Key = (String, String);

/// `/registry/<resource>/<ns>/<name>` → `(ns, name)`.
fn key_of(prefix: &str, kv: &KeyValue) -> Option<Key> {
    let (ns, name) = kv.key.strip_prefix(prefix)?.split_once('/')?;
    Some((ns.to_string(), name.to_string()))
}

fn parse<T: serde::de::DeserializeOwned>(kv: &KeyValue) -> Option<T> {
    match serde_json::from_slice(&kv.value) {
        Ok(v) => Some(v),
        Err(err) => {
            tracing::warn!(key = %kv.key, error = %err, "cannot parse stored object");
            None
        }
    }
}

/// What the controller knows, and what it still has to do.
struct Cache {
    services_prefix: String,
    endpoints_prefix: String,
    services: BTreeMap<Key, Service>,
    pods: BTreeMap<Key, Pod>,
    /// Services to sync.
    dirty: BTreeSet<Key>,
    /// Deleted Services that had a selector: their Endpoints go too.
    orphaned: BTreeSet<Key>,
    /// Syncs that failed, tried again on the retry tick.
    failed: BTreeSet<Key>,
    /// Both first listings arrived: before that a sync would see a partial cluster (Endpoints without the
    /// pods not listed yet) and write it.
    services_listed: bool,
    pods_listed: bool,
}

impl Cache {
    fn new() -> Cache {
        Cache {
            services_prefix: by_kind(Kind::Service).prefix(None),
            endpoints_prefix: by_kind(Kind::Endpoints).prefix(None),
            services: BTreeMap::new(),
            pods: BTreeMap::new(),
            dirty: BTreeSet::new(),
            orphaned: BTreeSet::new(),
            failed: BTreeSet::new(),
            services_listed: false,
            pods_listed: false,
        }
    }

    fn ready(&self) -> bool {
        self.services_listed && self.pods_listed
    }

    fn forget_service(&mut self, key: Key, last: Option<Service>) {
        if last.as_ref().and_then(subsets::managed_selector).is_some() {
            self.orphaned.insert(key.clone());
        }
        self.dirty.insert(key);
    }

    fn service_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                let fresh: BTreeMap<Key, Service> = items
                    .iter()
                    .filter_map(|kv| Some((key_of(&self.services_prefix, kv)?, parse(kv)?)))
                    .collect();
                let old = std::mem::replace(&mut self.services, fresh);
                for (key, svc) in old {
                    if !self.services.contains_key(&key) {
                        self.forget_service(key, Some(svc));
                    }
                }
                let services = &self.services;
                self.orphaned.retain(|key| !services.contains_key(key));
                self.dirty.extend(self.services.keys().cloned());
                self.services_listed = true;
            }
            Change::Put(kv) => {
                // An unreadable Service keeps its last known state.
                if let Some(key) = key_of(&self.services_prefix, &kv)
                    && let Some(svc) = parse::<Service>(&kv)
                {
                    self.orphaned.remove(&key);
                    self.services.insert(key.clone(), svc);
                    self.dirty.insert(key);
                }
            }
            Change::Delete(kv) => {
                if let Some(key) = key_of(&self.services_prefix, &kv) {
                    let last = self.services.remove(&key).or_else(|| parse(&kv));
                    self.forget_service(key, last);
                }
            }
        }
    }

    /// Mark the Services of `ns` that select `pod`.
    fn touch_services_of(&mut self, ns: &str, pod: &Pod) {
        for ((svc_ns, name), svc) in self.services.range((ns.to_string(), String::new())..) {
            if svc_ns != ns {
                break;
            }
            if subsets::managed_selector(svc).is_some_and(|sel| subsets::selects(sel, pod)) {
                self.dirty.insert((svc_ns.clone(), name.clone()));
            }
        }
    }

    fn pod_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.pods = items
                    .iter()
                    .filter_map(|kv| Some((key_of(super::PODS_PREFIX, kv)?, parse(kv)?)))
                    .collect();
                self.dirty.extend(self.services.keys().cloned());
                self.pods_listed = true;
            }
            Change::Put(kv) => {
                let Some(key) = key_of(super::PODS_PREFIX, &kv) else {
                    return;
                };
                let old = match parse::<Pod>(&kv) {
                    Some(pod) => {
                        self.touch_services_of(&key.0, &pod);
                        self.pods.insert(key.clone(), pod)
                    }
                    None => self.pods.remove(&key),
                };
                if let Some(old) = old {
                    self.touch_services_of(&key.0, &old);
                }
            }
            Change::Delete(kv) => {
                if let Some(key) = key_of(super::PODS_PREFIX, &kv)
                    && let Some(old) = self.pods.remove(&key)
                {
                    self.touch_services_of(&key.0, &old);
                }
            }
        }
    }

    /// A deleted Endpoints object of a Service with a selector is made again at once (kube requeues the
    /// Service on that deletion too).
    fn endpoints_change(&mut self, change: Change) {
        if let Change::Delete(kv) = change
            && let Some(key) = key_of(&self.endpoints_prefix, &kv)
            && self
                .services
                .get(&key)
                .and_then(subsets::managed_selector)
                .is_some()
        {
            self.dirty.insert(key);
        }
    }

    fn pods_of(&self, ns: &str) -> Vec<&Pod> {
        self.pods
            .range((ns.to_string(), String::new())..)
            .take_while(|((pod_ns, _), _)| pod_ns == ns)
            .map(|(_, pod)| pod)
            .collect()
    }
}

/// Run the endpoints controller until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let api = Api::new(store.clone());
    let mut cache = Cache::new();
    let mut services = Reflector::new(store.clone(), &cache.services_prefix);
    let mut pods = Reflector::new(store.clone(), super::PODS_PREFIX);
    let mut endpoints = Reflector::new(store, &cache.endpoints_prefix);
    let mut retry = tokio::time::interval(RETRY_INTERVAL);
    while !*shutdown.borrow() {
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            change = services.next() => cache.service_change(change),
            change = pods.next() => cache.pod_change(change),
            change = endpoints.next() => cache.endpoints_change(change),
            _ = retry.tick() => {
                let failed = std::mem::take(&mut cache.failed);
                cache.dirty.extend(failed);
            }
        }
        services.drain(BATCH, |change| cache.service_change(change));
        pods.drain(BATCH, |change| cache.pod_change(change));
        if !cache.ready() {
            continue;
        }
        for key in std::mem::take(&mut cache.dirty) {
            if let Err(err) = sync(&api, &mut cache, &key).await {
                tracing::warn!(service = %format!("{}/{}", key.0, key.1), error = %err.message,
                    "failed to sync endpoints; will retry");
                cache.failed.insert(key);
            }
        }
    }
    Ok(())
}

async fn sync(api: &Api, cache: &mut Cache, key: &Key) -> ApiResult<()> {
    let (ns, name) = key;
    let Some(svc) = cache.services.get(key) else {
        if cache.orphaned.contains(key) {
            delete(api, ns, name).await?;
            cache.orphaned.remove(key);
        }
        return Ok(());
    };
    if subsets::managed_selector(svc).is_none() {
        return Ok(());
    }
    let wanted = subsets::compute(svc, &cache.pods_of(ns));
    let labels = subsets::endpoints_labels(svc);
    if write(api, ns, name, &labels, &wanted).await? {
        tracing::debug!(service = %format!("{ns}/{name}"), "updated endpoints");
    }
    Ok(())
}

fn write_opts() -> WriteOpts {
    super::object::write_opts(MANAGER)
}

fn stored_subsets(endpoints: &Value) -> Option<Vec<EndpointSubset>> {
    match endpoints.get("subsets") {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(s) => serde_json::from_value(s.clone()).ok(),
    }
}

fn stored_labels(object: &Value) -> Option<BTreeMap<String, String>> {
    match object.pointer("/metadata/labels") {
        None | Some(Value::Null) => Some(BTreeMap::new()),
        Some(l) => serde_json::from_value(l.clone()).ok(),
    }
}

/// Make the Endpoints `ns/name` have `labels` and `subsets`, through the same create and update paths as
/// the REST handlers (metadata, defaults, validation, managedFields). `Ok(true)` when something was written.
pub(super) async fn write(
    api: &Api,
    ns: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    subsets: &[EndpointSubset],
) -> ApiResult<bool> {
    let def = by_kind(Kind::Endpoints);
    let subsets_json = serde_json::to_value(subsets)
        .map_err(|e| ApiError::internal(format!("encoding endpoints subsets: {e}")))?;
    for _ in 0..5 {
        let current = match api.get(def, Some(ns), name).await {
            Ok(current) => Some(current),
            Err(e) if e.code == 404 => None,
            Err(e) => return Err(e),
        };
        let result = match current {
            None => {
                let mut body = json!({
                    "apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": ns},
                });
                if !labels.is_empty() {
                    body["metadata"]["labels"] = json!(labels);
                }
                if !subsets.is_empty() {
                    body["subsets"] = subsets_json.clone();
                }
                api.create(def, Some(ns), body, &[], &write_opts())
                    .await
                    .map(|_| ())
            }
            Some(current) => {
                if stored_subsets(&current).as_deref() == Some(subsets)
                    && stored_labels(&current).as_ref() == Some(labels)
                {
                    return Ok(false);
                }
                // Everything else of the stored object (annotations, …) stays, as in kube.
                let mut next = current;
                let Some(object) = next.as_object_mut() else {
                    return Err(ApiError::internal(format!(
                        "stored endpoints {ns}/{name} is not an object"
                    )));
                };
                if subsets.is_empty() {
                    object.remove("subsets");
                } else {
                    object.insert("subsets".into(), subsets_json.clone());
                }
                if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                    if labels.is_empty() {
                        meta.remove("labels");
                    } else {
                        meta.insert("labels".into(), json!(labels));
                    }
                }
                api.update(def, Some(ns), name, None, next, &[], &write_opts())
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => return Ok(true),
            // Created or changed meanwhile: look again.
            Err(e) if e.code == 409 => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::internal(format!(
        "endpoints {ns}/{name}: too many conflicting writes"
    )))
}

/// Delete the Endpoints `ns/name`; gone already is fine.
pub(super) async fn delete(api: &Api, ns: &str, name: &str) -> ApiResult<()> {
    let def = by_kind(Kind::Endpoints);
    match api
        .delete(def, Some(ns), name, &DeleteOpts::default(), false)
        .await
    {
        Ok(_) => {
            tracing::debug!(endpoints = %format!("{ns}/{name}"), "deleted endpoints");
            Ok(())
        }
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
