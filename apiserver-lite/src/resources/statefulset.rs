//! apps/v1 StatefulSets: defaults (kube's apps/v1 `SetDefaults_StatefulSet`), validation (kube's
//! `ValidateStatefulSet*`) and table columns (`printStatefulSet`). The pod template's defaults and checks
//! are the Deployment/ReplicaSet ones of [`super::workloads`], the `volumeClaimTemplates` ones are in
//! [`claims`]; the `scale` subresource is `crate::scale`.

use serde_json::{Value, json};

use super::validation::{DNS1123_LABEL_MSG, is_dns1123_label};
use super::workloads;
use crate::status::FieldError;

mod claims;

/// Round-trip through the k8s-openapi type, keeping a missing selector missing (the type's is not
/// optional, and kube answers a missing and an empty selector differently).
pub fn normalize(v: &Value) -> Result<Value, String> {
    let t: k8s_openapi::api::apps::v1::StatefulSet =
        serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    let mut out = serde_json::to_value(t).map_err(|e| e.to_string())?;
    if v.pointer("/spec/selector").is_none_or(Value::is_null)
        && let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.remove("selector");
    }
    Ok(out)
}

fn set_default(obj: &mut Value, key: &str, v: Value) {
    if let Some(m) = obj.as_object_mut()
        && m.get(key)
            .is_none_or(|v| v.is_null() || v.as_str() == Some(""))
    {
        m.insert(key.to_string(), v);
    }
}

/// kube's `SetDefaults_StatefulSet` (the `MaxUnavailableStatefulSet` gate off, `StatefulSetAutoDeletePVC`
/// on, as in 1.32) plus the pod template's defaults; every version written gets them.
pub fn defaults(obj: &mut Value) {
    if obj.get("spec").is_none_or(|s| !s.is_object()) {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    set_default(spec, "podManagementPolicy", json!("OrderedReady"));
    if spec.get("updateStrategy").is_none_or(|s| !s.is_object()) {
        spec["updateStrategy"] = json!({});
    }
    let strategy = &mut spec["updateStrategy"];
    if strategy
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        strategy["type"] = json!("RollingUpdate");
        set_default(strategy, "rollingUpdate", json!({}));
    }
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
        && let Some(ru) = strategy.get_mut("rollingUpdate").filter(|r| r.is_object())
    {
        set_default(ru, "partition", json!(0));
    }
    if spec
        .get("persistentVolumeClaimRetentionPolicy")
        .is_none_or(|p| !p.is_object())
    {
        spec["persistentVolumeClaimRetentionPolicy"] = json!({});
    }
    let policy = &mut spec["persistentVolumeClaimRetentionPolicy"];
    set_default(policy, "whenDeleted", json!("Retain"));
    set_default(policy, "whenScaled", json!("Retain"));
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    if spec.get("template").is_none_or(|t| !t.is_object()) {
        spec["template"] = json!({});
    }
    workloads::default_template(&mut spec["template"]);
    claims::defaults(spec);
}

/// What kube's create strategy does besides defaulting: the status starts empty (its `replicas` and
/// `availableReplicas` are never omitted).
pub fn prepare_create(obj: &mut Value) {
    defaults(obj);
    obj["status"] = json!({"replicas": 0, "availableReplicas": 0});
}

const POLICY_PATH: &str = "spec.persistentVolumeClaimRetentionPolicy";

/// kube's `ValidatePersistentVolumeClaimRetentionPolicy`.
fn validate_retention_policy(spec: &Value, errs: &mut Vec<FieldError>) {
    let Some(policy) = spec.get("persistentVolumeClaimRetentionPolicy") else {
        return;
    };
    for f in ["whenDeleted", "whenScaled"] {
        let v = policy.get(f).and_then(Value::as_str).unwrap_or("");
        if !matches!(v, "Retain" | "Delete") {
            errs.push(FieldError::not_supported(
                format!("{POLICY_PATH}.{f}"),
                &json!(v),
                &["Retain", "Delete"],
            ));
        }
    }
}

/// kube's update-strategy checks of `ValidateStatefulSetSpec` and `validateRollingUpdateStatefulSet`.
fn validate_strategy(spec: &Value, errs: &mut Vec<FieldError>) {
    const PATH: &str = "spec.updateStrategy";
    let strategy = spec.get("updateStrategy").cloned().unwrap_or(json!({}));
    let ru = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match strategy.get("type").and_then(Value::as_str).unwrap_or("") {
        "" => errs.push(FieldError::required(PATH, "")),
        "OnDelete" => {
            if let Some(ru) = ru {
                errs.push(workloads::invalid_go(
                    format!("{PATH}.rollingUpdate"),
                    go_rolling_update(ru),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            let Some(ru) = ru else { return };
            workloads::nonnegative(
                ru,
                "/partition",
                &format!("{PATH}.rollingUpdate.partition"),
                errs,
            );
            let path = format!("{PATH}.rollingUpdate.maxUnavailable");
            match ru.get("maxUnavailable") {
                Some(Value::String(s)) if !workloads::valid_percent(s) => errs.push(
                    FieldError::invalid(&path, &json!(s), workloads::PERCENT_MSG),
                ),
                Some(v @ (Value::String(_) | Value::Number(_))) => {
                    let n = workloads::int_or_percent(v).unwrap_or(-1);
                    if n < 1 {
                        errs.push(FieldError::invalid(&path, v, "must be greater than 0"));
                    } else if v.is_string() && n > 100 {
                        errs.push(FieldError::invalid(
                            &path,
                            v,
                            "must not be greater than 100%",
                        ));
                    }
                }
                _ => {}
            }
        }
        other => errs.push(FieldError::invalid(
            PATH,
            &json!(other),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
}

/// Go's `%#v` of a `*apps.RollingUpdateStatefulSetStrategy`, roughly (kube prints the struct).
fn go_rolling_update(ru: &Value) -> String {
    let partition = ru.get("partition").and_then(Value::as_i64);
    format!(
        "&apps.RollingUpdateStatefulSetStrategy{{Partition:{}, MaxUnavailable:(*intstr.IntOrString)(nil)}}",
        partition.map_or("0".to_string(), |p| p.to_string())
    )
}

/// kube's `ValidateStatefulSetSpec` and `ValidateStatefulSetStatus`; every version written must pass.
pub fn validate(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    match spec
        .get("podManagementPolicy")
        .and_then(Value::as_str)
        .unwrap_or("")
    {
        "" => errs.push(FieldError::required("spec.podManagementPolicy", "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            "spec.podManagementPolicy",
            &json!(other),
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    validate_strategy(&spec, &mut errs);
    validate_retention_policy(&spec, &mut errs);
    workloads::nonnegative(&spec, "/replicas", "spec.replicas", &mut errs);
    workloads::nonnegative(&spec, "/ordinals/start", "spec.ordinals.start", &mut errs);
    workloads::nonnegative(&spec, "/minReadySeconds", "spec.minReadySeconds", &mut errs);
    // The pods' `subdomain`: it must be a DNS label for them to be valid.
    let service = spec
        .get("serviceName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !service.is_empty() && !is_dns1123_label(service) {
        errs.push(FieldError::invalid(
            "spec.serviceName",
            &json!(service),
            DNS1123_LABEL_MSG,
        ));
    }
    errs.extend(claims::validate(&spec));
    let selector = spec.get("selector").filter(|s| !s.is_null());
    let mut selector_ok = true;
    match selector {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            let sel_errs = workloads::validate_label_selector(sel, "spec.selector");
            selector_ok = sel_errs.is_empty();
            errs.extend(sel_errs);
            if workloads::selector_is_empty(sel) {
                errs.push(workloads::invalid_go(
                    "spec.selector",
                    workloads::go_selector(sel),
                    "empty selector is invalid for statefulset",
                ));
            }
        }
    }
    if selector_ok {
        // The mounts of claim templates name the volumes the controller adds to each pod.
        let template =
            claims::with_claim_volumes(spec.get("template").unwrap_or(&json!({})), &spec);
        for mut e in workloads::validate_template(&template, selector) {
            if e.field == "spec.template.spec.activeDeadlineSeconds" {
                e = FieldError::forbidden(
                    "spec.template.spec.activeDeadlineSeconds",
                    "activeDeadlineSeconds in StatefulSet is not Supported",
                );
            }
            errs.push(e);
        }
    }
    validate_status(obj, &mut errs);
    errs
}

/// kube's `ValidateStatefulSetStatus`.
fn validate_status(obj: &Value, errs: &mut Vec<FieldError>) {
    let Some(status) = obj.get("status").filter(|s| s.is_object()) else {
        return;
    };
    for c in [
        "replicas",
        "readyReplicas",
        "currentReplicas",
        "updatedReplicas",
        "availableReplicas",
        "observedGeneration",
        "collisionCount",
    ] {
        workloads::nonnegative(status, &format!("/{c}"), &format!("status.{c}"), errs);
    }
    let n = |k: &str| status.get(k).and_then(Value::as_i64).unwrap_or(0);
    for c in [
        "readyReplicas",
        "currentReplicas",
        "updatedReplicas",
        "availableReplicas",
    ] {
        if n(c) > n("replicas") {
            errs.push(FieldError::invalid(
                format!("status.{c}"),
                &json!(n(c)),
                "cannot be greater than status.replicas",
            ));
        }
    }
    if n("availableReplicas") > n("readyReplicas") {
        errs.push(FieldError::invalid(
            "status.availableReplicas",
            &json!(n("availableReplicas")),
            "cannot be greater than status.readyReplicas",
        ));
    }
}

/// The spec fields an update may change (kube 1.32's `ValidateStatefulSetUpdate`: `revisionHistoryLimit`
/// became mutable only later). `volumeClaimTemplates` are not among them.
const MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// The rest of the spec, empty values dropped (kube compares semantically: nil and empty are equal).
fn immutable_part(obj: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(spec) = obj.get("spec").and_then(Value::as_object) {
        for (k, v) in spec {
            let empty = v.is_null()
                || v.as_str() == Some("")
                || v.as_array().is_some_and(Vec::is_empty)
                || v.as_object().is_some_and(serde_json::Map::is_empty);
            if MUTABLE.contains(&k.as_str()) || empty {
                continue;
            }
            let v = if k == "selector" {
                workloads::canonical_selector(Some(v))
            } else {
                v.clone()
            };
            out.insert(k.clone(), v);
        }
    }
    Value::Object(out)
}

/// The update rules: only the fields of [`MUTABLE`] may change.
pub fn validate_update(old: &Value, new: &Value) -> Vec<FieldError> {
    if immutable_part(old) != immutable_part(new) {
        return vec![FieldError::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        )];
    }
    Vec::new()
}

fn col(name: &str, desc: &str, priority: i32) -> Value {
    json!({"name": name, "type": "string", "format": "", "description": desc, "priority": priority})
}

/// kube's `statefulSetColumnDefinitions`.
pub fn columns(name: Value, age: Value) -> Vec<Value> {
    vec![
        name,
        col("Ready", "Number of the pod with ready state", 0),
        age,
        col("Containers", "Names of each container in the template.", 1),
        col(
            "Images",
            "Images referenced by each container in the template.",
            1,
        ),
    ]
}

/// Row cells (kube's `printStatefulSet`, wide).
pub fn cells(obj: &Value, name: String, age: String) -> Vec<Value> {
    let int = |p: &str| obj.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let (names, images) = workloads::container_cells(obj);
    vec![
        json!(name),
        json!(format!(
            "{}/{}",
            int("/status/readyReplicas"),
            int("/spec/replicas")
        )),
        json!(age),
        json!(names),
        json!(images),
    ]
}

#[cfg(test)]
mod tests;
