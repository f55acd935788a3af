//! The authorizer's watch-fed RBAC copy agrees with the store, honours a grant at once and follows a
//! revocation.

use std::time::Duration;

use serde_json::json;

use super::*;

/// Poll `cond` for up to 5 s.
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn cache_allows_what_the_store_allows_and_follows_changes() {
    let f = fixture().await;
    let cache = rbac::cache::RbacCache::start(&f.store);
    let list_pods = attrs("list", "", "pods", "", "team", "");
    assert!(
        eventually(|| cache.allows(&list_pods).is_some()).await,
        "never synced"
    );
    assert_eq!(cache.allows(&list_pods), Some(false));

    // RoleBinding -> Role, for a group of alice's.
    f.put(
        Kind::Role,
        Some("team"),
        json!({"metadata": {"name": "reader", "namespace": "team"},
               "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]}),
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
    // RoleBinding -> ClusterRole `view`, for a ServiceAccount named without its namespace.
    f.put(
        Kind::RoleBinding,
        Some("team"),
        json!({"metadata": {"name": "robot-view", "namespace": "team"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
               "subjects": [{"kind": "ServiceAccount", "name": "robot"}]}),
    )
    .await;
    // ClusterRoleBinding -> ClusterRole `edit`, for carol.
    f.put(
        Kind::ClusterRoleBinding,
        None,
        json!({"metadata": {"name": "carol-edit"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
               "subjects": [{"kind": "User", "name": "carol"}]}),
    )
    .await;
    let robot = |a: Attributes| as_user(a, "system:serviceaccount:team:robot", &[]);
    let carol = |a: Attributes| as_user(a, "carol", &[]);
    let cases = [
        list_pods.clone(),
        attrs("delete", "", "pods", "", "team", "x"),
        attrs("list", "", "pods", "", "other", ""),
        robot(attrs("get", "apps", "deployments", "", "team", "web")),
        robot(attrs("create", "apps", "deployments", "", "team", "")),
        robot(attrs("get", "", "pods", "", "other", "x")),
        carol(attrs("create", "", "configmaps", "", "anywhere", "")),
        carol(attrs("list", "", "nodes", "", "", "")),
    ];
    assert!(
        eventually(|| cache.allows(&list_pods) == Some(true)).await,
        "grant not followed"
    );
    // One watch delivers the writes in order: once the last binding (carol's) shows, every one does.
    assert!(
        eventually(|| cache.allows(&cases[6]) == Some(true)).await,
        "carol's binding not followed"
    );
    for a in &cases {
        let rules = rbac::rules_for(f.store.as_ref(), &a.user, &a.groups, &a.namespace)
            .await
            .expect("rules");
        assert_eq!(
            cache.allows(a),
            Some(rbac::rules_allow(&rules, a)),
            "{} {} {}/{} in {:?}",
            a.user,
            a.verb,
            a.api_group,
            a.resource,
            a.namespace
        );
    }
    assert_eq!(
        cache.allows(&cases[3]),
        Some(true),
        "robot reads deployments"
    );
    assert_eq!(cache.allows(&cases[4]), Some(false), "view does not create");
    assert_eq!(cache.allows(&cases[6]), Some(true), "carol edits anywhere");

    // Revoking the binding revokes the access, once the watch delivers it.
    let key = by_kind(Kind::RoleBinding).key(Some("team"), "dev-read");
    f.store.delete(&key, None).await.expect("delete");
    assert!(
        eventually(|| cache.allows(&list_pods) == Some(false)).await,
        "revocation not followed"
    );
}

#[tokio::test]
async fn cached_authorizer_honours_a_grant_at_once() {
    let f = fixture().await;
    let authz = Authorizer::new(f.store.clone()).with_rbac_cache();
    let get_cm = as_user(attrs("get", "", "configmaps", "", "team", "x"), "dave", &[]);
    assert_ne!(
        authz.authorize(&get_cm).await.expect("authorize"),
        Decision::Allow
    );
    f.put(
        Kind::RoleBinding,
        Some("team"),
        json!({"metadata": {"name": "dave-view", "namespace": "team"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
               "subjects": [{"kind": "User", "name": "dave"}]}),
    )
    .await;
    // No wait for the watch: what the cache would deny is decided from the store.
    assert_eq!(
        authz.authorize(&get_cm).await.expect("authorize"),
        Decision::Allow
    );
}
