//! skiff's local-path provisioner (`skiff.io/local-path`), in the shape of rancher's
//! local-path-provisioner run by sig-storage's external-provisioner library: for a claim the binder has
//! handed to it (`volume.kubernetes.io/storage-provisioner`), once the scheduler has picked the claim's
//! node (`volume.kubernetes.io/selected-node`), it creates the PersistentVolume `pvc-<claim uid>`: a
//! `hostPath` directory under the storage root on that node, pinned there by node affinity. The node's
//! agent creates the directory when a pod mounts it and removes it once the volume is gone.

use serde_json::{Value, json};

use super::{
    ANN_PROVISIONED_BY, ANN_SELECTED_NODE, Controller, Item, LOCAL_PATH, annotation, matching, put,
};
use crate::controllers::events::EventType;
use crate::controllers::owners::{Stored, str_at};
use crate::resources::{Kind, by_kind};
use crate::status::ApiResult;

/// The provisioner's field manager (the name of rancher's binary).
const MANAGER: &str = "local-path-provisioner";

/// Why local-path cannot provision `claim` (its messages), checked in its order.
fn refusal(claim: &Value, node: Option<&str>) -> Option<&'static str> {
    if claim
        .pointer("/spec/selector")
        .is_some_and(|s| !s.is_null())
    {
        return Some("claim.Spec.Selector is not supported");
    }
    let modes = matching::access_modes(claim, "/spec/accessModes");
    if modes
        .iter()
        .any(|m| !matches!(*m, "ReadWriteOnce" | "ReadWriteOncePod"))
    {
        return Some(
            "NodePath only supports ReadWriteOnce and ReadWriteOncePod (1.22+) access modes",
        );
    }
    if node.is_none() {
        return Some("configuration error, no node was specified");
    }
    None
}

impl Controller {
    /// Provision a volume for `claim` of `class` (whose provisioner is [`LOCAL_PATH`]). Failures that
    /// only a change of the claim or class can fix are reported (`ProvisioningFailed`) and not retried.
    pub(super) async fn provision_local_path(
        &mut self,
        claim: &Value,
        class: &Stored,
    ) -> ApiResult<()> {
        let uid = str_at(claim, "/metadata/uid");
        let ns = str_at(claim, "/metadata/namespace");
        let name = str_at(claim, "/metadata/name");
        let class_name = class.name();
        let delayed = str_at(&class.value, "/volumeBindingMode") == "WaitForFirstConsumer";
        let node = annotation(claim, ANN_SELECTED_NODE).filter(|n| !n.is_empty());
        if delayed && node.is_none() {
            return Ok(());
        }
        let pv_name = format!("pvc-{uid}");
        if self.cache.volumes.contains_key(&pv_name) {
            // Provisioned already; the binder binds it.
            return Ok(());
        }
        let component = self.provisioner_component.clone();
        if let Some(node) = node
            && !self.cache.nodes.contains_key(node)
            && self.fetch(Kind::Node, None, node).await?.is_none()
        {
            // The chosen node is gone: report, and hand the claim back to the scheduler.
            let message = format!("nodes {node:?} not found");
            self.claim_event(
                &component,
                claim,
                EventType::Warning,
                "ProvisioningFailed",
                &message,
            )
            .await;
            let mut next = claim.clone();
            if let Some(annotations) = next
                .pointer_mut("/metadata/annotations")
                .and_then(Value::as_object_mut)
            {
                annotations.remove(ANN_SELECTED_NODE);
            }
            let written = put(&self.api, Kind::PersistentVolumeClaim, next, None, MANAGER).await?;
            self.keep_claim(&written);
            return Ok(());
        }
        let message =
            format!("External provisioner is provisioning volume for claim \"{ns}/{name}\"");
        self.claim_event(
            &component,
            claim,
            EventType::Normal,
            "Provisioning",
            &message,
        )
        .await;
        let (node, why) = match (node, refusal(claim, node)) {
            (Some(node), None) => (node, None),
            (_, why) => ("", why),
        };
        if let Some(why) = why {
            let message =
                format!("failed to provision volume with StorageClass {class_name:?}: {why}");
            self.claim_event(
                &component,
                claim,
                EventType::Warning,
                "ProvisioningFailed",
                &message,
            )
            .await;
            return Ok(());
        }
        let volume = self.local_volume(claim, class, &pv_name, node);
        let opts = crate::controllers::object::write_opts(MANAGER);
        match self
            .api
            .create(by_kind(Kind::PersistentVolume), None, volume, &[], &opts)
            .await
        {
            Ok((created, _)) => {
                tracing::info!(volume = %pv_name, claim = %format!("{ns}/{name}"), node = %node,
                    "provisioned local-path volume");
                self.keep_volume(&created);
            }
            // Created by an earlier attempt whose answer was lost: done.
            Err(e) if e.code == 409 => return Ok(()),
            Err(e) => {
                let message = format!(
                    "failed to provision volume with StorageClass {class_name:?}: {}",
                    e.message
                );
                self.claim_event(
                    &component,
                    claim,
                    EventType::Warning,
                    "ProvisioningFailed",
                    &message,
                )
                .await;
                return Err(e);
            }
        }
        let message = format!("Successfully provisioned volume {pv_name}");
        self.claim_event(
            &component,
            claim,
            EventType::Normal,
            "ProvisioningSucceeded",
            &message,
        )
        .await;
        // Bind it in the next round.
        self.queue
            .mark(Item::Claim((ns.to_string(), name.to_string())));
        Ok(())
    }

    /// The PersistentVolume of the contract's table: `hostPath` `<root>/pvc-<uid>_<ns>_<claim>`
    /// (`DirectoryOrCreate`) on `node`, the claim's request, access modes and volume mode, the class's
    /// reclaim policy and mount options, and a `claimRef` with the claim's uid.
    fn local_volume(&self, claim: &Value, class: &Stored, pv_name: &str, node: &str) -> Value {
        let ns = str_at(claim, "/metadata/namespace");
        let name = str_at(claim, "/metadata/name");
        let path = self
            .settings
            .local_path_root
            .join(format!("{pv_name}_{ns}_{name}"));
        let request = match claim.pointer("/spec/resources/requests/storage") {
            Some(Value::Number(n)) => json!(n.to_string()),
            Some(q) => q.clone(),
            None => json!("0"),
        };
        let policy = match str_at(&class.value, "/reclaimPolicy") {
            "" => "Delete",
            policy => policy,
        };
        let mut volume = json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": pv_name,
                "annotations": {ANN_PROVISIONED_BY: LOCAL_PATH},
            },
            "spec": {
                "capacity": {"storage": request},
                "accessModes": claim.pointer("/spec/accessModes").cloned().unwrap_or(json!([])),
                "volumeMode": matching::volume_mode(claim),
                "persistentVolumeReclaimPolicy": policy,
                "storageClassName": class.name(),
                "hostPath": {"path": path.to_string_lossy(), "type": "DirectoryOrCreate"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}},
                "claimRef": super::claim::claim_ref(claim),
            },
        });
        if let Some(options) = class.value.get("mountOptions").filter(|o| o.is_array()) {
            volume["spec"]["mountOptions"] = options.clone();
        }
        volume
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_path_refuses_what_it_cannot_do_in_its_order() {
        let claim = |modes: Value| json!({"spec": {"accessModes": modes}});
        let rwo = claim(json!(["ReadWriteOnce"]));
        assert_eq!(refusal(&rwo, Some("n1")), None);
        assert_eq!(
            refusal(&claim(json!(["ReadWriteOncePod"])), Some("n1")),
            None
        );
        assert_eq!(
            refusal(&rwo, None),
            Some("configuration error, no node was specified")
        );
        let rwx = claim(json!(["ReadWriteOnce", "ReadWriteMany"]));
        assert_eq!(
            refusal(&rwx, None),
            Some("NodePath only supports ReadWriteOnce and ReadWriteOncePod (1.22+) access modes")
        );
        let mut selected = rwx.clone();
        selected["spec"]["selector"] = json!({});
        assert_eq!(
            refusal(&selected, Some("n1")),
            Some("claim.Spec.Selector is not supported")
        );
    }
}
