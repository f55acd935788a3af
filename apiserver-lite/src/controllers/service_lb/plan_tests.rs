use serde_json::{Value, json};

use super::*;

fn key(name: &str) -> Key {
    ("default".to_string(), name.to_string())
}

fn service(name: &str, created: &str, ports: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
        "spec": {"type": "LoadBalancer", "ports": ports}})
}

fn lb(name: &str, created: &str, ports: Value) -> LbService {
    LbService::parse(key(name), &service(name, created, ports), None).expect("a ServiceLB Service")
}

fn node(name: &str, ready: bool, addresses: Value, labels: Value) -> LbNode {
    LbNode::parse(
        name,
        &json!({"metadata": {"name": name, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                "addresses": addresses}}),
    )
}

fn internal(ip: &str) -> Value {
    json!([{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": "h"}])
}

fn ips(list: &[&str]) -> Vec<Ipv4Addr> {
    list.iter().map(|s| s.parse().expect("ip")).collect()
}

#[test]
fn only_class_less_load_balancers_that_are_not_deleting_are_served() {
    let mut svc = service("a", "2026-01-01T00:00:00Z", json!([{"port": 80}]));
    let parsed = LbService::parse(key("a"), &svc, None).expect("served");
    assert_eq!(parsed.created, 1767225600);
    assert_eq!(
        parsed.ports.into_iter().collect::<Vec<_>>(),
        [PortClaim {
            protocol: "TCP".into(),
            port: 80
        }]
    );
    svc["spec"]["loadBalancerClass"] = json!("example.com/lb");
    assert!(LbService::parse(key("a"), &svc, None).is_none());
    svc["spec"]["loadBalancerClass"] = Value::Null;
    svc["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:01:00Z");
    assert!(LbService::parse(key("a"), &svc, None).is_none());
    svc["metadata"]["deletionTimestamp"] = Value::Null;
    svc["spec"]["type"] = json!("NodePort");
    assert!(LbService::parse(key("a"), &svc, None).is_none());
}

#[test]
fn node_addresses_are_external_ips_else_internal_ips_ipv4_only() {
    let both = node(
        "n",
        true,
        json!([{"type": "InternalIP", "address": "10.0.0.2"},
            {"type": "ExternalIP", "address": "203.0.113.9"},
            {"type": "ExternalIP", "address": "2001:db8::1"},
            {"type": "ExternalIP", "address": "203.0.113.4"}]),
        json!({}),
    );
    assert_eq!(both.addresses, ips(&["203.0.113.4", "203.0.113.9"]));
    let v6_external = node(
        "n",
        true,
        json!([{"type": "InternalIP", "address": "10.0.0.2"},
            {"type": "ExternalIP", "address": "2001:db8::1"}]),
        json!({}),
    );
    assert_eq!(v6_external.addresses, ips(&["10.0.0.2"]));
    assert_eq!(
        node("n", true, internal("10.0.0.3"), json!({})).addresses,
        ips(&["10.0.0.3"])
    );
    assert!(node("n", true, json!([]), json!({})).addresses.is_empty());
}

#[test]
fn ready_nodes_are_eligible_and_the_enablelb_label_restricts_them() {
    let a = node("a", true, internal("10.0.0.1"), json!({}));
    let b = node("b", false, internal("10.0.0.2"), json!({}));
    let c = node("c", true, internal("10.0.0.3"), json!({}));
    let names = |nodes: &[LbNode]| -> Vec<String> {
        eligible_nodes(nodes)
            .into_iter()
            .map(|n| n.name.clone())
            .collect()
    };
    assert_eq!(names(&[a.clone(), b.clone(), c.clone()]), ["a", "c"]);
    let c_on = node(
        "c",
        true,
        internal("10.0.0.3"),
        json!({ENABLE_LB_LABEL: "true"}),
    );
    assert_eq!(names(&[a.clone(), b.clone(), c_on]), ["c"]);
    // Any node with the label makes ServiceLB selective, even when no node says `true` (k3s).
    let c_off = node(
        "c",
        true,
        internal("10.0.0.3"),
        json!({ENABLE_LB_LABEL: "false"}),
    );
    assert!(names(&[a, b, c_off]).is_empty());
    // A labelled node that is not Ready does not serve.
    let b_on = node(
        "b",
        false,
        internal("10.0.0.2"),
        json!({ENABLE_LB_LABEL: "true"}),
    );
    assert!(names(&[b_on]).is_empty());
}

#[test]
fn every_eligible_node_address_sorted_and_deduplicated() {
    let nodes = [
        node("b", true, internal("10.0.0.9"), json!({})),
        node("a", true, internal("10.0.0.10"), json!({})),
        node("c", false, internal("10.0.0.1"), json!({})),
        node("d", true, internal("10.0.0.9"), json!({})),
    ];
    let services = [lb("web", "2026-01-01T00:00:00Z", json!([{"port": 80}]))];
    let out = plan(&services, &nodes);
    assert_eq!(
        out[&key("web")],
        Outcome {
            ingress: ips(&["10.0.0.9", "10.0.0.10"]),
            conflict: None
        }
    );
    assert!(
        plan(&services, &[])
            .get(&key("web"))
            .is_some_and(|o| o.ingress.is_empty())
    );
}

#[test]
fn the_oldest_service_keeps_a_port_and_the_younger_one_is_pending() {
    let nodes = [node("a", true, internal("10.0.0.1"), json!({}))];
    let services = [
        // Listed young first: the order of the input does not matter.
        lb(
            "young",
            "2026-01-02T00:00:00Z",
            json!([{"port": 443}, {"port": 80}]),
        ),
        lb("old", "2026-01-01T00:00:00Z", json!([{"port": 80}])),
        // Same port, other protocol: no conflict.
        lb(
            "dns",
            "2026-01-03T00:00:00Z",
            json!([{"port": 80, "protocol": "UDP"}]),
        ),
    ];
    let out = plan(&services, &nodes);
    assert_eq!(out[&key("old")].ingress, ips(&["10.0.0.1"]));
    assert_eq!(out[&key("dns")].ingress, ips(&["10.0.0.1"]));
    let young = &out[&key("young")];
    assert!(young.ingress.is_empty());
    let conflict = young.conflict.clone().expect("conflict");
    assert_eq!(
        conflict.message(),
        "port 80/TCP is in use by LoadBalancer Service default/old"
    );
}

#[test]
fn a_pending_service_claims_nothing_and_ties_go_by_namespace_then_name() {
    let nodes = [node("a", true, internal("10.0.0.1"), json!({}))];
    let t = "2026-01-01T00:00:00Z";
    let services = [
        lb("b", t, json!([{"port": 80}, {"port": 8080}])),
        lb("a", t, json!([{"port": 80}])),
        // `b` lost the node, so 8080 is free for `c`.
        lb("c", "2026-01-01T00:00:01Z", json!([{"port": 8080}])),
    ];
    let out = plan(&services, &nodes);
    assert_eq!(out[&key("a")].ingress, ips(&["10.0.0.1"]));
    assert!(out[&key("b")].ingress.is_empty());
    assert_eq!(
        out[&key("b")].conflict.as_ref().map(|c| c.holder.clone()),
        Some(key("a"))
    );
    assert_eq!(out[&key("c")].ingress, ips(&["10.0.0.1"]));
    assert_eq!(out[&key("c")].conflict, None);
}

fn local(name: &str, created: &str, ports: Value, endpoint_nodes: &[&str]) -> LbService {
    let mut svc = service(name, created, ports);
    svc["spec"]["externalTrafficPolicy"] = json!("Local");
    let nodes: BTreeSet<String> = endpoint_nodes.iter().map(|n| n.to_string()).collect();
    LbService::parse(key(name), &svc, Some(&nodes)).expect("a ServiceLB Service")
}

#[test]
fn ready_endpoint_nodes_are_the_nodes_of_ready_pod_addresses() {
    let endpoints = json!({"subsets": [
        {"addresses": [
            {"ip": "10.244.1.5", "nodeName": "b", "targetRef": {"kind": "Pod", "name": "p1"}},
            {"ip": "10.244.0.5", "nodeName": "a", "targetRef": {"kind": "Pod", "name": "p2"}},
            {"ip": "10.244.0.6", "nodeName": "a", "targetRef": {"kind": "Pod", "name": "p3"}},
            // Not a pod, or no node: not counted (k3s).
            {"ip": "192.0.2.1", "nodeName": "c"},
            {"ip": "10.244.3.1", "targetRef": {"kind": "Pod", "name": "p4"}}],
         "notReadyAddresses": [
            {"ip": "10.244.4.1", "nodeName": "d", "targetRef": {"kind": "Pod", "name": "p5"}}]},
        {"addresses": [
            {"ip": "10.244.5.1", "nodeName": "e", "targetRef": {"kind": "Pod", "name": "p6"}}]}]});
    assert_eq!(
        ready_endpoint_nodes(&endpoints)
            .into_iter()
            .collect::<Vec<_>>(),
        ["a", "b", "e"]
    );
    assert!(ready_endpoint_nodes(&json!({})).is_empty());
    // The nodes count only with `Local`; without Endpoints a `Local` Service has none.
    let mut svc = service("web", "2026-01-01T00:00:00Z", json!([{"port": 80}]));
    let some = BTreeSet::from(["a".to_string()]);
    assert_eq!(
        LbService::parse(key("web"), &svc, Some(&some)).map(|s| s.local),
        Some(None)
    );
    svc["spec"]["externalTrafficPolicy"] = json!("Local");
    assert_eq!(
        LbService::parse(key("web"), &svc, Some(&some)).map(|s| s.local),
        Some(Some(some))
    );
    assert_eq!(
        LbService::parse(key("web"), &svc, None).map(|s| s.local),
        Some(Some(BTreeSet::new()))
    );
}

#[test]
fn local_lists_only_eligible_nodes_with_a_ready_endpoint() {
    let nodes = [
        node("a", true, internal("10.0.0.1"), json!({})),
        node("b", true, internal("10.0.0.2"), json!({})),
        // Not Ready: never listed, whatever its endpoints.
        node("c", false, internal("10.0.0.3"), json!({})),
    ];
    let t = "2026-01-01T00:00:00Z";
    let services = [
        local("local", t, json!([{"port": 80}]), &["b", "c", "gone"]),
        local("idle", t, json!([{"port": 81}]), &[]),
        lb("cluster", t, json!([{"port": 82}])),
    ];
    let out = plan(&services, &nodes);
    assert_eq!(out[&key("local")].ingress, ips(&["10.0.0.2"]));
    assert_eq!(
        out[&key("idle")],
        Outcome {
            ingress: vec![],
            conflict: None
        }
    );
    assert_eq!(out[&key("cluster")].ingress, ips(&["10.0.0.1", "10.0.0.2"]));
}

#[test]
fn local_claims_its_ports_on_every_node_and_conflicts_only_where_it_is_listed() {
    let nodes = [
        node("a", true, internal("10.0.0.1"), json!({})),
        node("b", true, internal("10.0.0.2"), json!({})),
    ];
    let services = [
        // Endpoints on `a` only, yet port 80 is its on `b` too (its svclb pod runs there).
        local("old", "2026-01-01T00:00:00Z", json!([{"port": 80}]), &["a"]),
        lb("young", "2026-01-02T00:00:00Z", json!([{"port": 80}])),
        // Loses both nodes, but has an endpoint on `b` only: the conflict counts there.
        local(
            "younger",
            "2026-01-03T00:00:00Z",
            json!([{"port": 80}]),
            &["b"],
        ),
        // Loses both nodes with no endpoint at all: no conflict, just nothing available.
        local(
            "youngest",
            "2026-01-04T00:00:00Z",
            json!([{"port": 80}]),
            &[],
        ),
    ];
    let out = plan(&services, &nodes);
    assert_eq!(out[&key("old")].ingress, ips(&["10.0.0.1"]));
    let young = &out[&key("young")];
    assert!(young.ingress.is_empty());
    assert_eq!(
        young.conflict.as_ref().map(|c| c.holder.clone()),
        Some(key("old"))
    );
    assert_eq!(
        out[&key("younger")]
            .conflict
            .as_ref()
            .map(|c| c.holder.clone()),
        Some(key("old"))
    );
    assert_eq!(out[&key("youngest")], Outcome::default());
}

#[test]
fn status_and_event_texts() {
    assert_eq!(load_balancer_status(&[]), json!({}));
    assert_eq!(
        load_balancer_status(&ips(&["10.0.0.1", "10.0.0.2"])),
        json!({"ingress": [{"ip": "10.0.0.1", "ipMode": "VIP"}, {"ip": "10.0.0.2", "ipMode": "VIP"}]})
    );
    assert_eq!(ingress_text(None), "[]");
    assert_eq!(ingress_text(Some(&json!({}))), "[]");
    assert_eq!(
        ingress_text(Some(
            &json!({"ingress": [{"ip": "10.0.0.1"}, {"hostname": "lb.example"}]})
        )),
        "[10.0.0.1 lb.example]"
    );
}
