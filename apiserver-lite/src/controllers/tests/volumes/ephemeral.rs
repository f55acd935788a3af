//! Generic ephemeral volumes end to end on the control plane: the ephemeral volume controller makes the
//! claim `<pod>-<volume>` owned by the pod, admission gives it the default class, the scheduler picks the
//! node, the local-path provisioner and the binder bind it, the pod is bound; a claim of that name that
//! belongs to someone else is left alone and the pod stays pending; the garbage collector deletes the
//! claim after its pod.

use serde_json::json;

use super::*;
use crate::handlers::DeleteOpts;

fn pod_with_ephemeral(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox",
                                 "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
                 "volumes": [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {
                     "metadata": {"labels": {"type": "scratch"}},
                     "spec": {"accessModes": ["ReadWriteOnce"],
                              "resources": {"requests": {"storage": "1Gi"}}}}}}]}})
}

fn unschedulable_message(pod: &Value) -> Option<&str> {
    let c = super::super::condition(pod, "PodScheduled")?;
    (c["status"] == "False").then(|| c["message"].as_str().unwrap_or_default())
}

/// The default class skiff-apiserver creates at start.
async fn default_local_path(c: &Cluster) {
    let mut sc = class("local-path", "skiff.io/local-path", "WaitForFirstConsumer");
    sc["metadata"]["annotations"] = json!({"storageclass.kubernetes.io/is-default-class": "true"});
    create(c, Kind::StorageClass, sc).await;
}

#[tokio::test]
async fn an_ephemeral_volume_gets_its_claim_and_the_pod_is_bound_once_it_is_provisioned() {
    let c = cluster().await;
    c.harness
        .put("/registry/nodes/n1", node("n1", true, "4"))
        .await;
    default_local_path(&c).await;
    let pod = create(&c, Kind::Pod, pod_with_ephemeral("app")).await;
    assert_eq!(
        pod["spec"]["volumes"][0]["ephemeral"]["volumeClaimTemplate"]["spec"]["volumeMode"],
        "Filesystem"
    );
    let pvc = wait_for(
        &c,
        Kind::PersistentVolumeClaim,
        "app-scratch",
        "made",
        |_| true,
    )
    .await;
    assert_eq!(
        pvc["metadata"]["ownerReferences"],
        json!([{"apiVersion": "v1", "kind": "Pod", "name": "app", "uid": uid(&pod),
                "controller": true, "blockOwnerDeletion": true}])
    );
    assert_eq!(pvc["metadata"]["labels"], json!({"type": "scratch"}));
    // Admission as for any claim: the default class and the protection finalizer.
    assert_eq!(pvc["spec"]["storageClassName"], "local-path");
    assert_eq!(
        pvc["metadata"]["finalizers"],
        json!(["kubernetes.io/pvc-protection"])
    );
    // The scheduler picks the node, the provisioner makes the volume, then the pod is bound.
    let bound = wait_for(&c, Kind::Pod, "app", "bound", |p| {
        p["spec"]["nodeName"] == "n1"
    })
    .await;
    assert_eq!(bound["metadata"]["uid"], pod["metadata"]["uid"]);
    let pvc = wait_for(
        &c,
        Kind::PersistentVolumeClaim,
        "app-scratch",
        "Bound",
        |v| phase(v) == "Bound",
    )
    .await;
    assert_eq!(
        annotation(&pvc, "volume.kubernetes.io/selected-node"),
        Some("n1")
    );
    assert_eq!(
        pvc["spec"]["volumeName"],
        json!(format!("pvc-{}", uid(&pvc)))
    );

    // The pod goes: the garbage collector deletes its claim (the finalizer goes once no pod uses it).
    c.api
        .delete(
            by_kind(Kind::Pod),
            Some(NS),
            "app",
            &DeleteOpts {
                grace: Some(0),
                ..DeleteOpts::default()
            },
            false,
        )
        .await
        .expect("delete pod");
    wait_gone(&c, Kind::Pod, "app").await;
    wait_gone(&c, Kind::PersistentVolumeClaim, "app-scratch").await;
}

#[tokio::test]
async fn a_claim_of_someone_else_is_left_alone_and_the_pod_stays_pending() {
    let c = cluster().await;
    c.harness
        .put("/registry/nodes/n1", node("n1", true, "4"))
        .await;
    default_local_path(&c).await;
    let foreign = create(
        &c,
        Kind::PersistentVolumeClaim,
        claim("web-scratch", "1Gi", RWO, "local-path"),
    )
    .await;
    create(&c, Kind::Pod, pod_with_ephemeral("web")).await;
    let want = "PVC default/web-scratch was not created for pod default/web (pod is not owner)";
    c.wait("FailedBinding", async |c| {
        !c.reasons("FailedBinding").await.is_empty()
    })
    .await;
    assert_eq!(
        c.reasons("FailedBinding").await,
        [format!("ephemeral volume scratch: {want}")]
    );
    let pending = wait_for(&c, Kind::Pod, "web", "unschedulable", |p| {
        unschedulable_message(p).is_some_and(|m| m.contains(want))
    })
    .await;
    assert!(pending["spec"]["nodeName"].is_null(), "{pending}");
    let kept = get(&c, Kind::PersistentVolumeClaim, "web-scratch")
        .await
        .expect("claim");
    assert_eq!(kept["metadata"]["uid"], foreign["metadata"]["uid"]);
    assert!(kept["metadata"]["ownerReferences"].is_null(), "{kept}");

    // Once the foreign claim is gone, the controller makes the pod's own and the pod is scheduled.
    delete(&c, Kind::PersistentVolumeClaim, "web-scratch").await;
    let own = wait_for(
        &c,
        Kind::PersistentVolumeClaim,
        "web-scratch",
        "owned",
        |v| v["metadata"]["ownerReferences"][0]["name"] == "web",
    )
    .await;
    assert_ne!(own["metadata"]["uid"], foreign["metadata"]["uid"]);
    wait_for(&c, Kind::Pod, "web", "bound", |p| {
        p["spec"]["nodeName"] == "n1"
    })
    .await;
}

#[tokio::test]
async fn pods_without_a_claim_template_are_refused() {
    let c = cluster().await;
    let mut p = pod_with_ephemeral("bad");
    p["spec"]["volumes"][0]["ephemeral"] = json!({});
    let err = c
        .api
        .create(by_kind(Kind::Pod), Some(NS), p, &[], &opts())
        .await
        .expect_err("refused");
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("spec.volumes[0].ephemeral.volumeClaimTemplate: Required value"),
        "{}",
        err.message
    );
}
