//! TokenReview and service-account issuer discovery through the real server and kubectl 1.32: a token from
//! `kubectl create token` reviewed with `kubectl create -f`, audiences, garbage, who may review, and the
//! OpenID configuration and JWK set (`kubectl get --raw`, and curl for the content types).

mod common;
mod support_authz;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{Server, path_str};
use serde_json::Value;
use support_authz::{kubectl_as, kubectl_present, mint, stderr, stdout};

fn review_yaml(token: &str, audiences: &[&str]) -> String {
    let mut y = format!(
        "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: {token}\n"
    );
    if !audiences.is_empty() {
        y.push_str(&format!("  audiences: {audiences:?}\n"));
    }
    y
}

/// `kubectl create -f` a review of `token`, answered as YAML, parsed.
fn review(s: &Server, token: &str, audiences: &[&str]) -> Value {
    let file = s.write("review.yaml", &review_yaml(token, audiences));
    let out = s.ok(&["create", "-f", path_str(&file), "-o", "yaml"]);
    serde_saphyr::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn service_account_tokens_are_reviewed() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let listed = s.ok(&[
        "api-resources",
        "--api-group=authentication.k8s.io",
        "-o",
        "name",
    ]);
    assert!(
        listed
            .lines()
            .any(|l| l == "tokenreviews.authentication.k8s.io"),
        "{listed}"
    );

    let token = s.ok(&["create", "token", "default"]).trim().to_string();
    let r = review(&s, &token, &[]);
    assert_eq!(r["kind"], "TokenReview");
    assert_eq!(r["status"]["authenticated"], true, "{r:?}");
    assert_eq!(
        r["status"]["user"]["username"],
        "system:serviceaccount:default:default"
    );
    let sa: Value =
        serde_json::from_str(&s.ok(&["get", "serviceaccount", "default", "-o", "json"]))
            .expect("json");
    assert_eq!(r["status"]["user"]["uid"], sa["metadata"]["uid"]);
    assert_eq!(
        r["status"]["audiences"][0],
        "https://kubernetes.default.svc.cluster.local"
    );
    let credential = r["status"]["user"]["extra"]["authentication.kubernetes.io/credential-id"][0]
        .as_str()
        .unwrap_or("");
    assert!(credential.starts_with("JTI="), "{r:?}");

    // Audiences: the token's must meet the review's; the intersection is answered.
    let vault = s
        .ok(&[
            "create",
            "token",
            "default",
            "--audience",
            "vault",
            "--audience",
            "db",
        ])
        .trim()
        .to_string();
    let r = review(&s, &vault, &["db", "other"]);
    assert_eq!(r["status"]["authenticated"], true, "{r:?}");
    assert_eq!(r["status"]["audiences"], serde_json::json!(["db"]));
    let r = review(&s, &vault, &[]);
    assert_eq!(r["status"]["authenticated"], false, "{r:?}");

    // Garbage, and a token whose service account is gone.
    let r = review(&s, "garbage", &[]);
    assert_eq!(r["status"]["authenticated"], false);
    assert_eq!(r["status"]["error"], "invalid bearer token");
    s.ok(&["create", "serviceaccount", "temp"]);
    let temp = s.ok(&["create", "token", "temp"]).trim().to_string();
    assert_eq!(review(&s, &temp, &[])["status"]["authenticated"], true);
    s.ok(&["delete", "serviceaccount", "temp"]);
    let r = review(&s, &temp, &[]);
    assert_eq!(r["status"]["authenticated"], false);
    let error = r["status"]["error"].as_str().unwrap_or("");
    assert!(error.contains("has been deleted"), "{error}");

    // Reviewing needs `create tokenreviews` (system:auth-delegator), which a plain user lacks.
    let alice = mint(&s, "alice", &[]);
    let file = s.write("alice.yaml", &review_yaml(&token, &[]));
    let out = kubectl_as(&s, &alice, &["create", "-f", path_str(&file)]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot create resource \"tokenreviews\""),
        "{}",
        stderr(&out)
    );
    s.ok(&[
        "create",
        "clusterrolebinding",
        "alice-delegator",
        "--clusterrole=system:auth-delegator",
        "--user=alice",
    ]);
    let out = kubectl_as(
        &s,
        &alice,
        &[
            "create",
            "-f",
            path_str(&file),
            "-o",
            "jsonpath={.status.authenticated}",
        ],
    );
    assert_eq!(stdout(&out), "true", "{}", stderr(&out));
}

fn b64_json(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
}

#[test]
fn issuer_discovery_serves_the_configuration_and_the_key() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let config: Value =
        serde_json::from_str(&s.ok(&["get", "--raw", "/.well-known/openid-configuration"]))
            .expect("json");
    assert_eq!(
        config["issuer"],
        "https://kubernetes.default.svc.cluster.local"
    );
    assert_eq!(
        config["jwks_uri"],
        format!("https://127.0.0.1:{}/openid/v1/jwks", s.port)
    );
    assert_eq!(config["id_token_signing_alg_values_supported"][0], "ES256");
    assert_eq!(config["response_types_supported"][0], "id_token");
    assert_eq!(config["subject_types_supported"][0], "public");

    let jwks: Value =
        serde_json::from_str(&s.ok(&["get", "--raw", "/openid/v1/jwks"])).expect("json");
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    assert_eq!(
        (key["alg"].as_str(), key["use"].as_str()),
        (Some("ES256"), Some("sig"))
    );
    let token = s.ok(&["create", "token", "default"]).trim().to_string();
    let claims = b64_json(token.split('.').nth(1).expect("claims"));
    assert_eq!(claims["iss"], config["issuer"]);
    let header = b64_json(token.split('.').next().expect("header"));
    assert_eq!(key["kid"], header["kid"]);

    // Service accounts may read both (system:serviceaccounts is bound), with kube's content types.
    for (path, content_type) in [
        ("/.well-known/openid-configuration", "application/json"),
        ("/openid/v1/jwks", "application/jwk-set+json"),
    ] {
        let out = s.curl(&[
            path,
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-D",
            "-",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.trim_end().ends_with("200"), "{text}");
        let ct = text
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-type:")
                    .map(|v| v.trim().to_string())
            })
            .unwrap_or_default();
        assert_eq!(ct, content_type, "{text}");
        // Anonymous callers are refused.
        let out = s.curl(&[path]);
        assert!(
            String::from_utf8_lossy(&out.stdout)
                .trim_end()
                .ends_with("401")
        );
    }

    // A user without the role is refused.
    let alice = mint(&s, "alice", &[]);
    let out = kubectl_as(&s, &alice, &["get", "--raw", "/openid/v1/jwks"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("forbidden"), "{}", stderr(&out));
}
