//! A client for one registry endpoint and one repository (OCI distribution / registry v2): manifests by tag
//! or digest, blobs, and the `WWW-Authenticate` dance (Bearer tokens, anonymous or with basic credentials,
//! and plain Basic auth).

use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use super::auth::{Challenge, TokenResponse, basic_header, parse_www_authenticate};
use super::registries::Endpoint;
use super::{ImageError, RegistryAuth};

pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";
/// Manifests and indexes are small; anything bigger is hostile or broken.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
const MAX_TOKEN_BYTES: u64 = 1 << 20;
const MAX_ERROR_BYTES: u64 = 64 << 10;

pub struct RegistryClient {
    http: reqwest::Client,
    pub endpoint: Endpoint,
    repository: String,
    credentials: Option<RegistryAuth>,
    /// `Authorization` value earned by the last challenge, reused for every later request.
    authorization: Mutex<Option<String>>,
}

/// A manifest or index as the registry sent it, with its verified digest.
pub struct FetchedManifest {
    pub bytes: Bytes,
    pub content_type: Option<String>,
    pub digest: String,
}

impl RegistryClient {
    pub fn new(
        http: reqwest::Client,
        endpoint: Endpoint,
        repository: &str,
        credentials: Option<RegistryAuth>,
    ) -> Self {
        Self {
            http,
            endpoint,
            repository: repository.to_string(),
            credentials,
            authorization: Mutex::new(None),
        }
    }

    /// GET a manifest or index by tag or digest. With `expected`, the body must hash to it; a
    /// `Docker-Content-Digest` header, when present, must match the body too.
    pub async fn manifest(
        &self,
        reference: &str,
        expected: Option<&str>,
    ) -> Result<FetchedManifest, ImageError> {
        let url = format!(
            "{}/{}/manifests/{}",
            self.endpoint.base, self.repository, reference
        );
        let resp = self.get(&url, Some(MANIFEST_ACCEPT)).await?;
        let header_digest = header_str(resp.headers(), "docker-content-digest");
        let content_type = header_str(resp.headers(), CONTENT_TYPE.as_str())
            .map(|c| c.split(';').next().unwrap_or_default().trim().to_string());
        let bytes = read_limited(resp, MAX_MANIFEST_BYTES, &format!("manifest {url}")).await?;
        let digest = sha256_digest(&bytes);
        for want in [
            expected.map(str::to_string),
            header_digest.filter(|d| d.starts_with("sha256:")),
        ]
        .into_iter()
        .flatten()
        {
            if want != digest {
                return Err(ImageError::DigestMismatch {
                    what: format!("manifest {url}"),
                    expected: want,
                    actual: digest,
                });
            }
        }
        Ok(FetchedManifest {
            bytes,
            content_type,
            digest,
        })
    }

    /// GET a blob that is small enough to hold in memory (image config), verified against `digest`.
    pub async fn small_blob(
        &self,
        digest: &str,
        size: u64,
        limit: u64,
    ) -> Result<Bytes, ImageError> {
        let what = format!("blob {digest}");
        if size > limit {
            return Err(ImageError::TooLarge { what, limit });
        }
        let resp = self.blob(digest).await?;
        // The descriptor's size is the limit: a longer body is the wrong blob, not just a big one.
        let bytes = read_limited(resp, size, &what).await.map_err(|e| match e {
            ImageError::TooLarge { .. } => ImageError::DigestMismatch {
                what: what.clone(),
                expected: format!("{digest} ({size} bytes)"),
                actual: format!("a body longer than {size} bytes"),
            },
            other => other,
        })?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                what,
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Start a blob download; the caller streams and verifies the body.
    pub async fn blob(&self, digest: &str) -> Result<Response, ImageError> {
        let url = format!(
            "{}/{}/blobs/{}",
            self.endpoint.base, self.repository, digest
        );
        self.get(&url, None).await
    }

    /// GET with the current authorization; on 401 answer the challenge once and retry.
    async fn get(&self, url: &str, accept: Option<&str>) -> Result<Response, ImageError> {
        let mut answered = false;
        loop {
            let mut req = self.http.get(url);
            if let Some(accept) = accept {
                req = req.header(ACCEPT, accept);
            }
            if let Some(auth) = self.authorization.lock().await.clone() {
                req = req.header(AUTHORIZATION, auth);
            }
            let resp = req.send().await.map_err(|e| ImageError::http(url, e))?;
            if resp.status() == StatusCode::UNAUTHORIZED && !answered {
                answered = true;
                let auth = self.answer_challenge(url, resp.headers()).await?;
                *self.authorization.lock().await = Some(auth);
                continue;
            }
            return self.check_status(url, resp).await;
        }
    }

    async fn answer_challenge(&self, url: &str, headers: &HeaderMap) -> Result<String, ImageError> {
        let unauthorized = |detail: String| ImageError::Unauthorized {
            reference: format!("{}/{}", self.endpoint.host, self.repository),
            endpoint: self.endpoint.base.clone(),
            detail,
        };
        let mut challenges: Vec<Challenge> = Vec::new();
        for value in headers.get_all(WWW_AUTHENTICATE) {
            let text = value
                .to_str()
                .map_err(|_| ImageError::malformed("WWW-Authenticate", "not ASCII"))?;
            challenges.extend(
                parse_www_authenticate(text)
                    .map_err(|e| ImageError::malformed("WWW-Authenticate", e))?,
            );
        }
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            return self
                .fetch_token(bearer)
                .await
                .map(|t| format!("Bearer {t}"));
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            return match &self.credentials {
                Some(creds) => Ok(basic_header(creds)),
                None => Err(unauthorized(
                    "registry requires basic auth and no credentials are configured".into(),
                )),
            };
        }
        Err(unauthorized(format!(
            "401 from {url} without a supported WWW-Authenticate challenge"
        )))
    }

    async fn fetch_token(&self, bearer: &Challenge) -> Result<String, ImageError> {
        let realm = bearer.params.get("realm").ok_or_else(|| {
            ImageError::malformed("WWW-Authenticate", "Bearer challenge without realm")
        })?;
        let mut url = reqwest::Url::parse(realm).map_err(|e| {
            ImageError::malformed("WWW-Authenticate realm", format!("{realm:?}: {e}"))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ImageError::malformed(
                "WWW-Authenticate realm",
                format!("{realm:?} is not http(s)"),
            ));
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = bearer.params.get("service") {
                q.append_pair("service", service);
            }
            q.append_pair("scope", &format!("repository:{}:pull", self.repository));
        }
        let mut req = self.http.get(url.clone());
        if let Some(creds) = &self.credentials {
            req = req.header(AUTHORIZATION, basic_header(creds));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| ImageError::http(url.as_str(), e))?;
        let resp = self.check_status(url.as_str(), resp).await?;
        let body = read_limited(resp, MAX_TOKEN_BYTES, "token response").await?;
        let token: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| ImageError::malformed("token response", e))?;
        token
            .token
            .or(token.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ImageError::malformed("token response", "no token"))
    }

    async fn check_status(&self, url: &str, resp: Response) -> Result<Response, ImageError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let detail = error_detail(resp).await;
        let reference = format!("{}/{}", self.endpoint.host, self.repository);
        Err(match status {
            StatusCode::NOT_FOUND => ImageError::NotFound {
                reference,
                detail: format!("{url}: {detail}"),
            },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ImageError::Unauthorized {
                reference,
                endpoint: self.endpoint.base.clone(),
                detail,
            },
            _ => ImageError::Registry {
                endpoint: self.endpoint.base.clone(),
                url: url.to_string(),
                status: status.as_u16(),
                detail,
            },
        })
    }
}

/// The registry's `{"errors":[{"code","message"}]}` body, or the status text.
async fn error_detail(resp: Response) -> String {
    let status = resp.status();
    let body = read_limited(resp, MAX_ERROR_BYTES, "error body")
        .await
        .unwrap_or_default();
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let errors = parsed
        .as_ref()
        .and_then(|v| v.get("errors"))
        .and_then(|e| e.as_array())
        .map(|errs| {
            errs.iter()
                .map(|e| {
                    let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("UNKNOWN");
                    let msg = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
                    format!("{code}: {msg}")
                })
                .collect::<Vec<_>>()
                .join("; ")
        });
    errors
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| status.to_string())
}

/// Read a whole body, failing as soon as it exceeds `limit` (whatever Content-Length claims).
pub async fn read_limited(mut resp: Response, limit: u64, what: &str) -> Result<Bytes, ImageError> {
    if resp.content_length().is_some_and(|l| l > limit) {
        return Err(ImageError::TooLarge {
            what: what.to_string(),
            limit,
        });
    }
    let url = resp.url().to_string();
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| ImageError::http(&url, e))? {
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(ImageError::TooLarge {
                what: what.to_string(),
                limit,
            });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
