//! ServiceLB (k3s's servicelb, without its DaemonSets): every `type: LoadBalancer` Service without a
//! `loadBalancerClass` is served on the nodes themselves, and this controller publishes which ones in
//! `status.loadBalancer.ingress` — one `{ip, ipMode: VIP}` per address of each eligible node, sorted. The
//! agents read that status and program the ports (see docs/contracts.md, "Load balancers: ServiceLB").
//!
//! Services, Nodes and Endpoints are followed with list-then-watch; any change that matters (a Service, a
//! node's readiness, addresses or `enablelb` label, the nodes of a Service's ready endpoints) recomputes
//! every Service after a 100 ms pause, so a burst of changes costs one round. The endpoints matter only
//! to `externalTrafficPolicy: Local` Services, which list just the nodes running a ready endpoint (k3s
//! reads EndpointSlices; skiff serves Endpoints, whose ready addresses carry the same `nodeName`). The rules are the pure [`plan`]; this module only writes what differs through
//! `services/status` with the resourceVersion it read (a conflict is retried on the next round) and
//! records the events: `UpdatedLoadBalancer` when the ingress changes (kube's service controller's wording,
//! as k3s), `PortConflict` once per change of a Service's conflict, `UnAvailableLoadBalancer` when the
//! last node goes away (k3s).

mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::events::{self, EventType, ObjectRef};
use super::owners::{Key, Stored, key_of, str_at};
use super::reflector::{Change, Reflector};
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::status::ApiResult;
use crate::store::{KeyValue, Store};
use plan::{LbNode, LbService, Outcome};

/// The event source and field manager of the writes (k3s runs servicelb as the cloud provider's service
/// controller).
const COMPONENT: &str = "service-controller";
/// Changes are collected this long before a round.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// A round with failed writes is repeated after this long.
const RETRY_INTERVAL: Duration = Duration::from_secs(2);

/// What the controller knows.
struct Cache {
    services_prefix: String,
    services: BTreeMap<Key, Stored>,
    nodes: BTreeMap<String, LbNode>,
    endpoints_prefix: String,
    /// The nodes of each Endpoints object's ready pod addresses (by the Service's key); only non-empty
    /// sets are kept.
    endpoint_nodes: BTreeMap<Key, BTreeSet<String>>,
    /// Services that were ServiceLB's and stopped being so while holding ingress. The API clears the
    /// status on a change of type and refuses a class set on a LoadBalancer, so this only catches
    /// objects written around validation (a class in a stored LoadBalancer).
    released: BTreeSet<Key>,
    /// The last `PortConflict` message recorded per Service, so that one conflict is reported once.
    reported: BTreeMap<Key, String>,
    services_listed: bool,
    nodes_listed: bool,
    endpoints_listed: bool,
}

impl Cache {
    fn new() -> Cache {
        Cache {
            services_prefix: by_kind(Kind::Service).prefix(None),
            services: BTreeMap::new(),
            nodes: BTreeMap::new(),
            endpoints_prefix: by_kind(Kind::Endpoints).prefix(None),
            endpoint_nodes: BTreeMap::new(),
            released: BTreeSet::new(),
            reported: BTreeMap::new(),
            services_listed: false,
            nodes_listed: false,
            endpoints_listed: false,
        }
    }

    /// Apply a Service change; always worth a round (the ports, type or status may have changed).
    fn service_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.services = items
                    .iter()
                    .filter_map(|kv| Some((key_of(&self.services_prefix, kv)?, Stored::parse(kv)?)))
                    .collect();
                self.services_listed = true;
                let services = &self.services;
                self.reported.retain(|k, _| services.contains_key(k));
            }
            Change::Put(kv) => {
                let Some(key) = key_of(&self.services_prefix, &kv) else {
                    return;
                };
                // An unreadable Service keeps its last known state.
                let Some(new) = Stored::parse(&kv) else {
                    return;
                };
                if let Some(old) = self.services.get(&key)
                    && plan::is_served(&old.value)
                    && !plan::is_served(&new.value)
                {
                    self.released.insert(key.clone());
                }
                self.services.insert(key, new);
            }
            Change::Delete(kv) => {
                if let Some(key) = key_of(&self.services_prefix, &kv) {
                    self.services.remove(&key);
                    self.reported.remove(&key);
                    self.released.remove(&key);
                }
            }
        }
    }

    /// Apply a Node change; `true` when what ServiceLB uses of the nodes changed (not on heartbeats).
    fn node_change(&mut self, change: Change) -> bool {
        match change {
            Change::Reset(items) => {
                let fresh: BTreeMap<String, LbNode> = items
                    .iter()
                    .filter_map(|kv| Some((node_name(kv)?.to_string(), parse_node(kv)?)))
                    .collect();
                self.nodes_listed = true;
                std::mem::replace(&mut self.nodes, fresh) != self.nodes
            }
            Change::Put(kv) => {
                let (Some(name), Some(node)) = (node_name(&kv), parse_node(&kv)) else {
                    return false;
                };
                self.nodes.insert(name.to_string(), node.clone()) != Some(node)
            }
            Change::Delete(kv) => node_name(&kv).is_some_and(|n| self.nodes.remove(n).is_some()),
        }
    }

    /// Apply an Endpoints change; `true` when the nodes of its ready endpoints changed (not on every
    /// pod IP or readiness flip that leaves them as they were).
    fn endpoints_change(&mut self, change: Change) -> bool {
        let prefix = &self.endpoints_prefix;
        match change {
            Change::Reset(items) => {
                let fresh: BTreeMap<Key, BTreeSet<String>> = items
                    .iter()
                    .filter_map(|kv| Some((key_of(prefix, kv)?, parse_endpoint_nodes(kv)?)))
                    .filter(|(_, nodes)| !nodes.is_empty())
                    .collect();
                self.endpoints_listed = true;
                std::mem::replace(&mut self.endpoint_nodes, fresh) != self.endpoint_nodes
            }
            Change::Put(kv) => {
                // An unreadable Endpoints object keeps its last known nodes.
                let (Some(key), Some(nodes)) = (key_of(prefix, &kv), parse_endpoint_nodes(&kv))
                else {
                    return false;
                };
                if nodes.is_empty() {
                    self.endpoint_nodes.remove(&key).is_some()
                } else {
                    self.endpoint_nodes.insert(key, nodes.clone()) != Some(nodes)
                }
            }
            Change::Delete(kv) => {
                key_of(prefix, &kv).is_some_and(|k| self.endpoint_nodes.remove(&k).is_some())
            }
        }
    }

    fn ready(&self) -> bool {
        self.services_listed && self.nodes_listed && self.endpoints_listed
    }
}

fn node_name(kv: &KeyValue) -> Option<&str> {
    kv.key
        .strip_prefix(super::NODES_PREFIX)
        .filter(|n| !n.is_empty() && !n.contains('/'))
}

fn parse_node(kv: &KeyValue) -> Option<LbNode> {
    match serde_json::from_slice::<Value>(&kv.value) {
        Ok(node) => Some(LbNode::parse(node_name(kv)?, &node)),
        Err(err) => {
            tracing::warn!(key = %kv.key, error = %err, "cannot parse stored node");
            None
        }
    }
}

fn parse_endpoint_nodes(kv: &KeyValue) -> Option<BTreeSet<String>> {
    match serde_json::from_slice::<Value>(&kv.value) {
        Ok(endpoints) => Some(plan::ready_endpoint_nodes(&endpoints)),
        Err(err) => {
            tracing::warn!(key = %kv.key, error = %err, "cannot parse stored endpoints");
            None
        }
    }
}

/// Run the ServiceLB controller until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let api = Api::new(store.clone());
    let mut cache = Cache::new();
    let mut services = Reflector::new(store.clone(), &cache.services_prefix);
    let mut nodes = Reflector::new(store.clone(), super::NODES_PREFIX);
    let mut endpoints = Reflector::new(store, &cache.endpoints_prefix);
    let mut due: Option<tokio::time::Instant> = None;
    let mut failed = false;
    let mut retry = tokio::time::interval(RETRY_INTERVAL);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*shutdown.borrow() {
        let debounce = async move {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let soon = || Some(tokio::time::Instant::now() + DEBOUNCE);
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            change = services.next() => {
                cache.service_change(change);
                due = due.or_else(soon);
            }
            change = nodes.next() => if cache.node_change(change) {
                due = due.or_else(soon);
            },
            change = endpoints.next() => if cache.endpoints_change(change) {
                due = due.or_else(soon);
            },
            _ = retry.tick(), if failed => due = due.or_else(soon),
            _ = debounce => {
                due = None;
                if cache.ready() {
                    failed = !sync_all(&api, &mut cache).await;
                }
            }
        }
    }
    Ok(())
}

/// One round: the plan for every Service, written where it differs. `false` if some write failed.
async fn sync_all(api: &Api, cache: &mut Cache) -> bool {
    let served: Vec<LbService> = cache
        .services
        .iter()
        .filter_map(|(key, svc)| {
            LbService::parse(key.clone(), &svc.value, cache.endpoint_nodes.get(key))
        })
        .collect();
    let nodes: Vec<LbNode> = cache.nodes.values().cloned().collect();
    let outcomes = plan::plan(&served, &nodes);
    let mut ok = true;
    for (key, outcome) in &outcomes {
        let Some(svc) = cache.services.get(key) else {
            continue;
        };
        let svc = svc.value.clone();
        match sync_service(api, &svc, outcome).await {
            Ok(()) => report_conflict(api, cache, key, &svc, outcome).await,
            Err(err) => {
                tracing::warn!(service = %format!("{}/{}", key.0, key.1), error = %err.message,
                    "failed to update the load balancer status; will retry");
                ok = false;
            }
        }
    }
    for key in std::mem::take(&mut cache.released) {
        let Some(svc) = cache.services.get(&key).map(|s| s.value.clone()) else {
            continue;
        };
        if plan::is_served(&svc) {
            continue;
        }
        cache.reported.remove(&key);
        if let Err(err) = release(api, &svc).await {
            tracing::warn!(service = %format!("{}/{}", key.0, key.1), error = %err.message,
                "failed to clear the load balancer status; will retry");
            cache.released.insert(key);
            ok = false;
        }
    }
    ok
}

/// Write the Service's ingress when it differs from the stored one, with its event.
async fn sync_service(api: &Api, svc: &Value, outcome: &Outcome) -> ApiResult<()> {
    let wanted = plan::load_balancer_status(&outcome.ingress);
    let stored = svc.pointer("/status/loadBalancer");
    if stored.unwrap_or(&Value::Null) == &wanted
        || (stored.is_none_or(Value::is_null) && outcome.ingress.is_empty())
    {
        return Ok(());
    }
    if !write_status(api, svc, wanted.clone()).await? {
        return Ok(());
    }
    let (before, after) = (
        plan::ingress_text(stored),
        plan::ingress_text(Some(&wanted)),
    );
    tracing::info!(service = %format!("{}/{}", str_at(svc, "/metadata/namespace"),
        str_at(svc, "/metadata/name")), from = %before, to = %after, "updated load balancer ingress");
    if !outcome.ingress.is_empty() {
        let message = format!("Updated LoadBalancer with new IPs: {before} -> {after}");
        event(api, svc, EventType::Normal, "UpdatedLoadBalancer", &message).await;
    } else if outcome.conflict.is_none() {
        let message = "There are no available nodes for LoadBalancer";
        event(
            api,
            svc,
            EventType::Warning,
            "UnAvailableLoadBalancer",
            message,
        )
        .await;
    }
    Ok(())
}

/// Record `PortConflict` when a Service has no node because of a conflict it was not reported for yet.
async fn report_conflict(api: &Api, cache: &mut Cache, key: &Key, svc: &Value, outcome: &Outcome) {
    match &outcome.conflict {
        Some(conflict) if outcome.ingress.is_empty() => {
            let message = conflict.message();
            if cache.reported.get(key) != Some(&message) {
                event(api, svc, EventType::Warning, "PortConflict", &message).await;
                cache.reported.insert(key.clone(), message);
            }
        }
        _ => {
            cache.reported.remove(key);
        }
    }
}

/// Remove the ingress of a Service that is no longer ServiceLB's (see [`Cache::released`]).
async fn release(api: &Api, svc: &Value) -> ApiResult<()> {
    let has_ingress = svc
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .is_some_and(|i| !i.is_empty());
    if has_ingress {
        write_status(api, svc, serde_json::json!({})).await?;
    }
    Ok(())
}

/// PUT `services/status` with `status.loadBalancer = load_balancer` and the resourceVersion read.
/// `Ok(false)` when the Service is gone or changed meanwhile: the watch brings the new version, and the
/// next round decides again.
async fn write_status(api: &Api, svc: &Value, load_balancer: Value) -> ApiResult<bool> {
    let mut body = svc.clone();
    let Some(status) = super::object::child(&mut body, "status") else {
        return Err(crate::status::ApiError::internal(
            "stored service status is not an object",
        ));
    };
    status.insert("loadBalancer".into(), load_balancer);
    let ns = str_at(svc, "/metadata/namespace");
    let name = str_at(svc, "/metadata/name");
    let opts = super::object::write_opts(COMPONENT);
    match api
        .update(
            by_kind(Kind::Service),
            Some(ns),
            name,
            Some("status"),
            body,
            &[],
            &opts,
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if e.code == 404 || e.code == 409 => {
            tracing::debug!(service = %format!("{ns}/{name}"), code = e.code,
                "service changed meanwhile; next round");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

async fn event(api: &Api, svc: &Value, type_: EventType, reason: &str, message: &str) {
    let object = ObjectRef::of("v1", "Service", svc);
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
