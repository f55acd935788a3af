//! Registry authentication: `WWW-Authenticate` challenges, docker config JSON from imagePullSecrets,
//! basic credentials.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::{ImageError, RegistryAuth};

/// One challenge of a `WWW-Authenticate` header: scheme (lowercased) and its parameters (keys lowercased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: HashMap<String, String>,
}

/// Parse a `WWW-Authenticate` header value (RFC 7235): one or more challenges, each `scheme` followed by
/// comma-separated `key=value` or `key="quoted value"` parameters.
pub fn parse_www_authenticate(header: &str) -> Result<Vec<Challenge>, String> {
    let mut out: Vec<Challenge> = Vec::new();
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    loop {
        p.skip_ws_and_commas();
        if p.done() {
            break;
        }
        let token = p.token();
        if token.is_empty() {
            return Err(format!(
                "unexpected character at offset {} in {header:?}",
                p.i
            ));
        }
        p.skip_ws();
        if p.peek() == Some(b'=') && !out.is_empty() {
            // key=value belonging to the current challenge.
            p.i += 1;
            p.skip_ws();
            let value = p.value()?;
            if let Some(last) = out.last_mut() {
                last.params.insert(token.to_ascii_lowercase(), value);
            }
            continue;
        }
        // A new challenge. Token68 forms (`Basic abc==`) carry no parameters we need; skip them.
        out.push(Challenge {
            scheme: token.to_ascii_lowercase(),
            params: HashMap::new(),
        });
    }
    if out.is_empty() {
        return Err("empty WWW-Authenticate header".to_string());
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    fn skip_ws_and_commas(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }
    fn token(&mut self) -> String {
        let start = self.i;
        while let Some(c) = self.peek() {
            let tchar = c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&c);
            if !tchar {
                break;
            }
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }
    fn value(&mut self) -> Result<String, String> {
        if self.peek() != Some(b'"') {
            // Unquoted: registries send URLs here too (`realm=https://…`), so read up to a separator.
            let start = self.i;
            while let Some(c) = self.peek() {
                if matches!(c, b',' | b' ' | b'\t' | b'"') {
                    break;
                }
                self.i += 1;
            }
            return String::from_utf8(self.s[start..self.i].to_vec())
                .map_err(|_| "WWW-Authenticate value is not UTF-8".to_string());
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err("unterminated quoted string in WWW-Authenticate".to_string()),
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = self.peek().ok_or("dangling escape in WWW-Authenticate")?;
                    out.push(c);
                    self.i += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        String::from_utf8(out).map_err(|_| "WWW-Authenticate value is not UTF-8".to_string())
    }
}

/// Decode a docker-config style `auth` field: base64 of `username:password`.
pub fn decode_basic(auth: &str) -> Result<(String, String), String> {
    let raw = STANDARD
        .decode(auth.trim())
        .map_err(|e| format!("auth is not base64: {e}"))?;
    let text = String::from_utf8(raw).map_err(|_| "auth is not UTF-8".to_string())?;
    let (user, pass) = text
        .split_once(':')
        .ok_or("auth is not username:password")?;
    Ok((user.to_string(), pass.to_string()))
}

pub fn basic_header(auth: &RegistryAuth) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", auth.username, auth.password))
    )
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    auth: Option<String>,
}

impl RegistryAuth {
    /// Credentials from the content of a `kubernetes.io/dockerconfigjson` secret (`{"auths": {...}}`) or a
    /// legacy `kubernetes.io/dockercfg` one (the `auths` map itself). Registry keys are normalized to
    /// `host[:port]`; Docker Hub's `https://index.docker.io/v1/` becomes `docker.io`.
    pub fn from_docker_config(json: &[u8]) -> Result<Vec<RegistryAuth>, ImageError> {
        let value: serde_json::Value = serde_json::from_slice(json)
            .map_err(|e| ImageError::malformed("docker config JSON", e))?;
        let config: DockerConfig = if value.get("auths").is_some() {
            serde_json::from_value(value)
        } else {
            serde_json::from_value(serde_json::json!({ "auths": value }))
        }
        .map_err(|e| ImageError::malformed("docker config JSON", e))?;
        let mut out = Vec::new();
        for (key, entry) in config.auths {
            let (username, password) = match (entry.username, entry.password, entry.auth) {
                (Some(u), Some(p), _) => (u, p),
                (_, _, Some(auth)) => decode_basic(&auth)
                    .map_err(|e| ImageError::malformed(format!("docker config entry {key}"), e))?,
                _ => continue,
            };
            out.push(RegistryAuth {
                registry: normalize_registry_key(&key),
                username,
                password,
            });
        }
        out.sort_by(|a, b| a.registry.cmp(&b.registry));
        Ok(out)
    }
}

/// `https://index.docker.io/v1/` → `docker.io`, `https://quay.io` → `quay.io`, `127.0.0.1:5000` unchanged.
pub fn normalize_registry_key(key: &str) -> String {
    let key = key.trim();
    let no_scheme = key.split_once("://").map_or(key, |(_, rest)| rest);
    let host = no_scheme.split('/').next().unwrap_or(no_scheme);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        h => h.to_string(),
    }
}

#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenge() {
        let c = parse_www_authenticate(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].params["realm"], "https://auth.docker.io/token");
        assert_eq!(c[0].params["service"], "registry.docker.io");
        assert_eq!(c[0].params["scope"], "repository:library/nginx:pull");
    }

    #[test]
    fn parses_multiple_and_odd_challenges() {
        let c = parse_www_authenticate(
            r#"Basic realm="Registry Realm", Bearer realm=https://t.example/token , error="insufficient_scope", scope="a\"b""#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].params["realm"], "Registry Realm");
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].params["realm"], "https://t.example/token");
        assert_eq!(c[1].params["error"], "insufficient_scope");
        assert_eq!(c[1].params["scope"], "a\"b");
        let c = parse_www_authenticate("BASIC").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c[0].scheme, "basic");
        assert!(c[0].params.is_empty());
        let c = parse_www_authenticate("Negotiate abc123==").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c[0].scheme, "negotiate");
    }

    #[test]
    fn rejects_malformed_challenges() {
        for bad in [
            "",
            "   ",
            r#"Bearer realm="unterminated"#,
            "Bearer realm=\"x\\",
            "=x",
            "Bearer @",
        ] {
            assert!(parse_www_authenticate(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn docker_config_json() {
        let json = br#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},"127.0.0.1:5000":{"username":"a","password":"b:c"},"x.io":{}}}"#;
        let auths = RegistryAuth::from_docker_config(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(auths.len(), 2);
        assert_eq!(auths[0].registry, "127.0.0.1:5000");
        assert_eq!(auths[0].password, "b:c");
        assert_eq!(auths[1].registry, "docker.io");
        assert_eq!(
            (auths[1].username.as_str(), auths[1].password.as_str()),
            ("u", "p")
        );
        let legacy = RegistryAuth::from_docker_config(br#"{"quay.io":{"auth":"dTpw"}}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(legacy[0].registry, "quay.io");
        assert!(RegistryAuth::from_docker_config(b"{not json").is_err());
        assert!(RegistryAuth::from_docker_config(br#"{"auths":{"a":{"auth":"***"}}}"#).is_err());
        assert!(RegistryAuth::from_docker_config(br#"{"auths":[1]}"#).is_err());
    }
}
