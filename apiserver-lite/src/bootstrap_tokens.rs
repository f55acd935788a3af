//! Bootstrap tokens (kubeadm's format) and skiff's join token that pins the cluster CA (k3s's idea).
//!
//! A bootstrap token `<id>.<secret>` (`[a-z0-9]{6}.[a-z0-9]{16}`) lives in the Secret
//! `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`. As a bearer token it
//! authenticates as `system:bootstrap:<id>` in `system:bootstrappers` (plus the groups listed in
//! `auth-extra-groups`) until its `expiration`. The join token the agents get is
//! `K10<sha256 hex of the CA certificate's DER>::<id>.<secret>`.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::auth::UserInfo;
use crate::resources::{Kind, by_kind};
use crate::store::{Store, StoreError};

pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
pub const SECRET_NAMESPACE: &str = "kube-system";
pub const SECRET_PREFIX: &str = "bootstrap-token-";
pub const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";
/// The extra group every token `skiff-apiserver token create` makes is in.
pub const DEFAULT_EXTRA_GROUP: &str = "system:bootstrappers:skiff:default-node-token";
const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "invalid token format: want K10<sha256 hex>::<id>.<secret> or <id>.<secret> with id [a-z0-9]{{6}} and secret [a-z0-9]{{16}}"
    )]
    Format,
    #[error("bootstrap token {0:?} is unknown or has been deleted")]
    Unknown(String),
    #[error("bootstrap token {id:?} expired at {expiration}")]
    Expired { id: String, expiration: String },
    #[error("bootstrap token {0:?} is not usable for authentication")]
    NotForAuthentication(String),
    #[error("reading bootstrap token: {0}")]
    Store(#[from] StoreError),
    #[error("certificate: {0}")]
    Certificate(String),
}

/// A parsed join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// sha256 hex of the CA certificate's DER; `None` for a bare `<id>.<secret>`.
    pub ca_hash: Option<String>,
    pub id: String,
    pub secret: String,
}

fn is_token_part(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Split a bearer `<id>.<secret>` if it has the bootstrap token shape.
pub fn split_bearer(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    (is_token_part(id, 6) && is_token_part(secret, 16)).then_some((id, secret))
}

impl JoinToken {
    pub fn parse(s: &str) -> Result<Self, TokenError> {
        let s = s.trim();
        let (ca_hash, creds) = match s.strip_prefix("K10") {
            Some(rest) => {
                let (hash, creds) = rest.split_once("::").ok_or(TokenError::Format)?;
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(TokenError::Format);
                }
                (Some(hash.to_ascii_lowercase()), creds)
            }
            None => (None, s),
        };
        let (id, secret) = split_bearer(creds).ok_or(TokenError::Format)?;
        Ok(JoinToken {
            ca_hash,
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    pub fn bearer(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.ca_hash {
            Some(h) => write!(f, "K10{h}::{}.{}", self.id, self.secret),
            None => write!(f, "{}.{}", self.id, self.secret),
        }
    }
}

/// sha256 hex over the DER of the first certificate in `ca_pem`.
pub fn ca_hash(ca_pem: &str) -> Result<String, TokenError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(ca_pem.as_bytes())
        .map_err(|e| TokenError::Certificate(format!("parsing the CA certificate: {e}")))?;
    Ok(hex::encode(Sha256::digest(der.as_ref())))
}

/// `len` random characters of `[a-z0-9]` (rejection sampling over random bytes, no modulo bias).
pub fn random_part(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in uuid::Uuid::new_v4().as_bytes() {
            if *b < 252 && out.len() < len {
                out.push(ALPHABET[usize::from(*b % 36)] as char);
            }
        }
    }
    out
}

/// A fresh `<id>.<secret>` pinned to `ca_pem`.
pub fn generate(ca_pem: &str) -> Result<JoinToken, TokenError> {
    Ok(JoinToken {
        ca_hash: Some(ca_hash(ca_pem)?),
        id: random_part(6),
        secret: random_part(16),
    })
}

/// The Secret that stores `token` (kubeadm's layout). `ttl` of zero means it never expires.
pub fn secret_object(token: &JoinToken, ttl: Duration, description: &str) -> Value {
    let mut data = json!({
        "token-id": token.id,
        "token-secret": token.secret,
        "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true",
        "auth-extra-groups": DEFAULT_EXTRA_GROUP,
    });
    if !ttl.is_zero() {
        let secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let exp = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(secs))
            .unwrap_or(jiff::Timestamp::MAX);
        data["expiration"] = json!(exp.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    if !description.is_empty() {
        data["description"] = json!(description);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("{SECRET_PREFIX}{}", token.id), "namespace": SECRET_NAMESPACE},
        "type": SECRET_TYPE,
        "stringData": data,
    })
}

/// A key of a stored Secret's `data` (base64) as text.
pub fn data_str(secret: &Value, key: &str) -> Option<String> {
    let b64 = secret.pointer(&format!("/data/{key}"))?.as_str()?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(raw).ok()
}

/// Whether a stored token Secret has expired (an unparsable expiration counts as expired).
pub fn expired(secret: &Value, now: jiff::Timestamp) -> Option<String> {
    let exp = data_str(secret, "expiration")?;
    match exp.parse::<jiff::Timestamp>() {
        Ok(t) if t > now => None,
        _ => Some(exp),
    }
}

/// Authenticate a bearer `<id>.<secret>` against the stored token Secrets.
pub async fn authenticate(store: &dyn Store, bearer: &str) -> Result<UserInfo, TokenError> {
    let (id, secret) = split_bearer(bearer).ok_or(TokenError::Format)?;
    let key = by_kind(Kind::Secret).key(Some(SECRET_NAMESPACE), &format!("{SECRET_PREFIX}{id}"));
    let unknown = || TokenError::Unknown(id.to_string());
    let kv = store.get(&key).await?.ok_or_else(unknown)?;
    let obj: Value = serde_json::from_slice(&kv.value).map_err(|_| unknown())?;
    let stored_secret = data_str(&obj, "token-secret").unwrap_or_default();
    let type_ok = obj.get("type").and_then(Value::as_str) == Some(SECRET_TYPE);
    // Compare without an early exit on the first differing byte.
    let same = stored_secret.len() == secret.len()
        && stored_secret
            .bytes()
            .zip(secret.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !type_ok || !same || data_str(&obj, "token-id").as_deref() != Some(id) {
        return Err(unknown());
    }
    if obj.pointer("/metadata/deletionTimestamp").is_some() {
        return Err(unknown());
    }
    if let Some(expiration) = expired(&obj, jiff::Timestamp::now()) {
        return Err(TokenError::Expired {
            id: id.to_string(),
            expiration,
        });
    }
    if data_str(&obj, "usage-bootstrap-authentication").as_deref() != Some("true") {
        return Err(TokenError::NotForAuthentication(id.to_string()));
    }
    let mut groups = vec![BOOTSTRAPPERS_GROUP.to_string()];
    for g in data_str(&obj, "auth-extra-groups")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|g| g.starts_with("system:bootstrappers:"))
    {
        if !groups.iter().any(|x| x == g) {
            groups.push(g.to_string());
        }
    }
    Ok(UserInfo {
        name: format!("system:bootstrap:{id}"),
        uid: String::new(),
        groups,
        extra: Default::default(),
    })
}

/// Delete expired token Secrets now (kube-controller-manager's `tokencleaner`). Returns how many went.
pub async fn clean_expired(store: &dyn Store) -> Result<usize, StoreError> {
    let prefix = format!(
        "{}{SECRET_PREFIX}",
        by_kind(Kind::Secret).prefix(Some(SECRET_NAMESPACE))
    );
    let (kvs, _) = store.list(&prefix).await?;
    let now = jiff::Timestamp::now();
    let mut n = 0;
    for kv in kvs {
        let Ok(obj) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        if obj.get("type").and_then(Value::as_str) != Some(SECRET_TYPE) {
            continue;
        }
        if expired(&obj, now).is_some() {
            match store.delete(&kv.key, Some(kv.mod_revision)).await {
                Ok(_) => {
                    tracing::info!(key = %kv.key, "deleted an expired bootstrap token");
                    n += 1;
                }
                Err(StoreError::NotFound(_) | StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(n)
}

/// Run [`clean_expired`] every `period` until `shutdown` turns true.
pub async fn run_cleaner(
    store: std::sync::Arc<dyn Store>,
    period: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = clean_expired(store.as_ref()).await {
            tracing::warn!("bootstrap token cleaner: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            r = shutdown.changed() => if r.is_err() || *shutdown.borrow() { return; },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        let h = "a".repeat(64);
        let t = JoinToken::parse(&format!("K10{h}::abcdef.0123456789abcdef")).expect("parse");
        assert_eq!(t.ca_hash.as_deref(), Some(h.as_str()));
        assert_eq!(t.bearer(), "abcdef.0123456789abcdef");
        assert_eq!(t.to_string(), format!("K10{h}::abcdef.0123456789abcdef"));
        assert!(JoinToken::parse("abcdef.0123456789abcdef").is_ok());
        for bad in [
            "K10abc::abcdef.0123456789abcdef",
            "abcdef.0123456789abcde",
            "ABCDEF.0123456789abcdef",
            "abcdef0123456789abcdef",
            "",
        ] {
            assert!(JoinToken::parse(bad).is_err(), "{bad}");
        }
        let r = random_part(16);
        assert!(is_token_part(&r, 16), "{r}");
    }

    #[test]
    fn expiry() {
        let tok = JoinToken::parse("abcdef.0123456789abcdef").expect("parse");
        let mut s = secret_object(&tok, Duration::from_secs(3600), "d");
        let enc = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
        let exp = s["stringData"]["expiration"]
            .as_str()
            .unwrap_or("")
            .to_string();
        s["data"] = json!({"expiration": enc(&exp)});
        assert!(expired(&s, jiff::Timestamp::now()).is_none());
        s["data"] = json!({"expiration": enc("2000-01-01T00:00:00Z")});
        assert!(expired(&s, jiff::Timestamp::now()).is_some());
    }
}
