//! core/v1 ReplicationControllers: defaults (kube's `SetDefaults_ReplicationController`), validation
//! (`ValidateReplicationController*`), the selector as a label selector, and table columns
//! (`printReplicationController`). The `scale` subresource is `crate::scale`'s; the controller is
//! `crate::controllers::replicaset` in its ReplicationController flavour.
//!
//! A ReplicationController is a ReplicaSet with an equality-only selector (`spec.selector` is a plain
//! label map) and an optional template, so most of the work is the ReplicaSet's (`super::workloads`).

use serde_json::{Map, Value, json};

use super::workloads;
use crate::status::FieldError;

/// The selector map as a `metav1.LabelSelector` (`matchLabels`), what the ReplicaSet code reads. A
/// missing or non-object selector is an empty one.
pub fn label_selector(rc: &Value) -> Value {
    let labels = rc
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    json!({ "matchLabels": labels })
}

/// The selector as kube's `labels.FormatLabels`: `a=b,c=d`, sorted, "" when empty.
pub fn selector_string(rc: &Value) -> String {
    workloads::selector_string(Some(&label_selector(rc)))
}

/// Round-trip through the k8s-openapi type (unknown fields dropped).
pub fn normalize(v: &Value) -> Result<Value, String> {
    let t: k8s_openapi::api::core::v1::ReplicationController =
        serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(t).map_err(|e| e.to_string())
}

fn non_empty_map(v: Option<&Value>) -> Option<&Map<String, Value>> {
    v.and_then(Value::as_object).filter(|m| !m.is_empty())
}

/// kube's `SetDefaults_ReplicationController` and the pod template defaults, on every version written:
/// an empty selector and empty labels become the template's labels, `replicas` is 1.
pub fn defaults(obj: &mut Value) {
    if obj.get("spec").is_none_or(|s| !s.is_object()) {
        obj["spec"] = json!({});
    }
    let template_labels = obj
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned();
    // kube copies a template's labels only when the template has a label map at all.
    if let Some(labels) = template_labels {
        if non_empty_map(obj.pointer("/spec/selector")).is_none() {
            obj["spec"]["selector"] = Value::Object(labels.clone());
        }
        if non_empty_map(obj.pointer("/metadata/labels")).is_none()
            && let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.insert("labels".into(), Value::Object(labels));
        }
    }
    let spec = &mut obj["spec"];
    if spec.get("replicas").is_none_or(Value::is_null) {
        spec["replicas"] = json!(1);
    }
    // The template is optional in the type (validation requires it); only a present one is defaulted.
    if let Some(template) = spec.get_mut("template").filter(|t| t.is_object()) {
        workloads::default_template(template);
    }
}

/// What kube's create strategy does besides defaulting: the status starts empty (`replicas` is not
/// omitted when zero).
pub fn prepare_create(obj: &mut Value) {
    defaults(obj);
    obj["status"] = json!({"replicas": 0});
}

/// kube's `ValidateReplicationControllerSpec` and `ValidateReplicationControllerStatus`; every version
/// written must pass.
pub fn validate(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    workloads::nonnegative(&spec, "/minReadySeconds", "spec.minReadySeconds", &mut errs);
    let selector = non_empty_map(spec.get("selector"));
    if selector.is_none() {
        errs.push(FieldError::required("spec.selector", ""));
    }
    if let Some(sel) = selector {
        errs.extend(super::validation::validate_labels(sel, "spec.selector"));
    }
    workloads::nonnegative(&spec, "/replicas", "spec.replicas", &mut errs);
    match spec.get("template").filter(|t| !t.is_null()) {
        None => errs.push(FieldError::required("spec.template", "")),
        Some(template) => errs.extend(validate_template(template, &label_selector(obj))),
    }
    errs.extend(validate_status(obj));
    errs
}

/// kube's `ValidatePodTemplateSpecForRC`: the ReplicaSet's template rules with the RC's messages. An
/// empty selector is not matched against the labels (it is refused on its own).
fn validate_template(template: &Value, selector: &Value) -> Vec<FieldError> {
    workloads::validate_template(template, Some(selector))
        .into_iter()
        .map(|mut e| {
            if e.field == "spec.template.metadata.labels"
                && e.message.contains("does not match template")
            {
                e.message = e.message.replace(
                    "`selector` does not match template `labels`",
                    "selector does not match labels in spec.template",
                );
            }
            if e.field == "spec.template.spec.activeDeadlineSeconds" {
                e.message = e
                    .message
                    .replace("in ReplicaSet", "in ReplicationController");
            }
            e
        })
        .collect()
}

/// The status counters: non-negative, none above `status.replicas`, available not above ready.
fn validate_status(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(status) = obj.get("status").filter(|s| s.is_object()) else {
        return errs;
    };
    for c in [
        "replicas",
        "fullyLabeledReplicas",
        "readyReplicas",
        "availableReplicas",
        "observedGeneration",
    ] {
        workloads::nonnegative(status, &format!("/{c}"), &format!("status.{c}"), &mut errs);
    }
    let n = |k: &str| status.get(k).and_then(Value::as_i64).unwrap_or(0);
    for c in ["fullyLabeledReplicas", "readyReplicas", "availableReplicas"] {
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
            "cannot be greater than readyReplicas",
        ));
    }
    errs
}

/// kube's table columns (`replicationControllerColumnDefinitions`): the ReplicaSet's, with the
/// ReplicationController's descriptions.
pub fn columns(name: Value, age: Value) -> Vec<Value> {
    let mut cols = workloads::columns(super::Kind::ReplicaSet, name, age);
    for c in &mut cols {
        let description = match c.get("name").and_then(Value::as_str) {
            Some("Ready") => "The number of ready replicas for this replication controller.",
            Some("Selector") => {
                "Selector is a label query over pods that should match the Replicas count. If Selector is empty, it is defaulted to the labels present on the Pod template. Label keys and values that must match in order to be controlled by this replication controller, if empty defaulted to labels on Pod template. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"
            }
            _ => continue,
        };
        c["description"] = json!(description);
    }
    cols
}

/// Row cells (kube's `printReplicationController`, wide): NAME DESIRED CURRENT READY AGE CONTAINERS
/// IMAGES SELECTOR.
pub fn cells(obj: &Value, name: String, age: String) -> Vec<Value> {
    let int = |p: &str| obj.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let (names, images) = workloads::container_cells(obj);
    let selector = selector_string(obj);
    vec![
        json!(name),
        json!(int("/spec/replicas")),
        json!(int("/status/replicas")),
        json!(int("/status/readyReplicas")),
        json!(age),
        json!(names),
        json!(images),
        json!(if selector.is_empty() {
            "<none>".to_string()
        } else {
            selector
        }),
    ]
}

#[cfg(test)]
mod tests;
