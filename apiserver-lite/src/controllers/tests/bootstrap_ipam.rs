use serde_json::{Value, json};

use super::*;
use crate::controllers::bootstrap;
use crate::store::Store;
use crate::store::redb::RedbStore;
use crate::store::redb::tests::TempDir;

#[tokio::test]
async fn bootstrap_creates_system_namespaces_once() {
    let dir = TempDir::new();
    let store = RedbStore::open(&dir.path().join("store.redb")).expect("open");
    bootstrap(&store).await.expect("bootstrap");
    let after_first = store.current_revision().await.expect("revision");
    bootstrap(&store).await.expect("bootstrap again");
    assert_eq!(
        store.current_revision().await.expect("revision"),
        after_first,
        "second run writes nothing"
    );
    let (items, _) = store.list("/registry/namespaces/").await.expect("list");
    let names: Vec<String> = items
        .iter()
        .map(|kv| kv.key.rsplit('/').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        names,
        vec!["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    let ns: Value = serde_json::from_slice(&items[0].value).expect("json");
    assert_eq!(ns["apiVersion"], "v1");
    assert_eq!(ns["kind"], "Namespace");
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "default"
    );
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(ns["status"]["phase"], "Active");
    assert!(
        ns["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| u.len() == 36)
    );
    assert!(
        ns["metadata"]["creationTimestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z') && t.len() == 20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipam_assigns_frees_and_survives_restart() {
    let h = Harness::start();
    h.put("/registry/nodes/n1", node("n1", true, "2")).await;
    let n1 = h
        .wait_for("/registry/nodes/n1", "podCIDR", |n| {
            n["spec"]["podCIDR"].is_string()
        })
        .await;
    assert_eq!(n1["spec"]["podCIDR"], "10.244.0.0/24");
    assert_eq!(n1["spec"]["podCIDRs"], json!(["10.244.0.0/24"]));
    assert_eq!(
        n1["status"]["allocatable"]["cpu"], "2",
        "other fields are kept"
    );
    let mut preset = node("n2", true, "2");
    preset["spec"]["podCIDR"] = "10.244.1.0/24".into();
    h.put("/registry/nodes/n2", preset).await;
    h.put("/registry/nodes/n3", node("n3", true, "2")).await;
    let n3 = h
        .wait_for("/registry/nodes/n3", "podCIDR", |n| {
            n["spec"]["podCIDR"].is_string()
        })
        .await;
    assert_eq!(n3["spec"]["podCIDR"], "10.244.2.0/24");

    // Restart: allocations come from the stored nodes, so the next node does not reuse any of them.
    let (store, dir) = h.stop().await;
    let h = Harness::start_on(store, dir);
    h.store
        .delete("/registry/nodes/n1", None)
        .await
        .expect("delete n1");
    h.put("/registry/nodes/n4", node("n4", true, "2")).await;
    h.put("/registry/nodes/n5", node("n5", true, "2")).await;
    let n4 = h
        .wait_for("/registry/nodes/n4", "podCIDR", |n| {
            n["spec"]["podCIDR"].is_string()
        })
        .await;
    let n5 = h
        .wait_for("/registry/nodes/n5", "podCIDR", |n| {
            n["spec"]["podCIDR"].is_string()
        })
        .await;
    let mut got = [
        n4["spec"]["podCIDR"].as_str().unwrap_or_default(),
        n5["spec"]["podCIDR"].as_str().unwrap_or_default(),
    ];
    got.sort();
    assert_eq!(
        got,
        ["10.244.0.0/24", "10.244.3.0/24"],
        "n1's subnet is reused, no subnet is given twice"
    );
    h.stop().await;
}
