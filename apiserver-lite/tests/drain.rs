//! `kubectl drain` and `kubectl uncordon` (kubectl 1.32) against the real server: drain finds
//! `pods/eviction` in discovery, cordons the node and evicts its pods through the Eviction API with the
//! requested grace period, then waits for them to be gone.
//!
//! API-level test: no agent runs. The node is a fake one that this test registers and marks Ready, and
//! the test plays the agent's part of a graceful deletion — it watches for pods with a
//! `deletionTimestamp`, records their `deletionGracePeriodSeconds`, and confirms the deletion by deleting
//! the pod object (grace 0, UID precondition) as the agent does once containers have stopped. That the
//! agent really stops containers within the grace period is tested in agent/tests/lifecycle.rs.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::Server;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};

async fn client(s: &Server) -> kube::Client {
    let kc = Kubeconfig::read_from(&s.kubeconfig).expect("read kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    kube::Client::try_from(cfg).expect("client")
}

const NODE: &str = "apiVersion: v1
kind: Node
metadata:
  name: drain-n1
  labels: {kubernetes.io/hostname: drain-n1}
";

fn pod(name: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: drain}}
spec:
  nodeName: drain-n1
  terminationGracePeriodSeconds: 30
  containers:
  - name: c
    image: 127.0.0.1:5000/library/busybox:1.35
"
    )
}

/// The agent's side of graceful deletion, for every pod on the fake node: record the grace period the
/// API server set, then remove the object.
fn fake_agent(pods: Api<Pod>, seen: Arc<Mutex<BTreeMap<String, i64>>>) {
    tokio::spawn(async move {
        let cfg = watcher::Config::default().fields("spec.nodeName=drain-n1");
        let mut events = watcher(pods.clone(), cfg)
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(ev) = events.next().await {
            let Ok(p) = ev else { continue };
            if p.metadata.deletion_timestamp.is_none() {
                continue;
            }
            let name = p.metadata.name.clone().unwrap_or_default();
            let grace = p.metadata.deletion_grace_period_seconds.unwrap_or(-1);
            if let Ok(mut m) = seen.lock() {
                m.insert(name.clone(), grace);
            }
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: p.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            let _ = pods.delete(&name, &dp).await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drain_evicts_with_grace_and_uncordon_works() {
    let s = Server::start();
    s.ok(&["apply", "-f", common::path_str(&s.write("node.yaml", NODE))]);
    s.ok(&[
        "patch",
        "node",
        "drain-n1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"fake node of the drain test"}]}}"#,
    ]);
    for name in ["p1", "p2"] {
        let file = s.write(&format!("{name}.yaml"), &pod(name));
        s.ok(&["apply", "-f", common::path_str(&file)]);
    }
    // Discovery tells kubectl that evictions go through policy/v1.
    let core = s.ok(&["get", "--raw", "/api/v1"]);
    let core: serde_json::Value = serde_json::from_str(&core).expect("APIResourceList");
    let eviction = core["resources"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"] == "pods/eviction"))
        .cloned()
        .expect("pods/eviction in /api/v1");
    assert_eq!(
        (&eviction["group"], &eviction["version"], &eviction["kind"]),
        (
            &serde_json::json!("policy"),
            &serde_json::json!("v1"),
            &serde_json::json!("Eviction")
        )
    );

    let pods: Api<Pod> = Api::namespaced(client(&s).await, "default");
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    fake_agent(pods.clone(), seen.clone());

    let kubeconfig = s.kubeconfig.clone();
    let cache = s.cache_dir.clone();
    let drain = tokio::task::spawn_blocking(move || {
        std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .args([
                "drain",
                "drain-n1",
                "--force",
                "--ignore-daemonsets",
                "--grace-period=7",
                "--timeout=60s",
            ])
            .output()
            .expect("kubectl drain")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&drain.stdout);
    let stderr = String::from_utf8_lossy(&drain.stderr);
    assert!(
        drain.status.success(),
        "drain failed:\n{stdout}\n{stderr}\n{}",
        common::tail(&s.log(), 30)
    );
    assert!(stdout.contains("node/drain-n1 cordoned"), "{stdout}");
    for name in ["p1", "p2"] {
        assert!(
            stdout.contains(&format!("evicting pod default/{name}")),
            "{stdout}"
        );
        assert!(stdout.contains(&format!("pod/{name} evicted")), "{stdout}");
    }
    assert!(stdout.contains("node/drain-n1 drained"), "{stdout}");

    // The grace period of the drain reached the pods, and they are gone.
    let graces = seen.lock().map(|m| m.clone()).unwrap_or_default();
    assert_eq!(
        graces,
        BTreeMap::from([("p1".to_string(), 7), ("p2".to_string(), 7)])
    );
    let left = s.ok(&["get", "pods", "-o", "name"]);
    assert!(left.trim().is_empty(), "pods left: {left}");
    let unschedulable = s.ok(&[
        "get",
        "node",
        "drain-n1",
        "-o",
        "jsonpath={.spec.unschedulable}",
    ]);
    assert_eq!(unschedulable, "true");

    s.ok(&["uncordon", "drain-n1"]);
    let unschedulable = s.ok(&[
        "get",
        "node",
        "drain-n1",
        "-o",
        "jsonpath={.spec.unschedulable}",
    ]);
    assert!(
        unschedulable.is_empty() || unschedulable == "false",
        "{unschedulable}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_api_errors_and_dry_run() {
    let s = Server::start();
    s.ok(&[
        "apply",
        "-f",
        common::path_str(&s.write("p.yaml", &pod("ev"))),
    ]);
    let evict = |name: &str, body: &str, query: &str| {
        let file = s.write("eviction.json", body);
        s.kubectl(&[
            "create",
            "--raw",
            &format!("/api/v1/namespaces/default/pods/{name}/eviction{query}"),
            "-f",
            common::path_str(&file),
        ])
    };
    // The name in the body must match the URL.
    let out = evict(
        "ev",
        r#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"other"}}"#,
        "",
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not match"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A missing pod is 404.
    let out = evict(
        "missing",
        r#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"missing"}}"#,
        "",
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
    // dryRun evicts nothing.
    let out = evict(
        "ev",
        r#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"ev"},"deleteOptions":{"dryRun":["All"]}}"#,
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ts = s.ok(&[
        "get",
        "pod",
        "ev",
        "-o",
        "jsonpath={.metadata.deletionTimestamp}",
    ]);
    assert!(ts.is_empty(), "dry run must not delete: {ts}");
    // policy/v1beta1 bodies are accepted too; the grace period comes from deleteOptions.
    let out = evict(
        "ev",
        r#"{"apiVersion":"policy/v1beta1","kind":"Eviction","metadata":{"name":"ev","namespace":"default"},"deleteOptions":{"gracePeriodSeconds":11}}"#,
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let grace = s.ok(&[
        "get",
        "pod",
        "ev",
        "-o",
        "jsonpath={.metadata.deletionGracePeriodSeconds}",
    ]);
    assert_eq!(grace, "11");
    // Evicting a pod that is already terminating succeeds and leaves it as it is.
    let out = evict(
        "ev",
        r#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"ev"},"deleteOptions":{"gracePeriodSeconds":1}}"#,
        "",
    );
    assert!(out.status.success());
    let grace = s.ok(&[
        "get",
        "pod",
        "ev",
        "-o",
        "jsonpath={.metadata.deletionGracePeriodSeconds}",
    ]);
    assert_eq!(grace, "11");
}
