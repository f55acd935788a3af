//! apps/v1 StatefulSets through kubectl against the real server (its controllers). No agent and no node
//! run: the pods stay unscheduled, and the test plays the kubelet by patching pod status Ready.

mod common;

use std::time::{Duration, Instant};

use common::{Server, have, path_str};

const MANIFEST: &str = "apiVersion: v1
kind: Service
metadata:
  name: nginx
spec:
  clusterIP: None
  selector: {app: web}
  ports:
  - {name: web, port: 80}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: nginx
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: 127.0.0.1:5000/library/nginx:1.27
";

fn wait_for(s: &Server, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}\n{}",
            s.ok(&["get", "sts,pods,events", "-o", "wide"]),
            common::tail(&s.log(), 30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pods(s: &Server) -> Vec<String> {
    s.ok(&["get", "pods", "-l", "app=web", "-o", "name"])
        .lines()
        .map(str::to_string)
        .collect()
}

fn mark_ready(s: &Server, pod: &str) {
    s.ok(&[
        "patch",
        "pod",
        pod,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#,
    ]);
}

#[test]
fn statefulset_with_kubectl() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let s = Server::start();
    let resources = s.ok(&["api-resources", "--api-group=apps", "--no-headers"]);
    let line: Vec<&str> = resources
        .lines()
        .find(|l| l.starts_with("statefulsets "))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    assert_eq!(
        line,
        ["statefulsets", "sts", "apps/v1", "true", "StatefulSet"],
        "{resources}"
    );
    let f = s.write("web.yaml", MANIFEST);
    let applied = s.ok(&["apply", "-f", path_str(&f)]);
    assert!(
        applied.contains("statefulset.apps/web created"),
        "{applied}"
    );

    // web-0 first; web-1 only once web-0 is Ready.
    wait_for(&s, "web-0", || pods(&s) == ["pod/web-0"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(pods(&s), ["pod/web-0"]);
    let identity = s.ok(&[
        "get",
        "pod",
        "web-0",
        "-o",
        "jsonpath={.spec.hostname}.{.spec.subdomain} {.metadata.labels.statefulset\\.kubernetes\\.io/pod-name} {.metadata.ownerReferences[0].kind}",
    ]);
    assert_eq!(identity, "web-0.nginx web-0 StatefulSet");
    mark_ready(&s, "web-0");
    wait_for(&s, "web-1", || pods(&s) == ["pod/web-0", "pod/web-1"]);
    mark_ready(&s, "web-1");
    let rolled = s.ok(&["rollout", "status", "statefulset/web", "--timeout=20s"]);
    assert!(
        rolled.contains("partitioned roll out complete: 2 new pods have been updated..."),
        "{rolled}"
    );

    // `kubectl get sts`: kube's columns.
    let table = s.ok(&["get", "sts"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "READY", "AGE"]);
    let row = s.ok(&["get", "sts", "web", "--no-headers"]);
    assert_eq!(
        row.split_whitespace().take(2).collect::<Vec<_>>(),
        ["web", "2/2"]
    );
    let wide = s.ok(&["get", "sts", "web", "-o", "wide"]);
    let wide: Vec<Vec<&str>> = wide
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(wide[0], ["NAME", "READY", "AGE", "CONTAINERS", "IMAGES"]);
    assert_eq!(
        wide[1][wide[1].len() - 2..],
        ["nginx", "127.0.0.1:5000/library/nginx:1.27"]
    );

    // The scale subresource: web-1 goes.
    let scaled = s.ok(&["scale", "sts", "web", "--replicas=1"]);
    assert!(scaled.contains("statefulset.apps/web scaled"), "{scaled}");
    wait_for(&s, "only web-0", || pods(&s) == ["pod/web-0"]);
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector=involvedObject.kind=StatefulSet",
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ]);
    assert!(
        events.contains("SuccessfulCreate: create Pod web-1 in StatefulSet web successful")
            && events.contains("SuccessfulDelete: delete Pod web-1 in StatefulSet web successful"),
        "{events}"
    );

    // skiff serves no PersistentVolumeClaims.
    let with_claims = MANIFEST.split("---\n").nth(1).unwrap_or("").replace(
        "name: web\nspec:",
        "name: data\nspec:\n  volumeClaimTemplates:\n  - metadata: {name: www}\n    spec:\n      accessModes: [ReadWriteOnce]\n      resources: {requests: {storage: 1Gi}}",
    );
    let err = s.fails(&["apply", "-f", "-"], Some(&with_claims));
    assert!(
        err.contains("The StatefulSet \"data\" is invalid: spec.volumeClaimTemplates: Forbidden: skiff serves no PersistentVolumeClaims"),
        "{err}"
    );

    // Deleting the set: the garbage collector deletes its pods.
    s.ok(&["delete", "sts", "web"]);
    wait_for(&s, "the pods are gone", || pods(&s).is_empty());
}
