//! The RBAC evaluator, the chain, the rbac kinds' validation and the escalation check.

use http::Method;
use k8s_openapi::api::rbac::v1::{PolicyRule, Subject};
use serde_json::json;

use super::*;

#[test]
fn rbac_rules_match_verbs_groups_resources_names() {
    let pods_read = rule(&[""], &["pods"], &["get", "list"], &[]);
    assert!(rbac::rule_allows(
        &pods_read,
        &attrs("get", "", "pods", "", "default", "x")
    ));
    assert!(rbac::rule_allows(
        &pods_read,
        &attrs("list", "", "pods", "", "default", "")
    ));
    assert!(!rbac::rule_allows(
        &pods_read,
        &attrs("delete", "", "pods", "", "default", "x")
    ));
    assert!(!rbac::rule_allows(
        &pods_read,
        &attrs("get", "apps", "pods", "", "default", "x")
    ));
    // A rule for `pods` does not reach subresources.
    assert!(!rbac::rule_allows(
        &pods_read,
        &attrs("get", "", "pods", "status", "default", "x")
    ));
    let status = rule(&[""], &["pods/status"], &["patch"], &[]);
    assert!(rbac::rule_allows(
        &status,
        &attrs("patch", "", "pods", "status", "d", "x")
    ));
    assert!(!rbac::rule_allows(
        &status,
        &attrs("patch", "", "pods", "", "d", "x")
    ));
    let any_status = rule(&["*"], &["*/status"], &["*"], &[]);
    assert!(rbac::rule_allows(
        &any_status,
        &attrs("update", "", "nodes", "status", "", "n")
    ));
    assert!(!rbac::rule_allows(
        &any_status,
        &attrs("update", "", "nodes", "", "", "n")
    ));
    let star = rule(&["*"], &["*"], &["*"], &[]);
    assert!(rbac::rule_allows(
        &star,
        &attrs(
            "escalate",
            "rbac.authorization.k8s.io",
            "roles",
            "",
            "d",
            "r"
        )
    ));
    assert!(rbac::rule_allows(
        &star,
        &attrs("get", "", "pods", "log", "d", "x")
    ));
    let named = rule(&[""], &["configmaps"], &["get"], &["cfg"]);
    assert!(rbac::rule_allows(
        &named,
        &attrs("get", "", "configmaps", "", "d", "cfg")
    ));
    assert!(!rbac::rule_allows(
        &named,
        &attrs("get", "", "configmaps", "", "d", "other")
    ));
    // resourceNames never allow a list (no name).
    assert!(!rbac::rule_allows(
        &named,
        &attrs("get", "", "configmaps", "", "d", "")
    ));

    let urls = PolicyRule {
        non_resource_urls: Some(vec!["/healthz".into(), "/apis/*".into()]),
        verbs: vec!["get".into()],
        ..PolicyRule::default()
    };
    let mut a = attrs("get", "", "", "", "", "");
    a.resource_request = false;
    a.path = "/apis/apps/v1".into();
    assert!(rbac::rule_allows(&urls, &a));
    a.path = "/healthz".into();
    assert!(rbac::rule_allows(&urls, &a));
    a.path = "/metrics".into();
    assert!(!rbac::rule_allows(&urls, &a));
    a.path = "/healthz".into();
    a.verb = "post".into();
    assert!(!rbac::rule_allows(&urls, &a));
    // URL rules never grant resources.
    assert!(!rbac::rule_allows(
        &urls,
        &attrs("get", "", "pods", "", "d", "x")
    ));
}

#[test]
fn rbac_subjects_match_users_groups_and_service_accounts() {
    let s = |kind: &str, name: &str, ns: Option<&str>| Subject {
        kind: kind.into(),
        name: name.into(),
        namespace: ns.map(str::to_string),
        api_group: None,
    };
    let groups = vec!["dev".to_string()];
    assert!(rbac::subject_matches(
        &s("User", "alice", None),
        "alice",
        &groups,
        ""
    ));
    assert!(!rbac::subject_matches(
        &s("User", "bob", None),
        "alice",
        &groups,
        ""
    ));
    assert!(rbac::subject_matches(
        &s("Group", "dev", None),
        "alice",
        &groups,
        ""
    ));
    assert!(!rbac::subject_matches(
        &s("Group", "ops", None),
        "alice",
        &groups,
        ""
    ));
    let sa = "system:serviceaccount:team:builder";
    assert!(rbac::subject_matches(
        &s("ServiceAccount", "builder", None),
        sa,
        &[],
        "team"
    ));
    assert!(rbac::subject_matches(
        &s("ServiceAccount", "builder", Some("team")),
        sa,
        &[],
        "x"
    ));
    assert!(!rbac::subject_matches(
        &s("ServiceAccount", "builder", None),
        sa,
        &[],
        "other"
    ));
}

#[test]
fn rbac_covers_is_literal_about_wildcards() {
    let owner = vec![
        rule(&[""], &["pods", "pods/status"], &["get", "list"], &[]),
        rule(&[""], &["configmaps"], &["get"], &["a"]),
    ];
    assert!(rbac::covers(&owner, &rule(&[""], &["pods"], &["get"], &[])));
    assert!(rbac::covers(
        &owner,
        &rule(&[""], &["pods/status"], &["list"], &[])
    ));
    assert!(!rbac::covers(
        &owner,
        &rule(&[""], &["pods"], &["delete"], &[])
    ));
    assert!(!rbac::covers(&owner, &rule(&[""], &["*"], &["get"], &[])));
    assert!(!rbac::covers(
        &owner,
        &rule(&["*"], &["pods"], &["get"], &[])
    ));
    assert!(rbac::covers(
        &owner,
        &rule(&[""], &["configmaps"], &["get"], &["a"])
    ));
    assert!(!rbac::covers(
        &owner,
        &rule(&[""], &["configmaps"], &["get"], &[])
    ));
    assert!(!rbac::covers(
        &owner,
        &rule(&[""], &["configmaps"], &["get"], &["b"])
    ));
    let admin = vec![rule(&["*"], &["*"], &["*"], &[])];
    assert!(rbac::covers(&admin, &rule(&["*"], &["*"], &["*"], &[])));
}

#[test]
fn verbs_of_requests() {
    let r = |m: &'static Method, name: Option<&'static str>, sub: Option<&'static str>, watch| {
        verb(&Request {
            method: m,
            group: "",
            resource: "pods",
            subresource: sub,
            namespace: Some("default"),
            name,
            watch,
        })
    };
    assert_eq!(r(&Method::GET, None, None, false), "list");
    assert_eq!(r(&Method::GET, None, None, true), "watch");
    assert_eq!(r(&Method::GET, Some("p"), None, false), "get");
    assert_eq!(r(&Method::GET, Some("p"), Some("status"), false), "get");
    assert_eq!(r(&Method::GET, Some("p"), Some("exec"), false), "create");
    assert_eq!(r(&Method::POST, None, None, false), "create");
    assert_eq!(r(&Method::PUT, Some("p"), None, false), "update");
    assert_eq!(r(&Method::PATCH, Some("p"), Some("status"), false), "patch");
    assert_eq!(r(&Method::DELETE, Some("p"), None, false), "delete");
    assert_eq!(r(&Method::DELETE, None, None, false), "deletecollection");
}

#[test]
fn forbidden_messages_read_like_kube_apiserver() {
    let mut a = attrs("list", "", "pods", "", "default", "");
    a.user = "x".into();
    let e = forbidden(&a, "");
    assert_eq!(e.code, 403);
    assert_eq!(e.reason, "Forbidden");
    assert_eq!(
        e.message,
        r#"pods is forbidden: User "x" cannot list resource "pods" in API group "" in the namespace "default""#
    );
    let a = attrs("patch", "", "pods", "status", "web", "p1");
    assert_eq!(
        forbidden(&a, "").message,
        r#"pods "p1" is forbidden: User "alice" cannot patch resource "pods/status" in API group "" in the namespace "web""#
    );
    let a = attrs("get", "coordination.k8s.io", "leases", "", "", "");
    assert_eq!(
        forbidden(&a, "because").message,
        r#"leases.coordination.k8s.io is forbidden: User "alice" cannot get resource "leases" in API group "coordination.k8s.io" at the cluster scope: because"#
    );
}

#[tokio::test]
async fn chain_masters_rbac_and_default_deny() {
    let f = fixture().await;
    let list_pods = attrs("list", "", "pods", "", "team", "");
    assert!(!f.allowed(&list_pods).await, "no binding: denied");
    assert!(
        f.allowed(&as_user(list_pods.clone(), "root", &[MASTERS_GROUP]))
            .await
    );
    f.put(
        Kind::Role,
        Some("team"),
        json!({"metadata": {"name": "reader", "namespace": "team"},
               "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]}),
    )
    .await;
    f.put(
        Kind::RoleBinding,
        Some("team"),
        json!({"metadata": {"name": "dev-read", "namespace": "team"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
               "subjects": [{"kind": "Group", "name": "dev"}]}),
    )
    .await;
    assert!(f.allowed(&list_pods).await);
    assert!(!f.allowed(&attrs("list", "", "pods", "", "other", "")).await);
    assert!(
        !f.allowed(&attrs("list", "", "pods", "", "", "")).await,
        "all namespaces"
    );
    assert!(
        !f.allowed(&attrs("delete", "", "pods", "", "team", "x"))
            .await
    );
    // A ClusterRole through a ClusterRoleBinding reaches every namespace and the cluster scope.
    f.put(
        Kind::ClusterRoleBinding,
        None,
        json!({"metadata": {"name": "alice-view"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
               "subjects": [{"kind": "User", "name": "alice"}]}),
    )
    .await;
    assert!(f.allowed(&attrs("list", "", "pods", "", "", "")).await);
    assert!(
        f.allowed(&attrs("get", "", "namespaces", "", "", "other"))
            .await
    );
    assert!(
        !f.allowed(&attrs("get", "", "secrets", "", "other", "s"))
            .await,
        "view has no secrets"
    );
    // system:basic-user: every authenticated user may review itself.
    assert!(
        f.allowed(&attrs(
            "create",
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            "",
            "",
            ""
        ))
        .await
    );
    let mut disc = attrs("get", "", "", "", "", "");
    disc.resource_request = false;
    disc.path = "/apis/rbac.authorization.k8s.io/v1".into();
    assert!(f.allowed(&disc).await, "system:discovery");
}

#[test]
fn rbac_kinds_validate_rules_and_bindings() {
    let mut errs = Vec::new();
    kinds::validate(
        Kind::Role,
        &json!({"metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": []},
                                                    {"nonResourceURLs": ["/x"], "verbs": ["get"]}]}),
        &mut errs,
    );
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["rules[0].verbs", "rules[1].nonResourceURLs"]);
    // `system:` names are valid RBAC names: the DNS-subdomain error of the generic check is replaced.
    let mut errs = vec![crate::status::FieldError::invalid(
        "metadata.name",
        &json!("system:x"),
        "dns",
    )];
    kinds::validate(
        Kind::ClusterRole,
        &json!({"metadata": {"name": "system:x"}, "rules": [{"nonResourceURLs": ["/x"], "verbs": ["get"]}]}),
        &mut errs,
    );
    assert!(errs.is_empty(), "{errs:?}");
    let mut errs = Vec::new();
    kinds::validate(
        Kind::ClusterRoleBinding,
        &json!({"metadata": {"name": "b"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
                "subjects": [{"kind": "ServiceAccount", "name": "sa"}, {"kind": "Robot", "name": "x"}]}),
        &mut errs,
    );
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec!["roleRef.kind", "subjects[0].namespace", "subjects[1].kind"]
    );
    let old = json!({"roleRef": {"kind": "ClusterRole", "name": "view"}});
    let new = json!({"roleRef": {"kind": "ClusterRole", "name": "edit"}});
    assert_eq!(
        kinds::validate_update(Kind::RoleBinding, &old, &new).len(),
        1
    );
    assert!(kinds::validate_update(Kind::RoleBinding, &old, &old).is_empty());
}

#[tokio::test]
async fn escalation_needs_held_rules_or_escalate_and_bind() {
    let f = fixture().await;
    // alice may manage roles and bindings in `team` and read pods there, nothing else.
    f.put(
        Kind::Role,
        Some("team"),
        json!({"metadata": {"name": "rbac-manager", "namespace": "team"},
               "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["get", "list", "create", "update", "patch", "delete"]},
                         {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
    )
    .await;
    f.put(
        Kind::RoleBinding,
        Some("team"),
        json!({"metadata": {"name": "alice", "namespace": "team"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "rbac-manager"},
               "subjects": [{"kind": "User", "name": "alice"}]}),
    )
    .await;
    let user = crate::auth::UserInfo {
        name: "alice".into(),
        uid: String::new(),
        groups: vec!["dev".into()],
        extra: Default::default(),
    };
    let post = |resource: &'static str| Request {
        method: &Method::POST,
        group: "rbac.authorization.k8s.io",
        resource,
        subresource: None,
        namespace: Some("team"),
        name: None,
        watch: false,
    };
    let held = br#"{"metadata":{"name":"a"},"rules":[{"apiGroups":[""],"resources":["pods"],"verbs":["get"]}]}"#;
    let more = br#"{"metadata":{"name":"b"},"rules":[{"apiGroups":[""],"resources":["pods"],"verbs":["delete"]}]}"#;
    f.authz
        .check(&user, &post("roles"), held, "application/json")
        .await
        .expect("held rules may be granted");
    let e = f
        .authz
        .check(&user, &post("roles"), more, "application/json")
        .await
        .expect_err("escalation");
    assert_eq!(e.code, 403);
    assert!(
        e.message
            .contains("attempting to grant RBAC permissions not currently held"),
        "{}",
        e.message
    );
    // Binding to `edit` (not held) is refused; `bind` on it makes it fine.
    let bind_edit = br#"{"metadata":{"name":"x"},"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"edit"},"subjects":[{"kind":"User","name":"bob"}]}"#;
    let e = f
        .authz
        .check(&user, &post("rolebindings"), bind_edit, "application/json")
        .await
        .expect_err("bind escalation");
    assert_eq!(e.code, 403);
    f.put(
        Kind::Role,
        Some("team"),
        json!({"metadata": {"name": "binder", "namespace": "team"},
               "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": ["edit"]}]}),
    )
    .await;
    f.put(
        Kind::RoleBinding,
        Some("team"),
        json!({"metadata": {"name": "alice-binder", "namespace": "team"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "binder"},
               "subjects": [{"kind": "User", "name": "alice"}]}),
    )
    .await;
    f.authz
        .check(&user, &post("rolebindings"), bind_edit, "application/json")
        .await
        .expect("bind verb");
}

#[test]
fn a_namespace_object_is_in_its_own_namespace() {
    let user = crate::auth::UserInfo {
        name: "x".into(),
        uid: String::new(),
        groups: vec![],
        extra: Default::default(),
    };
    let req = Request {
        method: &Method::GET,
        group: "",
        resource: "namespaces",
        subresource: None,
        namespace: None,
        name: Some("team"),
        watch: false,
    };
    let a = Attributes::for_request(&user, &req);
    assert_eq!(a.namespace, "team");
    assert_eq!(a.groups, vec![AUTHENTICATED_GROUP.to_string()]);
    assert_eq!(
        forbidden(&a, "").message,
        r#"namespaces "team" is forbidden: User "x" cannot get resource "namespaces" in API group "" in the namespace "team""#
    );
}

/// apps/v1 in the default roles: edit writes Deployments, ReplicaSets and their scale, reads their status;
/// view reads them; nodes get nothing of them. An older stored `edit` learns the rules on the next start.
#[tokio::test]
async fn default_roles_cover_apps_workloads() {
    let f = fixture().await;
    for (user, role) in [("alice", "edit"), ("bob", "view")] {
        f.put(
            Kind::ClusterRoleBinding,
            None,
            json!({"metadata": {"name": format!("{user}-{role}")},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                   "subjects": [{"kind": "User", "name": user}]}),
        )
        .await;
    }
    let a = |verb, res, sub| attrs(verb, "apps", res, sub, "team", "web");
    let bob = |x: Attributes| as_user(x, "bob", &[]);
    for x in [
        a("create", "deployments", ""),
        a("patch", "deployments", "scale"),
        a("update", "replicasets", "scale"),
        a("delete", "replicasets", ""),
        a("get", "deployments", "status"),
        bob(a("get", "deployments", "scale")),
        bob(a("list", "replicasets", "")),
        bob(a("get", "replicasets", "status")),
    ] {
        assert!(f.allowed(&x).await, "should be allowed: {x:?}");
    }
    for x in [
        a("update", "deployments", "status"),
        bob(a("patch", "deployments", "scale")),
        bob(a("create", "deployments", "")),
        node_attrs("n1", "get", "apps", "deployments", "", "team", "web"),
        node_attrs("n1", "list", "apps", "replicasets", "", "", ""),
    ] {
        assert!(!f.allowed(&x).await, "should be denied: {x:?}");
    }
    // Reconciliation: the stored role gets the missing rules back unless autoupdate is off.
    let key = by_kind(Kind::ClusterRole).key(None, "edit");
    let kv = f.store.get(&key).await.expect("get").expect("edit exists");
    let mut old: Value = serde_json::from_slice(&kv.value).expect("json");
    old["rules"] = json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]);
    f.store
        .update(
            &key,
            serde_json::to_vec(&old).expect("json"),
            kv.mod_revision,
        )
        .await
        .expect("update");
    bootstrap::ensure_defaults(f.store.as_ref())
        .await
        .expect("defaults");
    assert!(f.allowed(&a("create", "deployments", "")).await);
    let kv = f.store.get(&key).await.expect("get").expect("edit exists");
    let mut now: Value = serde_json::from_slice(&kv.value).expect("json");
    assert_eq!(
        now["rules"][0], old["rules"][0],
        "existing rules kept first"
    );
    now["rules"] = json!([]);
    now["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] = json!("false");
    f.store
        .update(
            &key,
            serde_json::to_vec(&now).expect("json"),
            kv.mod_revision,
        )
        .await
        .expect("update");
    bootstrap::ensure_defaults(f.store.as_ref())
        .await
        .expect("defaults");
    assert!(!f.allowed(&a("create", "deployments", "")).await);
}
