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
    h.put("/registry/nodes/silent", node("silent", true, "2"))
        .await;
    h.put("/registry/nodes/leased", node("leased", true, "2"))
        .await;
    let started = Instant::now();
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
    assert_eq!(
        silent["spec"]["podCIDR"], "10.244.0.0/24",
        "other fields are kept"
    );
    assert_eq!(
        ready_status(&h.get("/registry/nodes/leased").await.expect("node")),
        Some(json!("True"))
    );
    // A pod now only fits on the node that is alive.
    h.put("/registry/pods/default/p", pod("default", "p", None))
        .await;
    let p = h
        .wait_for("/registry/pods/default/p", "bound", |p| {
            node_name(p).is_some()
        })
        .await;
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
