//! Filters: can this pod run on this node? Each failing check names its reason in kube-scheduler's words,
//! so that the `FailedScheduling` message reads like the real one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration,
};

use super::resources::{PODS, Resources};

pub const NOT_READY: &str = "node(s) were not ready";
pub const UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
pub const NO_NODES: &str = "no nodes available to schedule pods";

/// A host port claimed by a pod: (protocol, port, host IP).
pub type HostPort = (String, i32, String);

pub fn node_ready(node: &Node) -> bool {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

pub fn node_unschedulable(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

/// kube's `Toleration.ToleratesTaint`.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    if let Some(key) = toleration.key.as_deref().filter(|k| !k.is_empty())
        && key != taint.key
    {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        "Exists" => true,
        _ => false,
    }
}

/// The first `NoSchedule`/`NoExecute` taint of the node that the pod does not tolerate.
pub fn untolerated_taint<'a>(pod: &Pod, node: &'a Node) -> Option<&'a Taint> {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[]);
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

pub fn taint_reason(taint: &Taint) -> String {
    format!(
        "node(s) had untolerated taint {{{}: {}}}",
        taint.key,
        taint.value.as_deref().unwrap_or("")
    )
}

fn node_labels(node: &Node) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    node.metadata.labels.as_ref().unwrap_or(&EMPTY)
}

fn requirement_matches(req: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = req.values.as_deref().unwrap_or(&[]);
    let as_int = |v: &str| v.parse::<i64>().ok();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(actual), [bound]) = (value.and_then(as_int), values) else {
                return false;
            };
            let Some(bound) = as_int(bound) else {
                return false;
            };
            if req.operator == "Gt" {
                actual > bound
            } else {
                actual < bound
            }
        }
        _ => false,
    }
}

fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node_labels(node);
    expressions
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            r.key == "metadata.name" && requirement_matches(r, node.metadata.name.as_deref())
        })
}

/// Whether any of `terms` matches the node (terms are ORed; a term without requirements matches nothing):
/// a pod's required node affinity, a volume's `spec.nodeAffinity.required`.
pub fn matches_any_term(terms: &[NodeSelectorTerm], node: &Node) -> bool {
    terms.iter().any(|t| term_matches(t, node))
}

/// `spec.nodeSelector` and required node affinity both match.
pub fn matches_node_selector(pod: &Pod, node: &Node) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let labels = node_labels(node);
    if let Some(selector) = &spec.node_selector
        && !selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        Some(selector) => matches_any_term(&selector.node_selector_terms, node),
        None => true,
    }
}

/// Host ports the pod claims (app and init containers).
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|p| *p > 0)?;
            let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let ip = p
                .host_ip
                .clone()
                .filter(|ip| !ip.is_empty())
                .unwrap_or_else(|| "0.0.0.0".into());
            Some((protocol, port, ip))
        })
        .collect()
}

/// Whether two host port claims collide (same protocol and port, overlapping addresses).
pub fn ports_conflict(a: &HostPort, b: &HostPort) -> bool {
    let wildcard = |ip: &str| ip == "0.0.0.0" || ip == "::";
    a.0 == b.0 && a.1 == b.1 && (a.2 == b.2 || wildcard(&a.2) || wildcard(&b.2))
}

/// Resources the node cannot fit: "Insufficient <name>" or "Too many pods". `used` includes a `pods`
/// entry counting pods in milli-units.
pub fn insufficient(
    requests: &Resources,
    used: &Resources,
    allocatable: &Resources,
) -> Vec<String> {
    let mut reasons = Vec::new();
    let get = |m: &Resources, k: &str| m.get(k).copied().unwrap_or(0);
    if get(used, PODS) + 1000 > get(allocatable, PODS) {
        reasons.push("Too many pods".to_string());
    }
    for (name, amount) in requests {
        if name == PODS || *amount <= 0 {
            continue;
        }
        if get(used, name) + amount > get(allocatable, name) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    reasons
}

/// kube-scheduler's summary when a PreFilter plugin rejects the pod before any node is looked at:
/// "0/2 nodes are available: persistentvolumeclaim "data" not found."
pub fn prefilter_message(total_nodes: usize, reason: &str) -> String {
    if total_nodes == 0 {
        return NO_NODES.to_string();
    }
    format!("0/{total_nodes} nodes are available: {reason}.")
}

/// kube-scheduler's summary: "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) were not ready."
pub fn unschedulable_message(total_nodes: usize, reasons: &BTreeMap<String, usize>) -> String {
    if total_nodes == 0 {
        return NO_NODES.to_string();
    }
    let mut parts: Vec<String> = reasons
        .iter()
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect();
    parts.sort();
    format!("0/{total_nodes} nodes are available: {}.", parts.join(", "))
}
