//! core/v1 ResourceQuotas through kubectl 1.32 against the real server (its quota admission and
//! resourcequota controller): `kubectl create quota`, `kubectl get quota` once the controller synced,
//! pods refused over the quota and without the requests it tracks, room again after a delete, and
//! `kubectl describe quota`.
//!
//! API-level test: no agent runs; the pods stay Pending.

mod common;

use std::time::{Duration, Instant};

use common::{Server, have, path_str};

fn pod(name: &str, cpu: Option<&str>) -> String {
    let resources = match cpu {
        Some(cpu) => format!("\n    resources: {{requests: {{cpu: {cpu}}}}}"),
        None => String::new(),
    };
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: nginx
    image: 127.0.0.1:5000/library/nginx:1.25{resources}
"
    )
}

fn create_pod(s: &Server, name: &str, cpu: Option<&str>) -> std::process::Output {
    let file = s.write(&format!("{name}.yaml"), &pod(name, cpu));
    s.kubectl(&["create", "-f", path_str(&file)])
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

/// The cells of `kubectl get quota` (split on runs of spaces).
fn rows(s: &Server) -> Vec<Vec<String>> {
    s.ok(&["get", "quota"])
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

#[test]
fn quotas_limit_pods_and_requests() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let s = Server::start();
    let out = s.ok(&["api-resources", "--api-group=", "--no-headers"]);
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
            == ["resourcequotas", "quota", "v1", "true", "ResourceQuota"]),
        "{out}"
    );
    // kubectl's typed client: the body may be protobuf; the server decodes it either way.
    let created = s.ok(&[
        "create",
        "quota",
        "q",
        "--hard=pods=2,requests.cpu=1",
        "-o",
        "jsonpath={.spec.hard.pods} {.spec.hard.requests\\.cpu}",
    ]);
    assert_eq!(created, "2 1");
    wait_for(&s, "the controller's first status", || {
        rows(&s)
            .get(1)
            .is_some_and(|r| r.get(2).map(String::as_str) == Some("pods: 0/2, requests.cpu: 0/1"))
    });
    assert_eq!(rows(&s)[0], ["NAME", "AGE", "REQUEST", "LIMIT"]);

    for (name, cpu) in [("p1", "500m"), ("p2", "200m")] {
        let out = create_pod(&s, name, Some(cpu));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(rows(&s)[1][2], "pods: 2/2, requests.cpu: 700m/1");

    let third = create_pod(&s, "p3", Some("100m"));
    assert!(!third.status.success());
    assert_eq!(
        String::from_utf8_lossy(&third.stderr).trim(),
        "Error from server (Forbidden): error when creating \"".to_string()
            + path_str(&s.write("p3.yaml", &pod("p3", Some("100m"))))
            + "\": pods \"p3\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
    );
    let bare = create_pod(&s, "bare", None);
    let stderr = String::from_utf8_lossy(&bare.stderr);
    assert!(
        stderr.contains(
            "pods \"bare\" is forbidden: failed quota: q: must specify requests.cpu for: nginx"
        ),
        "{stderr}"
    );

    // Deleting a pod frees its share once the controller recomputed the usage.
    s.ok(&["delete", "pod", "p1", "--wait=false"]);
    wait_for(&s, "usage after the delete", || {
        rows(&s)[1][2] == "pods: 1/2, requests.cpu: 200m/1"
    });
    let out = create_pod(&s, "p3", Some("100m"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let described = s.ok(&["describe", "quota", "q"]);
    let lines: Vec<Vec<&str>> = described
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(lines.contains(&vec!["Name:", "q"]), "{described}");
    assert!(
        lines.contains(&vec!["Resource", "Used", "Hard"]),
        "{described}"
    );
    assert!(lines.contains(&vec!["pods", "2", "2"]), "{described}");
    assert!(
        lines.contains(&vec!["requests.cpu", "300m", "1"]),
        "{described}"
    );
}
