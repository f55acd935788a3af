//! RBAC: which rules a user holds (bindings whose subjects name the user or one of its groups) and whether
//! a rule allows a request (verbs, apiGroups, resources with `res/sub` and `*/sub`, resourceNames,
//! nonResourceURLs with a trailing `*`). No ClusterRole aggregation.

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, Subject,
};

use super::Attributes;
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult};
use crate::store::Store;

pub mod cache;

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    has(&rule.verbs, verb)
}

fn resource_matches(rule: &PolicyRule, resource: &str, sub: &str) -> bool {
    let combined = if sub.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}/{sub}")
    };
    rule.resources
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|r| {
            r == "*" || *r == combined || (!sub.is_empty() && r.strip_prefix("*/") == Some(sub))
        })
}

fn name_matches(rule: &PolicyRule, name: &str) -> bool {
    match rule.resource_names.as_deref() {
        None | Some([]) => true,
        Some(names) => !name.is_empty() && names.iter().any(|n| n == name),
    }
}

fn url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|u| {
            u == "*"
                || u == path
                || u.strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix))
        })
}

/// Whether one rule allows the request.
pub fn rule_allows(rule: &PolicyRule, a: &Attributes) -> bool {
    if !verb_matches(rule, &a.verb) {
        return false;
    }
    if !a.resource_request {
        return url_matches(rule, &a.path);
    }
    has(rule.api_groups.as_deref().unwrap_or_default(), &a.api_group)
        && resource_matches(rule, &a.resource, &a.subresource)
        && name_matches(rule, &a.name)
}

pub fn rules_allow(rules: &[PolicyRule], a: &Attributes) -> bool {
    rules.iter().any(|r| rule_allows(r, a))
}

/// Whether a binding subject names this user. `binding_ns` is the namespace of a RoleBinding (the default
/// namespace of ServiceAccount subjects).
pub fn subject_matches(s: &Subject, user: &str, groups: &[String], binding_ns: &str) -> bool {
    match s.kind.as_str() {
        "User" => s.name == user,
        "Group" => groups.contains(&s.name),
        "ServiceAccount" => {
            let ns = s
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            user == format!("system:serviceaccount:{ns}:{}", s.name)
        }
        _ => false,
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], key: &str) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::internal(format!("decoding {key}: {e}")))
}

async fn cluster_role_rules(store: &dyn Store, name: &str) -> ApiResult<Vec<PolicyRule>> {
    let key = by_kind(Kind::ClusterRole).key(None, name);
    match store.get(&key).await? {
        Some(kv) => Ok(decode::<ClusterRole>(&kv.value, &key)
            .map(|r| r.rules.unwrap_or_default())
            .unwrap_or_default()),
        None => Ok(Vec::new()),
    }
}

async fn role_rules(store: &dyn Store, ns: &str, name: &str) -> ApiResult<Vec<PolicyRule>> {
    let key = by_kind(Kind::Role).key(Some(ns), name);
    match store.get(&key).await? {
        Some(kv) => Ok(decode::<Role>(&kv.value, &key)
            .map(|r| r.rules.unwrap_or_default())
            .unwrap_or_default()),
        None => Ok(Vec::new()),
    }
}

/// The ClusterRole a ClusterRoleBinding grants the user, if one of its subjects names them.
fn cluster_binding_grant<'a>(
    b: &'a ClusterRoleBinding,
    user: &str,
    groups: &[String],
) -> Option<&'a str> {
    let named = b
        .subjects
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|s| subject_matches(s, user, groups, ""));
    (named && b.role_ref.kind == "ClusterRole").then_some(b.role_ref.name.as_str())
}

/// The role (`kind`, `name`) a RoleBinding of `namespace` grants the user, if one of its subjects names them.
fn binding_grant<'a>(
    b: &'a RoleBinding,
    user: &str,
    groups: &[String],
    namespace: &str,
) -> Option<(&'a str, &'a str)> {
    let named = b
        .subjects
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|s| subject_matches(s, user, groups, namespace));
    named.then_some((b.role_ref.kind.as_str(), b.role_ref.name.as_str()))
}

/// Every rule the user holds for requests in `namespace` ("" = cluster scope): ClusterRoleBindings, then the
/// RoleBindings of that namespace. Bindings to missing roles grant nothing.
pub async fn rules_for(
    store: &dyn Store,
    user: &str,
    groups: &[String],
    namespace: &str,
) -> ApiResult<Vec<PolicyRule>> {
    let mut rules = Vec::new();
    let (crbs, _) = store
        .list(&by_kind(Kind::ClusterRoleBinding).prefix(None))
        .await?;
    for kv in crbs {
        // An undecodable binding grants nothing; it must not lock everyone else out.
        let Ok(b) = decode::<ClusterRoleBinding>(&kv.value, &kv.key) else {
            tracing::warn!(key = %kv.key, "skipping an undecodable ClusterRoleBinding");
            continue;
        };
        if let Some(role) = cluster_binding_grant(&b, user, groups) {
            rules.extend(cluster_role_rules(store, role).await?);
        }
    }
    if namespace.is_empty() {
        return Ok(rules);
    }
    let (rbs, _) = store
        .list(&by_kind(Kind::RoleBinding).prefix(Some(namespace)))
        .await?;
    for kv in rbs {
        let Ok(b) = decode::<RoleBinding>(&kv.value, &kv.key) else {
            tracing::warn!(key = %kv.key, "skipping an undecodable RoleBinding");
            continue;
        };
        match binding_grant(&b, user, groups, namespace) {
            Some(("ClusterRole", name)) => rules.extend(cluster_role_rules(store, name).await?),
            Some(("Role", name)) => rules.extend(role_rules(store, namespace, name).await?),
            _ => {}
        }
    }
    Ok(rules)
}

/// The rules of the role a binding refers to (`ns` for a RoleBinding's `Role`).
pub async fn referenced_rules(
    store: &dyn Store,
    ns: &str,
    kind: &str,
    name: &str,
) -> ApiResult<Option<Vec<PolicyRule>>> {
    let key = match kind {
        "ClusterRole" => by_kind(Kind::ClusterRole).key(None, name),
        _ => by_kind(Kind::Role).key(Some(ns), name),
    };
    let Some(kv) = store.get(&key).await? else {
        return Ok(None);
    };
    let rules = if kind == "ClusterRole" {
        decode::<ClusterRole>(&kv.value, &key)?.rules
    } else {
        decode::<Role>(&kv.value, &key)?.rules
    };
    Ok(Some(rules.unwrap_or_default()))
}

/// Whether `owner` holds everything `wanted` grants (escalation check). A `*` in `wanted` is only covered
/// by a `*` in `owner`: every value of `wanted` is checked as a literal request.
pub fn covers(owner: &[PolicyRule], wanted: &PolicyRule) -> bool {
    let verbs = &wanted.verbs;
    if let Some(urls) = wanted
        .non_resource_urls
        .as_deref()
        .filter(|u| !u.is_empty())
    {
        return urls.iter().all(|u| {
            verbs.iter().all(|v| {
                owner.iter().any(|o| {
                    has(&o.verbs, v)
                        && o.non_resource_urls
                            .as_deref()
                            .unwrap_or_default()
                            .iter()
                            .any(|ou| {
                                ou == "*"
                                    || ou == u
                                    || ou.strip_suffix('*').is_some_and(|p| {
                                        u.strip_suffix('*').unwrap_or(u).starts_with(p)
                                    })
                            })
                })
            })
        });
    }
    let groups = wanted.api_groups.as_deref().unwrap_or_default();
    let resources = wanted.resources.as_deref().unwrap_or_default();
    let names: Vec<&str> = match wanted.resource_names.as_deref() {
        None | Some([]) => vec![""],
        Some(n) => n.iter().map(String::as_str).collect(),
    };
    groups.iter().all(|g| {
        resources.iter().all(|r| {
            verbs.iter().all(|v| {
                names.iter().all(|n| {
                    owner.iter().any(|o| {
                        let sub = r.split_once('/').map(|(_, s)| s).unwrap_or("");
                        has(&o.verbs, v)
                            && has(o.api_groups.as_deref().unwrap_or_default(), g)
                            && o.resources.as_deref().unwrap_or_default().iter().any(|or| {
                                or == "*"
                                    || or == r
                                    || (!sub.is_empty() && or.strip_prefix("*/") == Some(sub))
                            })
                            && name_matches(o, n)
                    })
                })
            })
        })
    })
}
