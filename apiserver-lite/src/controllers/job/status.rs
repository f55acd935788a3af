//! A Job's status as the controller reads and writes it: conditions (kube's `ensureJobConditionStatus`),
//! how a Job ends ([`Finish`]), the counters and `uncountedTerminatedPods`, and the times they hold.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use super::super::object;
use super::super::owners::int_at;

pub(super) fn condition<'a>(job: &'a Value, type_: &str) -> Option<&'a Value> {
    job.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

pub(super) fn condition_true(job: &Value, type_: &str) -> bool {
    condition(job, type_).and_then(|c| c.get("status")?.as_str()) == Some("True")
}

/// Complete or Failed (kube's `IsJobFinished`).
pub fn finished(job: &Value) -> bool {
    condition_true(job, "Complete") || condition_true(job, "Failed")
}

pub(super) fn millis(time: &str) -> Option<i64> {
    time.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

pub(super) fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

pub(super) fn until(target_ms: i64) -> Duration {
    Duration::from_millis((target_ms - now_ms()).max(0) as u64)
}

/// A condition as kube's job controller writes it.
fn new_condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    let now = object::now_rfc3339();
    let mut c =
        json!({"type": type_, "status": status, "lastProbeTime": now, "lastTransitionTime": now});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    c
}

fn conditions_mut(job: &mut Value) -> Option<&mut Vec<Value>> {
    let status = object::child(job, "status")?;
    let conditions = status
        .entry("conditions")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !conditions.is_array() {
        *conditions = Value::Array(Vec::new());
    }
    conditions.as_array_mut()
}

/// kube's `ensureJobConditionStatus`: set a condition (a False one is never added); whether it changed.
pub(super) fn ensure_condition(
    job: &mut Value,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) -> bool {
    let Some(conditions) = conditions_mut(job) else {
        return false;
    };
    let same = |c: &Value, k: &str, v: &str| c.get(k).and_then(Value::as_str).unwrap_or("") == v;
    match conditions
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
    {
        Some(c) => {
            if same(c, "status", status) && same(c, "reason", reason) && same(c, "message", message)
            {
                return false;
            }
            *c = new_condition(type_, status, reason, message);
            true
        }
        None if status == "False" => false,
        None => {
            conditions.push(new_condition(type_, status, reason, message));
            true
        }
    }
}

/// How a finished (or finishing) Job ends.
#[derive(Debug, Clone)]
pub(super) struct Finish {
    pub(super) type_: &'static str,
    pub(super) reason: String,
    pub(super) message: String,
}

impl Finish {
    pub(super) fn failure(reason: &str, message: &str) -> Finish {
        Finish {
            type_: "FailureTarget",
            reason: reason.into(),
            message: message.into(),
        }
    }
    pub(super) fn is_failure(&self) -> bool {
        matches!(self.type_, "FailureTarget" | "Failed")
    }
}

pub(super) fn uid_list(job: &Value, list: &str) -> Vec<String> {
    job.pointer(&format!("/status/uncountedTerminatedPods/{list}"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| Some(v.as_str()?.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn set_status(job: &mut Value, field: &str, v: Value) {
    if let Some(status) = object::child(job, "status") {
        if v.is_null() || v == json!(0) && matches!(field, "active" | "succeeded" | "failed") {
            // `omitempty` counters.
            status.remove(field);
        } else {
            status.insert(field.into(), v);
        }
    }
}

/// kube's `cleanUncountedPodsWithoutFinalizers`: uids whose pod no longer has the finalizer move from
/// `uncountedTerminatedPods` to the counters. Whether anything moved.
pub(super) fn clean_uncounted(job: &mut Value, with_finalizer: &BTreeSet<String>) -> bool {
    let mut changed = false;
    for (list, counter) in [("succeeded", "succeeded"), ("failed", "failed")] {
        let uids = uid_list(job, list);
        let keep: Vec<String> = uids
            .iter()
            .filter(|u| with_finalizer.contains(*u))
            .cloned()
            .collect();
        if keep.len() != uids.len() {
            changed = true;
            let n = int_at(job, &format!("/status/{counter}")).unwrap_or(0)
                + (uids.len() - keep.len()) as i64;
            set_status(job, counter, json!(n));
            set_uncounted(job, list, keep);
        }
    }
    changed
}

pub(super) fn set_uncounted(job: &mut Value, list: &str, uids: Vec<String>) {
    if let Some(status) = object::child(job, "status") {
        let u = status
            .entry("uncountedTerminatedPods")
            .or_insert_with(|| json!({}));
        if !u.is_object() {
            *u = json!({});
        }
        if let Some(m) = u.as_object_mut() {
            if uids.is_empty() {
                m.remove(list);
            } else {
                m.insert(list.into(), json!(uids));
            }
        }
    }
}
