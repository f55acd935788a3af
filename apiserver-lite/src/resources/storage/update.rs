//! Update rules (kube's `ValidatePersistentVolumeUpdate`, `ValidatePersistentVolumeClaimUpdate`,
//! `ValidateStorageClassUpdate`). kube appends a go-cmp diff to the two "immutable after creation"
//! messages; skiff gives the sentence alone.

use serde_json::{Map, Value, json};

use super::{BETA_STORAGE_CLASS_ANNOTATION, quantity, sources};
use crate::status::FieldError;

/// Empty lists and maps are equal to absent ones, as kube's semantic equality has it.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, x)| {
                    !(x.is_null()
                        || x.as_array().is_some_and(Vec::is_empty)
                        || x.as_object().is_some_and(Map::is_empty))
                })
                .map(|(k, x)| (k.clone(), canonical(x)))
                .collect(),
        ),
        Value::Array(l) => Value::Array(l.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn immutable(path: &str, old: Option<&Value>, new: Option<&Value>) -> Option<FieldError> {
    let norm = |v: Option<&Value>| v.filter(|x| !x.is_null()).map(canonical);
    (norm(old) != norm(new))
        .then(|| FieldError::invalid(path, new.unwrap_or(&Value::Null), "field is immutable"))
}

/// PersistentVolumes: the source may not change (a CSI `controllerExpandSecretRef` may be added), nor the
/// volume mode, nor a node affinity once set.
pub fn persistent_volume(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let old_spec = old.get("spec").cloned().unwrap_or(json!({}));
    let mut new_spec = new.get("spec").cloned().unwrap_or(json!({}));
    if old_spec.pointer("/csi").is_some_and(|c| {
        c.get("controllerExpandSecretRef")
            .is_none_or(Value::is_null)
    }) && let Some(csi) = new_spec.get_mut("csi").and_then(Value::as_object_mut)
    {
        csi.remove("controllerExpandSecretRef");
    }
    if canonical(&sources::source_part(&old_spec)) != canonical(&sources::source_part(&new_spec)) {
        errs.push(FieldError::forbidden(
            "spec.persistentvolumesource",
            "spec.persistentvolumesource is immutable after creation",
        ));
    }
    errs.extend(immutable(
        "volumeMode",
        old_spec.get("volumeMode"),
        new_spec.get("volumeMode"),
    ));
    if old_spec.get("nodeAffinity").is_some_and(|a| !a.is_null()) {
        errs.extend(immutable(
            "nodeAffinity",
            old_spec.get("nodeAffinity"),
            new_spec.get("nodeAffinity"),
        ));
    }
    errs
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

fn storage_request(obj: &Value, pointer: &str) -> i128 {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .and_then(quantity::parse)
        .unwrap_or(0)
}

/// A spec for comparison: canonical, `volumeName` "" as absent, quantities by value.
fn comparable_claim_spec(spec: &Value) -> Value {
    let mut c = canonical(spec);
    if let Some(m) = c.as_object_mut() {
        if m.get("volumeName").and_then(Value::as_str) == Some("") {
            m.remove("volumeName");
        }
        if let Some(res) = m.get_mut("resources").and_then(Value::as_object_mut) {
            for list in res.values_mut() {
                if let Some(list) = list.as_object_mut() {
                    for q in list.values_mut() {
                        if let Some(n) = q.as_str().and_then(quantity::parse) {
                            *q = json!(n.to_string());
                        }
                    }
                }
            }
        }
    }
    c
}

/// PersistentVolumeClaims: the spec is immutable except `volumeName` (set once, by the binder), a class
/// given to a claim that had none (retroactive default class), and for a Bound claim the storage request
/// (not below `status.capacity`: kube 1.32's RecoverVolumeExpansionFailure is on).
pub fn persistent_volume_claim(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut old_spec = old.get("spec").cloned().unwrap_or(json!({}));
    let mut new_spec = new.get("spec").cloned().unwrap_or(json!({}));
    if old_spec
        .get("volumeName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        old_spec["volumeName"] = new_spec.get("volumeName").cloned().unwrap_or(Value::Null);
    }
    let old_class = old_spec.get("storageClassName").filter(|c| !c.is_null());
    let new_class = new_spec.get("storageClassName").filter(|c| !c.is_null());
    let old_beta = annotation(old, BETA_STORAGE_CLASS_ANNOTATION);
    let new_beta = annotation(new, BETA_STORAGE_CLASS_ANNOTATION);
    let from_annotation = old_beta.is_some()
        && old_class.is_none()
        && new_class.and_then(Value::as_str) == old_beta
        && (new_beta.is_none() || new_beta == old_beta);
    if from_annotation {
        new_spec["storageClassName"] = Value::Null;
    } else {
        if old_beta != new_beta {
            errs.push(FieldError::invalid(
                format!("metadata.annotations[{BETA_STORAGE_CLASS_ANNOTATION}]"),
                &json!(new_beta.unwrap_or("")),
                "field is immutable",
            ));
        }
        let from_nil = new_class.is_some()
            && old_class.is_none()
            && (old_beta.is_none() || new_class.and_then(Value::as_str) == old_beta);
        if from_nil {
            new_spec["storageClassName"] = old_class.cloned().unwrap_or(Value::Null);
        }
    }
    let bound = new.pointer("/status/phase").and_then(Value::as_str) == Some("Bound");
    if bound && let Some(req) = new_spec.pointer_mut("/resources/requests") {
        req["storage"] = old_spec
            .pointer("/resources/requests/storage")
            .cloned()
            .unwrap_or(Value::Null);
    }
    if let Some(m) = new_spec.as_object_mut() {
        match old_spec.get("volumeAttributesClassName") {
            Some(v) => m.insert("volumeAttributesClassName".into(), v.clone()),
            None => m.remove("volumeAttributesClassName"),
        };
    }
    if comparable_claim_spec(&old_spec) != comparable_claim_spec(&new_spec) {
        errs.push(FieldError::forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
        ));
    }
    let old_size = storage_request(old, "/spec/resources/requests/storage");
    let new_size = storage_request(new, "/spec/resources/requests/storage");
    let status_size = storage_request(old, "/status/capacity/storage");
    if new_size < old_size && new_size <= status_size {
        errs.push(FieldError::forbidden(
            "spec.resources.requests.storage",
            "field can not be less than status.capacity",
        ));
    }
    errs.extend(immutable(
        "volumeMode",
        old.pointer("/spec/volumeMode"),
        new.pointer("/spec/volumeMode"),
    ));
    errs
}

/// StorageClasses: provisioner, parameters, reclaim policy and binding mode are fixed.
pub fn storage_class(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let get = |v: &Value, k: &str| v.get(k).filter(|x| !x.is_null()).map(canonical);
    if get(old, "parameters") != get(new, "parameters") {
        errs.push(FieldError::forbidden(
            "parameters",
            "updates to parameters are forbidden.",
        ));
    }
    if get(old, "provisioner") != get(new, "provisioner") {
        errs.push(FieldError::forbidden(
            "provisioner",
            "updates to provisioner are forbidden.",
        ));
    }
    if get(old, "reclaimPolicy") != get(new, "reclaimPolicy") {
        errs.push(FieldError::forbidden(
            "reclaimPolicy",
            "updates to reclaimPolicy are forbidden.",
        ));
    }
    errs.extend(immutable(
        "volumeBindingMode",
        old.get("volumeBindingMode"),
        new.get("volumeBindingMode"),
    ));
    errs
}
