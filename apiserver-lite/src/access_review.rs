//! `SubjectAccessReview` and `LocalSubjectAccessReview` (authorization.k8s.io/v1): "may this user do
//! that?" asked by someone allowed to `create` the review (an admin, or a component such as a webhook).
//! The subject is exactly the `spec.user` / `spec.groups` given, evaluated by the same RBAC and Node
//! authorizer chain as real requests. The self reviews are in `authz::review`.

use http::Method;
use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::authz::review::attributes;
use crate::authz::{Authorizer, Decision};
use crate::status::{ApiError, ApiResult, FieldError};

const GROUP: &str = "authorization.k8s.io";

/// Answer a review POSTed to `subjectaccessreviews` (`namespace` None) or to
/// `namespaces/<ns>/localsubjectaccessreviews`.
pub async fn subject_access_review(
    authz: &Authorizer,
    caller: &UserInfo,
    namespace: Option<&str>,
    body: &[u8],
    content_type: &str,
) -> ApiResult<Value> {
    let (resource, kind) = match namespace {
        None => ("subjectaccessreviews", "SubjectAccessReview"),
        Some(_) => ("localsubjectaccessreviews", "LocalSubjectAccessReview"),
    };
    let req = crate::authz::Request {
        method: &Method::POST,
        group: GROUP,
        resource,
        subresource: None,
        namespace,
        name: None,
        watch: false,
    };
    authz.check(caller, &req, body, content_type).await?;

    let (mut review, _) = crate::handlers::parse_body(body, content_type)?;
    if !review.is_object() {
        return Err(ApiError::bad_request(format!(
            "the body must be a {kind} object"
        )));
    }
    let spec = review.get("spec").cloned().unwrap_or(Value::Null);
    let user = spec.get("user").and_then(Value::as_str).unwrap_or("");
    let groups: Vec<String> = spec
        .get("groups")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if user.is_empty() && groups.is_empty() {
        return Err(ApiError::invalid(
            GROUP,
            kind,
            "",
            &[FieldError::required(
                "spec.user",
                "at least one of user or group must be specified",
            )],
        ));
    }
    if let Some(ns) = namespace {
        let asked = spec
            .pointer("/resourceAttributes/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        if asked != ns {
            return Err(ApiError::invalid(
                GROUP,
                kind,
                "",
                &[FieldError::invalid(
                    "spec.resourceAttributes.namespace",
                    &json!(asked),
                    "must match metadata.namespace",
                )],
            ));
        }
    }
    let subject = UserInfo {
        name: user.to_string(),
        uid: spec
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        groups: groups.clone(),
        extra: Default::default(),
    };
    let mut a = attributes(&subject, &spec)?;
    // The subject has exactly the groups the review names (no implicit system:authenticated).
    a.groups = groups;
    let status = match authz.authorize(&a).await? {
        Decision::Allow => json!({"allowed": true}),
        Decision::Deny(reason) => json!({"allowed": false, "reason": reason}),
    };
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!(kind);
    if !review.get("metadata").is_some_and(Value::is_object) {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    if let Some(ns) = namespace {
        review["metadata"]["namespace"] = json!(ns);
    }
    review["status"] = status;
    Ok(review)
}
