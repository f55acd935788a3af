//! What containerd already has: an image is present when its record exists, its config blob is readable
//! and the snapshot of its top chain ID is committed.

use containerd_client::services::v1::GetImageRequest;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::types::Descriptor;
use tonic::Code;

use super::distribution::MAX_MANIFEST_BYTES;
use super::manifest::{self, Parsed};
use super::{ImageError, MAX_CONFIG_BYTES, PulledImage, Reference, content, unpack};
use crate::containerd::Containerd;

/// The image record's target, or None.
pub async fn image_target(cd: &Containerd, name: &str) -> Result<Option<Descriptor>, ImageError> {
    let req = GetImageRequest {
        name: name.to_string(),
    };
    match ImagesClient::new(cd.channel()).get(cd.req(req)).await {
        Ok(r) => Ok(r.into_inner().image.and_then(|i| i.target)),
        Err(s) if s.code() == Code::NotFound => Ok(None),
        Err(s) => Err(ImageError::containerd(format!("images get {name}"), s)),
    }
}

/// Resolve a present image fully from containerd (record → index → manifest → config → snapshot).
pub async fn lookup(
    cd: &Containerd,
    reference: &Reference,
) -> Result<Option<PulledImage>, ImageError> {
    let name = reference.to_string();
    let Some(target) = image_target(cd, &name).await? else {
        return Ok(None);
    };
    let (os, arch) = manifest::host_platform();
    let mut digest = target.digest.clone();
    // An index may nest one more index; never follow more than a few levels.
    for _ in 0..3 {
        let what = format!("local manifest {digest}");
        let Some(bytes) = content::read(cd, &digest, MAX_MANIFEST_BYTES).await? else {
            return Ok(None);
        };
        match manifest::parse(&bytes, None, &what)? {
            Parsed::Index { index, .. } => match manifest::select_platform(&index, os, arch) {
                Some(d) => digest = d.digest().to_string(),
                None => return Ok(None),
            },
            Parsed::Manifest { manifest: m, .. } => {
                let config_digest = m.config().digest().to_string();
                let Some(config_bytes) =
                    content::read(cd, &config_digest, MAX_CONFIG_BYTES).await?
                else {
                    return Ok(None);
                };
                let config =
                    manifest::parse_config(&config_bytes, m.layers().len(), &config_digest)?;
                let chain = manifest::chain_ids(config.rootfs().diff_ids());
                let Some(top) = chain.last().cloned() else {
                    return Ok(None);
                };
                if !unpack::committed(cd, &top).await? {
                    return Ok(None);
                }
                let size = m.config().size() + m.layers().iter().map(|l| l.size()).sum::<u64>();
                return Ok(Some(PulledImage {
                    reference: name,
                    image_id: format!("{}@{}", reference.name(), target.digest),
                    chain_id: top,
                    config,
                    pulled: false,
                    size,
                    config_digest,
                }));
            }
        }
    }
    Ok(None)
}

/// Cheap re-validation of a cached image: same record target, config blob still there, snapshot committed.
pub async fn still_present(cd: &Containerd, image: &PulledImage) -> Result<bool, ImageError> {
    let (target, config, snapshot) = tokio::join!(
        image_target(cd, &image.reference),
        content::exists(cd, &image.config_digest),
        unpack::committed(cd, &image.chain_id),
    );
    let same_target = target?.is_some_and(|t| image.image_id.ends_with(&format!("@{}", t.digest)));
    Ok(same_target && config? && snapshot?)
}
