//! Binding claims to volumes made by hand, and what happens when either side goes.

use std::time::Duration;

use serde_json::json;

use super::*;

#[tokio::test]
async fn static_binding_picks_the_smallest_fitting_volume() {
    let c = cluster().await;
    create(
        &c,
        Kind::PersistentVolume,
        volume("big", "10Gi", RWO, "", "Retain"),
    )
    .await;
    create(
        &c,
        Kind::PersistentVolume,
        volume("small", "2Gi", RWO, "", "Retain"),
    )
    .await;
    create(
        &c,
        Kind::PersistentVolume,
        volume("tiny", "500Mi", RWO, "", "Retain"),
    )
    .await;
    create(
        &c,
        Kind::PersistentVolume,
        volume("fast", "1Gi", RWO, "fast", "Retain"),
    )
    .await;
    create(
        &c,
        Kind::PersistentVolume,
        volume("rwx", "1Gi", &["ReadWriteMany"], "", "Retain"),
    )
    .await;
    let pvc = create(
        &c,
        Kind::PersistentVolumeClaim,
        claim("data", "1Gi", RWO, ""),
    )
    .await;
    let bound = wait_for(&c, Kind::PersistentVolumeClaim, "data", "Bound", |v| {
        phase(v) == "Bound"
    })
    .await;
    assert_eq!(bound["spec"]["volumeName"], "small");
    assert_eq!(
        annotation(&bound, "pv.kubernetes.io/bind-completed"),
        Some("yes")
    );
    assert_eq!(
        annotation(&bound, "pv.kubernetes.io/bound-by-controller"),
        Some("yes")
    );
    assert_eq!(bound["status"]["accessModes"], json!(["ReadWriteOnce"]));
    assert_eq!(bound["status"]["capacity"]["storage"], "2Gi");
    let small = wait_for(&c, Kind::PersistentVolume, "small", "Bound", |v| {
        phase(v) == "Bound"
    })
    .await;
    let claim_ref = &small["spec"]["claimRef"];
    assert_eq!(
        (
            &claim_ref["kind"],
            &claim_ref["namespace"],
            &claim_ref["name"],
            &claim_ref["apiVersion"]
        ),
        (
            &json!("PersistentVolumeClaim"),
            &json!(NS),
            &json!("data"),
            &json!("v1")
        )
    );
    assert_eq!(claim_ref["uid"], json!(uid(&pvc)));
    assert!(claim_ref["resourceVersion"].is_string(), "{claim_ref}");
    assert_eq!(
        annotation(&small, "pv.kubernetes.io/bound-by-controller"),
        Some("yes")
    );
    for other in ["big", "tiny", "fast", "rwx"] {
        let pv = wait_for(&c, Kind::PersistentVolume, other, "Available", |v| {
            phase(v) == "Available"
        })
        .await;
        assert!(
            pv["spec"]["claimRef"].is_null(),
            "{other} was touched: {pv}"
        );
    }
}

#[tokio::test]
async fn claims_that_fit_no_volume_stay_pending() {
    let c = cluster().await;
    create(
        &c,
        Kind::PersistentVolume,
        volume("only", "1Gi", RWO, "", "Retain"),
    )
    .await;
    create(
        &c,
        Kind::PersistentVolumeClaim,
        claim("too-big", "2Gi", RWO, ""),
    )
    .await;
    create(
        &c,
        Kind::PersistentVolumeClaim,
        claim("rwx", "1Gi", &["ReadWriteMany"], ""),
    )
    .await;
    let mut block = claim("block", "1Gi", RWO, "");
    block["spec"]["volumeMode"] = json!("Block");
    create(&c, Kind::PersistentVolumeClaim, block).await;
    // A class with no StorageClass object: nothing can provision it.
    create(
        &c,
        Kind::PersistentVolumeClaim,
        claim("classy", "1Gi", RWO, "gold"),
    )
    .await;
    // A claim naming a volume that does not fit it.
    let mut named = claim("named", "5Gi", RWO, "");
    named["spec"]["volumeName"] = json!("only");
    create(&c, Kind::PersistentVolumeClaim, named).await;
    c.wait("the binder reports", async |c| {
        c.reasons("FailedBinding").await.len() == 3
            && !c.reasons("VolumeMismatch").await.is_empty()
            && !c.reasons("ProvisioningFailed").await.is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for name in ["too-big", "rwx", "block", "classy", "named"] {
        let pvc = get(&c, Kind::PersistentVolumeClaim, name)
            .await
            .expect("claim");
        assert_eq!(phase(&pvc), "Pending", "{name}: {pvc}");
        assert!(annotation(&pvc, "pv.kubernetes.io/bind-completed").is_none());
    }
    let only = get(&c, Kind::PersistentVolume, "only").await.expect("pv");
    assert_eq!(phase(&only), "Available");
    assert!(only["spec"]["claimRef"].is_null(), "{only}");
    assert_eq!(
        c.reasons("FailedBinding").await[0],
        "no persistent volumes available for this claim and no storage class is set"
    );
    assert_eq!(
        c.reasons("VolumeMismatch").await,
        ["Cannot bind to requested volume \"only\": requested PV is too small"]
    );
    assert_eq!(
        c.reasons("ProvisioningFailed").await,
        ["storageclass.storage.k8s.io \"gold\" not found"]
    );
}

#[tokio::test]
async fn released_volumes_are_deleted_when_ours_and_retained_otherwise() {
    let c = cluster().await;
    let mut ours = volume("ours", "1Gi", RWO, "", "Delete");
    ours["metadata"]["annotations"] =
        json!({"pv.kubernetes.io/provisioned-by": "skiff.io/local-path"});
    bound_pair(&c, with_finalizer(ours, "kubernetes.io/pv-protection"), "a").await;
    bound_pair(&c, volume("keep", "1Gi", RWO, "", "Retain"), "b").await;
    let mut foreign = volume("foreign", "1Gi", RWO, "", "Delete");
    foreign["metadata"]["annotations"] =
        json!({"pv.kubernetes.io/provisioned-by": "example.com/nfs"});
    bound_pair(&c, foreign, "c").await;
    let a = get(&c, Kind::PersistentVolumeClaim, "a")
        .await
        .expect("claim");
    // The claim named its volume: the binder did not choose it, but did set the volume's claimRef.
    assert!(annotation(&a, "pv.kubernetes.io/bound-by-controller").is_none());
    let keep = get(&c, Kind::PersistentVolume, "keep").await.expect("pv");
    assert_eq!(
        annotation(&keep, "pv.kubernetes.io/bound-by-controller"),
        Some("yes")
    );

    for name in ["a", "b", "c"] {
        delete(&c, Kind::PersistentVolumeClaim, name).await;
        wait_gone(&c, Kind::PersistentVolumeClaim, name).await;
    }
    wait_gone(&c, Kind::PersistentVolume, "ours").await;
    for (name, claim) in [("keep", "b"), ("foreign", "c")] {
        let pv = wait_for(&c, Kind::PersistentVolume, name, "Released", |v| {
            phase(v) == "Released"
        })
        .await;
        assert_eq!(pv["spec"]["claimRef"]["name"], claim, "the claimRef stays");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for name in ["keep", "foreign"] {
        let pv = get(&c, Kind::PersistentVolume, name)
            .await
            .expect("still there");
        assert_eq!(phase(&pv), "Released");
    }
    // A new claim of the same name is another claim: the retained volume stays Released.
    create(&c, Kind::PersistentVolumeClaim, claim("b", "1Gi", RWO, "")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        phase(&get(&c, Kind::PersistentVolume, "keep").await.expect("pv")),
        "Released"
    );
    assert_eq!(
        phase(
            &get(&c, Kind::PersistentVolumeClaim, "b")
                .await
                .expect("claim")
        ),
        "Pending"
    );
}

#[tokio::test]
async fn a_claim_whose_volume_disappears_is_lost() {
    let c = cluster().await;
    create(
        &c,
        Kind::PersistentVolume,
        volume("v1", "1Gi", RWO, "", "Retain"),
    )
    .await;
    create(
        &c,
        Kind::PersistentVolumeClaim,
        claim("data", "1Gi", RWO, ""),
    )
    .await;
    wait_for(&c, Kind::PersistentVolumeClaim, "data", "Bound", |v| {
        phase(v) == "Bound"
    })
    .await;
    // Gone without the protection finalizer's say (an admin removed it, or a store restore).
    c.harness
        .store
        .delete("/registry/persistentvolumes/v1", None)
        .await
        .expect("remove the volume");
    let lost = wait_for(&c, Kind::PersistentVolumeClaim, "data", "Lost", |v| {
        phase(v) == "Lost"
    })
    .await;
    assert!(
        lost["status"]["capacity"].is_null() && lost["status"]["accessModes"].is_null(),
        "{lost}"
    );
    assert_eq!(lost["spec"]["volumeName"], "v1");
    c.wait("ClaimLost", async |c| {
        !c.reasons("ClaimLost").await.is_empty()
    })
    .await;
    assert_eq!(
        c.reasons("ClaimLost").await,
        ["Bound claim has lost its PersistentVolume. Data on the volume is lost!"]
    );
}
