//! The scheduler's view of storage, in the shape of kube-scheduler's VolumeBinding plugin: the claims,
//! volumes and classes it follows (reduced to what decides a placement), the PreFilter over a pod's claims
//! and the per-node Filter.
//!
//! A claim is *bound* once it names its volume and the binder has finished (`pv.kubernetes.io/bind-completed`
//! or phase `Bound`). An unbound claim of a `WaitForFirstConsumer` class waits for the scheduler to pick a
//! node (dynamic provisioning); any other unbound claim makes the pod unschedulable until the binder binds it.
//! skiff does not match static volumes to `WaitForFirstConsumer` claims per node: such a class needs a
//! provisioner.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{
    Node, NodeSelector, PersistentVolume, PersistentVolumeClaim, Pod, TopologySelectorTerm,
};
use k8s_openapi::api::storage::v1::StorageClass;

use super::predicates;
use crate::store::{KeyValue, Revision};

#[cfg(test)]
mod tests;

pub const CLAIMS_PREFIX: &str = "/registry/persistentvolumeclaims/";
pub const VOLUMES_PREFIX: &str = "/registry/persistentvolumes/";
pub const CLASSES_PREFIX: &str = "/registry/storageclasses/";

/// The node the scheduler picked for a claim's volume (read by the provisioner).
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// The class annotation that still wins over `spec.storageClassName` (kube's `GetPersistentVolumeClaimClass`).
const BETA_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
/// The provisioner of classes whose volumes are only ever created by hand.
const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

pub const UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";
pub const NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
pub const BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";
pub const PV_NOT_EXIST: &str =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";

/// A claim as the scheduler keeps it.
#[derive(Debug, Clone)]
pub struct Claim {
    pub revision: Revision,
    pub class: String,
    pub volume_name: String,
    pub deleting: bool,
    pub selected_node: Option<String>,
    pub phase: String,
    pub bind_completed: bool,
    /// The uid of its controlling owner: a pod's generic ephemeral volume claim names that pod.
    pub controller_uid: Option<String>,
}

impl Claim {
    pub fn parse(kv: &KeyValue) -> Option<(String, Claim)> {
        let claim: PersistentVolumeClaim = serde_json::from_slice(&kv.value).ok()?;
        let meta = &claim.metadata;
        let key = format!("{}/{}", meta.namespace.as_deref()?, meta.name.as_deref()?);
        let annotations = meta.annotations.as_ref();
        let annotation = |name: &str| annotations.and_then(|a| a.get(name)).cloned();
        let spec = claim.spec.unwrap_or_default();
        let class = annotation(BETA_CLASS)
            .or(spec.storage_class_name)
            .unwrap_or_default();
        let controller_uid = meta
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true))
            .map(|r| r.uid.clone());
        Some((
            key,
            Claim {
                revision: kv.mod_revision,
                class,
                volume_name: spec.volume_name.unwrap_or_default(),
                deleting: meta.deletion_timestamp.is_some(),
                selected_node: annotation(SELECTED_NODE),
                phase: claim.status.and_then(|s| s.phase).unwrap_or_default(),
                bind_completed: annotation(BIND_COMPLETED).is_some(),
                controller_uid,
            },
        ))
    }

    /// Bound to its volume by the binder (kube's `isPVCFullyBound`; skiff also takes phase `Bound`).
    pub fn bound(&self) -> bool {
        !self.volume_name.is_empty() && (self.bind_completed || self.phase == "Bound")
    }
}

/// A volume as the scheduler keeps it.
#[derive(Debug, Clone, Default)]
pub struct Volume {
    /// `spec.nodeAffinity.required`.
    pub affinity: Option<NodeSelector>,
    /// `spec.claimRef` as `namespace/name`.
    pub claim: Option<String>,
}

impl Volume {
    pub fn parse(kv: &KeyValue) -> Option<(String, Volume)> {
        let pv: PersistentVolume = serde_json::from_slice(&kv.value).ok()?;
        let name = pv.metadata.name?;
        let spec = pv.spec.unwrap_or_default();
        let claim = spec
            .claim_ref
            .and_then(|r| Some(format!("{}/{}", r.namespace?, r.name?)));
        let affinity = spec.node_affinity.and_then(|a| a.required);
        Some((name, Volume { affinity, claim }))
    }

    fn fits(&self, node: &Node) -> bool {
        self.affinity
            .as_ref()
            .is_none_or(|s| predicates::matches_any_term(&s.node_selector_terms, node))
    }
}

/// A class as the scheduler keeps it.
#[derive(Debug, Clone, Default)]
pub struct Class {
    pub wait_for_first_consumer: bool,
    pub provisioner: String,
    pub allowed_topologies: Vec<TopologySelectorTerm>,
}

impl Class {
    pub fn parse(kv: &KeyValue) -> Option<(String, Class)> {
        let class: StorageClass = serde_json::from_slice(&kv.value).ok()?;
        let name = class.metadata.name?;
        Some((
            name,
            Class {
                wait_for_first_consumer: class.volume_binding_mode.as_deref()
                    == Some("WaitForFirstConsumer"),
                provisioner: class.provisioner,
                allowed_topologies: class.allowed_topologies.unwrap_or_default(),
            },
        ))
    }

    /// Whether it can create a volume for a claim on `node` (kube's `checkVolumeProvisions`).
    fn provisions_on(&self, node: &Node) -> bool {
        if self.provisioner.is_empty() || self.provisioner == NO_PROVISIONER {
            return false;
        }
        if self.allowed_topologies.is_empty() {
            return true;
        }
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        let labels = node.metadata.labels.as_ref().unwrap_or(&EMPTY);
        // An empty term selects nothing; the terms are ORed, their requirements ANDed.
        self.allowed_topologies.iter().any(|term| {
            let reqs = term.match_label_expressions.as_deref().unwrap_or(&[]);
            !reqs.is_empty()
                && reqs
                    .iter()
                    .all(|r| labels.get(&r.key).is_some_and(|v| r.values.contains(v)))
        })
    }
}

/// Everything the scheduler knows about storage.
#[derive(Default)]
pub struct VolumeCache {
    /// By `namespace/name`.
    pub claims: HashMap<String, Claim>,
    pub volumes: HashMap<String, Volume>,
    pub classes: HashMap<String, Class>,
}

/// One claim a pod uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimUse {
    /// `namespace/name`.
    pub key: String,
    pub name: String,
    /// A generic ephemeral volume: the claim `<pod>-<volume>` that the pod must control.
    pub ephemeral: bool,
}

/// The claims of the pod's `persistentVolumeClaim` and `ephemeral` volumes.
pub fn pod_claims(pod: &Pod) -> Vec<ClaimUse> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let pod_name = pod.metadata.name.as_deref().unwrap_or("");
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_deref());
    volumes
        .unwrap_or(&[])
        .iter()
        .filter_map(|v| {
            let (name, ephemeral) = match (&v.persistent_volume_claim, &v.ephemeral) {
                (Some(pvc), _) => (pvc.claim_name.clone(), false),
                (None, Some(_)) => (format!("{pod_name}-{}", v.name), true),
                (None, None) => return None,
            };
            Some(ClaimUse {
                key: format!("{ns}/{name}"),
                name,
                ephemeral,
            })
        })
        .collect()
}

/// A claim waiting for the scheduler's choice of node.
pub struct Delayed<'a> {
    pub key: &'a str,
    pub claim: &'a Claim,
    class: &'a Class,
}

/// What the pod's claims ask of a node: kube's PreFilter result.
#[derive(Default)]
pub struct VolumePlan<'a> {
    /// The volume of each bound claim; `None` if it does not exist.
    bound: Vec<Option<&'a Volume>>,
    /// Unbound claims of `WaitForFirstConsumer` classes.
    pub delayed: Vec<Delayed<'a>>,
}

/// kube's VolumeBinding PreFilter: every claim exists, is not being deleted or lost, an ephemeral one belongs
/// to the pod, and no unbound claim waits for the binder. `Err` is the reason the pod fits no node.
pub fn prefilter<'a>(
    pod: &Pod,
    uses: &[ClaimUse],
    cache: &'a VolumeCache,
) -> Result<VolumePlan<'a>, String> {
    let mut plan = VolumePlan::default();
    if uses.is_empty() {
        return Ok(plan);
    }
    let mut claims = Vec::with_capacity(uses.len());
    for claim_use in uses {
        let name = &claim_use.name;
        let Some((key, claim)) = cache.claims.get_key_value(&claim_use.key) else {
            return Err(if claim_use.ephemeral {
                format!(
                    "waiting for ephemeral volume controller to create the persistentvolumeclaim {name:?}"
                )
            } else {
                format!("persistentvolumeclaim {name:?} not found")
            });
        };
        if claim.phase == "Lost" {
            return Err(format!(
                "persistentvolumeclaim {name:?} bound to non-existent persistentvolume {:?}",
                claim.volume_name
            ));
        }
        if claim.deleting {
            return Err(format!("persistentvolumeclaim {name:?} is being deleted"));
        }
        if claim_use.ephemeral && claim.controller_uid.as_deref() != pod.metadata.uid.as_deref() {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            let pod_name = pod.metadata.name.as_deref().unwrap_or("");
            return Err(crate::resources::pod::ephemeral::not_owner_message(
                ns, name, pod_name,
            ));
        }
        claims.push((key.as_str(), claim));
    }
    let mut immediate = false;
    for (key, claim) in claims {
        if claim.bound() {
            plan.bound.push(cache.volumes.get(&claim.volume_name));
            continue;
        }
        // No class, a missing class or an Immediate one: the binder should have bound it (a claim
        // pre-bound to a volume by name counts as immediate too).
        let class = Some(claim.class.as_str())
            .filter(|c| !c.is_empty())
            .and_then(|c| cache.classes.get(c));
        match class {
            Some(class) if class.wait_for_first_consumer && claim.volume_name.is_empty() => {
                plan.delayed.push(Delayed { key, claim, class })
            }
            _ => immediate = true,
        }
    }
    if immediate {
        return Err(UNBOUND_IMMEDIATE.to_string());
    }
    Ok(plan)
}

/// kube's VolumeBinding Filter: why the pod's volumes cannot be used on `node` (empty if they can).
pub fn filter(plan: &VolumePlan<'_>, node_name: &str, node: &Node) -> Vec<String> {
    let (mut node_conflict, mut bind_conflict, mut missing) = (false, false, false);
    for volume in &plan.bound {
        match volume {
            None => missing = true,
            Some(volume) if !volume.fits(node) => node_conflict = true,
            Some(_) => continue,
        }
        break;
    }
    for delayed in &plan.delayed {
        if delayed
            .claim
            .selected_node
            .as_deref()
            .is_some_and(|n| n != node_name)
        {
            // Provisioning already started for another node.
            bind_conflict = true;
            break;
        }
        if !delayed.class.provisions_on(node) {
            bind_conflict = true;
        }
    }
    [
        (node_conflict, NODE_CONFLICT),
        (bind_conflict, BIND_CONFLICT),
        (missing, PV_NOT_EXIST),
    ]
    .into_iter()
    .filter(|(failed, _)| *failed)
    .map(|(_, reason)| reason.to_string())
    .collect()
}

impl VolumePlan<'_> {
    /// The delayed claims (`namespace/name`), each with its revision if it already names a node (the filter
    /// let only that node pass), `None` if the chosen node is still to be written on it.
    pub fn pending_claims(&self) -> Vec<(String, Option<Revision>)> {
        self.delayed
            .iter()
            .map(|d| {
                let written = d.claim.selected_node.as_ref().map(|_| d.claim.revision);
                (d.key.to_string(), written)
            })
            .collect()
    }
}
