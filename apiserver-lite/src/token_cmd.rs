//! `skiff-apiserver token create|list|delete`: bootstrap tokens managed through the running server's API
//! with an admin kubeconfig (default `<data-dir>/admin.kubeconfig`), so the server need not be stopped.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::Value;

use crate::bootstrap_tokens::{
    self, JoinToken, SECRET_NAMESPACE, SECRET_PREFIX, SECRET_TYPE, data_str,
};

/// An HTTPS client for the server named in an admin kubeconfig, and that server's URL and CA.
pub struct AdminClient {
    http: reqwest::Client,
    pub server: String,
    pub ca_pem: String,
}

fn b64_field(v: &Value, p: &str, path: &Path) -> Result<String> {
    let s = v
        .pointer(p)
        .and_then(Value::as_str)
        .with_context(|| format!("{}: no {p}", path.display()))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(s)
        .with_context(|| format!("{}: {p} is not base64", path.display()))?;
    String::from_utf8(raw).with_context(|| format!("{}: {p} is not text", path.display()))
}

impl AdminClient {
    pub fn from_kubeconfig(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the admin kubeconfig {}", path.display()))?;
        let v: Value =
            serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let server = v
            .pointer("/clusters/0/cluster/server")
            .and_then(Value::as_str)
            .with_context(|| format!("{}: no server", path.display()))?
            .trim_end_matches('/')
            .to_string();
        let ca_pem = b64_field(&v, "/clusters/0/cluster/certificate-authority-data", path)?;
        let crt = b64_field(&v, "/users/0/user/client-certificate-data", path)?;
        let key = b64_field(&v, "/users/0/user/client-key-data", path)?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes())?])
            .identity(reqwest::Identity::from_pem(
                format!("{crt}\n{key}").as_bytes(),
            )?)
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the HTTPS client")?;
        Ok(AdminClient {
            http,
            server,
            ca_pem,
        })
    }

    async fn call(&self, req: reqwest::RequestBuilder, what: &str) -> Result<Value> {
        let resp = req
            .send()
            .await
            .with_context(|| format!("{what}: cannot reach {}", self.server))?;
        let code = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if !(200..300).contains(&code) {
            let msg = v.get("message").and_then(Value::as_str).unwrap_or(&body);
            bail!("{what}: HTTP {code}: {msg}");
        }
        Ok(v)
    }

    fn secrets_url(&self) -> String {
        format!(
            "{}/api/v1/namespaces/{SECRET_NAMESPACE}/secrets",
            self.server
        )
    }
}

/// Create a token valid for `ttl` (zero: forever) and return the join token.
pub async fn create(c: &AdminClient, ttl: Duration, description: &str) -> Result<JoinToken> {
    let token = bootstrap_tokens::generate(&c.ca_pem)?;
    let obj = bootstrap_tokens::secret_object(&token, ttl, description);
    c.call(
        c.http.post(c.secrets_url()).json(&obj),
        "creating the bootstrap token",
    )
    .await?;
    Ok(token)
}

/// One line per token: ID, TTL left, EXPIRES, DESCRIPTION (like `kubeadm token list`).
pub async fn list(c: &AdminClient) -> Result<Vec<[String; 4]>> {
    let v = c
        .call(
            c.http.get(format!(
                "{}?fieldSelector=type%3D{}",
                c.secrets_url(),
                SECRET_TYPE.replace('/', "%2F")
            )),
            "listing bootstrap tokens",
        )
        .await?;
    let now = jiff::Timestamp::now();
    let mut out = Vec::new();
    for s in v
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = data_str(s, "token-id").unwrap_or_default();
        let exp = data_str(s, "expiration");
        let ttl = match exp.as_deref().map(str::parse::<jiff::Timestamp>) {
            None => "<forever>".to_string(),
            Some(Ok(t)) if t > now => {
                crate::resources::table::human_duration(t.as_second() - now.as_second())
            }
            Some(_) => "<expired>".to_string(),
        };
        out.push([
            id,
            ttl,
            exp.unwrap_or_else(|| "<never>".into()),
            data_str(s, "description").unwrap_or_default(),
        ]);
    }
    Ok(out)
}

/// Delete (revoke) the token with `id` (a full `<id>.<secret>` or join token also works).
pub async fn delete(c: &AdminClient, id: &str) -> Result<()> {
    let id = match JoinToken::parse(id) {
        Ok(t) => t.id,
        Err(_) => id.to_string(),
    };
    if id.len() != 6
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        bail!("invalid token id {id:?}: want [a-z0-9]{{6}}");
    }
    c.call(
        c.http
            .delete(format!("{}/{SECRET_PREFIX}{id}", c.secrets_url())),
        &format!("deleting bootstrap token {id}"),
    )
    .await?;
    Ok(())
}

/// Parse a TTL such as `24h`, `30m`, `90s`, `2h30m` or `0` (never expires).
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0u64;
    let mut num = String::new();
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            num.push(ch);
            continue;
        }
        let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
        num.clear();
        total += n * match ch {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            'd' => 86400,
            _ => return Err(format!("invalid duration {s:?}: units are d, h, m, s")),
        };
    }
    if !num.is_empty() || total == 0 {
        return Err(format!(
            "invalid duration {s:?}: e.g. 24h, 30m, 0 for never"
        ));
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl() {
        assert_eq!(parse_ttl("24h"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_ttl("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_ttl("0"), Ok(Duration::ZERO));
        assert!(parse_ttl("10").is_err());
        assert!(parse_ttl("5x").is_err());
        assert!(parse_ttl("").is_err());
    }
}
