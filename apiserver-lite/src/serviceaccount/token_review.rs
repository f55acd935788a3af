//! `TokenReview` (authentication.k8s.io/v1, cluster-scoped, create only, never stored): "who is this
//! bearer token?", asked by webhooks and aggregated servers that delegate authentication (kube's
//! `system:auth-delegator`). The token is checked by the authenticators of real requests, in the same
//! order (static token file, bootstrap tokens, service-account JWTs), for the audiences the review asks
//! (`spec.audiences`, else the API server's own, [`super::API_AUDIENCE`]).

use serde_json::{Value, json};

use crate::auth::{TokenAuth, UserInfo};
use crate::authz::{Authorizer, effective_groups};
use crate::status::{ApiError, ApiResult};

use super::SigningKey;

const GROUP: &str = "authentication.k8s.io";
/// The error of a token no authenticator knows (kube's bearer-token authenticator's).
const INVALID_TOKEN: &str = "invalid bearer token";

/// What the authenticators answered about a token: the user and the audiences it was accepted for, or
/// why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Authenticated {
        user: UserInfo,
        audiences: Vec<String>,
    },
    Rejected(String),
}

/// The authenticators a review runs, borrowed from the server's state.
pub struct Authenticators<'a> {
    pub tokens: &'a TokenAuth,
    pub key: &'a SigningKey,
    pub authz: &'a Authorizer,
}

impl Authenticators<'_> {
    /// Authenticate `token` for `audiences` (never empty). Static and bootstrap tokens do not carry
    /// audiences: like kube's `WrapAudienceAgnosticToken`, they count as issued for the API server only.
    pub async fn authenticate(&self, token: &str, audiences: &[&str]) -> Outcome {
        let implicit = || -> Option<Vec<String>> {
            audiences
                .contains(&super::API_AUDIENCE)
                .then(|| vec![super::API_AUDIENCE.to_string()])
        };
        if let Some(user) = self.tokens.lookup(token) {
            return match implicit() {
                Some(audiences) => Outcome::Authenticated { user, audiences },
                None => Outcome::Rejected(INVALID_TOKEN.into()),
            };
        }
        let store = self.authz.store();
        if crate::bootstrap_tokens::split_bearer(token).is_some() {
            return match crate::bootstrap_tokens::authenticate(store, token).await {
                Ok(user) => match implicit() {
                    Some(audiences) => Outcome::Authenticated { user, audiences },
                    None => Outcome::Rejected(INVALID_TOKEN.into()),
                },
                // kube's bootstrap-token authenticator only logs why (the token's owner is unknown).
                Err(e) => {
                    tracing::debug!(error = %e, "token review: bootstrap token refused");
                    Outcome::Rejected(INVALID_TOKEN.into())
                }
            };
        }
        if super::jwt::looks_like_jwt(token) {
            return match super::authenticate_for(self.key, store, token, audiences).await {
                Ok((user, audiences)) => Outcome::Authenticated { user, audiences },
                Err(e) => Outcome::Rejected(format!("[{INVALID_TOKEN}, {e}]")),
            };
        }
        Outcome::Rejected(INVALID_TOKEN.into())
    }
}

/// kube's `authentication.UserInfo` of a review's status (groups with `system:authenticated`, as the
/// request authenticator adds it).
fn user_json(user: &UserInfo) -> Value {
    let mut u = json!({"username": user.name, "groups": effective_groups(user)});
    if !user.uid.is_empty() {
        u["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        u["extra"] = json!(user.extra);
    }
    u
}

/// Answer a TokenReview POSTed by `caller` (who must be allowed to `create tokenreviews`).
pub async fn token_review(
    auth: &Authenticators<'_>,
    caller: &UserInfo,
    body: &[u8],
    content_type: &str,
) -> ApiResult<Value> {
    let req = crate::authz::Request {
        method: &http::Method::POST,
        group: GROUP,
        resource: "tokenreviews",
        subresource: None,
        namespace: None,
        name: None,
        watch: false,
    };
    auth.authz.check(caller, &req, body, content_type).await?;

    let (mut review, _) = crate::handlers::parse_body(body, content_type)?;
    if !review.is_object() {
        return Err(ApiError::bad_request(
            "the body must be a TokenReview object",
        ));
    }
    if let Some(ns) = review
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|ns| !ns.is_empty())
    {
        return Err(ApiError::bad_request(format!(
            "namespace is not allowed on this type: {ns}"
        )));
    }
    let token = review
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or("");
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let asked: Vec<&str> = review
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let audiences = if asked.is_empty() {
        vec![super::API_AUDIENCE]
    } else {
        asked
    };
    let status = match auth.authenticate(token, &audiences).await {
        Outcome::Authenticated { user, audiences } => json!({
            "authenticated": true,
            "user": user_json(&user),
            "audiences": audiences,
        }),
        Outcome::Rejected(error) => {
            tracing::debug!(%error, "token review: not authenticated");
            json!({"authenticated": false, "user": {}, "error": error})
        }
    };
    review["apiVersion"] = json!("authentication.k8s.io/v1");
    review["kind"] = json!("TokenReview");
    if !review.get("metadata").is_some_and(Value::is_object) {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    review["status"] = status;
    Ok(review)
}

#[cfg(test)]
mod tests;
