//! host-gw pod networking across nodes: for every other Node with a `spec.podCIDR` and an InternalIP on a
//! subnet this host is directly attached to, keep `ip route <podCIDR> via <InternalIP> proto 0x53` in
//! the host's main table. Routes are marked with skiff's own routing protocol number ([`PROTO`]) so the
//! reconciler only ever removes routes it created. Nodes on no shared link would need VXLAN, which is
//! not implemented yet: they are logged and skipped.

mod netlink;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::StreamExt as _;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};

pub use netlink::Netlink;

/// The `rtm_protocol` of skiff's routes (`ip route … proto 83`); unused by iproute2's `rt_protos`.
pub const PROTO: u8 = 0x53;
/// How often routes are re-checked without a Node change (someone may have deleted one).
const RESYNC: Duration = Duration::from_secs(60);

/// One host-gw route: pod CIDR of a node via its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    pub dst: Ipv4Net,
    pub via: Ipv4Addr,
}

/// What the nodes call for, seen from `self_name` with the host's addresses (`subnets`: address/prefix).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Desired {
    pub routes: Vec<Route>,
    /// Nodes with a pod CIDR whose InternalIP is on no shared subnet (would need an overlay).
    pub unreachable: Vec<String>,
}

fn internal_ip(node: &Node) -> Option<Ipv4Addr> {
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse().ok())
}

/// The routes the nodes call for (pure: no system calls). A node without a valid pod CIDR or InternalIP is
/// skipped; two nodes claiming one CIDR keep the first by name.
pub fn desired(nodes: &[Node], self_name: &str, subnets: &[Ipv4Net]) -> Desired {
    let mut by_cidr: BTreeMap<Ipv4Net, (String, Ipv4Addr)> = BTreeMap::new();
    let mut out = Desired::default();
    let mut sorted: Vec<&Node> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for node in sorted {
        let name = node.metadata.name.clone().unwrap_or_default();
        if name == self_name || node.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(cidr) = node
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_deref())
            .and_then(|c| c.parse::<Ipv4Net>().ok())
        else {
            continue;
        };
        let Some(ip) = internal_ip(node) else {
            continue;
        };
        // A node on this very host (several agents in one namespace) needs no route.
        if subnets.iter().any(|s| s.addr() == ip) {
            continue;
        }
        if !subnets.iter().any(|s| s.contains(&ip)) {
            out.unreachable.push(name);
            continue;
        }
        by_cidr.entry(cidr.trunc()).or_insert((name, ip));
    }
    out.routes = by_cidr
        .into_iter()
        .map(|(dst, (_, via))| Route { dst, via })
        .collect();
    out
}

/// What [`apply`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub added: Vec<Route>,
    pub removed: Vec<Route>,
    /// Desired routes that could not be added (e.g. a route to that CIDR not created by skiff exists).
    pub failed: Vec<(Route, String)>,
}

/// Make skiff's routes in `nl`'s namespace exactly `want`; other routes are never touched.
pub fn apply(nl: &mut Netlink, want: &[Route]) -> std::io::Result<Applied> {
    let have = nl.routes_v4(PROTO)?;
    let mut applied = Applied::default();
    for route in have.iter().filter(|r| !want.contains(r)) {
        match nl.delete(route, PROTO) {
            Ok(()) => applied.removed.push(*route),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) => applied.failed.push((*route, format!("delete: {e}"))),
        }
    }
    for route in want.iter().filter(|r| !have.contains(r)) {
        match nl.add(route, PROTO) {
            Ok(()) => applied.added.push(*route),
            Err(e) => applied.failed.push((*route, e.to_string())),
        }
    }
    Ok(applied)
}

/// Read the host's subnets, compute and apply the routes, in the calling thread's namespace.
pub fn reconcile(nodes: &[Node], self_name: &str) -> std::io::Result<(Desired, Applied)> {
    let mut nl = Netlink::open()?;
    let subnets = nl.subnets_v4()?;
    let want = desired(nodes, self_name, &subnets);
    let applied = apply(&mut nl, &want.routes)?;
    Ok((want, applied))
}

/// Watch Nodes and keep the host-gw routes in the agent's network namespace until the stream ends.
pub async fn run(client: Client, self_name: String) {
    let api: Api<Node> = Api::all(client);
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    let mut listing: Option<BTreeMap<String, Node>> = None;
    let mut resync = tokio::time::interval(RESYNC);
    let mut warned: Vec<String> = Vec::new();
    loop {
        let changed = tokio::select! {
            ev = stream.next() => match ev {
                Some(Ok(Event::Apply(n))) => {
                    nodes.insert(n.metadata.name.clone().unwrap_or_default(), n);
                    true
                }
                Some(Ok(Event::Delete(n))) => {
                    nodes.remove(n.metadata.name.as_deref().unwrap_or_default());
                    true
                }
                Some(Ok(Event::Init)) => {
                    listing = Some(BTreeMap::new());
                    false
                }
                Some(Ok(Event::InitApply(n))) => {
                    if let Some(l) = listing.as_mut() {
                        l.insert(n.metadata.name.clone().unwrap_or_default(), n);
                    }
                    false
                }
                Some(Ok(Event::InitDone)) => {
                    nodes = listing.take().unwrap_or_default();
                    true
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "node watch failed; retrying");
                    false
                }
                None => return,
            },
            _ = resync.tick() => true,
        };
        if !changed {
            continue;
        }
        let list: Vec<Node> = nodes.values().cloned().collect();
        let name = self_name.clone();
        match tokio::task::spawn_blocking(move || reconcile(&list, &name)).await {
            Ok(Ok((want, applied))) => {
                for route in &applied.added {
                    tracing::info!(dst = %route.dst, via = %route.via, "host-gw route added");
                }
                for route in &applied.removed {
                    tracing::info!(dst = %route.dst, via = %route.via, "host-gw route removed");
                }
                for (route, err) in &applied.failed {
                    tracing::warn!(dst = %route.dst, via = %route.via, error = %err, "host-gw route failed");
                }
                for node in want.unreachable.iter().filter(|n| !warned.contains(n)) {
                    tracing::warn!(node = %node, "node shares no link with this host; VXLAN is not implemented yet, its pods are unreachable");
                }
                warned = want.unreachable;
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "host-gw route reconcile failed"),
            Err(e) => tracing::warn!(error = %e, "host-gw route task failed"),
        }
    }
}
