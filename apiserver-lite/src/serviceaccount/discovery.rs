//! Service-account issuer discovery (kube's `ServiceAccountIssuerDiscovery`): the OpenID Connect
//! configuration at `/.well-known/openid-configuration` and the signing key as a JWK set at
//! `/openid/v1/jwks`, so that others (cloud identity federation, `kubectl` plugins, aggregated servers) can
//! check this server's service-account tokens without asking it. Both are non-resource URLs that
//! authenticated callers may `get` when RBAC allows (`system:service-account-issuer-discovery`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{ISSUER, SigningKey};

pub const CONFIG_PATH: &str = "/.well-known/openid-configuration";
pub const JWKS_PATH: &str = "/openid/v1/jwks";
/// Content types, as kube serves them.
pub const CONFIG_CONTENT_TYPE: &str = "application/json";
pub const JWKS_CONTENT_TYPE: &str = "application/jwk-set+json";
/// Both documents change only with the key; kube lets them be cached for an hour.
pub const CACHE_CONTROL: &str = "public, max-age=3600";

/// The OpenID configuration; `server_address` is the `host:port` clients reach this server at (kube
/// derives the JWKS URI from its external address when `--service-account-jwks-uri` is not set).
pub fn openid_configuration(server_address: &str) -> Value {
    json!({
        "issuer": ISSUER,
        "jwks_uri": format!("https://{server_address}{JWKS_PATH}"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    })
}

/// The signing key as a JWK (RFC 7517, RFC 7518 §6.2.1): an EC P-256 public key, `x` and `y` the
/// big-endian coordinates in base64url, `kid` the one the tokens carry.
pub fn jwk(key: &SigningKey) -> Result<Value, String> {
    let point = key.public_key();
    if point.len() != 65 || point[0] != 0x04 {
        return Err(format!(
            "the service-account key is not an uncompressed P-256 point ({} bytes)",
            point.len()
        ));
    }
    Ok(json!({
        "use": "sig",
        "kty": "EC",
        "kid": key.key_id(),
        "crv": "P-256",
        "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    }))
}

/// The JWK set served at [`JWKS_PATH`].
pub fn jwks(key: &SigningKey) -> Result<Value, String> {
    Ok(json!({"keys": [jwk(key)?]}))
}

#[cfg(test)]
mod tests;
