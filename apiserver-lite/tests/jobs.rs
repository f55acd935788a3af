//! batch/v1 Jobs through the real kubectl against a real server: `kubectl create job`, the pod the Job
//! controller makes, completion, failure after `backoffLimit`, `kubectl get jobs` and kube's error for a
//! pod template that restarts Always. There is no agent here: the test plays the kubelet by writing the
//! pods' phase through `pods/status`.

mod common;

use std::time::{Duration, Instant};

use common::{Server, have};
use serde_json::Value;

fn json(s: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&s.ok(&all)).expect("kubectl JSON")
}

/// The pods of `job` that are neither finished nor being deleted, once there is at least one.
fn active_pods(s: &Server, job: &str) -> Vec<Value> {
    let selector = format!("batch.kubernetes.io/job-name={job}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = json(s, &["get", "pods", "-l", &selector]);
        let active: Vec<Value> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| {
                p["metadata"]["deletionTimestamp"].is_null()
                    && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
            })
            .cloned()
            .collect();
        if !active.is_empty() {
            return active;
        }
        assert!(
            Instant::now() < deadline,
            "no active pod of job {job}: {list}\n{}",
            common::tail(&s.log(), 40)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a kubelet reports when the pod's container exits.
fn finish(s: &Server, pod: &str, phase: &str) {
    let patch = format!(r#"{{"status":{{"phase":"{phase}"}}}}"#);
    s.ok(&[
        "patch",
        "pod",
        pod,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ]);
}

const FAILING: &str = "apiVersion: batch/v1
kind: Job
metadata: {name: flaky}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox:1.35, command: [sh, -c, 'exit 1']}]
";

#[test]
fn jobs_as_kubectl_sees_them() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let s = Server::start_with(&["--job-pod-failure-backoff", "100ms"]);
    let resources = s.ok(&["api-resources", "--api-group=batch", "--no-headers"]);
    let jobs_line = resources
        .lines()
        .find(|l| l.starts_with("jobs "))
        .unwrap_or("");
    let cols: Vec<&str> = jobs_line.split_whitespace().collect();
    assert_eq!(cols, ["jobs", "batch/v1", "true", "Job"], "{resources}");

    s.ok(&[
        "create",
        "job",
        "pi",
        "--image=busybox:1.35",
        "--",
        "sh",
        "-c",
        "exit 0",
    ]);
    let job = json(&s, &["get", "job", "pi"]);
    let uid = job["metadata"]["uid"].as_str().expect("uid").to_string();
    assert_eq!(
        job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        uid.as_str()
    );
    assert_eq!(job["spec"]["backoffLimit"], 6);
    assert_eq!(job["spec"]["completions"], 1);
    assert_eq!(job["metadata"]["labels"]["job-name"], "pi");

    let pods = active_pods(&s, "pi");
    assert_eq!(pods.len(), 1, "{pods:?}");
    let pod = &pods[0];
    let name = pod["metadata"]["name"].as_str().expect("name").to_string();
    assert!(name.starts_with("pi-"), "{name}");
    let labels = &pod["metadata"]["labels"];
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", uid.as_str()),
        ("controller-uid", uid.as_str()),
        ("batch.kubernetes.io/job-name", "pi"),
        ("job-name", "pi"),
    ] {
        assert_eq!(labels[k], v, "{labels}");
    }
    let owner = &pod["metadata"]["ownerReferences"][0];
    assert_eq!(owner["apiVersion"], "batch/v1");
    assert_eq!(owner["kind"], "Job");
    assert_eq!(owner["name"], "pi");
    assert_eq!(owner["uid"], uid.as_str());
    assert_eq!(owner["controller"], true);
    assert_eq!(owner["blockOwnerDeletion"], true);
    assert_eq!(
        pod["metadata"]["finalizers"],
        serde_json::json!(["batch.kubernetes.io/job-tracking"])
    );
    assert_eq!(pod["spec"]["restartPolicy"], "Never");

    finish(&s, &name, "Succeeded");
    s.ok(&[
        "wait",
        "--for=condition=complete",
        "job/pi",
        "--timeout=20s",
    ]);
    let out = s.ok(&["get", "jobs"]);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        "{out}"
    );
    assert_eq!(&lines[1][..3], ["pi", "Complete", "1/1"], "{out}");
    let job = json(&s, &["get", "job", "pi"]);
    assert_eq!(job["status"]["succeeded"], 1);
    let types: Vec<&str> = job["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["type"].as_str())
        .collect();
    assert_eq!(types, ["SuccessCriteriaMet", "Complete"]);
    assert!(job["status"]["completionTime"].is_string(), "{job}");
    // Counted: the finalizer is gone, the finished pod stays.
    let done = json(&s, &["get", "pod", &name]);
    assert!(done["metadata"]["finalizers"].is_null(), "{done}");

    // A Job whose pods fail: retried after the back-off, Failed once backoffLimit is passed.
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(FAILING));
    assert!(out.status.success(), "{out:?}");
    for _ in 0..2 {
        let pods = active_pods(&s, "flaky");
        assert_eq!(pods.len(), 1, "{pods:?}");
        finish(
            &s,
            pods[0]["metadata"]["name"].as_str().expect("name"),
            "Failed",
        );
    }
    s.ok(&[
        "wait",
        "--for=condition=failed",
        "job/flaky",
        "--timeout=20s",
    ]);
    let job = json(&s, &["get", "job", "flaky"]);
    assert_eq!(job["status"]["failed"], 2, "{job}");
    let failed = job["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Failed")
        .cloned()
        .unwrap_or_default();
    assert_eq!(failed["reason"], "BackoffLimitExceeded", "{job}");
    let row = s.ok(&["get", "job", "flaky", "--no-headers"]);
    assert_eq!(
        &row.split_whitespace().collect::<Vec<_>>()[..3],
        ["flaky", "Failed", "0/1"]
    );
    // The controller records its events right after the status it reports.
    let deadline = Instant::now() + Duration::from_secs(10);
    let events = loop {
        let events = s.ok(&[
            "get",
            "events",
            "--field-selector=involvedObject.name=flaky",
            "-o",
            "jsonpath={.items[*].reason}",
        ]);
        if events.contains("BackoffLimitExceeded") || Instant::now() > deadline {
            break events;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(events.contains("SuccessfulCreate"), "{events}");
    assert!(events.contains("BackoffLimitExceeded"), "{events}");

    // A template that restarts Always is refused with kube's message.
    let bad = FAILING
        .replace("name: flaky", "name: bad")
        .replace("restartPolicy: Never", "restartPolicy: Always");
    let err = s.fails(&["create", "-f", "-"], Some(&bad));
    assert!(
        err.contains(
            "The Job \"bad\" is invalid: spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""
        ),
        "{err}"
    );
}

const INDEXED: &str = "apiVersion: batch/v1
kind: Job
metadata: {name: shards}
spec:
  completionMode: Indexed
  completions: 3
  parallelism: 3
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox:1.35, command: [sh, -c, 'echo $JOB_COMPLETION_INDEX']}]
";

#[test]
fn indexed_job_reports_completed_indexes() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let s = Server::start_with(&["--job-pod-failure-backoff", "100ms"]);
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(INDEXED));
    assert!(out.status.success(), "{out:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut pods = active_pods(&s, "shards");
    while pods.len() < 3 {
        assert!(Instant::now() < deadline, "3 pods expected: {pods:#?}");
        std::thread::sleep(Duration::from_millis(50));
        pods = active_pods(&s, "shards");
    }
    let mut hostnames: Vec<String> = pods
        .iter()
        .map(|p| p["spec"]["hostname"].as_str().unwrap_or("").to_string())
        .collect();
    hostnames.sort();
    assert_eq!(hostnames, ["shards-0", "shards-1", "shards-2"]);
    // Two of three done: kube's interval list.
    let by_index = |i: &str| {
        pods.iter()
            .find(|p| p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == i)
            .and_then(|p| p["metadata"]["name"].as_str())
            .unwrap_or_else(|| panic!("no pod of index {i}"))
            .to_string()
    };
    finish(&s, &by_index("0"), "Succeeded");
    finish(&s, &by_index("2"), "Succeeded");
    let read = || {
        s.ok(&[
            "get",
            "job",
            "shards",
            "-o",
            "jsonpath={.status.completedIndexes}",
        ])
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while read() != "0,2" {
        assert!(Instant::now() < deadline, "completedIndexes: {:?}", read());
        std::thread::sleep(Duration::from_millis(50));
    }
    finish(&s, &by_index("1"), "Succeeded");
    let deadline = Instant::now() + Duration::from_secs(20);
    while read() != "0-2" {
        assert!(Instant::now() < deadline, "completedIndexes: {:?}", read());
        std::thread::sleep(Duration::from_millis(50));
    }
    let row = s.ok(&["get", "job", "shards", "--no-headers"]);
    assert!(row.contains("Complete") && row.contains("3/3"), "{row}");
}
