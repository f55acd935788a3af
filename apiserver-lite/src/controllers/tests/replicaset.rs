//! The ReplicaSet controller against a real store. There is no agent here: the tests play the kubelet by
//! writing pod status (`Ready`) through `pods/status`, and delete pods as the kubelet does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;
use crate::controllers::bootstrap;
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::store::Store;
use crate::store::redb::RedbStore;
use crate::store::redb::tests::TempDir;

pub(super) struct Cluster {
    pub(super) harness: Harness,
    pub(super) api: Api,
}

/// The controllers without election, on a store with the system namespaces.
pub(super) async fn cluster() -> Cluster {
    let dir = TempDir::new();
    let store: Arc<dyn Store> =
        Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("open store"));
    bootstrap(store.as_ref()).await.expect("bootstrap");
    let api = Api::new(store.clone());
    let harness = Harness::start_unelected(store, dir, config(), Duration::from_secs(40));
    Cluster { harness, api }
}

impl Cluster {
    pub(super) async fn create(&self, kind: Kind, body: Value) -> Value {
        self.api
            .create(by_kind(kind), Some("default"), body, &[], &opts())
            .await
            .expect("create")
            .0
    }

    pub(super) async fn get(&self, kind: Kind, name: &str) -> Option<Value> {
        match self.api.get(by_kind(kind), Some("default"), name).await {
            Ok(v) => Some(v),
            Err(e) if e.code == 404 => None,
            Err(e) => panic!("get {name}: {e}"),
        }
    }

    pub(super) async fn list(&self, kind: Kind) -> Vec<Value> {
        let def = by_kind(kind);
        self.api
            .list(
                def,
                Some("default"),
                &Default::default(),
                &Default::default(),
            )
            .await
            .expect("list")
            .0
    }

    /// Merge-patch the object (a user's edit).
    pub(super) async fn patch(&self, kind: Kind, name: &str, patch: Value) {
        self.api
            .patch(
                by_kind(kind),
                Some("default"),
                name,
                None,
                crate::patch::PatchType::Merge,
                patch,
                &[],
                &opts(),
                false,
            )
            .await
            .expect("patch");
    }

    /// Pods not being deleted.
    pub(super) async fn live_pods(&self) -> Vec<Value> {
        self.list(Kind::Pod)
            .await
            .into_iter()
            .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
            .collect()
    }

    /// The kubelet's part: the pod runs and is Ready (since `since`, RFC 3339).
    pub(super) async fn mark_ready(&self, name: &str, since: &str) {
        let status = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": since}]}});
        match self
            .api
            .patch(
                by_kind(Kind::Pod),
                Some("default"),
                name,
                Some("status"),
                crate::patch::PatchType::Merge,
                status,
                &[],
                &opts(),
                false,
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => panic!("mark {name} ready: {e}"),
        }
    }

    /// Mark every live pod that is not Ready yet Ready; how many were marked.
    pub(super) async fn ready_all(&self) -> usize {
        let mut n = 0;
        for pod in self.live_pods().await {
            if !is_ready(&pod) {
                let name = pod["metadata"]["name"].as_str().expect("name").to_string();
                self.mark_ready(&name, &crate::controllers::object::now_rfc3339())
                    .await;
                n += 1;
            }
        }
        n
    }

    pub(super) async fn wait(&self, what: &str, mut check: impl AsyncFnMut(&Cluster) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check(self).await {
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(super) async fn reasons(&self, reason: &str) -> Vec<String> {
        self.harness
            .events("default")
            .await
            .into_iter()
            .filter(|e| e["reason"] == reason)
            .map(|e| e["message"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

pub(super) fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

pub(super) fn controller_uid(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)?["uid"]
        .as_str()
}

fn replica_set(name: &str, replicas: i64, min_ready: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                 "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}, "annotations": {"note": "x"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
}

async fn owned_pods(c: &Cluster, uid: &str) -> Vec<Value> {
    c.live_pods()
        .await
        .into_iter()
        .filter(|p| controller_uid(p) == Some(uid))
        .collect()
}

#[tokio::test]
async fn creates_pods_with_owner_and_status_follows_readiness() {
    let c = cluster().await;
    let rs = c.create(Kind::ReplicaSet, replica_set("web", 3, 0)).await;
    let uid = rs["metadata"]["uid"].as_str().expect("uid").to_string();
    c.wait("3 pods", async |c| owned_pods(c, &uid).await.len() == 3)
        .await;
    for pod in owned_pods(&c, &uid).await {
        let name = pod["metadata"]["name"].as_str().expect("name");
        assert!(
            name.starts_with("web-") && name.len() == "web-".len() + 5,
            "{name}"
        );
        assert_eq!(pod["metadata"]["generateName"], "web-");
        assert_eq!(pod["metadata"]["labels"]["app"], "web");
        assert_eq!(pod["metadata"]["annotations"]["note"], "x");
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ReplicaSet");
        assert_eq!(owner["apiVersion"], "apps/v1");
        assert_eq!(owner["name"], "web");
        assert_eq!(owner["blockOwnerDeletion"], true);
    }
    c.wait("3 SuccessfulCreate events", async |c| {
        c.reasons("SuccessfulCreate").await.len() == 3
    })
    .await;
    assert!(
        c.reasons("SuccessfulCreate")
            .await
            .iter()
            .all(|m| m.starts_with("Created pod: web-"))
    );
    // Two pods become Ready: the status follows within moments.
    let pods = owned_pods(&c, &uid).await;
    for pod in &pods[..2] {
        let name = pod["metadata"]["name"].as_str().expect("name");
        c.mark_ready(name, &crate::controllers::object::now_rfc3339())
            .await;
    }
    c.wait("status with 2 ready", async |c| {
        let rs = c.get(Kind::ReplicaSet, "web").await.expect("rs");
        rs["status"]
            == json!({"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 2,
                       "availableReplicas": 2, "observedGeneration": 1})
    })
    .await;
    // Nothing more is created: the controller does not run ahead of its own writes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(c.live_pods().await.len(), 3);
    c.harness.stop().await;
}

#[tokio::test]
async fn scale_down_deletes_the_least_useful_pods_first() {
    let c = cluster().await;
    let rs = c.create(Kind::ReplicaSet, replica_set("web", 3, 0)).await;
    let uid = rs["metadata"]["uid"].as_str().expect("uid").to_string();
    c.wait("3 pods", async |c| owned_pods(c, &uid).await.len() == 3)
        .await;
    let names: Vec<String> = owned_pods(&c, &uid)
        .await
        .iter()
        .map(|p| p["metadata"]["name"].as_str().expect("name").to_string())
        .collect();
    // One pod ready for long, one ready a moment ago, one not ready.
    c.mark_ready(&names[0], "2026-01-01T00:00:00Z").await;
    c.mark_ready(&names[1], &crate::controllers::object::now_rfc3339())
        .await;
    c.wait("2 ready", async |c| {
        c.get(Kind::ReplicaSet, "web").await.expect("rs")["status"]["readyReplicas"] == 2
    })
    .await;
    c.patch(Kind::ReplicaSet, "web", json!({"spec": {"replicas": 1}}))
        .await;
    c.wait("1 pod left", async |c| owned_pods(c, &uid).await.len() == 1)
        .await;
    let left = owned_pods(&c, &uid).await;
    assert_eq!(left[0]["metadata"]["name"], names[0].as_str());
    c.wait("2 SuccessfulDelete events", async |c| {
        c.reasons("SuccessfulDelete").await.len() == 2
    })
    .await;
    let mut deleted = c.reasons("SuccessfulDelete").await;
    deleted.sort();
    let mut expected = vec![
        format!("Deleted pod: {}", names[1]),
        format!("Deleted pod: {}", names[2]),
    ];
    expected.sort();
    assert_eq!(deleted, expected);
    c.wait("status follows", async |c| {
        let rs = c.get(Kind::ReplicaSet, "web").await.expect("rs");
        rs["status"]["replicas"] == 1 && rs["status"]["observedGeneration"] == 2
    })
    .await;
    c.harness.stop().await;
}

#[tokio::test]
async fn bound_pods_are_deleted_gracefully() {
    let c = cluster().await;
    let rs = c.create(Kind::ReplicaSet, replica_set("web", 1, 0)).await;
    let uid = rs["metadata"]["uid"].as_str().expect("uid").to_string();
    c.wait("a pod", async |c| owned_pods(c, &uid).await.len() == 1)
        .await;
    let pod = owned_pods(&c, &uid).await.remove(0);
    let name = pod["metadata"]["name"].as_str().expect("name").to_string();
    c.api
        .bind("default", &name, &json!({"target": {"name": "n1"}}), false)
        .await
        .expect("bind");
    c.patch(Kind::ReplicaSet, "web", json!({"spec": {"replicas": 0}}))
        .await;
    c.wait("the pod is terminating", async |c| {
        c.get(Kind::Pod, &name)
            .await
            .is_some_and(|p| p.pointer("/metadata/deletionTimestamp").is_some())
    })
    .await;
    let pod = c.get(Kind::Pod, &name).await.expect("still there");
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 30);
    c.wait("status counts no terminating pod", async |c| {
        c.get(Kind::ReplicaSet, "web").await.expect("rs")["status"]["replicas"] == 0
    })
    .await;
    c.harness.stop().await;
}

#[tokio::test]
async fn adopts_orphans_and_releases_pods_that_stop_matching() {
    let c = cluster().await;
    c.create(
        Kind::Pod,
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "orphan", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .await;
    let rs = c.create(Kind::ReplicaSet, replica_set("web", 2, 0)).await;
    let uid = rs["metadata"]["uid"].as_str().expect("uid").to_string();
    c.wait("2 pods", async |c| owned_pods(c, &uid).await.len() == 2)
        .await;
    let orphan = c.get(Kind::Pod, "orphan").await.expect("orphan");
    assert_eq!(controller_uid(&orphan), Some(uid.as_str()), "adopted");
    assert_eq!(c.live_pods().await.len(), 2, "only one pod created");
    // The adopted pod leaves the selector: released, and replaced.
    c.patch(
        Kind::Pod,
        "orphan",
        json!({"metadata": {"labels": {"app": "other"}}}),
    )
    .await;
    c.wait("released and replaced", async |c| {
        let released = c
            .get(Kind::Pod, "orphan")
            .await
            .is_some_and(|p| controller_uid(&p).is_none());
        released && owned_pods(c, &uid).await.len() == 2
    })
    .await;
    assert_eq!(c.live_pods().await.len(), 3);
    c.harness.stop().await;
}

#[tokio::test]
async fn available_waits_for_min_ready_seconds() {
    let c = cluster().await;
    let rs = c.create(Kind::ReplicaSet, replica_set("web", 1, 1)).await;
    let uid = rs["metadata"]["uid"].as_str().expect("uid").to_string();
    c.wait("a pod", async |c| owned_pods(c, &uid).await.len() == 1)
        .await;
    let pod = owned_pods(&c, &uid).await.remove(0);
    let name = pod["metadata"]["name"].as_str().expect("name").to_string();
    c.mark_ready(&name, &crate::controllers::object::now_rfc3339())
        .await;
    c.wait("ready", async |c| {
        c.get(Kind::ReplicaSet, "web").await.expect("rs")["status"]["readyReplicas"] == 1
    })
    .await;
    let rs = c.get(Kind::ReplicaSet, "web").await.expect("rs");
    assert!(rs["status"].get("availableReplicas").is_none(), "{rs}");
    // Without any further change, the controller looks again once minReadySeconds have passed.
    c.wait("available", async |c| {
        c.get(Kind::ReplicaSet, "web").await.expect("rs")["status"]["availableReplicas"] == 1
    })
    .await;
    c.harness.stop().await;
}

#[tokio::test]
async fn failed_creates_are_reported_and_stop_the_batch() {
    let c = cluster().await;
    let mut body = replica_set("web", 3, 0);
    // Admission refuses pods of a service account that does not exist.
    body["spec"]["template"]["spec"]["serviceAccountName"] = json!("missing");
    c.create(Kind::ReplicaSet, body).await;
    c.wait("ReplicaFailure condition", async |c| {
        let rs = c.get(Kind::ReplicaSet, "web").await.expect("rs");
        rs.pointer("/status/conditions/0/type") == Some(&json!("ReplicaFailure"))
    })
    .await;
    let rs = c.get(Kind::ReplicaSet, "web").await.expect("rs");
    let cond = &rs["status"]["conditions"][0];
    assert_eq!(cond["status"], "True");
    assert_eq!(cond["reason"], "FailedCreate");
    let failed = c.reasons("FailedCreate").await;
    assert!(!failed.is_empty());
    assert!(
        failed[0].starts_with("Error creating: ") && failed[0].contains("missing"),
        "{failed:?}"
    );
    // Slow start: one failed attempt per sync, not three.
    assert!(failed.len() <= 2, "{failed:?}");
    assert!(c.live_pods().await.is_empty());
    c.harness.stop().await;
}
