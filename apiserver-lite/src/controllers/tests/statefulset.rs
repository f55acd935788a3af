//! The StatefulSet controller against a real store. There is no agent here: the tests play the kubelet by
//! writing pod status (`Running`, `Ready`, `Failed`) through `pods/status`, and by finishing the graceful
//! deletion of bound pods (a delete with grace period 0).

use std::time::Duration;

use serde_json::{Value, json};

use super::replicaset::{Cluster, cluster, controller_uid};
use crate::handlers::DeleteOpts;
use crate::resources::{Kind, by_kind};

fn statefulset(name: &str, replicas: i64, policy: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "serviceName": "nginx", "podManagementPolicy": policy,
                 "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
}

/// Names of the set's pods that are not being deleted, sorted.
async fn live(c: &Cluster, uid: &str) -> Vec<String> {
    let mut names: Vec<String> = c
        .live_pods()
        .await
        .into_iter()
        .filter(|p| controller_uid(p) == Some(uid))
        .map(|p| p["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    names.sort();
    names
}

fn uid(obj: &Value) -> String {
    obj["metadata"]["uid"].as_str().expect("uid").to_string()
}

async fn pod(c: &Cluster, name: &str) -> Option<Value> {
    c.get(Kind::Pod, name).await
}

fn terminating(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp").is_some()
}

/// The kubelet's part: mark every live pod Running and Ready.
async fn kubelet_ready(c: &Cluster) {
    c.ready_all().await;
}

/// The kubelet's part: a terminating pod's containers have stopped; remove it.
async fn kubelet_finish(c: &Cluster, name: &str) {
    let opts = DeleteOpts {
        grace: Some(0),
        ..DeleteOpts::default()
    };
    match c
        .api
        .delete(by_kind(Kind::Pod), Some("default"), name, &opts, false)
        .await
    {
        Ok(_) => {}
        Err(e) if e.code == 404 => {}
        Err(e) => panic!("delete {name}: {e}"),
    }
}

fn revision(pod: &Value) -> String {
    pod["metadata"]["labels"]["controller-revision-hash"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn ordered_ready_creates_each_pod_after_the_previous_is_ready() {
    let c = cluster().await;
    let set = c
        .create(Kind::StatefulSet, statefulset("web", 3, "OrderedReady"))
        .await;
    let id = uid(&set);
    c.wait("web-0", async |c| live(c, &id).await == ["web-0"])
        .await;
    // web-0 is not Ready: web-1 must not come.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(live(&c, &id).await, ["web-0"]);
    let web0 = pod(&c, "web-0").await.expect("web-0");
    assert_eq!(web0["spec"]["hostname"], "web-0");
    assert_eq!(web0["spec"]["subdomain"], "nginx");
    assert_eq!(web0["metadata"]["labels"]["app"], "web");
    assert_eq!(
        web0["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
        "web-0"
    );
    assert_eq!(
        web0["metadata"]["labels"]["apps.kubernetes.io/pod-index"],
        "0"
    );
    let owner = &web0["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["name"], &owner["controller"]),
        (&json!("StatefulSet"), &json!("web"), &json!(true))
    );
    kubelet_ready(&c).await;
    c.wait("web-1", async |c| live(c, &id).await == ["web-0", "web-1"])
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(live(&c, &id).await, ["web-0", "web-1"]);
    c.wait("all three Ready", async |c| {
        kubelet_ready(c).await;
        live(c, &id).await.len() == 3
            && c.get(Kind::StatefulSet, "web").await.expect("set")["status"]["readyReplicas"] == 3
    })
    .await;
    let status = c.get(Kind::StatefulSet, "web").await.expect("set")["status"].clone();
    let update = status["updateRevision"].as_str().expect("revision");
    assert!(update.starts_with("web-"), "{status}");
    assert_eq!(status["currentRevision"], update);
    assert_eq!(
        (
            &status["replicas"],
            &status["currentReplicas"],
            &status["updatedReplicas"]
        ),
        (&json!(3), &json!(3), &json!(3))
    );
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(revision(&web0), update);
    let created = c.reasons("SuccessfulCreate").await;
    assert!(
        created.contains(&"create Pod web-2 in StatefulSet web successful".to_string()),
        "{created:?}"
    );
    c.harness.stop().await;
}

#[tokio::test]
async fn parallel_creates_all_pods_at_once_from_the_ordinals_start() {
    let c = cluster().await;
    let mut body = statefulset("db", 3, "Parallel");
    body["spec"]["ordinals"] = json!({"start": 2});
    let set = c.create(Kind::StatefulSet, body).await;
    let id = uid(&set);
    c.wait("db-2, db-3, db-4 without readiness", async |c| {
        live(c, &id).await == ["db-2", "db-3", "db-4"]
    })
    .await;
    c.harness.stop().await;
}

#[tokio::test]
async fn scale_down_deletes_from_the_top_waiting_for_each_deletion() {
    let c = cluster().await;
    let mut body = statefulset("web", 3, "OrderedReady");
    // Bound pods are deleted gracefully: they stay terminating until the kubelet is done.
    body["spec"]["template"]["spec"]["nodeName"] = json!("n1");
    let set = c.create(Kind::StatefulSet, body).await;
    let id = uid(&set);
    c.wait("three pods Ready", async |c| {
        kubelet_ready(c).await;
        c.get(Kind::StatefulSet, "web").await.expect("set")["status"]["readyReplicas"] == 3
    })
    .await;
    c.patch(Kind::StatefulSet, "web", json!({"spec": {"replicas": 1}}))
        .await;
    c.wait("web-2 terminating", async |c| {
        pod(c, "web-2").await.is_some_and(|p| terminating(&p))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!terminating(&pod(&c, "web-1").await.expect("web-1")));
    kubelet_finish(&c, "web-2").await;
    c.wait("web-1 terminating", async |c| {
        pod(c, "web-1").await.is_some_and(|p| terminating(&p))
    })
    .await;
    kubelet_finish(&c, "web-1").await;
    c.wait("only web-0", async |c| live(c, &id).await == ["web-0"])
        .await;
    let deleted = c.reasons("SuccessfulDelete").await;
    assert!(
        deleted.contains(&"delete Pod web-2 in StatefulSet web successful".to_string()),
        "{deleted:?}"
    );
    c.harness.stop().await;
}

#[tokio::test]
async fn rolling_update_replaces_pods_from_the_top_down_to_the_partition() {
    let c = cluster().await;
    let set = c
        .create(Kind::StatefulSet, statefulset("web", 3, "OrderedReady"))
        .await;
    let id = uid(&set);
    c.wait("three pods Ready", async |c| {
        kubelet_ready(c).await;
        c.get(Kind::StatefulSet, "web").await.expect("set")["status"]["readyReplicas"] == 3
    })
    .await;
    let old = revision(&pod(&c, "web-0").await.expect("web-0"));
    c.patch(
        Kind::StatefulSet,
        "web",
        json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 1}},
            "template": {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}}}),
    )
    .await;
    // web-2 goes first; web-1 stays on the old revision until web-2 is back and Ready.
    c.wait("web-2 on the new revision", async |c| {
        pod(c, "web-2").await.is_some_and(|p| revision(&p) != old)
    })
    .await;
    assert_eq!(revision(&pod(&c, "web-1").await.expect("web-1")), old);
    c.wait("web-1 on the new revision", async |c| {
        kubelet_ready(c).await;
        pod(c, "web-1").await.is_some_and(|p| revision(&p) != old)
    })
    .await;
    c.wait("status: 2 updated, current revision unchanged", async |c| {
        kubelet_ready(c).await;
        let s = c.get(Kind::StatefulSet, "web").await.expect("set")["status"].clone();
        s["updatedReplicas"] == 2 && s["readyReplicas"] == 3 && s["currentReplicas"] == 1
    })
    .await;
    // Below the partition nothing changes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let web0 = pod(&c, "web-0").await.expect("web-0");
    assert_eq!(revision(&web0), old);
    assert_eq!(web0["spec"]["containers"][0]["image"], "busybox");
    let s = c.get(Kind::StatefulSet, "web").await.expect("set")["status"].clone();
    assert_eq!(s["currentRevision"], old.as_str());
    assert_ne!(s["updateRevision"], old.as_str());
    assert_eq!(live(&c, &id).await.len(), 3);
    // Partition 0 finishes the rollout: the current revision becomes the update revision.
    c.patch(
        Kind::StatefulSet,
        "web",
        json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}),
    )
    .await;
    c.wait("rollout complete", async |c| {
        kubelet_ready(c).await;
        let s = c.get(Kind::StatefulSet, "web").await.expect("set")["status"].clone();
        s["currentRevision"] == s["updateRevision"] && s["updatedReplicas"] == 3
    })
    .await;
    let web0 = pod(&c, "web-0").await.expect("web-0");
    assert_eq!(web0["spec"]["containers"][0]["image"], "busybox:2");
    c.harness.stop().await;
}

#[tokio::test]
async fn a_failed_pod_is_replaced_with_the_same_name() {
    let c = cluster().await;
    let set = c
        .create(Kind::StatefulSet, statefulset("web", 1, "OrderedReady"))
        .await;
    let id = uid(&set);
    c.wait("web-0", async |c| live(c, &id).await == ["web-0"])
        .await;
    let first = uid(&pod(&c, "web-0").await.expect("web-0"));
    c.api
        .patch(
            by_kind(Kind::Pod),
            Some("default"),
            "web-0",
            Some("status"),
            crate::patch::PatchType::Merge,
            json!({"status": {"phase": "Failed"}}),
            &[],
            &super::opts(),
            false,
        )
        .await
        .expect("fail web-0");
    c.wait("a new web-0", async |c| {
        pod(c, "web-0")
            .await
            .is_some_and(|p| uid(&p) != first && !terminating(&p))
    })
    .await;
    assert_eq!(live(&c, &id).await, ["web-0"]);
    c.harness.stop().await;
}

mod claims;
mod history;
