use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

use super::*;
use crate::serviceaccount::{Claims, jwt::KubernetesClaims, jwt::Ref};

fn key() -> SigningKey {
    SigningKey::generate().expect("key").0
}

fn b64(v: &Value) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(v.as_str().expect("a string"))
        .expect("base64url")
}

#[test]
fn configuration_names_the_issuer_and_the_jwks_uri() {
    let c = openid_configuration("10.0.0.1:6443");
    assert_eq!(
        c,
        json!({
            "issuer": ISSUER,
            "jwks_uri": "https://10.0.0.1:6443/openid/v1/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
    );
}

#[test]
fn jwk_is_the_p256_public_key_with_the_tokens_kid() {
    let k = key();
    let set = jwks(&k).expect("jwks");
    let keys = set["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    let jwk = &keys[0];
    for (field, want) in [
        ("kty", "EC"),
        ("crv", "P-256"),
        ("alg", "ES256"),
        ("use", "sig"),
    ] {
        assert_eq!(jwk[field], want, "{field}");
    }
    assert_eq!(jwk["kid"], k.key_id());
    let (x, y) = (b64(&jwk["x"]), b64(&jwk["y"]));
    assert_eq!((x.len(), y.len()), (32, 32));
    let mut point = vec![0x04];
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    assert_eq!(point, k.public_key());
    // Another key gives another JWK.
    assert_ne!(jwk["x"], jwks(&key()).expect("jwks")["keys"][0]["x"]);
}

#[test]
fn a_token_verifies_against_the_served_jwk() {
    let k = key();
    let claims = Claims {
        aud: vec![ISSUER.into()],
        exp: 2_000_000_600,
        iat: 2_000_000_000,
        iss: ISSUER.into(),
        jti: "j".into(),
        kubernetes: KubernetesClaims {
            namespace: "default".into(),
            serviceaccount: Ref {
                name: "default".into(),
                uid: "u".into(),
            },
            pod: None,
            secret: None,
            node: None,
        },
        nbf: 2_000_000_000,
        sub: "system:serviceaccount:default:default".into(),
    };
    let token = k.sign(&claims).expect("sign");
    // What a relying party does: pick the JWK by the token's kid, rebuild the point, check the signature.
    let parts: Vec<&str> = token.split('.').collect();
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).expect("b64")).expect("json");
    let set = jwks(&k).expect("jwks");
    let jwk = set["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|j| j["kid"] == header["kid"])
        .expect("a JWK with the token's kid");
    let mut point = vec![0x04];
    point.extend(b64(&jwk["x"]));
    point.extend(b64(&jwk["y"]));
    let signed = format!("{}.{}", parts[0], parts[1]);
    let sig = URL_SAFE_NO_PAD.decode(parts[2]).expect("b64");
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point);
    assert!(public.verify(signed.as_bytes(), &sig).is_ok());
    // A changed payload does not verify.
    let forged = format!("{}.{}x", parts[0], parts[1]);
    assert!(public.verify(forged.as_bytes(), &sig).is_err());
}
