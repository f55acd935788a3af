//! `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`: an `authentication.k8s.io/v1`
//! TokenRequest in, the same object with `status.token` and `status.expirationTimestamp` out (201), as
//! kube-apiserver's `TokenREST`. Authorization (`create serviceaccounts/token`) and NodeRestriction have run
//! before this.

use serde_json::{Value, json};

use super::jwt::{Claims, KubernetesClaims, Ref};
use super::{
    API_AUDIENCE, DEFAULT_EXPIRATION_SECONDS, ISSUER, MAX_EXPIRATION_SECONDS,
    MIN_EXPIRATION_SECONDS, SigningKey, USER_PREFIX,
};
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult, FieldError};

const GROUP: &str = "authentication.k8s.io";
const API_VERSION: &str = "authentication.k8s.io/v1";
const KIND: &str = "TokenRequest";

/// The request's spec with kube's defaults: audiences (default `[ISSUER]`), expiration (default 3600 s).
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub audiences: Vec<String>,
    pub expiration_seconds: i64,
    /// `{kind, apiVersion, name, uid}` as sent.
    pub bound_object_ref: Option<Value>,
}

/// Decode and validate a TokenRequest body for service account `name`.
pub fn parse(name: &str, body: &Value) -> ApiResult<Spec> {
    if let Some(k) = body.get("kind").and_then(Value::as_str)
        && k != KIND
    {
        return Err(ApiError::bad_request(format!(
            "expected a TokenRequest, got kind {k:?}"
        )));
    }
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let mut audiences = Vec::new();
    match spec.get("audiences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            for v in a {
                let s = v.as_str().ok_or_else(|| {
                    ApiError::bad_request("spec.audiences: expected a list of strings")
                })?;
                audiences.push(s.to_string());
            }
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "spec.audiences: expected a list of strings",
            ));
        }
    }
    if audiences.is_empty() {
        audiences.push(API_AUDIENCE.to_string());
    }
    let expiration_seconds = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_EXPIRATION_SECONDS,
        Some(v) => v
            .as_i64()
            .ok_or_else(|| ApiError::bad_request("spec.expirationSeconds: expected an integer"))?,
    };
    let mut errs = Vec::new();
    if expiration_seconds < MIN_EXPIRATION_SECONDS {
        errs.push(FieldError::invalid(
            "spec.expirationSeconds",
            &json!(expiration_seconds),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration_seconds > MAX_EXPIRATION_SECONDS {
        errs.push(FieldError::invalid(
            "spec.expirationSeconds",
            &json!(expiration_seconds),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid(GROUP, KIND, name, &errs));
    }
    let bound_object_ref = spec.get("boundObjectRef").filter(|r| !r.is_null()).cloned();
    Ok(Spec {
        audiences,
        expiration_seconds,
        bound_object_ref,
    })
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// The service account a pod runs as (pods stored before ServiceAccount admission have none: `default`).
pub fn pod_service_account(pod: &Value) -> &str {
    match s(pod, "/spec/serviceAccountName") {
        "" => "default",
        n => n,
    }
}

/// Issue a token for `ns/name` (see the module doc). Returns the TokenRequest to answer with.
pub async fn create(
    api: &Api,
    key: &SigningKey,
    ns: &str,
    name: &str,
    body: &Value,
) -> ApiResult<Value> {
    let spec = parse(name, body)?;
    let sa = api
        .get(by_kind(Kind::ServiceAccount), Some(ns), name)
        .await?;
    let mut kube = KubernetesClaims {
        namespace: ns.to_string(),
        serviceaccount: Ref {
            name: name.to_string(),
            uid: s(&sa, "/metadata/uid").to_string(),
        },
        pod: None,
        secret: None,
        node: None,
    };
    if let Some(r) = &spec.bound_object_ref {
        bind(api, ns, name, r, &mut kube).await?;
    }
    let now = jiff::Timestamp::now();
    let claims = Claims {
        aud: spec.audiences.clone(),
        exp: now.as_second() + spec.expiration_seconds,
        iat: now.as_second(),
        iss: ISSUER.to_string(),
        jti: uuid::Uuid::new_v4().to_string(),
        kubernetes: kube,
        nbf: now.as_second(),
        sub: format!("{USER_PREFIX}{ns}:{name}"),
    };
    let token = key
        .sign(&claims)
        .map_err(|e| ApiError::internal(format!("signing the token: {e}")))?;
    let expires = jiff::Timestamp::from_second(claims.exp)
        .map_err(|e| ApiError::internal(format!("token expiry: {e}")))?;
    let mut out_spec = json!({
        "audiences": spec.audiences,
        "expirationSeconds": spec.expiration_seconds,
    });
    if let Some(r) = spec.bound_object_ref {
        out_spec["boundObjectRef"] = r;
    }
    Ok(json!({
        "kind": KIND,
        "apiVersion": API_VERSION,
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": null},
        "spec": out_spec,
        "status": {
            "token": token,
            "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        },
    }))
}

/// Resolve `boundObjectRef` (a Pod or a Secret of this namespace) into the claims, with kube's errors.
async fn bind(
    api: &Api,
    ns: &str,
    sa_name: &str,
    r: &Value,
    kube: &mut KubernetesClaims,
) -> ApiResult<()> {
    let (kind, api_version, obj_name, want_uid) = (
        s(r, "/kind"),
        s(r, "/apiVersion"),
        s(r, "/name"),
        s(r, "/uid"),
    );
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let (uid, plural) = match (group, kind) {
        ("", "Pod") => {
            let pod = api.get(by_kind(Kind::Pod), Some(ns), obj_name).await?;
            if pod_service_account(&pod) != sa_name {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount {sa_name:?} to pod running with different serviceaccount name."
                )));
            }
            let uid = s(&pod, "/metadata/uid").to_string();
            kube.pod = Some(Ref {
                name: obj_name.to_string(),
                uid: uid.clone(),
            });
            let node_name = s(&pod, "/spec/nodeName");
            if !node_name.is_empty() {
                match api.get(by_kind(Kind::Node), None, node_name).await {
                    Ok(node) => {
                        kube.node = Some(Ref {
                            name: node_name.to_string(),
                            uid: s(&node, "/metadata/uid").to_string(),
                        })
                    }
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            (uid, "Pod")
        }
        ("", "Secret") => {
            let secret = api.get(by_kind(Kind::Secret), Some(ns), obj_name).await?;
            let uid = s(&secret, "/metadata/uid").to_string();
            kube.secret = Some(Ref {
                name: obj_name.to_string(),
                uid: uid.clone(),
            });
            (uid, "Secret")
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "cannot bind token to object of type {group}/{version}, Kind={kind}"
            )));
        }
    };
    if !want_uid.is_empty() && want_uid != uid {
        return Err(ApiError::conflict(
            "",
            plural,
            obj_name,
            &format!(
                "the UID in the bound object reference ({want_uid}) does not match the UID in record. The object might have been deleted and then recreated"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_defaults_and_validation() {
        let s = parse("default", &json!({"spec": {}})).expect("spec");
        assert_eq!(s.audiences, vec![ISSUER.to_string()]);
        assert_eq!(s.expiration_seconds, 3600);
        assert!(s.bound_object_ref.is_none());
        let s = parse(
            "default",
            &json!({"kind": "TokenRequest", "spec": {"audiences": ["vault"], "expirationSeconds": 600,
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"}}}),
        )
        .expect("spec");
        assert_eq!(s.audiences, vec!["vault".to_string()]);
        assert_eq!(s.expiration_seconds, 600);
        assert!(s.bound_object_ref.is_some());
        let e = parse("default", &json!({"spec": {"expirationSeconds": 599}})).expect_err("short");
        assert_eq!(e.code, 422);
        assert!(
            e.message
                .contains("may not specify a duration less than 10 minutes"),
            "{}",
            e.message
        );
        let e = parse(
            "d",
            &json!({"spec": {"expirationSeconds": (1i64 << 32) + 1}}),
        )
        .expect_err("long");
        assert_eq!(e.code, 422);
        assert_eq!(
            parse("d", &json!({"kind": "Pod"})).expect_err("kind").code,
            400
        );
    }

    #[test]
    fn pod_service_account_defaults() {
        assert_eq!(pod_service_account(&json!({"spec": {}})), "default");
        assert_eq!(
            pod_service_account(&json!({"spec": {"serviceAccountName": "x"}})),
            "x"
        );
    }
}
