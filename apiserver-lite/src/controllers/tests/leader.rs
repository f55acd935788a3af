use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;
use crate::store::Store;
use crate::store::redb::RedbStore;
use crate::store::redb::tests::TempDir;

fn fast_election(identity: &str) -> crate::controllers::Election {
    crate::controllers::Election {
        identity: identity.into(),
        lease_duration: Duration::from_millis(400),
        renew_deadline: Duration::from_millis(250),
        retry_every: Duration::from_millis(50),
    }
}

async fn lease_holder(store: &dyn Store) -> Option<String> {
    let kv = store
        .get(crate::controllers::LEASE_KEY)
        .await
        .expect("get lease")?;
    let lease: Value = serde_json::from_slice(&kv.value).expect("lease JSON");
    lease["spec"]["holderIdentity"].as_str().map(str::to_string)
}

async fn wait_for_holder(store: &dyn Store, want: Option<&str>) -> Duration {
    let start = Instant::now();
    while lease_holder(store).await.as_deref() != want {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "lease never held by {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_with_handover_on_shutdown() {
    let dir = TempDir::new();
    let store: Arc<dyn Store> =
        Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("open store"));
    let (stop_a, rx_a) = tokio::sync::watch::channel(false);
    let a = tokio::spawn(crate::controllers::run_elected(
        store.clone(),
        config(),
        fast_election("a"),
        rx_a,
    ));
    wait_for_holder(&*store, Some("a")).await;
    let (stop_b, rx_b) = tokio::sync::watch::channel(false);
    let b = tokio::spawn(crate::controllers::run_elected(
        store.clone(),
        config(),
        fast_election("b"),
        rx_b,
    ));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        lease_holder(&*store).await.as_deref(),
        Some("a"),
        "a renews; b must not take over"
    );

    let h = Harness {
        store: store.clone(),
        shutdown: stop_b,
        task: b,
        _dir: dir,
    };
    h.put("/registry/nodes/n1", node("n1", true, "2")).await;
    h.put(
        "/registry/pods/default/first",
        pod("default", "first", None),
    )
    .await;
    h.wait_bound("/registry/pods/default/first").await;

    let _ = stop_a.send(true);
    a.await.expect("task").expect("a stops cleanly");
    let handover = wait_for_holder(&*store, Some("b")).await;
    assert!(
        handover < Duration::from_millis(400),
        "a released the lease, b need not wait: {handover:?}"
    );
    let lease: Value = serde_json::from_slice(
        &store
            .get(crate::controllers::LEASE_KEY)
            .await
            .expect("get")
            .expect("lease")
            .value,
    )
    .expect("json");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    assert_eq!(lease["metadata"]["namespace"], "kube-system");
    h.put(
        "/registry/pods/default/second",
        pod("default", "second", None),
    )
    .await;
    h.wait_for(
        "/registry/pods/default/second",
        "bound by the new leader",
        |p| node_name(p).is_some(),
    )
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leaders_lease_is_taken_over_after_it_expires() {
    let dir = TempDir::new();
    let store: Arc<dyn Store> =
        Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("open store"));
    let ghost = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "skiff-controllers", "namespace": "kube-system"},
        "spec": {"holderIdentity": "ghost", "leaseDurationSeconds": 15, "renewTime": "2026-01-01T00:00:00.000000Z"}});
    store
        .create(
            crate::controllers::LEASE_KEY,
            serde_json::to_vec(&ghost).expect("json"),
        )
        .await
        .expect("create");
    h_start_node_and_pod(&store).await;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let task = tokio::spawn(crate::controllers::run_elected(
        store.clone(),
        config(),
        fast_election("c"),
        rx,
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pod = store
        .get("/registry/pods/default/p")
        .await
        .expect("get")
        .expect("pod");
    let pod: Value = serde_json::from_slice(&pod.value).expect("json");
    assert_eq!(
        node_name(&pod),
        None,
        "nothing runs before the lease is ours"
    );
    wait_for_holder(&*store, Some("c")).await;
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "took over before the lease expired"
    );
    let h = Harness {
        store,
        shutdown: stop,
        task,
        _dir: dir,
    };
    h.wait_bound("/registry/pods/default/p").await;
    h.stop().await;
}

async fn h_start_node_and_pod(store: &Arc<dyn Store>) {
    store
        .create(
            "/registry/nodes/n1",
            serde_json::to_vec(&node("n1", true, "2")).expect("json"),
        )
        .await
        .expect("node");
    store
        .create(
            "/registry/pods/default/p",
            serde_json::to_vec(&pod("default", "p", None)).expect("json"),
        )
        .await
        .expect("pod");
}
