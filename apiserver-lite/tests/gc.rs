//! Garbage collection through kubectl: `kubectl delete --cascade=background|foreground|orphan` of an owner
//! whose dependents name it in `metadata.ownerReferences`, and kube's refusal of malformed references.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, have, tail};

fn config_map(name: &str, owner: Option<(&str, &str)>, finalizer: Option<&str>) -> String {
    let mut m = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n");
    if let Some((owner, uid)) = owner {
        m.push_str(&format!(
            "  ownerReferences:\n  - {{apiVersion: v1, kind: ConfigMap, name: {owner}, uid: {uid}, blockOwnerDeletion: true}}\n"
        ));
    }
    if let Some(f) = finalizer {
        m.push_str(&format!("  finalizers: [{f}]\n"));
    }
    m.push_str("data: {k: v}\n");
    m
}

fn pod(name: &str, owner: &str, uid: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  ownerReferences:
  - {{apiVersion: v1, kind: ConfigMap, name: {owner}, uid: {uid}, controller: true}}
spec:
  containers: [{{name: c, image: busybox}}]
"
    )
}

fn create(s: &Server, manifest: &str) {
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(manifest));
    assert!(
        out.status.success(),
        "kubectl create: {}\n{manifest}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn uid(s: &Server, what: &str) -> String {
    s.ok(&["get", what, "-o", "jsonpath={.metadata.uid}"])
}

fn exists(s: &Server, what: &str) -> bool {
    !s.ok(&["get", what, "--ignore-not-found", "-o", "name"])
        .trim()
        .is_empty()
}

#[test]
fn kubectl_delete_cascades() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let s = Server::start();

    // Malformed references are refused as kube does.
    let err = s.fails(
        &["create", "-f", "-"],
        Some(&config_map("bad", Some(("x", "\"\"")), None)),
    );
    assert!(
        err.contains(
            "ConfigMap \"bad\" is invalid: metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty"
        ),
        "{err}"
    );

    // Background: the owner goes, then its dependents.
    create(&s, &config_map("bg", None, None));
    let bg = uid(&s, "cm/bg");
    create(&s, &config_map("bg-dep", Some(("bg", &bg)), None));
    create(&s, &pod("bg-pod", "bg", &bg));
    s.ok(&["delete", "cm", "bg", "--cascade=background"]);
    s.ok(&[
        "wait",
        "--for=delete",
        "cm/bg-dep",
        "pod/bg-pod",
        "--timeout=10s",
    ]);

    // Orphan: the owner goes, its dependent stays without the reference.
    create(&s, &config_map("or", None, None));
    let or = uid(&s, "cm/or");
    create(&s, &config_map("or-dep", Some(("or", &or)), None));
    s.ok(&["delete", "cm", "or", "--cascade=orphan"]);
    assert!(!exists(&s, "cm/or"));
    assert_eq!(
        s.ok(&[
            "get",
            "cm",
            "or-dep",
            "-o",
            "jsonpath={.metadata.ownerReferences}"
        ]),
        ""
    );

    // Foreground: kubectl waits while the owner is held by a blocking dependent (itself held by a
    // finalizer of ours), and returns once the owner is gone.
    create(&s, &config_map("fg", None, None));
    let fg = uid(&s, "cm/fg");
    create(
        &s,
        &config_map("fg-dep", Some(("fg", &fg)), Some("example.com/hold")),
    );
    let mut delete = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        .arg("--cache-dir")
        .arg(&s.cache_dir)
        .args([
            "delete",
            "cm",
            "fg",
            "--cascade=foreground",
            "--timeout=30s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubectl delete");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let dep = s.ok(&[
            "get",
            "cm",
            "fg-dep",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ]);
        if !dep.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "fg-dep was not deleted");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        s.ok(&["get", "cm", "fg", "-o", "jsonpath={.metadata.finalizers}"]),
        "[\"foregroundDeletion\"]"
    );
    assert!(
        delete.try_wait().expect("kubectl delete").is_none(),
        "kubectl delete returned while the owner still exists"
    );
    s.ok(&[
        "patch",
        "cm",
        "fg-dep",
        "--type=merge",
        "-p",
        "{\"metadata\":{\"finalizers\":null}}",
    ]);
    let out = delete.wait_with_output().expect("kubectl delete");
    assert!(
        out.status.success(),
        "kubectl delete --cascade=foreground: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        tail(&s.log(), 40)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "configmap \"fg\" deleted"
    );
    assert!(!exists(&s, "cm/fg"));
    assert!(!exists(&s, "cm/fg-dep"));
}
