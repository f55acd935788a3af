//! apps/v1 StatefulSets through kubectl against the real server (its controllers). No agent and no node
//! run: the pods stay unscheduled, and the test plays the kubelet by patching pod status Ready. A set
//! with `volumeClaimTemplates` gets its claims (unbound: no node takes the pods).

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

/// The revisions `kubectl rollout history statefulset/web` lists.
fn history_revisions(s: &Server) -> Vec<String> {
    s.ok(&["rollout", "history", "statefulset/web"])
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Play the kubelet (mark pods Ready) until web-0, the only pod, runs `image`.
fn roll_to(s: &Server, image: &str) {
    wait_for(s, &format!("web-0 on {image}"), || {
        let out = s.ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.spec.containers[0].image}{"\n"}{end}"#,
        ]);
        let lines: Vec<&str> = out.lines().collect();
        for line in &lines {
            if let [pod, phase, _] = line.split(' ').collect::<Vec<_>>()[..]
                && phase != "Running"
            {
                mark_ready(s, pod);
            }
        }
        lines == [format!("web-0 Running {image}")]
    });
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

    // History: each template is a ControllerRevision; `kubectl rollout history/undo` read them.
    s.ok(&[
        "set",
        "image",
        "statefulset/web",
        "nginx=127.0.0.1:5000/library/nginx:1.28",
    ]);
    roll_to(&s, "127.0.0.1:5000/library/nginx:1.28");
    wait_for(&s, "revisions 1 and 2", || {
        history_revisions(&s) == ["1", "2"]
    });
    let first = s.ok(&["rollout", "history", "statefulset/web", "--revision=1"]);
    assert!(
        first.contains("127.0.0.1:5000/library/nginx:1.27"),
        "{first}"
    );
    let undone = s.ok(&["rollout", "undo", "statefulset/web"]);
    assert!(
        undone.contains("statefulset.apps/web rolled back"),
        "{undone}"
    );
    roll_to(&s, "127.0.0.1:5000/library/nginx:1.27");
    wait_for(&s, "revision 1 is now 3", || {
        history_revisions(&s) == ["2", "3"]
    });
    let owner = s.ok(&["get", "controllerrevisions", "--no-headers"]);
    assert!(
        owner
            .lines()
            .all(|l| l.split_whitespace().nth(1) == Some("statefulset.apps/web")),
        "{owner}"
    );

    // volumeClaimTemplates: each pod's claim `<template>-<set>-<ordinal>` comes first, labelled with the
    // set's selector, in the default class; the pod mounts it.
    let with_claims = MANIFEST
        .split("---\n")
        .nth(1)
        .unwrap_or("")
        .replace("app: web", "app: data")
        .replace(
            "name: web\nspec:",
            "name: data\nspec:\n  volumeClaimTemplates:\n  - metadata: {name: www}\n    spec:\n      accessModes: [ReadWriteOnce]\n      resources: {requests: {storage: 1Gi}}",
        )
        .replace(
            "        image: 127.0.0.1:5000/library/nginx:1.27\n",
            "        image: 127.0.0.1:5000/library/nginx:1.27\n        volumeMounts:\n        - {name: www, mountPath: /usr/share/nginx/html}\n",
        );
    let f = s.write("data.yaml", &with_claims);
    s.ok(&["apply", "-f", path_str(&f)]);
    wait_for(&s, "data-0", || {
        s.ok(&["get", "pods", "-l", "app=data", "-o", "name"]) == "pod/data-0\n"
    });
    let claim = s.ok(&[
        "get",
        "pvc",
        "www-data-0",
        "-o",
        "jsonpath={.metadata.labels.app} {.spec.storageClassName} {.spec.resources.requests.storage} {.spec.volumeMode}",
    ]);
    assert_eq!(claim, "data local-path 1Gi Filesystem");
    let volume = s.ok(&[
        "get",
        "pod",
        "data-0",
        "-o",
        "jsonpath={.spec.volumes[?(@.name==\"www\")].persistentVolumeClaim.claimName}",
    ]);
    assert_eq!(volume, "www-data-0");
    let template = s.ok(&[
        "get",
        "sts",
        "data",
        "-o",
        "jsonpath={.spec.volumeClaimTemplates[0].spec.volumeMode} {.spec.persistentVolumeClaimRetentionPolicy.whenDeleted}",
    ]);
    assert_eq!(template, "Filesystem Retain");
    let events = s.ok(&[
        "get",
        "events",
        "--field-selector=involvedObject.name=data",
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ]);
    assert!(
        events.contains(
            "SuccessfulCreate: create Claim www-data-0 Pod data-0 in StatefulSet data success"
        ),
        "{events}"
    );
    // The templates cannot change, and a template that is no claim is refused.
    let err = s.fails(
        &["patch", "sts", "data", "--type=json", "-p",
          r#"[{"op":"replace","path":"/spec/volumeClaimTemplates/0/spec/resources/requests/storage","value":"2Gi"}]"#],
        None,
    );
    assert!(
        err.contains("spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"),
        "{err}"
    );
    let bad = with_claims
        .replace("name: data\nspec:", "name: bad\nspec:")
        .replace("      accessModes: [ReadWriteOnce]\n", "");
    let err = s.fails(&["apply", "-f", "-"], Some(&bad));
    assert!(
        err.contains("The StatefulSet \"bad\" is invalid: spec.volumeClaimTemplates[0].spec.accessModes: Required value: at least 1 access mode is required"),
        "{err}"
    );
    // Retain: the claim outlives its set.
    s.ok(&["delete", "sts", "data"]);
    wait_for(&s, "data-0 gone", || {
        s.ok(&["get", "pods", "-l", "app=data", "-o", "name"])
            .is_empty()
    });
    s.ok(&["get", "pvc", "www-data-0"]);

    // Deleting the set: the garbage collector deletes its pods.
    s.ok(&["delete", "sts", "web"]);
    wait_for(&s, "the pods are gone", || pods(&s).is_empty());
}
