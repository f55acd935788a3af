//! The default cluster roles and bindings every cluster starts with (kube-apiserver's bootstrap policy,
//! reduced to the kinds skiff serves). Created when absent; a user's changes to them are kept.

use serde_json::{Value, json};

use crate::resources::{Kind, by_kind};
use crate::store::{Store, StoreError};

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];

/// Namespaced resources of the core and coordination groups that admin/edit/view talk about.
const CORE_WORKLOAD: &[&str] = &[
    "pods",
    "pods/log",
    "pods/status",
    "configmaps",
    "services",
    "endpoints",
    "serviceaccounts",
    "events",
    "persistentvolumeclaims",
];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({"apiGroups": groups, "resources": resources, "verbs": verbs})
}

fn url_rule(urls: &[&str], verbs: &[&str]) -> Value {
    json!({"nonResourceURLs": urls, "verbs": verbs})
}

fn all(a: &[&str], b: &[&str]) -> Vec<String> {
    a.iter().chain(b).map(|s| s.to_string()).collect()
}

/// The default ClusterRoles: (name, rules).
pub fn cluster_roles() -> Vec<(&'static str, Vec<Value>)> {
    let rw = all(READ, WRITE);
    let rw: Vec<&str> = rw.iter().map(String::as_str).collect();
    let exec = ["pods/exec", "pods/attach", "pods/portforward"];
    let edit = vec![
        rule(&[""], CORE_WORKLOAD, &rw),
        rule(&[""], &["secrets"], &rw),
        rule(&[""], &exec, &["get", "create"]),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(&["coordination.k8s.io"], &["leases"], &rw),
        rule(&["events.k8s.io"], &["events"], &rw),
        rule(&[""], &["namespaces"], READ),
    ];
    let mut admin = edit.clone();
    admin.push(rule(
        &["rbac.authorization.k8s.io"],
        &["roles", "rolebindings"],
        &rw,
    ));
    vec![
        (
            "cluster-admin",
            vec![rule(&["*"], &["*"], &["*"]), url_rule(&["*"], &["*"])],
        ),
        ("admin", admin),
        ("edit", edit),
        (
            "view",
            vec![
                rule(&[""], CORE_WORKLOAD, READ),
                rule(&[""], &["namespaces"], READ),
                rule(&["coordination.k8s.io"], &["leases"], READ),
                rule(&["events.k8s.io"], &["events"], READ),
            ],
        ),
        (
            "system:discovery",
            vec![url_rule(
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/openapi",
                    "/openapi/*",
                    "/version",
                    "/version/",
                    "/healthz",
                    "/livez",
                    "/readyz",
                ],
                &["get"],
            )],
        ),
        (
            "system:basic-user",
            vec![rule(
                &["authorization.k8s.io"],
                &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                &["create"],
            )],
        ),
        (
            "system:public-info-viewer",
            vec![url_rule(
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
                &["get"],
            )],
        ),
        // Node join: bootstrap tokens ask for a node certificate, nodes for its renewal
        // (`crate::controllers::csr` decides what is approved).
        (
            "system:node-bootstrapper",
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
                &["create", "get", "list", "watch"],
            )],
        ),
        (
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            vec![rule(
                &["certificates.k8s.io"],
                &["certificatesigningrequests"],
                &["create", "get", "list", "watch"],
            )],
        ),
    ]
}

/// The default ClusterRoleBindings: (name = role, group).
pub fn cluster_role_bindings() -> Vec<(&'static str, &'static str)> {
    vec![
        ("cluster-admin", "system:masters"),
        ("system:discovery", "system:authenticated"),
        ("system:basic-user", "system:authenticated"),
        ("system:public-info-viewer", "system:authenticated"),
        ("system:node-bootstrapper", "system:bootstrappers"),
        (
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            "system:nodes",
        ),
    ]
}

fn meta(name: &str) -> Value {
    json!({
        "name": name,
        "uid": uuid::Uuid::new_v4().to_string(),
        "creationTimestamp": crate::handlers::now_rfc3339(),
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    })
}

async fn create_absent(store: &dyn Store, key: &str, value: &Value) -> Result<(), StoreError> {
    if store.get(key).await?.is_some() {
        return Ok(());
    }
    let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Backend(e.to_string()))?;
    match store.create(key, bytes).await {
        Ok(_) | Err(StoreError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Create the default roles and bindings that do not exist yet. Safe to run on every start.
pub async fn ensure_defaults(store: &dyn Store) -> Result<(), StoreError> {
    let roles = by_kind(Kind::ClusterRole);
    for (name, rules) in cluster_roles() {
        let obj = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": meta(name),
            "rules": rules,
        });
        create_absent(store, &roles.key(None, name), &obj).await?;
    }
    let bindings = by_kind(Kind::ClusterRoleBinding);
    for (name, group) in cluster_role_bindings() {
        let obj = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta(name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
        });
        create_absent(store, &bindings.key(None, name), &obj).await?;
    }
    Ok(())
}
