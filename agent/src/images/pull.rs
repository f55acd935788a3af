//! One pull: resolve the reference on the first endpoint that answers, pick the host's manifest, fetch the
//! config, stream layers into the content store (≤ 3 at a time) while unpacking them in order, then write
//! config, manifest and index with containerd's GC labels and create the image record — all under one lease.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::{CreateImageRequest, Image, UpdateImageRequest};
use containerd_client::types::Descriptor;
use oci_spec::image::{ImageConfiguration, ImageManifest};
use tokio::sync::Semaphore;
use tonic::Code;

use super::content::{self, KeyLocks, Source};
use super::distribution::{self, FetchedManifest, RegistryClient};
use super::manifest::{self, Parsed};
use super::registries::RegistryConfig;
use super::{ImageError, MAX_CONFIG_BYTES, PulledImage, Reference, RegistryAuth, auth, unpack};
use crate::containerd::{Containerd, Lease};

const LAYER_CONCURRENCY: usize = 3;
/// A layer download that fails on the network or with a 5xx is tried this many times in all.
const DOWNLOAD_ATTEMPTS: u64 = 3;
/// A lease outlives a crashed agent by at most this long.
const LEASE_EXPIRY: Duration = Duration::from_secs(3600);

pub struct Puller {
    pub containerd: Containerd,
    pub http: reqwest::Client,
    pub http_insecure: reqwest::Client,
    pub registries: Arc<RegistryConfig>,
    pub credentials: Vec<RegistryAuth>,
    pub locks: Arc<KeyLocks>,
}

/// A manifest-level blob to store after the layers: bytes, descriptor, GC labels.
struct Stored {
    bytes: Bytes,
    desc: Descriptor,
    labels: HashMap<String, String>,
}

impl Puller {
    /// Pull `reference`. When `local` is the image already present and the registry still resolves the
    /// reference to the same digest, nothing is fetched.
    pub async fn pull(
        &self,
        reference: &Reference,
        local: Option<PulledImage>,
    ) -> Result<PulledImage, ImageError> {
        let (registry, top) = self.resolve(reference).await?;
        if let Some(local) = local
            && local.image_id.ends_with(&format!("@{}", top.digest))
        {
            return Ok(local);
        }
        let registry = Arc::new(registry);
        let name = reference.to_string();
        let (os, arch) = manifest::host_platform();

        // Walk index → manifest, keeping every level for the content store.
        let mut levels: Vec<(FetchedManifest, String)> = Vec::new();
        let mut current = top;
        let image_manifest: Box<ImageManifest> = loop {
            let what = format!("manifest {} of {name}", current.digest);
            match manifest::parse(&current.bytes, current.content_type.as_deref(), &what)? {
                Parsed::Index { index, media_type } => {
                    if levels.len() >= 2 {
                        return Err(ImageError::Unsupported {
                            what,
                            detail: "indexes nested too deep".into(),
                        });
                    }
                    let child = manifest::select_platform(&index, os, arch).ok_or_else(|| {
                        ImageError::NoMatchingPlatform {
                            reference: name.clone(),
                            platform: format!("{os}/{arch}"),
                        }
                    })?;
                    let child_digest = child.digest().to_string();
                    levels.push((current, media_type));
                    current = registry
                        .manifest(&child_digest, Some(&child_digest))
                        .await?;
                }
                Parsed::Manifest {
                    manifest,
                    media_type,
                } => {
                    levels.push((current, media_type));
                    break manifest;
                }
            }
        };

        let config_desc = image_manifest.config();
        let config_digest = config_desc.digest().to_string();
        // A config already in the content store (same image under another tag) need not be fetched.
        let config_bytes =
            match content::read(&self.containerd, &config_digest, MAX_CONFIG_BYTES).await? {
                Some(b) if distribution::sha256_digest(&b) == config_digest => Bytes::from(b),
                _ => {
                    registry
                        .small_blob(&config_digest, config_desc.size(), MAX_CONFIG_BYTES)
                        .await?
                }
            };
        let config: ImageConfiguration = manifest::parse_config(
            &config_bytes,
            image_manifest.layers().len(),
            &format!("config {config_digest}"),
        )?;
        let diff_ids = config.rootfs().diff_ids().clone();
        let chain = manifest::chain_ids(&diff_ids);
        let top_chain = chain
            .last()
            .cloned()
            .ok_or_else(|| ImageError::malformed("image config", "no layers"))?;
        let layers: Vec<Descriptor> = image_manifest.layers().iter().map(to_containerd).collect();
        let size = config_desc.size() + layers.iter().map(|l| l.size.max(0) as u64).sum::<u64>();

        // Manifest-level blobs, leaf first, each with the GC labels containerd's own pull sets.
        let mut stored = vec![Stored {
            bytes: config_bytes,
            desc: to_containerd(config_desc),
            labels: HashMap::from([(
                format!("containerd.io/gc.ref.snapshot.{}", unpack::SNAPSHOTTER),
                top_chain.clone(),
            )]),
        }];
        let mut child_digest = String::new();
        for (i, (fetched, media_type)) in levels.iter().rev().enumerate() {
            let mut labels = HashMap::new();
            if i == 0 {
                labels.insert(
                    "containerd.io/gc.ref.content.config".to_string(),
                    config_digest.clone(),
                );
                for (n, l) in layers.iter().enumerate() {
                    labels.insert(
                        format!("containerd.io/gc.ref.content.l.{n}"),
                        l.digest.clone(),
                    );
                }
            } else {
                labels.insert(
                    "containerd.io/gc.ref.content.m.0".to_string(),
                    child_digest.clone(),
                );
            }
            child_digest = fetched.digest.clone();
            stored.push(Stored {
                bytes: fetched.bytes.clone(),
                desc: Descriptor {
                    media_type: media_type.clone(),
                    digest: fetched.digest.clone(),
                    size: fetched.bytes.len() as i64,
                    annotations: HashMap::new(),
                },
                labels,
            });
        }
        let target = stored.last().map(|s| s.desc.clone()).unwrap_or_default();

        let lease = Arc::new(
            self.containerd
                .lease(LEASE_EXPIRY)
                .await
                .map_err(|s| ImageError::containerd("lease create", s))?,
        );
        let result = self
            .store(
                &registry, &lease, &layers, &diff_ids, &chain, &stored, &name, &target,
            )
            .await;
        if let Ok(lease) = Arc::try_unwrap(lease)
            && let Err(s) = self.containerd.release(lease).await
        {
            tracing::warn!(image = %name, error = %s, "deleting pull lease failed; it expires by itself");
        }
        let pulled = result?;
        Ok(PulledImage {
            reference: name,
            image_id: format!("{}@{}", reference.name(), target.digest),
            chain_id: top_chain,
            config,
            pulled,
            size,
            config_digest,
        })
    }

    /// The first endpoint that resolves the reference, and the manifest it returned.
    async fn resolve(
        &self,
        reference: &Reference,
    ) -> Result<(RegistryClient, FetchedManifest), ImageError> {
        let mut errors: Vec<ImageError> = Vec::new();
        for endpoint in self.registries.endpoints(&reference.registry) {
            let spoke_http = !matches!(
                errors.last(),
                None | Some(ImageError::Http { .. } | ImageError::Registry { status: 400, .. })
            );
            if endpoint.tls_fallback {
                if spoke_http {
                    continue;
                }
                // The plain-HTTP failure only says "not HTTP here"; the HTTPS outcome replaces it.
                errors.pop();
            }
            let creds = self.credentials_for(&endpoint.host, &reference.registry, endpoint.mirror);
            let http = if endpoint.insecure_skip_verify {
                &self.http_insecure
            } else {
                &self.http
            };
            let client = RegistryClient::new(http.clone(), endpoint, &reference.repository, creds);
            match client
                .manifest(reference.manifest_ref(), reference.digest.as_deref())
                .await
            {
                Ok(m) => return Ok((client, m)),
                Err(e) => {
                    tracing::debug!(image = %reference, endpoint = %client.endpoint.base, error = %e, "endpoint failed");
                    errors.push(e);
                }
            }
        }
        // An answer from a registry (not found, unauthorized, corrupt, 5xx) says more than a later
        // endpoint's connection error.
        let definite = errors
            .iter()
            .rposition(|e| !matches!(e, ImageError::Http { .. }));
        let pick = definite.unwrap_or(errors.len().saturating_sub(1));
        Err(if pick < errors.len() {
            errors.swap_remove(pick)
        } else {
            ImageError::Internal(format!("no endpoint for {reference}"))
        })
    }

    fn credentials_for(
        &self,
        endpoint_host: &str,
        registry: &str,
        mirror: bool,
    ) -> Option<RegistryAuth> {
        let find = |host: &str| {
            self.credentials
                .iter()
                .find(|c| auth::normalize_registry_key(&c.registry) == host)
                .cloned()
        };
        self.registries
            .auth_for(endpoint_host)
            .or_else(|| find(endpoint_host))
            .or_else(|| if mirror { None } else { find(registry) })
    }

    /// Everything that writes to containerd. Returns whether any bytes were transferred.
    #[allow(clippy::too_many_arguments)]
    async fn store(
        &self,
        registry: &Arc<RegistryClient>,
        lease: &Arc<Lease>,
        layers: &[Descriptor],
        diff_ids: &[String],
        chain: &[String],
        stored: &[Stored],
        name: &str,
        target: &Descriptor,
    ) -> Result<bool, ImageError> {
        let permits = Arc::new(Semaphore::new(LAYER_CONCURRENCY));
        let mut downloads = Vec::with_capacity(layers.len());
        for (layer, diff_id) in layers.iter().zip(diff_ids) {
            let (cd, lease, registry, permits, locks) = (
                self.containerd.clone(),
                lease.clone(),
                registry.clone(),
                permits.clone(),
                self.locks.clone(),
            );
            let (digest, size) = (layer.digest.clone(), layer.size.max(0) as u64);
            let labels =
                HashMap::from([("containerd.io/uncompressed".to_string(), diff_id.clone())]);
            downloads.push(tokio::spawn(async move {
                let _key = locks.lock(&digest).await;
                let _permit = permits
                    .acquire_owned()
                    .await
                    .map_err(|e| ImageError::Internal(e.to_string()))?;
                let mut attempt = 1;
                loop {
                    let source = Source::Registry(&registry);
                    match content::write(&cd, &lease, &digest, size, labels.clone(), source).await {
                        Err(e) if attempt < DOWNLOAD_ATTEMPTS && transient(&e) => {
                            tracing::info!(digest, attempt, error = %e, "retrying layer download");
                            tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                            attempt += 1;
                        }
                        other => return other,
                    }
                }
            }));
        }
        let mut transferred = false;
        // Unpack layer i as soon as it is stored; later layers keep downloading meanwhile.
        for i in 0..layers.len() {
            let done = match (&mut downloads[i]).await {
                Ok(r) => r,
                Err(e) => Err(ImageError::Internal(format!("layer download task: {e}"))),
            };
            let step = async {
                transferred |= done?;
                let parent = if i == 0 { "" } else { chain[i - 1].as_str() };
                let _key = self.locks.lock(&chain[i]).await;
                unpack::apply_layer(
                    &self.containerd,
                    lease,
                    &layers[i],
                    &diff_ids[i],
                    parent,
                    &chain[i],
                )
                .await
            };
            if let Err(e) = step.await {
                // Wait for the aborted tasks so they drop their lease handles before the lease is deleted.
                for d in downloads.into_iter().skip(i + 1) {
                    d.abort();
                    let _ = d.await;
                }
                return Err(e);
            }
        }
        for s in stored {
            let size = s.desc.size.max(0) as u64;
            let _key = self.locks.lock(&s.desc.digest).await;
            transferred |= content::write(
                &self.containerd,
                lease,
                &s.desc.digest,
                size,
                s.labels.clone(),
                Source::Memory(&s.bytes),
            )
            .await?;
        }
        self.put_image(name, target, lease).await?;
        Ok(transferred)
    }

    async fn put_image(
        &self,
        name: &str,
        target: &Descriptor,
        lease: &Lease,
    ) -> Result<(), ImageError> {
        let image = Image {
            name: name.to_string(),
            labels: HashMap::new(),
            target: Some(target.clone()),
            created_at: None,
            updated_at: None,
        };
        let mut images = ImagesClient::new(self.containerd.channel());
        let create = CreateImageRequest {
            image: Some(image.clone()),
            source_date_epoch: None,
        };
        match images.create(self.containerd.leased(create, lease)).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::AlreadyExists => {
                let update = UpdateImageRequest {
                    image: Some(image),
                    update_mask: None,
                    source_date_epoch: None,
                };
                images
                    .update(self.containerd.req(update))
                    .await
                    .map(|_| ())
                    .map_err(|s| ImageError::containerd(format!("images update {name}"), s))
            }
            Err(s) => Err(ImageError::containerd(format!("images create {name}"), s)),
        }
    }
}

/// Network failures and server-side registry errors may go away; bad content or a 4xx will not.
fn transient(e: &ImageError) -> bool {
    match e {
        ImageError::Http { .. } => true,
        ImageError::Registry { status, .. } => *status >= 500 || *status == 429,
        _ => false,
    }
}

fn to_containerd(d: &oci_spec::image::Descriptor) -> Descriptor {
    Descriptor {
        media_type: d.media_type().to_string(),
        digest: d.digest().to_string(),
        size: i64::try_from(d.size()).unwrap_or(i64::MAX),
        annotations: HashMap::new(),
    }
}
