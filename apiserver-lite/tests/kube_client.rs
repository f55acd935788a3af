//! kube-rs 5 against the real server: what the agent does (create, replace, patch merge/strategic,
//! status writes, watcher, delete with grace 0 and a UID precondition).

mod common;

use std::time::Duration;

use common::Server;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

async fn client(s: &Server) -> kube::Client {
    let kc = Kubeconfig::read_from(&s.kubeconfig).expect("read kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    kube::Client::try_from(cfg).expect("client")
}

fn pod(name: &str, node: Option<&str>) -> Pod {
    let mut v = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "kube"}},
        "spec": {"containers": [{"name": "c", "image": "127.0.0.1:5000/library/busybox:1.35", "env": [{"name": "A", "value": "1"}]}]}
    });
    if let Some(n) = node {
        v["spec"]["nodeName"] = json!(n);
    }
    serde_json::from_value(v).expect("pod")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_agent_flows() {
    let s = Server::start();
    let client = client(&s).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let nodes: Api<Node> = Api::all(client.clone());

    // A watcher on pods bound to n1, as the agent runs it.
    let wc = watcher::Config::default().fields("spec.nodeName=n1");
    let mut events = watcher(pods.clone(), wc).default_backoff().boxed();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    tokio::spawn(async move {
        while let Some(ev) = events.next().await {
            let item = match ev {
                Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => ("apply", p),
                Ok(watcher::Event::Delete(p)) => ("delete", p),
                Ok(_) => continue,
                Err(e) => {
                    let _ = tx.send(("error".into(), e.to_string()));
                    continue;
                }
            };
            let _ = tx.send((item.0.to_string(), item.1.metadata.name.unwrap_or_default()));
        }
    });

    let node: Node = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
    )
    .expect("node");
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ok"}],
        "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}]}});
    nodes
        .patch_status("n1", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("node status");

    let created = pods
        .create(&PostParams::default(), &pod("p1", Some("n1")))
        .await
        .expect("create pod");
    let uid = created.metadata.uid.clone().expect("uid");
    assert_eq!(
        created
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .as_deref(),
        Some("Always")
    );

    // Strategic merge: env merges by name.
    let smp =
        json!({"spec": {"containers": [{"name": "c", "env": [{"name": "B", "value": "2"}]}]}});
    let e = pods
        .patch("p1", &PatchParams::default(), &Patch::Strategic(&smp))
        .await;
    // Changing env is a forbidden pod update: the server must say so with 422.
    match e {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 422),
        other => panic!("expected 422, got {other:?}"),
    }
    let merge = json!({"metadata": {"labels": {"extra": "x"}}});
    let p = pods
        .patch("p1", &PatchParams::default(), &Patch::Merge(&merge))
        .await
        .expect("merge patch");
    assert_eq!(
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("extra"))
            .map(String::as_str),
        Some("x")
    );
    let smp = json!({"metadata": {"labels": {"smp": "y"}}, "spec": {"containers": [{"name": "c", "image": "127.0.0.1:5000/library/busybox:latest"}]}});
    let p = pods
        .patch("p1", &PatchParams::default(), &Patch::Strategic(&smp))
        .await
        .expect("smp");
    let c = &p.spec.as_ref().expect("spec").containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some("127.0.0.1:5000/library/busybox:latest")
    );
    assert_eq!(c.env.as_ref().map(Vec::len), Some(1));

    // Status: patch_status(Merge) and replace_status.
    let st = json!({"status": {"phase": "Running", "podIP": "10.244.0.7",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "c", "image": "busybox", "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}});
    let p = pods
        .patch_status("p1", &PatchParams::default(), &Patch::Merge(&st))
        .await
        .expect("patch status");
    assert_eq!(
        p.status.as_ref().and_then(|s| s.phase.clone()).as_deref(),
        Some("Running")
    );
    let mut p2 = p.clone();
    if let Some(s) = p2.status.as_mut() {
        s.pod_ip = Some("10.244.0.8".into());
    }
    let p3 = pods
        .replace_status("p1", &PostParams::default(), &p2)
        .await
        .expect("replace status");
    assert_eq!(
        p3.status.as_ref().and_then(|s| s.pod_ip.clone()).as_deref(),
        Some("10.244.0.8")
    );
    // A stale replace conflicts.
    let e = pods.replace_status("p1", &PostParams::default(), &p2).await;
    match e {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 409),
        other => panic!("expected 409, got {other:?}"),
    }
    // replace of the main resource keeps the status.
    let mut cur = pods.get("p1").await.expect("get");
    cur.metadata.annotations = Some([("a".to_string(), "b".to_string())].into());
    let r = pods
        .replace("p1", &PostParams::default(), &cur)
        .await
        .expect("replace");
    assert_eq!(
        r.status.as_ref().and_then(|s| s.pod_ip.clone()).as_deref(),
        Some("10.244.0.8")
    );

    // Lists with selectors.
    let l = pods
        .list(
            &ListParams::default()
                .labels("app=kube")
                .fields("status.phase=Running"),
        )
        .await
        .expect("list");
    assert_eq!(l.items.len(), 1);
    assert!(l.metadata.resource_version.is_some());

    // Graceful delete, then the agent's final delete with grace 0 and a UID precondition.
    let d = pods
        .delete("p1", &DeleteParams::default())
        .await
        .expect("delete");
    let terminating = d.left().expect("object while terminating");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    let wrong = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some("nope".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match pods.delete("p1", &wrong).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 409),
        other => panic!("expected 409, got {other:?}"),
    }
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..Default::default()
    };
    pods.delete("p1", &dp).await.expect("final delete");
    assert!(pods.get_opt("p1").await.expect("get_opt").is_none());

    // The watcher saw the pod arrive and go.
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen
        .iter()
        .any(|(t, n): &(String, String)| t == "delete" && n == "p1")
    {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) => seen.push(e),
            _ => panic!("watcher events so far: {seen:?}"),
        }
    }
    assert!(
        seen.iter().any(|(t, n)| t == "apply" && n == "p1"),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|(t, _)| t == "error"), "{seen:?}");

    // Leases: create then renew with replace.
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease: Lease = serde_json::from_value(
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}}),
    )
    .expect("lease");
    let mut l = leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("lease create");
    if let Some(spec) = l.spec.as_mut() {
        spec.lease_duration_seconds = Some(41);
    }
    let l2 = leases
        .replace("n1", &PostParams::default(), &l)
        .await
        .expect("lease renew");
    assert_eq!(l2.spec.and_then(|s| s.lease_duration_seconds), Some(41));
    assert_ne!(l2.metadata.resource_version, l.metadata.resource_version);

    // Server-side apply creates.
    let ssa = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ssa"},
        "spec": {"containers": [{"name": "c", "image": "x"}]}});
    let p = pods
        .patch(
            "ssa",
            &PatchParams::apply("test").force(),
            &Patch::Apply(&ssa),
        )
        .await
        .expect("apply");
    assert_eq!(p.metadata.name.as_deref(), Some("ssa"));
}
