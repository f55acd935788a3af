//! ServiceLB against a real store: the ingress follows the nodes (readiness, the `enablelb` label), a port
//! conflict leaves the younger Service pending with one `PortConflict` event, a Service that stops
//! being a LoadBalancer loses its ingress, and an `externalTrafficPolicy: Local` one lists only the nodes
//! of its ready endpoints. Nodes and Endpoints are written directly (no agent, no pods).

use std::time::Duration;

use serde_json::{Value, json};

use super::replicaset::{Cluster, cluster};
use crate::handlers::DeleteOpts;
use crate::patch::PatchType;
use crate::resources::{Kind, by_kind};

async fn add_node(c: &Cluster, name: &str, addresses: Value) {
    let now = crate::controllers::object::now_rfc3339();
    c.harness
        .put(
            &format!("/registry/nodes/{name}"),
            json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "uid": format!("uid-{name}"), "creationTimestamp": now},
                "status": {"conditions": [{"type": "Ready", "status": "True",
                    "lastHeartbeatTime": now}], "addresses": addresses}}),
        )
        .await;
}

fn internal(ip: &str) -> Value {
    json!([{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": "node"}])
}

fn lb_service(name: &str, ports: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "ports": ports, "selector": {"app": name}}})
}

async fn patch_node(c: &Cluster, name: &str, patch: Value) {
    c.api
        .patch(
            by_kind(Kind::Node),
            None,
            name,
            None,
            PatchType::Merge,
            patch,
            &[],
            &super::opts(),
            false,
        )
        .await
        .expect("patch node");
}

/// The Service's ingress IPs (every entry must have `ipMode: VIP`).
async fn ingress(c: &Cluster, name: &str) -> Option<Vec<String>> {
    let svc = c.get(Kind::Service, name).await?;
    let lb = svc.pointer("/status/loadBalancer")?;
    let entries = lb
        .get("ingress")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    entries
        .iter()
        .map(|e| {
            (e.get("ipMode") == Some(&json!("VIP")))
                .then(|| e.get("ip")?.as_str().map(String::from))
                .flatten()
        })
        .collect()
}

async fn wait_ingress(c: &Cluster, name: &str, want: &[&str]) {
    c.wait(&format!("{name} ingress {want:?}"), async |c| {
        ingress(c, name)
            .await
            .is_some_and(|got| got.iter().map(String::as_str).eq(want.iter().copied()))
    })
    .await;
}

async fn wait_reason(c: &Cluster, reason: &str, message: &str) {
    c.wait(&format!("event {reason}: {message}"), async |c| {
        c.reasons(reason).await.iter().any(|m| m == message)
    })
    .await;
}

#[tokio::test]
async fn ingress_follows_readiness_and_the_enablelb_label() {
    let c = cluster().await;
    add_node(&c, "a", internal("10.0.0.1")).await;
    add_node(
        &c,
        "b",
        json!([{"type": "InternalIP", "address": "10.0.0.2"},
            {"type": "ExternalIP", "address": "203.0.113.2"}]),
    )
    .await;
    c.create(Kind::Service, lb_service("web", json!([{"port": 80}])))
        .await;
    wait_ingress(&c, "web", &["10.0.0.1", "203.0.113.2"]).await;
    wait_reason(
        &c,
        "UpdatedLoadBalancer",
        "Updated LoadBalancer with new IPs: [] -> [10.0.0.1 203.0.113.2]",
    )
    .await;
    // A ClusterIP Service and a LoadBalancer of another class are never written.
    c.create(
        Kind::Service,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "plain"},
            "spec": {"ports": [{"port": 81}]}}),
    )
    .await;
    let mut classed = lb_service("classed", json!([{"port": 82}]));
    classed["spec"]["loadBalancerClass"] = json!("example.com/lb");
    c.create(Kind::Service, classed).await;

    c.harness.set_ready("b", false).await;
    wait_ingress(&c, "web", &["10.0.0.1"]).await;
    c.harness.set_ready("b", true).await;
    wait_ingress(&c, "web", &["10.0.0.1", "203.0.113.2"]).await;
    // Once a node has the label, only the labelled nodes serve.
    let label = json!({"metadata": {"labels": {"svccontroller.k3s.cattle.io/enablelb": "true"}}});
    patch_node(&c, "b", label).await;
    wait_ingress(&c, "web", &["203.0.113.2"]).await;
    c.harness.set_ready("b", false).await;
    wait_ingress(&c, "web", &[]).await;
    wait_reason(
        &c,
        "UnAvailableLoadBalancer",
        "There are no available nodes for LoadBalancer",
    )
    .await;
    c.harness.set_ready("b", true).await;
    wait_ingress(&c, "web", &["203.0.113.2"]).await;

    for name in ["plain", "classed"] {
        let svc = c.get(Kind::Service, name).await.expect("service");
        assert_eq!(
            svc.pointer("/status/loadBalancer"),
            Some(&json!({})),
            "{name}"
        );
    }
    // The class of a LoadBalancer cannot be set afterwards (kube 1.32), so ServiceLB keeps it.
    let refused = c
        .api
        .patch(
            by_kind(Kind::Service),
            Some("default"),
            "web",
            None,
            PatchType::Merge,
            json!({"spec": {"loadBalancerClass": "example.com/lb"}}),
            &[],
            &super::opts(),
            false,
        )
        .await
        .expect_err("class set on a LoadBalancer");
    assert_eq!(refused.code, 422);
    assert!(
        refused.message.contains(
            "spec.loadBalancerClass: Invalid value: \"example.com/lb\": may not change once set"
        ),
        "{}",
        refused.message
    );
    assert_eq!(ingress(&c, "web").await, Some(vec!["203.0.113.2".into()]));
    assert!(c.reasons("PortConflict").await.is_empty());
}

#[tokio::test]
async fn the_younger_service_waits_for_a_port_until_the_older_one_lets_go() {
    let c = cluster().await;
    add_node(&c, "a", internal("10.0.0.1")).await;
    c.create(Kind::Service, lb_service("z-old", json!([{"port": 80}])))
        .await;
    wait_ingress(&c, "z-old", &["10.0.0.1"]).await;
    // Younger by creationTimestamp (whole seconds), though first by name.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.create(
        Kind::Service,
        lb_service(
            "a-young",
            json!([{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]),
        ),
    )
    .await;
    let conflict = "port 80/TCP is in use by LoadBalancer Service default/z-old";
    wait_reason(&c, "PortConflict", conflict).await;
    assert_eq!(ingress(&c, "a-young").await, Some(vec![]));
    // More rounds (a new node) do not repeat the event; the new node is the old Service's too.
    add_node(&c, "b", internal("10.0.0.2")).await;
    wait_ingress(&c, "z-old", &["10.0.0.1", "10.0.0.2"]).await;
    assert_eq!(ingress(&c, "a-young").await, Some(vec![]));
    assert_eq!(c.reasons("PortConflict").await, [conflict]);

    // The old one stops being a LoadBalancer: the API clears its status, the young one gets the nodes.
    c.patch(
        Kind::Service,
        "z-old",
        json!({"spec": {"type": "NodePort"}}),
    )
    .await;
    wait_ingress(&c, "a-young", &["10.0.0.1", "10.0.0.2"]).await;
    let old = c.get(Kind::Service, "z-old").await.expect("service");
    assert_eq!(old.pointer("/status/loadBalancer"), Some(&json!({})));
    wait_reason(
        &c,
        "UpdatedLoadBalancer",
        "Updated LoadBalancer with new IPs: [] -> [10.0.0.1 10.0.0.2]",
    )
    .await;
    // Back to a LoadBalancer, it is still the older by creationTimestamp and takes the port back (the
    // contract orders by age alone; k3s's running svclb pod would keep it), and the conflict is reported anew.
    c.patch(
        Kind::Service,
        "z-old",
        json!({"spec": {"type": "LoadBalancer"}}),
    )
    .await;
    wait_ingress(&c, "z-old", &["10.0.0.1", "10.0.0.2"]).await;
    wait_ingress(&c, "a-young", &[]).await;
    c.wait("a second PortConflict", async |c| {
        c.reasons("PortConflict").await.len() == 2
    })
    .await;
}

/// Endpoints as the endpoints controller writes them: one ready pod address per `(ip, node)` in `ready`,
/// one not-ready one per node in `not_ready`.
fn endpoints(name: &str, ready: &[(&str, &str)], not_ready: &[(&str, &str)]) -> Value {
    let address = |(ip, node): &(&str, &str)| {
        json!({"ip": ip, "nodeName": node,
            "targetRef": {"kind": "Pod", "namespace": "default", "name": format!("pod-{ip}")}})
    };
    let mut subset = json!({"ports": [{"port": 8080, "protocol": "TCP"}]});
    if !ready.is_empty() {
        subset["addresses"] = ready.iter().map(address).collect();
    }
    if !not_ready.is_empty() {
        subset["notReadyAddresses"] = not_ready.iter().map(address).collect();
    }
    json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name}, "subsets": [subset]})
}

/// Create the Endpoints, or replace their subsets.
async fn put_endpoints(c: &Cluster, body: Value) {
    let name = body["metadata"]["name"].as_str().expect("name").to_string();
    if c.get(Kind::Endpoints, &name).await.is_some() {
        c.patch(Kind::Endpoints, &name, json!({"subsets": body["subsets"]}))
            .await;
    } else {
        c.create(Kind::Endpoints, body).await;
    }
}

#[tokio::test]
async fn local_lists_only_the_nodes_with_a_ready_endpoint() {
    let c = cluster().await;
    add_node(&c, "a", internal("10.0.0.1")).await;
    add_node(&c, "b", internal("10.0.0.2")).await;
    // Without a selector the endpoints controller leaves the Endpoints to us.
    let mut svc = lb_service("local", json!([{"port": 80, "targetPort": 8080}]));
    svc["spec"]["externalTrafficPolicy"] = json!("Local");
    svc["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("selector");
    c.create(Kind::Service, svc).await;
    // No endpoints yet: nothing to list (and, the status being unchanged, no event), as k3s.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ingress(&c, "local").await, Some(vec![]));
    assert!(c.reasons("UpdatedLoadBalancer").await.is_empty());

    put_endpoints(
        &c,
        endpoints("local", &[("10.244.1.5", "b")], &[("10.244.0.5", "a")]),
    )
    .await;
    wait_ingress(&c, "local", &["10.0.0.2"]).await;
    wait_reason(
        &c,
        "UpdatedLoadBalancer",
        "Updated LoadBalancer with new IPs: [] -> [10.0.0.2]",
    )
    .await;
    // The pod on `a` turns ready: both nodes.
    put_endpoints(
        &c,
        endpoints("local", &[("10.244.0.5", "a"), ("10.244.1.5", "b")], &[]),
    )
    .await;
    wait_ingress(&c, "local", &["10.0.0.1", "10.0.0.2"]).await;
    // A node that is not Ready is not listed, whatever its endpoints.
    c.harness.set_ready("a", false).await;
    wait_ingress(&c, "local", &["10.0.0.2"]).await;
    c.harness.set_ready("a", true).await;
    wait_ingress(&c, "local", &["10.0.0.1", "10.0.0.2"]).await;
    // No ready endpoint left: empty again.
    put_endpoints(&c, endpoints("local", &[], &[("10.244.1.5", "b")])).await;
    wait_ingress(&c, "local", &[]).await;
    wait_reason(
        &c,
        "UnAvailableLoadBalancer",
        "There are no available nodes for LoadBalancer",
    )
    .await;
    // `Cluster` lists every node, endpoints or not; back to `Local`, none.
    c.patch(
        Kind::Service,
        "local",
        json!({"spec": {"externalTrafficPolicy": "Cluster"}}),
    )
    .await;
    wait_ingress(&c, "local", &["10.0.0.1", "10.0.0.2"]).await;
    c.patch(
        Kind::Service,
        "local",
        json!({"spec": {"externalTrafficPolicy": "Local"}}),
    )
    .await;
    wait_ingress(&c, "local", &[]).await;
    // Endpoints deleted while pending: stays empty; new ready ones bring the node back.
    c.api
        .delete(
            by_kind(Kind::Endpoints),
            Some("default"),
            "local",
            &DeleteOpts::default(),
            false,
        )
        .await
        .expect("delete endpoints");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ingress(&c, "local").await, Some(vec![]));
    put_endpoints(&c, endpoints("local", &[("10.244.0.9", "a")], &[])).await;
    wait_ingress(&c, "local", &["10.0.0.1"]).await;
}
