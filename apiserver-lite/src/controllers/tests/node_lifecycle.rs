use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;
use crate::store::Store;

async fn renew_lease(store: &dyn Store, node: &str) {
    let key = format!("/registry/leases/kube-node-lease/{node}");
    let lease = |renew: &str| {
        serde_json::to_vec(&json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": node, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": renew}
        }))
        .expect("json")
    };
    let renew = jiff::Timestamp::now().to_string();
    match store.get(&key).await.expect("get lease") {
        Some(kv) => store
            .update(&key, lease(&renew), kv.mod_revision)
            .await
            .map(|_| ()),
        None => store.create(&key, lease(&renew)).await.map(|_| ()),
    }
    .expect("renew lease");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_nodes_become_unknown_and_recover() {
    let grace = Duration::from_millis(400);
    let h = Harness::start_with_node_grace(grace);
    // Before the nodes (and their heartbeat times) exist: a lower bound of when the grace period starts.
    let started = Instant::now();
    h.put("/registry/nodes/silent", node("silent", true, "2"))
        .await;
    h.put("/registry/nodes/leased", node("leased", true, "2"))
        .await;
    let renewing = {
        let store = h.store.clone();
        tokio::spawn(async move {
            loop {
                renew_lease(&*store, "leased").await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let ready_status = |n: &Value| condition(n, "Ready").map(|c| c["status"].clone());
    let silent = h
        .wait_for("/registry/nodes/silent", "Unknown", |n| {
            ready_status(n) == Some(json!("Unknown"))
        })
        .await;
    assert!(
        started.elapsed() >= grace,
        "marked before the grace period ended"
    );
    assert_eq!(
        condition(&silent, "Ready").map(|c| c["reason"].clone()),
        Some(json!("NodeStatusUnknown"))
    );
    // IPAM gave it a pod CIDR (which one depends on the order it saw the two nodes in).
    assert!(
        silent["spec"]["podCIDR"]
            .as_str()
            .is_some_and(|c| c.starts_with("10.244.") && c.ends_with(".0/24")),
        "other fields are kept: {}",
        silent["spec"]
    );
    assert_eq!(
        ready_status(&h.get("/registry/nodes/leased").await.expect("node")),
        Some(json!("True"))
    );
    // A pod now only fits on the node that is alive.
    h.put("/registry/pods/default/p", pod("default", "p", None))
        .await;
    let p = h.wait_bound("/registry/pods/default/p").await;
    assert_eq!(node_name(&p), Some("leased"));
    // The agent posts status again: Ready comes back and stays while the lease is renewed.
    h.set_ready("silent", true).await;
    for _ in 0..3 {
        renew_lease(&*h.store, "silent").await;
        tokio::time::sleep(grace / 2).await;
    }
    assert_eq!(
        ready_status(&h.get("/registry/nodes/silent").await.expect("node")),
        Some(json!("True"))
    );
    renewing.abort();
    h.stop().await;
}

fn taint_keys(node: &Value) -> Vec<(String, String)> {
    node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["key"].as_str().unwrap_or_default().to_string(),
                t["effect"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn bound_pod(name: &str, node: &str, toleration_seconds: Option<i64>) -> Value {
    let mut p = pod("default", name, None);
    p["spec"]["nodeName"] = node.into();
    p["status"] = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
    if let Some(seconds) = toleration_seconds {
        p["spec"]["tolerations"] = json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}
        ]);
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_nodes_are_tainted_and_their_pods_evicted() {
    let grace = Duration::from_millis(300);
    let h = Harness::start_with_node_grace(grace);
    h.put("/registry/nodes/gone", node("gone", true, "2")).await;
    h.put(
        "/registry/pods/default/bare",
        bound_pod("bare", "gone", None),
    )
    .await;
    h.put(
        "/registry/pods/default/short",
        bound_pod("short", "gone", Some(2)),
    )
    .await;
    h.put(
        "/registry/pods/default/long",
        bound_pod("long", "gone", Some(300)),
    )
    .await;
    let unreachable = |effect: &str| {
        (
            "node.kubernetes.io/unreachable".to_string(),
            effect.to_string(),
        )
    };
    let tainted = h
        .wait_for("/registry/nodes/gone", "unreachable taints", |n| {
            taint_keys(n).len() == 2
        })
        .await;
    assert_eq!(
        taint_keys(&tainted),
        [unreachable("NoSchedule"), unreachable("NoExecute")]
    );
    assert_eq!(
        condition(&tainted, "Ready").map(|c| c["status"].clone()),
        Some(json!("Unknown"))
    );
    // No toleration: evicted at once, gracefully as kube's taint manager (the pod is bound to a node, so
    // it turns Terminating with its grace period; the node's agent or the pod GC finishes it). The long
    // toleration keeps the pod, marked not ready.
    let terminating = |p: &Value| p.pointer("/metadata/deletionTimestamp").is_some();
    let bare = h
        .wait_for("/registry/pods/default/bare", "terminating", terminating)
        .await;
    assert_eq!(bare["metadata"]["deletionGracePeriodSeconds"], json!(30));
    // The event follows the delete.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let evicted = h.events("default").await.into_iter().any(|e| {
            e["reason"] == "TaintManagerEviction"
                && e["message"] == "Marking for deletion Pod default/bare"
                && e["involvedObject"]["name"] == "bare"
        });
        if evicted {
            break;
        }
        assert!(Instant::now() < deadline, "no TaintManagerEviction event");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let long = h
        .wait_for("/registry/pods/default/long", "not ready", |p| {
            condition(p, "Ready").map(|c| c["status"].clone()) == Some(json!("False"))
        })
        .await;
    assert_eq!(node_name(&long), Some("gone"));
    // The 2 s toleration runs out (timeAdded has whole seconds: up to 1 s early).
    let added = Instant::now();
    h.wait_for("/registry/pods/default/short", "terminating", terminating)
        .await;
    assert!(added.elapsed() >= Duration::from_millis(500));
    let long = h.get("/registry/pods/default/long").await.expect("long");
    assert!(!terminating(&long), "the 300 s toleration still holds");

    // Ready=False: not-ready replaces unreachable; recovery removes the taints.
    h.set_ready("gone", false).await;
    h.wait_for("/registry/nodes/gone", "not-ready taints", |n| {
        taint_keys(n)
            .iter()
            .all(|(k, _)| k == "node.kubernetes.io/not-ready")
            && taint_keys(n).len() == 2
    })
    .await;
    h.set_ready("gone", true).await;
    renew_lease(&*h.store, "gone").await;
    h.wait_for("/registry/nodes/gone", "untainted", |n| {
        taint_keys(n).is_empty()
    })
    .await;
    assert!(h.get("/registry/pods/default/long").await.is_some());
    h.stop().await;
}

/// Taints follow a node's conditions as soon as the node changes, as kube's NoSchedule tainting pass; the
/// periodic check (every 5 s with the default grace period) is not waited for. A node that turns Ready
/// takes pods at once (before: `kubectl wait node --for=condition=Ready` and a create right after could find
/// every new pod placed on the other nodes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taints_follow_conditions_at_once() {
    let h = Harness::start_with_node_grace(Duration::from_secs(50));
    h.put("/registry/nodes/late", node("late", false, "2"))
        .await;
    h.wait_for("/registry/nodes/late", "not-ready taints", |n| {
        taint_keys(n).len() == 2
    })
    .await;
    let ready = Instant::now();
    h.set_ready("late", true).await;
    h.wait_for("/registry/nodes/late", "untainted", |n| {
        taint_keys(n).is_empty()
    })
    .await;
    // The periodic check runs every 5 s; lifting the taint on it would take ≈ 5 s here.
    assert!(
        ready.elapsed() < Duration::from_millis(2500),
        "taints lifted only after {:?}",
        ready.elapsed()
    );
    h.put("/registry/pods/default/p", pod("default", "p", None))
        .await;
    let p = h.wait_bound("/registry/pods/default/p").await;
    assert_eq!(node_name(&p), Some("late"));
    h.stop().await;
}

/// The pod GC pass (`Api::finalize_pass(true)`): a terminating pod is force-deleted when its node is gone,
/// or is not Ready and carries `node.kubernetes.io/out-of-service` (kube's podgc `gcTerminating`); on a node
/// that is merely NotReady, or Ready with the taint, it waits for its agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_gc_force_deletes_terminating_pods_of_gone_and_out_of_service_nodes() {
    let h = Harness::start();
    let out_of_service = json!([{"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}]);
    let mut dead = node("dead", false, "2");
    dead["spec"]["taints"] = out_of_service.clone();
    let mut drained = node("drained", true, "2");
    drained["spec"]["taints"] = out_of_service;
    h.put("/registry/nodes/dead", dead).await;
    h.put("/registry/nodes/drained", drained).await;
    h.put("/registry/nodes/down", node("down", false, "2"))
        .await;
    for (name, on) in [
        ("on-dead", "dead"),
        ("on-drained", "drained"),
        ("on-down", "down"),
        ("on-ghost", "ghost"),
    ] {
        let mut p = bound_pod(name, on, Some(3600));
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        p["metadata"]["deletionGracePeriodSeconds"] = json!(30);
        h.put(&format!("/registry/pods/default/{name}"), p).await;
    }
    let api = crate::handlers::Api::new(h.store.clone());
    api.finalize_pass(true).await.expect("finalize pass");
    for (name, kept) in [
        ("on-dead", false),
        ("on-ghost", false),
        ("on-drained", true),
        ("on-down", true),
    ] {
        let present = h
            .get(&format!("/registry/pods/default/{name}"))
            .await
            .is_some();
        assert_eq!(present, kept, "pod {name}");
    }
    h.stop().await;
}
