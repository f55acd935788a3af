//! Joining a cluster with a token, and keeping the node's client certificate fresh (TLS bootstrapping).
//!
//! With `--server https://HOST:6443 --token K10<ca sha256>::<id>.<secret>` and no kubeconfig yet, the agent
//! fetches the CA from `/cacerts` without verifying the server, refuses it unless its sha256 (over the
//! certificate's DER) is the token's, then talks only to a server that CA vouches for: it posts a
//! CertificateSigningRequest for `CN=system:node:<name>, O=system:nodes` as the bootstrap token's user,
//! waits for the certificate, and writes its kubeconfig (mode 0600). [`renew_loop`] repeats the request as
//! the node itself once 80 % of the certificate's lifetime has passed.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
const CSR_PATH: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(
        "invalid join token: want K10<sha256 hex of the CA>::<id>.<secret> (id [a-z0-9]{{6}}, secret [a-z0-9]{{16}})"
    )]
    TokenFormat,
    #[error("CA hash mismatch: expected {expected}, server presented {presented}")]
    CaMismatch { expected: String, presented: String },
    #[error("{context}: {source}")]
    Http {
        context: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{context}: HTTP {code}: {message}")]
    Refused {
        context: String,
        code: u16,
        message: String,
    },
    #[error("certificate signing request {name} was {condition}: {message}")]
    Denied {
        name: String,
        condition: String,
        message: String,
    },
    #[error("certificate signing request {0} was not signed within {1:?}")]
    Timeout(String, Duration),
    #[error("{0}")]
    Invalid(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, BootstrapError>;

/// A parsed `K10<ca hash>::<id>.<secret>` join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub ca_hash: String,
    pub id: String,
    pub secret: String,
}

fn token_part(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl JoinToken {
    pub fn parse(s: &str) -> Result<Self> {
        let rest = s
            .trim()
            .strip_prefix("K10")
            .ok_or(BootstrapError::TokenFormat)?;
        let (hash, creds) = rest.split_once("::").ok_or(BootstrapError::TokenFormat)?;
        let (id, secret) = creds.split_once('.').ok_or(BootstrapError::TokenFormat)?;
        if hash.len() != 64
            || !hash.bytes().all(|b| b.is_ascii_hexdigit())
            || !token_part(id, 6)
            || !token_part(secret, 16)
        {
            return Err(BootstrapError::TokenFormat);
        }
        Ok(JoinToken {
            ca_hash: hash.to_ascii_lowercase(),
            id: id.into(),
            secret: secret.into(),
        })
    }
}

/// sha256 hex over the DER of the first certificate in `pem`.
pub fn ca_hash(pem: &str) -> Result<String> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| BootstrapError::Invalid(format!("the server's CA is not PEM: {e}")))?;
    Ok(hex::encode(Sha256::digest(&block.contents)))
}

fn http(context: &str) -> impl FnOnce(reqwest::Error) -> BootstrapError + '_ {
    move |source| BootstrapError::Http {
        context: context.into(),
        source,
    }
}

/// Fetch `/cacerts` without verifying the server and check it against the token's hash.
pub async fn fetch_pinned_ca(server: &str, token: &JoinToken) -> Result<String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let insecure = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(http("building an HTTP client"))?;
    let ctx = format!("fetching {server}/cacerts");
    let resp = insecure
        .get(format!("{server}/cacerts"))
        .send()
        .await
        .map_err(http(&ctx))?;
    let code = resp.status().as_u16();
    let pem = resp.text().await.map_err(http(&ctx))?;
    if code != 200 {
        return Err(BootstrapError::Refused {
            context: ctx,
            code,
            message: pem.chars().take(300).collect(),
        });
    }
    let presented = ca_hash(&pem)?;
    if presented != token.ca_hash {
        return Err(BootstrapError::CaMismatch {
            expected: token.ca_hash.clone(),
            presented,
        });
    }
    Ok(pem)
}

/// A client that trusts only `ca_pem`, optionally presenting a client certificate.
fn client(ca_pem: &str, identity: Option<(&str, &str)>) -> Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).map_err(http("parsing the CA"))?;
    let mut b = reqwest::Client::builder()
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(30));
    if let Some((crt, key)) = identity {
        let id = reqwest::Identity::from_pem(format!("{crt}\n{key}").as_bytes())
            .map_err(http("loading the client certificate"))?;
        b = b.identity(id);
    }
    b.build().map_err(http("building an HTTP client"))
}

async fn json_reply(resp: reqwest::Response, context: &str) -> Result<Value> {
    let code = resp.status().as_u16();
    let body = resp.text().await.map_err(http(context))?;
    if !(200..300).contains(&code) {
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| body.chars().take(300).collect());
        return Err(BootstrapError::Refused {
            context: context.into(),
            code,
            message,
        });
    }
    serde_json::from_str(&body)
        .map_err(|e| BootstrapError::Invalid(format!("{context}: the reply is not JSON: {e}")))
}

/// Post a CSR for `node` and wait up to `wait` for its certificate. Returns (certificate PEM, key PEM).
pub async fn request_certificate(
    api: &reqwest::Client,
    server: &str,
    bearer: Option<&str>,
    node: &str,
    wait: Duration,
) -> Result<(String, String)> {
    let key = KeyPair::generate().map_err(|e| BootstrapError::Invalid(format!("key: {e}")))?;
    let mut params = CertificateParams::new(Vec::<String>::new())
        .map_err(|e| BootstrapError::Invalid(format!("CSR: {e}")))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "system:nodes");
    dn.push(DnType::CommonName, format!("system:node:{node}"));
    params.distinguished_name = dn;
    let csr = params
        .serialize_request(&key)
        .and_then(|c| c.pem())
        .map_err(|e| BootstrapError::Invalid(format!("CSR: {e}")))?;
    let body = json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "node-csr-"},
        "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode(csr.as_bytes()),
            "signerName": SIGNER,
            "usages": ["digital signature", "key encipherment", "client auth"],
        },
    });
    let with_auth = |r: reqwest::RequestBuilder| match bearer {
        Some(t) => r.bearer_auth(t),
        None => r,
    };
    let ctx = "creating the certificate signing request";
    let resp = with_auth(api.post(format!("{server}{CSR_PATH}")).json(&body))
        .send()
        .await
        .map_err(http(ctx))?;
    let created = json_reply(resp, ctx).await?;
    let name = created
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .ok_or_else(|| BootstrapError::Invalid("the created CSR has no name".into()))?
        .to_string();
    tracing::info!(csr = %name, %node, "requested a node client certificate");
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let ctx = format!("reading certificate signing request {name}");
        let resp = with_auth(api.get(format!("{server}{CSR_PATH}/{name}")))
            .send()
            .await
            .map_err(http(&ctx))?;
        let csr = json_reply(resp, &ctx).await?;
        for c in csr
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let t = c.get("type").and_then(Value::as_str).unwrap_or("");
            if t == "Denied" || t == "Failed" {
                return Err(BootstrapError::Denied {
                    name,
                    condition: t.to_lowercase(),
                    message: c
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .into(),
                });
            }
        }
        if let Some(b64) = csr
            .pointer("/status/certificate")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| BootstrapError::Invalid("status.certificate is not PEM".into()))?;
            return Ok((pem, key.serialize_pem()));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(BootstrapError::Timeout(name, wait));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The kubeconfig of a node with embedded CA, client certificate and key.
pub fn kubeconfig(server: &str, node: &str, ca: &str, crt: &str, key: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let user = format!("system:node:{node}");
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {}\n  name: skiff\ncontexts:\n- context:\n    cluster: skiff\n    user: {}\n  name: skiff\ncurrent-context: skiff\npreferences: {{}}\nusers:\n- name: {}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(ca),
        q(server),
        q(&user),
        q(&user),
        b64(crt),
        b64(key),
    )
}

/// Write `data` to `path` with mode 0600 (through a temporary file and a rename).
pub fn write_private(path: &Path, data: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |context: String| move |source| BootstrapError::Io { context, source };
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(io(format!("creating {}", d.display())))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(format!("writing {}", tmp.display())))?;
    f.write_all(data.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("renaming to {}", path.display())))
}

/// Join: pin the CA, obtain a node certificate with the bootstrap token, write the kubeconfig at `out`.
pub async fn join(server: &str, token: &str, node: &str, out: &Path) -> Result<()> {
    let token = JoinToken::parse(token)?;
    let server = server.trim_end_matches('/');
    let ca = fetch_pinned_ca(server, &token).await?;
    tracing::info!(%server, "the server's CA matches the join token");
    let api = client(&ca, None)?;
    let bearer = format!("{}.{}", token.id, token.secret);
    let (crt, key) =
        request_certificate(&api, server, Some(&bearer), node, Duration::from_secs(120)).await?;
    write_private(out, &kubeconfig(server, node, &ca, &crt, &key))?;
    tracing::info!(kubeconfig = %out.display(), "joined the cluster");
    Ok(())
}

/// Check a join without joining: the CA is the pinned one and the server accepts the token.
pub async fn check_join(server: &str, token: &str) -> Result<()> {
    let token = JoinToken::parse(token)?;
    let server = server.trim_end_matches('/');
    let ca = fetch_pinned_ca(server, &token).await?;
    let api = client(&ca, None)?;
    let ctx = "authenticating with the bootstrap token";
    let resp = api
        .get(format!("{server}{CSR_PATH}?limit=1"))
        .bearer_auth(format!("{}.{}", token.id, token.secret))
        .send()
        .await
        .map_err(http(ctx))?;
    json_reply(resp, ctx).await.map(|_| ())
}

/// What a node kubeconfig holds: (server, CA, certificate, key), PEM.
pub fn read_kubeconfig(path: &Path) -> Result<(String, String, String, String)> {
    let text = std::fs::read_to_string(path).map_err(|source| BootstrapError::Io {
        context: format!("reading {}", path.display()),
        source,
    })?;
    let v: Value = serde_saphyr::from_str(&text)
        .map_err(|e| BootstrapError::Invalid(format!("{}: {e}", path.display())))?;
    let field = |p: &str| -> Result<String> {
        v.pointer(p)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| BootstrapError::Invalid(format!("{}: no {p}", path.display())))
    };
    let decode = |p: &str| -> Result<String> {
        base64::engine::general_purpose::STANDARD
            .decode(field(p)?)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                BootstrapError::Invalid(format!("{}: {p} is not base64 PEM", path.display()))
            })
    };
    Ok((
        field("/clusters/0/cluster/server")?,
        decode("/clusters/0/cluster/certificate-authority-data")?,
        decode("/users/0/user/client-certificate-data")?,
        decode("/users/0/user/client-key-data")?,
    ))
}

/// (notBefore, notAfter) of a PEM certificate, Unix seconds.
pub fn validity(crt_pem: &str) -> Result<(i64, i64)> {
    let (_, block) = x509_parser::pem::parse_x509_pem(crt_pem.as_bytes())
        .map_err(|e| BootstrapError::Invalid(format!("client certificate: {e}")))?;
    let cert = block
        .parse_x509()
        .map_err(|e| BootstrapError::Invalid(format!("client certificate: {e}")))?;
    let v = cert.validity();
    Ok((v.not_before.timestamp(), v.not_after.timestamp()))
}

/// Renew now: a CSR as the node itself (its current certificate), then the new kubeconfig at `path`.
pub async fn renew(path: &Path, node: &str) -> Result<()> {
    let (server, ca, crt, key) = read_kubeconfig(path)?;
    let api = client(&ca, Some((&crt, &key)))?;
    let (crt, key) =
        request_certificate(&api, &server, None, node, Duration::from_secs(120)).await?;
    write_private(path, &kubeconfig(&server, node, &ca, &crt, &key))?;
    tracing::info!(kubeconfig = %path.display(), "renewed the node client certificate");
    Ok(())
}

/// When to renew a certificate valid from `nb` to `na`: after 80 % of its lifetime.
pub fn renew_at(nb: i64, na: i64) -> i64 {
    nb + (na - nb) * 4 / 5
}

/// Renew the certificate in `path` whenever 80 % of its lifetime has passed; `on_renew` runs after
/// each renewal (to swap the client). Retries failures every 30 s. Never returns.
pub async fn renew_loop(path: std::path::PathBuf, node: String, on_renew: impl Fn() + Send) {
    loop {
        let due = match read_kubeconfig(&path).and_then(|(_, _, crt, _)| validity(&crt)) {
            Ok((nb, na)) => renew_at(nb, na),
            Err(e) => {
                tracing::warn!("certificate renewal: {e}");
                tokio::time::sleep(Duration::from_secs(300)).await;
                continue;
            }
        };
        let now = jiff::Timestamp::now().as_second();
        if due > now {
            let wait = u64::try_from(due - now).unwrap_or(0).min(3600);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        match renew(&path, &node).await {
            Ok(()) => on_renew(),
            Err(e) => {
                tracing::warn!("certificate renewal failed, retrying in 30 s: {e}");
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_parsing() {
        let h = "0123456789abcdef".repeat(4);
        let t = JoinToken::parse(&format!("K10{h}::abcdef.0123456789abcdef")).expect("parse");
        assert_eq!(t.id, "abcdef");
        assert!(JoinToken::parse("abcdef.0123456789abcdef").is_err());
        assert!(JoinToken::parse(&format!("K10{h}::abcdef.short")).is_err());
        assert!(JoinToken::parse(&format!("K10{h}abcdef.0123456789abcdef")).is_err());
        assert_eq!(renew_at(0, 100), 80);
    }
}
