//! kube's `ValidateJobStatusUpdate`: the counters, `uncountedTerminatedPods`, the terminal conditions and
//! the times of a Job's status.

use serde_json::{Value, json};

use super::validation::nonnegative;
use super::{condition_true, int_at};
use crate::status::FieldError;

/// kube's `validateJobStatus` and `ValidateJobStatusUpdate` (the rules kube 1.32 applies with its default
/// feature gates).
pub(super) fn validate_status_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(st) = new.get("status").filter(|s| s.is_object()) else {
        return errs;
    };
    for key in ["active", "succeeded", "failed", "ready", "terminating"] {
        nonnegative(st, key, "status", &mut errs);
    }
    let mut seen = std::collections::HashSet::new();
    for list in ["succeeded", "failed"] {
        let uids = st
            .pointer(&format!("/uncountedTerminatedPods/{list}"))
            .and_then(Value::as_array);
        for (i, uid) in uids.into_iter().flatten().enumerate() {
            let field = format!("status.uncountedTerminatedPods.{list}[{i}]");
            match uid.as_str() {
                Some("") | None => errs.push(FieldError::invalid(field, uid, "must not be empty")),
                Some(u) if !seen.insert(u.to_string()) => {
                    errs.push(FieldError::duplicate(field, uid))
                }
                Some(_) => {}
            }
        }
    }
    let conditions = |msg: &str| FieldError {
        reason: "FieldValueInvalid",
        field: "status.conditions".into(),
        message: format!("Invalid value: {msg}"),
    };
    let complete = condition_true(new, "Complete");
    let failed = condition_true(new, "Failed");
    let failure_target = condition_true(new, "FailureTarget");
    let criteria_met = condition_true(new, "SuccessCriteriaMet");
    let finished = complete || failed;
    if complete && failed {
        errs.push(conditions(
            "cannot set Complete=True and Failed=true conditions",
        ));
    }
    if complete && failure_target {
        errs.push(conditions(
            "cannot set Complete=True and FailureTarget=true conditions",
        ));
    }
    let completion = st.get("completionTime").filter(|v| !v.is_null());
    if let Some(ct) = completion
        && !complete
    {
        errs.push(FieldError::invalid(
            "status.completionTime",
            ct,
            "cannot set completionTime when there is no Complete=True condition",
        ));
    }
    if completion.is_none() && complete {
        errs.push(FieldError::required(
            "status.completionTime",
            "completionTime is required for Complete jobs",
        ));
    }
    let ts = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .and_then(|s| s.parse::<jiff::Timestamp>().ok())
    };
    if let (Some(start), Some(end)) = (ts(st.get("startTime")), ts(completion))
        && end < start
    {
        errs.push(FieldError::invalid(
            "status.completionTime",
            completion.unwrap_or(&Value::Null),
            "completionTime cannot be set before startTime",
        ));
    }
    if failed && !failure_target {
        errs.push(conditions(
            "cannot set Failed=True condition without the FailureTarget=true condition",
        ));
    }
    if complete && !criteria_met {
        errs.push(conditions(
            "cannot set Complete=True condition without the SuccessCriteriaMet=true condition",
        ));
    }
    if finished && int_at(st, "/active").unwrap_or(0) > 0 {
        errs.push(FieldError::invalid(
            "status.active",
            st.get("active").unwrap_or(&Value::Null),
            "active>0 is invalid for finished job",
        ));
    }
    if finished && st.get("startTime").is_none_or(Value::is_null) {
        errs.push(FieldError::required(
            "status.startTime",
            "startTime is required for finished job",
        ));
    }
    let uncounted = ["succeeded", "failed"].iter().any(|l| {
        st.pointer(&format!("/uncountedTerminatedPods/{l}"))
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
    });
    if finished && uncounted {
        errs.push(FieldError::invalid(
            "status.uncountedTerminatedPods",
            st.get("uncountedTerminatedPods").unwrap_or(&Value::Null),
            "uncountedTerminatedPods needs to be empty for finished job",
        ));
    }
    if finished && int_at(st, "/terminating").unwrap_or(0) > 0 {
        errs.push(FieldError::invalid(
            "status.terminating",
            st.get("terminating").unwrap_or(&Value::Null),
            "terminating>0 is invalid for finished job",
        ));
    }
    if let Some(ready) = int_at(st, "/ready")
        && ready > int_at(st, "/active").unwrap_or(0)
    {
        errs.push(FieldError::invalid(
            "status.ready",
            &json!(ready),
            "cannot set more ready pods than active",
        ));
    }
    if criteria_met && failed {
        errs.push(conditions(
            "cannot set SuccessCriteriaMet=True and Failed=true conditions",
        ));
    }
    if criteria_met && failure_target {
        errs.push(conditions(
            "cannot set SuccessCriteriaMet=True and FailureTarget=true conditions",
        ));
    }
    for c in ["Failed", "Complete", "FailureTarget"] {
        if condition_true(old, c) && !condition_true(new, c) {
            errs.push(conditions(&format!(
                "cannot disable the terminal {c}=True condition"
            )));
        }
    }
    for counter in ["failed", "succeeded"] {
        let o = int_at(old, &format!("/status/{counter}")).unwrap_or(0);
        let n = int_at(new, &format!("/status/{counter}")).unwrap_or(0);
        if n < o {
            errs.push(FieldError::invalid(
                format!("status.{counter}"),
                &json!(n),
                &format!("cannot decrease the {counter} counter"),
            ));
        }
    }
    let o_ct = old
        .pointer("/status/completionTime")
        .filter(|v| !v.is_null());
    if let (Some(o), Some(n)) = (o_ct, completion)
        && o != n
    {
        errs.push(FieldError::invalid(
            "status.completionTime",
            n,
            "completionTime cannot be mutated",
        ));
    }
    let suspended = new.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true);
    let o_start = old.pointer("/status/startTime").filter(|v| !v.is_null());
    if o_start.is_some() && o_start != st.get("startTime").filter(|v| !v.is_null()) && !suspended {
        errs.push(FieldError::required(
            "status.startTime",
            "startTime cannot be removed for unsuspended job",
        ));
    }
    if condition_true(old, "SuccessCriteriaMet") && !criteria_met {
        errs.push(conditions(
            "cannot disable the SuccessCriteriaMet=True condition",
        ));
    }
    errs
}
