//! The default cluster roles and bindings every cluster starts with (kube-apiserver's bootstrap policy,
//! reduced to the kinds skiff serves). Created when absent. Like kube-apiserver's reconciliation, a stored
//! default ClusterRole that keeps `rbac.authorization.kubernetes.io/autoupdate: "true"` gets the rules of
//! this policy it lacks (so an upgraded cluster learns new kinds); nothing is ever taken away.

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
    "replicationcontrollers",
    "replicationcontrollers/scale",
];

/// Core resources and statuses that admin, edit and view only read (kube's view role, which admin and edit
/// aggregate): quotas are the cluster admin's, not the namespace admin's.
const CORE_STATUS: &[&str] = &[
    "persistentvolumeclaims/status",
    "replicationcontrollers/status",
    "resourcequotas",
    "resourcequotas/status",
];

/// apps resources: written by admin and edit, read by view (kube's bootstrap policy; statuses are read-only).
const APPS_WRITE: &[&str] = &[
    "deployments",
    "deployments/scale",
    "replicasets",
    "replicasets/scale",
    "daemonsets",
    "statefulsets",
    "statefulsets/scale",
];
/// apps resources admin, edit and view only read: the statuses and the controllers' ControllerRevisions.
const APPS_STATUS: &[&str] = &[
    "controllerrevisions",
    "deployments/status",
    "replicasets/status",
    "daemonsets/status",
    "statefulsets/status",
];

/// batch resources, as kube's bootstrap policy has them (statuses are read-only).
const BATCH_WRITE: &[&str] = &["jobs", "cronjobs"];
const BATCH_STATUS: &[&str] = &["jobs/status", "cronjobs/status"];

/// policy resources, as kube's bootstrap policy has them: edit writes PodDisruptionBudgets, view reads
/// them and their status.
const POLICY_WRITE: &[&str] = &["poddisruptionbudgets"];
const POLICY_STATUS: &[&str] = &["poddisruptionbudgets/status"];

/// LimitRanges: kube's view role reads them (and admin and edit aggregate view); only cluster admins
/// write them, as they bound what a namespace's users may ask for.
const LIMIT_RANGES: &[&str] = &["limitranges"];

/// autoscaling resources, as kube's bootstrap policy has them: edit writes HorizontalPodAutoscalers,
/// view reads them and their status.
const AUTOSCALING_WRITE: &[&str] = &["horizontalpodautoscalers"];
const AUTOSCALING_STATUS: &[&str] = &["horizontalpodautoscalers/status"];

/// networking.k8s.io resources, as kube's bootstrap policy has them: edit writes NetworkPolicies and
/// Ingresses, view reads them and the Ingresses' status. IngressClasses are cluster-wide configuration:
/// no bootstrap role but cluster-admin has them, as in kube.
const NETWORKING_WRITE: &[&str] = &["networkpolicies", "ingresses"];
const NETWORKING_STATUS: &[&str] = &["ingresses/status"];

/// metrics-server's `system:aggregated-metrics-reader` (labelled to aggregate into admin, edit and view;
/// skiff has no aggregation, so those roles carry its rule themselves).
pub const METRICS_READER: &str = "system:aggregated-metrics-reader";

fn metrics_rule() -> Value {
    rule(&["metrics.k8s.io"], &["pods", "nodes"], READ)
}

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
        rule(&[""], CORE_STATUS, READ),
        rule(&[""], &["secrets"], &rw),
        rule(&[""], &exec, &["get", "create"]),
        // kube's aggregate-to-edit: evictions (kubectl drain) go through the disruption budgets.
        rule(&[""], &["pods/eviction"], &["create"]),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(&["coordination.k8s.io"], &["leases"], &rw),
        rule(&["events.k8s.io"], &["events"], &rw),
        rule(&[""], &["namespaces"], READ),
        rule(&["apps"], APPS_WRITE, &rw),
        rule(&["apps"], APPS_STATUS, READ),
        rule(&["batch"], BATCH_WRITE, &rw),
        rule(&["batch"], BATCH_STATUS, READ),
        rule(&["policy"], POLICY_WRITE, &rw),
        rule(&["policy"], POLICY_STATUS, READ),
        rule(&[""], LIMIT_RANGES, READ),
        metrics_rule(),
        rule(&["autoscaling"], AUTOSCALING_WRITE, &rw),
        rule(&["autoscaling"], AUTOSCALING_STATUS, READ),
        rule(&["networking.k8s.io"], NETWORKING_WRITE, &rw),
        rule(&["networking.k8s.io"], NETWORKING_STATUS, READ),
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
                rule(&[""], CORE_STATUS, READ),
                rule(&[""], &["namespaces"], READ),
                rule(&["coordination.k8s.io"], &["leases"], READ),
                rule(&["events.k8s.io"], &["events"], READ),
                rule(&["apps"], APPS_WRITE, READ),
                rule(&["apps"], APPS_STATUS, READ),
                rule(&["batch"], BATCH_WRITE, READ),
                rule(&["batch"], BATCH_STATUS, READ),
                rule(&["policy"], POLICY_WRITE, READ),
                rule(&["policy"], POLICY_STATUS, READ),
                rule(&[""], LIMIT_RANGES, READ),
                metrics_rule(),
                rule(&["autoscaling"], AUTOSCALING_WRITE, READ),
                rule(&["autoscaling"], AUTOSCALING_STATUS, READ),
                rule(&["networking.k8s.io"], NETWORKING_WRITE, READ),
                rule(&["networking.k8s.io"], NETWORKING_STATUS, READ),
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
        // For an out-of-tree provisioner's service account (kube's, unbound): PersistentVolumes and
        // StorageClasses are cluster-scoped, so admin/edit/view never grant them.
        (
            "system:persistent-volume-provisioner",
            vec![
                rule(
                    &[""],
                    &["persistentvolumes"],
                    &["get", "list", "watch", "create", "delete"],
                ),
                rule(
                    &[""],
                    &["persistentvolumeclaims"],
                    &["get", "list", "watch", "update"],
                ),
                rule(&["storage.k8s.io"], &["storageclasses"], READ),
                rule(&[""], &["events"], &["watch"]),
                rule(
                    &["", "events.k8s.io"],
                    &["events"],
                    &["create", "update", "patch"],
                ),
            ],
        ),
        (METRICS_READER, vec![metrics_rule()]),
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
        // The agents enforce NetworkPolicies for their pods, so they read the policies, namespaces and
        // pods of every namespace (as k3s binds its network policy controller); bound to system:nodes.
        (
            "skiff:network-policy-agent",
            vec![
                rule(&["networking.k8s.io"], &["networkpolicies"], READ),
                rule(&[""], &["namespaces", "pods"], READ),
            ],
        ),
        // For webhooks and aggregated servers that delegate authentication and authorization (kube's,
        // unbound).
        (
            "system:auth-delegator",
            vec![
                rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
                rule(
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                    &["create"],
                ),
            ],
        ),
        // Scraping the API server's `/metrics` and health checks, bound to the group kube binds it to.
        (
            "system:monitoring",
            vec![url_rule(
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/readyz",
                    "/readyz/*",
                    "/metrics",
                    "/metrics/slis",
                ],
                &["get"],
            )],
        ),
        // Service-account issuer discovery (OIDC), bound to every service account as kube does.
        (
            "system:service-account-issuer-discovery",
            vec![url_rule(
                &["/.well-known/openid-configuration", "/openid/v1/jwks"],
                &["get"],
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
        ("skiff:network-policy-agent", "system:nodes"),
        ("system:monitoring", "system:monitoring"),
        (
            "system:service-account-issuer-discovery",
            "system:serviceaccounts",
        ),
    ]
}

fn meta(name: &str) -> Value {
    if name == METRICS_READER {
        // As metrics-server's manifest labels it.
        return json!({
            "name": name,
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": crate::handlers::now_rfc3339(),
            "labels": {
                "rbac.authorization.k8s.io/aggregate-to-admin": "true",
                "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                "rbac.authorization.k8s.io/aggregate-to-view": "true",
            },
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        });
    }
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

/// Append to the stored role at `key` the `rules` it does not have, unless its autoupdate annotation was
/// turned off.
async fn add_missing_rules(
    store: &dyn Store,
    key: &str,
    rules: &[Value],
) -> Result<(), StoreError> {
    let Some(kv) = store.get(key).await? else {
        return Ok(());
    };
    let Ok(mut role) = serde_json::from_slice::<Value>(&kv.value) else {
        return Ok(());
    };
    if role
        .pointer("/metadata/annotations/rbac.authorization.kubernetes.io~1autoupdate")
        .and_then(Value::as_str)
        != Some("true")
    {
        return Ok(());
    }
    let mut have = role
        .get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let before = have.len();
    for r in rules {
        if !have.contains(r) {
            have.push(r.clone());
        }
    }
    if have.len() == before {
        return Ok(());
    }
    role["rules"] = Value::Array(have);
    let bytes = serde_json::to_vec(&role).map_err(|e| StoreError::Backend(e.to_string()))?;
    match store.update(key, bytes, kv.mod_revision).await {
        // Someone else changed it meanwhile: the next start reconciles again.
        Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
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
        add_missing_rules(store, &roles.key(None, name), &rules).await?;
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
