use serde_json::{Value, json};

use super::{apply_defaults, validate};

/// The `field: message` lines kubectl shows for a pod spec with `volumes`.
fn lines(volumes: Value) -> Vec<String> {
    lines_named(volumes, "")
}

fn lines_named(volumes: Value, pod: &str) -> Vec<String> {
    validate(&json!({"volumes": volumes}), pod)
        .1
        .iter()
        .map(|e| e.to_line())
        .collect()
}

#[test]
fn exactly_one_source() {
    assert_eq!(
        lines(json!([{"name": "v"}])),
        ["spec.volumes[0]: Required value: must specify a volume type"]
    );
    assert_eq!(
        lines(
            json!([{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}, "csi": {"driver": "d"}}])
        ),
        [
            "spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type",
            "spec.volumes[0].csi: Forbidden: may not specify more than 1 volume type",
        ]
    );
    // kube's own names for a second cephfs or downwardAPI source.
    assert_eq!(
        lines(
            json!([{"name": "v", "secret": {"secretName": "s"}, "cephfs": {"monitors": ["m"]},
            "downwardAPI": {}}])
        ),
        [
            "spec.volumes[0].cephFS: Forbidden: may not specify more than 1 volume type",
            "spec.volumes[0].downwarAPI: Forbidden: may not specify more than 1 volume type",
        ]
    );
    // Sources the agent cannot mount are valid.
    assert_eq!(
        lines(json!([{"name": "a", "nfs": {"server": "s", "path": "/e"}},
            {"name": "b", "csi": {"driver": "csi.example.com"}},
            {"name": "c", "iscsi": {"targetPortal": "1.2.3.4:3260", "iqn": "iqn.2001-04.com.example:t", "lun": 0}}])),
        Vec::<String>::new()
    );
}

#[test]
fn names_and_the_volumes_mounts_may_use() {
    let (names, errs) = validate(
        &json!({"volumes": [{"name": "ok", "emptyDir": {}}, {"name": "bad", "hostPath": {}},
            {"name": "ok", "emptyDir": {}}, {"name": "Up", "emptyDir": {}}, {"emptyDir": {}}]}),
        "",
    );
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.volumes[1].hostPath.path",
            "spec.volumes[2].name",
            "spec.volumes[3].name",
            "spec.volumes[4].name",
        ]
    );
    assert_eq!(errs[1].message, "Duplicate value: \"ok\"");
    // Only volumes without errors may be mounted.
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["ok"]);
}

#[test]
fn host_path_and_empty_dir() {
    assert_eq!(
        lines(
            json!([{"name": "a", "hostPath": {"path": "/a/../b", "type": "Dir"}},
            {"name": "b", "hostPath": {"path": "rel", "type": ""}},
            {"name": "c", "emptyDir": {"sizeLimit": "-1Gi"}},
            {"name": "d", "emptyDir": {"sizeLimit": "lots"}},
            {"name": "e", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}])
        ),
        [
            "spec.volumes[0].hostPath.path: Invalid value: \"/a/../b\": must not contain '..'",
            "spec.volumes[0].hostPath.type: Unsupported value: \"Dir\": supported values: \"\", \"BlockDevice\", \"CharDevice\", \"Directory\", \"DirectoryOrCreate\", \"File\", \"FileOrCreate\", \"Socket\"",
            "spec.volumes[2].emptyDir.sizeLimit: Forbidden: SizeLimit field must be a valid resource quantity",
            "spec.volumes[3].emptyDir.sizeLimit: Invalid value: \"lots\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        ]
    );
}

#[test]
fn config_map_secret_and_claim() {
    assert_eq!(
        lines(
            json!([{"name": "a", "configMap": {"defaultMode": 512, "items": [
                {"key": "", "path": "/abs"}, {"key": "k", "path": "../up", "mode": -1},
                {"key": "k", "path": "..x"}, {"key": "k", "path": ""}]}},
            {"name": "b", "secret": {"name": "wrong-field"}},
            {"name": "c", "persistentVolumeClaim": {}}])
        ),
        [
            "spec.volumes[0].configMap.name: Required value",
            "spec.volumes[0].configMap.defaultMode: Invalid value: 512: must be a number between 0 and 0777 (octal), both inclusive",
            "spec.volumes[0].configMap.items[0].key: Required value",
            "spec.volumes[0].configMap.items[0].path: Invalid value: \"/abs\": must be a relative path",
            "spec.volumes[0].configMap.items[1].path: Invalid value: \"../up\": must not contain '..'",
            "spec.volumes[0].configMap.items[1].mode: Invalid value: -1: must be a number between 0 and 0777 (octal), both inclusive",
            "spec.volumes[0].configMap.items[2].path: Invalid value: \"..x\": must not start with '..'",
            "spec.volumes[0].configMap.items[3].path: Required value",
            "spec.volumes[1].secret.secretName: Required value",
            "spec.volumes[2].persistentVolumeClaim.claimName: Required value",
        ]
    );
}

#[test]
fn downward_api_volume() {
    assert_eq!(
        lines(json!([{"name": "a", "downwardAPI": {"items": [
            {"path": "ok", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels['app']"}},
            {"path": "ip", "fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}},
            {"path": "x", "fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nope"}},
            {"path": "y", "fieldRef": {"apiVersion": "v2", "fieldPath": "metadata.name"}},
            {"path": "cpu", "resourceFieldRef": {"resource": "limits.cpu"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "3Mi"}},
            {"path": "z"}]}}])),
        [
            "spec.volumes[0].downwardAPI.fieldRef.fieldPath: Unsupported value: \"status.podIP\": supported values: \"metadata.annotations\", \"metadata.labels\", \"metadata.name\", \"metadata.namespace\", \"metadata.uid\"",
            "spec.volumes[0].downwardAPI.fieldRef.fieldPath: Invalid value: \"spec.nope\": error converting fieldPath: field label not supported: spec.nope",
            "spec.volumes[0].downwardAPI.fieldRef.fieldPath: Invalid value: \"metadata.name\": error converting fieldPath: unsupported pod version: v2",
            "spec.volumes[0].downwardAPI.resourceFieldRef.containerName: Required value",
            "spec.volumes[0].downwardAPI.resourceFieldRef.divisor: Invalid value: \"limits.memory\": only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource",
            "spec.volumes[0].downwardAPI: Required value: one of fieldRef and resourceFieldRef is required",
        ]
    );
}

#[test]
fn projected_sources() {
    let token = |secs: i64, path: &str| json!({"serviceAccountToken": {"expirationSeconds": secs, "path": path}});
    assert_eq!(
        lines(json!([{"name": "a", "projected": {"sources": [
            token(3600, "token"),
            token(60, ""),
            token(5_000_000_000, "/abs"),
            {"configMap": {"name": "c", "items": [{"key": "k", "path": "dup"}]},
             "secret": {"name": "s", "items": [{"key": "k", "path": "dup"}]}},
            {"downwardAPI": {"items": [{"path": "dup", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}]}},
            {},
        ]}}])),
        [
            "spec.volumes[0].projected.sources[1].serviceAccountToken.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes",
            "spec.volumes[0].projected.path: Required value",
            "spec.volumes[0].projected.sources[2].serviceAccountToken.expirationSeconds: Invalid value: 5000000000: may not specify a duration larger than 2^32 seconds",
            "spec.volumes[0].projected.path: Invalid value: \"/abs\": must be a relative path",
            "spec.volumes[0].projected: Invalid value: \"c\": conflicting duplicate paths",
            "spec.volumes[0].projected.sources[3]: Forbidden: may not specify more than 1 volume type per source",
            "spec.volumes[0].projected: Invalid value: \"dup\": conflicting duplicate paths",
        ]
    );
    // The service account admission's volume is valid once defaulted.
    let mut spec = json!({"volumes": [crate::serviceaccount::admission::api_access_volume("kube-api-access-x")]});
    apply_defaults(&mut spec);
    assert!(validate(&spec, "p").1.is_empty());
}

#[test]
fn ephemeral_volumes_and_their_claims() {
    let template = json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    let long = "p".repeat(250);
    assert_eq!(
        lines_named(
            json!([{"name": "scratch", "ephemeral": {"volumeClaimTemplate": template}},
                {"name": "other", "persistentVolumeClaim": {"claimName": "web-scratch"}}]),
            "web"
        ),
        [
            "spec.volumes[1].persistentVolumeClaim.claimName: Invalid value: \"web-scratch\": must not reference a PVC that gets created for an ephemeral volume"
        ]
    );
    assert_eq!(
        lines_named(
            json!([{"name": "scratch", "ephemeral": {"volumeClaimTemplate": template}}]),
            &long
        ),
        [format!(
            "spec.volumes[0].name: Invalid value: \"scratch\": PVC name \"{long}-scratch\": must be no more than 253 characters"
        )]
    );
    assert_eq!(
        lines(json!([{"name": "e", "ephemeral": {}}])),
        ["spec.volumes[0].ephemeral.volumeClaimTemplate: Required value"]
    );
}

#[test]
fn other_in_tree_sources() {
    assert_eq!(
        lines(
            json!([{"name": "a", "gcePersistentDisk": {"partition": 300}},
            {"name": "b", "flexVolume": {"driver": "d", "options": {"x.kubernetes.io/y": "1"}}},
            {"name": "c", "fc": {"targetWWNs": ["w"]}},
            {"name": "d", "csi": {"driver": "", "nodePublishSecretRef": {"name": "Bad_Name"}}},
            {"name": "e", "gitRepo": {"repository": "r", "directory": "/abs"}}])
        ),
        [
            "spec.volumes[0].persistentDisk.pdName: Required value",
            "spec.volumes[0].persistentDisk.partition: Invalid value: 300: must be between 1 and 255, inclusive",
            "spec.volumes[1].flexVolume.options[x.kubernetes.io/y]: Invalid value: \"x.kubernetes.io/y\": kubernetes.io and k8s.io namespaces are reserved",
            "spec.volumes[2].fc.lun: Required value: lun is required if targetWWNs is specified",
            "spec.volumes[3].csi.driver: Required value",
            "spec.volumes[3].csi.driver: Invalid value: \"\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            "spec.volumes[3].csi.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            "spec.volumes[4].gitRepo.directory: Invalid value: \"/abs\": must be a relative path",
        ]
    );
}

#[test]
fn defaults_as_kube_v1() {
    let mut spec = json!({"volumes": [
        {"name": "a"},
        {"name": "b", "hostPath": {"path": "/x"}},
        {"name": "c", "configMap": {"name": "c"}},
        {"name": "d", "secret": {"secretName": "s", "defaultMode": 256}},
        {"name": "e", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "m", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory"}}]}},
        {"name": "f", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}},
            {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}},
        {"name": "g", "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}}}},
    ]});
    apply_defaults(&mut spec);
    let v = &spec["volumes"];
    assert_eq!(v[0], json!({"name": "a", "emptyDir": {}}));
    assert_eq!(v[1]["hostPath"]["type"], "");
    assert_eq!(v[2]["configMap"]["defaultMode"], 420);
    assert_eq!(v[3]["secret"]["defaultMode"], 256);
    assert_eq!(v[4]["downwardAPI"]["defaultMode"], 420);
    assert_eq!(
        v[4]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"],
        "v1"
    );
    assert_eq!(
        v[4]["downwardAPI"]["items"][1]["resourceFieldRef"]["divisor"],
        "0"
    );
    assert_eq!(v[5]["projected"]["defaultMode"], 420);
    assert_eq!(
        v[5]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
        3600
    );
    assert_eq!(
        v[5]["projected"]["sources"][1]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"],
        "v1"
    );
    assert_eq!(
        v[6]["ephemeral"]["volumeClaimTemplate"]["spec"]["volumeMode"],
        "Filesystem"
    );
    assert!(validate(&spec, "p").1.is_empty());
    // Defaulting twice changes nothing.
    let once = spec.clone();
    apply_defaults(&mut spec);
    assert_eq!(spec, once);
}

#[test]
fn pods_and_templates_get_the_rules() {
    use crate::resources::{pod, workloads};
    let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x",
        "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
        "volumes": [{"name": "v", "emptyDir": {}, "configMap": {"name": "c"}}]}});
    let got: Vec<String> = pod::validate(&p).iter().map(|e| e.to_line()).collect();
    assert_eq!(
        got,
        [
            "spec.volumes[0].configMap: Forbidden: may not specify more than 1 volume type",
            "spec.containers[0].volumeMounts[0].name: Not found: \"v\"",
        ]
    );
    pod::apply_defaults(&mut p, true);
    assert_eq!(p["spec"]["volumes"][0]["configMap"]["defaultMode"], 420);
    // A pod stored before the defaults existed may still be updated.
    let mut old = p.clone();
    if let Some(cm) = old["spec"]["volumes"][0]["configMap"].as_object_mut() {
        cm.remove("defaultMode");
    }
    assert!(pod::validate_update(&old, &p).is_empty());

    let mut template = json!({"spec": {"containers": [{"name": "c", "image": "x"}],
        "volumes": [{"name": "s", "secret": {}}, {"name": "e", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]}});
    workloads::default_template(&mut template);
    assert_eq!(template["spec"]["volumes"][0]["secret"]["defaultMode"], 420);
    assert_eq!(
        template["spec"]["volumes"][1]["ephemeral"]["volumeClaimTemplate"]["spec"]["volumeMode"],
        "Filesystem"
    );
    template["metadata"] = json!({"labels": {"app": "a"}});
    let sel = json!({"matchLabels": {"app": "a"}});
    let fields: Vec<String> = workloads::validate_template(&template, Some(&sel))
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(
        fields[0], "spec.template.spec.volumes[0].secret.secretName",
        "{fields:?}"
    );
}
