//! Storage kinds: core/v1 PersistentVolumes and PersistentVolumeClaims, storage.k8s.io/v1 StorageClasses,
//! as kube 1.32's API server has them: typed schemas, defaults (`defaults`), validation (`validation`,
//! `sources`, `update`), table columns (`table`), the storage admission plugins (`admission`) and the
//! default class skiff creates at start (`bootstrap`).

pub mod admission;
pub mod bootstrap;
mod defaults;
mod names;
pub mod quantity;
mod sources;
mod table;
mod update;
mod validation;

use serde_json::Value;

use super::Kind;
use crate::status::FieldError;

pub use table::{access_modes, cells, columns};
pub use validation::ACCESS_MODES;
// Pod volumes share the source rules and name checks of PersistentVolumes (`pod::volumes`).
pub(crate) use names::{
    check_label, check_subdomain, invalid_each, qualified_name_errors, subdomain_errors,
};
pub(crate) use sources::{HOST_PATH_TYPES, csi_driver, nfs, no_backsteps, one_source};

/// The annotation that makes a StorageClass the default one.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
/// Its beta name, still honoured by kube.
pub const BETA_DEFAULT_CLASS_ANNOTATION: &str = "storageclass.beta.kubernetes.io/is-default-class";
/// The beta way of naming a claim's or volume's class; wins over `spec.storageClassName`.
pub const BETA_STORAGE_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";
/// StorageObjectInUseProtection's finalizers.
pub const PVC_PROTECTION_FINALIZER: &str = "kubernetes.io/pvc-protection";
pub const PV_PROTECTION_FINALIZER: &str = "kubernetes.io/pv-protection";
/// The StorageClass skiff-apiserver creates at start (see `bootstrap`).
pub const DEFAULT_CLASS_NAME: &str = "local-path";
/// The provisioner of that class, served by skiff-apiserver's volume controller.
pub const LOCAL_PATH_PROVISIONER: &str = "skiff.io/local-path";

/// Round-trip through the k8s-openapi type (unknown fields dropped).
pub fn normalize(kind: Kind, v: &Value) -> Result<Value, String> {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    use k8s_openapi::api::storage::v1::StorageClass;
    fn rt<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> Result<Value, String> {
        let t: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        serde_json::to_value(t).map_err(|e| e.to_string())
    }
    match kind {
        Kind::PersistentVolume => rt::<PersistentVolume>(v),
        Kind::PersistentVolumeClaim => rt::<PersistentVolumeClaim>(v),
        _ => rt::<StorageClass>(v),
    }
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// Whether `class` carries a default-class annotation (`"true"`, GA or beta name).
pub fn is_default_class(class: &Value) -> bool {
    annotation(class, DEFAULT_CLASS_ANNOTATION) == Some("true")
        || annotation(class, BETA_DEFAULT_CLASS_ANNOTATION) == Some("true")
}

/// A claim's class (kube's `GetPersistentVolumeClaimClass`): the beta annotation, else
/// `spec.storageClassName`; `None` when neither is set ("" is a class request: "no class").
pub fn claim_class(claim: &Value) -> Option<String> {
    annotation(claim, BETA_STORAGE_CLASS_ANNOTATION)
        .or_else(|| {
            claim
                .pointer("/spec/storageClassName")
                .and_then(Value::as_str)
        })
        .map(str::to_string)
}

/// A volume's class (kube's `GetPersistentVolumeClass`), "" when none.
pub fn volume_class(volume: &Value) -> String {
    annotation(volume, BETA_STORAGE_CLASS_ANNOTATION)
        .or_else(|| {
            volume
                .pointer("/spec/storageClassName")
                .and_then(Value::as_str)
        })
        .unwrap_or("")
        .to_string()
}

/// Defaults and the initial status on create.
pub fn prepare_create(kind: Kind, obj: &mut Value) {
    defaults::prepare_create(kind, obj, &crate::handlers::now_rfc3339());
}

/// Defaults on an update of the main resource (`old` is the stored object).
pub fn prepare_update(kind: Kind, old: &Value, new: &mut Value) {
    defaults::prepare_update(kind, old, new);
}

/// The status strategies: what a write of `status` (already merged into `new`) changes besides.
pub fn status_update(kind: Kind, cur: &Value, new: &mut Value) {
    defaults::status_update(kind, cur, new, &crate::handlers::now_rfc3339());
}

/// What every written version must satisfy.
pub fn validate(kind: Kind, obj: &Value) -> Vec<FieldError> {
    match kind {
        Kind::PersistentVolume => validation::persistent_volume(obj),
        Kind::PersistentVolumeClaim => validation::persistent_volume_claim(obj),
        Kind::StorageClass => validation::storage_class(obj),
        _ => Vec::new(),
    }
}

/// kube's `ValidatePersistentVolumeClaimSpec` of a claim template's `spec` (a pod's generic ephemeral
/// volume), with field paths under `path` (e.g. `spec.volumes[0].ephemeral.volumeClaimTemplate.spec`).
pub fn validate_claim_template_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let claim = serde_json::json!({ "spec": spec });
    validation::persistent_volume_claim(&claim)
        .into_iter()
        .map(|mut e| {
            if let Some(rest) = e.field.strip_prefix("spec") {
                e.field = format!("{path}{rest}");
            }
            e
        })
        .collect()
}

/// The update rules from `old` to `new`.
pub fn validate_update(kind: Kind, old: &Value, new: &Value) -> Vec<FieldError> {
    match kind {
        Kind::PersistentVolume => update::persistent_volume(old, new),
        Kind::PersistentVolumeClaim => update::persistent_volume_claim(old, new),
        Kind::StorageClass => update::storage_class(old, new),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
