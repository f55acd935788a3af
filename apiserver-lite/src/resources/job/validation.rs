//! kube's `ValidateJob`: the spec (`validateJobSpec`, shared with CronJobs' job templates), the generated
//! selector and the template's labels.

use serde_json::{Map, Value, json};

use super::super::validation::validate_labels;
use super::super::workloads;
use super::policies;
use super::{
    CONTROLLER_UID_LABEL, JOB_NAME_LABEL, LEGACY_CONTROLLER_UID_LABEL, LEGACY_JOB_NAME_LABEL,
    int_at, is_set, manual_selector, str_at,
};
use crate::status::FieldError;

pub(super) fn nonnegative(spec: &Value, key: &str, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(n) = spec.get(key).and_then(Value::as_i64)
        && n < 0
    {
        errs.push(FieldError::invalid(
            format!("{path}.{key}"),
            &json!(n),
            "must be greater than or equal to 0",
        ));
    }
}

/// kube's `ValidateHasLabel` on the template.
fn has_label(
    template_labels: Option<&Map<String, Value>>,
    key: &str,
    want: &str,
) -> Option<FieldError> {
    let field = format!("spec.template.metadata.labels[{key}]");
    match template_labels.and_then(|l| l.get(key)) {
        None => Some(FieldError::required(field, want)),
        Some(v) if v.as_str() == Some(want) => None,
        Some(_) => Some(workloads::invalid_go(
            field,
            workloads::go_string_map(template_labels),
            &format!("must be '{want}'"),
        )),
    }
}

/// kube's `validateGeneratedSelector`: with a generated selector the template carries the labels it made
/// and the selector picks exactly them.
fn validate_generated_selector(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(sel) = obj.pointer("/spec/selector").filter(|s| !s.is_null()) else {
        return errs;
    };
    if manual_selector(obj) {
        return errs;
    }
    let uid = str_at(obj, "/metadata/uid");
    let name = str_at(obj, "/metadata/name");
    if uid.is_empty() {
        errs.push(FieldError::required("metadata.uid", ""));
    }
    let labels = obj
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object);
    let expected = [
        (LEGACY_CONTROLLER_UID_LABEL, uid),
        (LEGACY_JOB_NAME_LABEL, name),
        (CONTROLLER_UID_LABEL, uid),
        (JOB_NAME_LABEL, name),
    ];
    errs.extend(expected.iter().filter_map(|(k, v)| has_label(labels, k, v)));
    let expected_labels: Map<String, Value> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    if workloads::validate_label_selector(sel, "spec.selector").is_empty()
        && !workloads::selector_matches(sel, Some(&expected_labels))
    {
        errs.push(workloads::invalid_go(
            "spec.selector",
            workloads::go_selector(sel),
            "`selector` not auto-generated",
        ));
    }
    errs
}

/// The restart policies a Job's pods may have.
fn validate_restart_policy(spec: &Value, errs: &mut Vec<FieldError>) {
    const FIELD: &str = "spec.template.spec.restartPolicy";
    let rp = str_at(spec, "/template/spec/restartPolicy");
    match rp {
        "" | "Always" => errs.push(FieldError::required(
            FIELD,
            "valid values: \"OnFailure\", \"Never\"",
        )),
        "OnFailure" | "Never" => {
            if is_set(spec, "podFailurePolicy") && rp != "Never" {
                errs.push(FieldError::invalid(
                    FIELD,
                    &json!(rp),
                    "only \"Never\" is supported when podFailurePolicy is specified",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            FIELD,
            &json!(other),
            &["OnFailure", "Never"],
        )),
    }
}

/// kube's `validateJobSpec` and `ValidateJobSpec` (the pod template through the pod checks).
fn validate_spec(spec: &Value) -> Vec<FieldError> {
    let mut errs = validate_template_spec(spec);
    validate_selector(spec, &mut errs);
    errs
}

/// kube's `validateJobSpec`: what a Job's spec and a CronJob's job template share (paths `spec.…`).
pub(crate) fn validate_template_spec(spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        nonnegative(spec, key, "spec", &mut errs);
    }
    if is_set(spec, "maxFailedIndexes") && !is_set(spec, "backoffLimitPerIndex") {
        errs.push(FieldError::required(
            "spec.backoffLimitPerIndex",
            "when maxFailedIndexes is specified",
        ));
    }
    let mode = spec
        .get("completionMode")
        .and_then(Value::as_str)
        .unwrap_or("NonIndexed");
    match mode {
        "Indexed" => {
            if !is_set(spec, "completions") {
                errs.push(FieldError::required(
                    "spec.completions",
                    "when completion mode is Indexed",
                ));
            }
            if let Some(p) = int_at(spec, "/parallelism")
                && p > 100_000
            {
                errs.push(FieldError::invalid(
                    "spec.parallelism",
                    &json!(p),
                    "must be less than or equal to 100000 when completion mode is Indexed",
                ));
            }
        }
        "NonIndexed" => {
            for key in ["backoffLimitPerIndex", "maxFailedIndexes"] {
                if let Some(v) = spec.get(key).filter(|v| !v.is_null()) {
                    errs.push(FieldError::invalid(
                        format!("spec.{key}"),
                        v,
                        "requires indexed completion mode",
                    ));
                }
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.completionMode",
            &json!(other),
            &["NonIndexed", "Indexed"],
        )),
    }
    if mode != "Indexed"
        && let Some(sp) = spec.get("successPolicy").filter(|v| !v.is_null())
    {
        errs.push(FieldError::invalid(
            "spec.successPolicy",
            sp,
            "requires indexed completion mode",
        ));
    }
    if let Some(rp) = spec.get("podReplacementPolicy").and_then(Value::as_str) {
        if is_set(spec, "podFailurePolicy") {
            if rp != "Failed" {
                errs.push(FieldError::not_supported(
                    "spec.podReplacementPolicy",
                    &json!(rp),
                    &["Failed"],
                ));
            }
        } else if !matches!(rp, "Failed" | "TerminatingOrFailed") {
            errs.push(FieldError::not_supported(
                "spec.podReplacementPolicy",
                &json!(rp),
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    policies::validate_index_limits(spec, &mut errs);
    policies::validate_pod_failure_policy(spec, &mut errs);
    policies::validate_success_policy(spec, &mut errs);
    let template = spec.get("template").cloned().unwrap_or(json!({}));
    if let Some(labels) = template
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
    {
        errs.extend(validate_labels(labels, "spec.template.metadata.labels"));
    }
    let pod = json!({"spec": template.get("spec").cloned().unwrap_or(json!({}))});
    for mut e in super::super::pod::validate(&pod) {
        e.field = format!("spec.template.{}", e.field);
        errs.push(e);
    }
    validate_restart_policy(spec, &mut errs);
    errs
}

/// The selector, and whether it matches the template.
fn validate_selector(spec: &Value, errs: &mut Vec<FieldError>) {
    let template = spec.get("template").cloned().unwrap_or(json!({}));
    match spec.get("selector").filter(|s| !s.is_null()) {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            let sel_errs = workloads::validate_label_selector(sel, "spec.selector");
            let valid = sel_errs.is_empty();
            errs.extend(sel_errs);
            let labels = template
                .pointer("/metadata/labels")
                .and_then(Value::as_object);
            // kube: an empty selector matches everything.
            if valid
                && !workloads::selector_is_empty(sel)
                && !workloads::selector_matches(sel, labels)
            {
                errs.push(workloads::invalid_go(
                    "spec.template.metadata.labels",
                    workloads::go_string_map(labels),
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
}

/// kube's `ValidateJob` (the metadata is checked by the caller): every version written must pass.
pub fn validate(obj: &Value) -> Vec<FieldError> {
    let mut errs = validate_generated_selector(obj);
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    errs.extend(validate_spec(&spec));
    if str_at(&spec, "/completionMode") == "Indexed"
        && let Some(c) = int_at(&spec, "/completions")
        && c > 0
    {
        let host = format!("{}-{}", str_at(obj, "/metadata/name"), c - 1);
        if !super::super::validation::is_dns1123_label(&host) {
            errs.push(FieldError::invalid(
                "metadata.name",
                &json!(str_at(obj, "/metadata/name")),
                &format!("will not able to create pod with invalid DNS label: {host}"),
            ));
        }
    }
    errs
}
