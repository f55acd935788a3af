//! k3s-style `registries.yaml`: mirrors per registry host and credentials per endpoint host.
//!
//! ```yaml
//! mirrors:
//!   docker.io:
//!     endpoint: ["http://127.0.0.1:5000"]
//! configs:
//!   "127.0.0.1:5000":
//!     auth: {username: u, password: p}
//! ```
//! A missing file means "no mirrors, no credentials", as in k3s.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{ImageError, RegistryAuth};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    #[serde(default)]
    pub mirrors: HashMap<String, Mirror>,
    #[serde(default)]
    pub configs: HashMap<String, HostConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Mirror {
    #[serde(default)]
    pub endpoint: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct HostConfig {
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthConfig {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// base64 of `username:password`, as in a docker config.
    #[serde(default)]
    pub auth: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TlsConfig {
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// One place to fetch from: a mirror or the registry itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Base URL ending in `/v2` (no trailing slash), e.g. `http://127.0.0.1:5000/v2`.
    pub base: String,
    /// `host[:port]` of the endpoint, the key for `configs` and for pull-secret credentials.
    pub host: String,
    pub mirror: bool,
    pub insecure_skip_verify: bool,
    /// Only tried when the endpoint before it did not speak HTTP (transport error or 400): the HTTPS
    /// fallback of a loopback registry.
    pub tls_fallback: bool,
}

impl RegistryConfig {
    pub fn load(path: &Path) -> Result<Self, ImageError> {
        let err = |detail: String| ImageError::Config {
            path: path.display().to_string(),
            detail,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(err(e.to_string())),
        };
        Self::parse(&text).map_err(|e| match e {
            ImageError::Config { detail, .. } => err(detail),
            other => other,
        })
    }

    /// Parse and validate the YAML text of a registries.yaml.
    pub fn parse(text: &str) -> Result<Self, ImageError> {
        let err = |detail: String| ImageError::Config {
            path: "<inline>".to_string(),
            detail,
        };
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let config: Self = serde_saphyr::from_str(text).map_err(|e| err(e.to_string()))?;
        for (host, mirror) in &config.mirrors {
            for endpoint in &mirror.endpoint {
                parse_endpoint(endpoint, true, false).map_err(|detail| {
                    err(format!("mirrors.{host}.endpoint {endpoint:?}: {detail}"))
                })?;
            }
        }
        for (host, cfg) in &config.configs {
            if let Some(auth) = &cfg.auth {
                auth.credentials(host)
                    .map_err(|detail| err(format!("configs.{host}.auth: {detail}")))?;
            }
        }
        Ok(config)
    }

    /// Endpoints to try for `registry`, in order: its mirrors (or the `*` mirrors), then the registry itself.
    pub fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let mirror = self.mirrors.get(registry).or_else(|| self.mirrors.get("*"));
        let mut out: Vec<Endpoint> = mirror
            .into_iter()
            .flat_map(|m| m.endpoint.iter())
            .filter_map(|e| parse_endpoint(e, true, self.insecure(e)).ok())
            .collect();
        for upstream in upstream_endpoints(registry, self.insecure_host(registry)) {
            if !out.iter().any(|e| e.base == upstream.base) {
                out.push(upstream);
            }
        }
        out
    }

    /// Credentials configured for an endpoint host.
    pub fn auth_for(&self, host: &str) -> Option<RegistryAuth> {
        let auth = self.configs.get(host)?.auth.as_ref()?;
        auth.credentials(host).ok().flatten()
    }

    fn insecure_host(&self, host: &str) -> bool {
        self.configs
            .get(host)
            .and_then(|c| c.tls.as_ref())
            .is_some_and(|t| t.insecure_skip_verify)
    }

    fn insecure(&self, endpoint: &str) -> bool {
        endpoint_host(endpoint).is_some_and(|h| self.insecure_host(&h))
    }
}

impl AuthConfig {
    fn credentials(&self, host: &str) -> Result<Option<RegistryAuth>, String> {
        if let (Some(username), Some(password)) = (&self.username, &self.password) {
            return Ok(Some(RegistryAuth {
                registry: host.to_string(),
                username: username.clone(),
                password: password.clone(),
            }));
        }
        match &self.auth {
            Some(auth) => super::auth::decode_basic(auth).map(|(username, password)| {
                Some(RegistryAuth {
                    registry: host.to_string(),
                    username,
                    password,
                })
            }),
            None => Ok(None),
        }
    }
}

fn endpoint_host(endpoint: &str) -> Option<String> {
    let url = reqwest::Url::parse(endpoint).ok()?;
    let host = url.host_str()?;
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

pub(crate) fn parse_endpoint(
    endpoint: &str,
    mirror: bool,
    insecure: bool,
) -> Result<Endpoint, String> {
    let url = reqwest::Url::parse(endpoint).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http or https", url.scheme()));
    }
    let host = endpoint_host(endpoint).ok_or("no host")?;
    let path = url.path().trim_end_matches('/');
    let path = if path.ends_with("/v2") {
        path.to_string()
    } else {
        format!("{path}/v2")
    };
    Ok(Endpoint {
        base: format!("{}://{}{}", url.scheme(), host, path),
        host,
        mirror,
        insecure_skip_verify: insecure,
        tls_fallback: false,
    })
}

/// The registry itself: Docker Hub's API host for `docker.io`; for loopback registries plain HTTP, then
/// HTTPS (Docker treats 127.0.0.0/8 as insecure and falls back the same way); HTTPS otherwise.
fn upstream_endpoints(registry: &str, insecure: bool) -> Vec<Endpoint> {
    let endpoint = |base: String| Endpoint {
        base,
        host: registry.to_string(),
        mirror: false,
        insecure_skip_verify: insecure,
        tls_fallback: false,
    };
    if registry == super::reference::DEFAULT_REGISTRY {
        return vec![endpoint("https://registry-1.docker.io/v2".to_string())];
    }
    let https = endpoint(format!("https://{registry}/v2"));
    if is_loopback(registry) {
        let fallback = Endpoint {
            tls_fallback: true,
            ..https
        };
        vec![endpoint(format!("http://{registry}/v2")), fallback]
    } else {
        vec![https]
    }
}

fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> RegistryConfig {
        RegistryConfig::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn k3s_mirror_and_auth() {
        let c = parse(
            "mirrors:\n  docker.io:\n    endpoint:\n      - \"http://127.0.0.1:5000\"\n      - https://mirror.example.com/prefix/\nconfigs:\n  \"mirror.example.com\":\n    auth:\n      username: u\n      password: p\n    tls:\n      insecure_skip_verify: true\n  other.io:\n    auth:\n      auth: dTI6cDI=\n",
        );
        let eps = c.endpoints("docker.io");
        let bases: Vec<_> = eps.iter().map(|e| e.base.as_str()).collect();
        assert_eq!(
            bases,
            [
                "http://127.0.0.1:5000/v2",
                "https://mirror.example.com/prefix/v2",
                "https://registry-1.docker.io/v2"
            ]
        );
        assert!(eps[0].mirror && eps[1].mirror && !eps[2].mirror);
        assert!(eps[1].insecure_skip_verify && !eps[0].insecure_skip_verify);
        assert_eq!(eps[1].host, "mirror.example.com");
        let a = c
            .auth_for("mirror.example.com")
            .unwrap_or_else(|| panic!("auth"));
        assert_eq!((a.username.as_str(), a.password.as_str()), ("u", "p"));
        let a = c.auth_for("other.io").unwrap_or_else(|| panic!("auth"));
        assert_eq!((a.username.as_str(), a.password.as_str()), ("u2", "p2"));
        assert!(c.auth_for("nope.io").is_none());
    }

    #[test]
    fn upstream_defaults() {
        let c = RegistryConfig::default();
        assert_eq!(c.endpoints("quay.io")[0].base, "https://quay.io/v2");
        let local: Vec<_> = c
            .endpoints("127.0.0.1:5000")
            .into_iter()
            .map(|e| e.base)
            .collect();
        assert_eq!(
            local,
            ["http://127.0.0.1:5000/v2", "https://127.0.0.1:5000/v2"]
        );
        assert_eq!(c.endpoints("quay.io").len(), 1);
        assert_eq!(
            c.endpoints("localhost:5000")[0].base,
            "http://localhost:5000/v2"
        );
        assert_eq!(c.endpoints("[::1]:5000")[0].base, "http://[::1]:5000/v2");
        assert_eq!(c.endpoints("docker.io").len(), 1);
        let star = parse("mirrors:\n  \"*\":\n    endpoint: [\"http://127.0.0.1:5001/v2\"]\n");
        assert_eq!(
            star.endpoints("quay.io")[0].base,
            "http://127.0.0.1:5001/v2"
        );
        assert_eq!(parse("").endpoints("docker.io").len(), 1);
    }

    #[test]
    fn rejects_bad_config() {
        for bad in [
            "mirrors: [1, 2]",
            "mirrors:\n  docker.io:\n    endpoint: [\"ftp://x\"]\n",
            "mirrors:\n  docker.io:\n    endpoint: [\"not a url\"]\n",
            "configs:\n  x.io:\n    auth:\n      auth: \"!!notbase64\"\n",
            "mirrorz: {}\n",
            "mirrors:\n  docker.io:\n    endpoint: \"http://x\"\n",
        ] {
            assert!(
                matches!(RegistryConfig::parse(bad), Err(ImageError::Config { .. })),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn missing_file_is_empty_config() {
        let c = RegistryConfig::load(Path::new("/nonexistent/skiff/registries.yaml"));
        assert!(c.is_ok_and(|c| c.mirrors.is_empty()));
    }
}
