//! core/v1 LimitRanges through kubectl 1.32 against the real server: `kubectl create -f`, `get limits`,
//! `describe limits`, and the LimitRanger admission defaulting pods and refusing pods and claims that
//! break the limits, with kube's messages on kubectl's stderr.
//!
//! API-level test: no agent runs; pods stay Pending (only their stored spec matters here).

mod common;

use common::{Server, have, path_str};

const LIMITS: &str = "apiVersion: v1
kind: LimitRange
metadata:
  name: limits
spec:
  limits:
  - type: Container
    max: {cpu: 1, memory: 1Gi}
    default: {cpu: 500m, memory: 256Mi}
    defaultRequest: {cpu: 100m}
  - type: PersistentVolumeClaim
    min: {storage: 1Gi}
";

const PLAIN_POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: plain
spec:
  containers:
  - name: nginx
    image: 127.0.0.1:5000/library/nginx:1.27
";

const BIG_POD: &str = "apiVersion: v1
kind: Pod
metadata:
  generateName: big-
spec:
  containers:
  - name: nginx
    image: 127.0.0.1:5000/library/nginx:1.27
    resources:
      limits: {cpu: 2, memory: 2Gi}
";

const SMALL_CLAIM: &str = "apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: small
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests: {storage: 500Mi}
";

const BAD_LIMITS: &str = "apiVersion: v1
kind: LimitRange
metadata:
  name: bad
spec:
  limits:
  - type: Container
    min: {cpu: 2}
    max: {cpu: 1}
";

/// The table cells of `kubectl get` output, split on the column gaps.
fn rows(table: &str) -> Vec<Vec<&str>> {
    table
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect()
}

#[test]
fn limit_ranges_default_and_refuse_pods_and_claims() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let s = Server::start();
    let out = s.ok(&["api-resources", "--api-group=", "--no-headers"]);
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["limitranges", "limits", "v1", "true", "LimitRange"]),
        "{out}"
    );
    s.ok(&["create", "-f", path_str(&s.write("limits.yaml", LIMITS))]);

    // kube's defaults on the stored object: defaultRequest from default, quantities as text.
    let stored = s.ok(&[
        "get",
        "limits",
        "limits",
        "-o",
        "jsonpath={.spec.limits[0].defaultRequest.cpu} {.spec.limits[0].defaultRequest.memory} {.spec.limits[0].max.cpu}",
    ]);
    assert_eq!(stored, "100m 256Mi 1");
    let created = s.ok(&[
        "get",
        "limits",
        "limits",
        "-o",
        "jsonpath={.metadata.creationTimestamp}",
    ]);
    let table = s.ok(&["get", "limits"]);
    let lines = rows(&table);
    assert_eq!(lines[0], ["NAME", "CREATED AT"], "{table}");
    assert_eq!(lines[1], ["limits", created.as_str()], "{table}");

    let described = s.ok(&["describe", "limits", "limits"]);
    let described_rows = rows(&described);
    for want in [
        vec!["Container", "cpu", "-", "1", "100m", "500m", "-"],
        vec!["Container", "memory", "-", "1Gi", "256Mi", "256Mi", "-"],
        vec![
            "PersistentVolumeClaim",
            "storage",
            "1Gi",
            "-",
            "-",
            "-",
            "-",
        ],
    ] {
        assert!(described_rows.contains(&want), "{want:?} in\n{described}");
    }

    // A pod without resources gets the container defaults and kube's annotation.
    s.ok(&["create", "-f", path_str(&s.write("plain.yaml", PLAIN_POD))]);
    let resources = s.ok(&[
        "get",
        "pod",
        "plain",
        "-o",
        "jsonpath={.spec.containers[0].resources.requests.cpu} {.spec.containers[0].resources.requests.memory} {.spec.containers[0].resources.limits.cpu} {.spec.containers[0].resources.limits.memory} {.status.qosClass}",
    ]);
    assert_eq!(resources, "100m 256Mi 500m 256Mi Burstable");
    let annotation = s.ok(&[
        "get",
        "pod",
        "plain",
        "-o",
        r"jsonpath={.metadata.annotations.kubernetes\.io/limit-ranger}",
    ]);
    assert_eq!(
        annotation,
        "LimitRanger plugin set: cpu, memory request for container nginx; cpu, memory limit for container nginx"
    );

    // Over the max: refused with kube's Forbidden, naming the generated name.
    let big = s.write("big.yaml", BIG_POD);
    let out = s.kubectl(&["create", "-f", path_str(&big)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let prefix = format!(
        "Error from server (Forbidden): error when creating \"{}\": pods \"big-",
        path_str(&big)
    );
    assert!(stderr.starts_with(&prefix), "{stderr}");
    assert!(
        stderr.trim_end().ends_with(
            "\" is forbidden: [maximum cpu usage per Container is 1, but limit is 2, maximum memory usage per Container is 1Gi, but limit is 2Gi]"
        ),
        "{stderr}"
    );
    let pods = s.ok(&["get", "pods", "-o", "name"]);
    assert_eq!(pods.trim(), "pod/plain");

    // Claims below the storage minimum are refused too.
    let out = s.kubectl(&[
        "create",
        "-f",
        path_str(&s.write("small.yaml", SMALL_CLAIM)),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "persistentvolumeclaims \"small\" is forbidden: minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"
        ),
        "{stderr}"
    );

    // kube's validation of the LimitRange itself.
    let err = s.fails(
        &["create", "-f", path_str(&s.write("bad.yaml", BAD_LIMITS))],
        None,
    );
    assert!(
        err.contains("The LimitRange \"bad\" is invalid")
            && err.contains("spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1"),
        "{err}"
    );
}
