//! The endpoints controller and the `kubernetes` Service against a real store.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::controllers::bootstrap;
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::store::Store;
use crate::store::redb::RedbStore;
use crate::store::redb::tests::TempDir;

const EP: &str = "/registry/endpoints/default/web";

/// The controllers without election, on a store with the system namespaces.
async fn start_on(store: Arc<dyn Store>, dir: TempDir) -> Harness {
    bootstrap(store.as_ref()).await.expect("bootstrap");
    Harness::start_unelected(store, dir, config(), Duration::from_secs(40))
}

async fn start() -> Harness {
    let dir = TempDir::new();
    let store: Arc<dyn Store> =
        Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("open store"));
    start_on(store, dir).await
}

async fn create(api: &Api, kind: Kind, body: Value) {
    api.create(by_kind(kind), Some("default"), body, &[], &opts())
        .await
        .expect("create");
}

/// A pod, created and then given an address and readiness through `pods/status` as an agent does.
async fn web_pod(api: &Api, name: &str, ip: &str, ready: bool) {
    create(
        api,
        Kind::Pod,
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "labels": {"app": "web"}},
               "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox",
                        "ports": [{"name": "http", "containerPort": 8080}]}]}}),
    )
    .await;
    api.patch(
        by_kind(Kind::Pod),
        Some("default"),
        name,
        Some("status"),
        crate::patch::PatchType::Merge,
        json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
               "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}}),
        &[],
        &opts(),
        false,
    )
    .await
    .expect("pod status");
}

fn ready_ips(ep: &Value) -> Vec<&str> {
    ep["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["addresses"].as_array().into_iter().flatten())
        .filter_map(|a| a["ip"].as_str())
        .collect()
}

fn not_ready_ips(ep: &Value) -> Vec<&str> {
    ep["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["notReadyAddresses"].as_array().into_iter().flatten())
        .filter_map(|a| a["ip"].as_str())
        .collect()
}

async fn mod_revision(store: &dyn Store, key: &str) -> i64 {
    store
        .get(key)
        .await
        .expect("get")
        .expect("exists")
        .mod_revision
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_service_and_endpoints_are_created() {
    let h = start().await;
    let svc = h
        .wait_for("/registry/services/default/kubernetes", "created", |_| true)
        .await;
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1");
    assert_eq!(svc["spec"]["clusterIPs"], json!(["10.96.0.1"]));
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}])
    );
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["sessionAffinity"], "None");
    assert!(svc["spec"].get("selector").is_none());
    assert_eq!(
        svc["metadata"]["labels"],
        json!({"component": "apiserver", "provider": "kubernetes"})
    );
    assert!(
        svc["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| u.len() == 36)
    );
    assert!(svc["metadata"]["creationTimestamp"].is_string());
    // The address is reserved like any allocated one.
    assert_eq!(
        h.ip_owner("10.96.0.1").await.as_deref(),
        Some("/registry/services/default/kubernetes")
    );
    let ep = h
        .wait_for("/registry/endpoints/default/kubernetes", "created", |_| {
            true
        })
        .await;
    assert_eq!(
        ep["subsets"],
        json!([{"addresses": [{"ip": "192.0.2.10"}],
                "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}])
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_follow_pods_without_churn_and_after_restart() {
    let h = start().await;
    let api = Api::new(h.store.clone());
    create(
        &api,
        Kind::Service,
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "labels": {"team": "a"}},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}}),
    )
    .await;
    let ep = h.wait_for(EP, "created empty", |_| true).await;
    assert!(ep.get("subsets").is_none(), "{ep}");
    assert_eq!(ep["metadata"]["labels"], json!({"team": "a"}));
    web_pod(&api, "a", "10.244.0.7", true).await;
    web_pod(&api, "b", "10.244.0.6", false).await;
    let ep = h
        .wait_for(EP, "both pods", |ep| {
            ready_ips(ep) == ["10.244.0.7"] && not_ready_ips(ep) == ["10.244.0.6"]
        })
        .await;
    assert_eq!(
        ep["subsets"][0]["ports"],
        json!([{"port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(ep["subsets"][0]["addresses"][0]["targetRef"]["name"], "a");

    // An update that changes nothing the Endpoints show writes nothing.
    let before = mod_revision(h.store.as_ref(), EP).await;
    let pods = by_kind(Kind::Pod);
    api.patch(
        pods,
        Some("default"),
        "a",
        None,
        crate::patch::PatchType::Merge,
        json!({"metadata": {"annotations": {"x": "y"}}}),
        &[],
        &opts(),
        false,
    )
    .await
    .expect("patch");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mod_revision(h.store.as_ref(), EP).await, before, "no churn");

    // A deleted Endpoints object comes back at once.
    h.store.delete(EP, None).await.expect("delete endpoints");
    h.wait_for(EP, "recreated", |ep| ready_ips(ep) == ["10.244.0.7"])
        .await;

    // A restart with nothing changed writes nothing (no empty Endpoints while the pods are being listed).
    let before = mod_revision(h.store.as_ref(), EP).await;
    let (store, dir) = h.stop().await;
    let h = start_on(store, dir).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        mod_revision(h.store.as_ref(), EP).await,
        before,
        "restart churn"
    );

    // While the controllers are down a pod goes away; the first list after the restart catches up.
    let (store, dir) = h.stop().await;
    let api = Api::new(store.clone());
    store
        .delete("/registry/pods/default/b", None)
        .await
        .expect("delete b");
    let h = start_on(store, dir).await;
    h.wait_for(EP, "b gone after restart", |ep| {
        ready_ips(ep) == ["10.244.0.7"] && not_ready_ips(ep).is_empty()
    })
    .await;

    // Deleting the Service deletes its Endpoints.
    api.delete(
        by_kind(Kind::Service),
        Some("default"),
        "web",
        &Default::default(),
        false,
    )
    .await
    .expect("delete service");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while h.get(EP).await.is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "endpoints not deleted"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectorless_services_keep_their_endpoints() {
    let h = start().await;
    let api = Api::new(h.store.clone());
    create(
        &api,
        Kind::Service,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"ports": [{"port": 80}]}}),
    )
    .await;
    create(
        &api,
        Kind::Endpoints,
        json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
               "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}]}),
    )
    .await;
    web_pod(&api, "a", "10.244.0.7", true).await;
    let before = mod_revision(h.store.as_ref(), EP).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mod_revision(h.store.as_ref(), EP).await, before);
    let ep = h.get(EP).await.expect("kept");
    assert_eq!(ready_ips(&ep), ["192.0.2.1"]);
    h.stop().await;
}
