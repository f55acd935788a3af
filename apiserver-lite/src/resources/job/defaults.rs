//! A Job's defaults (kube's `SetDefaults_Job`) and what its create strategy adds: the generated selector
//! and pod labels.

use serde_json::{Map, Value, json};

use super::super::workloads;
use super::{
    CONTROLLER_UID_LABEL, JOB_NAME_LABEL, LEGACY_CONTROLLER_UID_LABEL, LEGACY_JOB_NAME_LABEL,
    is_set, manual_selector, str_at,
};

fn set_default(obj: &mut Value, key: &str, v: Value) {
    if let Some(m) = obj.as_object_mut()
        && m.get(key).is_none_or(Value::is_null)
    {
        m.insert(key.to_string(), v);
    }
}

/// kube's `SetDefaults_Job` (with the pod template's defaults), applied to every version written.
pub fn defaults(obj: &mut Value) {
    if obj.get("spec").is_none_or(|s| !s.is_object()) {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    if !is_set(spec, "completions") && !is_set(spec, "parallelism") {
        spec["completions"] = json!(1);
        spec["parallelism"] = json!(1);
    }
    set_default(spec, "parallelism", json!(1));
    // kube: with a per-index limit the Job-wide one is effectively off.
    let backoff_limit = if is_set(spec, "backoffLimitPerIndex") {
        i64::from(i32::MAX)
    } else {
        6
    };
    set_default(spec, "backoffLimit", json!(backoff_limit));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    let replacement = if is_set(spec, "podFailurePolicy") {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    set_default(spec, "podReplacementPolicy", json!(replacement));
    if spec.get("template").is_none_or(|t| !t.is_object()) {
        spec["template"] = json!({});
    }
    workloads::default_template(&mut spec["template"]);
    copy_template_labels(obj);
}

/// A Job without labels takes its template's (kube does this whenever it decodes a Job, so a Job created
/// without labels shows the generated ones).
fn copy_template_labels(obj: &mut Value) {
    let template_labels = obj
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .filter(|l| !l.is_empty())
        .cloned();
    let own_empty = obj
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .is_none_or(Map::is_empty);
    if let Some(labels) = template_labels
        && own_empty
        && let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.insert("labels".into(), Value::Object(labels));
    }
}

/// What kube's create strategy does (after defaulting, once the uid is set): the generated selector and
/// pod labels unless `manualSelector`, and an empty status.
pub fn prepare_create(obj: &mut Value) {
    defaults(obj);
    if !manual_selector(obj) {
        generate_selector(obj);
    }
    copy_template_labels(obj);
    obj["status"] = json!({});
}

/// kube's `generateSelector`: the template gets the job-name and controller-uid labels (both spellings)
/// unless already there, the selector matches `batch.kubernetes.io/controller-uid=<uid>`.
fn generate_selector(obj: &mut Value) {
    let name = str_at(obj, "/metadata/name").to_string();
    let uid = str_at(obj, "/metadata/uid").to_string();
    let template = &mut obj["spec"]["template"];
    if template.get("metadata").is_none_or(|m| !m.is_object()) {
        template["metadata"] = json!({});
    }
    let meta = &mut template["metadata"];
    if meta.get("labels").is_none_or(|l| !l.is_object()) {
        meta["labels"] = json!({});
    }
    if let Some(labels) = meta["labels"].as_object_mut() {
        for (key, value) in [
            (LEGACY_JOB_NAME_LABEL, &name),
            (JOB_NAME_LABEL, &name),
            (LEGACY_CONTROLLER_UID_LABEL, &uid),
            (CONTROLLER_UID_LABEL, &uid),
        ] {
            labels
                .entry(key)
                .or_insert_with(|| Value::String(value.clone()));
        }
    }
    let spec = &mut obj["spec"];
    if spec.get("selector").is_none_or(|s| !s.is_object()) {
        spec["selector"] = json!({});
    }
    let sel = &mut spec["selector"];
    if sel.get("matchLabels").is_none_or(|m| !m.is_object()) {
        sel["matchLabels"] = json!({});
    }
    if let Some(ml) = sel["matchLabels"].as_object_mut() {
        ml.entry(CONTROLLER_UID_LABEL)
            .or_insert_with(|| Value::String(uid));
    }
}
