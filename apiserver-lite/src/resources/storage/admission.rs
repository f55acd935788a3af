//! kube-apiserver's storage admission plugins:
//! - DefaultStorageClass (create): a claim without a class (no `spec.storageClassName`, no beta annotation;
//!   "" means "no class" and stays) gets the default StorageClass, the newest if several (then by name).
//! - StorageObjectInUseProtection (create): claims get `kubernetes.io/pvc-protection`, volumes
//!   `kubernetes.io/pv-protection`.
//! - PersistentVolumeClaimResize (update): a larger storage request needs a Bound claim whose class
//!   allows expansion.

use serde_json::{Value, json};

use super::{
    BETA_STORAGE_CLASS_ANNOTATION, PV_PROTECTION_FINALIZER, PVC_PROTECTION_FINALIZER, claim_class,
    is_default_class, quantity,
};
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult};

/// The default class among `classes`: kube's `getDefaultClass` (newest creation time first, then name).
pub fn default_class(classes: &[Value]) -> Option<String> {
    crate::resources::default_class::newest(classes, is_default_class)
}

/// Append `finalizer` unless present.
fn add_finalizer(obj: &mut Value, finalizer: &str) {
    if obj.get("metadata").is_none_or(|m| !m.is_object()) {
        obj["metadata"] = json!({});
    }
    let meta = &mut obj["metadata"];
    match meta.get_mut("finalizers").and_then(Value::as_array_mut) {
        Some(list) => {
            if !list.iter().any(|f| f.as_str() == Some(finalizer)) {
                list.push(json!(finalizer));
            }
        }
        None => meta["finalizers"] = json!([finalizer]),
    }
}

/// Whether a claim asked for a class (the field, even "", or the beta annotation).
fn has_class(claim: &Value) -> bool {
    claim
        .pointer("/spec/storageClassName")
        .is_some_and(|c| !c.is_null())
        || claim
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(BETA_STORAGE_CLASS_ANNOTATION))
            .is_some()
}

/// The mutating plugins on create of a claim or a volume.
pub async fn admit_create(api: &Api, kind: Kind, obj: &mut Value) -> ApiResult<()> {
    match kind {
        Kind::PersistentVolumeClaim => {
            if !has_class(obj) {
                let classes =
                    crate::resources::default_class::list(api, Kind::StorageClass).await?;
                if let Some(name) = default_class(&classes) {
                    if obj.get("spec").is_none_or(|s| !s.is_object()) {
                        obj["spec"] = json!({});
                    }
                    obj["spec"]["storageClassName"] = json!(name);
                }
            }
            add_finalizer(obj, PVC_PROTECTION_FINALIZER);
        }
        Kind::PersistentVolume => add_finalizer(obj, PV_PROTECTION_FINALIZER),
        _ => {}
    }
    Ok(())
}

fn forbidden(claim: &Value, why: &str) -> ApiError {
    let name = claim
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut err = ApiError::forbidden(format!(
        "persistentvolumeclaims {name:?} is forbidden: {why}"
    ));
    err.details = Some(json!({"name": name, "kind": "persistentvolumeclaims"}));
    err
}

fn storage_request(claim: &Value) -> i128 {
    claim
        .pointer("/spec/resources/requests/storage")
        .and_then(Value::as_str)
        .and_then(quantity::parse)
        .unwrap_or(0)
}

/// PersistentVolumeClaimResize on an update of a claim from `old` to `new` (status writes never grow the
/// request, so they pass). kube also asks the volume plugin; skiff only asks the class.
pub async fn admit_update(api: &Api, old: &Value, new: &Value) -> ApiResult<()> {
    if storage_request(new) <= storage_request(old) {
        return Ok(());
    }
    if old.pointer("/status/phase").and_then(Value::as_str) != Some("Bound") {
        return Err(forbidden(
            new,
            "Only bound persistent volume claims can be expanded",
        ));
    }
    let class = claim_class(new).unwrap_or_default();
    let mut allowed = false;
    if !class.is_empty() && claim_class(old).as_deref() == Some(class.as_str()) {
        let key = by_kind(Kind::StorageClass).key(None, &class);
        if let Some(kv) = api.store.get(&key).await? {
            let sc: Value = serde_json::from_slice(&kv.value)
                .map_err(|e| ApiError::internal(format!("decoding {key}: {e}")))?;
            allowed = sc.get("allowVolumeExpansion").and_then(Value::as_bool) == Some(true);
        }
    }
    if !allowed {
        return Err(forbidden(
            new,
            "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize",
        ));
    }
    Ok(())
}
