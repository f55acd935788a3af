//! Node IPAM: gives every Node without `spec.podCIDR` the next free subnet of the cluster CIDR.
//!
//! The allocation map is derived from the stored Nodes themselves (as kube-controller-manager's range
//! allocator rebuilds it on start), so a restart never hands out a subnet twice, and a deleted Node's
//! subnet is free again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use serde_json::Value;

use super::object;
use super::reflector::{Change, Reflector};
use crate::store::{KeyValue, Revision, Store, StoreError};

/// The cluster CIDR cut into node subnets.
#[derive(Debug, Clone, Copy)]
pub struct Allocator {
    cluster: Ipv4Net,
    mask: u8,
}

impl Allocator {
    pub fn new(cluster: Ipv4Net, mask: u8) -> anyhow::Result<Allocator> {
        if mask < cluster.prefix_len() || mask > 30 {
            anyhow::bail!(
                "node CIDR mask /{mask} must be between the cluster CIDR's /{} and /30",
                cluster.prefix_len()
            );
        }
        Ok(Allocator {
            cluster: cluster.trunc(),
            mask,
        })
    }

    /// The first node subnet that overlaps none of `used`.
    pub fn next_free(&self, used: &[Ipv4Net]) -> Option<Ipv4Net> {
        let overlaps =
            |a: &Ipv4Net, b: &Ipv4Net| a.contains(&b.network()) || b.contains(&a.network());
        self.cluster
            .subnets(self.mask)
            .ok()?
            .find(|candidate| !used.iter().any(|u| overlaps(candidate, u)))
    }
}

/// A Node as IPAM sees it.
struct NodeState {
    revision: Revision,
    value: Value,
    pod_cidr: Option<Ipv4Net>,
    /// `spec.podCIDR` is set but is not an IPv4 network; leave such nodes alone.
    foreign: bool,
}

fn node_state(kv: &KeyValue) -> Option<NodeState> {
    let value: Value = serde_json::from_slice(&kv.value).ok()?;
    let cidr = value
        .get("spec")
        .and_then(|s| s.get("podCIDR"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let pod_cidr = cidr.and_then(|c| c.parse::<Ipv4Net>().ok());
    Some(NodeState {
        revision: kv.mod_revision,
        foreign: cidr.is_some() && pod_cidr.is_none(),
        value,
        pod_cidr,
    })
}

/// Run node IPAM until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    allocator: Allocator,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut nodes: BTreeMap<String, NodeState> = BTreeMap::new();
    let mut reflector = Reflector::new(store.clone(), super::NODES_PREFIX);
    let mut retry = tokio::time::interval(Duration::from_secs(5));
    while !*shutdown.borrow() {
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            change = reflector.next() => match change {
                Change::Reset(items) => {
                    nodes = items.iter().filter_map(|kv| Some((kv.key.clone(), node_state(kv)?))).collect();
                }
                Change::Put(kv) => match node_state(&kv) {
                    Some(state) if nodes.get(&kv.key).is_none_or(|known| known.revision < kv.mod_revision) => {
                        nodes.insert(kv.key.clone(), state);
                    }
                    Some(_) => {}
                    None => tracing::warn!(node = %kv.key, "cannot parse stored node"),
                },
                Change::Delete(kv) => {
                    nodes.remove(&kv.key);
                }
            },
            _ = retry.tick() => {}
        }
        allocate_missing(&*store, allocator, &mut nodes).await;
    }
    Ok(())
}

async fn allocate_missing(
    store: &dyn Store,
    allocator: Allocator,
    nodes: &mut BTreeMap<String, NodeState>,
) {
    let waiting: Vec<String> = nodes
        .iter()
        .filter(|(_, n)| n.pod_cidr.is_none() && !n.foreign)
        .map(|(k, _)| k.clone())
        .collect();
    for key in waiting {
        let used: Vec<Ipv4Net> = nodes.values().filter_map(|n| n.pod_cidr).collect();
        let Some(cidr) = allocator.next_free(&used) else {
            tracing::error!(node = %key, "no free pod CIDR left in the cluster CIDR");
            return;
        };
        let Some(node) = nodes.get_mut(&key) else {
            continue;
        };
        match assign(store, &key, node, cidr).await {
            Ok(Some(revision)) => {
                tracing::info!(node = %key, %cidr, "allocated pod CIDR");
                node.revision = revision;
                node.pod_cidr = Some(cidr);
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(node = %key, error = %err, "failed to assign pod CIDR; will retry")
            }
        }
    }
}

/// Write `cidr` into the node, re-reading it on conflicts. `Ok(None)` when the node is gone or got a
/// CIDR from someone else meanwhile (the watch brings that state).
async fn assign(
    store: &dyn Store,
    key: &str,
    node: &mut NodeState,
    cidr: Ipv4Net,
) -> Result<Option<Revision>, StoreError> {
    for _ in 0..5 {
        let mut updated = node.value.clone();
        let Some(spec) = object::child(&mut updated, "spec") else {
            return Err(StoreError::Backend(
                "stored node has a malformed spec".into(),
            ));
        };
        spec.insert("podCIDR".into(), cidr.to_string().into());
        spec.insert("podCIDRs".into(), vec![cidr.to_string()].into());
        object::strip_resource_version(&mut updated);
        let bytes = serde_json::to_vec(&updated).map_err(|e| StoreError::Backend(e.to_string()))?;
        match store.update(key, bytes, node.revision).await {
            Ok(revision) => return Ok(Some(revision)),
            Err(StoreError::Conflict { .. }) => {
                let Some(kv) = store.get(key).await? else {
                    return Ok(None);
                };
                let Some(fresh) = node_state(&kv) else {
                    return Ok(None);
                };
                if fresh.pod_cidr.is_some() || fresh.foreign {
                    *node = fresh;
                    return Ok(None);
                }
                *node = fresh;
            }
            Err(StoreError::NotFound(_)) => return Ok(None),
            Err(err) => return Err(err),
        }
    }
    Err(StoreError::Backend("too many conflicting updates".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("valid CIDR")
    }

    #[test]
    fn allocates_in_order_and_skips_used() {
        let a = Allocator::new(net("10.244.0.0/16"), 24).expect("valid");
        assert_eq!(a.next_free(&[]), Some(net("10.244.0.0/24")));
        assert_eq!(
            a.next_free(&[net("10.244.0.0/24")]),
            Some(net("10.244.1.0/24"))
        );
        assert_eq!(
            a.next_free(&[net("10.244.1.0/24")]),
            Some(net("10.244.0.0/24")),
            "freed subnets are reused"
        );
        // A foreign, larger allocation overlapping several subnets blocks all of them.
        assert_eq!(
            a.next_free(&[net("10.244.0.0/23")]),
            Some(net("10.244.2.0/24"))
        );
        // Allocations outside the cluster CIDR do not matter.
        assert_eq!(
            a.next_free(&[net("192.168.0.0/24")]),
            Some(net("10.244.0.0/24"))
        );
    }

    #[test]
    fn exhaustion_and_bad_masks() {
        let a = Allocator::new(net("10.0.0.0/30"), 30).expect("valid");
        assert_eq!(a.next_free(&[net("10.0.0.0/30")]), None);
        assert!(Allocator::new(net("10.244.0.0/16"), 8).is_err());
        assert!(Allocator::new(net("10.244.0.0/16"), 31).is_err());
        let unaligned = Allocator::new(net("10.244.3.7/16"), 24).expect("valid");
        assert_eq!(unaligned.next_free(&[]), Some(net("10.244.0.0/24")));
    }
}
