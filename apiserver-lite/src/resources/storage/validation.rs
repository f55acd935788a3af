//! What every written version must satisfy (kube's `ValidatePersistentVolume`,
//! `ValidatePersistentVolumeClaim`, `ValidateStorageClass`). Metadata is checked by the generic
//! `validate_meta`.

use serde_json::{Map, Value, json};

use super::names::{check_subdomain, invalid_each, qualified_name_errors};
use super::{quantity, sources};
use crate::resources::workloads;
use crate::status::FieldError;

/// kube's `supportedAccessModes`, sorted as its messages list them.
pub const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const VOLUME_MODES: &[&str] = &["Block", "Filesystem"];
const PV_RECLAIM_POLICIES: &[&str] = &["Delete", "Recycle", "Retain"];
const CLASS_RECLAIM_POLICIES: &[&str] = &["Delete", "Retain"];
const BINDING_MODES: &[&str] = &["Immediate", "WaitForFirstConsumer"];

fn text<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// Access modes: known values, and ReadWriteOncePod alone.
fn access_modes(modes: &[Value], path: &str, errs: &mut Vec<FieldError>) {
    let (mut rwop, mut other) = (false, false);
    for m in modes {
        let s = m.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&s) {
            errs.push(FieldError::not_supported(path, m, ACCESS_MODES));
        } else if s == "ReadWriteOncePod" {
            rwop = true;
        } else {
            other = true;
        }
    }
    if rwop && other {
        errs.push(FieldError::forbidden(
            path,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
}

/// A quantity that must parse and be > 0 (`ValidatePositiveQuantityValue`); `basic` adds a volume's
/// `validateBasicResource` (no negative unit count).
fn positive_quantity(q: &Value, path: &str, basic: bool, errs: &mut Vec<FieldError>) {
    let Some(n) = quantity::parse(q.as_str().unwrap_or("")) else {
        errs.push(FieldError::invalid(path, q, quantity::QUANTITY_MSG));
        return;
    };
    if basic && n < 0 {
        // kube prints the quantity's unit count, rounded up.
        let units = n.div_euclid(1_000_000_000) + i128::from(n.rem_euclid(1_000_000_000) != 0);
        errs.push(FieldError::invalid(
            path,
            &json!(i64::try_from(units).unwrap_or(i64::MIN)),
            "must be a valid resource quantity",
        ));
    }
    if n <= 0 {
        errs.push(FieldError::invalid(path, q, "must be greater than zero"));
    }
}

fn class_name(spec: &Value, errs: &mut Vec<FieldError>) {
    let class = text(spec, "/storageClassName");
    if !class.is_empty() {
        errs.extend(check_subdomain("spec.storageClassName", class));
    }
}

fn volume_mode(spec: &Value, errs: &mut Vec<FieldError>) {
    if let Some(m) = spec.get("volumeMode").filter(|m| !m.is_null())
        && !VOLUME_MODES.contains(&m.as_str().unwrap_or(""))
    {
        errs.push(FieldError::not_supported(
            "spec.volumeMode",
            m,
            VOLUME_MODES,
        ));
    }
}

/// Go's `%#v` of a `core.ResourceList` (quantities as their strings: kube prints the whole struct).
fn go_resource_list(m: Option<&Map<String, Value>>) -> String {
    let items: Vec<String> = m
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k:?}:{}", v.as_str().unwrap_or("")))
        .collect();
    format!("core.ResourceList{{{}}}", items.join(", "))
}

/// kube's `ValidatePersistentVolumeSpec` (not inline).
pub fn persistent_volume(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    let modes = spec
        .get("accessModes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if modes.is_empty() {
        errs.push(FieldError::required("spec.accessModes", ""));
    }
    access_modes(&modes, "spec.accessModes", &mut errs);
    let capacity = spec.get("capacity").and_then(Value::as_object);
    if capacity.is_none_or(Map::is_empty) {
        errs.push(FieldError::required("spec.capacity", ""));
    }
    if capacity.is_none_or(|c| !c.contains_key("storage") || c.len() > 1) {
        errs.push(FieldError {
            reason: "FieldValueNotSupported",
            field: "spec.capacity".into(),
            message: format!(
                "Unsupported value: {}: supported values: \"storage\"",
                go_resource_list(capacity)
            ),
        });
    }
    for (k, q) in capacity.into_iter().flatten() {
        positive_quantity(q, &format!("spec.capacity[{k}]"), true, &mut errs);
    }
    let policy = text(&spec, "/persistentVolumeReclaimPolicy");
    if !policy.is_empty() && !PV_RECLAIM_POLICIES.contains(&policy) {
        errs.push(FieldError::not_supported(
            "spec.persistentVolumeReclaimPolicy",
            &json!(policy),
            PV_RECLAIM_POLICIES,
        ));
    }
    let affinity = spec.get("nodeAffinity").filter(|a| !a.is_null());
    if let Some(a) = affinity {
        sources::validate_affinity(a, &mut errs);
    }
    sources::validate(&spec, affinity.is_some(), &mut errs);
    let host_path = text(&spec, "/hostPath/path");
    if !host_path.is_empty()
        && host_path.split('/').all(|p| p.is_empty() || p == ".")
        && policy == "Recycle"
    {
        errs.push(FieldError::forbidden(
            "spec.persistentVolumeReclaimPolicy",
            "may not be 'recycle' for a hostPath mount of '/'",
        ));
    }
    class_name(&spec, &mut errs);
    volume_mode(&spec, &mut errs);
    errs
}

/// kube's `ValidatePersistentVolumeClaimSpec` and the status checks of its status strategy.
pub fn persistent_volume_claim(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    let modes = spec
        .get("accessModes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if modes.is_empty() {
        errs.push(FieldError::required(
            "spec.accessModes",
            "at least 1 access mode is required",
        ));
    }
    if let Some(sel) = spec.get("selector").filter(|s| !s.is_null()) {
        errs.extend(workloads::validate_label_selector(sel, "spec.selector"));
    }
    access_modes(&modes, "spec.accessModes", &mut errs);
    match spec.pointer("/resources/requests/storage") {
        None | Some(Value::Null) => errs.push(FieldError::required("spec.resources[storage]", "")),
        Some(q) => positive_quantity(q, "spec.resources[storage]", false, &mut errs),
    }
    class_name(&spec, &mut errs);
    volume_mode(&spec, &mut errs);
    for key in ["dataSource", "dataSourceRef"] {
        let Some(ds) = spec.get(key).filter(|d| !d.is_null()) else {
            continue;
        };
        let path = format!("spec.{key}");
        for f in ["name", "kind"] {
            if text(ds, &format!("/{f}")).is_empty() {
                errs.push(FieldError::required(format!("{path}.{f}"), ""));
            }
        }
        let group = text(ds, "/apiGroup");
        let kind = text(ds, "/kind");
        if group.is_empty() && kind != "PersistentVolumeClaim" {
            errs.push(FieldError::invalid(
                &path,
                &json!(kind),
                "must be 'PersistentVolumeClaim' when referencing the default apiGroup",
            ));
        } else if !group.is_empty() {
            errs.extend(check_subdomain(&format!("{path}.apiGroup"), group));
        }
    }
    if let Some(cap) = obj.pointer("/status/capacity").and_then(Value::as_object) {
        for (k, q) in cap {
            if quantity::parse(q.as_str().unwrap_or("")).is_none_or(|n| n < 0) {
                errs.push(FieldError::invalid(
                    format!("status.capacity[{k}]"),
                    q,
                    "must be a valid resource quantity",
                ));
            }
        }
    }
    errs
}

/// kube's `ValidateStorageClass` (allowed topologies are not checked).
pub fn storage_class(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let provisioner = text(obj, "/provisioner");
    if provisioner.is_empty() {
        errs.push(FieldError::required("provisioner", ""));
    } else {
        let lower = provisioner.to_lowercase();
        errs.extend(invalid_each(
            "provisioner",
            &lower,
            qualified_name_errors(&lower),
        ));
    }
    if let Some(params) = obj.get("parameters").and_then(Value::as_object) {
        let too_long = |max: usize| FieldError {
            reason: "FieldValueTooLong",
            field: "parameters".into(),
            message: format!("Too long: may not be more than {max} bytes"),
        };
        if params.len() > 512 {
            errs.push(too_long(512));
        } else {
            let mut size = 0;
            for (k, v) in params {
                if k.is_empty() {
                    errs.push(FieldError::invalid(
                        "parameters",
                        &json!(""),
                        "field can not be empty.",
                    ));
                }
                size += k.len() + v.as_str().map_or(0, str::len);
            }
            if size > 256 * 1024 {
                errs.push(too_long(256 * 1024));
            }
        }
    }
    let policy = text(obj, "/reclaimPolicy");
    if !policy.is_empty() && !CLASS_RECLAIM_POLICIES.contains(&policy) {
        errs.push(FieldError::not_supported(
            "reclaimPolicy",
            &json!(policy),
            CLASS_RECLAIM_POLICIES,
        ));
    }
    match obj.get("volumeBindingMode").filter(|m| !m.is_null()) {
        None => errs.push(FieldError::required("volumeBindingMode", "")),
        Some(m) if !BINDING_MODES.contains(&m.as_str().unwrap_or("")) => {
            errs.push(FieldError::not_supported(
                "volumeBindingMode",
                m,
                BINDING_MODES,
            ));
        }
        Some(_) => {}
    }
    errs
}
