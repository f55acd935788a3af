//! batch/v1 CronJobs through the real kubectl against a real server: `kubectl create cronjob` (protobuf),
//! `kubectl get cronjob`, kube's errors for bad schedules, `kubectl create job --from=cronjob/…` and the
//! garbage collector taking the Jobs when the CronJob goes. No test waits for a schedule's minute: the
//! controller's timing is covered by the unit tests on a moved clock.

mod common;

use std::time::{Duration, Instant};

use common::{Server, have};
use serde_json::Value;

fn json(s: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&s.ok(&all)).expect("kubectl JSON")
}

#[test]
fn cronjobs_as_kubectl_sees_them() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let s = Server::start();
    let resources = s.ok(&["api-resources", "--api-group=batch", "--no-headers"]);
    assert!(
        resources
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["cronjobs", "cj", "batch/v1", "true", "CronJob"]),
        "{resources}"
    );

    s.ok(&[
        "create",
        "cronjob",
        "hello",
        "--image=busybox:1.35",
        "--schedule=*/1 * * * *",
        "--",
        "echo",
        "hi",
    ]);
    let cj = json(&s, &["get", "cj", "hello"]);
    let uid = cj["metadata"]["uid"].as_str().expect("uid").to_string();
    assert_eq!(cj["spec"]["schedule"], "*/1 * * * *");
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
    let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "OnFailure");
    assert_eq!(
        pod["containers"][0]["command"],
        serde_json::json!(["echo", "hi"])
    );

    let out = s.ok(&["get", "cronjob"]);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"
        ],
        "{out}"
    );
    assert_eq!(
        &lines[1][..7],
        ["hello", "*/1", "*", "*", "*", "*", "<none>"],
        "{out}"
    );
    assert_eq!(lines[1][7], "False", "{out}");
    let wide = s.ok(&["get", "cronjob", "-o", "wide"]);
    let header: Vec<&str> = wide
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(&header[8..], ["CONTAINERS", "IMAGES", "SELECTOR"], "{wide}");
    assert!(wide.contains("busybox:1.35"), "{wide}");

    // kube's errors for schedules.
    let err = s.fails(
        &[
            "create",
            "cronjob",
            "bad",
            "--image=busybox:1.35",
            "--schedule=61 * * * *",
        ],
        None,
    );
    assert!(
        err.contains(
            "spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61"
        ),
        "{err}"
    );
    let err = s.fails(
        &[
            "create",
            "cronjob",
            "bad",
            "--image=busybox:1.35",
            "--schedule=TZ=UTC 0 * * * *",
        ],
        None,
    );
    assert!(
        err.contains("cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
        "{err}"
    );

    // kubectl builds the Job from the CronJob itself.
    s.ok(&["create", "job", "manual", "--from=cronjob/hello"]);
    let job = json(&s, &["get", "job", "manual"]);
    assert_eq!(
        job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!(owner["apiVersion"], "batch/v1");
    assert_eq!(owner["kind"], "CronJob");
    assert_eq!(owner["name"], "hello");
    assert_eq!(owner["uid"], uid.as_str());
    assert_eq!(owner["controller"], true);
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.35"
    );

    // Deleting the CronJob (background, kubectl's default) takes its Jobs with it.
    s.ok(&["delete", "cronjob", "hello"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let jobs = s.ok(&["get", "jobs", "-o", "name"]);
        if jobs.trim().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "jobs left: {jobs}\n{}",
            common::tail(&s.log(), 40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
