//! kube 1.32's table of Jobs (`jobColumnDefinitions`, `printJob`).

use serde_json::{Value, json};

use super::super::workloads;
use super::{condition_true, int_at};

fn col(name: &str, ty: &str, desc: &str, priority: i32) -> Value {
    json!({"name": name, "type": ty, "format": "", "description": desc, "priority": priority})
}

/// kube 1.32's `jobColumnDefinitions`.
pub fn columns(name: Value, age: Value) -> Vec<Value> {
    vec![
        name,
        col("Status", "string", "Status of the job.", 0),
        col(
            "Completions",
            "string",
            "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.",
            0,
        ),
        col(
            "Duration",
            "string",
            "Time required to complete the job.",
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

/// The STATUS column (kube 1.32's `printJob`).
pub fn status_cell(job: &Value) -> &'static str {
    if condition_true(job, "Complete") {
        "Complete"
    } else if condition_true(job, "Failed") {
        "Failed"
    } else if job
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        "Terminating"
    } else if condition_true(job, "Suspended") {
        "Suspended"
    } else if condition_true(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

/// The COMPLETIONS column: `succeeded/completions`, or for a Job without completions `n/1` (`n/1 of p`
/// with parallelism above 1).
pub fn completions_cell(job: &Value) -> String {
    let succeeded = int_at(job, "/status/succeeded").unwrap_or(0);
    match int_at(job, "/spec/completions") {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int_at(job, "/spec/parallelism").unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    }
}

/// The DURATION column: from startTime to completionTime (or now); empty before the start.
pub fn duration_cell(job: &Value, now: i64) -> String {
    let secs = |p: &str| {
        job.pointer(p)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_second())
    };
    match (secs("/status/startTime"), secs("/status/completionTime")) {
        (None, _) => String::new(),
        (Some(start), None) => super::super::table::human_duration(now - start),
        (Some(start), Some(end)) => super::super::table::human_duration(end - start),
    }
}

/// Row cells (kube's `printJob`, wide).
pub fn cells(job: &Value, name: String, age: String) -> Vec<Value> {
    let (names, images) = workloads::container_cells(job);
    let selector = workloads::selector_string(job.pointer("/spec/selector"));
    vec![
        json!(name),
        json!(status_cell(job)),
        json!(completions_cell(job)),
        json!(duration_cell(job, jiff::Timestamp::now().as_second())),
        json!(age),
        json!(names),
        json!(images),
        // kube's `metav1.FormatLabelSelector`.
        json!(if selector.is_empty() {
            "<none>".to_string()
        } else {
            selector
        }),
    ]
}
