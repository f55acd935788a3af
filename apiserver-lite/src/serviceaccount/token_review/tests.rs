//! The review's authentication over a real (temporary) store: service-account JWTs with their audiences
//! and bound objects, static tokens, garbage; and the request checks.

use std::sync::Arc;

use crate::auth::{TokenAuth, UserInfo};
use crate::authz::Authorizer;
use crate::resources::{Kind, by_kind};
use crate::serviceaccount::jwt::{KubernetesClaims, Ref};
use crate::serviceaccount::{API_AUDIENCE, Claims, ISSUER, SigningKey};
use crate::store::Store;
use crate::store::redb::RedbStore;
use serde_json::{Value, json};

use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    authz: Authorizer,
    key: SigningKey,
    tokens: TokenAuth,
}

impl Fixture {
    fn auth(&self) -> Authenticators<'_> {
        Authenticators {
            tokens: &self.tokens,
            key: &self.key,
            authz: &self.authz,
        }
    }

    async fn put(&self, kind: Kind, ns: &str, name: &str, uid: &str) {
        let v = json!({"metadata": {"name": name, "namespace": ns, "uid": uid}});
        self.store
            .create(
                &by_kind(kind).key(Some(ns), name),
                serde_json::to_vec(&v).expect("json"),
            )
            .await
            .expect("create");
    }

    /// A token of `default/robot` for `aud`, bound to pod `web` when `pod`.
    fn token(&self, aud: &[&str], pod: bool) -> String {
        let now = jiff::Timestamp::now().as_second();
        let claims = Claims {
            aud: aud.iter().map(|a| a.to_string()).collect(),
            exp: now + 600,
            iat: now,
            iss: ISSUER.into(),
            jti: "the-jti".into(),
            kubernetes: KubernetesClaims {
                namespace: "default".into(),
                serviceaccount: Ref {
                    name: "robot".into(),
                    uid: "sa-uid".into(),
                },
                pod: pod.then(|| Ref {
                    name: "web".into(),
                    uid: "pod-uid".into(),
                }),
                secret: None,
                node: pod.then(|| Ref {
                    name: "n1".into(),
                    uid: "node-uid".into(),
                }),
            },
            nbf: now,
            sub: "system:serviceaccount:default:robot".into(),
        };
        self.key.sign(&claims).expect("sign")
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("open store"));
    crate::authz::bootstrap::ensure_defaults(store.as_ref())
        .await
        .expect("defaults");
    let f = Fixture {
        _dir: dir,
        authz: Authorizer::new(store.clone()),
        store,
        key: SigningKey::generate().expect("key").0,
        tokens: TokenAuth::parse("static-secret,alice,1001,\"dev\"\n").expect("tokens"),
    };
    f.put(Kind::ServiceAccount, "default", "robot", "sa-uid")
        .await;
    f
}

fn admin() -> UserInfo {
    UserInfo {
        name: "admin".into(),
        groups: vec!["system:masters".into()],
        ..Default::default()
    }
}

async fn review(f: &Fixture, caller: &UserInfo, body: Value) -> crate::status::ApiResult<Value> {
    let bytes = serde_json::to_vec(&body).expect("json");
    token_review(&f.auth(), caller, &bytes, "application/json").await
}

fn body(token: &str, audiences: Option<&[&str]>) -> Value {
    let mut b = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token}});
    if let Some(a) = audiences {
        b["spec"]["audiences"] = json!(a);
    }
    b
}

#[tokio::test]
async fn a_bound_service_account_token_is_answered_with_kubes_extra() {
    let f = fixture().await;
    f.put(Kind::Pod, "default", "web", "pod-uid").await;
    let r = review(&f, &admin(), body(&f.token(&[API_AUDIENCE], true), None))
        .await
        .expect("review");
    assert_eq!(r["kind"], "TokenReview");
    let s = &r["status"];
    assert_eq!(s["authenticated"], true, "{s}");
    assert_eq!(s["audiences"], json!([API_AUDIENCE]));
    assert_eq!(s["user"]["username"], "system:serviceaccount:default:robot");
    assert_eq!(s["user"]["uid"], "sa-uid");
    assert_eq!(
        s["user"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    assert_eq!(
        s["user"]["extra"],
        json!({
            "authentication.kubernetes.io/credential-id": ["JTI=the-jti"],
            "authentication.kubernetes.io/node-name": ["n1"],
            "authentication.kubernetes.io/node-uid": ["node-uid"],
            "authentication.kubernetes.io/pod-name": ["web"],
            "authentication.kubernetes.io/pod-uid": ["pod-uid"],
        })
    );
}

#[tokio::test]
async fn audiences_must_intersect_and_the_intersection_is_answered() {
    let f = fixture().await;
    let token = f.token(&["vault", "api", API_AUDIENCE], false);
    let r = review(&f, &admin(), body(&token, Some(&["api", "other", "vault"])))
        .await
        .expect("review");
    assert_eq!(r["status"]["authenticated"], true);
    assert_eq!(r["status"]["audiences"], json!(["vault", "api"]));

    // A token for another audience does not authenticate to the API server's default audience.
    let r = review(&f, &admin(), body(&f.token(&["vault"], false), None))
        .await
        .expect("review");
    assert_eq!(r["status"]["authenticated"], false);
    let error = r["status"]["error"].as_str().expect("error");
    assert!(error.starts_with("[invalid bearer token, "), "{error}");
    assert!(error.contains("audiences"), "{error}");
    assert!(r["status"].get("audiences").is_none());
}

#[tokio::test]
async fn tokens_of_deleted_objects_and_garbage_are_not_authenticated() {
    let f = fixture().await;
    // Bound to a pod that does not exist.
    let r = review(&f, &admin(), body(&f.token(&[API_AUDIENCE], true), None))
        .await
        .expect("review");
    assert_eq!(r["status"]["authenticated"], false);
    assert_eq!(
        r["status"]["error"],
        "[invalid bearer token, pod default/web has been deleted]"
    );
    // Signed by another key.
    let other = SigningKey::generate().expect("key").0;
    let forged = f.token(&[API_AUDIENCE], false);
    let g = Fixture {
        key: other,
        ..fixture().await
    };
    let r = review(&g, &admin(), body(&forged, None))
        .await
        .expect("review");
    assert_eq!(r["status"]["authenticated"], false);
    let r = review(&f, &admin(), body("not-a-token", None))
        .await
        .expect("review");
    assert_eq!(
        r["status"],
        json!({"authenticated": false, "user": {}, "error": "invalid bearer token"})
    );
}

#[tokio::test]
async fn static_tokens_count_for_the_api_audience_only() {
    let f = fixture().await;
    let r = review(&f, &admin(), body("static-secret", None))
        .await
        .expect("review");
    assert_eq!(r["status"]["authenticated"], true);
    assert_eq!(
        r["status"]["user"],
        json!({"username": "alice", "uid": "1001", "groups": ["dev", "system:authenticated"]})
    );
    assert_eq!(r["status"]["audiences"], json!([API_AUDIENCE]));
    let r = review(&f, &admin(), body("static-secret", Some(&["vault"])))
        .await
        .expect("review");
    assert_eq!(r["status"]["authenticated"], false);
}

#[tokio::test]
async fn bootstrap_tokens_are_reviewed() {
    use base64::Engine;
    let f = fixture().await;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let secret = json!({"metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "data": {"token-id": b64("abcdef"), "token-secret": b64("0123456789abcdef"),
                 "usage-bootstrap-authentication": b64("true")}});
    f.store
        .create(
            &by_kind(Kind::Secret).key(Some("kube-system"), "bootstrap-token-abcdef"),
            serde_json::to_vec(&secret).expect("json"),
        )
        .await
        .expect("create");
    let r = review(&f, &admin(), body("abcdef.0123456789abcdef", None))
        .await
        .expect("review");
    assert_eq!(r["status"]["authenticated"], true, "{r}");
    assert_eq!(r["status"]["user"]["username"], "system:bootstrap:abcdef");
    let r = review(&f, &admin(), body("abcdef.0123456789abcdee", None))
        .await
        .expect("review");
    assert_eq!(
        r["status"],
        json!({"authenticated": false, "user": {}, "error": "invalid bearer token"})
    );
}

#[tokio::test]
async fn the_request_is_checked() {
    let f = fixture().await;
    let nobody = UserInfo {
        name: "nobody".into(),
        ..Default::default()
    };
    let e = review(&f, &nobody, body("static-secret", None))
        .await
        .expect_err("forbidden");
    assert_eq!(e.code, 403);
    assert!(e.message.contains("tokenreviews"), "{}", e.message);
    let e = review(&f, &admin(), body("", None))
        .await
        .expect_err("no token");
    assert_eq!(
        (e.code, e.message.as_str()),
        (400, "token is required for TokenReview in authentication")
    );
    let mut b = body("static-secret", None);
    b["metadata"] = json!({"namespace": "default"});
    let e = review(&f, &admin(), b).await.expect_err("namespaced");
    assert_eq!(e.code, 400);
}
