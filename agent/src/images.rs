//! The agent's image service: makes an image available in containerd according to a pull policy.
//!
//! containerd 1.6 has no Transfer service, so the pull is client-side: an OCI distribution client on
//! reqwest (mirrors from a k3s-style `registries.yaml`, token and basic auth), blobs verified while they
//! stream into containerd's content store, layers unpacked with `diff.Apply` into overlayfs snapshots named
//! by chain ID, and an image record pointing at the top-level manifest or index. Resolved images are cached
//! in memory, so `ensure` on a present image costs three small concurrent containerd calls.

mod auth;
mod content;
mod distribution;
mod error;
mod local;
mod manifest;
mod pull;
mod reference;
mod registries;
mod unpack;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

pub use auth::{Challenge, parse_www_authenticate};
pub use error::ImageError;
pub use reference::Reference;
pub use registries::{Endpoint, RegistryConfig};
pub use unpack::SNAPSHOTTER;

use crate::containerd::Containerd;

/// Image configs are a few KiB; this bounds a hostile one.
const MAX_CONFIG_BYTES: u64 = 8 << 20;

/// The pod's `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// Parse the Kubernetes string; an empty or missing policy defaults like the API server does:
    /// `Always` for `:latest` or untagged images, `IfNotPresent` otherwise.
    pub fn from_k8s(policy: Option<&str>, image: &str) -> Result<Self, ImageError> {
        match policy.unwrap_or_default() {
            "Always" => Ok(PullPolicy::Always),
            "IfNotPresent" => Ok(PullPolicy::IfNotPresent),
            "Never" => Ok(PullPolicy::Never),
            "" => {
                let r = Reference::parse(image)?;
                let latest = r.digest.is_none() && r.tag.as_deref().is_none_or(|t| t == "latest");
                Ok(if latest {
                    PullPolicy::Always
                } else {
                    PullPolicy::IfNotPresent
                })
            }
            other => Err(ImageError::InvalidReference {
                reference: image.to_string(),
                reason: format!("unknown imagePullPolicy {other:?}"),
            }),
        }
    }
}

/// Credentials for one registry host (`docker.io`, `127.0.0.1:5000`), e.g. from an imagePullSecret via
/// [`RegistryAuth::from_docker_config`].
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    pub registry: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// An image ready to run.
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// Normalized reference, e.g. `docker.io/library/nginx:latest`; also the containerd image name.
    pub reference: String,
    /// What the kubelet reports as `imageID`: `docker.io/library/nginx@sha256:<manifest or index digest>`.
    pub image_id: String,
    /// Snapshot parent for the container rootfs (`sha256:…`), in the [`SNAPSHOTTER`] snapshotter.
    pub chain_id: String,
    pub config: oci_spec::image::ImageConfiguration,
    /// False when nothing had to be fetched.
    pub pulled: bool,
    /// Compressed size: config plus layers.
    pub size: u64,
    /// Digest of the image config blob (what CRI calls the image id).
    pub config_digest: String,
}

type PullFuture = Shared<BoxFuture<'static, Result<PulledImage, ImageError>>>;

/// Pulls and resolves images; cheap to clone.
#[derive(Clone)]
pub struct ImageService {
    inner: Arc<Inner>,
}

struct Inner {
    containerd: Containerd,
    registries: Arc<RegistryConfig>,
    http: Result<(reqwest::Client, reqwest::Client), ImageError>,
    cache: Mutex<HashMap<String, PulledImage>>,
    inflight: Mutex<HashMap<String, PullFuture>>,
    locks: Arc<content::KeyLocks>,
}

impl ImageService {
    pub fn new(containerd: Containerd, registries: RegistryConfig) -> Self {
        let http = http_clients();
        if let Err(e) = &http {
            tracing::error!(error = %e, "cannot build the registry HTTP client; pulls will fail");
        }
        Self {
            inner: Arc::new(Inner {
                containerd,
                registries: Arc::new(registries),
                http,
                cache: Mutex::new(HashMap::new()),
                inflight: Mutex::new(HashMap::new()),
                locks: Arc::default(),
            }),
        }
    }

    /// Make the image available locally according to `policy`, pulling if needed. Concurrent calls for the
    /// same reference share one pull (with the first caller's credentials). `credentials` come from the
    /// pod's imagePullSecrets (may be empty); `registries.yaml` credentials take precedence for their hosts.
    pub async fn ensure(
        &self,
        image: &str,
        policy: PullPolicy,
        credentials: &[RegistryAuth],
    ) -> Result<PulledImage, ImageError> {
        let reference = Reference::parse(image)?;
        let local = self.present(&reference).await?;
        match (policy, local) {
            (PullPolicy::IfNotPresent | PullPolicy::Never, Some(img)) => Ok(img),
            (PullPolicy::Never, None) => Err(ImageError::NeverPull(reference.to_string())),
            (_, local) => self.pull_shared(reference, local, credentials).await,
        }
    }

    /// The image if it is present locally (cached and re-validated, or resolved from containerd).
    pub async fn present(&self, reference: &Reference) -> Result<Option<PulledImage>, ImageError> {
        let key = reference.to_string();
        let cached = lock(&self.inner.cache).get(&key).cloned();
        if let Some(img) = cached {
            if local::still_present(&self.inner.containerd, &img).await? {
                return Ok(Some(img));
            }
            lock(&self.inner.cache).remove(&key);
        }
        let found = local::lookup(&self.inner.containerd, reference).await?;
        if let Some(img) = &found {
            lock(&self.inner.cache).insert(key, img.clone());
        }
        Ok(found)
    }

    /// Forget cached resolutions (e.g. after the agent removed images).
    pub fn clear_cache(&self) {
        lock(&self.inner.cache).clear();
    }

    /// Names of every image record in containerd (the agent's namespace).
    pub async fn names(&self) -> Result<Vec<String>, ImageError> {
        use containerd_client::services::v1::ListImagesRequest;
        use containerd_client::services::v1::images_client::ImagesClient;
        let cd = &self.inner.containerd;
        let resp = ImagesClient::new(cd.channel())
            .list(cd.req(ListImagesRequest { filters: vec![] }))
            .await
            .map_err(|s| ImageError::containerd("images list", s))?;
        Ok(resp
            .into_inner()
            .images
            .into_iter()
            .map(|i| i.name)
            .collect())
    }

    /// Compressed size (config + layers) of a present image; `None` if it does not resolve.
    pub async fn size(&self, name: &str) -> Option<u64> {
        let reference = Reference::parse(name).ok()?;
        local::lookup(&self.inner.containerd, &reference)
            .await
            .ok()
            .flatten()
            .map(|i| i.size)
    }

    /// Delete an image record; containerd's GC removes its content and unpacked snapshots before this
    /// returns (unless a container's snapshot still needs them).
    pub async fn remove(&self, name: &str) -> Result<(), ImageError> {
        use containerd_client::services::v1::DeleteImageRequest;
        use containerd_client::services::v1::images_client::ImagesClient;
        let cd = &self.inner.containerd;
        let res = ImagesClient::new(cd.channel())
            .delete(cd.req(DeleteImageRequest {
                name: name.to_string(),
                sync: true,
                target: None,
            }))
            .await;
        lock(&self.inner.cache).retain(|_, img| img.reference != name);
        res.map(|_| ())
            .map_err(|s| ImageError::containerd(format!("images delete {name}"), s))
    }

    async fn pull_shared(
        &self,
        reference: Reference,
        local: Option<PulledImage>,
        credentials: &[RegistryAuth],
    ) -> Result<PulledImage, ImageError> {
        let key = reference.to_string();
        let fut = {
            let mut inflight = lock(&self.inner.inflight);
            match inflight.get(&key) {
                Some(f) => f.clone(),
                None => {
                    let (clients, inner) = (self.inner.http.clone()?, self.inner.clone());
                    let puller = pull::Puller {
                        containerd: inner.containerd.clone(),
                        http: clients.0,
                        http_insecure: clients.1,
                        registries: inner.registries.clone(),
                        credentials: credentials.to_vec(),
                        locks: inner.locks.clone(),
                    };
                    let task_key = key.clone();
                    // Spawned so the pull (and its lease) completes even if every caller goes away.
                    let handle = tokio::spawn(async move {
                        // Dropped on return and on panic alike, so a failed pull is never shared forever.
                        let _done = InflightGuard {
                            inner: inner.clone(),
                            key: task_key.clone(),
                        };
                        let result = puller.pull(&reference, local).await;
                        if let Ok(img) = &result {
                            let cached = PulledImage {
                                pulled: false,
                                ..img.clone()
                            };
                            lock(&inner.cache).insert(task_key, cached);
                        }
                        result
                    });
                    let fut: PullFuture = async move {
                        handle.await.unwrap_or_else(|e| {
                            Err(ImageError::Internal(format!("pull task: {e}")))
                        })
                    }
                    .boxed()
                    .shared();
                    inflight.insert(key, fut.clone());
                    fut
                }
            }
        };
        fut.await
    }
}

struct InflightGuard {
    inner: Arc<Inner>,
    key: String,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        lock(&self.inner.inflight).remove(&self.key);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A verifying client and one for endpoints configured with `insecure_skip_verify`.
fn http_clients() -> Result<(reqwest::Client, reqwest::Client), ImageError> {
    // reqwest is built without a default crypto provider; ring is the project's choice. Another part of the
    // agent may have installed it already, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let build = |insecure: bool| {
        reqwest::Client::builder()
            .user_agent(concat!("skiff-agent/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(15))
            .read_timeout(std::time::Duration::from_secs(120))
            .tls_danger_accept_invalid_certs(insecure)
            .build()
            .map_err(|e| ImageError::Internal(format!("building HTTP client: {e}")))
    };
    Ok((build(false)?, build(true)?))
}
