//! Parsing what a registry returns: image indexes (OCI index, Docker manifest list), image manifests
//! (OCI, Docker schema 2), platform selection, and chain IDs.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use sha2::{Digest, Sha256};

use super::ImageError;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

pub enum Parsed {
    Index {
        media_type: String,
        index: Box<ImageIndex>,
    },
    Manifest {
        media_type: String,
        manifest: Box<ImageManifest>,
    },
}

/// Classify and parse a manifest body. The body's own `mediaType` wins over the Content-Type header
/// (registries often send a generic one); without either, the shape decides.
pub fn parse(bytes: &[u8], content_type: Option<&str>, what: &str) -> Result<Parsed, ImageError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ImageError::malformed(what, e))?;
    if !value.is_object() {
        return Err(ImageError::malformed(what, "not a JSON object"));
    }
    if value.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1) {
        return Err(ImageError::Unsupported {
            what: what.to_string(),
            detail: "Docker schema 1 manifest".into(),
        });
    }
    let declared = value
        .get("mediaType")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let media_type = declared
        .or_else(|| {
            content_type
                .filter(|c| is_index(c) || is_manifest(c))
                .map(str::to_string)
        })
        .unwrap_or_else(|| {
            if value.get("manifests").is_some() {
                OCI_INDEX.to_string()
            } else {
                OCI_MANIFEST.to_string()
            }
        });
    if is_index(&media_type) {
        let index: Box<ImageIndex> =
            serde_json::from_value(value).map_err(|e| ImageError::malformed(what, e))?;
        Ok(Parsed::Index { media_type, index })
    } else if is_manifest(&media_type) {
        let manifest: Box<ImageManifest> =
            serde_json::from_value(value).map_err(|e| ImageError::malformed(what, e))?;
        check_manifest(&manifest, what)?;
        Ok(Parsed::Manifest {
            media_type,
            manifest,
        })
    } else {
        Err(ImageError::Unsupported {
            what: what.to_string(),
            detail: format!("media type {media_type:?}"),
        })
    }
}

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

pub fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

fn check_manifest(manifest: &ImageManifest, what: &str) -> Result<(), ImageError> {
    let config_type = manifest.config().media_type().to_string();
    if config_type != OCI_CONFIG && config_type != DOCKER_CONFIG {
        return Err(ImageError::Unsupported {
            what: what.to_string(),
            detail: format!("config media type {config_type:?} (not a container image)"),
        });
    }
    for layer in manifest.layers() {
        let t = layer.media_type().to_string();
        if !LAYER_TYPES.contains(&t.as_str()) {
            return Err(ImageError::Unsupported {
                what: what.to_string(),
                detail: format!("layer media type {t:?}"),
            });
        }
    }
    Ok(())
}

/// The host's platform in OCI terms.
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    ("linux", arch)
}

/// Pick the manifest for `os/arch` from an index. Entries without a platform are skipped (attestations).
pub fn select_platform<'a>(index: &'a ImageIndex, os: &str, arch: &str) -> Option<&'a Descriptor> {
    index.manifests().iter().find(|d| {
        d.platform()
            .as_ref()
            .is_some_and(|p| p.os().to_string() == os && p.architecture().to_string() == arch)
            && is_manifest(d.media_type().as_ref())
    })
}

/// Parse an image config and check it describes as many layers as the manifest has.
pub fn parse_config(
    bytes: &[u8],
    layers: usize,
    what: &str,
) -> Result<ImageConfiguration, ImageError> {
    let config: ImageConfiguration =
        serde_json::from_slice(bytes).map_err(|e| ImageError::malformed(what, e))?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != layers {
        return Err(ImageError::malformed(
            what,
            format!("{} diff_ids for {layers} layers", diff_ids.len()),
        ));
    }
    for d in diff_ids {
        validate_sha256(d).map_err(|e| ImageError::malformed(what, e))?;
    }
    Ok(config)
}

pub fn validate_sha256(digest: &str) -> Result<(), String> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) =>
        {
            Ok(())
        }
        _ => Err(format!("{digest:?} is not a sha256 digest")),
    }
}

/// chain[0] = diff[0]; chain[n] = sha256(chain[n-1] + " " + diff[n]).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let next = match out.last() {
            None => diff.clone(),
            Some(parent) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{parent} {diff}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn chain_id_of_two_layers() {
        let chain = chain_ids(&[A.to_string(), B.to_string()]);
        assert_eq!(chain[0], A);
        let expected = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(format!("{A} {B}").as_bytes()))
        );
        assert_eq!(chain[1], expected);
    }

    #[test]
    fn picks_platform_from_docker_list() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[
            {{"mediaType":"{DOCKER_MANIFEST}","digest":"{A}","size":1,"platform":{{"architecture":"arm64","os":"linux"}}}},
            {{"mediaType":"{DOCKER_MANIFEST}","digest":"{B}","size":2,"platform":{{"architecture":"amd64","os":"linux"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{A}","size":3,"platform":{{"architecture":"unknown","os":"unknown"}}}}]}}"#
        );
        let Ok(Parsed::Index { index, media_type }) = parse(body.as_bytes(), None, "t") else {
            panic!("not an index")
        };
        assert_eq!(media_type, DOCKER_LIST);
        let d = select_platform(&index, "linux", "amd64").unwrap_or_else(|| panic!("no amd64"));
        assert_eq!(d.size(), 2);
        assert!(select_platform(&index, "linux", "s390x").is_none());
    }

    #[test]
    fn rejects_bad_manifests() {
        for bad in [
            "not json".to_string(),
            "[1]".to_string(),
            r#"{"schemaVersion":1,"fsLayers":[]}"#.to_string(),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{}},"layers":[]}}"#
            ),
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/x-helm","digest":"{A}","size":1}},"layers":[]}}"#
            ),
            r#"{"schemaVersion":2,"mediaType":"application/x-other"}"#.to_string(),
        ] {
            assert!(
                parse(bad.as_bytes(), None, "t").is_err(),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn config_layer_count_must_match() {
        let cfg = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{A}"]}}}}"#
        );
        assert!(parse_config(cfg.as_bytes(), 1, "c").is_ok());
        assert!(parse_config(cfg.as_bytes(), 2, "c").is_err());
        let bad = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:xyz"]}}"#;
        assert!(parse_config(bad.as_bytes(), 1, "c").is_err());
    }
}
