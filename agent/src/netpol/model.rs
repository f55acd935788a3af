//! From NetworkPolicies, Pods and Namespaces to what the ruleset needs: for every local pod a policy of
//! type `Ingress` (`Egress`) selects, the allow lines of every rule of every such policy (their union),
//! and the address sets those lines name (one per policy rule, so the ruleset grows with the policies
//! and the selected pods, not with their product).
//!
//! As kube's network plugins: peers are pods with an IP that are neither host-network nor terminated;
//! a selector that does not parse selects nothing; `policyTypes` missing means `Ingress`, plus `Egress`
//! when egress rules are present (the API server's defaulting). Only IPv4 is handled.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::{Selector, SelectorExt as _};

use super::ranges::{self, Range};
use crate::proxy::Protocol;

/// The direction of a policy rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    /// Short name in chain and set names.
    pub fn tag(self) -> &'static str {
        match self {
            Direction::Ingress => "in",
            Direction::Egress => "out",
        }
    }
}

/// A pod as the rules see it.
#[derive(Debug, Clone)]
pub struct PodView<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub ip: Ipv4Addr,
    pub labels: BTreeMap<String, String>,
    pub pod: &'a Pod,
}

impl<'a> PodView<'a> {
    /// The pod, if it can send or receive pod-network traffic: an IPv4 address, not host-network, not
    /// Succeeded or Failed (its address may already belong to another pod).
    pub fn of(pod: &'a Pod) -> Option<PodView<'a>> {
        let spec = pod.spec.as_ref()?;
        if spec.host_network == Some(true) {
            return None;
        }
        let status = pod.status.as_ref()?;
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            return None;
        }
        let ip = status
            .pod_ip
            .iter()
            .chain(status.pod_ips.iter().flatten().map(|p| &p.ip))
            .find_map(|s| s.parse::<Ipv4Addr>().ok())?;
        Some(PodView {
            namespace: pod.metadata.namespace.as_deref()?,
            name: pod.metadata.name.as_deref()?,
            ip,
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            pod,
        })
    }

    /// The port named `name` with `protocol` among the pod's container ports.
    fn named_port(&self, name: &str, protocol: Protocol) -> Option<u16> {
        let spec = self.pod.spec.as_ref()?;
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| {
                p.name.as_deref() == Some(name)
                    && Protocol::parse(p.protocol.as_deref()) == Some(protocol)
            })
            .and_then(|p| u16::try_from(p.container_port).ok())
    }
}

/// What one allow line matches besides the selected pod's own address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The peer address set (source for ingress, destination for egress); `None`: any address.
    pub peers: Option<String>,
    /// Protocol and destination port range; a protocol without ports: any port of it.
    pub proto: Option<(Protocol, Option<(u16, u16)>)>,
    /// An egress named port: the set of `address . protocol . port` of the peer pods that have it.
    pub named: Option<String>,
}

/// The chain of one selected local pod in one direction.
#[derive(Debug, Clone)]
pub struct PodChain {
    pub namespace: String,
    pub name: String,
    pub ip: Ipv4Addr,
    /// Allowed if any line matches; nothing else is (no lines: deny all).
    pub lines: Vec<Line>,
}

/// Everything the ruleset is made of.
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    /// Peer address sets, by name: merged, non-overlapping ranges (never empty).
    pub peer_sets: BTreeMap<String, Vec<Range>>,
    /// Egress named-port sets, by name: sorted `(address, protocol, port)` (never empty).
    pub port_sets: BTreeMap<String, Vec<(Ipv4Addr, Protocol, u16)>>,
    pub ingress: Vec<PodChain>,
    pub egress: Vec<PodChain>,
}

/// Compile the policies for the pods of `node`. `pods` are all pods of the cluster (peers), `namespaces`
/// all namespaces (for namespace selectors).
pub fn compile(
    policies: &[&NetworkPolicy],
    pods: &[&Pod],
    namespaces: &[&Namespace],
    node: &str,
) -> Compiled {
    let views: Vec<PodView> = pods.iter().filter_map(|p| PodView::of(p)).collect();
    let ns_labels: BTreeMap<&str, BTreeMap<String, String>> = namespaces
        .iter()
        .filter_map(|n| {
            let name = n.metadata.name.as_deref()?;
            let mut labels = n.metadata.labels.clone().unwrap_or_default();
            // The API server sets it on every namespace; an older object may lack it.
            labels.insert("kubernetes.io/metadata.name".into(), name.into());
            Some((name, labels))
        })
        .collect();
    let mut sorted: Vec<&NetworkPolicy> = policies.to_vec();
    sorted.sort_by_key(|p| (p.metadata.namespace.clone(), p.metadata.name.clone()));
    let mut local: Vec<&PodView> = views
        .iter()
        .filter(|v| v.pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
        .collect();
    local.sort_by_key(|v| (v.namespace, v.name));
    let cluster = Cluster {
        views: &views,
        ns_labels,
    };

    let mut out = Compiled::default();
    for dir in [Direction::Ingress, Direction::Egress] {
        let mut chains: BTreeMap<(&str, &str), PodChain> = BTreeMap::new();
        for policy in &sorted {
            let (Some(ns), Some(name), Some(spec)) = (
                policy.metadata.namespace.as_deref(),
                policy.metadata.name.as_deref(),
                policy.spec.as_ref(),
            ) else {
                continue;
            };
            if !has_type(policy, dir) {
                continue;
            }
            // Missing (an empty selector on the wire): every pod of the namespace.
            let chosen = match &spec.pod_selector {
                Some(s) => selector(s),
                None => Some(Selector::default()),
            };
            let Some(selector) = chosen else {
                continue;
            };
            let selected: Vec<&&PodView> = local
                .iter()
                .filter(|v| v.namespace == ns && selector.matches(&v.labels))
                .collect();
            if selected.is_empty() {
                continue;
            }
            // (peers, ports) of each rule.
            let rules: Vec<RuleParts> = match dir {
                Direction::Ingress => spec
                    .ingress
                    .iter()
                    .flatten()
                    .map(|r| (r.from.as_deref(), r.ports.as_deref()))
                    .collect(),
                Direction::Egress => spec
                    .egress
                    .iter()
                    .flatten()
                    .map(|r| (r.to.as_deref(), r.ports.as_deref()))
                    .collect(),
            };
            let lines_of: Vec<Vec<(Line, Option<&str>)>> = rules
                .iter()
                .enumerate()
                .map(|(j, (peers, ports))| {
                    let base = format!("{}-{ns}/{name}/{j}", dir.tag());
                    rule_lines(dir, &base, *peers, *ports, ns, &cluster, &mut out)
                })
                .collect();
            for pod in selected {
                let chain = chains
                    .entry((pod.namespace, pod.name))
                    .or_insert_with(|| PodChain {
                        namespace: pod.namespace.to_string(),
                        name: pod.name.to_string(),
                        ip: pod.ip,
                        lines: Vec::new(),
                    });
                for (line, named) in lines_of.iter().flatten() {
                    let line = match (named, &line.proto) {
                        (Some(n), Some((protocol, _))) => {
                            let Some(p) = pod.named_port(n, *protocol) else {
                                continue;
                            };
                            Line {
                                proto: Some((*protocol, Some((p, p)))),
                                ..line.clone()
                            }
                        }
                        _ => line.clone(),
                    };
                    if !chain.lines.contains(&line) {
                        chain.lines.push(line);
                    }
                }
            }
        }
        let chains = chains.into_values().collect();
        match dir {
            Direction::Ingress => out.ingress = chains,
            Direction::Egress => out.egress = chains,
        }
    }
    out
}

/// A rule's `(peers, ports)`.
type RuleParts<'a> = (
    Option<&'a [NetworkPolicyPeer]>,
    Option<&'a [NetworkPolicyPort]>,
);

/// The pods and namespace labels of the cluster.
struct Cluster<'v, 'a> {
    views: &'v [PodView<'a>],
    ns_labels: BTreeMap<&'a str, BTreeMap<String, String>>,
}

/// The allow lines of one rule of a policy in `ns` (sets named after `base`, added to `out`). A line
/// with a name is an ingress named port, resolved against each selected pod.
fn rule_lines<'p>(
    dir: Direction,
    base: &str,
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&'p [NetworkPolicyPort]>,
    ns: &str,
    cluster: &Cluster,
    out: &mut Compiled,
) -> Vec<(Line, Option<&'p str>)> {
    let (peer_set, peer_pods) = match peers.filter(|p| !p.is_empty()) {
        None => (None, cluster.views.iter().collect::<Vec<_>>()),
        Some(list) => {
            let (set, members) = peer_ranges(list, ns, cluster);
            if set.is_empty() {
                return Vec::new();
            }
            out.peer_sets.insert(base.to_string(), set);
            (Some(base.to_string()), members)
        }
    };
    let mut lines = Vec::new();
    let ports: Vec<&NetworkPolicyPort> = ports.iter().flat_map(|p| p.iter()).collect();
    if ports.is_empty() {
        lines.push((
            Line {
                peers: peer_set.clone(),
                proto: None,
                named: None,
            },
            None,
        ));
    }
    for (k, port) in ports.iter().enumerate() {
        let Some(protocol) = Protocol::parse(port.protocol.as_deref()) else {
            continue;
        };
        let range = match &port.port {
            None => None,
            Some(IntOrString::Int(n)) => {
                let Ok(lo) = u16::try_from(*n) else { continue };
                let hi = port
                    .end_port
                    .and_then(|e| u16::try_from(e).ok())
                    .filter(|e| *e >= lo)
                    .unwrap_or(lo);
                Some((lo, hi))
            }
            Some(IntOrString::String(named)) => {
                match dir {
                    // Resolved against each selected pod below.
                    Direction::Ingress => {
                        lines.push((
                            Line {
                                peers: peer_set.clone(),
                                proto: Some((protocol, None)),
                                named: None,
                            },
                            Some(named.as_str()),
                        ));
                    }
                    Direction::Egress => {
                        let mut members: Vec<(Ipv4Addr, Protocol, u16)> = peer_pods
                            .iter()
                            .filter_map(|v| Some((v.ip, protocol, v.named_port(named, protocol)?)))
                            .collect();
                        members.sort_unstable();
                        members.dedup();
                        if !members.is_empty() {
                            let set = format!("{base}/{k}");
                            out.port_sets.insert(set.clone(), members);
                            lines.push((
                                Line {
                                    peers: None,
                                    proto: None,
                                    named: Some(set),
                                },
                                None,
                            ));
                        }
                    }
                }
                continue;
            }
        };
        lines.push((
            Line {
                peers: peer_set.clone(),
                proto: Some((protocol, range)),
                named: None,
            },
            None,
        ));
    }
    lines
}

/// Whether `policy` is of type `dir` (with the API server's defaulting when `policyTypes` is missing).
pub fn has_type(policy: &NetworkPolicy, dir: Direction) -> bool {
    let Some(spec) = policy.spec.as_ref() else {
        return false;
    };
    let want = match dir {
        Direction::Ingress => "Ingress",
        Direction::Egress => "Egress",
    };
    match spec.policy_types.as_ref().filter(|t| !t.is_empty()) {
        Some(types) => types.iter().any(|t| t == want),
        None => match dir {
            Direction::Ingress => true,
            Direction::Egress => spec.egress.as_ref().is_some_and(|e| !e.is_empty()),
        },
    }
}

fn selector(s: &LabelSelector) -> Option<Selector> {
    Selector::try_from(s.clone()).ok()
}

/// The merged address ranges of `peers` of a policy in `ns`, and the pods among them.
fn peer_ranges<'v, 'a>(
    peers: &[NetworkPolicyPeer],
    ns: &str,
    cluster: &Cluster<'v, 'a>,
) -> (Vec<Range>, Vec<&'v PodView<'a>>) {
    let mut found = Vec::new();
    let mut members: Vec<&PodView> = Vec::new();
    for peer in peers {
        if let Some(block) = &peer.ip_block {
            // An IPv6 or malformed block selects nothing here.
            if let Ok(cidr) = block.cidr.parse::<Ipv4Net>() {
                let except: Vec<Ipv4Net> = block
                    .except
                    .iter()
                    .flatten()
                    .filter_map(|e| e.parse().ok())
                    .collect();
                found.extend(ranges::block(cidr, &except));
            }
            continue;
        }
        let pod_sel = match &peer.pod_selector {
            Some(s) => selector(s),
            None => Some(Selector::default()),
        };
        let ns_sel = peer.namespace_selector.as_ref().map(selector);
        let Some(pod_sel) = pod_sel else { continue };
        for v in cluster.views {
            let ns_ok = match &ns_sel {
                None => v.namespace == ns,
                Some(None) => false,
                Some(Some(sel)) => cluster
                    .ns_labels
                    .get(v.namespace)
                    .is_some_and(|labels| sel.matches(labels)),
            };
            if ns_ok && pod_sel.matches(&v.labels) {
                found.push(ranges::single(v.ip));
                members.push(v);
            }
        }
    }
    (ranges::merge(found), members)
}
