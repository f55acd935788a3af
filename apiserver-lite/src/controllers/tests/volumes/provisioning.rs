//! `WaitForFirstConsumer` classes and the local-path provisioner.

use std::time::Duration;

use serde_json::json;

use super::*;

#[tokio::test]
async fn wait_for_first_consumer_provisions_a_local_path_volume_on_the_selected_node() {
    let c = cluster().await;
    c.harness
        .put("/registry/nodes/n1", node("n1", true, "4"))
        .await;
    let mut sc = class("local-path", "skiff.io/local-path", "WaitForFirstConsumer");
    sc["mountOptions"] = json!(["noatime"]);
    create(&c, Kind::StorageClass, sc).await;
    let pvc = create(
        &c,
        Kind::PersistentVolumeClaim,
        claim("data", "1Gi", RWO, "local-path"),
    )
    .await;
    c.wait("WaitForFirstConsumer", async |c| {
        !c.reasons("WaitForFirstConsumer").await.is_empty()
    })
    .await;
    assert_eq!(
        c.reasons("WaitForFirstConsumer").await,
        ["waiting for first consumer to be created before binding"]
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = get(&c, Kind::PersistentVolumeClaim, "data")
        .await
        .expect("claim");
    assert_eq!(phase(&waiting), "Pending");
    assert!(annotation(&waiting, "volume.kubernetes.io/storage-provisioner").is_none());
    let id = uid(&pvc);
    let pv_name = format!("pvc-{id}");
    assert!(get(&c, Kind::PersistentVolume, &pv_name).await.is_none());

    // The scheduler's part.
    c.patch(
        Kind::PersistentVolumeClaim,
        "data",
        json!({"metadata": {"annotations": {"volume.kubernetes.io/selected-node": "n1"}}}),
    )
    .await;
    let bound = wait_for(&c, Kind::PersistentVolumeClaim, "data", "Bound", |v| {
        phase(v) == "Bound"
    })
    .await;
    assert_eq!(bound["spec"]["volumeName"], json!(pv_name));
    for ann in [
        "volume.kubernetes.io/storage-provisioner",
        "volume.beta.kubernetes.io/storage-provisioner",
    ] {
        assert_eq!(
            annotation(&bound, ann),
            Some("skiff.io/local-path"),
            "{ann}"
        );
    }
    assert_eq!(
        annotation(&bound, "pv.kubernetes.io/bind-completed"),
        Some("yes")
    );
    assert_eq!(
        annotation(&bound, "pv.kubernetes.io/bound-by-controller"),
        Some("yes")
    );
    assert_eq!(bound["status"]["capacity"]["storage"], "1Gi");
    let pv = wait_for(&c, Kind::PersistentVolume, &pv_name, "Bound", |v| {
        phase(v) == "Bound"
    })
    .await;
    let spec = &pv["spec"];
    assert_eq!(
        spec["hostPath"],
        json!({"path": format!("/var/lib/skiff/storage/{pv_name}_default_data"), "type": "DirectoryOrCreate"})
    );
    assert_eq!(
        spec["nodeAffinity"]["required"]["nodeSelectorTerms"],
        json!([{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}])
    );
    assert_eq!(spec["capacity"], json!({"storage": "1Gi"}));
    assert_eq!(spec["accessModes"], json!(["ReadWriteOnce"]));
    assert_eq!(spec["volumeMode"], "Filesystem");
    assert_eq!(spec["persistentVolumeReclaimPolicy"], "Delete");
    assert_eq!(spec["storageClassName"], "local-path");
    assert_eq!(spec["mountOptions"], json!(["noatime"]));
    assert_eq!(spec["claimRef"]["uid"], json!(id));
    assert_eq!(spec["claimRef"]["name"], "data");
    assert_eq!(
        annotation(&pv, "pv.kubernetes.io/provisioned-by"),
        Some("skiff.io/local-path")
    );
    // The provisioner set the claimRef, not the binder.
    assert!(
        annotation(&pv, "pv.kubernetes.io/bound-by-controller").is_none(),
        "{pv}"
    );
    assert_eq!(
        c.reasons("ExternalProvisioning").await,
        [
            "Waiting for a volume to be created either by the external provisioner 'skiff.io/local-path' \
          or manually by the system administrator. If volume creation is delayed, please verify that the \
          provisioner is running and correctly registered."
        ]
    );
    assert_eq!(
        c.reasons("Provisioning").await,
        ["External provisioner is provisioning volume for claim \"default/data\""]
    );
    assert_eq!(
        c.reasons("ProvisioningSucceeded").await,
        [format!("Successfully provisioned volume {pv_name}")]
    );
}

#[tokio::test]
async fn wait_for_first_consumer_binds_a_static_volume_of_the_selected_node() {
    let c = cluster().await;
    create(
        &c,
        Kind::StorageClass,
        class(
            "local",
            "kubernetes.io/no-provisioner",
            "WaitForFirstConsumer",
        ),
    )
    .await;
    create(
        &c,
        Kind::PersistentVolume,
        local_affinity(volume("on-n2", "1Gi", RWO, "local", "Retain"), "n2"),
    )
    .await;
    create(
        &c,
        Kind::PersistentVolume,
        local_affinity(volume("on-n1", "5Gi", RWO, "local", "Retain"), "n1"),
    )
    .await;
    create(
        &c,
        Kind::PersistentVolumeClaim,
        claim("data", "1Gi", RWO, "local"),
    )
    .await;
    c.wait("WaitForFirstConsumer", async |c| {
        !c.reasons("WaitForFirstConsumer").await.is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        phase(
            &get(&c, Kind::PersistentVolumeClaim, "data")
                .await
                .expect("claim")
        ),
        "Pending"
    );
    c.patch(
        Kind::PersistentVolumeClaim,
        "data",
        json!({"metadata": {"annotations": {"volume.kubernetes.io/selected-node": "n1"}}}),
    )
    .await;
    let bound = wait_for(&c, Kind::PersistentVolumeClaim, "data", "Bound", |v| {
        phase(v) == "Bound"
    })
    .await;
    // The smaller volume is on another node.
    assert_eq!(bound["spec"]["volumeName"], "on-n1");
    let other = get(&c, Kind::PersistentVolume, "on-n2").await.expect("pv");
    assert!(other["spec"]["claimRef"].is_null());
}

#[tokio::test]
async fn local_path_reports_what_it_cannot_provision_once() {
    let c = cluster().await;
    c.harness
        .put("/registry/nodes/n1", node("n1", true, "4"))
        .await;
    create(
        &c,
        Kind::StorageClass,
        class("local-now", "skiff.io/local-path", "Immediate"),
    )
    .await;
    create(
        &c,
        Kind::StorageClass,
        class("local-path", "skiff.io/local-path", "WaitForFirstConsumer"),
    )
    .await;
    create(
        &c,
        Kind::PersistentVolumeClaim,
        claim("now", "1Gi", RWO, "local-now"),
    )
    .await;
    let mut shared = claim("shared", "1Gi", &["ReadWriteMany"], "local-path");
    shared["metadata"]["annotations"] = json!({"volume.kubernetes.io/selected-node": "n1"});
    create(&c, Kind::PersistentVolumeClaim, shared).await;
    c.wait("two failures", async |c| {
        c.reasons("ProvisioningFailed").await.len() == 2
    })
    .await;
    let mut failures = c.reasons("ProvisioningFailed").await;
    failures.sort();
    assert_eq!(
        failures,
        [
            "failed to provision volume with StorageClass \"local-now\": configuration error, no node was specified",
            "failed to provision volume with StorageClass \"local-path\": NodePath only supports ReadWriteOnce \
             and ReadWriteOncePod (1.22+) access modes",
        ]
    );
    // More syncs of the same claims (a new volume wakes every pending claim) report nothing new.
    create(
        &c,
        Kind::PersistentVolume,
        volume("unrelated", "1Mi", RWO, "", "Retain"),
    )
    .await;
    wait_for(&c, Kind::PersistentVolume, "unrelated", "Available", |v| {
        phase(v) == "Available"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.reasons("ProvisioningFailed").await.len(), 2);
    assert_eq!(c.reasons("ExternalProvisioning").await.len(), 2);
    for name in ["now", "shared"] {
        let pvc = get(&c, Kind::PersistentVolumeClaim, name)
            .await
            .expect("claim");
        assert_eq!(phase(&pvc), "Pending");
        assert!(
            get(&c, Kind::PersistentVolume, &format!("pvc-{}", uid(&pvc)))
                .await
                .is_none()
        );
    }
}
