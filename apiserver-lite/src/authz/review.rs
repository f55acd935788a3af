//! `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`: "may I do this?" for the requesting
//! user (what `kubectl auth can-i` asks), answered by the same chain as real requests (without admission);
//! `selfsubjectrulesreviews` (`kubectl auth can-i --list`); and authentication.k8s.io `selfsubjectreviews`
//! (`kubectl auth whoami`).

use serde_json::{Value, json};

use super::{Attributes, Authorizer, Decision, effective_groups};
use crate::auth::UserInfo;
use crate::status::{ApiError, ApiResult};

fn field<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// The attributes a review's `spec` asks about.
pub fn attributes(user: &UserInfo, spec: &Value) -> ApiResult<Attributes> {
    let mut a = Attributes {
        user: user.name.clone(),
        groups: effective_groups(user),
        ..Attributes::default()
    };
    if let Some(r) = spec.get("resourceAttributes").filter(|r| r.is_object()) {
        a.resource_request = true;
        a.verb = field(r, "verb").to_string();
        a.api_group = field(r, "group").to_string();
        a.resource = field(r, "resource").to_string();
        a.subresource = field(r, "subresource").to_string();
        a.namespace = field(r, "namespace").to_string();
        a.name = field(r, "name").to_string();
    } else if let Some(n) = spec.get("nonResourceAttributes").filter(|r| r.is_object()) {
        a.verb = field(n, "verb").to_string();
        a.path = field(n, "path").to_string();
    } else {
        return Err(ApiError::invalid(
            "authorization.k8s.io",
            "SelfSubjectAccessReview",
            "",
            &[crate::status::FieldError::required(
                "spec.resourceAttributes",
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )],
        ));
    }
    Ok(a)
}

/// Answer a SelfSubjectAccessReview body. Returns the review with its `status`.
pub async fn self_subject_access_review(
    authz: &Authorizer,
    user: &UserInfo,
    body: &[u8],
    content_type: &str,
) -> ApiResult<Value> {
    let (mut review, _) = crate::handlers::parse_body(body, content_type)?;
    if !review.is_object() {
        return Err(ApiError::bad_request(
            "the body must be a SelfSubjectAccessReview object",
        ));
    }
    let spec = review.get("spec").cloned().unwrap_or(Value::Null);
    let a = attributes(user, &spec)?;
    let status = match authz.authorize(&a).await? {
        Decision::Allow => json!({"allowed": true}),
        Decision::Deny(reason) => json!({"allowed": false, "reason": reason}),
    };
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!("SelfSubjectAccessReview");
    if !review.get("metadata").is_some_and(Value::is_object) {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    review["status"] = status;
    Ok(review)
}

/// Answer a SelfSubjectRulesReview (`kubectl auth can-i --list`): the RBAC rules the user holds in
/// `spec.namespace`. What the Node authorizer allows is not listed (`incomplete` is then true).
pub async fn self_subject_rules_review(
    authz: &Authorizer,
    user: &UserInfo,
    body: &[u8],
    content_type: &str,
) -> ApiResult<Value> {
    let (mut review, _) = crate::handlers::parse_body(body, content_type)?;
    if !review.is_object() {
        return Err(ApiError::bad_request(
            "the body must be a SelfSubjectRulesReview object",
        ));
    }
    let ns = review
        .pointer("/spec/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let groups = effective_groups(user);
    let rules = super::rbac::rules_for(authz.store(), &user.name, &groups, &ns).await?;
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for r in rules {
        match r.non_resource_urls.as_ref().filter(|u| !u.is_empty()) {
            Some(urls) => {
                non_resource_rules.push(json!({"verbs": r.verbs, "nonResourceURLs": urls}))
            }
            None => {
                let mut v = json!({"verbs": r.verbs, "apiGroups": r.api_groups.unwrap_or_default(),
                    "resources": r.resources.unwrap_or_default()});
                if let Some(n) = r.resource_names.filter(|n| !n.is_empty()) {
                    v["resourceNames"] = json!(n);
                }
                resource_rules.push(v);
            }
        }
    }
    let incomplete = super::node::node_name(&user.name, &groups).is_some();
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!("SelfSubjectRulesReview");
    if !review.get("metadata").is_some_and(Value::is_object) {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    review["status"] = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": incomplete,
    });
    Ok(review)
}

/// `kubectl auth whoami`: the requesting user as the server sees it.
pub fn self_subject_review(user: &UserInfo) -> Value {
    let mut review = json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": {
            "username": user.name,
            "uid": user.uid,
            "groups": effective_groups(user),
        }},
    });
    if !user.extra.is_empty() {
        review["status"]["userInfo"]["extra"] = json!(user.extra);
    }
    review
}

/// `POST /apis/<group>/v1/<review>` of the authorization.k8s.io and authentication.k8s.io groups.
pub async fn review(
    authz: &Authorizer,
    user: &UserInfo,
    group: &str,
    review: &str,
    body: &[u8],
    content_type: &str,
) -> ApiResult<Value> {
    match (group, review) {
        ("authorization.k8s.io", "selfsubjectaccessreviews") => {
            self_subject_access_review(authz, user, body, content_type).await
        }
        ("authorization.k8s.io", "selfsubjectrulesreviews") => {
            self_subject_rules_review(authz, user, body, content_type).await
        }
        ("authentication.k8s.io", "selfsubjectreviews") => Ok(self_subject_review(user)),
        _ => Err(ApiError::path_not_found()),
    }
}
