//! kube's `ValidateDeployment*` / `ValidateReplicaSet*`: the spec (selector, template, strategy), the
//! status counters, and the immutable selector on update.

use serde_json::{Value, json};

use super::super::Kind;
use super::super::validation::validate_labels;
use super::go_syntax::{go_selector, go_string_map, invalid_go};
use super::selector::{
    canonical_selector, selector_is_empty, selector_matches, validate_label_selector,
};
use crate::status::FieldError;

pub(crate) fn nonnegative(obj: &Value, pointer: &str, field: &str, errs: &mut Vec<FieldError>) {
    if let Some(n) = obj.pointer(pointer).and_then(Value::as_i64)
        && n < 0
    {
        errs.push(FieldError::invalid(
            field,
            &json!(n),
            "must be greater than or equal to 0",
        ));
    }
}

/// kube's `ValidatePodTemplateSpecForReplicaSet`: the template matches the selector, is a valid pod
/// template, restarts Always and has no active deadline.
pub(crate) fn validate_template(template: &Value, selector: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let labels = template
        .pointer("/metadata/labels")
        .and_then(Value::as_object);
    // A missing selector selects nothing (kube's `labels.Nothing()`); an empty one everything.
    let matches = match selector {
        None => false,
        Some(sel) => selector_is_empty(sel) || selector_matches(sel, labels),
    };
    if !matches {
        errs.push(invalid_go(
            "spec.template.metadata.labels",
            go_string_map(labels),
            "`selector` does not match template `labels`",
        ));
    }
    if let Some(labels) = labels {
        errs.extend(validate_labels(labels, "spec.template.metadata.labels"));
    }
    let pod = json!({"spec": template.get("spec").cloned().unwrap_or(json!({}))});
    for mut e in super::super::pod::validate(&pod) {
        e.field = format!("spec.template.{}", e.field);
        errs.push(e);
    }
    let rp = template
        .pointer("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("");
    if rp != "Always" {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            &json!(rp),
            &["Always"],
        ));
    }
    if template
        .pointer("/spec/activeDeadlineSeconds")
        .is_some_and(|v| !v.is_null())
    {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
    errs
}

/// The value of an int-or-percent (`getIntOrPercentValue`): the number, or the percentage's number.
pub(crate) fn int_or_percent(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.strip_suffix('%').and_then(|n| n.parse().ok()),
        _ => None,
    }
}

pub(crate) const PERCENT_MSG: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

pub(crate) fn valid_percent(s: &str) -> bool {
    s.strip_suffix('%')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// kube's `ValidateDeploymentStrategy`.
pub(super) fn validate_strategy(strategy: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ty = strategy.get("type").and_then(Value::as_str).unwrap_or("");
    let ru = strategy.get("rollingUpdate").filter(|r| !r.is_null());
    match ty {
        "Recreate" => {
            if ru.is_some() {
                errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => {
            let Some(ru) = ru else {
                errs.push(FieldError::required(
                    "spec.strategy.rollingUpdate",
                    "this should be defaulted and never be nil",
                ));
                return errs;
            };
            for f in ["maxUnavailable", "maxSurge"] {
                let path = format!("spec.strategy.rollingUpdate.{f}");
                match ru.get(f) {
                    Some(Value::String(s)) if !valid_percent(s) => {
                        errs.push(FieldError::invalid(&path, &json!(s), PERCENT_MSG))
                    }
                    Some(Value::Number(n)) if n.as_i64().is_none_or(|n| n < 0) => {
                        errs.push(FieldError::invalid(
                            &path,
                            &Value::Number(n.clone()),
                            "must be greater than or equal to 0",
                        ))
                    }
                    _ => {}
                }
            }
            let zero = |f: &str| ru.get(f).and_then(int_or_percent).unwrap_or(0) == 0;
            if zero("maxUnavailable") && zero("maxSurge") {
                errs.push(FieldError::invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    ru.get("maxUnavailable").unwrap_or(&json!(0)),
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
            if let Some(Value::String(s)) = ru.get("maxUnavailable")
                && valid_percent(s)
                && int_or_percent(&json!(s)).is_some_and(|n| n > 100)
            {
                errs.push(FieldError::invalid(
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    &json!(s),
                    "must not be greater than 100%",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.strategy",
            &json!(other),
            &["Recreate", "RollingUpdate"],
        )),
    }
    errs
}

/// kube's `ValidateDeploymentSpec` / `ValidateReplicaSetSpec` and the status checks of
/// `ValidateDeploymentStatus` / `ValidateReplicaSetStatus`; every version written must pass.
pub fn validate(kind: Kind, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    nonnegative(&spec, "/replicas", "spec.replicas", &mut errs);
    if kind == Kind::ReplicaSet {
        nonnegative(&spec, "/minReadySeconds", "spec.minReadySeconds", &mut errs);
    }
    let selector = spec.get("selector").filter(|s| !s.is_null());
    let mut selector_ok = true;
    match selector {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            let sel_errs = validate_label_selector(sel, "spec.selector");
            selector_ok = sel_errs.is_empty();
            errs.extend(sel_errs);
            if selector_is_empty(sel) {
                errs.push(invalid_go(
                    "spec.selector",
                    go_selector(sel),
                    "empty selector is invalid for deployment",
                ));
            }
        }
    }
    if selector_ok {
        errs.extend(validate_template(
            spec.get("template").unwrap_or(&json!({})),
            selector,
        ));
    } else if let Some(sel) = selector {
        errs.push(invalid_go(
            "spec.selector",
            go_selector(sel),
            "invalid label selector",
        ));
    }
    if kind == Kind::Deployment {
        errs.extend(validate_strategy(
            spec.get("strategy").unwrap_or(&json!({})),
        ));
        nonnegative(&spec, "/minReadySeconds", "spec.minReadySeconds", &mut errs);
        nonnegative(
            &spec,
            "/revisionHistoryLimit",
            "spec.revisionHistoryLimit",
            &mut errs,
        );
        if let Some(pds) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
            nonnegative(
                &spec,
                "/progressDeadlineSeconds",
                "spec.progressDeadlineSeconds",
                &mut errs,
            );
            let min_ready = spec
                .get("minReadySeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if pds <= min_ready {
                errs.push(FieldError::invalid(
                    "spec.progressDeadlineSeconds",
                    &json!(pds),
                    "must be greater than minReadySeconds",
                ));
            }
        }
    }
    errs.extend(validate_status(kind, obj));
    errs
}

/// The status counters: non-negative, and none above `status.replicas` (available not above ready).
fn validate_status(kind: Kind, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(status) = obj.get("status").filter(|s| s.is_object()) else {
        return errs;
    };
    let counters: &[&str] = if kind == Kind::Deployment {
        &[
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
            "observedGeneration",
            "collisionCount",
        ]
    } else {
        &[
            "replicas",
            "fullyLabeledReplicas",
            "readyReplicas",
            "availableReplicas",
            "observedGeneration",
        ]
    };
    for c in counters {
        nonnegative(status, &format!("/{c}"), &format!("status.{c}"), &mut errs);
    }
    let n = |k: &str| status.get(k).and_then(Value::as_i64).unwrap_or(0);
    let bounded: &[&str] = if kind == Kind::Deployment {
        &["updatedReplicas", "readyReplicas", "availableReplicas"]
    } else {
        &["fullyLabeledReplicas", "readyReplicas", "availableReplicas"]
    };
    for c in bounded {
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

/// The update rules: the selector of an apps/v1 Deployment or ReplicaSet is immutable.
pub fn validate_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let o = old.pointer("/spec/selector").filter(|s| !s.is_null());
    let n = new.pointer("/spec/selector").filter(|s| !s.is_null());
    if canonical_selector(o) != canonical_selector(n) || o.is_some() != n.is_some() {
        let shown = match n {
            Some(sel) => go_selector(sel),
            None => "null".into(),
        };
        return vec![invalid_go("spec.selector", shown, "field is immutable")];
    }
    Vec::new()
}
