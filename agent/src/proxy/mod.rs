//! Services on this node, what kube-proxy and the kubelet's service informer do: one cache of every
//! Service and Endpoints in the cluster (watched through the API server), from which
//!
//! - the nftables table `ip skiff-proxy` sends traffic for a Service's cluster IP and port to one of its
//!   ready endpoints ([`rules`]; `--proxy-mode nftables`, the default), and
//! - containers get the Docker-link style variables of the Services of their namespace and of the
//!   `kubernetes` Service ([`links`]).
//!
//! A LoadBalancer Service whose `status.loadBalancer.ingress` names one of this node's addresses (ServiceLB:
//! the API server's `service_lb` controller writes it) is also served on its `port`s at every local address,
//! as its node ports are.
//!
//! Only IPv4 ClusterIP Services are proxied. `sessionAffinity: ClientIP` sends a client back to the endpoint it
//! last reached as kube-proxy's nftables mode does (per-endpoint sets, see [`rules`] and [`table`]); stale UDP
//! conntrack entries are not flushed when an endpoint goes away.

pub mod links;
pub mod rules;
pub mod table;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Endpoints, NodeAddress, Service, ServiceSpec};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::{Notify, watch};

pub use rules::{Protocol, ServicePort};

/// `--proxy-mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Program cluster IPs in the nftables table `ip skiff-proxy`.
    #[default]
    Nftables,
    /// No service proxy (another one runs, or the node needs none); service variables are still set.
    None,
}

/// Changes arriving within this window are applied as one batch.
const COALESCE: Duration = Duration::from_millis(20);
/// The table is rewritten this often even without a change (someone may have flushed the ruleset).
const RESYNC: Duration = Duration::from_secs(60);
/// How long a container start waits for the first listing of Services (the kubelet refuses to build
/// service variables before it).
const SYNC_WAIT: Duration = Duration::from_secs(10);

/// The cluster's Services and Endpoints as last seen.
pub struct Services {
    services: Store<Service>,
    endpoints: Store<Endpoints>,
    changed: Arc<Notify>,
    /// True once each store has been listed. (Not `Store::wait_until_ready`: in kube-runtime 5 only the
    /// last of several concurrent waiters is woken, which left the rule writer waiting forever while the
    /// DNS server started.)
    services_listed: watch::Receiver<bool>,
    endpoints_listed: watch::Receiver<bool>,
}

impl Services {
    /// Watch Services and Endpoints; with [`Mode::Nftables`], keep the node's proxy rules in step.
    /// `addresses` are the IPv4 addresses this node registers on its Node (a load balancer ingress with one
    /// of them is served here); `local` is this node's pod CIDR; `dns` the cluster DNS address this node
    /// serves itself (not proxied: the kube-dns Service that reserves it has no endpoints).
    pub fn start(
        client: Client,
        mode: Mode,
        node: String,
        addresses: Vec<Ipv4Addr>,
        local: Option<Ipv4Net>,
        dns: Option<Ipv4Addr>,
    ) -> Arc<Services> {
        let (services, svc_writer) = reflector::store();
        let (endpoints, ep_writer) = reflector::store();
        let changed = Arc::new(Notify::new());
        let (svc_listed, services_listed) = watch::channel(false);
        let (ep_listed, endpoints_listed) = watch::channel(false);
        let svc_api: Api<Service> = Api::all(client.clone());
        tokio::spawn(feed(
            reflector::reflector(
                svc_writer,
                watcher::watcher(svc_api, watcher::Config::default()).default_backoff(),
            ),
            changed.clone(),
            svc_listed,
            "service",
        ));
        if mode == Mode::Nftables || dns.is_some() {
            let ep_api: Api<Endpoints> = Api::all(client);
            tokio::spawn(feed(
                reflector::reflector(
                    ep_writer,
                    watcher::watcher(ep_api, watcher::Config::default()).default_backoff(),
                ),
                changed.clone(),
                ep_listed,
                "endpoints",
            ));
        }
        let this = Arc::new(Services {
            services,
            endpoints,
            changed,
            services_listed,
            endpoints_listed,
        });
        if mode == Mode::Nftables {
            tokio::spawn(this.clone().program(node, addresses, local, dns));
        }
        this
    }

    /// The service variables of a container in `namespace` (see [`links::variables`]), once Services have
    /// been listed at least once.
    pub async fn variables(
        &self,
        namespace: &str,
        enable_service_links: bool,
    ) -> Result<Vec<(String, String)>, String> {
        if tokio::time::timeout(SYNC_WAIT, listed(&self.services_listed))
            .await
            .is_err()
        {
            return Err(
                "services have not yet been read at least once, cannot construct envvars".into(),
            );
        }
        let all = self.services.state();
        Ok(links::variables(
            all.iter().map(|s| s.as_ref()),
            namespace,
            enable_service_links,
        ))
    }

    /// Wait until Services and Endpoints have been listed once, or `limit` has passed.
    pub async fn synced(&self, limit: Duration) {
        let both = async {
            listed(&self.services_listed).await;
            listed(&self.endpoints_listed).await;
        };
        let _ = tokio::time::timeout(limit, both).await;
    }

    /// Apply the rules after every change (coalesced) and every [`RESYNC`].
    async fn program(
        self: Arc<Self>,
        node: String,
        addresses: Vec<Ipv4Addr>,
        local: Option<Ipv4Net>,
        dns: Option<Ipv4Addr>,
    ) {
        listed(&self.services_listed).await;
        listed(&self.endpoints_listed).await;
        let mut table = table::ProxyTable::default();
        let mut resync = tokio::time::interval(RESYNC);
        loop {
            let forced = tokio::select! {
                _ = self.changed.notified() => false,
                _ = resync.tick() => true,
            };
            tokio::time::sleep(COALESCE).await;
            let services = self.services.state();
            let mut ports = service_ports(
                services.iter().map(|s| s.as_ref()),
                |ns, name| {
                    self.endpoints
                        .get(&reflector::ObjectRef::new(name).within(ns))
                },
                &node,
                &addresses,
            );
            ports.retain(|p| Some(p.ip) != dns);
            rules::order(&mut ports);
            let rules = rules::ruleset(&ports, local, dns);
            // Unchanged: nothing to do, unless the resync finds the table gone (one netlink query).
            let present = forced.then(|| {
                skiff_cni::plugin::nftnl::get_chain(rules::TABLE, "services")
                    .is_ok_and(|c| c.is_some())
            });
            if table.sync(&rules, present, &self.changed).await {
                tracing::debug!(summary = ?rules::summary(&ports), "service rules applied");
            }
        }
    }
}

impl crate::dns::zone::Catalog for Services {
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>> {
        self.services
            .get(&reflector::ObjectRef::new(name).within(namespace))
    }

    fn endpoints(&self, namespace: &str, name: &str) -> Option<Arc<Endpoints>> {
        self.endpoints
            .get(&reflector::ObjectRef::new(name).within(namespace))
    }

    fn services(&self) -> Vec<Arc<Service>> {
        self.services.state()
    }
}

/// Until the store behind `flag` has been listed once (forever if its watch never runs).
async fn listed(flag: &watch::Receiver<bool>) {
    let _ = flag.clone().wait_for(|l| *l).await;
}

/// Drive a reflector stream, waking the rule writer on every change and raising `listed` once the store
/// holds a whole listing (the reflector applies each event to the store before passing it on).
async fn feed<K>(
    stream: impl Stream<Item = Result<Event<K>, watcher::Error>>,
    changed: Arc<Notify>,
    listed: watch::Sender<bool>,
    what: &'static str,
) {
    let mut stream = std::pin::pin!(stream);
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(Event::InitDone) => {
                listed.send_replace(true);
                changed.notify_one();
            }
            Ok(Event::Apply(_) | Event::Delete(_)) => changed.notify_one(),
            Ok(Event::Init | Event::InitApply(_)) => {}
            Err(e) => tracing::warn!(error = %e, "{what} watch failed; retrying"),
        }
    }
}

/// What was last written to an nftables table the agent rewrites whole (the service proxy's, the network
/// policies'), and the back-off after failed writes.
#[derive(Debug, Default)]
pub struct Programmed {
    last: String,
    failures: u32,
}

impl Programmed {
    /// Whether `batch` is what the table got last.
    pub fn is_current(&self, batch: &str) -> bool {
        self.last == batch
    }

    /// Write `batch` (one `nft -f -` transaction); true when it differs from the last one written. A failure is
    /// logged, waited out (1 s, 2 s, 4 s … 60 s: no `nft` on this host is not going to fix itself quickly) and
    /// `changed` is notified so the caller tries again.
    pub async fn apply(&mut self, batch: String, what: &str, changed: &Notify) -> bool {
        match apply(&batch).await {
            Ok(()) => {
                let new = batch != self.last;
                self.last = batch;
                self.failures = 0;
                new
            }
            Err(e) => {
                let delay = Duration::from_secs(1 << self.failures.min(6)).min(RESYNC);
                self.failures += 1;
                tracing::warn!(error = %e, "applying the {what} rules failed; retrying in {delay:?}");
                self.last.clear();
                tokio::time::sleep(delay).await;
                changed.notify_one();
                false
            }
        }
    }
}

/// Run one `nft -f -` batch (a child process of the tokio runtime: no blocking thread).
pub async fn apply(batch: &str) -> Result<(), String> {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new(skiff_cni::plugin::firewall::find_tool("nft"))
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("failed to run nft: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(batch.as_bytes())
            .await
            .map_err(|e| format!("failed to feed nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("failed to wait for nft: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "nft -f - failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A Service's namespace, name and spec, when it has all three.
pub fn parts(svc: &Service) -> Option<(&str, &str, &ServiceSpec)> {
    Some((
        svc.metadata.namespace.as_deref()?,
        svc.metadata.name.as_deref()?,
        svc.spec.as_ref()?,
    ))
}

/// The IPv4 addresses among a Node's `status.addresses` (its InternalIPs and ExternalIPs): the ones a load
/// balancer ingress must name for this node to serve it.
pub fn node_ips(addresses: &[NodeAddress]) -> Vec<Ipv4Addr> {
    addresses
        .iter()
        .filter(|a| matches!(a.type_.as_str(), "InternalIP" | "ExternalIP"))
        .filter_map(|a| a.address.parse().ok())
        .collect()
}

/// Whether `svc` is a LoadBalancer Service whose `status.loadBalancer.ingress` has an `ip` among
/// `addresses` (this node's): ServiceLB chose this node to serve it.
fn load_balanced_here(svc: &Service, addresses: &[Ipv4Addr]) -> bool {
    let is_lb = svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
    let ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    is_lb
        && ingress.into_iter().flatten().any(|i| {
            i.ip.as_deref()
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
                .is_some_and(|ip| addresses.contains(&ip))
        })
}

/// The timeout of `sessionAffinity: ClientIP` (`sessionAffinityConfig.clientIP.timeoutSeconds`, kube's default
/// 10800 when unset or out of the API server's range 1..=86400), or `None` without affinity.
fn client_ip_affinity(spec: &ServiceSpec) -> Option<u32> {
    const DEFAULT_SECONDS: u32 = 10800;
    if spec.session_affinity.as_deref() != Some("ClientIP") {
        return None;
    }
    let timeout = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds)
        .and_then(|t| u32::try_from(t).ok())
        .filter(|t| (1..=86400).contains(t));
    Some(timeout.unwrap_or(DEFAULT_SECONDS))
}

/// The proxied ports of `services`: every IPv4 cluster IP × port of a ClusterIP, NodePort or LoadBalancer
/// Service, with the ready endpoint addresses whose Endpoints port has the Service port's name and protocol
/// (only those on `node` with `internalTrafficPolicy: Local`), the node port, if any, and whether the port
/// is a load balancer port this node serves (its ingress names one of `addresses`).
pub fn service_ports<'a>(
    services: impl Iterator<Item = &'a Service>,
    endpoints: impl Fn(&str, &str) -> Option<Arc<Endpoints>>,
    node: &str,
    addresses: &[Ipv4Addr],
) -> Vec<ServicePort> {
    let mut out = Vec::new();
    for svc in services {
        let Some((ns, name, spec)) = parts(svc) else {
            continue;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let ips: Vec<Ipv4Addr> = match &spec.cluster_ips {
            Some(ips) if !ips.is_empty() => ips.iter().filter_map(|i| i.parse().ok()).collect(),
            _ => spec
                .cluster_ip
                .iter()
                .filter_map(|i| i.parse().ok())
                .collect(),
        };
        if ips.is_empty() {
            continue;
        }
        let local_only = spec.internal_traffic_policy.as_deref() == Some("Local");
        let with_node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
        let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
        let load_balancer = load_balanced_here(svc, addresses);
        let affinity = client_ip_affinity(spec);
        let eps = endpoints(ns, name);
        for sp in spec.ports.iter().flatten() {
            let (Some(protocol), Ok(port)) = (
                Protocol::parse(sp.protocol.as_deref()),
                u16::try_from(sp.port),
            ) else {
                continue;
            };
            let port_name = sp.name.clone().unwrap_or_default();
            let node_port = sp
                .node_port
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0);
            let mut addrs = Vec::new();
            for subset in eps.iter().flat_map(|e| e.subsets.iter().flatten()) {
                let Some(target) = subset.ports.iter().flatten().find(|p| {
                    p.name.clone().unwrap_or_default() == port_name
                        && Protocol::parse(p.protocol.as_deref()) == Some(protocol)
                }) else {
                    continue;
                };
                let Ok(target) = u16::try_from(target.port) else {
                    continue;
                };
                for a in subset.addresses.iter().flatten() {
                    if local_only && a.node_name.as_deref() != Some(node) {
                        continue;
                    }
                    if let Ok(ip) = a.ip.parse::<Ipv4Addr>() {
                        addrs.push((ip, target));
                    }
                }
            }
            let endpoints = rules::sorted(addrs);
            for ip in &ips {
                out.push(ServicePort {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                    port_name: if port_name.is_empty() {
                        port.to_string()
                    } else {
                        port_name.clone()
                    },
                    ip: *ip,
                    protocol,
                    port,
                    endpoints: endpoints.clone(),
                    node_port: node_port.filter(|_| with_node_ports),
                    load_balancer,
                    external_local,
                    affinity,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
