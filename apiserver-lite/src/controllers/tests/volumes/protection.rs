//! The `pvc-protection` and `pv-protection` finalizers.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::handlers::DeleteOpts;

fn pod_using(name: &str, claim: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}})
}

async fn set_pod_phase(c: &Cluster, name: &str, phase: &str) {
    c.api
        .patch(
            by_kind(Kind::Pod),
            Some(NS),
            name,
            Some("status"),
            crate::patch::PatchType::Merge,
            json!({"status": {"phase": phase}}),
            &[],
            &opts(),
            false,
        )
        .await
        .expect("pod status");
}

#[tokio::test]
async fn pvc_protection_holds_a_claim_while_a_running_pod_uses_it() {
    let c = cluster().await;
    c.harness
        .put("/registry/nodes/n1", node("n1", true, "4"))
        .await;
    for name in ["one", "two"] {
        let pvc = with_finalizer(claim(name, "1Gi", RWO, ""), "kubernetes.io/pvc-protection");
        create(&c, Kind::PersistentVolumeClaim, pvc).await;
        create(&c, Kind::Pod, pod_using(&format!("uses-{name}"), name)).await;
        set_pod_phase(&c, &format!("uses-{name}"), "Running").await;
        delete(&c, Kind::PersistentVolumeClaim, name).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    for name in ["one", "two"] {
        let pvc = get(&c, Kind::PersistentVolumeClaim, name)
            .await
            .expect("held");
        assert!(pvc["metadata"]["deletionTimestamp"].is_string());
        assert_eq!(
            pvc["metadata"]["finalizers"],
            json!(["kubernetes.io/pvc-protection"])
        );
    }
    // The pod finishes: it still holds the claim (kube 1.32) until the pod is deleted.
    set_pod_phase(&c, "uses-one", "Succeeded").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        get(&c, Kind::PersistentVolumeClaim, "one").await.is_some(),
        "a Succeeded pod still holds its claim"
    );
    let now = DeleteOpts {
        grace: Some(0),
        ..DeleteOpts::default()
    };
    c.api
        .delete(by_kind(Kind::Pod), Some(NS), "uses-one", &now, false)
        .await
        .expect("delete pod");
    wait_gone(&c, Kind::PersistentVolumeClaim, "one").await;
    // The pod is deleted: the claim goes.
    let now = DeleteOpts {
        grace: Some(0),
        ..DeleteOpts::default()
    };
    c.api
        .delete(by_kind(Kind::Pod), Some(NS), "uses-two", &now, false)
        .await
        .expect("delete pod");
    wait_gone(&c, Kind::PersistentVolumeClaim, "two").await;
}

#[tokio::test]
async fn pv_protection_holds_a_volume_while_it_is_bound() {
    let c = cluster().await;
    let pv = with_finalizer(
        volume("held", "1Gi", RWO, "", "Retain"),
        "kubernetes.io/pv-protection",
    );
    bound_pair(&c, pv, "data").await;
    delete(&c, Kind::PersistentVolume, "held").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pv = get(&c, Kind::PersistentVolume, "held")
        .await
        .expect("held while Bound");
    assert!(pv["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(phase(&pv), "Bound");
    // Without its claim the volume is Released, no longer protected.
    delete(&c, Kind::PersistentVolumeClaim, "data").await;
    wait_gone(&c, Kind::PersistentVolume, "held").await;
    // An Available volume goes at once.
    let free = with_finalizer(
        volume("free", "1Gi", RWO, "", "Retain"),
        "kubernetes.io/pv-protection",
    );
    create(&c, Kind::PersistentVolume, free).await;
    wait_for(&c, Kind::PersistentVolume, "free", "Available", |v| {
        phase(v) == "Available"
    })
    .await;
    delete(&c, Kind::PersistentVolume, "free").await;
    wait_gone(&c, Kind::PersistentVolume, "free").await;
}
