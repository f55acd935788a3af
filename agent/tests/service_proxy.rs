//! The service proxy's nftables rules (`skiff_agent::proxy::rules`) in the kernel, inside throwaway
//! network namespaces: a "host" with a bridge and two pods on it (this node's pod CIDR), and an
//! "outside" client behind a veth. Needs root and `nft`.
//!
//! Each test owns its number N (95, 97): namespaces `sktest<N>-*`, bridge `skpbr<N>`, pod subnet
//! 10.250.<N>.0/24 and service IPs 10.96.<N>.0/24 (only inside those namespaces).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cni_support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use cni_support::*;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use serde_json::json;
use skiff_agent::proxy::{self, Protocol, ServicePort, rules};

fn pod_ip(n: u8, i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 250, n, i + 1)
}

fn svc_ip(n: u8, i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 96, n, i)
}

fn port(name: &str, ip: Ipv4Addr, port: u16, endpoints: &[(Ipv4Addr, u16)]) -> ServicePort {
    ServicePort {
        namespace: "default".into(),
        name: name.into(),
        port_name: port.to_string(),
        ip,
        protocol: Protocol::Tcp,
        port,
        endpoints: rules::sorted(endpoints.to_vec()),
        node_port: None,
        load_balancer: false,
        external_local: false,
        affinity: None,
    }
}

/// Apply a batch with `nft` started from a thread inside `ns`.
fn apply_in(ns: &Path, batch: String) -> Result<(), String> {
    in_netns(ns, || async move { proxy::apply(&batch).await })
}

/// A pod namespace `sktest<n>-pod<i>` on the host's bridge at 10.250.<n>.<i+1>/24, wired as skiff-cni does.
fn add_pod(host: &Netns, n: u8, i: u8) -> Netns {
    let pod = Netns::new(&format!("sktest{n}-pod{i}"));
    pod.ip_ok(&["link", "set", "lo", "up"]);
    let veth = format!("skp{n}p{i}");
    host.ip_ok(&[
        "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &pod.name,
    ]);
    host.ip_ok(&["link", "set", &veth, "master", &format!("skpbr{n}"), "up"]);
    // As skiff-cni's `hairpinMode` (default on) does: with br_netfilter loaded, a pod's packet to its
    // own service is DNATed at the bridge and must go back out of the port it came in.
    host.ip_ok(&[
        "link",
        "set",
        &veth,
        "type",
        "bridge_slave",
        "hairpin",
        "on",
    ]);
    pod.ip_ok(&[
        "addr",
        "add",
        &format!("{}/24", pod_ip(n, i)),
        "dev",
        "eth0",
    ]);
    pod.ip_ok(&["link", "set", "eth0", "up"]);
    pod.ip_ok(&["route", "add", "default", "via", &format!("10.250.{n}.1")]);
    pod
}

/// A node: the host namespace with a bridge at 10.250.<n>.1/24 and two pods on it serving port 8080
/// (answering `pod1`/`pod2 saw <client>`), and an outside client that reaches service IPs through it.
struct Lab {
    n: u8,
    net: Outside,
    pods: [Netns; 2],
    local: ipnet::Ipv4Net,
    gateway: String,
}

impl Lab {
    fn new(n: u8) -> Lab {
        assert!(nix::unistd::geteuid().is_root(), "needs root");
        let net = Outside::new(n);
        let host = &net.host;
        let bridge = format!("skpbr{n}");
        host.ip_ok(&["link", "add", &bridge, "type", "bridge"]);
        host.ip_ok(&["addr", "add", &format!("10.250.{n}.1/24"), "dev", &bridge]);
        host.ip_ok(&["link", "set", &bridge, "up"]);
        let out = host.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        assert!(out.status.success(), "{out:?}");
        // Service addresses are routed nowhere in particular: on a real host they follow the default
        // route, here towards the outside (which sends them back, should they ever get there). The
        // outside reaches services through the host.
        let services = format!("10.96.{n}.0/24");
        host.ip_ok(&[
            "route",
            "add",
            &services,
            "via",
            &net.outside_ip().to_string(),
        ]);
        let via_host = net.host_ip().to_string();
        net.outside
            .ip_ok(&["route", "add", &services, "via", &via_host]);
        net.outside.ip_ok(&[
            "route",
            "add",
            &format!("10.250.{n}.0/24"),
            "via",
            &via_host,
        ]);
        let pods = [add_pod(host, n, 1), add_pod(host, n, 2)];
        for (pod, tag) in pods.iter().zip(["pod1", "pod2"]) {
            // Detached: the listener thread ends with the process.
            let _ = serve(pod.path(), 8080, 1000, tag);
        }
        Lab {
            n,
            net,
            pods,
            local: format!("10.250.{n}.0/24").parse().unwrap(),
            gateway: format!("10.250.{n}.1"),
        }
    }

    fn host(&self) -> &Netns {
        &self.net.host
    }
}

#[test]
fn cluster_ips_reach_ready_endpoints_and_nothing_else() {
    const N: u8 = 95;
    let lab = Lab::new(N);
    let (net, host, pods) = (&lab.net, lab.host(), &lab.pods);
    let (gateway, local) = (&lab.gateway, lab.local);
    let pod_ip = |i| pod_ip(N, i);
    let svc_ip = |i| svc_ip(N, i);

    let both = port(
        "web",
        svc_ip(10),
        80,
        &[(pod_ip(1), 8080), (pod_ip(2), 8080)],
    );
    let one = port("one", svc_ip(11), 80, &[(pod_ip(1), 8080)]);
    let empty = port("empty", svc_ip(12), 81, &[]);
    // Node ports: web (externalTrafficPolicy Cluster), one (Local), empty (no endpoint).
    let both = ServicePort {
        node_port: Some(30080),
        ..both
    };
    let one = ServicePort {
        node_port: Some(30081),
        external_local: true,
        ..one
    };
    let empty = ServicePort {
        node_port: Some(30082),
        ..empty
    };
    let batch = rules::render(&[both, one.clone(), empty.clone()], Some(local), None);
    apply_in(&host.path(), batch.clone()).expect("apply");
    apply_in(&host.path(), batch).expect("applying the same batch again");

    // From the host: both endpoints answer, picked at random per connection.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let answer = fetch(&host.path(), svc_ip(10), 80).expect("host -> web");
        seen.insert(answer.split(' ').next().unwrap_or_default().to_string());
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["pod1", "pod2"],
        "40 connections should reach both endpoints"
    );

    // From outside the pod network the client address is kept.
    assert_eq!(
        fetch(&net.outside.path(), svc_ip(11), 80).expect("outside -> one"),
        format!("pod1 saw {}", net.outside_ip())
    );
    // A pod of this node reaching a pod on the same bridge, and a pod reaching itself, through the
    // service: masqueraded to the bridge address, else the reply would bypass the DNAT.
    assert_eq!(
        fetch(&pods[1].path(), svc_ip(11), 80).expect("pod2 -> one"),
        format!("pod1 saw {gateway}")
    );
    assert_eq!(
        fetch(&pods[0].path(), svc_ip(11), 80).expect("pod1 -> one (itself)"),
        format!("pod1 saw {gateway}")
    );
    // A pod reaching the other pod directly is not touched.
    assert_eq!(
        fetch(&pods[1].path(), pod_ip(1), 8080).expect("pod2 -> pod1"),
        format!("pod1 saw {}", pod_ip(2))
    );

    // Node ports on the host's address. Cluster policy: masqueraded to the bridge address (the reply must
    // come back through the node); Local: the client's address is kept.
    for _ in 0..10 {
        let answer =
            fetch(&net.outside.path(), net.host_ip(), 30080).expect("outside -> node port");
        assert!(answer.ends_with(&format!(" saw {gateway}")), "{answer}");
    }
    assert_eq!(
        fetch(&net.outside.path(), net.host_ip(), 30081).expect("outside -> local node port"),
        format!("pod1 saw {}", net.outside_ip())
    );
    // From a pod and from the host itself, to the node's address.
    assert!(
        fetch(&pods[1].path(), net.host_ip(), 30080)
            .expect("pod2 -> node port")
            .contains(" saw ")
    );
    assert!(
        fetch(&host.path(), net.host_ip(), 30080)
            .expect("host -> node port")
            .contains(" saw ")
    );
    let err =
        fetch(&net.outside.path(), net.host_ip(), 30082).expect_err("node port without endpoints");
    assert!(err.contains("refused"), "{err}");
    // Not on localhost (kube-proxy's nftables mode does not serve node ports there either).
    assert!(fetch(&host.path(), Ipv4Addr::LOCALHOST, 30080).is_err());

    // No ready endpoint: refused at once, from the host (output) and from a pod (forward).
    for ns in [host.path(), pods[1].path()] {
        let err = fetch(&ns, svc_ip(12), 81).expect_err("no endpoints");
        assert!(err.contains("refused"), "from {}: {err}", ns.display());
    }

    // An update replaces the table in one step: `web` now only has pod2, `empty` got pod1.
    let web = port("web", svc_ip(10), 80, &[(pod_ip(2), 8080)]);
    let filled = port("empty", svc_ip(12), 81, &[(pod_ip(1), 8080)]);
    apply_in(
        &host.path(),
        rules::render(&[web, one, filled], Some(local), None),
    )
    .expect("update");
    for _ in 0..10 {
        let answer = fetch(&host.path(), svc_ip(10), 80).expect("host -> web");
        assert!(answer.starts_with("pod2 saw"), "{answer}");
    }
    assert!(
        fetch(&host.path(), svc_ip(12), 81)
            .expect("filled")
            .starts_with("pod1 saw")
    );

    // Removing the table leaves nothing: the cluster IP is just an unrouted address again.
    apply_in(&host.path(), rules::remove()).expect("remove");
    apply_in(&host.path(), rules::remove()).expect("remove twice");
    let listing = host.exec(&["nft", "list", "table", "ip", rules::TABLE]);
    assert!(!listing.status.success(), "table still there");
    assert!(fetch(&host.path(), svc_ip(11), 80).is_err());
}

/// `service_ports` → `render` → the kernel for this node, whose only registered address is the host's
/// outside address: what the agent's rule writer does after each change of Services and Endpoints.
fn program(lab: &Lab, services: &[Service], endpoints: &[Endpoints], dns: Ipv4Addr) {
    let mut ports = proxy::service_ports(
        services.iter(),
        |ns, name| {
            endpoints
                .iter()
                .find(|e| {
                    e.metadata.namespace.as_deref() == Some(ns)
                        && e.metadata.name.as_deref() == Some(name)
                })
                .map(|e| Arc::new(e.clone()))
        },
        "node",
        &[lab.net.host_ip()],
    );
    rules::order(&mut ports);
    apply_in(
        &lab.host().path(),
        rules::render(&ports, Some(lab.local), Some(dns)),
    )
    .expect("apply");
}

/// A LoadBalancer Service `default/<name>` with port `port` (node port `node_port`), its Endpoints (the
/// pods `pods` on 8080) and `status.loadBalancer.ingress` = `ingress`.
fn load_balancer(
    lab: &Lab,
    (name, i, port, node_port): (&str, u8, u16, u16),
    local: bool,
    pods: &[u8],
    ingress: &[Ipv4Addr],
) -> (Service, Endpoints) {
    let meta = json!({"namespace": "default", "name": name});
    let policy = if local { "Local" } else { "Cluster" };
    let ingress: Vec<_> = ingress
        .iter()
        .map(|ip| json!({"ip": ip.to_string(), "ipMode": "VIP"}))
        .collect();
    let svc = serde_json::from_value(json!({
        "metadata": meta,
        "spec": {"type": "LoadBalancer", "clusterIP": svc_ip(lab.n, i).to_string(),
                 "externalTrafficPolicy": policy,
                 "ports": [{"port": port, "targetPort": 8080, "nodePort": node_port}]},
        "status": {"loadBalancer": {"ingress": ingress}},
    }))
    .unwrap();
    let addresses: Vec<_> = pods
        .iter()
        .map(|p| json!({"ip": pod_ip(lab.n, *p).to_string(), "nodeName": "node"}))
        .collect();
    let subsets = if pods.is_empty() {
        json!([])
    } else {
        json!([{"addresses": addresses, "ports": [{"port": 8080}]}])
    };
    let eps = serde_json::from_value(json!({"metadata": meta, "subsets": subsets})).unwrap();
    (svc, eps)
}

#[test]
fn load_balancer_ports_follow_the_ingress() {
    const N: u8 = 97;
    let lab = Lab::new(N);
    let (host, outside) = (lab.host(), &lab.net.outside);
    let node = lab.net.host_ip();
    // The host itself listens on every address on ports 80 and 83 (what answers when no rule takes the
    // connection), and carries the cluster DNS address on lo, as the agent does.
    let _host_servers = [
        serve(host.path(), 80, 1000, "host"),
        serve(host.path(), 83, 1000, "host"),
    ];
    let dns = svc_ip(N, 10);
    host.ip_ok(&["addr", "add", &format!("{dns}/32"), "dev", "lo"]);

    let here = [Ipv4Addr::new(192, 0, 2, 1), node];
    let (web, web_eps) = load_balancer(&lab, ("web", 20, 80, 30100), false, &[1, 2], &here);
    let (loc, loc_eps) = load_balancer(&lab, ("loc", 21, 81, 30101), true, &[1], &here);
    let (dead, dead_eps) = load_balancer(&lab, ("dead", 22, 82, 30102), false, &[], &here);
    let elsewhere = [Ipv4Addr::new(192, 0, 2, 1)];
    let (other, other_eps) = load_balancer(&lab, ("other", 23, 83, 30103), false, &[1], &elsewhere);
    let services = [web.clone(), loc, dead, other];
    let endpoints = [web_eps.clone(), loc_eps, dead_eps, other_eps];
    program(&lab, &services, &endpoints, dns);

    // The load balancer port on the node's address, from outside: Cluster policy masquerades (both pods
    // answer, seeing the bridge address), Local keeps the client's address.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let answer = fetch(&outside.path(), node, 80).expect("outside -> web's load balancer port");
        assert!(
            answer.ends_with(&format!(" saw {}", lab.gateway)),
            "{answer}"
        );
        seen.insert(answer.split(' ').next().unwrap_or_default().to_string());
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["pod1", "pod2"]);
    assert_eq!(
        fetch(&outside.path(), node, 81).expect("outside -> loc"),
        format!("pod1 saw {}", lab.net.outside_ip())
    );
    // Any local address but loopback and the cluster DNS address, from a pod and from the host.
    assert!(
        fetch(&lab.pods[1].path(), lab.gateway.parse().unwrap(), 80)
            .expect("pod2 -> bridge address")
            .starts_with("pod")
    );
    assert!(
        fetch(&host.path(), node, 80)
            .expect("host -> node address")
            .starts_with("pod")
    );
    for ip in [Ipv4Addr::LOCALHOST, dns] {
        assert_eq!(
            fetch(&host.path(), ip, 80).expect("host -> its own listener"),
            format!("host saw {ip}")
        );
    }
    // The node port still works; no endpoints: refused; an ingress naming another node: not served here.
    assert!(
        fetch(&outside.path(), node, 30100)
            .expect("outside -> web's node port")
            .starts_with("pod")
    );
    let err = fetch(&outside.path(), node, 82).expect_err("load balancer port without endpoints");
    assert!(err.contains("refused"), "{err}");
    assert_eq!(
        fetch(&outside.path(), node, 83).expect("another node's load balancer"),
        format!("host saw {}", lab.net.outside_ip())
    );

    // The controller empties the ingress (the node is no longer eligible): port 80 is the host's again.
    let mut pending = web;
    pending.status = serde_json::from_value(json!({"loadBalancer": {}})).unwrap();
    program(&lab, &[pending], &[web_eps], dns);
    assert_eq!(
        fetch(&outside.path(), node, 80).expect("outside -> node address"),
        format!("host saw {}", lab.net.outside_ip())
    );
    assert!(
        fetch(&outside.path(), node, 30100)
            .expect("the node port stays")
            .starts_with("pod")
    );
    apply_in(&host.path(), rules::remove()).expect("remove");
}

/// The addresses in affinity set `set` of the table in `host`.
fn affinity_entries(host: &Netns, set: &str) -> Vec<String> {
    let out = host.exec(&["nft", "-j", "list", "set", "ip", rules::TABLE, set]);
    assert!(out.status.success(), "{out:?}");
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let elems = listing["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["set"]["elem"].as_array())
        .flatten();
    elems
        .map(|e| {
            let addr = e.pointer("/elem/val").unwrap_or(e);
            addr.as_str().unwrap_or_default().to_string()
        })
        .collect()
}

#[test]
fn client_ip_affinity_keeps_a_client_on_one_endpoint() {
    use skiff_agent::proxy::table;
    use std::time::Instant;

    const N: u8 = 98;
    let lab = Lab::new(N);
    let (host, outside) = (lab.host(), &lab.net.outside);
    let eps = [(pod_ip(N, 1), 8080), (pod_ip(N, 2), 8080)];
    let sticky = ServicePort {
        node_port: Some(30098),
        affinity: Some(10800),
        ..port("sticky", svc_ip(N, 10), 80, &eps)
    };
    let sets = eps.map(|(ip, port)| format!("affinity-default/sticky/tcp/80__{ip}/{port}"));
    let rules = rules::ruleset(std::slice::from_ref(&sticky), Some(lab.local), None);
    apply_in(&host.path(), rules::replace(&rules)).expect("apply");

    // Every connection of one client, to the cluster IP or the node port, reaches one endpoint.
    let tags = |ns: &Netns, ip: Ipv4Addr, port: u16| {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..20 {
            let answer = fetch(&ns.path(), ip, port).expect("fetch");
            seen.insert(answer.split(' ').next().unwrap_or_default().to_string());
        }
        seen.into_iter().collect::<Vec<_>>()
    };
    let from_host = tags(host, svc_ip(N, 10), 80);
    assert_eq!(
        from_host.len(),
        1,
        "20 connections from the host: {from_host:?}"
    );
    let from_outside = tags(outside, lab.net.host_ip(), 30098);
    assert_eq!(
        from_outside.len(),
        1,
        "20 connections from outside: {from_outside:?}"
    );
    // The client is in the set of the endpoint it reached (the node port's set is keyed by the client's
    // own address: the check comes before the masquerade).
    let outside_ip = lab.net.outside_ip().to_string();
    let holder = usize::from(from_outside[0] == "pod2");
    // (The host, another client, is in whichever set its endpoint has.)
    assert!(affinity_entries(host, &sets[holder]).contains(&outside_ip));
    assert!(!affinity_entries(host, &sets[1 - holder]).contains(&outside_ip));

    // Another Service comes: the table is updated in place and the entry stays.
    let t0 = Instant::now();
    let held = table::Held::replaced_by(&rules);
    let other = port("other", svc_ip(N, 11), 80, &[(pod_ip(N, 1), 8080)]);
    let more = rules::ruleset(&[sticky.clone(), other], Some(lab.local), None);
    let (batch, held) = table::update(&held, &more, t0);
    apply_in(&host.path(), batch).expect("update");
    assert!(affinity_entries(host, &sets[holder]).contains(&outside_ip));
    assert_eq!(tags(outside, lab.net.host_ip(), 30098), from_outside);
    assert!(fetch(&host.path(), svc_ip(N, 11), 80).is_ok());

    // The endpoint the client stuck to goes: its set goes with it, its chain a little later, and the client
    // moves to the other endpoint.
    let left = ServicePort {
        endpoints: vec![eps[1 - holder]],
        ..sticky
    };
    let fewer = rules::ruleset(std::slice::from_ref(&left), Some(lab.local), None);
    let (batch, held) = table::update(&held, &fewer, t0);
    apply_in(&host.path(), batch).expect("endpoint gone");
    let listed = host.exec(&["nft", "list", "set", "ip", rules::TABLE, &sets[holder]]);
    assert!(!listed.status.success(), "the set of the gone endpoint");
    let other_tag = if holder == 0 { "pod2" } else { "pod1" };
    assert_eq!(tags(outside, lab.net.host_ip(), 30098), [other_tag]);
    let chain = format!("svc-default/sticky/tcp/80__{}/8080", eps[holder].0);
    let chain_listed = || host.exec(&["nft", "list", "chain", "ip", rules::TABLE, &chain]);
    assert!(chain_listed().status.success(), "kept for a while, empty");
    let (batch, _) = table::update(&held, &fewer, t0 + table::STALE_DELAY);
    apply_in(&host.path(), batch).expect("stale chain deleted");
    assert!(
        !chain_listed().status.success(),
        "deleted once stale long enough"
    );
    apply_in(&host.path(), rules::remove()).expect("remove");
}
