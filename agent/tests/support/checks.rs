//! Assertions on containerd state and shared fixtures for the image tests.

use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::snapshots::StatSnapshotRequest;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::{GetImageRequest, InfoRequest};
use skiff_agent::containerd::Containerd;

use super::TestImage;

/// A two-layer image (`/etc/hello`, `/data/marker` = `marker`) with env and cmd set.
pub fn tiny(marker: &str) -> TestImage {
    TestImage::build(
        &[&[("etc/hello", "hello\n")], &[("data/marker", marker)]],
        &["FOO=bar", "PATH=/bin"],
        &["/bin/sh", "-c", "echo hi"],
    )
}

/// Whether the committed overlayfs snapshot `chain_id` exists.
pub async fn snapshot_committed(cd: &Containerd, chain_id: &str) -> bool {
    let req = StatSnapshotRequest {
        snapshotter: "overlayfs".into(),
        key: chain_id.into(),
    };
    SnapshotsClient::new(cd.channel())
        .stat(cd.req(req))
        .await
        .is_ok_and(|r| r.into_inner().info.is_some_and(|i| i.kind == 3))
}

/// The target digest of the image record `name`.
pub async fn image_record(cd: &Containerd, name: &str) -> Option<String> {
    let req = GetImageRequest { name: name.into() };
    let resp = ImagesClient::new(cd.channel())
        .get(cd.req(req))
        .await
        .ok()?;
    resp.into_inner()
        .image
        .and_then(|i| i.target)
        .map(|t| t.digest)
}

/// Labels of a blob in the content store, or None if it is absent.
pub async fn content_labels(
    cd: &Containerd,
    digest: &str,
) -> Option<std::collections::HashMap<String, String>> {
    let req = InfoRequest {
        digest: digest.into(),
    };
    let resp = ContentClient::new(cd.channel())
        .info(cd.req(req))
        .await
        .ok()?;
    resp.into_inner().info.map(|i| i.labels)
}
