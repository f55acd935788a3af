//! The Node authorizer and NodeRestriction end to end: kube-rs with a minted node client certificate,
//! request by request as the skiff agent makes them (allowed for its own objects, 403 for another node's),
//! and `kubectl auth can-i` with the node credential.

mod common;
mod support_authz;

use std::path::PathBuf;

use common::{Server, tail};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use serde_json::json;
use support_authz::{kubectl_as, kubectl_present, mint, stdout};

async fn client_for(kc: &PathBuf) -> kube::Client {
    let kc = Kubeconfig::read_from(kc).expect("read kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    kube::Client::try_from(cfg).expect("client")
}

fn status_code<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(kube::Error::Api(s)) => s.code,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn pod(name: &str, node: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node,
                 "imagePullSecrets": [{"name": format!("{name}-pull")}],
                 "containers": [{"name": "c", "image": "busybox",
                     "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": format!("{name}-cm"), "key": "a"}}}]}]}
    }))
    .expect("pod")
}

fn node(name: &str) -> Node {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}),
    )
    .expect("node")
}

fn lease(name: &str) -> Lease {
    serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40}}),
    )
    .expect("lease")
}

/// Every request the skiff agent makes, as node n1: allowed for its own objects, 403 for n2's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_authorizer_allows_the_agent_and_nothing_more() {
    let s = Server::start();
    let admin = client_for(&s.kubeconfig).await;
    let n1 = client_for(&mint(&s, "system:node:n1", &["system:nodes"])).await;
    let pp = PostParams::default();
    let patch = PatchParams::default();

    // The admin sets the scene: pods on n1 and n2, the secrets and configmaps they reference.
    let admin_pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    for (p, n) in [("mine", "n1"), ("theirs", "n2")] {
        admin_pods
            .create(&pp, &pod(p, n))
            .await
            .expect("create pod");
        let secret: Secret =
            serde_json::from_value(json!({"metadata": {"name": format!("{p}-pull")},
            "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "e30="}}))
            .expect("secret");
        Api::<Secret>::namespaced(admin.clone(), "default")
            .create(&pp, &secret)
            .await
            .expect("create secret");
        let cm: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": format!("{p}-cm")}, "data": {"a": "1"}}),
        )
        .expect("cm");
        Api::<ConfigMap>::namespaced(admin.clone(), "default")
            .create(&pp, &cm)
            .await
            .expect("create cm");
    }

    // Node registration: create, 409 then merge patch of labels, status patch, get.
    let nodes: Api<Node> = Api::all(n1.clone());
    assert_eq!(status_code(nodes.create(&pp, &node("n1")).await), 200);
    assert_eq!(status_code(nodes.create(&pp, &node("n1")).await), 409);
    assert_eq!(status_code(nodes.create(&pp, &node("n2")).await), 403);
    let labels = json!({"metadata": {"labels": {"kubernetes.io/os": "linux"}}});
    assert_eq!(
        status_code(nodes.patch("n1", &patch, &Patch::Merge(&labels)).await),
        200
    );
    let restricted = json!({"metadata": {"labels": {"node-restriction.kubernetes.io/pool": "x"}}});
    assert_eq!(
        status_code(nodes.patch("n1", &patch, &Patch::Merge(&restricted)).await),
        403
    );
    let st = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    assert_eq!(
        status_code(nodes.patch_status("n1", &patch, &Patch::Merge(&st)).await),
        200
    );
    assert_eq!(status_code(nodes.get("n1").await), 200);
    // n2 exists (made by the admin); n1 may read it but not write it.
    Api::<Node>::all(admin.clone())
        .create(&pp, &node("n2"))
        .await
        .expect("n2");
    assert_eq!(status_code(nodes.get("n2").await), 200);
    assert_eq!(
        status_code(nodes.patch("n2", &patch, &Patch::Merge(&labels)).await),
        403
    );
    assert_eq!(
        status_code(nodes.patch_status("n2", &patch, &Patch::Merge(&st)).await),
        403
    );
    assert_eq!(
        status_code(nodes.delete("n2", &DeleteParams::default()).await),
        403
    );

    // The lease: patch (404 first), create, patch, replace; another node's lease is off limits.
    let leases: Api<Lease> = Api::namespaced(n1.clone(), "kube-node-lease");
    let renew = json!({"spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}});
    assert_eq!(
        status_code(leases.patch("n1", &patch, &Patch::Merge(&renew)).await),
        404
    );
    assert_eq!(status_code(leases.create(&pp, &lease("n1")).await), 200);
    assert_eq!(
        status_code(leases.patch("n1", &patch, &Patch::Merge(&renew)).await),
        200
    );
    let current = leases.get("n1").await.expect("get lease");
    assert_eq!(status_code(leases.replace("n1", &pp, &current).await), 200);
    assert_eq!(status_code(leases.create(&pp, &lease("n2")).await), 403);
    assert_eq!(status_code(leases.get("n2").await), 403);
    let other_ns: Api<Lease> = Api::namespaced(n1.clone(), "default");
    assert_eq!(status_code(other_ns.get("n1").await), 403);

    // Pods: list and watch across namespaces with the nodeName field selector.
    let all_pods: Api<Pod> = Api::all(n1.clone());
    let lp = ListParams::default().fields("spec.nodeName=n1");
    let listed = all_pods.list(&lp).await.expect("list pods");
    assert_eq!(listed.items.len(), 1);
    let cfg = watcher::Config::default().fields("spec.nodeName=n1");
    let mut w = watcher::watcher(all_pods.clone(), cfg).boxed();
    let first = tokio::time::timeout(std::time::Duration::from_secs(10), w.next())
        .await
        .expect("watch event in time");
    assert!(matches!(first, Some(Ok(_))), "{first:?}");
    drop(w);

    // Pod status of its own pods only.
    let pods: Api<Pod> = Api::namespaced(n1.clone(), "default");
    let ps = json!({"status": {"phase": "Running"}});
    assert_eq!(
        status_code(pods.patch_status("mine", &patch, &Patch::Merge(&ps)).await),
        200
    );
    assert_eq!(
        status_code(
            pods.patch_status("theirs", &patch, &Patch::Merge(&ps))
                .await
        ),
        403
    );
    // No spec writes, no ordinary pods, mirror pods bound to itself only.
    let label = json!({"metadata": {"labels": {"x": "y"}}});
    assert_eq!(
        status_code(pods.patch("mine", &patch, &Patch::Merge(&label)).await),
        403
    );
    assert_eq!(
        status_code(pods.create(&pp, &pod("plain", "n1")).await),
        403
    );
    let mut mirror = pod("static-n1", "n1");
    mirror.metadata.annotations =
        Some([("kubernetes.io/config.mirror".to_string(), "x".to_string())].into());
    assert_eq!(status_code(pods.create(&pp, &mirror).await), 200);
    let mut foreign = pod("static-n2", "n2");
    foreign.metadata.annotations = mirror.metadata.annotations.clone();
    assert_eq!(status_code(pods.create(&pp, &foreign).await), 403);

    // Secrets and configmaps referenced by its pods only.
    let secrets: Api<Secret> = Api::namespaced(n1.clone(), "default");
    assert_eq!(status_code(secrets.get("mine-pull").await), 200);
    assert_eq!(status_code(secrets.get("theirs-pull").await), 403);
    assert_eq!(status_code(secrets.list(&ListParams::default()).await), 403);
    let cms: Api<ConfigMap> = Api::namespaced(n1.clone(), "default");
    assert_eq!(status_code(cms.get("mine-cm").await), 200);
    assert_eq!(status_code(cms.get("theirs-cm").await), 403);

    // Events.
    let ev: Event = serde_json::from_value(json!({
        "metadata": {"generateName": "mine."},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "mine"},
        "reason": "Pulled", "message": "pulled", "type": "Normal",
        "source": {"component": "kubelet", "host": "n1"}
    }))
    .expect("event");
    let events: Api<Event> = Api::namespaced(n1.clone(), "default");
    assert_eq!(status_code(events.create(&pp, &ev).await), 200);

    // Namespaces are read-only (skiff:network-policy-agent, for the agents' NetworkPolicy enforcement);
    // nothing else: namespace writes, RBAC, deletecollection.
    let ns: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(n1.clone());
    assert_eq!(status_code(ns.get("default").await), 200);
    assert_eq!(
        status_code(ns.delete("default", &DeleteParams::default()).await),
        403
    );
    assert_eq!(
        status_code(
            pods.delete_collection(&DeleteParams::default(), &ListParams::default())
                .await
        ),
        403
    );

    // Deletion after teardown: grace 0 with a UID precondition, own pods only.
    let del = |uid: Option<String>| DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..Default::default()
    };
    let theirs_uid = admin_pods.get("theirs").await.expect("theirs").metadata.uid;
    assert_eq!(
        status_code(pods.delete("theirs", &del(theirs_uid)).await),
        403
    );
    let mine_uid = admin_pods.get("mine").await.expect("mine").metadata.uid;
    assert_eq!(status_code(pods.delete("mine", &del(mine_uid)).await), 200);
    assert_eq!(status_code(admin_pods.get("mine").await), 404);
    assert_eq!(status_code(admin_pods.get("theirs").await), 200);
    let log = s.log();
    assert!(!log.contains("panicked"), "{}", tail(&log, 20));
}

#[test]
fn node_credentials_with_kubectl_auth_can_i() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let kc = mint(&s, "system:node:n1", &["system:nodes"]);
    let can = |args: &[&str]| {
        let mut a = vec!["auth", "can-i"];
        a.extend_from_slice(args);
        let out = kubectl_as(&s, &kc, &a);
        // A denial with a reason reads `no - <reason>`.
        stdout(&out).split(" - ").next().unwrap_or("").to_string()
    };
    assert_eq!(can(&["patch", "nodes/n1"]), "yes");
    assert_eq!(can(&["patch", "nodes/n2"]), "no");
    assert_eq!(can(&["patch", "nodes/n1", "--subresource=status"]), "yes");
    assert_eq!(can(&["watch", "pods", "-A"]), "yes");
    assert_eq!(
        can(&[
            "update",
            "leases.coordination.k8s.io/n1",
            "-n",
            "kube-node-lease"
        ]),
        "yes"
    );
    assert_eq!(
        can(&[
            "update",
            "leases.coordination.k8s.io/n2",
            "-n",
            "kube-node-lease"
        ]),
        "no"
    );
    assert_eq!(can(&["create", "events"]), "yes");
    assert_eq!(can(&["list", "secrets"]), "no");
    assert_eq!(can(&["create", "namespaces"]), "no");
}
