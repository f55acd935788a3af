//! The translation from policies, pods and namespaces to the nft ruleset.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::{Value, json};

use super::model::{Direction, compile, has_type};
use super::rules::{self, ident};

const NODE: &str = "node-a";

fn pod(ns: &str, name: &str, ip: &str, node: &str, labels: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name, "labels": labels},
        "spec": {"nodeName": node, "containers": [{
            "name": "c", "image": "i",
            "ports": [
                {"name": "http", "containerPort": 8080},
                {"name": "dns", "containerPort": 5353, "protocol": "UDP"}
            ]
        }]},
        "status": {"phase": "Running", "podIP": ip}
    }))
    .unwrap()
}

fn ns(name: &str, labels: Value) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap()
}

fn policy(ns: &str, name: &str, spec: Value) -> NetworkPolicy {
    serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec}))
        .unwrap()
}

/// The usual cluster: web (10.244.0.2) and db (10.244.0.3) on this node, client (10.244.1.2) on another,
/// monitor (10.244.1.3) in namespace `ops`, a host-network pod on this node.
fn cluster() -> (Vec<Pod>, Vec<Namespace>) {
    let pods =
        vec![
        pod("default", "web", "10.244.0.2", NODE, json!({"app": "web"})),
        pod("default", "db", "10.244.0.3", NODE, json!({"app": "db"})),
        pod("default", "client", "10.244.1.2", "node-b", json!({"app": "client"})),
        pod("ops", "monitor", "10.244.1.3", "node-b", json!({"app": "monitor"})),
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": "hostnet", "labels": {"app": "client"}},
            "spec": {"nodeName": NODE, "hostNetwork": true, "containers": []},
            "status": {"phase": "Running", "podIP": "192.168.1.10"}
        }))
        .unwrap(),
    ];
    let namespaces = vec![ns("default", json!({})), ns("ops", json!({"team": "ops"}))];
    (pods, namespaces)
}

fn render(policies: &[NetworkPolicy]) -> String {
    let (pods, namespaces) = cluster();
    let c = compile(
        &policies.iter().collect::<Vec<_>>(),
        &pods.iter().collect::<Vec<_>>(),
        &namespaces.iter().collect::<Vec<_>>(),
        NODE,
    );
    rules::render(&c)
}

/// The body of chain `name` (its rules, one per line, trimmed).
fn chain(text: &str, name: &str) -> Vec<String> {
    let start = format!("\tchain {name} {{\n");
    let Some(at) = text.find(&start) else {
        panic!("no chain {name} in\n{text}");
    };
    text[at + start.len()..]
        .lines()
        .take_while(|l| l.trim() != "}")
        .map(|l| l.trim().to_string())
        .collect()
}

/// The elements of set or map `name`.
fn elements(text: &str, name: &str) -> String {
    let at = text.find(&format!(" {name} {{")).unwrap();
    let rest = &text[at..];
    let end = rest.find("\t}").unwrap();
    rest[..end]
        .lines()
        .find_map(|l| l.trim().strip_prefix("elements = { "))
        .map(|l| l.trim_end_matches(" }").to_string())
        .unwrap_or_default()
}

#[test]
fn no_policy_leaves_every_pod_alone() {
    let text = render(&[]);
    assert!(text.starts_with("table inet skiff-netpol\ndelete table inet skiff-netpol\n"));
    assert_eq!(elements(&text, "ingress-pods"), "");
    assert_eq!(elements(&text, "egress-pods"), "");
    assert_eq!(
        chain(&text, "forward"),
        [
            "type filter hook forward priority filter; policy accept;",
            "ct state established,related accept",
            "fib saddr type local accept",
            "ip saddr vmap @egress-pods",
            "ip daddr vmap @ingress-pods",
        ]
    );
}

#[test]
fn default_deny_ingress_selects_every_local_pod_of_the_namespace() {
    let text = render(&[policy("default", "deny", json!({"podSelector": {}}))]);
    assert_eq!(
        elements(&text, "ingress-pods"),
        "10.244.0.3 : jump pod-in-default/db, 10.244.0.2 : jump pod-in-default/web"
    );
    assert_eq!(
        chain(&text, "pod-in-default/web"),
        ["ip saddr 10.244.0.2 accept", "drop"]
    );
    // Not the other node's pods, not the host-network one, and no egress.
    assert!(!text.contains("10.244.1.2 :"));
    assert!(!text.contains("192.168.1.10"));
    assert_eq!(elements(&text, "egress-pods"), "");
}

#[test]
fn allow_from_label_and_namespace_selectors() {
    let text = render(&[policy(
        "default",
        "web",
        json!({
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]},
                {"from": [{"namespaceSelector": {"matchLabels": {"team": "ops"}}}]},
                {"from": [{
                    "namespaceSelector": {"matchExpressions": [
                        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["default"]}
                    ]},
                    "podSelector": {"matchLabels": {"app": "db"}}
                }]},
                {"from": [{"podSelector": {"matchLabels": {"app": "nobody"}}}]}
            ]
        }),
    )]);
    // Only web is selected.
    assert_eq!(
        elements(&text, "ingress-pods"),
        "10.244.0.2 : jump pod-in-default/web"
    );
    // The podSelector is of the policy's namespace: the host-network "client" is no peer.
    assert_eq!(elements(&text, "in-default/web/0"), "10.244.1.2");
    assert_eq!(elements(&text, "in-default/web/1"), "10.244.1.3");
    assert_eq!(elements(&text, "in-default/web/2"), "10.244.0.3");
    // A rule whose peers are nobody allows nothing (and has no empty set).
    assert!(!text.contains("in-default/web/3"));
    assert_eq!(
        chain(&text, "pod-in-default/web"),
        [
            "ip saddr 10.244.0.2 accept",
            "ip saddr @in-default/web/0 accept",
            "ip saddr @in-default/web/1 accept",
            "ip saddr @in-default/web/2 accept",
            "drop"
        ]
    );
}

#[test]
fn ip_block_except_and_everyone() {
    let text = render(&[policy(
        "default",
        "web",
        json!({
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [
                {"from": [
                    {"ipBlock": {"cidr": "172.16.0.0/16", "except": ["172.16.1.0/24"]}},
                    {"ipBlock": {"cidr": "fd00::/8"}},
                    {"podSelector": {"matchLabels": {"app": "db"}}}
                ]},
                {"ports": [{"port": 443}]}
            ]
        }),
    )]);
    assert_eq!(
        elements(&text, "in-default/web/0"),
        "10.244.0.3, 172.16.0.0-172.16.0.255, 172.16.2.0-172.16.255.255"
    );
    assert_eq!(
        chain(&text, "pod-in-default/web"),
        [
            "ip saddr 10.244.0.2 accept",
            "ip saddr @in-default/web/0 accept",
            // No `from`: everyone, on that port.
            "meta l4proto tcp th dport 443 accept",
            "drop"
        ]
    );
}

#[test]
fn named_and_ranged_ports() {
    let text = render(&[policy(
        "default",
        "web",
        json!({
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{
                "from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                "ports": [
                    {"port": "http"},
                    {"port": "dns", "protocol": "UDP"},
                    {"port": "dns"},
                    {"port": 9000, "endPort": 9100, "protocol": "SCTP"},
                    {"protocol": "UDP"}
                ]
            }]
        }),
    )]);
    assert_eq!(
        chain(&text, "pod-in-default/web"),
        [
            "ip saddr 10.244.0.2 accept",
            "ip saddr @in-default/web/0 meta l4proto tcp th dport 8080 accept",
            "ip saddr @in-default/web/0 meta l4proto udp th dport 5353 accept",
            // `dns` over TCP: web has no such port.
            "ip saddr @in-default/web/0 meta l4proto sctp th dport 9000-9100 accept",
            "ip saddr @in-default/web/0 meta l4proto udp accept",
            "drop"
        ]
    );
}

#[test]
fn egress_with_named_ports_resolved_on_the_destination() {
    let deny_out = policy(
        "default",
        "db-out",
        json!({
            "podSelector": {"matchLabels": {"app": "db"}},
            "policyTypes": ["Egress"],
            "egress": [
                {"to": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": "http"}]},
                {"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.244.0.0/16"]}}],
                 "ports": [{"port": 53, "protocol": "UDP"}]}
            ]
        }),
    );
    assert!(has_type(&deny_out, Direction::Egress));
    assert!(!has_type(&deny_out, Direction::Ingress));
    let text = render(&[deny_out]);
    assert_eq!(elements(&text, "ingress-pods"), "");
    assert_eq!(
        elements(&text, "egress-pods"),
        "10.244.0.3 : jump pod-out-default/db"
    );
    assert_eq!(
        elements(&text, "out-default/db-out/0/0"),
        "10.244.0.2 . tcp . 8080"
    );
    assert_eq!(
        elements(&text, "out-default/db-out/1"),
        "10.0.0.0-10.243.255.255, 10.245.0.0-10.255.255.255"
    );
    assert_eq!(
        chain(&text, "pod-out-default/db"),
        [
            "ip daddr 10.244.0.3 return",
            "ip daddr . meta l4proto . th dport @out-default/db-out/0/0 return",
            "ip daddr @out-default/db-out/1 meta l4proto udp th dport 53 return",
            "drop"
        ]
    );
}

#[test]
fn two_policies_selecting_one_pod_are_a_union() {
    let a = policy(
        "default",
        "a",
        json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]}),
    );
    let b = policy(
        "default",
        "b",
        json!({"podSelector": {"matchLabels": {"app": "web"}},
               "ingress": [{"ports": [{"port": 80}]}],
               "egress": [{}]}),
    );
    // `policyTypes` missing: Ingress, and Egress because of the egress rule (an empty one allows all).
    assert!(has_type(&b, Direction::Egress));
    let text = render(&[b, a]);
    assert_eq!(
        chain(&text, "pod-in-default/web"),
        [
            "ip saddr 10.244.0.2 accept",
            "ip saddr @in-default/a/0 accept",
            "meta l4proto tcp th dport 80 accept",
            "drop"
        ]
    );
    assert_eq!(
        chain(&text, "pod-in-default/db"),
        [
            "ip saddr 10.244.0.2 accept",
            "ip saddr @in-default/a/0 accept",
            "drop"
        ]
        .iter()
        .map(|s| s.replace("10.244.0.2", "10.244.0.3"))
        .collect::<Vec<_>>()
    );
    assert_eq!(
        chain(&text, "pod-out-default/web"),
        [
            "ip daddr 10.244.0.2 return",
            "meta nfproto ipv4 return",
            "drop"
        ]
    );
}

#[test]
fn terminated_pods_and_bad_selectors_select_nothing() {
    let (mut pods, namespaces) = cluster();
    pods.push(
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": "done", "labels": {"app": "client"}},
            "spec": {"nodeName": NODE, "containers": []},
            "status": {"phase": "Succeeded", "podIP": "10.244.0.9"}
        }))
        .unwrap(),
    );
    let bad = policy(
        "default",
        "bad",
        json!({"podSelector": {"matchExpressions": [{"key": "app", "operator": "Bogus"}]}}),
    );
    let allow = policy(
        "default",
        "allow",
        json!({"podSelector": {"matchLabels": {"app": "web"}},
               "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]}),
    );
    let c = compile(
        &[&bad, &allow],
        &pods.iter().collect::<Vec<_>>(),
        &namespaces.iter().collect::<Vec<_>>(),
        NODE,
    );
    assert_eq!(c.ingress.len(), 1);
    assert_eq!(
        c.peer_sets.get("in-default/allow/0").map(|s| s.len()),
        Some(1),
        "only the running client: {:?}",
        c.peer_sets
    );
}

#[test]
fn long_names_are_cut_and_kept_distinct() {
    let a = format!("pod-in-default/{}", "a".repeat(250));
    let b = format!("pod-in-default/{}b", "a".repeat(250));
    assert_eq!(ident("pod-in-x/y"), "pod-in-x/y");
    assert!(ident(&a).len() <= 200 && ident(&b).len() <= 200);
    assert_ne!(ident(&a), ident(&b));
}
