//! A StatefulSet's `volumeClaimTemplates`: the defaults kube's defaulter gives every embedded claim, their
//! checks, and the volumes they stand for in the pod template.
//!
//! kube 1.32's `ValidateStatefulSetSpec` checks neither the templates nor the pod template's spec (its
//! TODO: the mounts of claim templates would fail); a bad template only shows later as a `FailedCreate`
//! event of the controller. skiff validates the pod template (as newer kube does), so it also checks
//! the templates with the PersistentVolumeClaim resource's spec checks, reported under
//! `spec.volumeClaimTemplates[i]`, and validates the pod template with one volume per claim template,
//! the way the controller builds the pods.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::resources::validation::{DNS1123_LABEL_MSG, is_dns1123_label, validate_labels};
use crate::resources::{Kind, storage};
use crate::status::FieldError;

const PATH: &str = "spec.volumeClaimTemplates";

fn templates(spec: &Value) -> &[Value] {
    spec.get("volumeClaimTemplates")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn name_of(template: &Value) -> &str {
    template
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn set_default(obj: &mut Value, key: &str, v: Value) {
    if let Some(m) = obj.as_object_mut()
        && m.get(key)
            .is_none_or(|v| v.is_null() || v.as_str() == Some(""))
    {
        m.insert(key.to_string(), v);
    }
}

/// What kube's apps/v1 defaulter does to each template (`SetDefaults_PersistentVolumeClaim` and
/// `SetDefaults_PersistentVolumeClaimSpec`): `volumeMode: Filesystem`, `status.phase: Pending`.
pub fn defaults(spec: &mut Value) {
    let Some(list) = spec
        .get_mut("volumeClaimTemplates")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for template in list.iter_mut().filter(|t| t.is_object()) {
        for part in ["spec", "status"] {
            if template.get(part).is_none_or(|p| !p.is_object()) {
                template[part] = json!({});
            }
        }
        set_default(&mut template["spec"], "volumeMode", json!("Filesystem"));
        set_default(&mut template["status"], "phase", json!("Pending"));
    }
}

/// The templates' checks: each name is the name of a pod volume (required, a DNS-1123 label, unique),
/// valid labels, and a valid claim spec.
pub fn validate(spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut names = HashSet::new();
    for (i, template) in templates(spec).iter().enumerate() {
        let path = format!("{PATH}[{i}]");
        let name_path = format!("{path}.metadata.name");
        let name = name_of(template);
        if name.is_empty() {
            errs.push(FieldError::required(&name_path, ""));
        } else if !is_dns1123_label(name) {
            errs.push(FieldError::invalid(
                &name_path,
                &json!(name),
                DNS1123_LABEL_MSG,
            ));
        } else if !names.insert(name) {
            errs.push(FieldError::duplicate(&name_path, &json!(name)));
        }
        if let Some(labels) = template
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
        {
            errs.extend(validate_labels(labels, &format!("{path}.metadata.labels")));
        }
        // The claim checks of the PersistentVolumeClaim resource, moved under the template.
        let claim = json!({"spec": template.get("spec").cloned().unwrap_or(json!({}))});
        for mut e in storage::validate(Kind::PersistentVolumeClaim, &claim) {
            e.field = format!("{path}.{}", e.field);
            errs.push(e);
        }
    }
    errs
}

/// The pod template as the controller makes its pods: one `persistentVolumeClaim` volume per claim
/// template (with a valid name), replacing a template volume of the same name (kube's `updateStorage`).
pub fn with_claim_volumes(template: &Value, spec: &Value) -> Value {
    let mut out = template.clone();
    let claims: Vec<&str> = templates(spec)
        .iter()
        .map(name_of)
        .filter(|n| is_dns1123_label(n))
        .collect();
    if claims.is_empty() {
        return out;
    }
    if out.get("spec").is_none_or(|s| !s.is_object()) {
        out["spec"] = json!({});
    }
    let pod_spec = &mut out["spec"];
    if pod_spec.get("volumes").is_none_or(|v| !v.is_array()) {
        pod_spec["volumes"] = json!([]);
    }
    let Some(volumes) = pod_spec["volumes"].as_array_mut() else {
        return out;
    };
    for name in claims {
        let volume = json!({"name": name, "persistentVolumeClaim": {"claimName": name}});
        match volumes
            .iter_mut()
            .find(|v| v.get("name").and_then(Value::as_str) == Some(name))
        {
            Some(existing) => *existing = volume,
            None => volumes.push(volume),
        }
    }
    out
}
