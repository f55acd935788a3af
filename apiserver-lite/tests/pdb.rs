//! policy/v1 PodDisruptionBudgets through kubectl 1.32 against the real server (its disruption
//! controller and the eviction subresource): `kubectl create pdb`, `kubectl get pdb`, `kubectl drain`
//! refused by the budget, and raw evictions taking the one disruption a budget allows.
//!
//! API-level test: no agent runs. The node is a fake one this test registers and marks Ready, and the
//! test plays the kubelet by writing pod status Running and Ready.

mod common;

use std::time::{Duration, Instant};

use common::{Server, have, path_str};

const NODE: &str = "apiVersion: v1
kind: Node
metadata:
  name: pdb-n1
  labels: {kubernetes.io/hostname: pdb-n1}
";

fn pod(name: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: web}}
spec:
  nodeName: pdb-n1
  containers:
  - name: c
    image: 127.0.0.1:5000/library/busybox:1.35
"
    )
}

/// A Running, Ready pod `name` on the fake node.
fn ready_pod(s: &Server, name: &str) {
    let file = s.write(&format!("{name}.yaml"), &pod(name));
    s.ok(&["apply", "-f", path_str(&file)]);
    s.ok(&[
        "patch",
        "pod",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#,
    ]);
}

fn wait_for(s: &Server, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            common::tail(&s.log(), 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `{.status.observedGeneration} {.status.currentHealthy} {.status.disruptionsAllowed}` of `pdb/web`.
fn counts(s: &Server) -> String {
    s.ok(&[
        "get",
        "pdb",
        "web",
        "-o",
        "jsonpath={.status.observedGeneration} {.status.currentHealthy} {.status.disruptionsAllowed}",
    ])
}

fn evict(s: &Server, pod: &str) -> std::process::Output {
    let body = format!(
        r#"{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{pod}","namespace":"default"}}}}"#
    );
    let file = s.write(&format!("evict-{pod}.json"), &body);
    s.kubectl(&[
        "create",
        "--raw",
        &format!("/api/v1/namespaces/default/pods/{pod}/eviction"),
        "-f",
        path_str(&file),
    ])
}

const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

#[test]
fn budgets_refuse_drain_and_evictions_past_their_allowance() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let s = Server::start();
    let out = s.ok(&["api-resources", "--api-group=policy", "--no-headers"]);
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == [
                "poddisruptionbudgets",
                "pdb",
                "policy/v1",
                "true",
                "PodDisruptionBudget"
            ]),
        "{out}"
    );
    s.ok(&["apply", "-f", path_str(&s.write("node.yaml", NODE))]);
    s.ok(&[
        "patch",
        "node",
        "pdb-n1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"fake node of the pdb test"}]}}"#,
    ]);
    ready_pod(&s, "p1");
    ready_pod(&s, "p2");

    // kubectl's typed client: the body may be protobuf; the server decodes it either way.
    let created = s.ok(&[
        "create",
        "pdb",
        "web",
        "--selector=app=web",
        "--min-available=2",
        "-o",
        "jsonpath={.spec.minAvailable} {.spec.selector.matchLabels.app} {.metadata.generation}",
    ]);
    assert_eq!(created, "2 web 1");
    wait_for(&s, "the controller's first status", || {
        counts(&s) == "1 2 0"
    });
    let table = s.ok(&["get", "pdb"]);
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        lines[0],
        [
            "NAME",
            "MIN AVAILABLE",
            "MAX UNAVAILABLE",
            "ALLOWED DISRUPTIONS",
            "AGE"
        ],
        "{table}"
    );
    assert_eq!(lines[1][..4], ["web", "2", "N/A", "0"], "{table}");

    // Draining the node would take both pods: refused (kubectl retries every 5 s until its timeout).
    let drain = s.kubectl(&[
        "drain",
        "pdb-n1",
        "--force",
        "--ignore-daemonsets",
        "--timeout=7s",
    ]);
    let stdout = String::from_utf8_lossy(&drain.stdout);
    let stderr = String::from_utf8_lossy(&drain.stderr);
    assert!(
        !drain.status.success(),
        "drain succeeded:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "error when evicting pods/\"p1\" -n \"default\" (will retry after 5s): {VIOLATION}"
        )),
        "{stdout}\n{stderr}"
    );
    let live = s.ok(&[
        "get",
        "pods",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}:{.metadata.deletionTimestamp};{end}",
    ]);
    assert_eq!(live, "p1:;p2:;", "no pod was evicted");
    s.ok(&["uncordon", "pdb-n1"]);

    // A third Ready pod allows one disruption: one eviction succeeds, the next is refused.
    ready_pod(&s, "p3");
    wait_for(&s, "one allowed disruption", || counts(&s) == "1 3 1");
    let first = evict(&s, "p1");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let deleting = s.ok(&[
        "get",
        "pod",
        "p1",
        "-o",
        "jsonpath={.metadata.deletionTimestamp}",
    ]);
    assert!(!deleting.is_empty(), "p1 is being deleted");
    let second = evict(&s, "p2");
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "second eviction allowed");
    assert!(
        err.contains("TooManyRequests") || err.contains(VIOLATION),
        "{err}"
    );
    // The controller sees p1 terminating: 2 healthy of the 2 needed.
    wait_for(&s, "the budget exhausted", || counts(&s) == "1 2 0");
}
