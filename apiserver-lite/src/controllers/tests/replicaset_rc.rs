//! The ReplicaSet controller in its ReplicationController flavour (kube's replication manager) against a
//! real store: pods with the RC as controller, events of `replication-controller`, scaling through the
//! `scale` subresource, and the garbage collector removing the pods of a deleted RC.

use std::time::Duration;

use serde_json::{Value, json};

use super::replicaset::{Cluster, cluster, controller_uid};
use crate::handlers::{DeleteOpts, Query, Repr};
use crate::resources::{Kind, by_kind};

fn replication_controller(name: &str, replicas: i64) -> Value {
    // No selector: it defaults to the template's labels.
    json!({"apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": name},
        "spec": {"replicas": replicas,
                 "template": {"metadata": {"labels": {"app": name}},
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
async fn replication_controller_runs_scales_and_is_collected() {
    let c = cluster().await;
    let rc = c
        .create(
            Kind::ReplicationController,
            replication_controller("web", 3),
        )
        .await;
    assert_eq!(rc["spec"]["selector"], json!({"app": "web"}));
    let uid = rc["metadata"]["uid"].as_str().expect("uid").to_string();
    c.wait("3 pods", async |c| owned_pods(c, &uid).await.len() == 3)
        .await;
    for pod in owned_pods(&c, &uid).await {
        assert_eq!(pod["metadata"]["generateName"], "web-");
        assert_eq!(
            pod["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "ReplicationController", "name": "web",
                "uid": uid, "controller": true, "blockOwnerDeletion": true}])
        );
    }
    c.wait("3 SuccessfulCreate events", async |c| {
        c.reasons("SuccessfulCreate").await.len() == 3
    })
    .await;
    let events = c.harness.events("default").await;
    let created: Vec<&Value> = events
        .iter()
        .filter(|e| e["reason"] == "SuccessfulCreate")
        .collect();
    assert!(created.iter().all(|e| {
        e["source"]["component"] == "replication-controller"
            && e["involvedObject"]["kind"] == "ReplicationController"
            && e["involvedObject"]["apiVersion"] == "v1"
    }));
    assert_eq!(c.ready_all().await, 3);
    c.wait("status with 3 ready", async |c| {
        let rc = c.get(Kind::ReplicationController, "web").await.expect("rc");
        rc["status"]
            == json!({"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 3,
                       "availableReplicas": 3, "observedGeneration": 1})
    })
    .await;

    // Scale to 1 through the scale subresource, as `kubectl scale` does (merge patch).
    let (code, scale, _) = crate::scale::serve(
        &c.api,
        by_kind(Kind::ReplicationController),
        Some("default"),
        "web",
        &http::Method::PATCH,
        "application/merge-patch+json",
        &Query::default(),
        br#"{"spec":{"replicas":1}}"#,
        Repr::Object,
    )
    .await
    .expect("scale");
    assert_eq!(code, 200);
    assert_eq!(scale["spec"]["replicas"], 1);
    assert_eq!(scale["status"]["selector"], "app=web");
    c.wait("1 pod left", async |c| owned_pods(c, &uid).await.len() == 1)
        .await;
    c.wait("status follows the scale", async |c| {
        let rc = c.get(Kind::ReplicationController, "web").await.expect("rc");
        rc["metadata"]["generation"] == 2
            && rc["status"]["replicas"] == 1
            && rc["status"]["observedGeneration"] == 2
    })
    .await;
    c.wait("2 SuccessfulDelete events", async |c| {
        c.reasons("SuccessfulDelete").await.len() == 2
    })
    .await;

    // Deleting the RC without a policy (background): the garbage collector removes its pod.
    c.api
        .delete(
            by_kind(Kind::ReplicationController),
            Some("default"),
            "web",
            &DeleteOpts::default(),
            false,
        )
        .await
        .expect("delete");
    c.wait("pods collected", async |c| {
        c.list(Kind::Pod).await.iter().all(|p| {
            controller_uid(p) != Some(uid.as_str())
                || p.pointer("/metadata/deletionTimestamp").is_some()
        })
    })
    .await;
    // Nothing recreates pods for the deleted RC.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(owned_pods(&c, &uid).await.is_empty());
    c.harness.stop().await;
}

#[tokio::test]
async fn replication_controller_ignores_pods_of_other_selectors() {
    let c = cluster().await;
    c.create(
        Kind::Pod,
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "orphan", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .await;
    c.create(
        Kind::Pod,
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "stranger", "labels": {"app": "other"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .await;
    let rc = c
        .create(
            Kind::ReplicationController,
            replication_controller("web", 2),
        )
        .await;
    let uid = rc["metadata"]["uid"].as_str().expect("uid").to_string();
    c.wait("2 pods", async |c| owned_pods(c, &uid).await.len() == 2)
        .await;
    let orphan = c.get(Kind::Pod, "orphan").await.expect("orphan");
    assert_eq!(controller_uid(&orphan), Some(uid.as_str()), "adopted");
    let stranger = c.get(Kind::Pod, "stranger").await.expect("stranger");
    assert_eq!(controller_uid(&stranger), None, "not selected");
    assert_eq!(c.live_pods().await.len(), 3);
    c.harness.stop().await;
}
