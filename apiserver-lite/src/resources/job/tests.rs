//! Unit tests of the batch/v1 Job API: defaults, the generated selector, validation and table cells.

use serde_json::{Value, json};

use super::*;
use crate::resources::{Kind, ResourceDef, by_kind};
use crate::status::FieldError;

fn def() -> &'static ResourceDef {
    by_kind(Kind::Job)
}

/// What `kubectl create job pi --image=busybox:1.35 -- sh -c 'exit 0'` sends.
fn pi() -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "pi", "namespace": "default", "uid": "u-1"},
        "spec": {"template": {"metadata": {}, "spec": {"restartPolicy": "Never",
            "containers": [{"name": "pi", "image": "busybox:1.35", "command": ["sh", "-c", "exit 0"]}]}}}})
}

fn created(obj: Value) -> Value {
    let mut obj = obj;
    def().default_on_create(&mut obj);
    obj
}

fn lines(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(FieldError::to_line).collect()
}

#[test]
fn defaults_and_generated_selector() {
    let job = created(pi());
    let spec = &job["spec"];
    assert_eq!(spec["completions"], 1);
    assert_eq!(spec["parallelism"], 1);
    assert_eq!(spec["backoffLimit"], 6);
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
    assert!(spec.get("manualSelector").is_none());
    assert_eq!(
        spec["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
    );
    let labels = json!({"batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi",
        "controller-uid": "u-1", "job-name": "pi"});
    assert_eq!(spec["template"]["metadata"]["labels"], labels);
    // A Job without labels shows its template's.
    assert_eq!(job["metadata"]["labels"], labels);
    assert_eq!(job["status"], json!({}));
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert!(lines(&def().validate_create(&job)).is_empty(), "{job:#}");

    // Parallelism alone leaves completions unset; user labels on the Job and template are kept.
    let mut p = pi();
    p["spec"]["parallelism"] = json!(3);
    p["metadata"]["labels"] = json!({"team": "a"});
    p["spec"]["template"]["metadata"]["labels"] = json!({"app": "pi"});
    let job = created(p);
    assert!(job["spec"].get("completions").is_none());
    assert_eq!(job["spec"]["parallelism"], 3);
    assert_eq!(job["metadata"]["labels"], json!({"team": "a"}));
    assert_eq!(job["spec"]["template"]["metadata"]["labels"]["app"], "pi");
    // A pod failure policy means only failed pods are replaced.
    let mut p = pi();
    p["spec"]["podFailurePolicy"] = json!({"rules": []});
    assert_eq!(created(p)["spec"]["podReplacementPolicy"], "Failed");
}

#[test]
fn manual_selector_is_not_generated() {
    let mut p = pi();
    p["spec"]["manualSelector"] = json!(true);
    p["spec"]["selector"] = json!({"matchLabels": {"app": "pi"}});
    p["spec"]["template"]["metadata"]["labels"] = json!({"app": "pi"});
    let job = created(p);
    assert_eq!(
        job["spec"]["selector"],
        json!({"matchLabels": {"app": "pi"}})
    );
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"],
        json!({"app": "pi"})
    );
    assert!(def().validate_create(&job).is_empty());
    // Without manualSelector a selector of one's own is refused.
    let mut p = pi();
    p["spec"]["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "other"}});
    let errs = lines(&def().validate_create(&created(p)));
    assert!(
        errs.iter().any(|e| e.starts_with("spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"batch.kubernetes.io/controller-uid\":\"other\"}")
            && e.ends_with("`selector` not auto-generated")),
        "{errs:?}"
    );
    let mut p = pi();
    p["spec"]["template"]["metadata"]["labels"] = json!({"job-name": "other"});
    let errs = lines(&def().validate_create(&created(p)));
    assert!(
        errs.iter().any(|e| e.starts_with(
            "spec.template.metadata.labels[job-name]: Invalid value: map[string]string{"
        ) && e.ends_with("must be 'pi'")),
        "{errs:?}"
    );
}

#[test]
fn spec_errors_as_kube_words_them() {
    let mut p = pi();
    p["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
    assert_eq!(
        lines(&def().validate_create(&created(p))),
        [
            "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""
        ]
    );
    // Unset defaults to Always: the same error.
    let mut p = pi();
    p["spec"]["template"]["spec"]
        .as_object_mut()
        .map(|s| s.remove("restartPolicy"));
    assert_eq!(lines(&def().validate_create(&created(p))).len(), 1);
    let mut p = pi();
    p["spec"]["parallelism"] = json!(-1);
    p["spec"]["completions"] = json!(-2);
    p["spec"]["backoffLimit"] = json!(-3);
    p["spec"]["activeDeadlineSeconds"] = json!(-4);
    p["spec"]["ttlSecondsAfterFinished"] = json!(-5);
    p["spec"]["completionMode"] = json!("Sometimes");
    p["spec"]["podReplacementPolicy"] = json!("Never");
    assert_eq!(
        lines(&def().validate_create(&created(p))),
        [
            "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
            "spec.completions: Invalid value: -2: must be greater than or equal to 0",
            "spec.activeDeadlineSeconds: Invalid value: -4: must be greater than or equal to 0",
            "spec.backoffLimit: Invalid value: -3: must be greater than or equal to 0",
            "spec.ttlSecondsAfterFinished: Invalid value: -5: must be greater than or equal to 0",
            "spec.completionMode: Unsupported value: \"Sometimes\": supported values: \"NonIndexed\", \"Indexed\"",
            "spec.podReplacementPolicy: Unsupported value: \"Never\": supported values: \"Failed\", \"TerminatingOrFailed\"",
        ]
    );
    let mut p = pi();
    p["spec"]["template"]["spec"]["containers"][0]["image"] = json!("");
    assert_eq!(
        lines(&def().validate_create(&created(p))),
        ["spec.template.spec.containers[0].image: Required value"]
    );
    let mut p = pi();
    p["spec"]["completionMode"] = json!("Indexed");
    p["spec"]["parallelism"] = json!(2);
    p["spec"].as_object_mut().map(|s| s.remove("completions"));
    assert!(lines(&def().validate_create(&created(p))).contains(
        &"spec.completions: Required value: when completion mode is Indexed".to_string()
    ));
}

#[test]
fn update_rules() {
    let old = created(pi());
    let mut new = old.clone();
    new["spec"]["completions"] = json!(3);
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("busybox:1.36");
    let errs = lines(&def().validate_update(&old, &new));
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(
        errs[0],
        "spec.completions: Invalid value: 3: field is immutable"
    );
    assert!(
        errs[1].starts_with("spec.template: Invalid value: ")
            && errs[1].ends_with("field is immutable")
    );
    let mut new = old.clone();
    new["spec"]["selector"]["matchLabels"]["x"] = json!("y");
    new["spec"]["template"]["metadata"]["labels"]["x"] = json!("y");
    let errs = lines(&def().validate_update(&old, &new));
    assert!(
        errs.iter().any(
            |e| e.starts_with("spec.selector: Invalid value: v1.LabelSelector{")
                && e.ends_with("field is immutable")
        ),
        "{errs:?}"
    );
    // Mutable: parallelism, suspend, backoffLimit, activeDeadlineSeconds.
    let mut new = old.clone();
    new["spec"]["parallelism"] = json!(4);
    new["spec"]["suspend"] = json!(true);
    new["spec"]["backoffLimit"] = json!(1);
    new["spec"]["activeDeadlineSeconds"] = json!(60);
    assert!(def().validate_update(&old, &new).is_empty());
    // A suspended Job that never started may change its scheduling directives, but not its image.
    let mut suspended = old.clone();
    suspended["spec"]["suspend"] = json!(true);
    let mut new = suspended.clone();
    new["spec"]["template"]["spec"]["nodeSelector"] = json!({"disk": "ssd"});
    new["spec"]["template"]["metadata"]["annotations"] = json!({"a": "b"});
    assert!(def().validate_update(&suspended, &new).is_empty());
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("busybox:1.36");
    assert_eq!(def().validate_update(&suspended, &new).len(), 1);
}

#[test]
fn status_rules() {
    let old = created(pi());
    let with = |status: Value| {
        let mut j = old.clone();
        j["status"] = status;
        lines(&def().validate_update(&old, &j))
    };
    let now = "2026-01-01T00:00:10Z";
    let cond = |t: &str| json!({"type": t, "status": "True", "lastProbeTime": now, "lastTransitionTime": now});
    // What the controller writes on completion passes.
    assert!(with(json!({"startTime": "2026-01-01T00:00:00Z", "completionTime": now, "succeeded": 1, "ready": 0,
        "terminating": 0, "conditions": [cond("SuccessCriteriaMet"), cond("Complete")]})).is_empty());
    assert_eq!(
        with(json!({"startTime": now, "conditions": [cond("Complete")]})),
        [
            "status.completionTime: Required value: completionTime is required for Complete jobs",
            "status.conditions: Invalid value: cannot set Complete=True condition without the SuccessCriteriaMet=true condition",
        ]
    );
    assert_eq!(
        with(
            json!({"startTime": now, "active": 1, "conditions": [cond("FailureTarget"), cond("Failed")]})
        ),
        ["status.active: Invalid value: 1: active>0 is invalid for finished job"]
    );
    assert_eq!(
        with(json!({"active": 1, "ready": 2, "failed": -1,
            "uncountedTerminatedPods": {"succeeded": ["a"], "failed": ["a"]}})),
        [
            "status.failed: Invalid value: -1: must be greater than or equal to 0",
            "status.uncountedTerminatedPods.failed[0]: Duplicate value: \"a\"",
            "status.ready: Invalid value: 2: cannot set more ready pods than active",
            "status.failed: Invalid value: -1: cannot decrease the failed counter",
        ]
    );
    let mut counted = old.clone();
    counted["status"] = json!({"succeeded": 2});
    let mut fewer = old.clone();
    fewer["status"] = json!({"succeeded": 1});
    assert_eq!(
        lines(&def().validate_update(&counted, &fewer)),
        ["status.succeeded: Invalid value: 1: cannot decrease the succeeded counter"]
    );
}

#[test]
fn table_cells_follow_kubes_printer() {
    let t = crate::resources::table::table(def(), &[created(pi())], None, "None", true);
    let names: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        [
            "Name",
            "Status",
            "Completions",
            "Duration",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let cells = &t["rows"][0]["cells"];
    assert_eq!(cells[1], "Running");
    assert_eq!(cells[2], "0/1");
    assert_eq!(cells[3], "");
    assert_eq!(cells[5], "pi");
    assert_eq!(cells[6], "busybox:1.35");
    assert_eq!(cells[7], "batch.kubernetes.io/controller-uid=u-1");

    let mut job = created(pi());
    job["status"] = json!({"startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:02:05Z",
        "succeeded": 1, "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]});
    assert_eq!(status_cell(&job), "Complete");
    assert_eq!(completions_cell(&job), "1/1");
    assert_eq!(duration_cell(&job, 0), "2m5s");
    let mut job = created(pi());
    job["spec"].as_object_mut().map(|s| s.remove("completions"));
    job["spec"]["parallelism"] = json!(3);
    job["status"] = json!({"startTime": "2026-01-01T00:00:00Z", "conditions": [{"type": "FailureTarget", "status": "True"}]});
    assert_eq!(completions_cell(&job), "0/1 of 3");
    assert_eq!(status_cell(&job), "FailureTarget");
    let start = jiff::Timestamp::from_second(1_767_225_600)
        .map(|t| t.as_second())
        .unwrap_or(0);
    assert_eq!(duration_cell(&job, start + 30), "30s");
    job["status"]["conditions"] = json!([{"type": "Suspended", "status": "True"}]);
    assert_eq!(status_cell(&job), "Suspended");
    job["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    assert_eq!(status_cell(&job), "Terminating");
    job["status"]["conditions"] =
        json!([{"type": "FailureTarget", "status": "True"}, {"type": "Failed", "status": "True"}]);
    assert_eq!(status_cell(&job), "Failed");
    // `status.successful` is a field selector of Jobs.
    assert_eq!(def().field_value(&job, "status.successful"), "0");
    assert!(def().field_selectors().contains(&"status.successful"));
}

#[test]
fn normalize_drops_unknown_fields() {
    let mut p = pi();
    p["spec"]["bogus"] = json!(1);
    let n = normalize(&p).expect("valid job");
    assert!(n["spec"].get("bogus").is_none());
    assert!(normalize(&json!({"spec": {"parallelism": "x"}})).is_err());
}

#[test]
fn policy_errors_as_kube_words_them() {
    let mut job = pi();
    job["spec"]["completionMode"] = json!("Indexed");
    job["spec"]["completions"] = json!(4);
    job["spec"]["maxFailedIndexes"] = json!(5);
    job["spec"]["backoffLimitPerIndex"] = json!(1);
    job["spec"]["podFailurePolicy"] = json!({"rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "other", "operator": "In", "values": [0, 3, 2]}},
        {"action": "Restart", "onPodConditions": [{"type": "DisruptionTarget", "status": "Maybe"}]},
        {"action": "Ignore"},
    ]});
    job["spec"]["successPolicy"] = json!({"rules": [
        {"succeededIndexes": "0-2", "succeededCount": 4}, {"succeededIndexes": "3-1"}, {}]});
    let job = created(job);
    assert_eq!(job["spec"]["backoffLimit"], i64::from(i32::MAX));
    let errs = lines(&validate(&job));
    for want in [
        "spec.maxFailedIndexes: Invalid value: 5: must be less than or equal to completions",
        "spec.podFailurePolicy.rules[0].onExitCodes.containerName: Invalid value: \"other\": must be one of the container or initContainer names in the pod template",
        "spec.podFailurePolicy.rules[0].onExitCodes.values[0]: Invalid value: 0: must not be 0 for the In operator",
        "spec.podFailurePolicy.rules[0].onExitCodes.values[2]: Invalid value: 2: must be ordered",
        "spec.podFailurePolicy.rules[1].action: Unsupported value: \"Restart\": supported values: \"Count\", \"FailIndex\", \"FailJob\", \"Ignore\"",
        "spec.podFailurePolicy.rules[1].onPodConditions[0].status: Unsupported value: \"Maybe\": supported values: \"True\", \"False\", \"Unknown\"",
        "spec.podFailurePolicy.rules[2]: Required value: specifying one of OnExitCodes and OnPodConditions is required",
        "spec.successPolicy.rules[0].succeededCount: Invalid value: 4: must be less than or equal to 3 (the number of indexes in the specified succeededIndexes field)",
        "spec.successPolicy.rules[1].succeededIndexes: Invalid value: \"3-1\": error parsing succeededIndexes: non-increasing order, previous: 3, current: 1",
        "spec.successPolicy.rules[2]: Required value: at least one of succeededCount or succeededIndexes must be specified",
    ] {
        assert!(
            errs.iter().any(|e| e == want),
            "missing {want:?} in {errs:#?}"
        );
    }
    // FailIndex needs a per-index limit.
    let mut job = pi();
    job["spec"]["podFailurePolicy"] = json!({"rules": [
        {"action": "FailIndex", "onExitCodes": {"operator": "NotIn", "values": [0]}}]});
    let errs = lines(&validate(&created(job)));
    assert!(
        errs.contains(&"spec.podFailurePolicy.rules[0].action: Invalid value: \"FailIndex\": requires the backoffLimitPerIndex to be set".to_string()),
        "{errs:#?}"
    );
}
