//! Sync of a claim (kube's `syncClaim`): binding an unbound claim, handing it to a provisioner or waiting
//! for its first consumer, and keeping a bound claim and its volume in agreement.

use serde_json::{Value, json};

use super::matching::{self, NodeView};
use super::{
    ANN_BETA_STORAGE_PROVISIONER, ANN_BIND_COMPLETED, ANN_BOUND_BY_CONTROLLER, ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER, COMPONENT, Controller, LOCAL_PATH, MANAGER, annotation,
    bind_completed, claims_of_pod, put, set_annotation,
};
use crate::controllers::events::EventType;
use crate::controllers::owners::{Key, Stored, str_at};
use crate::resources::Kind;
use crate::status::{ApiError, ApiResult};

/// The binding mode that delays binding and provisioning until a pod using the claim is scheduled.
const WAIT_FOR_FIRST_CONSUMER: &str = "WaitForFirstConsumer";

/// A `claimRef` / event reference to a claim (kube's `reference.GetReference`).
pub(super) fn claim_ref(claim: &Value) -> Value {
    json!({
        "kind": "PersistentVolumeClaim",
        "namespace": str_at(claim, "/metadata/namespace"),
        "name": str_at(claim, "/metadata/name"),
        "uid": str_at(claim, "/metadata/uid"),
        "apiVersion": "v1",
        "resourceVersion": str_at(claim, "/metadata/resourceVersion"),
    })
}

impl Controller {
    pub(super) async fn sync_claim(&mut self, key: &Key) -> ApiResult<()> {
        let Some(claim) = self.cache.claims.get(key).cloned() else {
            return Ok(());
        };
        if claim.deleting() {
            // Nothing is bound or provisioned for a claim on its way out; only its finalizer matters.
            return self.release_claim(&claim).await;
        }
        if bind_completed(&claim.value) {
            self.sync_bound_claim(&claim).await
        } else {
            self.sync_unbound_claim(&claim).await
        }
    }

    /// A claim that has been bound before (`pv.kubernetes.io/bind-completed`).
    async fn sync_bound_claim(&mut self, claim: &Stored) -> ApiResult<()> {
        let name = str_at(&claim.value, "/spec/volumeName").to_string();
        if name.is_empty() {
            let message =
                "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!";
            return self.lose(claim, "ClaimLost", message).await;
        }
        let volume = match self.cache.volumes.get(&name).cloned() {
            Some(volume) => volume,
            // The cache may trail the store (another server bound it just now): ask before judging.
            None => match self.fetch(Kind::PersistentVolume, None, &name).await? {
                Some(volume) => volume,
                None => {
                    let message =
                        "Bound claim has lost its PersistentVolume. Data on the volume is lost!";
                    return self.lose(claim, "ClaimLost", message).await;
                }
            },
        };
        let claim_ref = volume
            .value
            .pointer("/spec/claimRef")
            .filter(|r| r.is_object());
        match claim_ref {
            Some(r) if str_at(r, "/uid") != claim.uid() => {
                let message =
                    "Two claims are bound to the same volume, this one is bound incorrectly";
                self.lose(claim, "ClaimMisbound", message).await
            }
            // Unbound volume (or this claim's): bind again, which only writes what is missing.
            _ => self.bind(&volume, claim).await,
        }
    }

    /// A claim not bound yet: a volume it names, the best free volume, a provisioner, or waiting.
    async fn sync_unbound_claim(&mut self, claim: &Stored) -> ApiResult<()> {
        let value = claim.value.as_ref();
        let class_name = matching::claim_class(value).to_string();
        let class = self.cache.classes.get(&class_name).cloned();
        let delay = class
            .as_ref()
            .is_some_and(|c| str_at(&c.value, "/volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER);
        let wanted = str_at(value, "/spec/volumeName").to_string();
        if !wanted.is_empty() {
            return self.sync_named_claim(claim, &wanted).await;
        }
        let selected = annotation(value, ANN_SELECTED_NODE).map(str::to_string);
        let node = match (&selected, delay) {
            (Some(node), true) => Some(NodeView::named(node, self.cache.nodes.get(node))),
            _ => None,
        };
        let found =
            matching::best_match(value, self.cache.volumes.values(), node.as_ref(), delay).cloned();
        if let Some(volume) = found {
            return self.bind(&volume, claim).await;
        }
        if delay && selected.is_none() {
            self.wait_for_consumer(claim).await;
        } else if !class_name.is_empty() {
            return self
                .provision_claim(claim, &class_name, class.as_ref())
                .await;
        } else {
            let message =
                "no persistent volumes available for this claim and no storage class is set";
            self.claim_event(
                COMPONENT,
                value,
                EventType::Normal,
                "FailedBinding",
                message,
            )
            .await;
        }
        self.claim_status(claim.value.as_ref().clone(), "Pending", None)
            .await
            .map(drop)
    }

    /// A claim that names its volume (`spec.volumeName` set by the user, not bound yet).
    async fn sync_named_claim(&mut self, claim: &Stored, wanted: &str) -> ApiResult<()> {
        let value = claim.value.as_ref();
        let Some(volume) = self.cache.volumes.get(wanted).cloned() else {
            // Not there (yet): stay Pending until it is created.
            return self
                .claim_status(value.clone(), "Pending", None)
                .await
                .map(drop);
        };
        let claimed = volume
            .value
            .pointer("/spec/claimRef")
            .is_some_and(Value::is_object);
        if !claimed {
            if let Some(why) = matching::unsatisfied(&volume.value, value) {
                let message = format!("Cannot bind to requested volume {wanted:?}: {why}");
                self.claim_event(
                    COMPONENT,
                    value,
                    EventType::Warning,
                    "VolumeMismatch",
                    &message,
                )
                .await;
                return self
                    .claim_status(value.clone(), "Pending", None)
                    .await
                    .map(drop);
            }
            return self.bind(&volume, claim).await;
        }
        if matching::bound_to_claim(&volume.value, value) {
            return self.bind(&volume, claim).await;
        }
        if annotation(value, ANN_BOUND_BY_CONTROLLER).is_some() {
            // Only a removed bind-completed annotation gets here (kube: "THIS SHOULD NEVER HAPPEN").
            return Err(ApiError::internal(format!(
                "invalid binding of claim \"{}/{}\" to volume {wanted:?}: volume already claimed by \"{}/{}\"",
                str_at(value, "/metadata/namespace"),
                str_at(value, "/metadata/name"),
                str_at(&volume.value, "/spec/claimRef/namespace"),
                str_at(&volume.value, "/spec/claimRef/name"),
            )));
        }
        // The user asked for a volume someone else holds: wait for it.
        self.claim_status(value.clone(), "Pending", None)
            .await
            .map(drop)
    }

    /// `WaitForFirstConsumer` (or, while a pod using the claim waits for a node, `WaitForPodScheduled`).
    async fn wait_for_consumer(&mut self, claim: &Stored) {
        let ns = str_at(&claim.value, "/metadata/namespace").to_string();
        let name = claim.name().to_string();
        let waiting: Vec<String> = self
            .cache
            .pods
            .range((ns.clone(), String::new())..)
            .take_while(|((pod_ns, _), _)| *pod_ns == ns)
            .map(|(_, pod)| pod)
            .filter(|pod| {
                str_at(&pod.value, "/spec/nodeName").is_empty()
                    && !matches!(str_at(&pod.value, "/status/phase"), "Succeeded" | "Failed")
                    && claims_of_pod(&pod.value).contains(&name)
            })
            .map(|pod| pod.name().to_string())
            .collect();
        let (reason, message) = match waiting.as_slice() {
            [] => (
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding".to_string(),
            ),
            [one] => (
                "WaitForPodScheduled",
                format!("waiting for pod {one} to be scheduled"),
            ),
            many => (
                "WaitForPodScheduled",
                format!("waiting for pods {} to be scheduled", many.join(",")),
            ),
        };
        self.claim_event(COMPONENT, &claim.value, EventType::Normal, reason, &message)
            .await;
    }

    /// kube's `provisionClaim` for an out-of-tree provisioner: name it in the claim's annotations so it
    /// starts, and report that the claim waits for it. skiff's own provisioner then runs at once.
    async fn provision_claim(
        &mut self,
        claim: &Stored,
        class_name: &str,
        class: Option<&Stored>,
    ) -> ApiResult<()> {
        let mut value = claim.value.as_ref().clone();
        let Some(class) = class else {
            let message = format!("storageclass.storage.k8s.io {class_name:?} not found");
            self.claim_event(
                COMPONENT,
                &value,
                EventType::Warning,
                "ProvisioningFailed",
                &message,
            )
            .await;
            return self.claim_status(value, "Pending", None).await.map(drop);
        };
        let provisioner = str_at(&class.value, "/provisioner").to_string();
        if provisioner.starts_with("kubernetes.io/") {
            // In-tree plugins (and `kubernetes.io/no-provisioner`): skiff has none.
            let message = format!("no volume plugin matched name: {provisioner}");
            self.claim_event(
                COMPONENT,
                &value,
                EventType::Warning,
                "ProvisioningFailed",
                &message,
            )
            .await;
            return self.claim_status(value, "Pending", None).await.map(drop);
        }
        if annotation(&value, ANN_STORAGE_PROVISIONER) != Some(provisioner.as_str()) {
            set_annotation(&mut value, ANN_BETA_STORAGE_PROVISIONER, &provisioner);
            set_annotation(&mut value, ANN_STORAGE_PROVISIONER, &provisioner);
            value = put(&self.api, Kind::PersistentVolumeClaim, value, None, MANAGER).await?;
            self.keep_claim(&value);
        }
        let message = format!(
            "Waiting for a volume to be created either by the external provisioner '{provisioner}' or \
             manually by the system administrator. If volume creation is delayed, please verify that the \
             provisioner is running and correctly registered."
        );
        self.claim_event(
            COMPONENT,
            &value,
            EventType::Normal,
            "ExternalProvisioning",
            &message,
        )
        .await;
        let value = self.claim_status(value, "Pending", None).await?;
        if provisioner == LOCAL_PATH {
            self.provision_local_path(&value, class).await?;
        }
        Ok(())
    }

    /// kube's `bind`: the volume's `claimRef`, its phase `Bound`, the claim's `volumeName` and
    /// annotations, the claim's status, in that order, writing only what differs. Each step is based on
    /// what the previous one returned; a conflict ends the sync and the next one continues.
    pub(super) async fn bind(&mut self, volume: &Stored, claim: &Stored) -> ApiResult<()> {
        let claim_value = claim.value.as_ref();
        let mut pv = volume.value.as_ref().clone();
        let current = pv.pointer("/spec/claimRef").filter(|r| r.is_object());
        let points_here = current.is_some_and(|r| {
            str_at(r, "/namespace") == str_at(claim_value, "/metadata/namespace")
                && str_at(r, "/name") == claim.name()
                && str_at(r, "/uid") == claim.uid()
        });
        // The controller chose this volume (it was not pre-bound to the claim by a user or provisioner).
        let by_controller = !matching::bound_to_claim(&pv, claim_value)
            && annotation(&pv, ANN_BOUND_BY_CONTROLLER).is_none();
        if !points_here || by_controller {
            if !points_here {
                let Some(spec) = crate::controllers::object::child(&mut pv, "spec") else {
                    return Err(ApiError::internal("volume spec is not an object"));
                };
                spec.insert("claimRef".into(), claim_ref(claim_value));
            }
            if by_controller {
                set_annotation(&mut pv, ANN_BOUND_BY_CONTROLLER, "yes");
            }
            pv = put(&self.api, Kind::PersistentVolume, pv, None, MANAGER).await?;
            self.keep_volume(&pv);
        }
        let pv = self.volume_phase(pv, "Bound").await?;
        let volume_name = str_at(&pv, "/metadata/name").to_string();
        let mut value = claim_value.clone();
        let mut dirty = false;
        if str_at(&value, "/spec/volumeName") != volume_name {
            let Some(spec) = crate::controllers::object::child(&mut value, "spec") else {
                return Err(ApiError::internal("claim spec is not an object"));
            };
            spec.insert("volumeName".into(), json!(volume_name));
            if annotation(&value, ANN_BOUND_BY_CONTROLLER).is_none() {
                set_annotation(&mut value, ANN_BOUND_BY_CONTROLLER, "yes");
            }
            dirty = true;
        }
        if annotation(&value, ANN_BIND_COMPLETED).is_none() {
            set_annotation(&mut value, ANN_BIND_COMPLETED, "yes");
            dirty = true;
        }
        if dirty {
            value = put(&self.api, Kind::PersistentVolumeClaim, value, None, MANAGER).await?;
            self.keep_claim(&value);
        }
        self.claim_status(value, "Bound", Some(&pv)).await.map(drop)
    }

    /// kube's `updateClaimStatus`: the phase, and the volume's access modes and capacity (none without a
    /// volume); written only when something differs.
    pub(super) async fn claim_status(
        &mut self,
        claim: Value,
        phase: &str,
        volume: Option<&Value>,
    ) -> ApiResult<Value> {
        let mut next = claim.clone();
        let Some(status) = crate::controllers::object::child(&mut next, "status") else {
            return Err(ApiError::internal("claim status is not an object"));
        };
        status.insert("phase".into(), json!(phase));
        match volume {
            None => {
                status.remove("accessModes");
                status.remove("capacity");
            }
            Some(pv) => {
                for (field, pointer) in [
                    ("accessModes", "/spec/accessModes"),
                    ("capacity", "/spec/capacity"),
                ] {
                    match pv.pointer(pointer) {
                        Some(v) if !v.is_null() => status.insert(field.into(), v.clone()),
                        _ => status.remove(field),
                    };
                }
            }
        }
        if next.get("status") == claim.get("status") {
            return Ok(claim);
        }
        let written = put(
            &self.api,
            Kind::PersistentVolumeClaim,
            next,
            Some("status"),
            MANAGER,
        )
        .await?;
        self.keep_claim(&written);
        Ok(written)
    }

    /// kube's `updateClaimStatusWithEvent` for `Lost`: only a change of phase writes and reports.
    async fn lose(&mut self, claim: &Stored, reason: &str, message: &str) -> ApiResult<()> {
        if str_at(&claim.value, "/status/phase") == "Lost" {
            return Ok(());
        }
        let written = self
            .claim_status(claim.value.as_ref().clone(), "Lost", None)
            .await?;
        self.claim_event(COMPONENT, &written, EventType::Warning, reason, message)
            .await;
        Ok(())
    }

    /// A fresh read through the API (`None` when it does not exist), for decisions a lagging cache must
    /// not make.
    pub(super) async fn fetch(
        &self,
        kind: Kind,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<Option<Stored>> {
        match self
            .api
            .get(crate::resources::by_kind(kind), ns, name)
            .await
        {
            Ok(value) => Ok(super::written(&value)),
            Err(e) if e.code == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }
}
