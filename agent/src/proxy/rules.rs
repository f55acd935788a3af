//! The nftables ruleset of the service proxy, as one `nft -f -` batch that replaces table `ip skiff-proxy`
//! atomically (the layout of kube-proxy's nftables mode, reduced to what skiff serves):
//!
//! - map `service-ips`: `cluster IP . protocol . port` → `goto svc-<ns>/<name>/<proto>/<port>`, looked up
//!   from the `nat` prerouting (traffic from pods) and output (traffic from the host) hooks;
//! - one chain per service port that picks an endpoint with `numgen random mod N`, and one chain per
//!   endpoint that DNATs to it;
//! - set `no-endpoints`: service ports without a ready endpoint, rejected (ICMP port unreachable, so a
//!   client sees "connection refused" at once) in the filter forward and output hooks;
//! - masquerade for a pod of this node that reaches a pod of this node through a service (itself
//!   included): the reply would otherwise go straight back over the bridge, past the DNAT, and the
//!   client would drop it. The endpoint chain marks such packets with [`MASQ_MARK`];
//! - map `service-nodeports`: `protocol . node port` → `goto ext-<service chain>`, looked up for traffic to
//!   any local address but 127.0.0.0/8 (kube-proxy's nftables mode does not serve node ports on localhost
//!   either). With `externalTrafficPolicy: Cluster` the external chain marks the packet for masquerade
//!   (the reply must come back through this node) and goes on to the service chain; with `Local` it picks
//!   among this node's endpoints only and keeps the client's address. Node ports without a usable endpoint
//!   are in set `no-endpoint-nodeports`, rejected in the filter input hook. The load balancer ports this
//!   node serves (ServiceLB) are entries of the same map and set, pointing at the same chains; a load
//!   balancer port equal to a node port gives way to it. The cluster DNS address the node answers itself
//!   (on `lo`, so local too) is left out of both lookups;
//! - `sessionAffinity: ClientIP` (kube-proxy's nftables mode): one set `affinity-<ns>/<name>/<proto>/<port>__
//!   <ip>/<port>` per endpoint (`ipv4_addr`, `flags dynamic,timeout`, `timeout <timeoutSeconds>s`); the endpoint
//!   chain adds or refreshes the client's address (`update @set { ip saddr }`) before its DNAT, and the service
//!   chain (and the external chain of `externalTrafficPolicy: Local`, over this node's endpoints) sends a
//!   client found in an endpoint's set to that endpoint before the random pick.
//!
//! [`ruleset`] renders the table's contents; [`render`] the batch that replaces the table whole, and
//! [`super::table`] the batch that updates it in place (keeping the affinity sets' entries).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Endpoint addresses and ports.
type Endpoints = Vec<(Ipv4Addr, u16)>;

/// The nftables table (family `ip`) the proxy owns.
pub const TABLE: &str = "skiff-proxy";
/// The packet mark bit that asks for masquerade (kube-proxy's masquerade bit).
pub const MASQ_MARK: u32 = 0x4000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// `TCP`/`UDP`/`SCTP` as in a Service (missing means TCP).
    pub fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One port of one service on one cluster IP, and the endpoints behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    /// The port's name, or its number when unnamed (chain names only).
    pub port_name: String,
    pub ip: Ipv4Addr,
    pub protocol: Protocol,
    pub port: u16,
    /// Ready endpoints, sorted and without duplicates.
    pub endpoints: Vec<(Ipv4Addr, u16)>,
    /// The node port of a NodePort or LoadBalancer Service.
    pub node_port: Option<u16>,
    /// `port` is also served on this node's local addresses, as a node port is: a LoadBalancer Service
    /// whose `status.loadBalancer.ingress` names this node.
    pub load_balancer: bool,
    /// `externalTrafficPolicy: Local`: node port traffic goes only to this node's endpoints, unmasqueraded.
    pub external_local: bool,
    /// `sessionAffinity: ClientIP`: its timeout in seconds (`sessionAffinityConfig.clientIP.timeoutSeconds`).
    pub affinity: Option<u32>,
}

impl ServicePort {
    /// `<ns>/<name>/<proto>/<port name>`: the service port part of its chains' and sets' names.
    fn base(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.namespace,
            self.name,
            self.protocol.nft(),
            self.port_name
        )
    }

    fn chain(&self) -> String {
        format!("svc-{}", self.base())
    }

    fn endpoint_chain(&self, (ip, port): (Ipv4Addr, u16)) -> String {
        format!("svc-{}__{ip}/{port}", self.base())
    }

    /// The affinity set of one endpoint (at most 9 + 63 + 63 + 4 + 15 + 21 + 5 characters: within nft's
    /// 255 for set names).
    fn affinity_set(&self, (ip, port): (Ipv4Addr, u16)) -> String {
        format!("affinity-{}__{ip}/{port}", self.base())
    }
}

/// The maps and sets every version of the table has: kind, name and type.
pub const COLLECTIONS: [(&str, &str, &str); 4] = [
    (
        "map",
        "service-ips",
        "ipv4_addr . inet_proto . inet_service : verdict",
    ),
    (
        "set",
        "no-endpoints",
        "ipv4_addr . inet_proto . inet_service",
    ),
    (
        "map",
        "service-nodeports",
        "inet_proto . inet_service : verdict",
    ),
    ("set", "no-endpoint-nodeports", "inet_proto . inet_service"),
];

/// The contents of table `ip skiff-proxy` for one state of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Everything inside `table ip skiff-proxy { … }`.
    pub body: String,
    /// The per-service chains (service, external and endpoint chains).
    pub chains: BTreeSet<String>,
    /// The affinity sets and their timeouts (seconds).
    pub affinity_sets: BTreeMap<String, u32>,
}

/// The batch that replaces the table with `rules` in one transaction: create-or-keep it, delete it, define it.
pub fn replace(rules: &Ruleset) -> String {
    format!(
        "table ip {TABLE}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n{}}}\n",
        rules.body
    )
}

/// The whole batch for `nft -f -` that replaces the table (see [`replace`]).
pub fn render(ports: &[ServicePort], local: Option<Ipv4Net>, dns: Option<Ipv4Addr>) -> String {
    replace(&ruleset(ports, local, dns))
}

/// The table's contents for `ports`. `local` is this node's pod CIDR (pods whose traffic may need
/// masquerade); `dns` the cluster DNS address this node answers on `lo` (never a node port or load balancer
/// destination: a LoadBalancer Service on port 53 would otherwise take the node's DNS traffic).
pub fn ruleset(ports: &[ServicePort], local: Option<Ipv4Net>, dns: Option<Ipv4Addr>) -> Ruleset {
    let mut out = String::new();
    let mut chains = BTreeSet::new();

    let (live, dead): (Vec<&ServicePort>, Vec<&ServicePort>) =
        ports.iter().partition(|p| !p.endpoints.is_empty());
    // Ports served on the node's own addresses (one entry per protocol and number, whatever the number of
    // cluster IPs), with the endpoints their traffic may go to: node ports first, then load balancer ports,
    // so that a load balancer port equal to a node port (or to an earlier Service's load balancer port) is
    // left out; a key twice in the map would fail the whole batch.
    let mut node_ports: BTreeMap<(Protocol, u16), (&ServicePort, Endpoints)> = BTreeMap::new();
    let by_node_port = ports.iter().filter_map(|p| Some((p, p.node_port?)));
    let by_lb_port = ports.iter().filter(|p| p.load_balancer);
    for (p, number) in by_node_port.chain(by_lb_port.map(|p| (p, p.port))) {
        node_ports.entry((p.protocol, number)).or_insert_with(|| {
            let eps = p
                .endpoints
                .iter()
                .filter(|(ip, _)| !p.external_local || local.is_some_and(|n| n.contains(ip)))
                .copied()
                .collect();
            (p, eps)
        });
    }
    let (np_live, np_dead): (Vec<_>, Vec<_>) =
        node_ports.iter().partition(|(_, (_, eps))| !eps.is_empty());
    // One external chain per service chain, however many node-level ports lead to it.
    let ext: BTreeMap<String, (&ServicePort, &Endpoints)> = np_live
        .iter()
        .map(|(_, (p, eps))| (p.chain(), (*p, eps)))
        .collect();
    let not_node = match dns {
        Some(dns) => format!("{{ 127.0.0.0/8, {dns} }}"),
        None => "127.0.0.0/8".to_string(),
    };
    let key = |p: &ServicePort| format!("{} . {} . {}", p.ip, p.protocol.nft(), p.port);

    let elements: [Vec<String>; 4] = [
        live.iter()
            .map(|p| format!("{} : goto {}", key(p), p.chain()))
            .collect(),
        dead.iter().map(|p| key(p)).collect(),
        np_live
            .iter()
            .map(|((proto, np), (p, _))| format!("{} . {np} : goto ext-{}", proto.nft(), p.chain()))
            .collect(),
        np_dead
            .iter()
            .map(|((proto, np), _)| format!("{} . {np}", proto.nft()))
            .collect(),
    ];
    for ((kind, name, ty), elems) in COLLECTIONS.iter().zip(elements) {
        collection(&mut out, &format!("{kind} {name}"), ty, elems);
    }
    // Affinity sets before the rules that use them.
    let affinity_sets: BTreeMap<String, u32> = live
        .iter()
        .filter_map(|p| Some((p, p.affinity?)))
        .flat_map(|(p, t)| p.endpoints.iter().map(move |ep| (p.affinity_set(*ep), t)))
        .collect();
    for (set, timeout) in &affinity_sets {
        let _ = writeln!(
            out,
            "\tset {set} {{\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout {timeout}s\n\t}}"
        );
    }

    let _ = writeln!(
        out,
        "\tchain services {{\n\t\tip daddr . meta l4proto . th dport vmap @service-ips\n\t\t\
         fib daddr type local ip daddr != {not_node} meta l4proto . th dport vmap @service-nodeports\n\t}}",
    );
    out.push_str(
        "\tchain nat-prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tjump services\n\t}\n",
    );
    out.push_str(
        "\tchain nat-output {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tjump services\n\t}\n",
    );
    let _ = writeln!(
        out,
        "\tchain nat-postrouting {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tmeta mark & {MASQ_MARK:#x} == {MASQ_MARK:#x} masquerade\n\t}}"
    );
    for hook in ["forward", "output"] {
        let _ = writeln!(
            out,
            "\tchain filter-{hook} {{\n\t\ttype filter hook {hook} priority filter - 10; policy accept;\n\t\tct state new ip daddr . meta l4proto . th dport @no-endpoints reject\n\t}}"
        );
    }
    let _ = writeln!(
        out,
        "\tchain filter-input {{\n\t\ttype filter hook input priority filter - 10; policy accept;\n\t\t\
         ct state new ip daddr != {not_node} meta l4proto . th dport @no-endpoint-nodeports reject\n\t}}",
    );

    for p in &live {
        let svc = p.chain();
        let _ = writeln!(out, "\tchain {svc} {{");
        pick(&mut out, p, &p.endpoints);
        out.push_str("\t}\n");
        chains.insert(svc);
        for &(ip, port) in &p.endpoints {
            let chain = p.endpoint_chain((ip, port));
            let _ = writeln!(out, "\tchain {chain} {{");
            if let Some(net) = local.filter(|n| n.contains(&ip)) {
                let _ = writeln!(
                    out,
                    "\t\tip saddr {} meta mark set meta mark | {MASQ_MARK:#x}",
                    net.trunc()
                );
            }
            if p.affinity.is_some() {
                let set = p.affinity_set((ip, port));
                let _ = writeln!(out, "\t\tupdate @{set} {{ ip saddr }}");
            }
            let _ = writeln!(
                out,
                "\t\tmeta l4proto {} dnat to {ip}:{port}\n\t}}",
                p.protocol.nft()
            );
            chains.insert(chain);
        }
    }
    for (svc, (p, eps)) in &ext {
        let _ = writeln!(out, "\tchain ext-{svc} {{");
        chains.insert(format!("ext-{svc}"));
        if p.external_local {
            // Only this node's endpoints, the client's address kept.
            pick(&mut out, p, eps);
        } else {
            let _ = writeln!(
                out,
                "\t\tmeta mark set meta mark | {MASQ_MARK:#x}\n\t\tgoto {svc}"
            );
        }
        out.push_str("\t}\n");
    }
    Ruleset {
        body: out,
        chains,
        affinity_sets,
    }
}

/// Jump to the endpoint chain of one of `endpoints` of `p`: with session affinity, to the one whose set holds
/// the client's address; otherwise the only one, or one at random (`numgen random`) per new connection.
fn pick(out: &mut String, p: &ServicePort, endpoints: &[(Ipv4Addr, u16)]) {
    if p.affinity.is_some() {
        for ep in endpoints {
            let _ = writeln!(
                out,
                "\t\tip saddr @{} goto {}",
                p.affinity_set(*ep),
                p.endpoint_chain(*ep)
            );
        }
    }
    let chains: Vec<String> = endpoints.iter().map(|ep| p.endpoint_chain(*ep)).collect();
    match chains.as_slice() {
        [one] => {
            let _ = writeln!(out, "\t\tgoto {one}");
        }
        _ => {
            let arms: Vec<String> = chains
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{i} : goto {c}"))
                .collect();
            let _ = writeln!(
                out,
                "\t\tnumgen random mod {} vmap {{ {} }}",
                chains.len(),
                arms.join(", ")
            );
        }
    }
}

/// `map`/`set` `NAME { type …; elements = { … } }`, without an elements line when there are none (nft
/// refuses an empty list).
pub fn collection(out: &mut String, what: &str, ty: &str, elems: Vec<String>) {
    let _ = writeln!(out, "\t{what} {{\n\t\ttype {ty}");
    if !elems.is_empty() {
        let _ = writeln!(out, "\t\telements = {{ {} }}", elems.join(", "));
    }
    out.push_str("\t}\n");
}

/// The batch that removes the table (nothing if it is absent).
pub fn remove() -> String {
    format!("table ip {TABLE}\ndelete table ip {TABLE}\n")
}

/// Sorted, deduplicated endpoints per service port key (helper for building [`ServicePort`]s).
pub fn sorted(mut eps: Vec<(Ipv4Addr, u16)>) -> Vec<(Ipv4Addr, u16)> {
    eps.sort();
    eps.dedup();
    eps
}

/// Stable order of service ports (so equal inputs give byte-identical batches).
pub fn order(ports: &mut [ServicePort]) {
    ports.sort_by(|a, b| {
        (&a.namespace, &a.name, a.protocol, a.port, a.ip).cmp(&(
            &b.namespace,
            &b.name,
            b.protocol,
            b.port,
            b.ip,
        ))
    });
}

/// Count of chains per service (for logs).
pub fn summary(ports: &[ServicePort]) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    m.insert("service ports", ports.len());
    m.insert(
        "without endpoints",
        ports.iter().filter(|p| p.endpoints.is_empty()).count(),
    );
    m.insert("endpoints", ports.iter().map(|p| p.endpoints.len()).sum());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str, ip: [u8; 4], port: u16, eps: &[([u8; 4], u16)]) -> ServicePort {
        ServicePort {
            namespace: "default".into(),
            name: name.into(),
            port_name: port.to_string(),
            ip: Ipv4Addr::from(ip),
            protocol: Protocol::Tcp,
            port,
            endpoints: sorted(eps.iter().map(|(i, p)| (Ipv4Addr::from(*i), *p)).collect()),
            node_port: None,
            load_balancer: false,
            external_local: false,
            affinity: None,
        }
    }

    #[test]
    fn services_with_and_without_endpoints() {
        let ports = [
            port(
                "web",
                [10, 96, 0, 10],
                80,
                &[([10, 244, 0, 5], 8080), ([10, 244, 1, 7], 8080)],
            ),
            port("empty", [10, 96, 0, 11], 53, &[]),
        ];
        let local: Ipv4Net = "10.244.0.0/24".parse().expect("cidr");
        let nft = render(&ports, Some(local), None);
        assert!(nft.starts_with("table ip skiff-proxy\ndelete table ip skiff-proxy\n"));
        assert!(nft.contains("elements = { 10.96.0.10 . tcp . 80 : goto svc-default/web/tcp/80 }"));
        assert!(
            nft.contains("elements = { 10.96.0.11 . tcp . 53 }"),
            "{nft}"
        );
        assert!(nft.contains(
            "numgen random mod 2 vmap { 0 : goto svc-default/web/tcp/80__10.244.0.5/8080, 1 : goto svc-default/web/tcp/80__10.244.1.7/8080 }"
        ));
        // Only the local endpoint masquerades local clients.
        let local_ep = nft
            .split("chain svc-default/web/tcp/80__10.244.0.5/8080 {")
            .nth(1)
            .expect("local endpoint chain");
        let local_ep = &local_ep[..local_ep.find('}').expect("end")];
        assert!(local_ep.contains("ip saddr 10.244.0.0/24 meta mark set meta mark | 0x4000"));
        assert!(local_ep.contains("meta l4proto tcp dnat to 10.244.0.5:8080"));
        let remote_ep = nft
            .split("chain svc-default/web/tcp/80__10.244.1.7/8080 {")
            .nth(1)
            .expect("remote endpoint chain");
        let remote_ep = &remote_ep[..remote_ep.find('}').expect("end")];
        assert!(!remote_ep.contains("mark"), "{remote_ep}");
        // Nothing for the service without endpoints but the reject set.
        assert!(!nft.contains("svc-default/empty"));
    }

    #[test]
    fn one_endpoint_needs_no_random_pick_and_empty_sets_have_no_elements() {
        let nft = render(
            &[port("one", [10, 96, 0, 9], 443, &[([10, 244, 3, 2], 6443)])],
            None,
            None,
        );
        assert!(nft.contains("chain svc-default/one/tcp/443 {\n\t\tgoto svc-default/one/tcp/443__10.244.3.2/6443\n\t}"));
        assert!(!nft.contains("numgen"));
        assert!(!nft.contains("meta mark set"));
        let empty = render(&[], None, None);
        assert!(!empty.contains("elements"));
        assert_eq!(render(&[], None, None), empty, "deterministic");
    }

    #[test]
    fn protocols() {
        assert_eq!(Protocol::parse(None), Some(Protocol::Tcp));
        assert_eq!(Protocol::parse(Some("UDP")), Some(Protocol::Udp));
        assert_eq!(Protocol::parse(Some("SCTP")), Some(Protocol::Sctp));
        assert_eq!(Protocol::parse(Some("ICMP")), None);
    }
}
