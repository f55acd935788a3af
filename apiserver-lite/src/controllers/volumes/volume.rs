//! Sync of a volume (kube's `syncVolume`): its phase from its claim, and what happens to it once the
//! claim is gone (its reclaim policy).

use serde_json::{Value, json};

use super::{
    ANN_BOUND_BY_CONTROLLER, ANN_PROVISIONED_BY, Controller, Item, LOCAL_PATH, MANAGER, annotation,
    being_deleted, put,
};
use crate::controllers::object::{child, now_rfc3339};
use crate::controllers::owners::{Stored, str_at};
use crate::handlers::DeleteOpts;
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult};

impl Controller {
    pub(super) async fn sync_volume(&mut self, name: &str) -> ApiResult<()> {
        let Some(volume) = self.cache.volumes.get(name).cloned() else {
            return Ok(());
        };
        if volume.deleting() && self.release_volume(&volume).await? {
            return Ok(());
        }
        let value = volume.value.as_ref();
        let Some(claim_ref) = value.pointer("/spec/claimRef").filter(|r| r.is_object()) else {
            return self
                .volume_phase(value.clone(), "Available")
                .await
                .map(drop);
        };
        let uid = str_at(claim_ref, "/uid");
        if uid.is_empty() {
            // Pre-bound to a claim by name only: the claim's sync finishes the binding.
            return self
                .volume_phase(value.clone(), "Available")
                .await
                .map(drop);
        }
        let key = (
            str_at(claim_ref, "/namespace").to_string(),
            str_at(claim_ref, "/name").to_string(),
        );
        let phase = str_at(value, "/status/phase");
        let mut claim = self.cache.claims.get(&key).cloned();
        if claim.is_none() && !matches!(phase, "Released" | "Failed") {
            // A claim created just now may not be in the cache yet: never release a volume on a
            // stale view (kube asks the API server too).
            claim = self
                .fetch(Kind::PersistentVolumeClaim, Some(&key.0), &key.1)
                .await?;
        }
        let claim = claim.filter(|c| c.uid() == uid);
        let Some(claim) = claim else {
            return self.release(value.clone()).await;
        };
        match str_at(&claim.value, "/spec/volumeName") {
            "" => {
                // Bound to a claim that does not know yet (a provisioned volume): bind it now.
                self.queue.mark(Item::Claim(key));
                Ok(())
            }
            bound if bound == name => self.volume_phase(value.clone(), "Bound").await.map(drop),
            _ => {
                // The claim went to another volume.
                if annotation(value, ANN_PROVISIONED_BY).is_some()
                    && reclaim_policy(value) == "Delete"
                {
                    // Provisioned for this claim and not needed any more: delete it.
                    self.release(value.clone()).await
                } else {
                    self.unbind(value.clone()).await
                }
            }
        }
    }

    /// The claim is gone: `Released` (a `Failed` phase stays, so the user sees it), then the reclaim
    /// policy. `Delete` of a local-path volume deletes the PersistentVolume through the REST delete (its
    /// `pv-protection` finalizer goes once it is not `Bound`; the node's agent removes the directory once
    /// the volume answers 404, see the contract). Volumes of other provisioners are left `Released` for
    /// their provisioner to delete, as kube leaves them to external provisioners; `Retain` keeps the
    /// volume and its data, and the deprecated `Recycle` is not supported (the volume stays `Released`).
    async fn release(&mut self, volume: Value) -> ApiResult<()> {
        let volume = match str_at(&volume, "/status/phase") {
            "Released" | "Failed" => volume,
            _ => {
                tracing::info!(volume = %str_at(&volume, "/metadata/name"),
                    policy = %reclaim_policy(&volume), "volume is released");
                self.volume_phase(volume, "Released").await?
            }
        };
        let ours = annotation(&volume, ANN_PROVISIONED_BY) == Some(LOCAL_PATH);
        if reclaim_policy(&volume) != "Delete" || !ours || being_deleted(&volume) {
            return Ok(());
        }
        let name = str_at(&volume, "/metadata/name");
        let opts = DeleteOpts {
            uid: Some(str_at(&volume, "/metadata/uid").to_string()),
            ..DeleteOpts::default()
        };
        match self
            .api
            .delete(by_kind(Kind::PersistentVolume), None, name, &opts, false)
            .await
        {
            Ok(gone) => {
                tracing::info!(volume = %name, "deleted released local-path volume");
                if being_deleted(&gone) {
                    // Held by a finalizer (pv-protection, released at the next sync).
                    self.keep_volume(&gone);
                } else {
                    self.cache.volumes.remove(name);
                }
                Ok(())
            }
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// kube's `unbindVolume`: a volume the controller bound loses its `claimRef`; one a user pre-bound
    /// keeps it without the uid. Then `Available`.
    async fn unbind(&mut self, mut volume: Value) -> ApiResult<()> {
        if annotation(&volume, ANN_BOUND_BY_CONTROLLER).is_some() {
            if let Some(spec) = volume.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("claimRef");
            }
            if let Some(meta) = volume.get_mut("metadata").and_then(Value::as_object_mut) {
                let empty = match meta.get_mut("annotations").and_then(Value::as_object_mut) {
                    Some(annotations) => {
                        annotations.remove(ANN_BOUND_BY_CONTROLLER);
                        annotations.is_empty()
                    }
                    None => false,
                };
                if empty {
                    meta.remove("annotations");
                }
            }
        } else if let Some(claim_ref) = volume
            .pointer_mut("/spec/claimRef")
            .and_then(Value::as_object_mut)
        {
            claim_ref.remove("uid");
        }
        let volume = put(&self.api, Kind::PersistentVolume, volume, None, MANAGER).await?;
        self.keep_volume(&volume);
        self.volume_phase(volume, "Available").await.map(drop)
    }

    /// kube's `updateVolumePhase`: the phase (with `lastPhaseTransitionTime`) through `status`, written
    /// only when it changes.
    pub(super) async fn volume_phase(&mut self, volume: Value, phase: &str) -> ApiResult<Value> {
        if str_at(&volume, "/status/phase") == phase {
            return Ok(volume);
        }
        let mut next = volume;
        let Some(status) = child(&mut next, "status") else {
            return Err(ApiError::internal("volume status is not an object"));
        };
        status.insert("phase".into(), json!(phase));
        status.remove("message");
        status.insert("lastPhaseTransitionTime".into(), json!(now_rfc3339()));
        let written = put(
            &self.api,
            Kind::PersistentVolume,
            next,
            Some("status"),
            MANAGER,
        )
        .await?;
        self.keep_volume(&written);
        Ok(written)
    }
}

/// `spec.persistentVolumeReclaimPolicy`; kube's default for volumes made by hand is `Retain`.
pub(super) fn reclaim_policy(volume: &Value) -> &str {
    match str_at(volume, "/spec/persistentVolumeReclaimPolicy") {
        "" => "Retain",
        policy => policy,
    }
}

/// Whether a stored volume is `Bound`.
pub(super) fn is_bound(volume: &Stored) -> bool {
    str_at(&volume.value, "/status/phase") == "Bound"
}
