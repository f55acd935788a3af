//! The `kube-system/kube-dns` Service against a real store.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::controllers::{bootstrap, kube_dns};
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::store::Store;
use crate::store::redb::RedbStore;
use crate::store::redb::tests::TempDir;

const KEY: &str = "/registry/services/kube-system/kube-dns";
const DNS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

async fn store() -> (Arc<dyn Store>, TempDir) {
    let dir = TempDir::new();
    let store: Arc<dyn Store> =
        Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("open store"));
    bootstrap(store.as_ref()).await.expect("bootstrap");
    (store, dir)
}

/// The controllers without election on `store`, with `config`.
fn start_with(store: Arc<dyn Store>, dir: TempDir, config: Config) -> Harness {
    Harness::start_unelected(store, dir, config, Duration::from_secs(40))
}

/// The API as the server's handlers have it.
fn user_api(store: &Arc<dyn Store>, config: &Config) -> Api {
    Api::new(store.clone())
        .with_service_cidr(config.service_cidr)
        .with_cluster_dns(config.cluster_dns)
}

/// A Service as `kubectl create service clusterip NAME --tcp=80` sends it; `ip` asks for an address.
async fn create_service(
    api: &Api,
    ns: &str,
    name: &str,
    ip: Option<&str>,
) -> Result<Value, String> {
    let mut body = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                          "spec": {"ports": [{"name": "80", "port": 80}]}});
    if let Some(ip) = ip {
        body["spec"]["clusterIP"] = json!(ip);
    }
    api.create(by_kind(Kind::Service), Some(ns), body, &[], &opts())
        .await
        .map(|(svc, _)| svc)
        .map_err(|e| e.message)
}

async fn delete_service(api: &Api, ns: &str, name: &str) {
    api.delete(
        by_kind(Kind::Service),
        Some(ns),
        name,
        &Default::default(),
        false,
    )
    .await
    .expect("delete service");
}

async fn stored(store: &dyn Store, key: &str) -> Option<Value> {
    let kv = store.get(key).await.expect("get")?;
    Some(serde_json::from_slice(&kv.value).expect("stored JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_dns_service_is_created() {
    let (store, dir) = store().await;
    let h = start_with(store, dir, config());
    let svc = h.wait_for(KEY, "created", |_| true).await;
    assert_eq!(
        svc["metadata"]["labels"],
        json!({"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
               "kubernetes.io/name": "KubeDNS"})
    );
    let mut spec = svc["spec"].clone();
    assert!(spec.get("selector").is_none(), "{spec}");
    spec.as_object_mut().map(|s| s.remove("ports"));
    assert_eq!(
        spec,
        json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
               "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
               "internalTrafficPolicy": "Cluster"})
    );
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
               {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}])
    );
    assert_eq!(
        svc["metadata"]["managedFields"][0]["manager"],
        "skiff-apiserver"
    );
    assert_eq!(h.ip_owner("10.96.0.10").await.as_deref(), Some(KEY));
    // The agents answer on the address: the endpoints controller leaves the selector-less Service alone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        h.get("/registry/endpoints/kube-system/kube-dns")
            .await
            .is_none()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_dns_none_creates_nothing() {
    let (store, dir) = store().await;
    let h = start_with(
        store,
        dir,
        Config {
            cluster_dns: None,
            ..config()
        },
    );
    h.wait_for("/registry/services/default/kubernetes", "created", |_| true)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(h.get(KEY).await.is_none());
    let (reserved, _) = h.store.list("/registry/serviceips/").await.expect("list");
    let reserved: Vec<&str> = reserved.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(reserved, ["/registry/serviceips/10.96.0.1"]);
    h.stop().await;
}

#[tokio::test]
async fn kube_dns_comes_back_and_user_edits_stay() {
    let (store, _dir) = store().await;
    let api = user_api(&store, &config());
    let service = kube_dns::service(DNS);
    assert_eq!(kube_dns::ensure(&api, &service).await, None);
    let created = stored(store.as_ref(), KEY).await.expect("created");

    // Deleted: created again at the same address, which the delete had given back.
    delete_service(&api, "kube-system", "kube-dns").await;
    assert!(stored(store.as_ref(), KEY).await.is_none());
    assert_eq!(kube_dns::ensure(&api, &service).await, None);
    let again = stored(store.as_ref(), KEY).await.expect("created again");
    assert_ne!(again["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(again["spec"]["clusterIP"], "10.96.0.10");

    // The add-on's Service is the user's to edit: other ports and labels are kept.
    api.patch(
        by_kind(Kind::Service),
        Some("kube-system"),
        "kube-dns",
        None,
        crate::patch::PatchType::Merge,
        json!({"metadata": {"labels": {"k8s-app": "coredns"}},
               "spec": {"ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}]}}),
        &[],
        &opts(),
        false,
    )
    .await
    .expect("edit");
    let edited = stored(store.as_ref(), KEY).await.expect("edited");
    assert_eq!(kube_dns::ensure(&api, &service).await, None);
    assert_eq!(stored(store.as_ref(), KEY).await, Some(edited));

    // A kube-dns of the user's at another address is left alone, with a warning.
    delete_service(&api, "kube-system", "kube-dns").await;
    create_service(&api, "kube-system", "kube-dns", Some("10.96.0.53"))
        .await
        .expect("user's kube-dns");
    let theirs = stored(store.as_ref(), KEY).await;
    let problem = kube_dns::ensure(&api, &service).await.expect("a problem");
    assert!(problem.contains("\"10.96.0.53\""), "{problem}");
    assert_eq!(stored(store.as_ref(), KEY).await, theirs);

    // Another Service that asked for the address keeps it; the problem is told.
    delete_service(&api, "kube-system", "kube-dns").await;
    create_service(&api, "default", "squatter", Some("10.96.0.10"))
        .await
        .expect("explicit address");
    let problem = kube_dns::ensure(&api, &service).await.expect("a problem");
    assert!(problem.contains("already allocated"), "{problem}");
    assert!(stored(store.as_ref(), KEY).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_services_never_get_the_cluster_dns_address() {
    let (store, dir) = store().await;
    let config = Config {
        service_cidr: "10.96.0.0/28".parse().expect("cidr"),
        ..config()
    };
    // Users fill the range before the controllers run (the start-up race): .2 to .14 but .10.
    let api = user_api(&store, &config);
    let mut given = Vec::new();
    for i in 0..12 {
        let svc = create_service(&api, "default", &format!("s{i}"), None)
            .await
            .expect("allocated");
        given.push(
            svc["spec"]["clusterIP"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert!(!given.iter().any(|ip| ip == "10.96.0.10"), "{given:?}");
    let full = create_service(&api, "default", "more", None)
        .await
        .expect_err("full");
    assert!(full.contains("range 10.96.0.0/28 is full"), "{full}");

    let h = start_with(store, dir, config);
    let svc = h.wait_for(KEY, "created", |_| true).await;
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.10");
    // Deleted, its address is still not handed out.
    delete_service(&api, "kube-system", "kube-dns").await;
    let full = create_service(&api, "default", "more", None)
        .await
        .expect_err("full");
    assert!(full.contains("is full"), "{full}");
    h.stop().await;
}
