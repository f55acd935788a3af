//! RBAC privilege-escalation prevention: a user may write a Role/ClusterRole only with rules it already
//! holds (or the `escalate` verb on it), and a RoleBinding/ClusterRoleBinding only to a role whose rules it
//! holds (or the `bind` verb on that role).

use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::Value;

use super::kinds::GROUP;
use super::{Attributes, Authorizer, Decision, admission_forbidden, rbac};
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult};

fn describe(r: &PolicyRule) -> String {
    let list = |v: Option<&Vec<String>>| {
        v.map(|l| format!("{l:?}"))
            .unwrap_or_else(|| "[]".to_string())
    };
    if r.non_resource_urls.as_ref().is_some_and(|u| !u.is_empty()) {
        return format!(
            "{{NonResourceURLs:{}, Verbs:{}}}",
            list(r.non_resource_urls.as_ref()),
            list(Some(&r.verbs))
        );
    }
    let mut s = format!(
        "{{APIGroups:{}, Resources:{}",
        list(r.api_groups.as_ref()),
        list(r.resources.as_ref())
    );
    if r.resource_names.as_ref().is_some_and(|n| !n.is_empty()) {
        s.push_str(&format!(
            ", ResourceNames:{}",
            list(r.resource_names.as_ref())
        ));
    }
    s.push_str(&format!(", Verbs:{}}}", list(Some(&r.verbs))));
    s
}

/// Whether the user may `verb` the role/binding at hand without holding its rules.
async fn has_verb(
    authz: &Authorizer,
    a: &Attributes,
    verb: &str,
    resource: &str,
    name: &str,
) -> ApiResult<bool> {
    let b = Attributes {
        verb: verb.to_string(),
        api_group: GROUP.to_string(),
        resource: resource.to_string(),
        subresource: String::new(),
        name: name.to_string(),
        ..a.clone()
    };
    Ok(authz.authorize(&b).await? == Decision::Allow)
}

async fn deny_unless_covered(
    authz: &Authorizer,
    a: &Attributes,
    wanted: &[PolicyRule],
) -> ApiResult<()> {
    let owner = rbac::rules_for(authz.store(), &a.user, &a.groups, &a.namespace).await?;
    let missing: Vec<String> = wanted
        .iter()
        .filter(|w| !rbac::covers(&owner, w))
        .map(describe)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(admission_forbidden(
        a,
        &format!(
            "user {:?} (groups={:?}) is attempting to grant RBAC permissions not currently held: {}",
            a.user,
            a.groups,
            missing.join("; ")
        ),
    ))
}

fn rules_of(object: &Value) -> ApiResult<Option<Vec<PolicyRule>>> {
    match object.get("rules") {
        None | Some(Value::Null) => Ok(None),
        Some(r) => serde_json::from_value(r.clone())
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("decoding rules: {e}"))),
    }
}

/// The escalation check of a write to an RBAC object (no-op for every other request).
pub async fn check(authz: &Authorizer, a: &Attributes, object: Option<&Value>) -> ApiResult<()> {
    if a.api_group != GROUP || !matches!(a.verb.as_str(), "create" | "update" | "patch") {
        return Ok(());
    }
    match a.resource.as_str() {
        "roles" | "clusterroles" => {
            if has_verb(authz, a, "escalate", &a.resource, &a.name).await? {
                return Ok(());
            }
            let rules = match object {
                Some(o) if o.is_object() => rules_of(o)?,
                // A JSON patch: its result is not known here.
                Some(_) => {
                    return Err(admission_forbidden(
                        a,
                        "JSON patches of roles need the escalate verb",
                    ));
                }
                None => None,
            };
            deny_unless_covered(authz, a, &rules.unwrap_or_default()).await
        }
        "rolebindings" | "clusterrolebindings" => {
            let from_body = object
                .and_then(|o| o.get("roleRef"))
                .filter(|r| r.is_object())
                .cloned();
            let role_ref = match from_body {
                Some(r) => r,
                None => {
                    let kind = if a.resource == "rolebindings" {
                        Kind::RoleBinding
                    } else {
                        Kind::ClusterRoleBinding
                    };
                    let ns = (!a.namespace.is_empty()).then_some(a.namespace.as_str());
                    let key = by_kind(kind).key(ns, &a.name);
                    match authz.store().get(&key).await? {
                        Some(kv) => serde_json::from_slice::<Value>(&kv.value)
                            .ok()
                            .and_then(|v| v.get("roleRef").cloned())
                            .unwrap_or(Value::Null),
                        None => Value::Null,
                    }
                }
            };
            let kind = role_ref.get("kind").and_then(Value::as_str).unwrap_or("");
            let name = role_ref.get("name").and_then(Value::as_str).unwrap_or("");
            if kind.is_empty() || name.is_empty() {
                // Validation answers with 422 later.
                return Ok(());
            }
            let resource = if kind == "ClusterRole" {
                "clusterroles"
            } else {
                "roles"
            };
            if has_verb(authz, a, "bind", resource, name).await? {
                return Ok(());
            }
            match rbac::referenced_rules(authz.store(), &a.namespace, kind, name).await? {
                Some(rules) => deny_unless_covered(authz, a, &rules).await,
                None => Err(admission_forbidden(
                    a,
                    &format!(
                        "cannot bind to {kind} {name:?}: it does not exist and user {:?} may not bind it",
                        a.user
                    ),
                )),
            }
        }
        _ => Ok(()),
    }
}
