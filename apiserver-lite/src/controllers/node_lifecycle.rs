//! Node lifecycle: a Node whose agent stops renewing its Lease (`kube-node-lease/<node>`) and stops
//! posting status for the grace period (50 s, as kube-controller-manager 1.32) gets its conditions set to
//! `Unknown`, so the scheduler stops placing pods there. The agent's next status post sets them back.
//!
//! The node's Ready status is mirrored in `node.kubernetes.io/unreachable` (Ready=Unknown) and
//! `node.kubernetes.io/not-ready` (Ready=False) taints, `NoSchedule` and `NoExecute`, removed again when it
//! recovers; pods on a node with such a `NoExecute` taint are marked Ready=False and deleted once their
//! toleration runs out (taint-based eviction, see [`eviction`]).
//! MemoryPressure / DiskPressure / PIDPressure `True` add the `memory-pressure` / `disk-pressure` /
//! `pid-pressure` `NoSchedule` taints, removed once the condition is no longer `True` (see [`taints`]).
//!
//! Silence is measured on this process's monotonic clock from the moment a change was observed, never
//! from timestamps written by the agent (clocks of nodes may differ).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod eviction;
mod taints;

pub use taints::with_lifecycle_taints;

use super::object;
use super::reflector::{Change, Reflector};
use crate::store::{KeyValue, Store, StoreError};

/// `--node-monitor-grace-period` of Kubernetes 1.32.
pub const GRACE_PERIOD: Duration = Duration::from_secs(50);
const NODE_LEASE_PREFIX: &str = "/registry/leases/kube-node-lease/";
const HEALTH_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

struct Tracked {
    last_seen: Instant,
    /// The Ready condition's `lastHeartbeatTime` last observed; a new value is a sign of life.
    heartbeat: Option<String>,
    /// The Ready condition's status last observed.
    ready: Option<String>,
    key: String,
    revision: i64,
    value: Value,
}

fn ready_condition(node: &Value) -> Option<&Value> {
    node.get("status")?
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
}

fn heartbeat(node: &Value) -> Option<String> {
    ready_condition(node)?
        .get("lastHeartbeatTime")?
        .as_str()
        .map(str::to_string)
}

/// The node with its health conditions set to `Unknown`, or `None` if Ready is already `Unknown` (or the
/// object has an unexpected shape).
pub fn mark_unknown(node: &Value, now: &str) -> Option<Value> {
    let ready = ready_condition(node)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str);
    if ready == Some("Unknown") {
        return None;
    }
    let mut updated = node.clone();
    let status = object::child(&mut updated, "status")?;
    let conditions = status
        .entry("conditions")
        .or_insert_with(|| Value::Array(Vec::new()));
    if conditions.is_null() {
        *conditions = Value::Array(Vec::new());
    }
    let conditions = conditions.as_array_mut()?;
    for type_ in HEALTH_CONDITIONS {
        let position = conditions
            .iter()
            .position(|c| c.get("type").and_then(Value::as_str) == Some(type_));
        let condition = match position {
            Some(i) => conditions[i].as_object_mut()?,
            None if type_ == "Ready" => {
                conditions.push(serde_json::json!({"type": "Ready"}));
                conditions.last_mut()?.as_object_mut()?
            }
            None => continue,
        };
        condition.insert("status".into(), "Unknown".into());
        condition.insert("reason".into(), "NodeStatusUnknown".into());
        condition.insert(
            "message".into(),
            "Kubelet stopped posting node status.".into(),
        );
        condition.insert("lastTransitionTime".into(), now.into());
    }
    object::strip_resource_version(&mut updated);
    Some(updated)
}

fn node_name_of_lease(key: &str) -> Option<&str> {
    key.strip_prefix(NODE_LEASE_PREFIX)
        .filter(|name| !name.is_empty() && !name.contains('/'))
}

/// Run the node lifecycle controller until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    grace: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let api = crate::handlers::Api::new(store.clone());
    let mut nodes: HashMap<String, Tracked> = HashMap::new();
    let mut node_reflector = Reflector::new(store.clone(), super::NODES_PREFIX);
    let mut lease_reflector = Reflector::new(store.clone(), NODE_LEASE_PREFIX);
    let mut tick = tokio::time::interval(
        (grace / 10).clamp(Duration::from_millis(50), Duration::from_secs(5)),
    );
    while !*shutdown.borrow() {
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            change = node_reflector.next() => match change {
                Change::Reset(items) => {
                    let mut fresh = HashMap::new();
                    for kv in &items {
                        if let Some((name, tracked)) = observe_node(kv, nodes.remove(node_key_name(&kv.key))) {
                            fresh.insert(name, tracked);
                        }
                    }
                    nodes = fresh;
                }
                // As kube's NoSchedule tainting pass, a changed node gets its taints at once, not on the
                // next tick: a node that just turned Ready takes pods right away.
                Change::Put(kv) => {
                    let name = node_key_name(&kv.key).to_string();
                    if let Some((name, mut tracked)) = observe_node(&kv, nodes.remove(&name)) {
                        reconcile(&store, &name, &mut tracked, grace, &object::now_rfc3339()).await;
                        nodes.insert(name, tracked);
                    }
                }
                Change::Delete(kv) => {
                    nodes.remove(node_key_name(&kv.key));
                }
            },
            change = lease_reflector.next() => match change {
                // A listing is no sign of life by itself; only renewals are.
                Change::Reset(_) | Change::Delete(_) => {}
                Change::Put(kv) => {
                    if let Some(tracked) = node_name_of_lease(&kv.key).and_then(|name| nodes.get_mut(name)) {
                        tracked.last_seen = Instant::now();
                    }
                }
            },
            _ = tick.tick() => check(&api, grace, &mut nodes).await,
        }
    }
    Ok(())
}

fn node_key_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or_default()
}

/// Update what is known about a node; a new heartbeat (or a new node) counts as a sign of life.
fn observe_node(kv: &KeyValue, known: Option<Tracked>) -> Option<(String, Tracked)> {
    let value: Value = serde_json::from_slice(&kv.value).ok()?;
    let name = node_key_name(&kv.key).to_string();
    let beat = heartbeat(&value);
    let ready = ready_condition(&value)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        .map(str::to_string);
    // Our own `Unknown` write is no sign of life; a new heartbeat or any other change of Ready is.
    let alive = |known: &Tracked| {
        known.heartbeat != beat || (known.ready != ready && ready.as_deref() != Some("Unknown"))
    };
    let last_seen = match known {
        Some(known) if !alive(&known) => known.last_seen,
        _ => Instant::now(),
    };
    let key = kv.key.clone();
    Some((
        name,
        Tracked {
            last_seen,
            heartbeat: beat,
            ready,
            key,
            revision: kv.mod_revision,
            value,
        },
    ))
}

async fn check(api: &crate::handlers::Api, grace: Duration, nodes: &mut HashMap<String, Tracked>) {
    let now = object::now_rfc3339();
    for (name, tracked) in nodes.iter_mut() {
        reconcile(&api.store, name, tracked, grace, &now).await;
    }
    let tainted: Vec<(String, Vec<taints::NoExecute>)> = nodes
        .iter()
        .map(|(name, t)| (name.clone(), taints::no_execute(&t.value)))
        .filter(|(_, taints)| !taints.is_empty())
        .collect();
    if !tainted.is_empty() {
        eviction::sweep(api, &tainted).await;
    }
}

/// Mark the node `Unknown` if it has been silent for the grace period, and make its lifecycle taints
/// match its conditions.
async fn reconcile(
    store: &Arc<dyn Store>,
    name: &str,
    tracked: &mut Tracked,
    grace: Duration,
    now: &str,
) {
    let marked = if tracked.last_seen.elapsed() >= grace {
        mark_unknown(&tracked.value, now)
    } else {
        None
    };
    let base = marked.as_ref().unwrap_or(&tracked.value);
    let updated = match with_lifecycle_taints(base, now) {
        Some(tainted) => tainted,
        None => match marked {
            Some(marked) => marked,
            None => return,
        },
    };
    let Ok(bytes) = serde_json::to_vec(&updated) else {
        return;
    };
    match store.update(&tracked.key, bytes, tracked.revision).await {
        Ok(revision) => {
            tracing::warn!(node = %name, "node conditions or lifecycle taints updated");
            tracked.revision = revision;
            tracked.value = updated;
        }
        // The node changed meanwhile: the watch brings the new state and it is decided again.
        Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {}
        Err(err) => tracing::warn!(node = %name, error = %err, "failed to update node"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn marks_health_conditions_unknown_once() {
        let node = json!({"metadata": {"name": "n", "resourceVersion": "5"}, "status": {"conditions": [
            {"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-01T00:00:00Z"},
            {"type": "MemoryPressure", "status": "False"},
            {"type": "NetworkUnavailable", "status": "False"}
        ]}});
        let marked = mark_unknown(&node, "2026-01-01T00:01:00Z").expect("changes");
        let conditions = marked["status"]["conditions"]
            .as_array()
            .expect("conditions");
        assert_eq!(conditions[0]["status"], "Unknown");
        assert_eq!(conditions[0]["reason"], "NodeStatusUnknown");
        assert_eq!(
            conditions[0]["lastHeartbeatTime"], "2026-01-01T00:00:00Z",
            "heartbeat is kept"
        );
        assert_eq!(conditions[1]["status"], "Unknown");
        assert_eq!(
            conditions[2]["status"], "False",
            "NetworkUnavailable is not a health condition"
        );
        assert!(marked["metadata"].get("resourceVersion").is_none());
        assert!(mark_unknown(&marked, "later").is_none(), "already Unknown");
        let bare = mark_unknown(&json!({"metadata": {"name": "n"}}), "t").expect("adds Ready");
        assert_eq!(bare["status"]["conditions"][0]["status"], "Unknown");
        assert!(mark_unknown(&json!({"status": {"conditions": {}}}), "t").is_none());
    }

    #[test]
    fn lease_keys_name_nodes() {
        assert_eq!(
            node_name_of_lease("/registry/leases/kube-node-lease/n1"),
            Some("n1")
        );
        assert_eq!(
            node_name_of_lease("/registry/leases/kube-node-lease/"),
            None
        );
        assert_eq!(
            node_name_of_lease("/registry/leases/kube-node-lease/a/b"),
            None
        );
    }
}
