//! NetworkPolicy enforcement (`skiff_agent::netpol`) in the kernel, inside throwaway network
//! namespaces: a "host" with a bridge and three pods on it (bridged traffic, as on `skiff0`), the table
//! programmed from the pure translation of real policy objects. Needs root, `nft` and `br_netfilter`.
//!
//! Owns namespaces `sktest96-*`, bridge `sknbr96` and pod subnet 10.250.96.0/24 (only inside those
//! namespaces).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cni_support;

use std::net::Ipv4Addr;
use std::path::Path;

use cni_support::*;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::json;
use skiff_agent::netpol::{model, rules};

const N: u8 = 96;
const NODE: &str = "node-96";

fn pod_ip(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 250, N, i + 1)
}

/// A pod namespace `sktest96-<name>` on the host's bridge at 10.250.96.<i+1>/24, wired as skiff-cni does.
fn add_pod(host: &Netns, i: u8, name: &str) -> Netns {
    let pod = Netns::new(&format!("sktest{N}-{name}"));
    pod.ip_ok(&["link", "set", "lo", "up"]);
    let veth = format!("skn{N}p{i}");
    host.ip_ok(&[
        "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &pod.name,
    ]);
    host.ip_ok(&["link", "set", &veth, "master", &format!("sknbr{N}"), "up"]);
    pod.ip_ok(&["addr", "add", &format!("{}/24", pod_ip(i)), "dev", "eth0"]);
    pod.ip_ok(&["link", "set", "eth0", "up"]);
    pod.ip_ok(&["route", "add", "default", "via", &format!("10.250.{N}.1")]);
    pod
}

/// The Pod object of pod `i` (label `app: <name>`), on this node.
fn pod_object(i: u8, name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": name, "labels": {"app": name}},
        "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "i",
                  "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIP": pod_ip(i).to_string()}
    }))
    .unwrap()
}

fn policy(name: &str, spec: serde_json::Value) -> NetworkPolicy {
    serde_json::from_value(
        json!({"metadata": {"namespace": "default", "name": name}, "spec": spec}),
    )
    .unwrap()
}

/// Program the table in `host` for `policies`, with `nft` started from a thread inside it.
fn enforce(host: &Path, policies: &[&NetworkPolicy], pods: &[Pod]) {
    let namespace: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
    let compiled = model::compile(
        policies,
        &pods.iter().collect::<Vec<_>>(),
        &[&namespace],
        NODE,
    );
    let batch = rules::render(&compiled);
    apply_in(host, batch.clone()).unwrap_or_else(|e| panic!("{e}\n{batch}"));
}

fn apply_in(ns: &Path, batch: String) -> Result<(), String> {
    in_netns(
        ns,
        || async move { skiff_agent::proxy::apply(&batch).await },
    )
}

#[test]
fn policies_isolate_pods_and_let_allowed_and_reply_traffic_through() {
    assert!(nix::unistd::geteuid().is_root(), "needs root");
    let host = Netns::new(&format!("sktest{N}-host"));
    host.ip_ok(&["link", "set", "lo", "up"]);
    let bridge = format!("sknbr{N}");
    host.ip_ok(&["link", "add", &bridge, "type", "bridge"]);
    host.ip_ok(&["addr", "add", &format!("10.250.{N}.1/24"), "dev", &bridge]);
    host.ip_ok(&["link", "set", &bridge, "up"]);
    // Bridged traffic must reach the inet forward hook, as the agent makes sure of on a node.
    let out = host.exec(&["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"]);
    assert!(out.status.success(), "br_netfilter missing? {out:?}");

    let names = ["a", "b", "c"];
    let ns: Vec<Netns> = (0u8..)
        .zip(names)
        .map(|(i, n)| add_pod(&host, i + 1, n))
        .collect();
    let objects: Vec<Pod> = (0u8..)
        .zip(names)
        .map(|(i, n)| pod_object(i + 1, n))
        .collect();
    let (a, b, c) = (&ns[0], &ns[1], &ns[2]);
    let (ip_a, ip_b) = (pod_ip(1), pod_ip(2));
    let _servers = [
        serve(a.path(), 8080, 1000, "a"),
        serve(b.path(), 8081, 1000, "b"),
    ];

    // No policy: everyone reaches A.
    enforce(&host.path(), &[], &objects);
    assert_eq!(
        fetch(&b.path(), ip_a, 8080).expect("b -> a"),
        format!("a saw {ip_b}")
    );

    // Default-deny ingress on A.
    let deny = policy(
        "deny-a",
        json!({"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Ingress"]}),
    );
    enforce(&host.path(), &[&deny], &objects);
    fetch(&b.path(), ip_a, 8080).expect_err("b -> a with default deny");
    fetch(&c.path(), ip_a, 8080).expect_err("c -> a with default deny");
    // The node itself (probes) still reaches A, and replies of A's own connections come back.
    assert!(
        fetch(&host.path(), ip_a, 8080)
            .expect("host -> a")
            .starts_with("a saw")
    );
    assert_eq!(
        fetch(&a.path(), ip_b, 8081).expect("a -> b"),
        format!("b saw {ip_a}")
    );

    // Allow from B, on the named port: B gets through, C does not.
    let allow = policy(
        "allow-b",
        json!({"podSelector": {"matchLabels": {"app": "a"}},
               "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "b"}}}],
                            "ports": [{"port": "http"}]}]}),
    );
    enforce(&host.path(), &[&deny, &allow], &objects);
    assert_eq!(
        fetch(&b.path(), ip_a, 8080).expect("b -> a allowed"),
        format!("a saw {ip_b}")
    );
    fetch(&c.path(), ip_a, 8080).expect_err("c -> a still denied");

    // Default-deny egress on C: it cannot reach B any more (B itself is not isolated).
    let deny_out = policy(
        "deny-c-out",
        json!({"podSelector": {"matchLabels": {"app": "c"}}, "policyTypes": ["Egress"]}),
    );
    assert!(fetch(&c.path(), ip_b, 8081).is_ok(), "c -> b before");
    enforce(&host.path(), &[&deny, &allow, &deny_out], &objects);
    fetch(&c.path(), ip_b, 8081).expect_err("c -> b with default deny egress");
    assert!(fetch(&a.path(), ip_b, 8081).is_ok(), "a -> b untouched");

    // Every kind of match the translation writes is accepted by the kernel: ipBlocks with exceptions,
    // port ranges, SCTP, a protocol without port, egress named ports, an allow-all egress rule.
    let everything = policy(
        "everything",
        json!({"podSelector": {},
               "policyTypes": ["Ingress", "Egress"],
               "ingress": [
                   {"from": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "192.168.1.0/24"]}},
                             {"namespaceSelector": {}, "podSelector": {"matchExpressions": [
                                 {"key": "app", "operator": "NotIn", "values": ["z"]}]}}],
                    "ports": [{"port": 9000, "endPort": 9100, "protocol": "SCTP"}, {"protocol": "UDP"},
                              {"port": "http"}, {"port": 53, "protocol": "UDP"}]}
               ],
               "egress": [{"to": [{"podSelector": {}}], "ports": [{"port": "http"}]}, {}]}),
    );
    enforce(
        &host.path(),
        &[&deny, &allow, &deny_out, &everything],
        &objects,
    );
    let listing = host.exec(&["nft", "list", "table", "inet", rules::TABLE]);
    assert!(listing.status.success(), "{listing:?}");
    // C's egress is open again (the allow-all rule) and A's ingress admits every pod on its named port
    // `http`; B is isolated now too, and 8081 is no port it allows.
    assert!(fetch(&c.path(), ip_a, 8080).is_ok(), "c -> a on http");
    assert!(fetch(&b.path(), ip_a, 8080).is_ok(), "b -> a on http");
    fetch(&c.path(), ip_b, 8081).expect_err("c -> b on a port b does not allow");

    // Removing the table lifts every restriction.
    apply_in(&host.path(), rules::remove()).expect("remove");
    apply_in(&host.path(), rules::remove()).expect("remove twice");
    let listing = host.exec(&["nft", "list", "table", "inet", rules::TABLE]);
    assert!(!listing.status.success(), "table still there");
    assert!(
        fetch(&c.path(), ip_a, 8080).is_ok(),
        "c -> a without the table"
    );
}
