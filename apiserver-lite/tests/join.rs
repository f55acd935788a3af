//! Node join on the server side, over real TLS against the real binary: `skiff-apiserver token
//! create|list|delete`, `/cacerts`, bootstrap token authentication (unknown, expired and revoked tokens
//! refused with clear messages), CertificateSigningRequests approved and signed for node client
//! certificates, denied for another node's name or `O=system:masters`, renewal by the node itself, the
//! `kubectl get csr` columns, and the expired-token cleaner.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Server, path_str, tail};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

fn token_cmd(s: &Server, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_skiff-apiserver"))
        .arg("token")
        .args(args)
        .args(["--data-dir", path_str(&s.data_dir())])
        .output()
        .expect("skiff-apiserver token")
}

fn ca(s: &Server) -> String {
    std::fs::read_to_string(s.data_dir().join("pki/ca.crt")).expect("ca.crt")
}

fn client(s: &Server, identity: Option<(&str, &str)>) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca(s).as_bytes()).expect("ca")]);
    if let Some((c, k)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{c}\n{k}").as_bytes()).expect("id"));
    }
    b.build().expect("client")
}

async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.expect("send");
    let code = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A PEM certificate request with the given CN and O values, and its key.
fn csr_pem(cn: &str, orgs: &[&str]) -> (String, KeyPair) {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    let mut dn = DistinguishedName::new();
    for o in orgs {
        dn.push(DnType::OrganizationName, *o);
    }
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    let pem = p
        .serialize_request(&key)
        .and_then(|c| c.pem())
        .expect("csr");
    (pem, key)
}

/// Create a CSR as the caller of `c` (with `bearer` if given) and wait until it is issued or refused.
async fn request(
    s: &Server,
    c: &reqwest::Client,
    bearer: Option<&str>,
    cn: &str,
    orgs: &[&str],
) -> (Value, KeyPair) {
    let (pem, key) = csr_pem(cn, orgs);
    let body = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "test-csr-"},
        "spec": {"request": base64::engine::general_purpose::STANDARD.encode(pem),
                 "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                 "usages": ["digital signature", "key encipherment", "client auth"],
                 "username": "system:admin-forged", "groups": ["system:masters"]}});
    let auth = |r: reqwest::RequestBuilder| match bearer {
        Some(t) => r.bearer_auth(t),
        None => r,
    };
    let (code, created) = call(auth(c.post(s.url(CSRS)).json(&body))).await;
    assert_eq!(code, 201, "create CSR: {created}\n{}", tail(&s.log(), 30));
    // The requestor is the authenticated user, whatever the body said.
    assert_ne!(created["spec"]["username"], "system:admin-forged");
    assert!(
        !created["spec"]["groups"]
            .as_array()
            .expect("groups")
            .contains(&json!("system:masters"))
    );
    let name = created["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, v) = call(auth(c.get(s.url(&format!("{CSRS}/{name}"))))).await;
        assert_eq!(code, 200, "get CSR: {v}");
        let done = v.pointer("/status/certificate").is_some()
            || v.pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Denied"));
        if done {
            return (v, key);
        }
        assert!(Instant::now() < deadline, "CSR {name} never settled: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn issued(v: &Value) -> String {
    let b64 = v
        .pointer("/status/certificate")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("not issued: {v}"));
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("b64"),
    )
    .expect("pem")
}

fn denial(v: &Value) -> String {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Denied"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or_else(|| panic!("not denied: {v}"))
        .to_string()
}

fn subject(pem: &str) -> (String, Vec<String>) {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
    let cert = block.parse_x509().expect("x509");
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .expect("cn")
        .to_string();
    let orgs = cert
        .subject()
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect();
    (cn, orgs)
}

#[tokio::test(flavor = "multi_thread")]
async fn token_join_csr_and_revocation() {
    let s = Server::start();
    let anon = client(&s, None);

    // /cacerts needs no credentials and is the CA the token pins.
    let r = anon.get(s.url("/cacerts")).send().await.expect("cacerts");
    assert_eq!(r.status().as_u16(), 200);
    let served = r.text().await.expect("body");
    assert_eq!(served, ca(&s));
    let (_, block) = x509_parser::pem::parse_x509_pem(served.as_bytes()).expect("pem");
    let hash = hex::encode(Sha256::digest(&block.contents));

    let out = token_cmd(&s, &["create", "--ttl", "1h", "--description", "join test"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (h, creds) = token
        .strip_prefix("K10")
        .and_then(|t| t.split_once("::"))
        .unwrap_or_else(|| panic!("token format: {token}"));
    assert_eq!(h, hash, "the token pins the served CA");
    let (id, secret) = creds.split_once('.').expect("id.secret");
    assert_eq!((id.len(), secret.len()), (6, 16));
    let secret_json = s.ok(&[
        "-n",
        "kube-system",
        "get",
        "secret",
        &format!("bootstrap-token-{id}"),
        "-o",
        "json",
    ]);
    let sj: Value = serde_json::from_str(&secret_json).expect("secret json");
    assert_eq!(sj["type"], "bootstrap.kubernetes.io/token");
    for k in [
        "token-id",
        "token-secret",
        "expiration",
        "usage-bootstrap-authentication",
        "usage-bootstrap-signing",
        "auth-extra-groups",
    ] {
        assert!(sj["data"].get(k).is_some(), "secret lacks {k}: {sj}");
    }
    let listed = token_cmd(&s, &["list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(id));

    // The bootstrap user may ask for certificates and nothing else.
    let (code, _) = call(anon.get(s.url(CSRS)).bearer_auth(creds)).await;
    assert_eq!(code, 200);
    let (code, v) = call(
        anon.get(s.url("/api/v1/namespaces/default/pods"))
            .bearer_auth(creds),
    )
    .await;
    assert_eq!(code, 403, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("system:bootstrap:{id}")),
        "{v}"
    );

    // Unknown and expired tokens: 401 with the reason.
    let (code, v) = call(anon.get(s.url(CSRS)).bearer_auth("zzzzzz.0123456789abcdef")).await;
    assert_eq!(code, 401);
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("\"zzzzzz\" is unknown or has been deleted"),
        "{v}"
    );
    s.ok(&[
        "-n",
        "kube-system",
        "create",
        "secret",
        "generic",
        "bootstrap-token-old000",
        "--type",
        "bootstrap.kubernetes.io/token",
        "--from-literal=token-id=old000",
        "--from-literal=token-secret=0123456789abcdef",
        "--from-literal=expiration=2020-01-01T00:00:00Z",
        "--from-literal=usage-bootstrap-authentication=true",
    ]);
    let (code, v) = call(anon.get(s.url(CSRS)).bearer_auth("old000.0123456789abcdef")).await;
    assert_eq!(code, 401);
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("\"old000\" expired at 2020-01-01T00:00:00Z"),
        "{v}"
    );

    // A new node: the bootstrap token gets system:node:n1 / system:nodes.
    let (v, key1) = request(&s, &anon, Some(creds), "system:node:n1", &["system:nodes"]).await;
    assert_eq!(v["spec"]["username"], format!("system:bootstrap:{id}"));
    let cert1 = issued(&v);
    assert_eq!(
        subject(&cert1),
        (
            "system:node:n1".to_string(),
            vec!["system:nodes".to_string()]
        )
    );
    assert!(v["status"]["conditions"][0]["type"] == "Approved", "{v}");

    // Node authorization applies to the issued certificate.
    let key1_pem = key1.serialize_pem();
    let n1 = client(&s, Some((&cert1, &key1_pem)));
    let (code, v) = call(
        n1.post(s.url("/api/v1/nodes"))
            .json(&json!({"metadata": {"name": "n1"}})),
    )
    .await;
    assert_eq!(code, 201, "{v}");
    let (code, _) = call(
        n1.post(s.url("/api/v1/nodes"))
            .json(&json!({"metadata": {"name": "n2"}})),
    )
    .await;
    assert_eq!(code, 403, "a node may only create its own Node");
    let (code, v) = call(
        n1.patch(s.url("/api/v1/nodes/n1"))
            .header("Content-Type", "application/merge-patch+json")
            .body(r#"{"metadata":{"labels":{"a":"b"}}}"#),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let (code, _) = call(n1.get(s.url("/api/v1/namespaces/kube-system/secrets"))).await;
    assert_eq!(code, 403);

    // Refused subjects: O=system:masters from a bootstrap token, another node's name from a node.
    let (v, _) = request(
        &s,
        &anon,
        Some(creds),
        "system:node:n3",
        &["system:masters"],
    )
    .await;
    assert!(denial(&v).contains("system:masters"), "{v}");
    assert!(v.pointer("/status/certificate").is_none());
    let (v, _) = request(&s, &n1, None, "system:node:n2", &["system:nodes"]).await;
    assert!(
        denial(&v).contains("may not request a client certificate for \"system:node:n2\""),
        "{v}"
    );
    let (v, _) = request(&s, &anon, Some(creds), "admin", &["system:nodes"]).await;
    assert!(denial(&v).contains("system:node:<name>"), "{v}");

    // Renewal: the node asks for its own name with its current certificate.
    let (v, key2) = request(&s, &n1, None, "system:node:n1", &["system:nodes"]).await;
    assert_eq!(v["spec"]["username"], "system:node:n1");
    let cert2 = issued(&v);
    assert_ne!(cert1, cert2);
    let key2_pem = key2.serialize_pem();
    let n1b = client(&s, Some((&cert2, &key2_pem)));
    let (code, _) = call(n1b.get(s.url("/api/v1/nodes/n1"))).await;
    assert_eq!(code, 200);

    // kubectl's view of the CSRs.
    let table = s.ok(&["get", "csr"]);
    let header = table.lines().next().unwrap_or("");
    for c in [
        "NAME",
        "AGE",
        "SIGNERNAME",
        "REQUESTOR",
        "REQUESTEDDURATION",
        "CONDITION",
    ] {
        assert!(header.contains(c), "{table}");
    }
    assert!(
        table.contains("Approved,Issued") && table.contains("Denied"),
        "{table}"
    );

    // Revocation: a deleted token no longer authenticates.
    let out = token_cmd(&s, &["delete", id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, v) = call(anon.get(s.url(CSRS)).bearer_auth(creds)).await;
    assert_eq!(code, 401);
    assert!(
        v["message"]
            .as_str()
            .unwrap_or("")
            .contains("unknown or has been deleted"),
        "{v}"
    );

    // The cleaner removes the expired token Secret.
    let deadline = Instant::now() + Duration::from_secs(20);
    while s
        .kubectl(&[
            "-n",
            "kube-system",
            "get",
            "secret",
            "bootstrap-token-old000",
        ])
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "the expired token was not cleaned up"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn approval_subresource_and_bad_requests() {
    let s = Server::start();
    let admin_csr = |name: &str, pem: &str, signer: &str| {
        format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {name}\nspec:\n  request: {}\n  signerName: {signer}\n  usages: [client auth]\n",
            base64::engine::general_purpose::STANDARD.encode(pem)
        )
    };
    // Another signer: left pending by the controller, approved by an admin through /approval.
    let (pem, _) = csr_pem("someone", &["devs"]);
    let f = s.write("other.yaml", &admin_csr("other", &pem, "example.com/other"));
    s.ok(&["create", "-f", path_str(&f)]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = s.ok(&[
        "get",
        "csr",
        "other",
        "-o",
        "jsonpath={.spec.username} {.status}",
    ]);
    assert!(got.starts_with("skiff-admin"), "{got}");
    s.ok(&["certificate", "approve", "other"]);
    let cond = s.ok(&[
        "get",
        "csr",
        "other",
        "-o",
        "jsonpath={.status.conditions[0].type}",
    ]);
    assert_eq!(cond, "Approved");
    // The spec is immutable.
    let err = s.fails(
        &[
            "patch",
            "csr",
            "other",
            "--type=merge",
            "-p",
            r#"{"spec":{"signerName":"example.com/x"}}"#,
        ],
        None,
    );
    assert!(err.contains("immutable"), "{err}");
    // A node client request by an admin: pending until the admin approves it, then signed.
    let (pem, _) = csr_pem("system:node:adm1", &["system:nodes"]);
    let f = s.write(
        "adm1.yaml",
        &admin_csr("adm1", &pem, "kubernetes.io/kube-apiserver-client-kubelet"),
    );
    s.ok(&["create", "-f", path_str(&f)]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let table = s.ok(&["get", "csr", "adm1"]);
    assert!(table.contains("Pending"), "{table}");
    s.ok(&["certificate", "approve", "adm1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let table = s.ok(&["get", "csr", "adm1"]);
        if table.contains("Approved,Issued") {
            break;
        }
        assert!(Instant::now() < deadline, "{table}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Garbage in spec.request is refused at create time.
    let f = s.write(
        "bad.yaml",
        &admin_csr("bad", "not a csr", "example.com/other"),
    );
    let err = s.fails(&["create", "-f", path_str(&f)], None);
    assert!(err.contains("spec.request"), "{err}");
    // A bad token format on the command line changes nothing.
    let out = token_cmd(&s, &["delete", "NOPE!"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid token id"));
    let out = token_cmd(&s, &["create", "--ttl", "5x"]);
    assert!(!out.status.success());
}
