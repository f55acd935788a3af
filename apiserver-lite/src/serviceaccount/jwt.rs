//! Compact JWS with ES256 (ECDSA P-256, SHA-256) over the service-account claims: `header.claims.signature`,
//! each part base64url without padding, header `{"alg":"ES256","kid":<key id>}` (RFC 7515, RFC 7518 §3.4).
//!
//! The key id is what kube-apiserver puts in its tokens: base64url of the SHA-256 of the public key's DER
//! SubjectPublicKeyInfo.

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Deserializer, Serialize};
use sha2::Digest;

/// Clock skew allowed on `exp` and `nbf` (go-jose's default leeway, which kube-apiserver uses).
pub const SKEW_SECONDS: i64 = 60;

/// DER prefix of a P-256 SubjectPublicKeyInfo; the 65-byte uncompressed point follows.
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported signing algorithm")]
    Algorithm,
    #[error("invalid signature")]
    Signature,
    #[error("service account token has expired")]
    Expired,
    #[error("service account token is not valid yet")]
    NotYetValid,
    #[error("token issuer {0:?} is not accepted")]
    Issuer(String),
    #[error("token audiences {0:?} are invalid for the target audiences")]
    Audience(Vec<String>),
    #[error("signing the token failed")]
    Sign,
}

/// A `{name, uid}` reference inside the `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    pub name: String,
    pub uid: String,
}

/// The private `kubernetes.io` claim of kube-apiserver's bound tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: Ref,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Ref>,
}

/// The claims of a service-account token (kube-apiserver's `privateClaims` plus the registered ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(deserialize_with = "string_or_list")]
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
    pub nbf: i64,
    pub sub: String,
}

/// `aud` may be one string or a list (RFC 7519 §4.1.3).
fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Aud::deserialize(d)? {
        Aud::One(s) => vec![s],
        Aud::Many(v) => v,
    })
}

impl Claims {
    /// Time, issuer and audience checks: valid at `now` (± [`SKEW_SECONDS`]), issued by `issuer`, and meant
    /// for at least one of `audiences`.
    pub fn validate(&self, now: i64, issuer: &str, audiences: &[&str]) -> Result<(), JwtError> {
        if self.iss != issuer {
            return Err(JwtError::Issuer(self.iss.clone()));
        }
        if now > self.exp.saturating_add(SKEW_SECONDS) {
            return Err(JwtError::Expired);
        }
        if now < self.nbf.saturating_sub(SKEW_SECONDS) {
            return Err(JwtError::NotYetValid);
        }
        if !self.aud.iter().any(|a| audiences.contains(&a.as_str())) {
            return Err(JwtError::Audience(self.aud.clone()));
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    kid: String,
}

/// The service-account signing key (ECDSA P-256) with its public half and key id.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    kid: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish()
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl SigningKey {
    /// A new random key; returns it with its PKCS#8 DER.
    pub fn generate() -> Result<(Self, Vec<u8>)> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("generating the service-account key"))?;
        let der = doc.as_ref().to_vec();
        Ok((Self::from_pkcs8(&der)?, der))
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<Self> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| anyhow::anyhow!("not an ECDSA P-256 PKCS#8 key: {e}"))?;
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(pair.public_key().as_ref());
        let kid = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&spki));
        Ok(SigningKey { pair, kid, rng })
    }

    /// Load `path` (PKCS#8 PEM), creating it (mode 0600) on first start.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        if path.exists() {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let der = PrivatePkcs8KeyDer::from_pem_slice(&pem)
                .with_context(|| format!("{}: no PKCS#8 private key", path.display()))?;
            return Self::from_pkcs8(der.secret_pkcs8_der())
                .with_context(|| format!("loading {}", path.display()));
        }
        let (key, der) = Self::generate()?;
        crate::pki::write_private(path, pem_encode("PRIVATE KEY", &der).as_bytes())?;
        Ok(key)
    }

    /// The `kid` header of the tokens this key signs.
    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// The public key as an uncompressed SEC1 point (`04 || x || y`, 65 bytes), for the JWK
    /// (`crate::serviceaccount::discovery`).
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The public key's DER SubjectPublicKeyInfo as PEM (for `--service-account-key-file`-style consumers).
    pub fn public_pem(&self) -> String {
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(self.pair.public_key().as_ref());
        pem_encode("PUBLIC KEY", &spki)
    }

    /// Sign `claims` as a compact JWS.
    pub fn sign(&self, claims: &Claims) -> Result<String, JwtError> {
        let header = Header {
            alg: "ES256".into(),
            kid: self.kid.clone(),
        };
        let h = serde_json::to_vec(&header).map_err(|_| JwtError::Sign)?;
        let c = serde_json::to_vec(claims).map_err(|_| JwtError::Sign)?;
        let mut out = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(h),
            URL_SAFE_NO_PAD.encode(c)
        );
        let sig = self
            .pair
            .sign(&self.rng, out.as_bytes())
            .map_err(|_| JwtError::Sign)?;
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
        Ok(out)
    }

    /// Check the signature (and that the header is ours: ES256, our key id when one is named) and return the
    /// claims. Time, issuer and audience are [`Claims::validate`]'s.
    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let decode = |p: &str| URL_SAFE_NO_PAD.decode(p).map_err(|_| JwtError::Malformed);
        let header: Header =
            serde_json::from_slice(&decode(h)?).map_err(|_| JwtError::Malformed)?;
        if header.alg != "ES256" {
            return Err(JwtError::Algorithm);
        }
        if !header.kid.is_empty() && header.kid != self.kid {
            return Err(JwtError::Signature);
        }
        let signed_len = h.len() + 1 + c.len();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.pair.public_key().as_ref())
            .verify(&token.as_bytes()[..signed_len], &decode(s)?)
            .map_err(|_| JwtError::Signature)?;
        serde_json::from_slice(&decode(c)?).map_err(|_| JwtError::Malformed)
    }
}

/// Whether a bearer token has the shape of a JWS (three base64url parts, a JSON object header), so that it
/// is checked as a service-account token rather than as another kind of bearer token.
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "https://issuer.example";

    fn claims(now: i64) -> Claims {
        Claims {
            aud: vec![ISS.into()],
            exp: now + 600,
            iat: now,
            iss: ISS.into(),
            jti: "j".into(),
            kubernetes: KubernetesClaims {
                namespace: "ns".into(),
                serviceaccount: Ref {
                    name: "sa".into(),
                    uid: "u1".into(),
                },
                pod: Some(Ref {
                    name: "p".into(),
                    uid: "u2".into(),
                }),
                secret: None,
                node: None,
            },
            nbf: now,
            sub: "system:serviceaccount:ns:sa".into(),
        }
    }

    fn key() -> SigningKey {
        SigningKey::generate().expect("key").0
    }

    #[test]
    fn good_token_verifies_and_round_trips() {
        let k = key();
        let c = claims(1_000_000);
        let t = k.sign(&c).expect("sign");
        assert!(looks_like_jwt(&t));
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(t.split('.').next().expect("header"))
                .expect("b64"),
        )
        .expect("json");
        assert_eq!(
            header,
            serde_json::json!({"alg": "ES256", "kid": k.key_id()})
        );
        let got = k.verify(&t).expect("verify");
        assert_eq!(got, c);
        assert_eq!(got.validate(1_000_100, ISS, &[ISS]), Ok(()));
        // The claim name kube uses.
        let raw = URL_SAFE_NO_PAD
            .decode(t.split('.').nth(1).expect("claims"))
            .expect("b64");
        let v: serde_json::Value = serde_json::from_slice(&raw).expect("json");
        assert_eq!(v["kubernetes.io"]["pod"]["uid"], "u2");
        assert!(v["kubernetes.io"].get("node").is_none());
    }

    #[test]
    fn tampered_or_foreign_tokens_fail() {
        let k = key();
        let t = k.sign(&claims(1_000_000)).expect("sign");
        let parts: Vec<&str> = t.split('.').collect();
        // Another payload under the same signature.
        let mut other = claims(1_000_000);
        other.sub = "system:serviceaccount:kube-system:admin".into();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).expect("json")),
            parts[2]
        );
        assert_eq!(k.verify(&forged), Err(JwtError::Signature));
        // Signed by another key: different kid, and without a kid the signature fails.
        let stranger = key();
        let foreign = stranger.sign(&claims(1_000_000)).expect("sign");
        assert_eq!(k.verify(&foreign), Err(JwtError::Signature));
        let no_kid = {
            let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256"}"#);
            let p: Vec<&str> = foreign.split('.').collect();
            let signed = format!("{h}.{}", p[1]);
            let sig = stranger
                .pair
                .sign(&stranger.rng, signed.as_bytes())
                .expect("sign");
            format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
        };
        assert_eq!(k.verify(&no_kid), Err(JwtError::Signature));
        // `alg: none` and garbage.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            parts[1]
        );
        assert!(k.verify(&none).is_err());
        assert_eq!(k.verify("a.b"), Err(JwtError::Malformed));
        assert_eq!(k.verify("a.b.c.d"), Err(JwtError::Malformed));
        assert!(k.verify("eyJ.!!.x").is_err());
        assert!(!looks_like_jwt("abcdef.0123456789abcdef"));
        assert!(!looks_like_jwt("static-token"));
    }

    #[test]
    fn time_issuer_and_audience_checks() {
        let c = claims(1_000_000);
        assert_eq!(c.validate(1_000_600 + SKEW_SECONDS, ISS, &[ISS]), Ok(()));
        assert_eq!(
            c.validate(1_000_601 + SKEW_SECONDS, ISS, &[ISS]),
            Err(JwtError::Expired)
        );
        assert_eq!(
            c.validate(1_000_000 - SKEW_SECONDS - 1, ISS, &[ISS]),
            Err(JwtError::NotYetValid)
        );
        assert!(matches!(
            c.validate(1_000_000, "https://other", &[ISS]),
            Err(JwtError::Issuer(_))
        ));
        assert!(matches!(
            c.validate(1_000_000, ISS, &["vault"]),
            Err(JwtError::Audience(_))
        ));
        // `aud` as a single string parses.
        let mut v = serde_json::to_value(&c).expect("json");
        v["aud"] = serde_json::json!(ISS);
        let one: Claims = serde_json::from_value(v).expect("claims");
        assert_eq!(one.aud, vec![ISS.to_string()]);
    }

    #[test]
    fn key_file_is_created_once_and_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pki/sa.key");
        let a = SigningKey::load_or_create(&path).expect("create");
        let pem = std::fs::read_to_string(&path).expect("read");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let b = SigningKey::load_or_create(&path).expect("load");
        assert_eq!(a.key_id(), b.key_id());
        let t = a.sign(&claims(1)).expect("sign");
        assert!(b.verify(&t).is_ok());
        assert!(a.public_pem().starts_with("-----BEGIN PUBLIC KEY-----\n"));
    }
}
