//! The Node authorizer and NodeRestriction admission.

use serde_json::json;

use super::*;

#[tokio::test]
async fn node_authorizer_reads_and_writes() {
    let f = fixture().await;
    f.put(Kind::Pod, Some("default"), pod("default", "mine", "n1"))
        .await;
    f.put(Kind::Pod, Some("default"), pod("default", "theirs", "n2"))
        .await;
    let n = |verb, group, res, sub, ns, name| node_attrs("n1", verb, group, res, sub, ns, name);
    // The agent's own requests.
    for a in [
        n("create", "", "nodes", "", "", ""),
        n("get", "", "nodes", "", "", "n1"),
        n("patch", "", "nodes", "", "", "n1"),
        n("patch", "", "nodes", "status", "", "n1"),
        n(
            "get",
            "coordination.k8s.io",
            "leases",
            "",
            "kube-node-lease",
            "n1",
        ),
        n(
            "patch",
            "coordination.k8s.io",
            "leases",
            "",
            "kube-node-lease",
            "n1",
        ),
        n(
            "create",
            "coordination.k8s.io",
            "leases",
            "",
            "kube-node-lease",
            "",
        ),
        n("list", "", "pods", "", "", ""),
        n("watch", "", "pods", "", "", ""),
        n("patch", "", "pods", "status", "default", "mine"),
        n("delete", "", "pods", "", "default", "mine"),
        n("delete", "", "pods", "", "default", "gone"),
        n("create", "", "events", "", "default", ""),
        n("create", "events.k8s.io", "events", "", "default", ""),
        n("get", "", "secrets", "", "default", "regcred"),
        n("get", "", "secrets", "", "default", "env-secret"),
        n("get", "", "secrets", "", "default", "proj-secret"),
        n("get", "", "configmaps", "", "default", "env-cm"),
        n("get", "", "configmaps", "", "default", "vol-cm"),
        n("list", "", "services", "", "", ""),
        n("get", "", "endpoints", "", "default", "kubernetes"),
        n("get", "", "nodes", "", "", "n2"),
        // Through the ClusterRole skiff:network-policy-agent (bound to system:nodes): the agents
        // enforce NetworkPolicies, so they read namespaces and the policies of every namespace.
        n("get", "", "namespaces", "", "", "default"),
        n("watch", "networking.k8s.io", "networkpolicies", "", "", ""),
    ] {
        assert!(f.allowed(&a).await, "should be allowed: {a:?}");
    }
    // Other nodes' objects, and everything else.
    for a in [
        n("patch", "", "nodes", "", "", "n2"),
        n("patch", "", "nodes", "status", "", "n2"),
        n("delete", "", "nodes", "", "", "n2"),
        n(
            "get",
            "coordination.k8s.io",
            "leases",
            "",
            "kube-node-lease",
            "n2",
        ),
        n(
            "patch",
            "coordination.k8s.io",
            "leases",
            "",
            "kube-node-lease",
            "n2",
        ),
        n(
            "get",
            "coordination.k8s.io",
            "leases",
            "",
            "kube-system",
            "n1",
        ),
        n("patch", "", "pods", "status", "default", "theirs"),
        n("delete", "", "pods", "", "default", "theirs"),
        n("patch", "", "pods", "", "default", "mine"),
        n("update", "", "pods", "", "default", "mine"),
        n("create", "", "pods", "binding", "default", "mine"),
        n("deletecollection", "", "pods", "", "default", ""),
        n("get", "", "secrets", "", "default", "unreferenced"),
        n("list", "", "secrets", "", "default", ""),
        n("get", "", "secrets", "", "other", "regcred"),
        n("get", "", "configmaps", "", "default", "nope"),
        n("delete", "", "namespaces", "", "", "default"),
        n("create", "", "namespaces", "", "", ""),
        n(
            "create",
            "networking.k8s.io",
            "networkpolicies",
            "",
            "default",
            "",
        ),
        n("list", "rbac.authorization.k8s.io", "roles", "", "", ""),
    ] {
        assert!(!f.allowed(&a).await, "should be denied: {a:?}");
    }
    // n2 sees its own pod's secrets, not n1's view.
    assert!(
        f.allowed(&node_attrs(
            "n2", "get", "", "secrets", "", "default", "regcred"
        ))
        .await
    );
    assert!(
        !f.allowed(&node_attrs(
            "n3", "get", "", "secrets", "", "default", "regcred"
        ))
        .await
    );
    // The node prefix without the group is just a user.
    let fake = as_user(
        attrs("get", "", "nodes", "", "", "n1"),
        "system:node:n1",
        &[],
    );
    assert!(!f.allowed(&fake).await);
}

#[tokio::test]
async fn node_gets_the_volumes_of_its_pods() {
    let f = fixture().await;
    let mut db = pod("apps", "db", "n1");
    db["spec"]["volumes"] = json!([{"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]);
    f.put(Kind::Pod, Some("apps"), db).await;
    let claim = |name: &str, volume: &str| json!({"metadata": {"name": name, "namespace": "apps"}, "spec": {"volumeName": volume}});
    f.put(
        Kind::PersistentVolumeClaim,
        Some("apps"),
        claim("data", "pv-data"),
    )
    .await;
    f.put(
        Kind::PersistentVolumeClaim,
        Some("apps"),
        claim("idle", "pv-idle"),
    )
    .await;
    let pv = |name: &str, affinity: Value| json!({"metadata": {"name": name}, "spec": {"nodeAffinity": affinity}});
    let on = |node: &str| {
        json!({"required": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}]},
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["x", node]}]}]}})
    };
    // The claim of the generic ephemeral volume `scratch` of pod `db`.
    f.put(
        Kind::PersistentVolumeClaim,
        Some("apps"),
        claim("db-scratch", "pv-scratch"),
    )
    .await;
    f.put(Kind::PersistentVolume, None, pv("pv-scratch", Value::Null))
        .await;
    f.put(Kind::PersistentVolume, None, pv("pv-data", Value::Null))
        .await;
    f.put(Kind::PersistentVolume, None, pv("pv-idle", Value::Null))
        .await;
    f.put(Kind::PersistentVolume, None, pv("pv-n2", on("n2")))
        .await;
    let not_in = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["n1"]}]}]}});
    f.put(Kind::PersistentVolume, None, pv("pv-not-n1", not_in))
        .await;
    let get = |node: &str, res: &str, ns: &str, name: &str| {
        node_attrs(node, "get", "", res, "", ns, name)
    };
    for a in [
        // Through its pod's claim; by node affinity; a missing one (404 from the handler).
        get("n1", "persistentvolumes", "", "pv-data"),
        get("n2", "persistentvolumes", "", "pv-n2"),
        get("n1", "persistentvolumes", "", "missing"),
        get("n1", "persistentvolumeclaims", "apps", "data"),
        get("n1", "persistentvolumeclaims", "apps", "db-scratch"),
        get("n1", "persistentvolumes", "", "pv-scratch"),
    ] {
        assert!(f.allowed(&a).await, "should be allowed: {a:?}");
    }
    for a in [
        get("n2", "persistentvolumes", "", "pv-data"),
        get("n1", "persistentvolumes", "", "pv-idle"),
        get("n1", "persistentvolumes", "", "pv-n2"),
        get("n1", "persistentvolumes", "", "pv-not-n1"),
        get("n2", "persistentvolumeclaims", "apps", "data"),
        get("n2", "persistentvolumeclaims", "apps", "db-scratch"),
        get("n2", "persistentvolumes", "", "pv-scratch"),
        get("n1", "persistentvolumeclaims", "apps", "db-d"),
        get("n1", "persistentvolumeclaims", "apps", "idle"),
        node_attrs("n1", "list", "", "persistentvolumes", "", "", ""),
        node_attrs("n1", "watch", "", "persistentvolumes", "", "", ""),
        node_attrs("n1", "update", "", "persistentvolumes", "", "", "pv-data"),
        node_attrs("n1", "delete", "", "persistentvolumes", "", "", "pv-data"),
        node_attrs(
            "n1",
            "get",
            "",
            "persistentvolumes",
            "status",
            "",
            "pv-data",
        ),
        node_attrs(
            "n1",
            "get",
            "storage.k8s.io",
            "storageclasses",
            "",
            "",
            "local-path",
        ),
    ] {
        assert!(!f.allowed(&a).await, "should be denied: {a:?}");
    }
}

#[test]
fn node_restriction_admission() {
    let a =
        |verb: &str, group: &str, res: &str| node_attrs("n1", verb, group, res, "", "default", "");
    let own = json!({"metadata": {"name": "n1"}});
    let other = json!({"metadata": {"name": "n2"}});
    assert_eq!(
        node::admit("n1", &a("create", "", "nodes"), Some(&own), None),
        None
    );
    assert!(node::admit("n1", &a("create", "", "nodes"), Some(&other), None).is_some());
    let restricted =
        json!({"metadata": {"name": "n1", "labels": {"node-restriction.kubernetes.io/x": "y"}}});
    assert!(node::admit("n1", &a("create", "", "nodes"), Some(&restricted), None).is_some());
    let plain = json!({"metadata": {"labels": {"kubernetes.io/hostname": "n1"}}});
    let stored =
        json!({"metadata": {"name": "n1", "labels": {"node-restriction.kubernetes.io/x": "y"}}});
    // Merge patches: other labels are fine; restating a restricted label unchanged is fine too.
    assert_eq!(
        node::admit("n1", &a("patch", "", "nodes"), Some(&plain), Some(&stored)),
        None
    );
    assert_eq!(
        node::admit(
            "n1",
            &a("patch", "", "nodes"),
            Some(&restricted),
            Some(&stored)
        ),
        None
    );
    assert!(
        node::admit(
            "n1",
            &a("patch", "", "nodes"),
            Some(&restricted),
            Some(&own)
        )
        .is_some()
    );
    let removal = json!({"metadata": {"labels": {"node-restriction.kubernetes.io/x": null}}});
    assert!(
        node::admit(
            "n1",
            &a("patch", "", "nodes"),
            Some(&removal),
            Some(&stored)
        )
        .is_some()
    );
    assert_eq!(
        node::admit("n1", &a("patch", "", "nodes"), Some(&removal), Some(&own)),
        None
    );
    // Updates compare with the stored Node.
    assert_eq!(
        node::admit(
            "n1",
            &a("update", "", "nodes"),
            Some(&stored),
            Some(&stored)
        ),
        None
    );
    assert!(node::admit("n1", &a("update", "", "nodes"), Some(&own), Some(&stored)).is_some());
    // JSON patches.
    let jp = json!([{"op": "add", "path": "/metadata/labels/node-restriction.kubernetes.io~1x", "value": "z"}]);
    assert!(node::admit("n1", &a("patch", "", "nodes"), Some(&jp), Some(&own)).is_some());
    let jp = json!([{"op": "add", "path": "/metadata/labels/team", "value": "z"}]);
    assert_eq!(
        node::admit("n1", &a("patch", "", "nodes"), Some(&jp), Some(&stored)),
        None
    );
    let mirror = json!({"metadata": {"name": "m", "annotations": {"kubernetes.io/config.mirror": "h"}},
                        "spec": {"nodeName": "n1"}});
    assert_eq!(
        node::admit("n1", &a("create", "", "pods"), Some(&mirror), None),
        None
    );
    let mut elsewhere = mirror.clone();
    elsewhere["spec"]["nodeName"] = json!("n2");
    assert!(node::admit("n1", &a("create", "", "pods"), Some(&elsewhere), None).is_some());
    let plain_pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}});
    let why = node::admit("n1", &a("create", "", "pods"), Some(&plain_pod), None).expect("denied");
    assert!(why.contains("can only create mirror pods"), "{why}");
    let lease = |n: &str| json!({"metadata": {"name": n}});
    assert_eq!(
        node::admit(
            "n1",
            &a("create", "coordination.k8s.io", "leases"),
            Some(&lease("n1")),
            None
        ),
        None
    );
    assert!(
        node::admit(
            "n1",
            &a("create", "coordination.k8s.io", "leases"),
            Some(&lease("n2")),
            None
        )
        .is_some()
    );
}

#[test]
fn pod_references_cover_every_source() {
    let p = pod("default", "p", "n1");
    for (res, name, want) in [
        ("secrets", "regcred", true),
        ("secrets", "env-secret", true),
        ("secrets", "proj-secret", true),
        ("secrets", "vol-cm", false),
        ("configmaps", "env-cm", true),
        ("configmaps", "vol-cm", true),
        ("configmaps", "regcred", false),
        ("persistentvolumeclaims", "x", false),
    ] {
        assert_eq!(node::pod_references(&p, res, name), want, "{res}/{name}");
    }
}
