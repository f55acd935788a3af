//! The scheduler's volume binding against a real RedbStore: only the scheduler runs, the tests play the
//! user and the volume binder (no other controller touches the claims).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::controllers::tests::{Harness, condition, node, node_name, pod};
use crate::store::Store;
use crate::store::redb::RedbStore;
use crate::store::redb::tests::TempDir;

const CLAIM: &str = "/registry/persistentvolumeclaims/default/data";
const POD: &str = "/registry/pods/default/app";
const LOCAL_PATH: &str = "/registry/storageclasses/local-path";
/// kube's bind timeout: longer than any test.
const SLOW: Duration = Duration::from_secs(600);

/// Only the scheduler, with `bind_timeout`, started once `objects` (key, value) are stored (so its first
/// listing has them: a pod seen before its node would be reported unschedulable first).
async fn start(bind_timeout: Duration, objects: Vec<(&str, Value)>) -> Harness {
    let dir = TempDir::new();
    let store: Arc<dyn Store> =
        Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("open store"));
    for (key, value) in objects {
        let bytes = serde_json::to_vec(&value).expect("json");
        store.create(key, bytes).await.expect("create");
    }
    let (shutdown, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(super::run_with(store.clone(), bind_timeout, rx));
    Harness {
        store,
        shutdown,
        task,
        _dir: dir,
    }
}

fn class(name: &str, mode: &str, provisioner: &str) -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": name, "uid": uuid::Uuid::new_v4().to_string()},
        "provisioner": provisioner, "reclaimPolicy": "Delete", "volumeBindingMode": mode
    })
}

fn local_path() -> Value {
    class("local-path", "WaitForFirstConsumer", "skiff.io/local-path")
}

/// Ready nodes `node-a` (8 cpu) and `node-b` (2 cpu).
fn two_nodes() -> Vec<(&'static str, Value)> {
    vec![
        ("/registry/nodes/node-a", node("node-a", true, "8")),
        ("/registry/nodes/node-b", node("node-b", true, "2")),
    ]
}

fn claim(name: &str, class: Option<&str>) -> Value {
    let mut spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
        "volumeMode": "Filesystem"
    });
    if let Some(class) = class {
        spec["storageClassName"] = json!(class);
    }
    json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "default", "uid": uuid::Uuid::new_v4().to_string(),
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec,
        "status": {"phase": "Pending"}
    })
}

/// A volume bound to `default/<claim>`, pinned to `node` (no affinity with `None`).
fn volume(name: &str, claim: &str, node: Option<&str>) -> Value {
    let mut pv = json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "uid": uuid::Uuid::new_v4().to_string()},
        "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": format!("/var/lib/skiff/storage/{name}"), "type": "DirectoryOrCreate"},
            "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "default", "name": claim},
            "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "local-path"
        },
        "status": {"phase": "Bound"}
    });
    if let Some(node) = node {
        pv["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
        ]}]}});
    }
    pv
}

/// A pod `name` using the claim `claim` (and requesting `cpu`).
fn pod_with_claim(name: &str, claim: &str, cpu: Option<&str>) -> Value {
    let mut p = pod("default", name, cpu);
    p["spec"]["volumes"] = json!([{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]);
    p
}

/// Change the object at `key` with `f` (compare-and-swap, retried).
async fn edit(h: &Harness, key: &str, f: impl Fn(&mut Value)) {
    for _ in 0..20 {
        let kv = h.store.get(key).await.expect("get").expect("exists");
        let mut value: Value = serde_json::from_slice(&kv.value).expect("json");
        f(&mut value);
        let bytes = serde_json::to_vec(&value).expect("json");
        if h.store.update(key, bytes, kv.mod_revision).await.is_ok() {
            return;
        }
    }
    panic!("could not update {key}");
}

/// Play the binder: the claim names `volume`, is bind-completed and `Bound`.
async fn bind_claim(h: &Harness, key: &str, volume: &str) {
    edit(h, key, |c| {
        c["spec"]["volumeName"] = json!(volume);
        c["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] = json!("yes");
        c["status"]["phase"] = json!("Bound");
    })
    .await;
}

fn unschedulable_message(p: &Value) -> Option<String> {
    let c = condition(p, "PodScheduled")?;
    (c["status"] == "False").then(|| c["message"].as_str().unwrap_or_default().to_string())
}

async fn wait_message(h: &Harness, key: &str, want: &str) -> Value {
    h.wait_for(key, want, |p| {
        unschedulable_message(p).as_deref() == Some(want)
    })
    .await
}

fn selected_node(c: &Value) -> Option<&str> {
    c["metadata"]["annotations"]["volume.kubernetes.io/selected-node"].as_str()
}

/// The messages of the `FailedScheduling` events, once there are any (the event follows the pod's condition).
async fn failed_scheduling(h: &Harness) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let events = h.events("default").await;
        let messages: Vec<String> = events
            .iter()
            .filter(|e| e["reason"] == "FailedScheduling")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect();
        if !messages.is_empty() || Instant::now() > deadline {
            return messages;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_deleted_claim_keeps_the_pod_pending_with_kubes_message() {
    let h = start(SLOW, vec![("/registry/nodes/n1", node("n1", true, "2"))]).await;
    h.put(POD, pod_with_claim("app", "data", None)).await;
    let want = "0/1 nodes are available: persistentvolumeclaim \"data\" not found.";
    let pending = wait_message(&h, POD, want).await;
    assert_eq!(node_name(&pending), None);
    assert_eq!(
        condition(&pending, "PodScheduled").map(|c| c["reason"].clone()),
        Some(json!("Unschedulable"))
    );
    assert_eq!(failed_scheduling(&h).await, vec![want.to_string()]);

    // The claim appears, being deleted: the pod is looked at again (the claim change requeues it; how fast is
    // not asserted here, a loaded CI machine makes any deadline flaky).
    let mut deleting = claim("data", Some("local-path"));
    deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:01Z");
    deleting["metadata"]["finalizers"] = json!(["kubernetes.io/pvc-protection"]);
    h.put(CLAIM, deleting).await;
    let want = "0/1 nodes are available: persistentvolumeclaim \"data\" is being deleted.";
    let pending = wait_message(&h, POD, want).await;
    assert_eq!(node_name(&pending), None);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_immediate_claim_waits_for_the_binder() {
    let h = start(
        SLOW,
        vec![
            ("/registry/nodes/n1", node("n1", true, "2")),
            (
                "/registry/storageclasses/fast",
                class("fast", "Immediate", "example.com/fast"),
            ),
            (CLAIM, claim("data", Some("fast"))),
        ],
    )
    .await;
    h.put(POD, pod_with_claim("app", "data", None)).await;
    let want = "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.";
    wait_message(&h, POD, want).await;

    // Bound to a volume without node affinity: any node will do.
    h.put(
        "/registry/persistentvolumes/pv-data",
        volume("pv-data", "data", None),
    )
    .await;
    bind_claim(&h, CLAIM, "pv-data").await;
    let bound = h.wait_for(POD, "bound", |p| node_name(p).is_some()).await;
    assert_eq!(node_name(&bound), Some("n1"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_claims_volume_picks_the_node() {
    // node-a is the emptier node; the volume pins the pod to node-b anyway.
    let h = start(SLOW, two_nodes()).await;
    h.put(
        "/registry/persistentvolumes/pv-b",
        volume("pv-b", "data", Some("node-b")),
    )
    .await;
    let mut bound_claim = claim("data", Some("local-path"));
    bound_claim["spec"]["volumeName"] = json!("pv-b");
    bound_claim["metadata"]["annotations"] = json!({"pv.kubernetes.io/bind-completed": "yes"});
    bound_claim["status"]["phase"] = json!("Bound");
    h.put(CLAIM, bound_claim.clone()).await;
    h.put(POD, pod_with_claim("app", "data", Some("100m")))
        .await;
    let bound = h.wait_for(POD, "bound", |p| node_name(p).is_some()).await;
    assert_eq!(node_name(&bound), Some("node-b"));

    // A volume pinned to a node that is not there: every node conflicts.
    let key = "/registry/persistentvolumeclaims/default/elsewhere";
    h.put(
        "/registry/persistentvolumes/pv-c",
        volume("pv-c", "elsewhere", Some("node-c")),
    )
    .await;
    let mut other = bound_claim.clone();
    other["metadata"]["name"] = json!("elsewhere");
    other["spec"]["volumeName"] = json!("pv-c");
    h.put(key, other.clone()).await;
    h.put(
        "/registry/pods/default/far",
        pod_with_claim("far", "elsewhere", None),
    )
    .await;
    wait_message(
        &h,
        "/registry/pods/default/far",
        "0/2 nodes are available: 2 node(s) had volume node affinity conflict.",
    )
    .await;

    // A claim bound to a volume that does not exist.
    let mut lost = bound_claim;
    lost["metadata"]["name"] = json!("ghost");
    lost["spec"]["volumeName"] = json!("pv-gone");
    h.put("/registry/persistentvolumeclaims/default/ghost", lost)
        .await;
    h.put(
        "/registry/pods/default/haunted",
        pod_with_claim("haunted", "ghost", None),
    )
    .await;
    wait_message(
        &h,
        "/registry/pods/default/haunted",
        "0/2 nodes are available: 2 node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s).",
    )
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_first_consumer_selects_a_node_and_binds_after_the_claim() {
    // One node with 1 cpu: the waiting pod keeps its 600m there, so a second pod of 600m does not fit.
    let h = start(
        SLOW,
        vec![
            ("/registry/nodes/solo", node("solo", true, "1")),
            (LOCAL_PATH, local_path()),
            (CLAIM, claim("data", Some("local-path"))),
        ],
    )
    .await;
    h.put(POD, pod_with_claim("app", "data", Some("600m")))
        .await;
    let selected = h
        .wait_for(CLAIM, "selected-node", |c| selected_node(c).is_some())
        .await;
    assert_eq!(selected_node(&selected), Some("solo"));
    assert_eq!(
        selected["metadata"]["managedFields"][0]["manager"], "kube-scheduler",
        "written through the API as kube-scheduler"
    );

    h.put(
        "/registry/pods/default/other",
        pod("default", "other", Some("600m")),
    )
    .await;
    wait_message(
        &h,
        "/registry/pods/default/other",
        "0/1 nodes are available: 1 Insufficient cpu.",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = h.get(POD).await.expect("pod");
    assert_eq!(node_name(&waiting), None, "not bound before its claim");
    assert_eq!(unschedulable_message(&waiting), None);
    assert_eq!(
        failed_scheduling(&h).await,
        vec!["0/1 nodes are available: 1 Insufficient cpu.".to_string()],
        "no FailedScheduling for the waiting pod"
    );

    // Play the provisioner and binder: a volume on the selected node, the claim bound to it.
    let uid = selected["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();
    let name = format!("pvc-{uid}");
    h.put(
        &format!("/registry/persistentvolumes/{name}"),
        volume(&name, "data", Some("solo")),
    )
    .await;
    bind_claim(&h, CLAIM, &name).await;
    let bound = h.wait_for(POD, "bound", |p| node_name(p).is_some()).await;
    assert_eq!(node_name(&bound), Some("solo"));
    assert_eq!(
        condition(&bound, "PodScheduled").map(|c| c["status"].clone()),
        Some(json!("True"))
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_selected_for_another_node_keeps_the_pod_there() {
    let mut c = claim("data", Some("local-path"));
    c["metadata"]["annotations"] = json!({"volume.kubernetes.io/selected-node": "node-b"});
    let mut objects = two_nodes();
    // node-b is cordoned: the claim's node is the only one the pod may wait for.
    objects[1].1["spec"]["unschedulable"] = json!(true);
    objects.extend([(LOCAL_PATH, local_path()), (CLAIM, c)]);
    let h = start(SLOW, objects).await;
    h.put(POD, pod_with_claim("app", "data", None)).await;
    wait_message(
        &h,
        POD,
        "0/2 nodes are available: 1 node(s) didn't find available persistent volumes to bind, 1 node(s) were unschedulable.",
    )
    .await;
    edit(&h, "/registry/nodes/node-b", |n| {
        n["spec"]["unschedulable"] = json!(false)
    })
    .await;
    h.put(
        "/registry/persistentvolumes/pv-b",
        volume("pv-b", "data", Some("node-b")),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(node_name(&h.get(POD).await.expect("pod")), None);
    bind_claim(&h, CLAIM, "pv-b").await;
    let bound = h.wait_for(POD, "bound", |p| node_name(p).is_some()).await;
    assert_eq!(node_name(&bound), Some("node-b"));
    h.stop().await;
}

/// A WaitForFirstConsumer claim of the local-path class, and a pod using it, on one node `n1`.
async fn waiting_pod(bind_timeout: Duration) -> Harness {
    let h = start(
        bind_timeout,
        vec![
            ("/registry/nodes/n1", node("n1", true, "2")),
            (LOCAL_PATH, local_path()),
            (CLAIM, claim("data", Some("local-path"))),
        ],
    )
    .await;
    h.put(POD, pod_with_claim("app", "data", None)).await;
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_never_bound_times_out() {
    let h = waiting_pod(Duration::from_millis(300)).await;
    let timed_out =
        "running PreBind plugin \"VolumeBinding\": binding volumes: context deadline exceeded";
    let pending = wait_message(&h, POD, timed_out).await;
    assert_eq!(
        condition(&pending, "PodScheduled").map(|c| c["reason"].clone()),
        Some(json!("SchedulerError"))
    );
    assert_eq!(node_name(&pending), None);
    assert_eq!(failed_scheduling(&h).await, vec![timed_out.to_string()]);
    let claim = h.get(CLAIM).await.expect("claim");
    assert_eq!(selected_node(&claim), Some("n1"), "the selection stays");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioner_dropping_the_selected_node_fails_the_placement() {
    let h = waiting_pod(Duration::from_secs(600)).await;
    h.wait_for(CLAIM, "selected-node", |c| selected_node(c) == Some("n1"))
        .await;
    // The provisioner gives up by taking the selected node off the claim.
    edit(&h, CLAIM, |c| {
        if let Some(a) = c["metadata"]["annotations"].as_object_mut() {
            a.remove("volume.kubernetes.io/selected-node");
        }
    })
    .await;
    let failed = "running PreBind plugin \"VolumeBinding\": binding volumes: provisioning failed for PVC \"data\"";
    let pending = wait_message(&h, POD, failed).await;
    assert_eq!(node_name(&pending), None);
    h.stop().await;
}
