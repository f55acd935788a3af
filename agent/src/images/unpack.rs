//! Unpacking layers into the overlayfs snapshotter: one committed snapshot per layer, named by its chain ID,
//! made by `diff.Apply` on a prepared active snapshot.

use std::collections::HashMap;

use containerd_client::services::v1::ApplyRequest;
use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::types::Descriptor;
use tonic::Code;

use super::ImageError;
use crate::containerd::{Containerd, Lease};

pub const SNAPSHOTTER: &str = "overlayfs";
/// `Kind::Committed` in containerd's snapshots API.
const KIND_COMMITTED: i32 = 3;

/// Whether the committed snapshot `name` exists.
pub async fn committed(cd: &Containerd, name: &str) -> Result<bool, ImageError> {
    let req = StatSnapshotRequest {
        snapshotter: SNAPSHOTTER.to_string(),
        key: name.to_string(),
    };
    match SnapshotsClient::new(cd.channel()).stat(cd.req(req)).await {
        Ok(r) => Ok(r
            .into_inner()
            .info
            .is_some_and(|i| i.kind == KIND_COMMITTED)),
        Err(s) if s.code() == Code::NotFound => Ok(false),
        Err(s) => Err(ImageError::containerd(format!("snapshot stat {name}"), s)),
    }
}

/// Apply `layer` on top of `parent` (a chain ID, or "" for the base layer) and commit it as `chain_id`.
/// The applied (uncompressed) digest must equal `diff_id`.
pub async fn apply_layer(
    cd: &Containerd,
    lease: &Lease,
    layer: &Descriptor,
    diff_id: &str,
    parent: &str,
    chain_id: &str,
) -> Result<(), ImageError> {
    if committed(cd, chain_id).await? {
        return Ok(());
    }
    let key = format!("skiff-extract-{}-{chain_id}", uuid::Uuid::new_v4().simple());
    let mut snapshots = SnapshotsClient::new(cd.channel());
    let prepare = PrepareSnapshotRequest {
        snapshotter: SNAPSHOTTER.to_string(),
        key: key.clone(),
        parent: parent.to_string(),
        labels: HashMap::new(),
    };
    let mounts = snapshots
        .prepare(cd.leased(prepare, lease))
        .await
        .map_err(|s| {
            ImageError::containerd(format!("snapshot prepare for layer {}", layer.digest), s)
        })?
        .into_inner()
        .mounts;
    let result = apply_and_commit(cd, lease, layer, diff_id, chain_id, &key, mounts).await;
    if !matches!(result, Ok(true)) {
        let req = RemoveSnapshotRequest {
            snapshotter: SNAPSHOTTER.to_string(),
            key: key.clone(),
        };
        if let Err(s) = snapshots.remove(cd.req(req)).await
            && s.code() != Code::NotFound
        {
            tracing::warn!(key, error = %s, "removing extract snapshot failed");
        }
    }
    result.map(|_| ())
}

/// Returns Ok(false) when someone else committed the same chain ID first (the extract snapshot is then
/// left for the caller to remove).
async fn apply_and_commit(
    cd: &Containerd,
    lease: &Lease,
    layer: &Descriptor,
    diff_id: &str,
    chain_id: &str,
    key: &str,
    mounts: Vec<containerd_client::types::Mount>,
) -> Result<bool, ImageError> {
    let apply = ApplyRequest {
        diff: Some(layer.clone()),
        mounts,
        payloads: HashMap::new(),
        sync_fs: false,
    };
    let applied = DiffClient::new(cd.channel())
        .apply(cd.leased(apply, lease))
        .await
        .map_err(|s| ImageError::containerd(format!("diff apply of layer {}", layer.digest), s))?
        .into_inner()
        .applied
        .map(|d| d.digest)
        .unwrap_or_default();
    if applied != diff_id {
        return Err(ImageError::DigestMismatch {
            what: format!("uncompressed layer {}", layer.digest),
            expected: diff_id.to_string(),
            actual: applied,
        });
    }
    let commit = CommitSnapshotRequest {
        snapshotter: SNAPSHOTTER.to_string(),
        name: chain_id.to_string(),
        key: key.to_string(),
        labels: HashMap::new(),
    };
    match SnapshotsClient::new(cd.channel())
        .commit(cd.leased(commit, lease))
        .await
    {
        Ok(_) => Ok(true),
        Err(s) if s.code() == Code::AlreadyExists => Ok(false),
        Err(s) => Err(ImageError::containerd(
            format!("snapshot commit {chain_id}"),
            s,
        )),
    }
}
