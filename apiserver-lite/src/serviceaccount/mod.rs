//! Service-account tokens as kube-apiserver issues and checks them.
//!
//! - `jwt`: the signing key (`<data-dir>/pki/sa.key`, ECDSA P-256, PKCS#8 PEM, made at first start) and the
//!   compact ES256 JWS with kube's claims.
//! - `token_request`: `POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token` (TokenRequest).
//! - [`authenticate`]: a bearer JWT signed by our key, issued by [`ISSUER`], for [`API_AUDIENCE`], whose
//!   service account (and bound pod or secret) still exists with the same uid, is
//!   `system:serviceaccount:<ns>:<name>`.
//! - `admission`: the ServiceAccount admission plugin on pod create (default service account, the
//!   `kube-api-access-*` projected volume and its mounts).
//!
//! The `kube-root-ca.crt` ConfigMap that the projected volume reads is kept by
//! `controllers::root_ca`.

pub mod admission;
pub mod discovery;
pub mod jwt;
pub mod token_request;
pub mod token_review;

use serde_json::Value;

use crate::auth::UserInfo;
use crate::resources::{Kind, by_kind};
use crate::store::{Store, StoreError};
pub use jwt::{Claims, JwtError, SigningKey};

/// The `iss` of every token this server signs and the only one it accepts (kube-apiserver's
/// `--service-account-issuer` as kubeadm sets it).
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The audience a token must carry to authenticate to this API server (kube-apiserver's `--api-audiences`
/// defaults to the issuer); also the default audience of a TokenRequest without `spec.audiences`.
pub const API_AUDIENCE: &str = ISSUER;
/// The signing key's file in the PKI directory.
pub const KEY_FILE: &str = "sa.key";
/// `spec.expirationSeconds` of a TokenRequest: default, least and most (kube's validation).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
pub const USER_PREFIX: &str = "system:serviceaccount:";
pub const ALL_GROUP: &str = "system:serviceaccounts";
pub const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
pub const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
pub const EXTRA_NODE_NAME: &str = "authentication.kubernetes.io/node-name";
pub const EXTRA_NODE_UID: &str = "authentication.kubernetes.io/node-uid";
pub const EXTRA_CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";
/// A pod deleted longer ago than this no longer vouches for its tokens (kube: 60 s).
const DELETED_POD_GRACE_SECONDS: i64 = 60;

/// Why a service-account token does not authenticate (the details go to the 401's message).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Jwt(#[from] JwtError),
    #[error("{0} has been deleted")]
    Deleted(String),
    #[error("{what} UID ({stored}) does not match claim ({claimed})")]
    UidMismatch {
        what: &'static str,
        stored: String,
        claimed: String,
    },
    #[error("token subject {0:?} does not match its kubernetes.io claims")]
    Subject(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The stored object of `kind` `ns/name`, if any.
async fn stored(
    store: &dyn Store,
    kind: Kind,
    ns: Option<&str>,
    name: &str,
) -> Result<Option<Value>, StoreError> {
    let Some(kv) = store.get(&by_kind(kind).key(ns, name)).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice(&kv.value).ok())
}

fn uid_of(v: &Value) -> &str {
    v.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Check a stored object against a `{name, uid}` claim.
fn same_object(
    what: &'static str,
    label: String,
    obj: Option<Value>,
    claimed_uid: &str,
) -> Result<Value, TokenError> {
    let obj = obj.ok_or(TokenError::Deleted(label))?;
    if uid_of(&obj) != claimed_uid {
        return Err(TokenError::UidMismatch {
            what,
            stored: uid_of(&obj).to_string(),
            claimed: claimed_uid.to_string(),
        });
    }
    Ok(obj)
}

/// Authenticate a bearer JWT (see the module doc). Three store reads at most: the service account, the
/// bound pod or secret.
pub async fn authenticate(
    key: &SigningKey,
    store: &dyn Store,
    token: &str,
) -> Result<UserInfo, TokenError> {
    authenticate_for(key, store, token, &[API_AUDIENCE])
        .await
        .map(|(user, _)| user)
}

/// [`authenticate`] for a caller that names the audiences it accepts (a TokenReview's
/// `spec.audiences`): the user and the token's audiences among `audiences` (never empty).
pub async fn authenticate_for(
    key: &SigningKey,
    store: &dyn Store,
    token: &str,
    audiences: &[&str],
) -> Result<(UserInfo, Vec<String>), TokenError> {
    let claims = key.verify(token)?;
    claims.validate(jiff::Timestamp::now().as_second(), ISSUER, audiences)?;
    let matched: Vec<String> = claims
        .aud
        .iter()
        .filter(|a| audiences.contains(&a.as_str()))
        .cloned()
        .collect();
    let k = &claims.kubernetes;
    let ns = k.namespace.as_str();
    let sa_name = k.serviceaccount.name.as_str();
    if claims.sub != format!("{USER_PREFIX}{ns}:{sa_name}") {
        return Err(TokenError::Subject(claims.sub));
    }
    let sa = stored(store, Kind::ServiceAccount, Some(ns), sa_name).await?;
    same_object(
        "service account",
        format!("service account {ns}/{sa_name}"),
        sa,
        &k.serviceaccount.uid,
    )?;
    let mut extra = std::collections::BTreeMap::new();
    if let Some(p) = &k.pod {
        let pod = stored(store, Kind::Pod, Some(ns), &p.name).await?;
        let pod = same_object("pod", format!("pod {ns}/{}", p.name), pod, &p.uid)?;
        if let Some(ts) = pod
            .pointer("/metadata/deletionTimestamp")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            && ts.as_second() + DELETED_POD_GRACE_SECONDS < jiff::Timestamp::now().as_second()
        {
            return Err(TokenError::Deleted(format!("pod {ns}/{}", p.name)));
        }
        extra.insert(EXTRA_POD_NAME.to_string(), vec![p.name.clone()]);
        extra.insert(EXTRA_POD_UID.to_string(), vec![p.uid.clone()]);
    }
    if let Some(s) = &k.secret {
        let secret = stored(store, Kind::Secret, Some(ns), &s.name).await?;
        same_object("secret", format!("secret {ns}/{}", s.name), secret, &s.uid)?;
    }
    if let Some(n) = &k.node {
        extra.insert(EXTRA_NODE_NAME.to_string(), vec![n.name.clone()]);
        extra.insert(EXTRA_NODE_UID.to_string(), vec![n.uid.clone()]);
    }
    if !claims.jti.is_empty() {
        extra.insert(
            EXTRA_CREDENTIAL_ID.to_string(),
            vec![format!("JTI={}", claims.jti)],
        );
    }
    let user = UserInfo {
        name: claims.sub.clone(),
        uid: k.serviceaccount.uid.clone(),
        groups: vec![
            ALL_GROUP.to_string(),
            format!("{ALL_GROUP}:{ns}"),
            crate::authz::AUTHENTICATED_GROUP.to_string(),
        ],
        extra,
    };
    Ok((user, matched))
}
