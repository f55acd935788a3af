//! `volumeClaimTemplates`: the StatefulSet controller makes each pod's claims before the pod, reuses
//! claims that exist, waits for one being deleted, and owns them as the retention policy says (the
//! garbage collector then deletes them with their owner).

use serde_json::{Value, json};

use super::super::replicaset::{Cluster, cluster};
use super::{kubelet_finish, kubelet_ready, live, pod, statefulset, uid};
use crate::handlers::DeleteOpts;
use crate::resources::{Kind, by_kind};

/// `web` with the claim template `data` mounted by its container, and a retention policy.
fn with_claims(replicas: i64, when_deleted: &str, when_scaled: &str) -> Value {
    let mut body = statefulset("web", replicas, "OrderedReady");
    body["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "data", "mountPath": "/data"}]);
    body["spec"]["volumeClaimTemplates"] = json!([{
        "metadata": {"name": "data", "labels": {"tier": "db"}, "annotations": {"backup": "daily"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]);
    body["spec"]["persistentVolumeClaimRetentionPolicy"] =
        json!({"whenDeleted": when_deleted, "whenScaled": when_scaled});
    body
}

async fn claim(c: &Cluster, name: &str) -> Option<Value> {
    c.get(Kind::PersistentVolumeClaim, name).await
}

fn owners(obj: &Value) -> Vec<(String, String, bool, bool)> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .map(|r| {
                    (
                        r["kind"].as_str().unwrap_or("").to_string(),
                        r["name"].as_str().unwrap_or("").to_string(),
                        r["controller"] == true,
                        r["blockOwnerDeletion"] == true,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn owner(kind: &str, name: &str) -> (String, String, bool, bool) {
    (kind.to_string(), name.to_string(), true, true)
}

fn gone_or_terminating(obj: Option<Value>) -> bool {
    obj.is_none_or(|o| o.pointer("/metadata/deletionTimestamp").is_some())
}

#[tokio::test]
async fn claims_are_made_before_their_pods() {
    let c = cluster().await;
    let set = c
        .create(Kind::StatefulSet, with_claims(2, "Retain", "Retain"))
        .await;
    let id = uid(&set);
    c.wait("web-0", async |c| live(c, &id).await == ["web-0"])
        .await;
    let data0 = claim(&c, "data-web-0").await.expect("data-web-0 exists");
    let web0 = pod(&c, "web-0").await.expect("web-0");
    // Made first: created at an earlier store revision.
    let created = async |key: &str| {
        let kv = c
            .harness
            .store
            .get(key)
            .await
            .expect("get")
            .expect("stored");
        kv.create_revision
    };
    assert!(
        created("/registry/persistentvolumeclaims/default/data-web-0").await
            < created("/registry/pods/default/web-0").await
    );
    assert_eq!(
        data0["metadata"]["labels"],
        json!({"tier": "db", "app": "web"})
    );
    assert_eq!(data0["metadata"]["annotations"]["backup"], "daily");
    assert_eq!(data0["spec"]["accessModes"], json!(["ReadWriteOnce"]));
    assert_eq!(data0["spec"]["resources"]["requests"]["storage"], "1Gi");
    assert_eq!(data0["spec"]["volumeMode"], "Filesystem");
    // Retain: nobody owns the claim.
    assert!(owners(&data0).is_empty(), "{data0}");
    assert_eq!(
        web0["spec"]["volumes"][0],
        json!({"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}})
    );
    kubelet_ready(&c).await;
    c.wait("web-1 with data-web-1", async |c| {
        live(c, &id).await == ["web-0", "web-1"] && claim(c, "data-web-1").await.is_some()
    })
    .await;
    let wanted = [
        "create Claim data-web-0 Pod web-0 in StatefulSet web success",
        "create Claim data-web-1 Pod web-1 in StatefulSet web success",
        "create Pod web-1 in StatefulSet web successful",
    ];
    c.wait("the events", async |c| {
        let events = c.reasons("SuccessfulCreate").await;
        wanted.iter().all(|e| events.contains(&e.to_string()))
    })
    .await;
    c.harness.stop().await;
}

#[tokio::test]
async fn an_existing_claim_is_reused_as_it_is() {
    let c = cluster().await;
    let mine = c
        .create(
            Kind::PersistentVolumeClaim,
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "data-web-0", "labels": {"made": "by-hand"}},
                "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "5Gi"}}}}),
        )
        .await;
    let set = c
        .create(Kind::StatefulSet, with_claims(1, "Retain", "Retain"))
        .await;
    let id = uid(&set);
    c.wait("web-0", async |c| live(c, &id).await == ["web-0"])
        .await;
    let data0 = claim(&c, "data-web-0").await.expect("data-web-0");
    assert_eq!(uid(&data0), uid(&mine));
    assert_eq!(data0["metadata"]["labels"], json!({"made": "by-hand"}));
    assert_eq!(data0["spec"]["resources"]["requests"]["storage"], "5Gi");
    let web0 = pod(&c, "web-0").await.expect("web-0");
    assert_eq!(
        web0["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "data-web-0"
    );
    let claims = c.reasons("SuccessfulCreate").await;
    assert!(
        !claims.iter().any(|e| e.starts_with("create Claim")),
        "{claims:?}"
    );
    c.harness.stop().await;
}

#[tokio::test]
async fn a_claim_being_deleted_holds_the_pod_back() {
    let c = cluster().await;
    c.create(
        Kind::PersistentVolumeClaim,
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data-web-0", "finalizers": ["example.com/hold"]},
            "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}),
    )
    .await;
    c.api
        .delete(
            by_kind(Kind::PersistentVolumeClaim),
            Some("default"),
            "data-web-0",
            &DeleteOpts::default(),
            false,
        )
        .await
        .expect("delete data-web-0");
    let set = c
        .create(Kind::StatefulSet, with_claims(1, "Retain", "Retain"))
        .await;
    let id = uid(&set);
    let blocked =
        "create Pod web-0 in StatefulSet web failed error: pvc data-web-0 is being deleted";
    c.wait("FailedCreate", async |c| {
        c.reasons("FailedCreate")
            .await
            .contains(&blocked.to_string())
    })
    .await;
    assert!(live(&c, &id).await.is_empty());
    let old = claim(&c, "data-web-0").await.expect("still there");
    // The finalizer goes: the claim is gone, a new one is made, then the pod.
    c.patch(
        Kind::PersistentVolumeClaim,
        "data-web-0",
        json!({"metadata": {"finalizers": null}}),
    )
    .await;
    c.wait("web-0 with a new claim", async |c| {
        live(c, &id).await == ["web-0"]
            && claim(c, "data-web-0")
                .await
                .is_some_and(|n| uid(&n) != uid(&old))
    })
    .await;
    c.harness.stop().await;
}

#[tokio::test]
async fn when_scaled_delete_hands_the_claims_to_the_condemned_pods() {
    let c = cluster().await;
    let mut body = with_claims(2, "Retain", "Delete");
    // Bound pods are deleted gracefully: the claim's owner stays until the kubelet is done.
    body["spec"]["template"]["spec"]["nodeName"] = json!("n1");
    let set = c.create(Kind::StatefulSet, body).await;
    let id = uid(&set);
    c.wait("two pods Ready", async |c| {
        kubelet_ready(c).await;
        live(c, &id).await.len() == 2
            && c.get(Kind::StatefulSet, "web").await.expect("set")["status"]["readyReplicas"] == 2
    })
    .await;
    // In range: no owner.
    assert!(owners(&claim(&c, "data-web-1").await.expect("data-web-1")).is_empty());
    c.patch(Kind::StatefulSet, "web", json!({"spec": {"replicas": 1}}))
        .await;
    c.wait("web-1 terminating", async |c| {
        pod(c, "web-1")
            .await
            .is_some_and(|p| p.pointer("/metadata/deletionTimestamp").is_some())
    })
    .await;
    let web1 = pod(&c, "web-1").await.expect("web-1");
    let data1 = claim(&c, "data-web-1").await.expect("data-web-1");
    assert_eq!(owners(&data1), [owner("Pod", "web-1")]);
    assert_eq!(data1["metadata"]["ownerReferences"][0]["uid"], uid(&web1));
    assert!(owners(&claim(&c, "data-web-0").await.expect("data-web-0")).is_empty());
    // The pod goes; the garbage collector takes its claim; web-0's stays.
    kubelet_finish(&c, "web-1").await;
    c.wait("data-web-1 collected", async |c| {
        gone_or_terminating(claim(c, "data-web-1").await)
    })
    .await;
    assert!(claim(&c, "data-web-0").await.is_some());
    c.harness.stop().await;
}

#[tokio::test]
async fn when_deleted_delete_makes_the_set_own_its_claims() {
    let c = cluster().await;
    let set = c
        .create(Kind::StatefulSet, with_claims(1, "Delete", "Retain"))
        .await;
    let id = uid(&set);
    c.wait("web-0", async |c| live(c, &id).await == ["web-0"])
        .await;
    let data0 = claim(&c, "data-web-0").await.expect("data-web-0");
    assert_eq!(owners(&data0), [owner("StatefulSet", "web")]);
    assert_eq!(data0["metadata"]["ownerReferences"][0]["uid"], id.as_str());
    // Changing the policy moves the ownership: Retain drops it.
    c.patch(
        Kind::StatefulSet,
        "web",
        json!({"spec": {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain"}}}),
    )
    .await;
    c.wait("no owner", async |c| {
        claim(c, "data-web-0")
            .await
            .is_some_and(|cl| owners(&cl).is_empty())
    })
    .await;
    c.patch(
        Kind::StatefulSet,
        "web",
        json!({"spec": {"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"}}}),
    )
    .await;
    c.wait("the set owns it again", async |c| {
        claim(c, "data-web-0")
            .await
            .is_some_and(|cl| owners(&cl) == [owner("StatefulSet", "web")])
    })
    .await;
    // Deleting the set deletes the pod and the claim.
    c.api
        .delete(
            by_kind(Kind::StatefulSet),
            Some("default"),
            "web",
            &DeleteOpts::default(),
            false,
        )
        .await
        .expect("delete web");
    c.wait("data-web-0 collected", async |c| {
        gone_or_terminating(claim(c, "data-web-0").await)
    })
    .await;
    c.harness.stop().await;
}
