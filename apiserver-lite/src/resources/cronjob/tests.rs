//! Unit tests of the batch/v1 CronJob API: defaults, validation and table cells.

use serde_json::{Value, json};

use super::*;
use crate::resources::{Kind, ResourceDef, by_kind};

fn def() -> &'static ResourceDef {
    by_kind(Kind::CronJob)
}

/// What `kubectl create cronjob hello --image=busybox:1.35 --schedule='*/1 * * * *' -- echo hi` sends.
fn hello() -> Value {
    json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "hello", "namespace": "default", "uid": "u-1",
            "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"metadata": {"name": "hello"},
            "spec": {"template": {"metadata": {}, "spec": {"restartPolicy": "OnFailure",
                "containers": [{"name": "hello", "image": "busybox:1.35", "command": ["echo", "hi"]}]}}}}}})
}

fn created(obj: Value) -> Value {
    let mut obj = obj;
    def().default_on_create(&mut obj);
    obj
}

fn lines(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(FieldError::to_line).collect()
}

/// The validation errors of `hello` changed by `edit`.
fn errors(edit: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut cj = hello();
    edit(&mut cj);
    lines(&def().validate_create(&created(cj)))
}

#[test]
fn defaults() {
    let cj = created(hello());
    let spec = &cj["spec"];
    assert_eq!(spec["concurrencyPolicy"], "Allow");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["successfulJobsHistoryLimit"], 3);
    assert_eq!(spec["failedJobsHistoryLimit"], 1);
    // The pod template is defaulted like a Job's; the job spec's own fields are not.
    let pod = &spec["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert!(spec["jobTemplate"]["spec"].get("backoffLimit").is_none());
    assert_eq!(cj["status"], json!({}));
    assert!(lines(&def().validate_create(&cj)).is_empty(), "{cj:#}");
    // Set values stay.
    let mut other = hello();
    other["spec"]["concurrencyPolicy"] = json!("Forbid");
    other["spec"]["successfulJobsHistoryLimit"] = json!(0);
    let other = created(other);
    assert_eq!(other["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(other["spec"]["successfulJobsHistoryLimit"], 0);
}

#[test]
fn schedule_validation() {
    assert_eq!(
        errors(|c| c["spec"]["schedule"] = json!("")),
        ["spec.schedule: Required value"]
    );
    assert_eq!(
        errors(|c| c["spec"]["schedule"] = json!("61 * * * *")),
        ["spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61"]
    );
    assert_eq!(
        errors(|c| c["spec"]["schedule"] = json!("@daily")),
        Vec::<String>::new()
    );
    assert_eq!(
        errors(|c| c["spec"]["schedule"] = json!("CRON_TZ=UTC 0 * * * *")),
        [
            "spec.schedule: Invalid value: \"CRON_TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
        ]
    );
    // An update keeps a TZ= schedule that was there already, but not together with timeZone.
    let mut old = created(hello());
    old["spec"]["schedule"] = json!("TZ=UTC 0 * * * *");
    let mut new = old.clone();
    assert!(lines(&def().validate_update(&old, &new)).is_empty());
    new["spec"]["timeZone"] = json!("Etc/UTC");
    assert_eq!(
        lines(&def().validate_update(&old, &new)),
        [
            "spec.schedule: Invalid value: \"TZ=UTC 0 * * * *\": cannot use both timeZone field and TZ or CRON_TZ in schedule"
        ]
    );
}

#[test]
fn time_zone_validation() {
    for ok in [
        "UTC",
        "Etc/UTC",
        "Europe/Berlin",
        "America/Argentina/Buenos_Aires",
    ] {
        assert_eq!(
            errors(|c| c["spec"]["timeZone"] = json!(ok)),
            Vec::<String>::new(),
            "{ok}"
        );
    }
    assert_eq!(
        errors(|c| c["spec"]["timeZone"] = json!("")),
        ["spec.timeZone: Invalid value: \"\": timeZone must be nil or non-empty string"]
    );
    assert_eq!(
        errors(|c| c["spec"]["timeZone"] = json!("Local")),
        [
            "spec.timeZone: Invalid value: \"Local\": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
        ]
    );
    for bad in ["Mars/Olympus", "../../etc/passwd", "Europe//Berlin"] {
        assert_eq!(
            errors(|c| c["spec"]["timeZone"] = json!(bad)),
            [format!(
                "spec.timeZone: Invalid value: \"{bad}\": unknown time zone {bad}"
            )]
        );
    }
}

#[test]
fn spec_validation() {
    assert_eq!(
        errors(|c| {
            c["spec"]["startingDeadlineSeconds"] = json!(-1);
            c["spec"]["successfulJobsHistoryLimit"] = json!(-1);
            c["spec"]["failedJobsHistoryLimit"] = json!(-2);
        }),
        [
            "spec.startingDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0",
            "spec.successfulJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
            "spec.failedJobsHistoryLimit: Invalid value: -2: must be greater than or equal to 0",
        ]
    );
    assert_eq!(
        errors(|c| c["spec"]["concurrencyPolicy"] = json!("Sometimes")),
        [
            "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\""
        ]
    );
    // The job template is checked as a Job's spec.
    let errs = errors(|c| {
        c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        c["spec"]["jobTemplate"]["spec"]["backoffLimit"] = json!(-1);
    });
    assert_eq!(
        errs,
        [
            "spec.jobTemplate.spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0",
            "spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
        ]
    );
    let errs = errors(|c| {
        c["spec"]["jobTemplate"]["spec"]["selector"] = json!({"matchLabels": {"a": "b"}});
        c["spec"]["jobTemplate"]["spec"]["manualSelector"] = json!(true);
    });
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with("spec.jobTemplate.spec.selector: Invalid value: "),
        "{errs:?}"
    );
    assert!(
        errs[0].ends_with("`selector` will be auto-generated"),
        "{errs:?}"
    );
    assert_eq!(
        errs[1],
        "spec.jobTemplate.spec.manualSelector: Unsupported value: true: supported values: \"nil\", \"false\""
    );
    let long = "a".repeat(53);
    assert_eq!(
        errors(|c| c["metadata"]["name"] = json!(long)),
        [format!(
            "metadata.name: Invalid value: \"{long}\": must be no more than 52 characters"
        )]
    );
    // An update skips the name length check.
    let mut old = created(hello());
    old["metadata"]["name"] = json!(long);
    assert!(lines(&def().validate_update(&old, &old.clone())).is_empty());
}

#[test]
fn table_cells() {
    let mut cj = created(hello());
    let cells = cronjob_cells(&cj);
    assert_eq!(
        cells,
        json!([
            "hello",
            "*/1 * * * *",
            "<none>",
            "False",
            0,
            "<none>",
            "1m",
            "hello",
            "busybox:1.35",
            "<none>"
        ])
    );
    cj["spec"]["timeZone"] = json!("Etc/UTC");
    cj["spec"]["suspend"] = json!(true);
    cj["status"]["active"] = json!([{"kind": "Job", "name": "hello-1"}]);
    cj["status"]["lastScheduleTime"] = json!("2000-01-01T00:00:00Z");
    let cells = cronjob_cells(&cj);
    assert_eq!(cells[2], "Etc/UTC");
    assert_eq!(cells[3], "True");
    assert_eq!(cells[4], 1);
    assert!(
        cells[5].as_str().is_some_and(|s| s.ends_with('y')),
        "{cells}"
    );
    let names: Vec<Value> = columns(json!("Name"), json!("Age"))
        .into_iter()
        .map(|c| c.get("name").cloned().unwrap_or(c))
        .collect();
    assert_eq!(
        names,
        [
            "Name",
            "Schedule",
            "Timezone",
            "Suspend",
            "Active",
            "Last Schedule",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
}

fn cronjob_cells(cj: &Value) -> Value {
    Value::Array(cells(cj, "hello".into(), "1m".into()))
}
