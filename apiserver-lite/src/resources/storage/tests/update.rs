//! Update rules and status writes of the storage kinds.

use serde_json::json;

use super::{class, created, good_pvc, host_pv, update_errors};
use crate::resources::{Kind, by_kind};

#[test]
fn claim_update_rules() {
    let (old, _) = created(Kind::PersistentVolumeClaim, good_pvc());
    // The binder sets the volume name once, and a class on a claim without one.
    let mut bind = old.clone();
    bind["spec"]["volumeName"] = json!("pv1");
    bind["spec"]["storageClassName"] = json!("local-path");
    assert!(update_errors(Kind::PersistentVolumeClaim, &old, bind.clone()).is_empty());
    let mut rebind = bind.clone();
    rebind["spec"]["volumeName"] = json!("pv2");
    rebind["spec"]["storageClassName"] = json!("fast");
    const IMMUTABLE: &str = "spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims";
    assert_eq!(
        update_errors(Kind::PersistentVolumeClaim, &bind, rebind),
        [IMMUTABLE]
    );
    // A pending claim keeps its request; the same quantity spelled otherwise is no change.
    let mut bigger = old.clone();
    bigger["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
    assert_eq!(
        update_errors(Kind::PersistentVolumeClaim, &old, bigger),
        [IMMUTABLE]
    );
    let mut same = old.clone();
    same["spec"]["resources"]["requests"]["storage"] = json!("1024Mi");
    assert!(update_errors(Kind::PersistentVolumeClaim, &old, same).is_empty());
    // A bound claim may grow, not shrink below its capacity.
    let mut bound = bind.clone();
    bound["status"] = json!({"phase": "Bound", "capacity": {"storage": "1Gi"}});
    let mut grow = bound.clone();
    grow["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
    assert!(update_errors(Kind::PersistentVolumeClaim, &bound, grow).is_empty());
    let mut shrink = bound.clone();
    shrink["spec"]["resources"]["requests"]["storage"] = json!("512Mi");
    assert_eq!(
        update_errors(Kind::PersistentVolumeClaim, &bound, shrink),
        ["spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"]
    );
    let mut mode = bound.clone();
    mode["spec"]["volumeMode"] = json!("Block");
    assert_eq!(
        update_errors(Kind::PersistentVolumeClaim, &bound, mode),
        [
            IMMUTABLE,
            "volumeMode: Invalid value: \"Block\": field is immutable"
        ]
    );
    // Leaving volumeMode out of a PUT is no change: it is defaulted again.
    let mut put = bound.clone();
    put["spec"].as_object_mut().map(|s| s.remove("volumeMode"));
    assert!(update_errors(Kind::PersistentVolumeClaim, &bound, put).is_empty());
}

#[test]
fn volume_and_class_update_rules() {
    let (old, _) = created(Kind::PersistentVolume, host_pv());
    let mut moved = old.clone();
    moved["spec"]["hostPath"]["path"] = json!("/srv/other");
    assert_eq!(
        update_errors(Kind::PersistentVolume, &old, moved),
        [
            "spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation"
        ]
    );
    // Capacity, claimRef and class may change; node affinity may be set once.
    let affinity = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}});
    let mut edited = old.clone();
    edited["spec"]["capacity"]["storage"] = json!("2Gi");
    edited["spec"]["claimRef"] = json!({"namespace": "default", "name": "data"});
    edited["spec"]["nodeAffinity"] = affinity;
    assert!(update_errors(Kind::PersistentVolume, &old, edited.clone()).is_empty());
    let mut other_node = edited.clone();
    other_node["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
        ["values"] = json!(["n2"]);
    let e = update_errors(Kind::PersistentVolume, &edited, other_node);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("nodeAffinity: Invalid value: ") && e[0].ends_with("field is immutable")
    );

    let (sc, _) = created(Kind::StorageClass, class(json!({"parameters": {"a": "1"}})));
    let mut changed = sc.clone();
    changed["provisioner"] = json!("example.com/slow");
    changed["parameters"] = json!({"a": "2"});
    changed["reclaimPolicy"] = json!("Retain");
    changed["volumeBindingMode"] = json!("WaitForFirstConsumer");
    assert_eq!(
        update_errors(Kind::StorageClass, &sc, changed),
        [
            "parameters: Forbidden: updates to parameters are forbidden.",
            "provisioner: Forbidden: updates to provisioner are forbidden.",
            "reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden.",
            "volumeBindingMode: Invalid value: \"WaitForFirstConsumer\": field is immutable",
        ]
    );
    let mut expand = sc.clone();
    expand["allowVolumeExpansion"] = json!(true);
    expand["metadata"]["annotations"] =
        json!({"storageclass.kubernetes.io/is-default-class": "true"});
    assert!(update_errors(Kind::StorageClass, &sc, expand).is_empty());
}

#[test]
fn volume_status_writes_track_the_phase_time() {
    let def = by_kind(Kind::PersistentVolume);
    let mut cur = host_pv();
    cur["status"] = json!({"phase": "Pending", "lastPhaseTransitionTime": "2020-01-01T00:00:00Z"});
    let same = def.status_update(&cur, &json!({"status": {"phase": "Pending"}}));
    assert_eq!(
        same["status"]["lastPhaseTransitionTime"],
        "2020-01-01T00:00:00Z"
    );
    let moved = def.status_update(&cur, &json!({"status": {"phase": "Available"}}));
    assert_eq!(moved["status"]["phase"], "Available");
    assert_ne!(
        moved["status"]["lastPhaseTransitionTime"],
        "2020-01-01T00:00:00Z"
    );
    assert_eq!(moved["spec"], cur["spec"], "a status write keeps the spec");
    let explicit = def.status_update(
        &cur,
        &json!({"status": {"phase": "Bound", "lastPhaseTransitionTime": "2021-01-01T00:00:00Z"}}),
    );
    assert_eq!(
        explicit["status"]["lastPhaseTransitionTime"],
        "2021-01-01T00:00:00Z"
    );
    assert!(def.validate_update(&cur, &moved).is_empty());
}
