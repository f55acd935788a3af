//! host-gw pod networking across nodes: for every other Node with a `spec.podCIDR` and an InternalIP on a
//! subnet this host is directly attached to, keep `ip route <podCIDR> via <InternalIP> proto 0x53` in
//! the host's main table. Routes are marked with skiff's own routing protocol number ([`PROTO`]) so the
//! reconciler only ever removes routes it created. Nodes on no shared link are reached over the VXLAN
//! overlay of [`vxlan`] (or, with `--pod-network-mode`, every node over one of the two).

mod netlink;
pub mod vxlan;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::StreamExt as _;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
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

/// How pods on other nodes are reached (`--pod-network-mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// host-gw to nodes on a shared link, VXLAN to the others.
    #[default]
    Auto,
    /// host-gw only: nodes on no shared link are unreachable.
    HostGw,
    /// VXLAN to every node.
    Vxlan,
}

/// How one remote node is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The node is this very host (several agents in one namespace): nothing to do.
    SameHost,
    HostGw,
    Vxlan,
    /// host-gw mode and no shared link.
    Unreachable,
}

/// The auto-mode decision: a node whose InternalIP lies in a subnet this host is directly attached to is
/// reached by host-gw, any other by VXLAN (`mode` forces one of them). A loopback InternalIP (several
/// agents on one host, as in tests) is this host.
pub fn backend(ip: Ipv4Addr, subnets: &[Ipv4Net], mode: Mode) -> Backend {
    if ip.is_loopback() || subnets.iter().any(|s| s.addr() == ip) {
        return Backend::SameHost;
    }
    let shared = subnets.iter().any(|s| s.contains(&ip));
    match mode {
        Mode::Vxlan => Backend::Vxlan,
        Mode::HostGw if shared => Backend::HostGw,
        Mode::HostGw => Backend::Unreachable,
        Mode::Auto if shared => Backend::HostGw,
        Mode::Auto => Backend::Vxlan,
    }
}

/// What the nodes call for, seen from `self_name` with the host's addresses (`subnets`: address/prefix).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Desired {
    pub routes: Vec<Route>,
    /// Nodes with a pod CIDR that cannot be reached: on no shared subnet in host-gw mode, or needing the
    /// overlay while their (or this node's) overlay facts are missing.
    pub unreachable: Vec<String>,
    /// Remote nodes reached over the overlay.
    pub vxlan: Vec<vxlan::Peer>,
    /// This node's overlay end, when the overlay device is needed (vxlan mode, or a node needs it).
    pub local: Option<vxlan::Local>,
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

fn pod_cidr(node: &Node) -> Option<Ipv4Net> {
    node.spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .and_then(|c| c.parse::<Ipv4Net>().ok())
        .map(|c| c.trunc())
}

fn vxlan_mac(node: &Node) -> Option<[u8; 6]> {
    node.metadata
        .annotations
        .as_ref()?
        .get(vxlan::MAC_ANNOTATION)
        .and_then(|m| vxlan::parse_mac(m))
}

/// [`desired_mode`] in [`Mode::Auto`].
pub fn desired(nodes: &[Node], self_name: &str, subnets: &[Ipv4Net]) -> Desired {
    desired_mode(nodes, self_name, subnets, Mode::Auto)
}

/// The routes and overlay peers the nodes call for (pure: no system calls). A node without a valid pod
/// CIDR or InternalIP is skipped; two nodes claiming one CIDR keep the first by name.
pub fn desired_mode(nodes: &[Node], self_name: &str, subnets: &[Ipv4Net], mode: Mode) -> Desired {
    let me = nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(self_name));
    let local = me
        .and_then(|n| {
            Some(vxlan::Local {
                ip: internal_ip(n)?,
                cidr: pod_cidr(n)?,
            })
        })
        .filter(|l| !l.ip.is_loopback());
    let mut by_cidr: BTreeMap<Ipv4Net, (String, Ipv4Addr)> = BTreeMap::new();
    let mut peers: BTreeMap<Ipv4Net, vxlan::Peer> = BTreeMap::new();
    let mut needs_overlay = mode == Mode::Vxlan;
    let mut out = Desired::default();
    let mut sorted: Vec<&Node> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for node in sorted {
        let name = node.metadata.name.clone().unwrap_or_default();
        if name == self_name || node.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(cidr) = pod_cidr(node) else {
            continue;
        };
        let Some(ip) = internal_ip(node) else {
            continue;
        };
        if local.is_some_and(|l| l.ip == ip) {
            continue;
        }
        match backend(ip, subnets, mode) {
            Backend::SameHost => {}
            Backend::Unreachable => out.unreachable.push(name),
            Backend::HostGw => {
                by_cidr.entry(cidr).or_insert((name, ip));
            }
            Backend::Vxlan => {
                needs_overlay = true;
                match (vxlan_mac(node), local) {
                    (Some(mac), Some(l)) if !l.cidr.contains(&cidr.network()) => {
                        peers.entry(cidr).or_insert(vxlan::Peer {
                            cidr,
                            vtep: ip,
                            mac,
                        });
                    }
                    _ => out.unreachable.push(name),
                }
            }
        }
    }
    // One CIDR, one backend: host-gw wins (it is the one chosen by name order only within a backend).
    peers.retain(|cidr, _| !by_cidr.contains_key(cidr));
    out.routes = by_cidr
        .into_iter()
        .map(|(dst, (_, via))| Route { dst, via })
        .collect();
    out.vxlan = peers.into_values().collect();
    out.local = local.filter(|_| needs_overlay);
    out
}

/// What [`apply`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub added: Vec<Route>,
    pub removed: Vec<Route>,
    /// Desired routes that could not be added (e.g. a route to that CIDR not created by skiff exists).
    pub failed: Vec<(Route, String)>,
    /// What the overlay changed.
    pub overlay: vxlan::Applied,
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

/// [`reconcile_mode`] in [`Mode::Auto`].
pub fn reconcile(nodes: &[Node], self_name: &str) -> std::io::Result<(Desired, Applied)> {
    reconcile_mode(nodes, self_name, Mode::Auto)
}

/// Read the host's subnets, compute and apply the routes and the overlay, in the calling thread's
/// namespace. The overlay device is created when needed and removed in host-gw mode.
pub fn reconcile_mode(
    nodes: &[Node],
    self_name: &str,
    mode: Mode,
) -> std::io::Result<(Desired, Applied)> {
    let mut nl = Netlink::open()?;
    // The overlay device's own /32 is no link to anyone.
    let subnets: Vec<Ipv4Net> = nl
        .subnets_v4()?
        .into_iter()
        .filter(|s| s.prefix_len() < 32)
        .collect();
    let want = desired_mode(nodes, self_name, &subnets, mode);
    // Overlay first: a CIDR moving from the overlay to host-gw frees its route before host-gw adds it.
    let device = match want.local {
        Some(local) => Some(vxlan::ensure_device(nl.inner(), &local)?),
        None if mode == Mode::HostGw => {
            vxlan::remove_device(nl.inner())?;
            None
        }
        // No node needs the overlay now: keep the device (and its published MAC), drop stale peers.
        None => vxlan::device(nl.inner())?,
    };
    let overlay = |nl: &mut Netlink| -> std::io::Result<vxlan::Applied> {
        let Some((index, mac)) = &device else {
            return Ok(vxlan::Applied::default());
        };
        let mut applied = vxlan::apply(nl.inner(), *index, &want.vxlan)?;
        applied.mac = Some(mac.clone());
        Ok(applied)
    };
    let mut first = overlay(&mut nl)?;
    let mut applied = apply(&mut nl, &want.routes)?;
    // A CIDR moving from host-gw to the overlay: its host-gw route is gone only now.
    if !first.failed.is_empty() && !applied.removed.is_empty() {
        let second = overlay(&mut nl)?;
        first.added.extend(second.added);
        first.removed.extend(second.removed);
        first.failed = second.failed;
    }
    applied.overlay = first;
    Ok((want, applied))
}

/// [`run_mode`] in [`Mode::Auto`].
pub async fn run(client: Client, self_name: String) {
    run_mode(client, self_name, Mode::Auto).await
}

/// Publish this node's overlay MAC in its Node annotation when it differs from what the Node says.
async fn publish_mac(api: &Api<Node>, me: Option<&Node>, name: &str, mac: &str) {
    let current = me
        .and_then(|n| n.metadata.annotations.as_ref())
        .and_then(|a| a.get(vxlan::MAC_ANNOTATION));
    if current.map(String::as_str) == Some(mac) {
        return;
    }
    let patch = serde_json::json!({"metadata": {"annotations": {vxlan::MAC_ANNOTATION: mac}}});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => tracing::info!(mac = %mac, "published vxlan MAC"),
        Err(e) => tracing::warn!(error = %e, "publishing the vxlan MAC failed"),
    }
}

/// Watch Nodes and keep the host-gw routes and the overlay in the agent's network namespace until the
/// stream ends.
pub async fn run_mode(client: Client, self_name: String, mode: Mode) {
    let api: Api<Node> = Api::all(client);
    let mut stream = watcher::watcher(api.clone(), watcher::Config::default())
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
        match tokio::task::spawn_blocking(move || reconcile_mode(&list, &name, mode)).await {
            Ok(Ok((want, applied))) => {
                let overlay = &applied.overlay;
                for peer in &overlay.added {
                    tracing::info!(dst = %peer.cidr, vtep = %peer.vtep, "vxlan peer added");
                }
                for what in &overlay.removed {
                    tracing::info!(entry = %what, "vxlan entry removed");
                }
                for (what, err) in &overlay.failed {
                    tracing::warn!(entry = %what, error = %err, "vxlan entry failed");
                }
                if let Some(mac) = &overlay.mac {
                    publish_mac(&api, nodes.get(&self_name), &self_name, mac).await;
                }
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
                    tracing::warn!(node = %node, mode = ?mode, "node unreachable: no shared link in host-gw mode, or its vxlan MAC / this node's podCIDR is not known yet");
                }
                warned = want.unreachable;
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "host-gw route reconcile failed"),
            Err(e) => tracing::warn!(error = %e, "host-gw route task failed"),
        }
    }
}
