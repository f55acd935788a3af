//! Choosing a node: run the filters over every node (kube's default plugins in their order, VolumeBinding
//! last), score the feasible ones (LeastAllocated + BalancedAllocation), pick the best.
//! Pure: the caller passes what is known about each node.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};

use super::predicates::{self, HostPort};
use super::resources::{CPU, MEMORY, Resources};
use super::volumes::{self, VolumePlan};

/// One node as the scheduler sees it: the object plus what its pods already take.
pub struct NodeView<'a> {
    pub name: &'a str,
    pub node: &'a Node,
    pub allocatable: Resources,
    /// Requests of the pods on the node; `pods` counts them (1000 per pod).
    pub used: Resources,
    /// The same with scoring defaults for containers without requests.
    pub used_non_zero: Resources,
    pub ports: Vec<HostPort>,
}

/// What the pod asks for.
pub struct PodDemand<'a> {
    pub pod: &'a Pod,
    pub requests: Resources,
    pub requests_non_zero: Resources,
    pub ports: Vec<HostPort>,
    /// What its claims ask of a node (VolumeBinding's PreFilter result).
    pub volumes: VolumePlan<'a>,
}

/// Why one node cannot take the pod (one or more reasons, like kube-scheduler's plugins report them).
pub fn filter(demand: &PodDemand<'_>, node: &NodeView<'_>) -> Vec<String> {
    if !predicates::node_ready(node.node) {
        return vec![predicates::NOT_READY.to_string()];
    }
    if predicates::node_unschedulable(node.node) {
        return vec![predicates::UNSCHEDULABLE.to_string()];
    }
    if let Some(taint) = predicates::untolerated_taint(demand.pod, node.node) {
        return vec![predicates::taint_reason(taint)];
    }
    if !predicates::matches_node_selector(demand.pod, node.node) {
        return vec![predicates::AFFINITY.to_string()];
    }
    if demand.ports.iter().any(|want| {
        node.ports
            .iter()
            .any(|have| predicates::ports_conflict(want, have))
    }) {
        return vec![predicates::PORTS.to_string()];
    }
    let insufficient = predicates::insufficient(&demand.requests, &node.used, &node.allocatable);
    if !insufficient.is_empty() {
        return insufficient;
    }
    volumes::filter(&demand.volumes, node.name, node.node)
}

/// The score of a feasible node (0–200): the default kube-scheduler profile's NodeResourcesFit
/// (LeastAllocated) plus NodeResourcesBalancedAllocation, weight 1 each.
pub fn score(demand: &PodDemand<'_>, node: &NodeView<'_>) -> i128 {
    least_allocated(demand, node) + balanced_allocation(demand, node)
}

/// LeastAllocated: the mean over cpu and memory of the share left free after placing the pod (0–100),
/// counting containers without requests with the scoring defaults (100m cpu, 200 MiB memory).
pub fn least_allocated(demand: &PodDemand<'_>, node: &NodeView<'_>) -> i128 {
    let mut total = 0;
    for resource in [CPU, MEMORY] {
        let capacity = node.allocatable.get(resource).copied().unwrap_or(0);
        let requested = node.used_non_zero.get(resource).copied().unwrap_or(0)
            + demand.requests_non_zero.get(resource).copied().unwrap_or(0);
        if capacity > 0 && requested <= capacity {
            total += (capacity - requested) * 100 / capacity;
        }
    }
    total / 2
}

/// BalancedAllocation: `(1 - std dev of the cpu and memory fractions requested) × 100`, with the pod placed,
/// each fraction capped at 1; resources the node does not have are left out. Like kube-scheduler it counts
/// the actual requests (no defaults for containers without any). With cpu and memory the standard
/// deviation is half their difference.
pub fn balanced_allocation(demand: &PodDemand<'_>, node: &NodeView<'_>) -> i128 {
    let mut fractions = Vec::with_capacity(2);
    for resource in [CPU, MEMORY] {
        let capacity = node.allocatable.get(resource).copied().unwrap_or(0);
        if capacity <= 0 {
            continue;
        }
        let requested = node.used.get(resource).copied().unwrap_or(0)
            + demand.requests.get(resource).copied().unwrap_or(0);
        fractions.push((requested as f64 / capacity as f64).min(1.0));
    }
    let std = match fractions.as_slice() {
        [a, b] => ((a - b) / 2.0).abs(),
        [_] | [] => 0.0,
        many => {
            let mean = many.iter().sum::<f64>() / many.len() as f64;
            (many.iter().map(|f| (f - mean) * (f - mean)).sum::<f64>() / many.len() as f64).sqrt()
        }
    };
    ((1.0 - std) * 100.0) as i128
}

/// The best node for the pod, or the `FailedScheduling` message.
pub fn choose<'a>(demand: &PodDemand<'_>, nodes: &[NodeView<'a>]) -> Result<&'a str, String> {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<(i128, i128, &'a str)> = None;
    for node in nodes {
        let failed = filter(demand, node);
        if !failed.is_empty() {
            for reason in failed {
                *reasons.entry(reason).or_insert(0) += 1;
            }
            continue;
        }
        let pods = node.used.get(super::resources::PODS).copied().unwrap_or(0);
        let candidate = (score(demand, node), -pods, node.name);
        // Highest score, then fewest pods, then the first name.
        let better = match &best {
            None => true,
            Some((s, p, name)) => {
                (candidate.0, candidate.1) > (*s, *p)
                    || ((candidate.0, candidate.1) == (*s, *p) && candidate.2 < *name)
            }
        };
        if better {
            best = Some(candidate);
        }
    }
    best.map(|(_, _, name)| name)
        .ok_or_else(|| predicates::unschedulable_message(nodes.len(), &reasons))
}
