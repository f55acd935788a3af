//! PersistentVolumes, PersistentVolumeClaims and StorageClasses through kubectl against the real server:
//! discovery, the default class `local-path`, defaults, validation messages, admission (default class,
//! protection finalizers) and the tables. The server's controllers run (the volume binder makes an
//! unclaimed volume Available, the protection controller releases a claim once no scheduled pod uses it);
//! no node runs, so a claim of the WaitForFirstConsumer class stays Pending.

mod common;

use std::time::{Duration, Instant};

use common::{Server, have, path_str};

const MANIFEST: &str = "apiVersion: v1
kind: PersistentVolume
metadata:
  name: pv-manual
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  hostPath: {path: /srv/skiff-test/pv-manual}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests: {storage: 500Mi}
";

/// A pod already placed on a node that does not exist: it keeps the claim in use.
const USER: &str = "apiVersion: v1
kind: Pod
metadata:
  name: user
spec:
  nodeName: ghost
  containers:
  - name: c
    image: 127.0.0.1:5000/library/busybox:1.35
    volumeMounts: [{name: d, mountPath: /data}]
  volumes:
  - name: d
    persistentVolumeClaim: {claimName: data}
";

fn wait_for(s: &Server, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}\n{}",
            s.ok(&["get", "pv,pvc,sc,pods,events"]),
            common::tail(&s.log(), 30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Whether `text` has a line with the words of `line` (kubectl pads with spaces as its tab writer sees fit).
fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| words(l) == words(line))
}

/// The line of `table` that starts with `name`, split into words.
fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    table
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .map(words)
        .unwrap_or_default()
}

fn jsonpath(s: &Server, what: &[&str], path: &str) -> String {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    let expr = format!("jsonpath={path}");
    args.extend(["-o", &expr]);
    s.ok(&args)
}

#[test]
fn storage_kinds_with_kubectl() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let s = Server::start();

    // Discovery: short names, scope, group.
    let resources = s.ok(&["api-resources", "--no-headers"]);
    for expected in [
        [
            "persistentvolumeclaims",
            "pvc",
            "v1",
            "true",
            "PersistentVolumeClaim",
        ],
        ["persistentvolumes", "pv", "v1", "false", "PersistentVolume"],
        [
            "storageclasses",
            "sc",
            "storage.k8s.io/v1",
            "false",
            "StorageClass",
        ],
    ] {
        assert_eq!(row(&resources, expected[0]), expected, "{resources}");
    }

    // The default class exists from the start.
    let classes = s.ok(&["get", "sc"]);
    assert_eq!(
        words(classes.lines().next().unwrap_or("")),
        [
            "NAME",
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE"
        ]
    );
    assert_eq!(
        row(&classes, "local-path")[..6],
        [
            "local-path",
            "(default)",
            "skiff.io/local-path",
            "Delete",
            "WaitForFirstConsumer",
            "false"
        ],
        "{classes}"
    );

    // A volume and a claim from YAML, strictly validated.
    let f = s.write("storage.yaml", MANIFEST);
    let applied = s.ok(&["apply", "--validate=strict", "-f", path_str(&f)]);
    assert!(
        applied.contains("persistentvolume/pv-manual created")
            && applied.contains("persistentvolumeclaim/data created"),
        "{applied}"
    );
    // Defaults, admission: the default class, the protection finalizers.
    assert_eq!(
        jsonpath(
            &s,
            &["pv", "pv-manual"],
            "{.spec.persistentVolumeReclaimPolicy} {.spec.volumeMode} [{.spec.hostPath.type}] {.metadata.finalizers}"
        ),
        r#"Retain Filesystem [] ["kubernetes.io/pv-protection"]"#
    );
    assert_eq!(
        jsonpath(
            &s,
            &["pvc", "data"],
            "{.spec.storageClassName} {.spec.volumeMode} {.status.phase} {.metadata.finalizers}"
        ),
        r#"local-path Filesystem Pending ["kubernetes.io/pvc-protection"]"#
    );
    // The binder makes the unclaimed volume Available; the claim waits for its first consumer.
    wait_for(&s, "pv-manual Available", || {
        jsonpath(&s, &["pv", "pv-manual"], "{.status.phase}") == "Available"
    });

    let table = s.ok(&["get", "pv,pvc,sc"]);
    let mut blocks = table.split("\n\n");
    let pv = blocks.next().unwrap_or("");
    assert_eq!(
        words(pv.lines().next().unwrap_or("")),
        [
            "NAME",
            "CAPACITY",
            "ACCESS",
            "MODES",
            "RECLAIM",
            "POLICY",
            "STATUS",
            "CLAIM",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "REASON",
            "AGE"
        ]
    );
    assert_eq!(
        row(pv, "persistentvolume/pv-manual")[..7],
        [
            "persistentvolume/pv-manual",
            "1Gi",
            "RWO",
            "Retain",
            "Available",
            "manual",
            "<unset>"
        ],
        "{table}"
    );
    let pvc = blocks.next().unwrap_or("");
    assert_eq!(
        words(pvc.lines().next().unwrap_or("")),
        [
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS",
            "MODES",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "AGE"
        ]
    );
    assert_eq!(
        row(pvc, "persistentvolumeclaim/data")[..4],
        [
            "persistentvolumeclaim/data",
            "Pending",
            "local-path",
            "<unset>"
        ],
        "{table}"
    );
    let sc = blocks.next().unwrap_or("");
    assert_eq!(
        row(sc, "storageclass.storage.k8s.io/local-path")[..3],
        [
            "storageclass.storage.k8s.io/local-path",
            "(default)",
            "skiff.io/local-path"
        ],
        "{table}"
    );
    let wide = s.ok(&["get", "pvc", "data", "-o", "wide", "--no-headers"]);
    assert_eq!(words(&wide).last().copied(), Some("Filesystem"), "{wide}");

    let described = s.ok(&["describe", "pvc", "data"]);
    for line in [
        "Name: data",
        "Namespace: default",
        "StorageClass: local-path",
        "Status: Pending",
        "Finalizers: [kubernetes.io/pvc-protection]",
        "VolumeMode: Filesystem",
        "Used By: <none>",
    ] {
        assert!(has_line(&described, line), "{line:?} in\n{described}");
    }
    let described = s.ok(&["describe", "pv", "pv-manual"]);
    for line in [
        "Finalizers: [kubernetes.io/pv-protection]",
        "StorageClass: manual",
        "Status: Available",
        "Reclaim Policy: Retain",
        "Access Modes: RWO",
        "Capacity: 1Gi",
        "Type: HostPath (bare host directory volume)",
        "Path: /srv/skiff-test/pv-manual",
    ] {
        assert!(has_line(&described, line), "{line:?} in\n{described}");
    }

    // A claim without a storage request is refused with kube's message, and nothing is stored.
    let bad = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: bad\nspec:\n  accessModes: [ReadWriteOnce]\n";
    let err = s.fails(&["apply", "-f", "-"], Some(bad));
    assert!(
        err.contains(
            r#"The PersistentVolumeClaim "bad" is invalid: spec.resources[storage]: Required value"#
        ),
        "{err}"
    );
    let missing = s.fails(&["get", "pvc", "bad"], None);
    assert!(
        missing.contains(r#"persistentvolumeclaims "bad" not found"#),
        "{missing}"
    );
    // Updates: the claim's spec is fixed, the class's provisioner too.
    let err = s.fails(
        &[
            "patch",
            "pvc",
            "data",
            "--type=merge",
            "-p",
            r#"{"spec":{"accessModes":["ReadWriteMany"]}}"#,
        ],
        None,
    );
    assert!(
        err.contains("spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"),
        "{err}"
    );
    let err = s.fails(
        &[
            "patch",
            "sc",
            "local-path",
            "--type=merge",
            "-p",
            r#"{"provisioner":"example.com/other"}"#,
        ],
        None,
    );
    assert!(
        err.contains("provisioner: Forbidden: updates to provisioner are forbidden."),
        "{err}"
    );

    // Deleting a claim a scheduled pod uses leaves it Terminating: the pvc-protection finalizer holds it.
    let f = s.write("user.yaml", USER);
    s.ok(&["apply", "-f", path_str(&f)]);
    let described = s.ok(&["describe", "pvc", "data"]);
    assert!(has_line(&described, "Used By: user"), "{described}");
    let deleted = s.ok(&["delete", "pvc", "data", "--wait=false"]);
    assert!(
        deleted.contains("persistentvolumeclaim \"data\" deleted"),
        "{deleted}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let held = s.ok(&["get", "pvc", "data", "--no-headers"]);
    assert_eq!(words(&held)[..2], ["data", "Terminating"], "{held}");
    assert_eq!(
        jsonpath(&s, &["pvc", "data"], "{.metadata.finalizers}"),
        r#"["kubernetes.io/pvc-protection"]"#
    );
    assert!(!jsonpath(&s, &["pvc", "data"], "{.metadata.deletionTimestamp}").is_empty());
    // Once the pod is gone, the protection controller lets the claim go.
    s.ok(&["delete", "pod", "user", "--grace-period=0", "--force"]);
    wait_for(&s, "the claim gone", || {
        s.kubectl(&["get", "pvc", "data"]).status.code() == Some(1)
    });

    // The class can be switched off by flag.
    drop(s);
    let s = Server::start_with(&["--default-storage-class=false"]);
    let none = s.kubectl(&["get", "sc", "--no-headers"]);
    assert!(none.status.success());
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("No resources found"),
        "{none:?}"
    );
}
