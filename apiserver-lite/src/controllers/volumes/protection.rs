//! The protection finalizers (kube's pvc-protection and pv-protection controllers): a claim being deleted
//! keeps `kubernetes.io/pvc-protection` while a pod uses it, a volume being deleted keeps
//! `kubernetes.io/pv-protection` while it is `Bound`. The finalizers themselves are put on at creation
//! by admission.

use serde_json::Value;

use super::volume::is_bound;
use super::{Controller, MANAGER, PV_PROTECTION, PVC_PROTECTION, put};
use crate::controllers::owners::{Stored, str_at};
use crate::resources::pod::ephemeral;
use crate::resources::{Kind, by_kind};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiResult;

fn has_finalizer(object: &Value, finalizer: &str) -> bool {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|l| l.iter().any(|f| f.as_str() == Some(finalizer)))
}

/// `object` without `finalizer`, keeping its resourceVersion, so the update fails on a newer version.
fn without_finalizer(object: &Value, finalizer: &str) -> Value {
    let mut next = object.clone();
    if let Some(list) = next
        .pointer_mut("/metadata/finalizers")
        .and_then(Value::as_array_mut)
    {
        list.retain(|f| f.as_str() != Some(finalizer));
    }
    next
}

/// Whether `pod` keeps the claim `claim` of its namespace in use. As kube's pvc-protection controller:
/// only a scheduled pod counts (the kubelet sees no other, and the scheduler does not place a pod whose
/// claim is being deleted, so an unschedulable pod cannot hold the claim forever), and a force-deleted
/// pod does not. A pod that has finished (Succeeded or Failed) still holds it until it is deleted, as in
/// kube 1.32 (a completed Job's pods keep its claim Terminating). A generic ephemeral volume's claim
/// `<pod>-<volume>` counts only when the pod controls it (kube's `VolumeIsForPod`).
fn pod_uses(pod: &Value, claim: &Value) -> bool {
    let scheduled = !str_at(pod, "/spec/nodeName").is_empty();
    let shut_down = super::being_deleted(pod)
        && pod
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            == Some(0);
    if !scheduled || shut_down {
        return false;
    }
    let name = str_at(claim, "/metadata/name");
    let pod_name = str_at(pod, "/metadata/name");
    pod.pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|v| match v.pointer("/persistentVolumeClaim/claimName") {
            Some(c) => c.as_str() == Some(name),
            None => {
                v.get("ephemeral").is_some_and(Value::is_object)
                    && ephemeral::claim_name(pod_name, str_at(v, "/name")) == name
                    && ephemeral::claim_is_for_pod(pod, claim)
            }
        })
}

impl Controller {
    /// A claim being deleted: drop `pvc-protection` once no pod uses it.
    pub(super) async fn release_claim(&mut self, claim: &Stored) -> ApiResult<()> {
        if !has_finalizer(&claim.value, PVC_PROTECTION) {
            return Ok(());
        }
        let ns = str_at(&claim.value, "/metadata/namespace").to_string();
        let name = claim.name();
        let cached = self
            .cache
            .pods
            .range((ns.clone(), String::new())..)
            .take_while(|((pod_ns, _), _)| *pod_ns == ns)
            .any(|(_, pod)| pod_uses(&pod.value, &claim.value));
        if cached {
            return Ok(());
        }
        // The cache may not have a pod created just now: a live list decides (as kube does).
        let (pods, _) = self
            .api
            .list(
                by_kind(Kind::Pod),
                Some(&ns),
                &LabelSelector::default(),
                &FieldSelector::default(),
            )
            .await?;
        if pods.iter().any(|pod| pod_uses(pod, &claim.value)) {
            return Ok(());
        }
        let next = without_finalizer(&claim.value, PVC_PROTECTION);
        match put(&self.api, Kind::PersistentVolumeClaim, next, None, MANAGER).await {
            Ok(written) => {
                tracing::debug!(claim = %format!("{ns}/{name}"), "removed pvc-protection");
                self.keep_claim(&written);
                Ok(())
            }
            Err(e) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A volume being deleted: drop `pv-protection` once it is not `Bound`. True when it was dropped.
    pub(super) async fn release_volume(&mut self, volume: &Stored) -> ApiResult<bool> {
        if !has_finalizer(&volume.value, PV_PROTECTION) || is_bound(volume) {
            return Ok(false);
        }
        let next = without_finalizer(&volume.value, PV_PROTECTION);
        match put(&self.api, Kind::PersistentVolume, next, None, MANAGER).await {
            Ok(written) => {
                tracing::debug!(volume = %volume.name(), "removed pv-protection");
                self.keep_volume(&written);
                Ok(true)
            }
            Err(e) if e.code == 404 => Ok(true),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_scheduled_pods_hold_a_claim() {
        let pod = |node: &str, phase: &str| {
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
                "spec": {"nodeName": node, "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "c"}},
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {}}}]},
                "status": {"phase": phase}})
        };
        let claim = |name: &str| json!({"metadata": {"name": name, "namespace": "ns"}});
        let c = claim("c");
        let mut scratch = claim("p-scratch");
        scratch["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u1", "controller": true}]);
        assert!(pod_uses(&pod("n1", "Running"), &c));
        assert!(pod_uses(&pod("n1", "Pending"), &scratch));
        assert!(
            !pod_uses(&pod("n1", "Pending"), &claim("p-scratch")),
            "an ephemeral claim the pod does not control"
        );
        assert!(!pod_uses(&pod("n1", "Running"), &claim("other")));
        assert!(!pod_uses(&pod("", "Pending"), &c));
        assert!(pod_uses(&pod("n1", "Succeeded"), &c), "until it is deleted");
        assert!(pod_uses(&pod("n1", "Failed"), &c));
        let mut gone = pod("n1", "Running");
        gone["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        gone["metadata"]["deletionGracePeriodSeconds"] = json!(30);
        assert!(pod_uses(&gone, &c), "a pod still stopping holds the claim");
        gone["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        assert!(!pod_uses(&gone, &c));
    }

    #[test]
    fn finalizers_are_removed_keeping_the_version() {
        let pvc = json!({"metadata": {"resourceVersion": "7",
            "finalizers": ["kubernetes.io/pvc-protection", "example.com/x"]}});
        assert!(has_finalizer(&pvc, PVC_PROTECTION));
        let next = without_finalizer(&pvc, PVC_PROTECTION);
        assert_eq!(next["metadata"]["finalizers"], json!(["example.com/x"]));
        assert_eq!(next["metadata"]["resourceVersion"], "7");
        assert!(!has_finalizer(&next, PVC_PROTECTION));
    }
}
