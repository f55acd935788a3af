//! The Deployment controller (with the ReplicaSet controller under it) against a real store. The tests
//! play the kubelet: they mark pods Ready through `pods/status` and remove terminating pods.

use std::time::Duration;

use serde_json::{Value, json};

use super::replicaset::{Cluster, cluster, controller_uid, is_ready};
use crate::resources::Kind;

const REVISION: &str = "deployment.kubernetes.io/revision";

fn deployment(replicas: i64, image: &str, strategy: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "strategy": strategy,
                 "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": image}]}}}})
}

fn rolling(surge: Value, unavailable: Value) -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn annotation<'a>(v: &'a Value, key: &str) -> &'a str {
    v.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn condition<'a>(d: &'a Value, type_: &str) -> Option<&'a Value> {
    d.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// The Deployment's ReplicaSets, oldest first.
async fn sets(c: &Cluster) -> Vec<Value> {
    let mut sets = c.list(Kind::ReplicaSet).await;
    sets.sort_by_key(revision);
    sets
}

fn revision(rs: &Value) -> i64 {
    annotation(rs, REVISION).parse().unwrap_or(0)
}

fn image_of(rs: &Value) -> &str {
    rs.pointer("/spec/template/spec/containers/0/image")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Done as `kubectl rollout status` sees it.
fn rolled_out(d: &Value) -> bool {
    let want = int(d, "/spec/replicas");
    int(d, "/metadata/generation") <= int(d, "/status/observedGeneration")
        && int(d, "/status/updatedReplicas") == want
        && int(d, "/status/replicas") == want
        && int(d, "/status/availableReplicas") == want
}

/// Play the kubelet until the rollout is done, checking on every look that the ReplicaSets never ask for
/// more than `max_total` pods and that at least `min_available` stay available.
async fn roll(c: &Cluster, max_total: i64, min_available: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let all = sets(c).await;
        let total: i64 = all.iter().map(|rs| int(rs, "/spec/replicas")).sum();
        if total > max_total {
            let brief: Vec<String> = all
                .iter()
                .map(|rs| {
                    format!(
                        "{} rev {} gen {} spec {} status {}",
                        rs["metadata"]["name"],
                        revision(rs),
                        rs["metadata"]["generation"],
                        rs["spec"]["replicas"],
                        rs["status"]
                    )
                })
                .collect();
            panic!(
                "surge exceeded: {total} > {max_total}: {brief:#?}\n{:#?}",
                c.reasons("ScalingReplicaSet").await
            );
        }
        let live = c.live_pods().await;
        let ready = live.iter().filter(|p| is_ready(p)).count() as i64;
        if ready < min_available {
            let pods: Vec<String> = live
                .iter()
                .map(|p| format!("{} ready {}", p["metadata"]["name"], is_ready(p)))
                .collect();
            let brief: Vec<String> = all
                .iter()
                .map(|rs| {
                    format!(
                        "{} rev {} spec {} status {}",
                        rs["metadata"]["name"],
                        revision(rs),
                        rs["spec"]["replicas"],
                        rs["status"]
                    )
                })
                .collect();
            panic!(
                "too few ready pods: {ready} < {min_available}\n{pods:#?}\n{brief:#?}\n{:#?}",
                c.reasons("ScalingReplicaSet").await
            );
        }
        let d = c.get(Kind::Deployment, "web").await.expect("deployment");
        if rolled_out(&d) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rollout did not finish: {d}"
        );
        c.ready_all().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn creates_the_hashed_replica_set_and_reports_progress() {
    let c = cluster().await;
    c.create(
        Kind::Deployment,
        deployment(3, "nginx:1", rolling(json!(1), json!(0))),
    )
    .await;
    c.wait("a replica set", async |c| !sets(c).await.is_empty())
        .await;
    let rs = sets(&c).await.remove(0);
    let name = rs["metadata"]["name"].as_str().expect("name").to_string();
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .expect("hash label")
        .to_string();
    assert_eq!(name, format!("web-{hash}"));
    assert!(
        hash.bytes()
            .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b))
    );
    assert_eq!(
        rs["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        hash.as_str()
    );
    assert_eq!(
        rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"],
        hash.as_str()
    );
    assert_eq!(annotation(&rs, REVISION), "1");
    assert_eq!(
        annotation(&rs, "deployment.kubernetes.io/desired-replicas"),
        "3"
    );
    assert_eq!(
        annotation(&rs, "deployment.kubernetes.io/max-replicas"),
        "4"
    );
    assert_eq!(rs["spec"]["replicas"], 3);
    assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    c.wait("3 pods with the hash", async |c| {
        let pods = c.live_pods().await;
        pods.len() == 3
            && pods
                .iter()
                .all(|p| p["metadata"]["labels"]["pod-template-hash"] == hash.as_str())
    })
    .await;
    let d = c.get(Kind::Deployment, "web").await.expect("deployment");
    assert_eq!(annotation(&d, REVISION), "1");
    let progressing = condition(&d, "Progressing").expect("Progressing");
    assert_eq!(progressing["reason"], "NewReplicaSetCreated");
    assert_eq!(
        progressing["message"],
        format!("Created new replica set \"{name}\"")
    );
    let available = condition(&d, "Available").expect("Available");
    assert_eq!(available["status"], "False");
    assert_eq!(available["reason"], "MinimumReplicasUnavailable");
    assert_eq!(
        available["message"],
        "Deployment does not have minimum availability."
    );
    roll(&c, 4, 0).await;
    let d = c.get(Kind::Deployment, "web").await.expect("deployment");
    let progressing = condition(&d, "Progressing").expect("Progressing");
    assert_eq!(progressing["reason"], "NewReplicaSetAvailable");
    assert_eq!(
        progressing["message"],
        format!("ReplicaSet \"{name}\" has successfully progressed.")
    );
    assert_eq!(
        condition(&d, "Available").expect("Available")["status"],
        "True"
    );
    assert_eq!(int(&d, "/status/readyReplicas"), 3);
    assert!(d["status"].get("unavailableReplicas").is_none());
    let scaled = c.reasons("ScalingReplicaSet").await;
    assert_eq!(
        scaled,
        [format!("Scaled up replica set {name} from 0 to 3")]
    );
    // Settled: nothing is written any more.
    let rv = d["metadata"]["resourceVersion"].clone();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let d = c.get(Kind::Deployment, "web").await.expect("deployment");
    assert_eq!(
        d["metadata"]["resourceVersion"], rv,
        "status keeps changing"
    );
    c.harness.stop().await;
}

#[tokio::test]
async fn rolling_update_respects_surge_and_unavailable_then_rolls_back() {
    let c = cluster().await;
    c.create(
        Kind::Deployment,
        deployment(4, "nginx:1", rolling(json!(1), json!(1))),
    )
    .await;
    roll(&c, 5, 0).await;
    let first = sets(&c).await.remove(0);
    let first_name = first["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let set_image = async |image: &str| {
        c.patch(
            Kind::Deployment,
            "web",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}),
        )
        .await;
    };
    set_image("nginx:2").await;
    c.wait("a second replica set", async |c| sets(c).await.len() == 2)
        .await;
    // First step: the new set gets the surge, the old one loses what may be unavailable.
    let all = sets(&c).await;
    assert!(int(&all[1], "/spec/replicas") <= 2, "{all:?}");
    roll(&c, 5, 3).await;
    let all = sets(&c).await;
    assert_eq!(all.len(), 2);
    assert_eq!(
        (
            int(&all[0], "/spec/replicas"),
            int(&all[1], "/spec/replicas")
        ),
        (0, 4)
    );
    assert_eq!(image_of(&all[1]), "nginx:2");
    assert_eq!(revision(&all[1]), 2);
    let d = c.get(Kind::Deployment, "web").await.expect("deployment");
    assert_eq!(annotation(&d, REVISION), "2");
    assert!(
        c.live_pods()
            .await
            .iter()
            .all(|p| controller_uid(p) == all[1]["metadata"]["uid"].as_str())
    );
    let scaled = c.reasons("ScalingReplicaSet").await;
    assert!(
        scaled
            .iter()
            .any(|m| m.starts_with(&format!("Scaled down replica set {first_name} from 4 to "))),
        "{scaled:?}"
    );
    // Rollback: the first ReplicaSet comes back as revision 3; no third set.
    set_image("nginx:1").await;
    roll(&c, 5, 3).await;
    let all = sets(&c).await;
    assert_eq!(all.len(), 2, "{all:?}");
    let back = all
        .iter()
        .find(|rs| rs["metadata"]["name"] == first_name.as_str())
        .expect("first set");
    assert_eq!(annotation(back, REVISION), "3");
    assert_eq!(
        annotation(back, "deployment.kubernetes.io/revision-history"),
        "1"
    );
    assert_eq!(int(back, "/spec/replicas"), 4);
    let d = c.get(Kind::Deployment, "web").await.expect("deployment");
    assert_eq!(annotation(&d, REVISION), "3");
    c.harness.stop().await;
}

#[tokio::test]
async fn recreate_waits_for_old_pods_to_be_gone() {
    let c = cluster().await;
    c.create(
        Kind::Deployment,
        deployment(2, "nginx:1", json!({"type": "Recreate"})),
    )
    .await;
    roll(&c, 2, 0).await;
    // Bound pods are deleted gracefully: they stay until their kubelet (this test) removes them.
    for pod in c.live_pods().await {
        let name = pod["metadata"]["name"].as_str().expect("name");
        c.api
            .bind("default", name, &json!({"target": {"name": "n1"}}), false)
            .await
            .expect("bind");
    }
    c.patch(
        Kind::Deployment,
        "web",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}}),
    )
    .await;
    c.wait("old pods terminating", async |c| {
        c.live_pods().await.is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sets(&c).await.len(), 1, "no new set while old pods run");
    assert_eq!(int(&sets(&c).await[0], "/spec/replicas"), 0);
    for pod in c.list(Kind::Pod).await {
        let name = pod["metadata"]["name"].as_str().expect("name");
        c.api
            .delete(
                crate::resources::by_kind(Kind::Pod),
                Some("default"),
                name,
                &crate::handlers::DeleteOpts {
                    grace: Some(0),
                    ..Default::default()
                },
                false,
            )
            .await
            .expect("kubelet deletes");
    }
    c.wait("the new set at full size", async |c| {
        let all = sets(c).await;
        all.len() == 2 && int(&all[1], "/spec/replicas") == 2
    })
    .await;
    roll(&c, 2, 0).await;
    c.harness.stop().await;
}

#[tokio::test]
async fn old_sets_beyond_the_history_limit_are_deleted() {
    let c = cluster().await;
    let mut d = deployment(1, "nginx:1", rolling(json!(1), json!(0)));
    d["spec"]["revisionHistoryLimit"] = json!(1);
    c.create(Kind::Deployment, d).await;
    roll(&c, 2, 0).await;
    for image in ["nginx:2", "nginx:3"] {
        c.patch(
            Kind::Deployment,
            "web",
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}),
        )
        .await;
        c.wait("observed", async |c| {
            let d = c.get(Kind::Deployment, "web").await.expect("d");
            int(&d, "/status/observedGeneration") >= int(&d, "/metadata/generation")
        })
        .await;
        roll(&c, 2, 0).await;
    }
    c.wait("history trimmed to one old set", async |c| {
        sets(c).await.len() == 2
    })
    .await;
    let images: Vec<String> = sets(&c)
        .await
        .iter()
        .map(|rs| image_of(rs).to_string())
        .collect();
    assert_eq!(images, ["nginx:2", "nginx:3"]);
    c.harness.stop().await;
}

#[tokio::test]
async fn scaling_and_pausing_and_progress_deadline() {
    let c = cluster().await;
    let mut d = deployment(2, "nginx:1", rolling(json!(1), json!(0)));
    d["spec"]["progressDeadlineSeconds"] = json!(1);
    c.create(Kind::Deployment, d).await;
    // Nobody makes the pods ready: the deadline passes.
    c.wait("ProgressDeadlineExceeded", async |c| {
        let d = c.get(Kind::Deployment, "web").await.expect("d");
        condition(&d, "Progressing")
            .is_some_and(|p| p["status"] == "False" && p["reason"] == "ProgressDeadlineExceeded")
    })
    .await;
    let d = c.get(Kind::Deployment, "web").await.expect("d");
    let name = sets(&c).await[0]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    assert_eq!(
        condition(&d, "Progressing").expect("cond")["message"],
        format!("ReplicaSet \"{name}\" has timed out progressing.")
    );
    roll(&c, 3, 0).await;
    // Paused: a template change makes no new set, but scaling still applies.
    c.patch(Kind::Deployment, "web", json!({"spec": {"paused": true}}))
        .await;
    c.wait("paused condition", async |c| {
        let d = c.get(Kind::Deployment, "web").await.expect("d");
        condition(&d, "Progressing").is_some_and(|p| p["reason"] == "DeploymentPaused")
    })
    .await;
    c.patch(
        Kind::Deployment,
        "web",
        json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}}),
    )
    .await;
    c.wait("scaled to 3 while paused", async |c| {
        c.live_pods().await.len() == 3
    })
    .await;
    assert_eq!(sets(&c).await.len(), 1);
    c.ready_all().await;
    c.wait("3 available", async |c| {
        int(&sets(c).await[0], "/status/availableReplicas") == 3
    })
    .await;
    c.wait("scaled event", async |c| {
        c.reasons("ScalingReplicaSet")
            .await
            .contains(&format!("Scaled up replica set {name} from 2 to 3"))
    })
    .await;
    c.patch(Kind::Deployment, "web", json!({"spec": {"paused": false}}))
        .await;
    c.wait("rollout resumes", async |c| sets(c).await.len() == 2)
        .await;
    roll(&c, 4, 3).await;
    c.harness.stop().await;
}
