//! Generic ephemeral volumes (`spec.volumes[].ephemeral.volumeClaimTemplate`): the claim name a pod's
//! volume stands for (kube's `ephemeral.VolumeClaimName`), the defaults of the template's claim spec and
//! kube's `validateEphemeralVolumeSource` / `ValidatePersistentVolumeClaimTemplate`.
//!
//! The ephemeral volume controller creates the claim `<pod>-<volume>` from the template, owned by the
//! pod; the scheduler, the protection controller, the Node authorizer and the agent then treat the volume
//! as a `persistentVolumeClaim` of that name that must be controlled by the pod.

use serde_json::{Map, Value, json};

use crate::resources::storage;
use crate::resources::validation::{QUALIFIED_NAME_MSG, is_qualified_name, validate_labels};
use crate::status::FieldError;

/// kube's `TotalAnnotationSizeLimitB`.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// The template metadata fields kube refuses (all but labels and annotations), in the order of Go's
/// `ObjectMeta`, each with the field name kube's reflection-based check reports (its Go name with the
/// first letter lowered: `UID` becomes `uID`).
const FORBIDDEN_METADATA: &[(&str, &str)] = &[
    ("name", "name"),
    ("generateName", "generateName"),
    ("namespace", "namespace"),
    ("selfLink", "selfLink"),
    ("uid", "uID"),
    ("resourceVersion", "resourceVersion"),
    ("generation", "generation"),
    ("creationTimestamp", "creationTimestamp"),
    ("deletionTimestamp", "deletionTimestamp"),
    ("deletionGracePeriodSeconds", "deletionGracePeriodSeconds"),
    ("ownerReferences", "ownerReferences"),
    ("finalizers", "finalizers"),
    ("managedFields", "managedFields"),
];

/// The claim of the pod's generic ephemeral volume `volume`: `<pod>-<volume>` (kube's
/// `ephemeral.VolumeClaimName`; the name never fails, so a claim of that name may belong to someone else
/// and must be checked with [`claim_is_for_pod`]).
pub fn claim_name(pod_name: &str, volume_name: &str) -> String {
    format!("{pod_name}-{volume_name}")
}

/// Whether `claim` is the ephemeral volume claim created for `pod` (kube's `VolumeIsForPod`): same
/// namespace, and an ownerReference with `controller: true` naming the pod's uid.
pub fn claim_is_for_pod(pod: &Value, claim: &Value) -> bool {
    let text = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
    let pod_uid = text(pod, "/metadata/uid").unwrap_or_default();
    if pod_uid.is_empty() || text(pod, "/metadata/namespace") != text(claim, "/metadata/namespace")
    {
        return false;
    }
    claim
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|r| {
            r.get("controller").and_then(Value::as_bool) == Some(true)
                && r.get("uid").and_then(Value::as_str) == Some(pod_uid.as_str())
        })
}

/// kube's `VolumeIsForPod` error, as the scheduler and the kubelet report it.
pub fn not_owner_message(namespace: &str, claim: &str, pod: &str) -> String {
    format!("PVC {namespace}/{claim} was not created for pod {namespace}/{pod} (pod is not owner)")
}

/// The ephemeral volumes of a pod spec: (index, volume name, `volumeClaimTemplate`).
pub fn volumes(spec: &Value) -> impl Iterator<Item = (usize, &str, Option<&Value>)> {
    spec.get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, v)| {
            let ephemeral = v.get("ephemeral").filter(|e| !e.is_null())?;
            let name = v.get("name").and_then(Value::as_str).unwrap_or("");
            let template = ephemeral
                .get("volumeClaimTemplate")
                .filter(|t| !t.is_null());
            Some((i, name, template))
        })
}

/// The defaults kube gives an ephemeral volume's claim spec (`SetDefaults_PersistentVolumeClaimSpec`):
/// `volumeMode: Filesystem`.
pub fn apply_defaults(spec: &mut Value) {
    let Some(vols) = spec.get_mut("volumes").and_then(Value::as_array_mut) else {
        return;
    };
    for v in vols {
        let Some(claim_spec) = v
            .pointer_mut("/ephemeral/volumeClaimTemplate/spec")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        if claim_spec.get("volumeMode").is_none_or(Value::is_null) {
            claim_spec.insert("volumeMode".into(), json!("Filesystem"));
        }
    }
}

/// kube's `validateEphemeralVolumeSource` for the `ephemeral` source at `path` (`spec.volumes[i].ephemeral`).
pub fn validate_source(ephemeral: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let path = format!("{path}.volumeClaimTemplate");
    let Some(template) = ephemeral
        .get("volumeClaimTemplate")
        .filter(|t| !t.is_null())
    else {
        errs.push(FieldError::required(path, ""));
        return errs;
    };
    let empty = Map::new();
    let meta = template
        .get("metadata")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    template_metadata(meta, &format!("{path}.metadata"), &mut errs);
    let claim_spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    errs.extend(storage::validate_claim_template_spec(
        &claim_spec,
        &format!("{path}.spec"),
    ));
    errs
}

/// kube's `validatePersistentVolumeClaimTemplateObjectMeta`: valid annotations and labels, nothing else.
fn template_metadata(meta: &Map<String, Value>, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(annotations) = meta.get("annotations").and_then(Value::as_object) {
        let field = format!("{path}.annotations");
        let mut size = 0;
        for (k, v) in annotations {
            if !is_qualified_name(&k.to_lowercase()) {
                errs.push(FieldError::invalid(&field, &json!(k), QUALIFIED_NAME_MSG));
            }
            size += k.len() + v.as_str().map_or(0, str::len);
        }
        if size > ANNOTATIONS_MAX_BYTES {
            errs.push(FieldError {
                reason: "FieldValueTooLong",
                field,
                message: format!("Too long: may not be more than {ANNOTATIONS_MAX_BYTES} bytes"),
            });
        }
    }
    if let Some(labels) = meta.get("labels").and_then(Value::as_object) {
        errs.extend(validate_labels(labels, &format!("{path}.labels")));
    }
    for (key, go_name) in FORBIDDEN_METADATA {
        if meta.get(*key).is_some_and(is_set) {
            errs.push(FieldError::forbidden(
                format!("{path}.{go_name}"),
                "cannot be set for an ephemeral volume",
            ));
        }
    }
}

/// Whether a metadata value differs from Go's zero value (an empty list is a non-nil slice in Go).
fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::Bool(b) => *b,
        Value::Array(_) | Value::Object(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(spec: Value) -> Vec<(String, String)> {
        let vols = spec["volumes"].as_array().cloned().unwrap_or_default();
        vols.iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let e = v.get("ephemeral")?;
                Some(validate_source(e, &format!("spec.volumes[{i}].ephemeral")))
            })
            .flatten()
            .map(|e| (e.field, e.message))
            .collect()
    }

    fn good_template() -> Value {
        json!({"metadata": {"labels": {"app": "x"}, "annotations": {"a.io/b": "c"}},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    }

    #[test]
    fn names_and_ownership() {
        assert_eq!(claim_name("web-0", "scratch"), "web-0-scratch");
        let pod = json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}});
        let claim = |ns: &str, uid: &str, controller: Value| {
            json!({"metadata": {"name": "p-v", "namespace": ns, "ownerReferences": [
                {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": uid, "controller": controller}]}})
        };
        assert!(claim_is_for_pod(&pod, &claim("ns", "u1", json!(true))));
        assert!(!claim_is_for_pod(&pod, &claim("ns", "u1", json!(false))));
        assert!(!claim_is_for_pod(&pod, &claim("ns", "u1", Value::Null)));
        assert!(!claim_is_for_pod(&pod, &claim("ns", "u2", json!(true))));
        assert!(!claim_is_for_pod(&pod, &claim("other", "u1", json!(true))));
        assert!(!claim_is_for_pod(
            &pod,
            &json!({"metadata": {"namespace": "ns"}})
        ));
        assert_eq!(
            not_owner_message("ns", "p-v", "p"),
            "PVC ns/p-v was not created for pod ns/p (pod is not owner)"
        );
    }

    #[test]
    fn a_template_is_required() {
        for ephemeral in [json!({}), json!({"volumeClaimTemplate": null})] {
            assert_eq!(
                fields(
                    json!({"volumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "ephemeral": ephemeral}]})
                ),
                vec![(
                    "spec.volumes[1].ephemeral.volumeClaimTemplate".to_string(),
                    "Required value".to_string()
                )]
            );
        }
        assert_eq!(
            fields(
                json!({"volumes": [{"name": "b", "ephemeral": {"volumeClaimTemplate": good_template()}}]})
            ),
            vec![]
        );
    }

    #[test]
    fn the_spec_is_validated_as_a_claims() {
        let p = "spec.volumes[0].ephemeral.volumeClaimTemplate.spec";
        assert_eq!(
            fields(json!({"volumes": [{"name": "b", "ephemeral": {"volumeClaimTemplate": {}}}]})),
            vec![
                (
                    format!("{p}.accessModes"),
                    "Required value: at least 1 access mode is required".to_string()
                ),
                (
                    format!("{p}.resources[storage]"),
                    "Required value".to_string()
                ),
            ]
        );
        let mut t = good_template();
        t["spec"]["accessModes"] = json!(["Sometimes"]);
        t["spec"]["storageClassName"] = json!("Bad_Class");
        let got: Vec<String> =
            fields(json!({"volumes": [{"name": "b", "ephemeral": {"volumeClaimTemplate": t}}]}))
                .into_iter()
                .map(|(f, _)| f)
                .collect();
        assert_eq!(
            got,
            vec![format!("{p}.accessModes"), format!("{p}.storageClassName")]
        );
    }

    #[test]
    fn template_metadata_only_labels_and_annotations() {
        let mut t = good_template();
        t["metadata"]["name"] = json!("x");
        t["metadata"]["uid"] = json!("u");
        t["metadata"]["finalizers"] = json!([]);
        t["metadata"]["namespace"] = json!("");
        t["metadata"]["creationTimestamp"] = Value::Null;
        t["metadata"]["labels"] = json!({"bad key!": "v"});
        t["metadata"]["annotations"] = json!({"Also Bad": "v"});
        let p = "spec.volumes[0].ephemeral.volumeClaimTemplate.metadata";
        let got: Vec<String> =
            fields(json!({"volumes": [{"name": "b", "ephemeral": {"volumeClaimTemplate": t}}]}))
                .into_iter()
                .map(|(f, m)| format!("{f}: {m}"))
                .collect();
        assert_eq!(got.len(), 5, "{got:?}");
        assert!(got[0].starts_with(&format!("{p}.annotations: Invalid value: \"Also Bad\"")));
        assert!(got[1].starts_with(&format!("{p}.labels: Invalid value: \"bad key!\"")));
        assert_eq!(
            got[2..],
            [
                format!("{p}.name: Forbidden: cannot be set for an ephemeral volume"),
                format!("{p}.uID: Forbidden: cannot be set for an ephemeral volume"),
                format!("{p}.finalizers: Forbidden: cannot be set for an ephemeral volume"),
            ]
        );
    }

    #[test]
    fn defaults_volume_mode() {
        let mut spec = json!({"volumes": [
            {"name": "a", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
            {"name": "b", "ephemeral": {"volumeClaimTemplate": {"spec": {"volumeMode": "Block"}}}},
            {"name": "c", "emptyDir": {}}]});
        apply_defaults(&mut spec);
        assert_eq!(
            spec["volumes"][0]["ephemeral"]["volumeClaimTemplate"]["spec"]["volumeMode"],
            "Filesystem"
        );
        assert_eq!(
            spec["volumes"][1]["ephemeral"]["volumeClaimTemplate"]["spec"]["volumeMode"],
            "Block"
        );
        assert_eq!(spec["volumes"][2], json!({"name": "c", "emptyDir": {}}));
    }
}
