//! Defaults, validation, update rules and table rows of the storage kinds, through the resource
//! definitions' hooks as the handlers call them. Update rules: `tests/update.rs`; admission and the
//! default class: `tests/admission.rs`.

mod admission;
mod update;

use serde_json::{Value, json};

use crate::resources::{Kind, by_kind};

fn lines(errs: &[crate::status::FieldError]) -> Vec<String> {
    errs.iter().map(|e| e.to_line()).collect()
}

fn pv(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv1"}, "spec": spec})
}

fn host_pv() -> Value {
    pv(
        json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
              "hostPath": {"path": "/srv/pv1"}}),
    )
}

fn pvc(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
           "metadata": {"name": "data", "namespace": "default"}, "spec": spec})
}

fn good_pvc() -> Value {
    pvc(json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}))
}

fn class(extra: Value) -> Value {
    let mut c = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                       "metadata": {"name": "fast"}, "provisioner": "example.com/fast"});
    for (k, v) in extra.as_object().into_iter().flatten() {
        c[k] = v.clone();
    }
    c
}

/// The object as a create would store it, and its validation.
fn created(kind: Kind, mut obj: Value) -> (Value, Vec<String>) {
    let def = by_kind(kind);
    def.default_on_create(&mut obj);
    let errs = lines(&def.validate_create(&obj));
    (obj, errs)
}

fn create_errors(kind: Kind, obj: Value) -> Vec<String> {
    created(kind, obj).1
}

/// The errors of updating the stored `old` to `new` (the body, defaulted as the handlers do).
fn update_errors(kind: Kind, old: &Value, mut new: Value) -> Vec<String> {
    let def = by_kind(kind);
    def.default_on_update(old, &mut new);
    lines(&def.validate_update(old, &new))
}

#[test]
fn volume_defaults_and_initial_status() {
    let (v, errs) = created(Kind::PersistentVolume, host_pv());
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(v["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(v["spec"]["volumeMode"], "Filesystem");
    assert_eq!(v["spec"]["hostPath"]["type"], "");
    assert_eq!(v["status"]["phase"], "Pending");
    assert!(v["status"]["lastPhaseTransitionTime"].is_string());
    // What the client sets stays; a status it sends does not.
    let mut sent = host_pv();
    sent["spec"]["persistentVolumeReclaimPolicy"] = json!("Delete");
    sent["spec"]["volumeMode"] = json!("Block");
    sent["spec"]["hostPath"]["type"] = json!("DirectoryOrCreate");
    sent["status"] = json!({"phase": "Bound"});
    let (v, _) = created(Kind::PersistentVolume, sent);
    assert_eq!(v["spec"]["persistentVolumeReclaimPolicy"], "Delete");
    assert_eq!(v["spec"]["volumeMode"], "Block");
    assert_eq!(v["spec"]["hostPath"]["type"], "DirectoryOrCreate");
    assert_eq!(v["status"]["phase"], "Pending");
}

#[test]
fn claim_and_class_defaults() {
    let (c, errs) = created(Kind::PersistentVolumeClaim, good_pvc());
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(c["spec"]["volumeMode"], "Filesystem");
    assert_eq!(c["status"], json!({"phase": "Pending"}));
    assert!(c["spec"].get("storageClassName").is_none());
    let (sc, errs) = created(Kind::StorageClass, class(json!({})));
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(sc["reclaimPolicy"], "Delete");
    assert_eq!(sc["volumeBindingMode"], "Immediate");
    let (sc, _) = created(
        Kind::StorageClass,
        class(json!({"reclaimPolicy": "Retain", "volumeBindingMode": "WaitForFirstConsumer"})),
    );
    assert_eq!(sc["reclaimPolicy"], "Retain");
    assert_eq!(sc["volumeBindingMode"], "WaitForFirstConsumer");
}

#[test]
fn volume_validation_messages() {
    let e = create_errors(
        Kind::PersistentVolume,
        pv(json!({"hostPath": {"path": "/x"}})),
    );
    assert_eq!(
        e,
        [
            "spec.accessModes: Required value",
            "spec.capacity: Required value",
            "spec.capacity: Unsupported value: core.ResourceList{}: supported values: \"storage\"",
        ]
    );
    let e = create_errors(
        Kind::PersistentVolume,
        pv(
            json!({"capacity": {"storage": "0"}, "accessModes": ["ReadWriteOncePod", "ReadWriteOnce", "Sometimes"]}),
        ),
    );
    assert_eq!(
        e,
        [
            "spec.accessModes: Unsupported value: \"Sometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
            "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes",
            "spec.capacity[storage]: Invalid value: \"0\": must be greater than zero",
            "spec: Required value: must specify a volume type",
        ]
    );
    let mut two = host_pv();
    two["spec"]["nfs"] = json!({"server": "nfs.example", "path": "/export"});
    two["spec"]["persistentVolumeReclaimPolicy"] = json!("Keep");
    assert_eq!(
        create_errors(Kind::PersistentVolume, two),
        [
            "spec.persistentVolumeReclaimPolicy: Unsupported value: \"Keep\": supported values: \"Delete\", \"Recycle\", \"Retain\"",
            "spec.nfs: Forbidden: may not specify more than 1 volume type",
        ]
    );
    let mut bad = host_pv();
    bad["spec"]["hostPath"] = json!({"path": "srv/../x", "type": "Folder"});
    bad["spec"]["storageClassName"] = json!("Fast");
    assert_eq!(
        create_errors(Kind::PersistentVolume, bad),
        [
            "spec.hostPath.path: Invalid value: \"srv/../x\": must be an absolute path",
            "spec.hostPath.path: Invalid value: \"srv/../x\": must not contain '..'",
            "spec.hostPath.type: Unsupported value: \"Folder\": supported values: \"\", \"BlockDevice\", \"CharDevice\", \"Directory\", \"DirectoryOrCreate\", \"File\", \"FileOrCreate\", \"Socket\"",
            format!(
                "spec.storageClassName: Invalid value: \"Fast\": {}",
                crate::resources::validation::DNS1123_SUBDOMAIN_MSG
            )
            .as_str(),
        ]
    );
    let mut root = host_pv();
    root["spec"]["hostPath"]["path"] = json!("/");
    root["spec"]["persistentVolumeReclaimPolicy"] = json!("Recycle");
    assert_eq!(
        create_errors(Kind::PersistentVolume, root),
        [
            "spec.persistentVolumeReclaimPolicy: Forbidden: may not be 'recycle' for a hostPath mount of '/'"
        ]
    );
}

#[test]
fn local_nfs_and_csi_sources() {
    let base = |src: Value| {
        let mut v = pv(json!({"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOnce"]}));
        for (k, s) in src.as_object().into_iter().flatten() {
            v["spec"][k] = s.clone();
        }
        v
    };
    assert_eq!(
        create_errors(
            Kind::PersistentVolume,
            base(json!({"local": {"path": "disks/a"}}))
        ),
        [
            "spec.local: Invalid value: \"disks/a\": must be an absolute path",
            "spec.nodeAffinity: Required value: Local volume requires node affinity",
        ]
    );
    let affinity = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}});
    let ok = base(json!({"local": {"path": "/mnt/disks/a"}, "nodeAffinity": affinity}));
    assert!(create_errors(Kind::PersistentVolume, ok).is_empty());
    let bad_affinity = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In"},
        {"key": "zone", "operator": "Near", "values": ["a"]}]}]}});
    assert_eq!(
        create_errors(
            Kind::PersistentVolume,
            base(json!({"local": {"path": "/d"}, "nodeAffinity": bad_affinity}))
        ),
        [
            "spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
            "spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[1].operator: Invalid value: \"Near\": not a valid selector operator",
        ]
    );
    assert_eq!(
        create_errors(
            Kind::PersistentVolume,
            base(json!({"hostPath": {"path": "/d"}, "nodeAffinity": {}}))
        ),
        ["spec.nodeAffinity.required: Required value: must specify required node constraints"]
    );
    assert_eq!(
        create_errors(
            Kind::PersistentVolume,
            base(json!({"nfs": {"path": "export"}}))
        ),
        [
            "spec.nfs.server: Required value",
            "spec.nfs.path: Invalid value: \"export\": must be an absolute path",
        ]
    );
    let e = create_errors(
        Kind::PersistentVolume,
        base(json!({"csi": {"driver": "bad_driver", "nodePublishSecretRef": {"name": "s"}}})),
    );
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e[0].starts_with(
        "spec.csi.driver: Invalid value: \"bad_driver\": a lowercase RFC 1123 subdomain"
    ));
    assert_eq!(e[1], "spec.csi.volumeHandle: Required value");
    assert_eq!(
        e[2],
        "spec.csi.nodePublishSecretRef.namespace: Required value"
    );
    let ok = base(json!({"csi": {"driver": "hostpath.csi.k8s.io", "volumeHandle": "v1"}}));
    assert!(create_errors(Kind::PersistentVolume, ok).is_empty());
}

#[test]
fn claim_validation_messages() {
    let e = create_errors(
        Kind::PersistentVolumeClaim,
        pvc(json!({"accessModes": ["ReadWriteOnce"]})),
    );
    assert_eq!(e, ["spec.resources[storage]: Required value"]);
    let e = create_errors(
        Kind::PersistentVolumeClaim,
        pvc(json!({"resources": {"requests": {"storage": "0"}}, "volumeMode": "Raw"})),
    );
    assert_eq!(
        e,
        [
            "spec.accessModes: Required value: at least 1 access mode is required",
            "spec.resources[storage]: Invalid value: \"0\": must be greater than zero",
            "spec.volumeMode: Unsupported value: \"Raw\": supported values: \"Block\", \"Filesystem\"",
        ]
    );
    let e = create_errors(
        Kind::PersistentVolumeClaim,
        pvc(
            json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "lots"}},
                   "selector": {"matchLabels": {"a b": "c"}}}),
        ),
    );
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("spec.selector"), "{e:?}");
    assert_eq!(
        e[1],
        "spec.resources[storage]: Invalid value: \"lots\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    );
    let mut empty_class = good_pvc();
    empty_class["spec"]["storageClassName"] = json!("");
    assert!(create_errors(Kind::PersistentVolumeClaim, empty_class).is_empty());
}

#[test]
fn class_validation_messages() {
    let mut c = class(json!({"reclaimPolicy": "Recycle", "volumeBindingMode": "Later"}));
    c.as_object_mut().map(|m| m.remove("provisioner"));
    assert_eq!(
        create_errors(Kind::StorageClass, c),
        [
            "provisioner: Required value",
            "reclaimPolicy: Unsupported value: \"Recycle\": supported values: \"Delete\", \"Retain\"",
            "volumeBindingMode: Unsupported value: \"Later\": supported values: \"Immediate\", \"WaitForFirstConsumer\"",
        ]
    );
    let e = create_errors(
        Kind::StorageClass,
        class(json!({"provisioner": "Example.com/my disk"})),
    );
    assert_eq!(
        e,
        [
            "provisioner: Invalid value: \"example.com/my disk\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        ]
    );
    let e = create_errors(Kind::StorageClass, class(json!({"provisioner": "a/b/c"})));
    assert_eq!(e.len(), 1);
    assert!(e[0].contains("a qualified name must consist of"), "{e:?}");
}

#[test]
fn table_rows() {
    use crate::resources::storage::{cells, columns};
    let names = |kind| -> Vec<String> {
        columns(kind, json!({"name": "Name"}), json!({"name": "Age"}))
            .iter()
            .map(|c| c["name"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(
        names(Kind::PersistentVolume),
        [
            "Name",
            "Capacity",
            "Access Modes",
            "Reclaim Policy",
            "Status",
            "Claim",
            "StorageClass",
            "VolumeAttributesClass",
            "Reason",
            "Age",
            "VolumeMode"
        ]
    );
    assert_eq!(
        names(Kind::PersistentVolumeClaim),
        [
            "Name",
            "Status",
            "Volume",
            "Capacity",
            "Access Modes",
            "StorageClass",
            "VolumeAttributesClass",
            "Age",
            "VolumeMode"
        ]
    );
    assert_eq!(
        names(Kind::StorageClass),
        [
            "Name",
            "Provisioner",
            "ReclaimPolicy",
            "VolumeBindingMode",
            "AllowVolumeExpansion",
            "Age"
        ]
    );
    let (mut v, _) = created(Kind::PersistentVolume, host_pv());
    v["spec"]["accessModes"] = json!(["ReadWriteMany", "ReadWriteOnce"]);
    v["spec"]["claimRef"] = json!({"namespace": "default", "name": "data"});
    v["spec"]["storageClassName"] = json!("manual");
    let row = cells(Kind::PersistentVolume, &v, "pv1".into(), "5s".into());
    assert_eq!(
        row,
        [
            json!("pv1"),
            json!("1Gi"),
            json!("RWO,RWX"),
            json!("Retain"),
            json!("Pending"),
            json!("default/data"),
            json!("manual"),
            json!("<unset>"),
            json!(""),
            json!("5s"),
            json!("Filesystem")
        ]
    );
    let (mut c, _) = created(Kind::PersistentVolumeClaim, good_pvc());
    c["status"]["capacity"] = json!({"storage": "1Gi"});
    c["status"]["accessModes"] = json!(["ReadWriteOnce"]);
    let row = cells(Kind::PersistentVolumeClaim, &c, "data".into(), "5s".into());
    assert_eq!(
        row[1..6],
        [json!("Pending"), json!(""), json!(""), json!(""), json!("")]
    );
    c["spec"]["volumeName"] = json!("pv1");
    c["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    c["metadata"]["annotations"] = json!({"volume.beta.kubernetes.io/storage-class": "old"});
    let row = cells(Kind::PersistentVolumeClaim, &c, "data".into(), "5s".into());
    assert_eq!(
        row[1..6],
        [
            json!("Terminating"),
            json!("pv1"),
            json!("1Gi"),
            json!("RWO"),
            json!("old")
        ]
    );
    let sc = class(json!({"metadata": {"name": "fast",
        "annotations": {"storageclass.beta.kubernetes.io/is-default-class": "true"}}}));
    let row = cells(Kind::StorageClass, &sc, "fast".into(), "1m".into());
    assert_eq!(
        row,
        [
            json!("fast (default)"),
            json!("example.com/fast"),
            json!("Delete"),
            json!("Immediate"),
            json!(false),
            json!("1m")
        ]
    );
}
