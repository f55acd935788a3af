//! The pure part of ServiceLB: from the parsed LoadBalancer Services and Nodes, which node addresses each
//! Service gets as `status.loadBalancer.ingress`, and which Services are left without any because an older
//! one holds a port on every node. No IO, so every rule is unit-tested here.
//!
//! k3s runs one `svclb-*` DaemonSet per Service whose pods claim each `protocol/port` as a hostPort: the
//! scheduler leaves a pod Pending on a node where an older Service's pod holds the port, and the Service
//! lists the addresses of the nodes where its pods run. Here the claims are made in the same order
//! (oldest Service first) without pods.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde_json::Value;

use super::super::owners::{Key, seconds, str_at};

/// The node label that restricts ServiceLB to some nodes (k3s's `svccontroller.k3s.cattle.io/enablelb`).
pub const ENABLE_LB_LABEL: &str = "svccontroller.k3s.cattle.io/enablelb";

/// A `protocol/port` a LoadBalancer Service serves on every node it gets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortClaim {
    pub protocol: String,
    pub port: i64,
}

/// A Service served by ServiceLB: `type: LoadBalancer`, no `spec.loadBalancerClass`, not being deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbService {
    pub key: Key,
    /// `metadata.creationTimestamp` in Unix seconds (older Services win port conflicts).
    pub created: i64,
    /// Its `spec.ports` as claims, without duplicates.
    pub ports: BTreeSet<PortClaim>,
    /// With `externalTrafficPolicy: Local`, the nodes that run a ready endpoint of it: only those are
    /// listed (k3s), though it still claims its ports on every eligible node (its svclb pods run
    /// everywhere). `None` with `Cluster`.
    pub local: Option<BTreeSet<String>>,
}

impl LbService {
    /// `None` when the Service is not ServiceLB's (another type, a class, or being deleted).
    /// `endpoint_nodes` are the nodes of its ready endpoints (see [`ready_endpoint_nodes`]), used when
    /// its `externalTrafficPolicy` is `Local`.
    pub fn parse(
        key: Key,
        svc: &Value,
        endpoint_nodes: Option<&BTreeSet<String>>,
    ) -> Option<LbService> {
        if !is_served(svc)
            || svc
                .pointer("/metadata/deletionTimestamp")
                .is_some_and(|t| !t.is_null())
        {
            return None;
        }
        let ports = svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some(PortClaim {
                    protocol: p
                        .get("protocol")
                        .and_then(Value::as_str)
                        .unwrap_or("TCP")
                        .to_string(),
                    port: p.get("port")?.as_i64()?,
                })
            })
            .collect();
        Some(LbService {
            key,
            // An unreadable timestamp sorts last: such a Service never displaces a well-formed one.
            created: seconds(str_at(svc, "/metadata/creationTimestamp")).unwrap_or(i64::MAX),
            ports,
            local: (str_at(svc, "/spec/externalTrafficPolicy") == "Local")
                .then(|| endpoint_nodes.cloned().unwrap_or_default()),
        })
    }
}

/// The nodes named by the ready addresses of an Endpoints object (`subsets[].addresses[]`, not
/// `notReadyAddresses`) that are pods (`targetRef.kind: Pod`) with a `nodeName` — what k3s reads from
/// the EndpointSlices for a `Local` Service.
pub fn ready_endpoint_nodes(endpoints: &Value) -> BTreeSet<String> {
    endpoints
        .get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|subset| subset.get("addresses")?.as_array())
        .flatten()
        .filter(|a| a.pointer("/targetRef/kind").and_then(Value::as_str) == Some("Pod"))
        .filter_map(|a| a.get("nodeName")?.as_str())
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether `svc` is a LoadBalancer ServiceLB serves: `type: LoadBalancer` without a `loadBalancerClass`.
pub fn is_served(svc: &Value) -> bool {
    svc.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer")
        && svc
            .pointer("/spec/loadBalancerClass")
            .is_none_or(Value::is_null)
}

/// What ServiceLB needs of a Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbNode {
    pub name: String,
    /// The Ready condition is `True`.
    pub ready: bool,
    /// The value of the [`ENABLE_LB_LABEL`] label, if the node has it.
    pub enable_lb: Option<String>,
    /// Its IPv4 `ExternalIP`s, or its IPv4 `InternalIP`s when it has no ExternalIP; sorted, no duplicates.
    pub addresses: Vec<Ipv4Addr>,
}

impl LbNode {
    pub fn parse(name: &str, node: &Value) -> LbNode {
        let ready = node
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| {
                c.get("type") == Some(&"Ready".into()) && c.get("status") == Some(&"True".into())
            });
        let of_type = |type_: &str| -> BTreeSet<Ipv4Addr> {
            node.pointer("/status/addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|a| a.get("type").and_then(Value::as_str) == Some(type_))
                .filter_map(|a| a.get("address")?.as_str()?.parse().ok())
                .collect()
        };
        let external = of_type("ExternalIP");
        let addresses = if external.is_empty() {
            of_type("InternalIP")
        } else {
            external
        };
        LbNode {
            name: name.to_string(),
            ready,
            enable_lb: node
                .pointer("/metadata/labels")
                .and_then(|l| l.get(ENABLE_LB_LABEL))
                .and_then(Value::as_str)
                .map(str::to_string),
            addresses: addresses.into_iter().collect(),
        }
    }
}

/// The nodes that serve load balancers: the Ready ones; when any node has the [`ENABLE_LB_LABEL`] label
/// (whatever its value, as k3s's `nodeHasDaemonSetLabel`), only the Ready ones labelled `true`.
/// Unschedulable (cordoned) nodes stay eligible: DaemonSet pods ignore `spec.unschedulable`.
pub fn eligible_nodes<'a>(nodes: impl IntoIterator<Item = &'a LbNode> + Clone) -> Vec<&'a LbNode> {
    let selective = nodes.clone().into_iter().any(|n| n.enable_lb.is_some());
    nodes
        .into_iter()
        .filter(|n| n.ready && (!selective || n.enable_lb.as_deref() == Some("true")))
        .collect()
}

/// A port a Service could not get on some node, and the older Service holding it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub claim: PortClaim,
    pub holder: Key,
}

impl Conflict {
    /// The `PortConflict` event's message.
    pub fn message(&self) -> String {
        format!(
            "port {}/{} is in use by LoadBalancer Service {}/{}",
            self.claim.port, self.claim.protocol, self.holder.0, self.holder.1
        )
    }
}

/// What one Service gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// `status.loadBalancer.ingress` IPs, sorted, no duplicates.
    pub ingress: Vec<Ipv4Addr>,
    /// Set when the Service lost at least one eligible node it would list (for `Local`, one with a ready
    /// endpoint) to an older Service's port: the first such port and its holder.
    pub conflict: Option<Conflict>,
}

/// Oldest first: `creationTimestamp`, then namespace/name.
fn by_age(a: &&LbService, b: &&LbService) -> std::cmp::Ordering {
    (a.created, &a.key).cmp(&(b.created, &b.key))
}

/// The ingress of every Service. On each eligible node the Services claim their ports oldest first; a
/// Service that finds one of its ports taken there loses that node and claims none of its ports on it
/// (its svclb pod would stay Pending). A `Local` Service claims its ports on every eligible node but lists
/// only those with a ready endpoint; a conflict counts only on such a node (elsewhere it would not be
/// listed anyway), so one without ready endpoints has empty ingress and no conflict.
pub fn plan(services: &[LbService], nodes: &[LbNode]) -> BTreeMap<Key, Outcome> {
    let eligible = eligible_nodes(nodes);
    let mut ordered: Vec<&LbService> = services.iter().collect();
    ordered.sort_by(by_age);
    let mut taken: Vec<BTreeMap<&PortClaim, &Key>> = vec![BTreeMap::new(); eligible.len()];
    let mut out = BTreeMap::new();
    for svc in ordered {
        let mut ingress = BTreeSet::new();
        let mut conflict = None;
        for (node, held) in eligible.iter().zip(taken.iter_mut()) {
            let listed = svc.local.as_ref().is_none_or(|l| l.contains(&node.name));
            let clash = svc
                .ports
                .iter()
                .find_map(|claim| held.get(claim).map(|holder| (claim, *holder)));
            match clash {
                Some((claim, holder)) if listed => {
                    conflict.get_or_insert_with(|| Conflict {
                        claim: claim.clone(),
                        holder: holder.clone(),
                    });
                }
                Some(_) => {}
                None => {
                    held.extend(svc.ports.iter().map(|claim| (claim, &svc.key)));
                    if listed {
                        ingress.extend(node.addresses.iter().copied());
                    }
                }
            }
        }
        out.insert(
            svc.key.clone(),
            Outcome {
                ingress: ingress.into_iter().collect(),
                conflict,
            },
        );
    }
    out
}

/// The `status.loadBalancer` ServiceLB writes for `ingress`: one `{ip, ipMode: VIP}` per address, or `{}`.
pub fn load_balancer_status(ingress: &[Ipv4Addr]) -> Value {
    if ingress.is_empty() {
        return serde_json::json!({});
    }
    let entries: Vec<Value> = ingress
        .iter()
        .map(|ip| serde_json::json!({"ip": ip.to_string(), "ipMode": "VIP"}))
        .collect();
    serde_json::json!({ "ingress": entries })
}

/// The IPs (or hostnames) of a stored `status.loadBalancer.ingress`, as kube's events print them:
/// Go's `%v` of a string slice, `[a b]`.
pub fn ingress_text(load_balancer: Option<&Value>) -> String {
    let parts: Vec<&str> = load_balancer
        .and_then(|lb| lb.get("ingress"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|i| {
            [i.get("ip"), i.get("hostname")]
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .find(|s| !s.is_empty())
                .unwrap_or("")
        })
        .collect();
    format!("[{}]", parts.join(" "))
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
