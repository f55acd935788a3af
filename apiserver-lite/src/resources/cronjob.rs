//! batch/v1 CronJobs: kube's defaults (`SetDefaults_CronJob`, the job template's pod template like a
//! Job's), validation (`ValidateCronJobCreate`, `ValidateCronJobUpdate`: the schedule through
//! [`schedule`], the time zone, the job template as a Job's spec) and kube 1.32's table columns.

pub mod schedule;

use serde_json::{Value, json};

use super::{job, workloads};
use crate::status::FieldError;

/// The annotation with the time a Job was scheduled for (RFC 3339 in the CronJob's zone).
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// Round-trip through `k8s_openapi::api::batch::v1::CronJob` (unknown fields dropped).
pub fn normalize(v: &Value) -> Result<Value, String> {
    let cj: k8s_openapi::api::batch::v1::CronJob =
        serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(cj).map_err(|e| e.to_string())
}

fn set_default(obj: &mut Value, key: &str, v: Value) {
    if let Some(m) = obj.as_object_mut()
        && m.get(key).is_none_or(Value::is_null)
    {
        m.insert(key.to_string(), v);
    }
}

fn ensure_object<'a>(obj: &'a mut Value, key: &str) -> &'a mut Value {
    if obj.get(key).is_none_or(|v| !v.is_object()) {
        obj[key] = json!({});
    }
    &mut obj[key]
}

/// kube's `SetDefaults_CronJob`, and the pod template's defaults in the job template (the job spec's own
/// fields stay unset, as in kube: the Job gets them when it is created).
pub fn defaults(obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    let spec = ensure_object(obj, "spec");
    set_default(spec, "concurrencyPolicy", json!("Allow"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    let job_spec = ensure_object(ensure_object(spec, "jobTemplate"), "spec");
    workloads::default_template(ensure_object(job_spec, "template"));
}

/// Defaults and an empty status on create.
pub fn prepare_create(obj: &mut Value) {
    defaults(obj);
    obj["status"] = json!({});
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn nonnegative(spec: &Value, key: &str, errs: &mut Vec<FieldError>) {
    if let Some(n) = spec.get(key).and_then(Value::as_i64)
        && n < 0
    {
        errs.push(FieldError::invalid(
            format!("spec.{key}"),
            &json!(n),
            "must be greater than or equal to 0",
        ));
    }
}

/// kube's `validateScheduleFormat`: robfig's parse error, and no `TZ=` unless the old schedule had one.
fn validate_schedule(
    schedule: &str,
    allow_tz: bool,
    time_zone: Option<&Value>,
    errs: &mut Vec<FieldError>,
) {
    const FIELD: &str = "spec.schedule";
    if let Err(e) = schedule::parse(schedule) {
        errs.push(FieldError::invalid(FIELD, &json!(schedule), &e));
    }
    if schedule.contains("TZ") {
        if !allow_tz {
            errs.push(FieldError::invalid(
                FIELD,
                &json!(schedule),
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        } else if time_zone.is_some() {
            errs.push(FieldError::invalid(
                FIELD,
                &json!(schedule),
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        }
    }
}

/// kube's `validateTimeZone`: an IANA name of the system's zoneinfo, not `Local`.
fn validate_time_zone(tz: &Value, errs: &mut Vec<FieldError>) {
    const FIELD: &str = "spec.timeZone";
    let name = tz.as_str().unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::invalid(
            FIELD,
            tz,
            "timeZone must be nil or non-empty string",
        ));
        return;
    }
    let bad_part = name.split('/').any(|part| {
        part == "."
            || part == ".."
            || part.starts_with('-')
            || part.is_empty()
            || part.len() > 14
            || !part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
    });
    if bad_part {
        errs.push(FieldError::invalid(
            FIELD,
            tz,
            &format!("unknown time zone {name}"),
        ));
        return;
    }
    if name.eq_ignore_ascii_case("Local") {
        errs.push(FieldError::invalid(
            FIELD,
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    } else if let Err(e) = schedule::load_zone(name) {
        errs.push(FieldError::invalid(FIELD, tz, &e));
    }
}

/// kube's `ValidateJobTemplateSpec`: the job spec as a Job's (under `spec.jobTemplate`), and no selector
/// (it is generated for each Job).
fn validate_job_template(spec: &Value, errs: &mut Vec<FieldError>) {
    let job_spec = spec
        .pointer("/jobTemplate/spec")
        .cloned()
        .unwrap_or(json!({}));
    for mut e in job::validate_template_spec(&job_spec) {
        e.field = format!("spec.jobTemplate.{}", e.field);
        errs.push(e);
    }
    if let Some(sel) = job_spec.get("selector").filter(|s| !s.is_null()) {
        errs.push(workloads::invalid_go(
            "spec.jobTemplate.spec.selector",
            workloads::go_selector(sel),
            "`selector` will be auto-generated",
        ));
    }
    if job_spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        errs.push(FieldError::not_supported(
            "spec.jobTemplate.spec.manualSelector",
            &json!(true),
            &["nil", "false"],
        ));
    }
}

/// kube's `validateCronJobSpec` (`old`: the stored spec on update).
fn validate_spec(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    let time_zone = spec.get("timeZone").filter(|v| !v.is_null());
    let schedule = str_at(&spec, "/schedule");
    if schedule.is_empty() {
        errs.push(FieldError::required("spec.schedule", ""));
    } else {
        let allow_tz = old.is_some_and(|o| str_at(o, "/spec/schedule").contains("TZ"));
        validate_schedule(schedule, allow_tz, time_zone, &mut errs);
    }
    nonnegative(&spec, "startingDeadlineSeconds", &mut errs);
    let old_tz = old.and_then(|o| o.pointer("/spec/timeZone").filter(|v| !v.is_null()));
    if let Some(tz) = time_zone
        && (old.is_none() || old_tz != Some(tz))
    {
        validate_time_zone(tz, &mut errs);
    }
    match str_at(&spec, "/concurrencyPolicy") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(FieldError::required("spec.concurrencyPolicy", "")),
        other => errs.push(FieldError::not_supported(
            "spec.concurrencyPolicy",
            &json!(other),
            &["Allow", "Forbid", "Replace"],
        )),
    }
    validate_job_template(&spec, &mut errs);
    nonnegative(&spec, "successfulJobsHistoryLimit", &mut errs);
    nonnegative(&spec, "failedJobsHistoryLimit", &mut errs);
    errs
}

/// kube's `ValidateCronJobCreate` (the metadata is checked by the caller): the spec, and a name of at
/// most 52 characters (the controller appends `-<minutes>` to name its Jobs).
pub fn validate_create(obj: &Value) -> Vec<FieldError> {
    let mut errs = validate_spec(obj, None);
    let name = str_at(obj, "/metadata/name");
    if name.len() > 52 {
        errs.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            "must be no more than 52 characters",
        ));
    }
    errs
}

/// kube's `ValidateCronJobUpdate`: the spec (a `TZ=` schedule stays allowed if it was there, the time
/// zone is checked only when it changes); no name length check.
pub fn validate_update(old: &Value, new: &Value) -> Vec<FieldError> {
    validate_spec(new, Some(old))
}

// ---- table ----

fn col(name: &str, ty: &str, desc: &str, priority: i32) -> Value {
    json!({"name": name, "type": ty, "format": "", "description": desc, "priority": priority})
}

/// kube 1.32's `cronJobColumnDefinitions`.
pub fn columns(name: Value, age: Value) -> Vec<Value> {
    vec![
        name,
        col(
            "Schedule",
            "string",
            "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
            0,
        ),
        col(
            "Timezone",
            "string",
            "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process.",
            0,
        ),
        col(
            "Suspend",
            "boolean",
            "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.",
            0,
        ),
        col("Active", "integer", "Number of currently running jobs.", 0),
        col(
            "Last Schedule",
            "date",
            "Information when was the last time the job was successfully scheduled.",
            0,
        ),
        age,
        col(
            "Containers",
            "string",
            "Names of each container in the template.",
            1,
        ),
        col(
            "Images",
            "string",
            "Images referenced by each container in the template.",
            1,
        ),
        col(
            "Selector",
            "string",
            "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
            1,
        ),
    ]
}

/// Row cells (kube's `printCronJob`, wide).
pub fn cells(cj: &Value, name: String, age: String) -> Vec<Value> {
    let job_spec = cj
        .pointer("/spec/jobTemplate")
        .cloned()
        .unwrap_or(json!({}));
    let (names, images) = workloads::container_cells(&job_spec);
    let selector = workloads::selector_string(job_spec.pointer("/spec/selector"));
    let time_zone = match str_at(cj, "/spec/timeZone") {
        "" => "<none>",
        tz => tz,
    };
    let suspend = match cj.pointer("/spec/suspend").and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let active = cj
        .pointer("/status/active")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let last = match str_at(cj, "/status/lastScheduleTime") {
        "" => "<none>".to_string(),
        t => super::table::since(Some(t)),
    };
    vec![
        json!(name),
        json!(str_at(cj, "/spec/schedule")),
        json!(time_zone),
        json!(suspend),
        json!(active),
        json!(last),
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
