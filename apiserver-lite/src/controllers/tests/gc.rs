//! The garbage collector against a real store, with objects written through the REST handlers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;
use crate::controllers::bootstrap;
use crate::handlers::{Api, DeleteOpts, Propagation};
use crate::patch::PatchType;
use crate::resources::{Kind, by_kind};
use crate::store::Store;
use crate::store::redb::RedbStore;
use crate::store::redb::tests::TempDir;

/// A finalizer of this test's own, that keeps a dependent terminating until the test lets it go.
const HOLD: &str = "example.com/hold";

async fn store() -> (Arc<dyn Store>, TempDir) {
    let dir = TempDir::new();
    let store: Arc<dyn Store> =
        Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("open store"));
    bootstrap(store.as_ref()).await.expect("bootstrap");
    (store, dir)
}

fn start(store: Arc<dyn Store>, dir: TempDir) -> Harness {
    Harness::start_unelected(store, dir, config(), Duration::from_secs(40))
}

async fn create(api: &Api, kind: Kind, body: Value) -> Value {
    api.create(by_kind(kind), Some("default"), body, &[], &opts())
        .await
        .expect("create")
        .0
}

fn config_map(name: &str, refs: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "ownerReferences": refs}, "data": {"k": "v"}})
}

fn reference(owner: &Value, block: bool) -> Value {
    json!({"apiVersion": owner["apiVersion"], "kind": owner["kind"],
           "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
           "blockOwnerDeletion": block})
}

fn cm_key(name: &str) -> String {
    format!("/registry/configmaps/default/{name}")
}

fn pod_key(name: &str) -> String {
    format!("/registry/pods/default/{name}")
}

async fn delete(api: &Api, kind: Kind, name: &str, propagation: Option<Propagation>) -> Value {
    let opts = DeleteOpts {
        propagation,
        ..DeleteOpts::default()
    };
    api.delete(by_kind(kind), Some("default"), name, &opts, false)
        .await
        .expect("delete")
}

async fn wait_gone(h: &Harness, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.get(key).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {key} to go"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Nothing happens to `key` for a while (what the collector keeps stays).
async fn stays(h: &Harness, key: &str) -> Value {
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.get(key)
        .await
        .unwrap_or_else(|| panic!("{key} was deleted"))
}

fn owner_uids(obj: &Value) -> Vec<&str> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .map(|refs| refs.iter().filter_map(|r| r["uid"].as_str()).collect())
        .unwrap_or_default()
}

fn finalizers(obj: &Value) -> Vec<&str> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

async fn release_hold(api: &Api, kind: Kind, name: &str) {
    api.patch(
        by_kind(kind),
        Some("default"),
        name,
        None,
        PatchType::Merge,
        json!({"metadata": {"finalizers": null}}),
        &[],
        &opts(),
        false,
    )
    .await
    .expect("release the hold finalizer");
}

/// Background (the default): the owner goes at once, then its dependents; a bound pod gets graceful
/// deletion through the REST handlers (it stays terminating, as no agent finishes it here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_deletes_dependents() {
    let (store, dir) = store().await;
    let h = start(store.clone(), dir);
    let api = Api::new(store);
    let owner = create(&api, Kind::ConfigMap, config_map("owner", Value::Null)).await;
    create(
        &api,
        Kind::ConfigMap,
        config_map("dep-cm", json!([reference(&owner, true)])),
    )
    .await;
    create(
        &api,
        Kind::Pod,
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "dep-pod", "ownerReferences": [reference(&owner, false)]},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .await;
    create(
        &api,
        Kind::Pod,
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "bound-pod", "ownerReferences": [reference(&owner, true)]},
               "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .await;
    let unrelated = create(&api, Kind::ConfigMap, config_map("unrelated", Value::Null)).await;

    let gone = delete(
        &api,
        Kind::ConfigMap,
        "owner",
        Some(Propagation::Background),
    )
    .await;
    assert!(finalizers(&gone).is_empty());
    assert!(
        h.get(&cm_key("owner")).await.is_none(),
        "the owner goes at once"
    );
    wait_gone(&h, &cm_key("dep-cm")).await;
    wait_gone(&h, &pod_key("dep-pod")).await;
    let bound = h
        .wait_for(&pod_key("bound-pod"), "graceful deletion", |p| {
            p["metadata"]["deletionTimestamp"].is_string()
        })
        .await;
    assert_eq!(bound["metadata"]["deletionGracePeriodSeconds"], 30);
    let kept = stays(&h, &cm_key("unrelated")).await;
    assert_eq!(kept["metadata"]["uid"], unrelated["metadata"]["uid"]);

    // No policy: background too.
    let owner = create(&api, Kind::ConfigMap, config_map("owner2", Value::Null)).await;
    create(
        &api,
        Kind::ConfigMap,
        config_map("dep2", json!([reference(&owner, false)])),
    )
    .await;
    delete(&api, Kind::ConfigMap, "owner2", None).await;
    wait_gone(&h, &cm_key("dep2")).await;
    h.stop().await;
}

/// A dependent of two owners survives the first owner's deletion and loses only that reference; it goes
/// with the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_owners() {
    let (store, dir) = store().await;
    let h = start(store.clone(), dir);
    let api = Api::new(store);
    let a = create(&api, Kind::ConfigMap, config_map("a", Value::Null)).await;
    let b = create(&api, Kind::ConfigMap, config_map("b", Value::Null)).await;
    create(
        &api,
        Kind::ConfigMap,
        config_map("shared", json!([reference(&a, true), reference(&b, true)])),
    )
    .await;
    delete(&api, Kind::ConfigMap, "a", Some(Propagation::Background)).await;
    let b_uid = b["metadata"]["uid"].as_str().expect("uid");
    let shared = h
        .wait_for(&cm_key("shared"), "reference to a removed", |v| {
            owner_uids(v) == [b_uid]
        })
        .await;
    assert_eq!(shared["metadata"]["ownerReferences"][0]["name"], "b");
    stays(&h, &cm_key("shared")).await;
    delete(&api, Kind::ConfigMap, "b", None).await;
    wait_gone(&h, &cm_key("shared")).await;
    h.stop().await;
}

/// Foreground: the owner stays visible with `deletionTimestamp` and the `foregroundDeletion` finalizer
/// while its blocking dependents go (a dependent that owns objects goes in the foreground too), then goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_waits_for_blocking_dependents() {
    let (store, dir) = store().await;
    let h = start(store.clone(), dir);
    let api = Api::new(store);
    let top = create(&api, Kind::ConfigMap, config_map("top", Value::Null)).await;
    let middle = create(
        &api,
        Kind::ConfigMap,
        config_map("middle", json!([reference(&top, true)])),
    )
    .await;
    let mut leaf = config_map("leaf", json!([reference(&middle, true)]));
    leaf["metadata"]["finalizers"] = json!([HOLD]);
    create(&api, Kind::ConfigMap, leaf).await;
    create(
        &api,
        Kind::ConfigMap,
        config_map("loose", json!([reference(&top, false)])),
    )
    .await;

    let answer = delete(&api, Kind::ConfigMap, "top", Some(Propagation::Foreground)).await;
    assert_eq!(finalizers(&answer), ["foregroundDeletion"]);
    assert!(answer["metadata"]["deletionTimestamp"].is_string());

    // The leaf is deleted (held by its own finalizer); middle waits for it in the foreground.
    h.wait_for(&cm_key("leaf"), "leaf terminating", |v| {
        v["metadata"]["deletionTimestamp"].is_string()
    })
    .await;
    let mid = h
        .wait_for(&cm_key("middle"), "middle deleted in the foreground", |v| {
            finalizers(v) == ["foregroundDeletion"]
        })
        .await;
    assert!(mid["metadata"]["deletionTimestamp"].is_string());
    // A dependent without blockOwnerDeletion goes without holding the owner.
    wait_gone(&h, &cm_key("loose")).await;
    let top_now = stays(&h, &cm_key("top")).await;
    assert_eq!(finalizers(&top_now), ["foregroundDeletion"]);
    assert!(h.get(&cm_key("middle")).await.is_some());

    release_hold(&api, Kind::ConfigMap, "leaf").await;
    wait_gone(&h, &cm_key("leaf")).await;
    wait_gone(&h, &cm_key("middle")).await;
    wait_gone(&h, &cm_key("top")).await;

    // Deleting again in the background while waiting drops the finalizer: the owner goes at once.
    let owner = create(&api, Kind::ConfigMap, config_map("again", Value::Null)).await;
    let mut held = config_map("held", json!([reference(&owner, true)]));
    held["metadata"]["finalizers"] = json!([HOLD]);
    create(&api, Kind::ConfigMap, held).await;
    delete(
        &api,
        Kind::ConfigMap,
        "again",
        Some(Propagation::Foreground),
    )
    .await;
    h.wait_for(&cm_key("held"), "held terminating", |v| {
        v["metadata"]["deletionTimestamp"].is_string()
    })
    .await;
    assert!(h.get(&cm_key("again")).await.is_some());
    delete(
        &api,
        Kind::ConfigMap,
        "again",
        Some(Propagation::Background),
    )
    .await;
    assert!(h.get(&cm_key("again")).await.is_none());
    release_hold(&api, Kind::ConfigMap, "held").await;
    wait_gone(&h, &cm_key("held")).await;
    h.stop().await;
}

/// Orphan: the owner gets the `orphan` finalizer, its dependents lose their references to it and stay,
/// then the owner goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_keeps_dependents() {
    let (store, dir) = store().await;
    let h = start(store.clone(), dir);
    let api = Api::new(store);
    let owner = create(&api, Kind::ConfigMap, config_map("owner", Value::Null)).await;
    let other = create(&api, Kind::ConfigMap, config_map("other", Value::Null)).await;
    create(
        &api,
        Kind::ConfigMap,
        config_map("dep", json!([reference(&owner, true)])),
    )
    .await;
    create(
        &api,
        Kind::ConfigMap,
        config_map(
            "dep-two",
            json!([reference(&owner, true), reference(&other, false)]),
        ),
    )
    .await;
    create(
        &api,
        Kind::Pod,
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "dep-pod", "ownerReferences": [reference(&owner, true)]},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .await;
    let answer = delete(&api, Kind::ConfigMap, "owner", Some(Propagation::Orphan)).await;
    assert_eq!(finalizers(&answer), ["orphan"]);
    wait_gone(&h, &cm_key("owner")).await;
    let dep = h.get(&cm_key("dep")).await.expect("dep kept");
    assert!(dep["metadata"]["ownerReferences"].is_null(), "{dep}");
    let two = h.get(&cm_key("dep-two")).await.expect("dep-two kept");
    assert_eq!(
        owner_uids(&two),
        [other["metadata"]["uid"].as_str().expect("uid")]
    );
    let pod = h.get(&pod_key("dep-pod")).await.expect("pod kept");
    assert!(pod["metadata"]["ownerReferences"].is_null());
    stays(&h, &pod_key("dep-pod")).await;
    h.stop().await;
}

/// Objects written while no collector ran: at start the ones whose owners are gone (or were replaced:
/// another uid) are deleted, the others kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciles_at_start() {
    let (store, dir) = store().await;
    let api = Api::new(store.clone());
    let owner = create(&api, Kind::ConfigMap, config_map("owner", Value::Null)).await;
    let mut replaced = reference(&owner, true);
    replaced["uid"] = json!("00000000-0000-0000-0000-000000000000");
    let vanished = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "vanished",
                          "uid": "11111111-1111-1111-1111-111111111111"});
    create(
        &api,
        Kind::ConfigMap,
        config_map("kept", json!([reference(&owner, true)])),
    )
    .await;
    create(
        &api,
        Kind::ConfigMap,
        config_map("wrong-uid", json!([replaced])),
    )
    .await;
    create(
        &api,
        Kind::ConfigMap,
        config_map("orphaned", json!([vanished])),
    )
    .await;
    // A reference to a kind this server does not serve is left alone, as kube does.
    create(
        &api,
        Kind::ConfigMap,
        config_map(
            "foreign",
            json!([{"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "uid": "w-1"}]),
        ),
    )
    .await;
    let h = start(store, dir);
    wait_gone(&h, &cm_key("wrong-uid")).await;
    wait_gone(&h, &cm_key("orphaned")).await;
    stays(&h, &cm_key("kept")).await;
    stays(&h, &cm_key("foreign")).await;
    h.stop().await;
}

/// Objects created while the collector runs are checked too: a reference with the wrong uid (the owner's
/// name, another object) is dangling; a dependent of an owner that is already gone goes at once. Owners
/// of any served kind count, cluster-scoped ones looked up cluster-wide (a Node) and apps/v1 ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_new_dependents() {
    let (store, dir) = store().await;
    let h = start(store.clone(), dir);
    let api = Api::new(store.clone());
    let owner = create(&api, Kind::ConfigMap, config_map("owner", Value::Null)).await;
    let mut wrong = reference(&owner, false);
    wrong["uid"] = json!("22222222-2222-2222-2222-222222222222");
    create(
        &api,
        Kind::ConfigMap,
        config_map("wrong-uid", json!([wrong])),
    )
    .await;
    wait_gone(&h, &cm_key("wrong-uid")).await;

    let node = api
        .create(
            by_kind(Kind::Node),
            None,
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n9"}}),
            &[],
            &opts(),
        )
        .await
        .expect("node")
        .0;
    let replica_set = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                             "metadata": {"name": "gone-rs", "uid": "33333333-3333-3333-3333-333333333333"}});
    create(
        &api,
        Kind::ConfigMap,
        config_map("node-owned", json!([reference(&node, true)])),
    )
    .await;
    create(
        &api,
        Kind::ConfigMap,
        config_map("rs-owned", json!([reference(&replica_set, true)])),
    )
    .await;
    wait_gone(&h, &cm_key("rs-owned")).await;
    stays(&h, &cm_key("node-owned")).await;
    api.delete(
        by_kind(Kind::Node),
        None,
        "n9",
        &DeleteOpts::default(),
        false,
    )
    .await
    .expect("delete node");
    wait_gone(&h, &cm_key("node-owned")).await;
    h.stop().await;
}

/// What DELETE takes: `propagationPolicy` in the body or the query, `orphanDependents` (deprecated).
#[test]
fn delete_options_propagation() {
    use crate::handlers::Query;
    let parse =
        |q: &str, body: &str| DeleteOpts::from_request(&Query::parse(Some(q)), body.as_bytes());
    let policy = |q: &str, body: &str| parse(q, body).expect("valid").propagation;
    assert_eq!(policy("", ""), None);
    assert_eq!(
        policy("", r#"{"propagationPolicy":"Foreground"}"#),
        Some(Propagation::Foreground)
    );
    assert_eq!(
        policy("propagationPolicy=Orphan", ""),
        Some(Propagation::Orphan)
    );
    assert_eq!(
        policy(
            "",
            r#"{"kind":"DeleteOptions","apiVersion":"v1","orphanDependents":true}"#
        ),
        Some(Propagation::Orphan)
    );
    assert_eq!(
        policy("orphanDependents=false", ""),
        Some(Propagation::Background)
    );
    let e = parse(
        "",
        r#"{"propagationPolicy":"Background","orphanDependents":false}"#,
    )
    .expect_err("both");
    assert_eq!(e.code, 422);
    let e = parse("propagationPolicy=Sideways", "").expect_err("unknown policy");
    assert_eq!(e.code, 422);
    assert!(parse("orphanDependents=maybe", "").is_err());
    assert!(parse("", r#"{"orphanDependents":"yes"}"#).is_err());
}

/// The finalizers DELETE sets for each policy, kube's registry rules.
#[test]
fn deletion_finalizers() {
    use crate::handlers::gc_finalizers;
    let orphan = Some(Propagation::Orphan);
    assert!(gc_finalizers(&[], None, None).is_empty());
    assert_eq!(gc_finalizers(&["x"], orphan, None), ["x", "orphan"]);
    assert_eq!(
        gc_finalizers(&["orphan", "x"], Some(Propagation::Foreground), None),
        ["x", "foregroundDeletion"]
    );
    assert!(
        gc_finalizers(
            &["foregroundDeletion"],
            Some(Propagation::Background),
            orphan
        )
        .is_empty()
    );
    // No policy: the object's own finalizer stands, else the kind's default (batch/v1 Jobs: orphan).
    assert_eq!(gc_finalizers(&["orphan"], None, None), ["orphan"]);
    assert_eq!(
        gc_finalizers(&["foregroundDeletion"], None, orphan),
        ["foregroundDeletion"]
    );
    assert_eq!(gc_finalizers(&[], None, orphan), ["orphan"]);
}

/// DELETE alone (no collector running): the policy's finalizer holds the object, a second DELETE in the
/// background lets it go, and a bound pod gets both graceful deletion and the finalizer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_sets_the_policy_finalizer() {
    let (store, _dir) = store().await;
    let api = Api::new(store.clone());
    create(&api, Kind::ConfigMap, config_map("held", Value::Null)).await;
    let held = delete(&api, Kind::ConfigMap, "held", Some(Propagation::Foreground)).await;
    assert_eq!(finalizers(&held), ["foregroundDeletion"]);
    assert_eq!(held["metadata"]["deletionGracePeriodSeconds"], 0);
    // Again without a policy: nothing changes.
    let again = delete(&api, Kind::ConfigMap, "held", None).await;
    assert_eq!(
        again["metadata"]["resourceVersion"],
        held["metadata"]["resourceVersion"]
    );
    delete(&api, Kind::ConfigMap, "held", Some(Propagation::Background)).await;
    assert!(
        api.get(by_kind(Kind::ConfigMap), Some("default"), "held")
            .await
            .is_err()
    );

    create(
        &api,
        Kind::Pod,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bound"},
               "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .await;
    let pod = delete(&api, Kind::Pod, "bound", Some(Propagation::Orphan)).await;
    assert_eq!(finalizers(&pod), ["orphan"]);
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 30);
    // The agent's final grace-0 delete leaves it to the finalizer.
    let opts = DeleteOpts {
        grace: Some(0),
        ..DeleteOpts::default()
    };
    let pod = api
        .delete(by_kind(Kind::Pod), Some("default"), "bound", &opts, false)
        .await
        .expect("delete");
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(finalizers(&pod), ["orphan"]);
}

/// apps/v1 needs nothing of its own: the pods a ReplicaSet's controller made go with it, in the
/// foreground (the ReplicaSet stays until they are gone), and a Deployment takes its ReplicaSets along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_are_collected() {
    let (store, dir) = store().await;
    let h = start(store.clone(), dir);
    let api = Api::new(store.clone());
    let template = json!({"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    create(
        &api,
        Kind::ReplicaSet,
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template}}),
    )
    .await;
    let pods = |store: Arc<dyn Store>| async move {
        store
            .list("/registry/pods/default/")
            .await
            .expect("list")
            .0
            .len()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while pods(store.clone()).await < 2 {
        assert!(Instant::now() < deadline, "the ReplicaSet made no pods");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rs = delete(&api, Kind::ReplicaSet, "web", Some(Propagation::Foreground)).await;
    assert_eq!(finalizers(&rs), ["foregroundDeletion"]);
    wait_gone(&h, "/registry/replicasets/default/web").await;
    assert_eq!(pods(store.clone()).await, 0);

    create(
        &api,
        Kind::Deployment,
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app"},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": template}}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while pods(store.clone()).await < 1 {
        assert!(Instant::now() < deadline, "the Deployment made no pods");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    delete(&api, Kind::Deployment, "app", None).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (sets, _) = store.list("/registry/replicasets/").await.expect("list");
        if sets.is_empty() && pods(store.clone()).await == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "ReplicaSets or pods left behind");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.stop().await;
}
