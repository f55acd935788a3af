//! The service proxy's nftables rules (`skiff_agent::proxy::rules`) in the kernel, inside throwaway
//! network namespaces: a "host" with a bridge and two pods on it (this node's pod CIDR), and an
//! "outside" client behind a veth. Needs root and `nft`.
//!
//! Owns namespaces `sktest95-*`, bridge `skpbr95`, pod subnet 10.250.95.0/24 and service IPs
//! 10.96.95.0/24 (only inside those namespaces).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cni_support;

use std::net::Ipv4Addr;
use std::path::Path;

use cni_support::*;
use skiff_agent::proxy::{self, Protocol, ServicePort, rules};

const N: u8 = 95;

fn pod_ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 250, N, i + 1)
}

fn svc_ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 96, N, i)
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
        external_local: false,
    }
}

/// Apply a batch with `nft` started from a thread inside `ns`.
fn apply_in(ns: &Path, batch: String) -> Result<(), String> {
    in_netns(ns, || async move { proxy::apply(&batch).await })
}

/// A pod namespace `sktest95-pod<i>` on the host's bridge at 10.250.95.<i+1>/24, wired as skiff-cni does.
fn add_pod(host: &Netns, i: u8) -> Netns {
    let pod = Netns::new(&format!("sktest{N}-pod{i}"));
    pod.ip_ok(&["link", "set", "lo", "up"]);
    let veth = format!("skp{N}p{i}");
    host.ip_ok(&[
        "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &pod.name,
    ]);
    host.ip_ok(&["link", "set", &veth, "master", &format!("skpbr{N}"), "up"]);
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
    pod.ip_ok(&["addr", "add", &format!("{}/24", pod_ip(i)), "dev", "eth0"]);
    pod.ip_ok(&["link", "set", "eth0", "up"]);
    pod.ip_ok(&["route", "add", "default", "via", &format!("10.250.{N}.1")]);
    pod
}

#[test]
fn cluster_ips_reach_ready_endpoints_and_nothing_else() {
    assert!(nix::unistd::geteuid().is_root(), "needs root");
    let net = Outside::new(N);
    let host = &net.host;
    let bridge = format!("skpbr{N}");
    host.ip_ok(&["link", "add", &bridge, "type", "bridge"]);
    host.ip_ok(&["addr", "add", &format!("10.250.{N}.1/24"), "dev", &bridge]);
    host.ip_ok(&["link", "set", &bridge, "up"]);
    let out = host.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    assert!(out.status.success(), "{out:?}");
    // Service addresses are routed nowhere in particular: on a real host they follow the default
    // route, here towards the outside (which sends them back, should they ever get there). The outside
    // reaches services through the host.
    host.ip_ok(&[
        "route",
        "add",
        &format!("10.96.{N}.0/24"),
        "via",
        &net.outside_ip().to_string(),
    ]);
    net.outside.ip_ok(&[
        "route",
        "add",
        &format!("10.96.{N}.0/24"),
        "via",
        &net.host_ip().to_string(),
    ]);
    net.outside.ip_ok(&[
        "route",
        "add",
        &format!("10.250.{N}.0/24"),
        "via",
        &net.host_ip().to_string(),
    ]);
    let pods = [add_pod(host, 1), add_pod(host, 2)];
    let _servers = [
        serve(pods[0].path(), 8080, 1000, "pod1"),
        serve(pods[1].path(), 8080, 1000, "pod2"),
    ];
    let gateway = format!("10.250.{N}.1");
    let local: ipnet::Ipv4Net = format!("10.250.{N}.0/24").parse().unwrap();

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
    let batch = rules::render(&[both, one.clone(), empty.clone()], Some(local));
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
        rules::render(&[web, one, filled], Some(local)),
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
