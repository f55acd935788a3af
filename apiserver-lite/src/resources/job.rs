//! batch/v1 Jobs: kube's defaults (`SetDefaults_Job`), the create strategy's generated selector and pod
//! labels, validation (`ValidateJob`, `ValidateJobUpdate`, `ValidateJobUpdateStatus`) and kube 1.32's table
//! columns. The pod template shares the apps/v1 kinds' defaulting and checks (`workloads`).

mod defaults;
mod policies;
mod status;
mod table;
mod update;
mod validation;

use serde_json::Value;

pub use defaults::{defaults, prepare_create};
pub use table::{cells, columns, completions_cell, duration_cell, status_cell};
pub use update::validate_update;
pub use validation::validate;
pub(crate) use validation::validate_template_spec;

/// The label kube 1.27+ selects a Job's pods by (value: the Job's uid).
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// The label with the Job's name on its pods.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The unprefixed labels kube still adds for old clients.
pub const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";
/// The finalizer the Job controller keeps on its pods until it has counted them.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// Round-trip through `k8s_openapi::api::batch::v1::Job` (unknown fields dropped).
pub fn normalize(v: &Value) -> Result<Value, String> {
    let job: k8s_openapi::api::batch::v1::Job =
        serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(job).map_err(|e| e.to_string())
}

fn is_set(obj: &Value, key: &str) -> bool {
    obj.get(key).is_some_and(|v| !v.is_null())
}

fn manual_selector(obj: &Value) -> bool {
    obj.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true)
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn int_at(v: &Value, p: &str) -> Option<i64> {
    v.pointer(p).and_then(Value::as_i64)
}

fn condition_true(obj: &Value, type_: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(type_)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

#[cfg(test)]
mod tests;
