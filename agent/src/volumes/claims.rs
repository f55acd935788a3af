//! Pod volumes of type `persistentVolumeClaim`, resolved as the kubelet's desired-state populator does:
//! GET the claim, check it is Bound to a volume, GET that PersistentVolume, check its `claimRef` points
//! back at the claim, and take its `hostPath` or `local` source. One GET of each claim and of its volume
//! per pod start; the result is kept with the pod's prepared volumes (the 60 s re-sync does not ask again).
//!
//! A generic ephemeral volume (`ephemeral.volumeClaimTemplate`) is the claim `<pod>-<volume>` that the
//! control plane's ephemeral volume controller made for the pod; it is resolved the same way, once the
//! claim's controller ownerReference is seen to name this pod (kube's `ephemeral.VolumeIsForPod`). It is
//! always read-write (only a `volumeMount` can make it read-only), as the kubelet has it.
//!
//! Failures are reported in the kubelet's words (its `FailedMount` event):
//! `Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[], failed to process
//! volumes=[data]: error processing PVC default/data: PVC is not bound`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::Api;

/// The annotation naming the provisioner of a PersistentVolume.
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// skiff's local-path provisioner (docs/contracts.md, "Storage").
pub const LOCAL_PATH_PROVISIONER: &str = "skiff.io/local-path";
/// Mode of a `DirectoryOrCreate` directory the kubelet creates (`os.MkdirAll(path, 0755)`).
pub const DIR_MODE: u32 = 0o755;
/// Mode of a local-path volume's directory (local-path-provisioner's helper: `mkdir -m 0777 -p`), so any
/// container user can write to a freshly provisioned volume.
pub const LOCAL_PATH_DIR_MODE: u32 = 0o777;

/// Where a claim's volume lives on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `hostPath`: the path, its `type` ("" = no check) and the mode of a directory made for
    /// `DirectoryOrCreate`.
    HostPath {
        path: String,
        type_: String,
        dir_mode: u32,
    },
    /// `local`: a path that must exist.
    Local { path: String },
}

/// A pod volume's claim, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub claim: String,
    /// The PersistentVolume's name.
    pub volume: String,
    pub source: Source,
}

/// The pod's claims that could not be resolved: volume name → the kubelet's per-volume error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimsError {
    pub failed: BTreeMap<String, String>,
}

impl std::fmt::Display for ClaimsError {
    /// The kubelet's `WaitForAttachAndMount` error behind its `Unable to attach or mount volumes` event;
    /// lists print like Go's `%v` of a string slice. Host-path volumes are never "unattached".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = self
            .failed
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        let errors = self
            .failed
            .values()
            .map(String::as_str)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join("; ");
        write!(
            f,
            "Unable to attach or mount volumes: unmounted volumes=[{names}], unattached volumes=[], \
             failed to process volumes=[{names}]: {errors}"
        )
    }
}

impl std::error::Error for ClaimsError {}

/// One pod volume backed by a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimUse {
    pub volume: String,
    pub claim: String,
    /// A generic ephemeral volume: the claim must be controlled by the pod.
    pub ephemeral: bool,
}

/// The claim of the pod's generic ephemeral volume `volume` (kube's `ephemeral.VolumeClaimName`).
pub fn ephemeral_claim_name(pod: &Pod, volume: &str) -> String {
    format!(
        "{}-{volume}",
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The pod's `persistentVolumeClaim` and generic `ephemeral` volumes, in spec order.
pub fn claim_uses(pod: &Pod) -> Vec<ClaimUse> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| {
            let (claim, ephemeral) = match (&v.persistent_volume_claim, &v.ephemeral) {
                (Some(c), _) => (c.claim_name.clone(), false),
                (None, Some(_)) => (ephemeral_claim_name(pod, &v.name), true),
                (None, None) => return None,
            };
            Some(ClaimUse {
                volume: v.name.clone(),
                claim,
                ephemeral,
            })
        })
        .collect()
}

/// The pod's volumes backed by claims: (volume name, claim name).
pub fn claim_volumes(pod: &Pod) -> Vec<(String, String)> {
    claim_uses(pod)
        .into_iter()
        .map(|u| (u.volume, u.claim))
        .collect()
}

/// kube's `ephemeral.VolumeIsForPod`: the claim is in the pod's namespace and controlled by the pod (an
/// ownerReference with `controller: true` and the pod's uid); else the kubelet's error.
pub fn check_ephemeral_owner(pod: &Pod, claim: &PersistentVolumeClaim) -> Result<(), String> {
    let pod_uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let owned = !pod_uid.is_empty()
        && claim.metadata.namespace == pod.metadata.namespace
        && claim
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.controller == Some(true) && r.uid == pod_uid);
    if owned {
        return Ok(());
    }
    let ns = claim.metadata.namespace.as_deref().unwrap_or_default();
    let name = claim.metadata.name.as_deref().unwrap_or_default();
    let pod_ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    Err(format!(
        "PVC {ns}/{name} was not created for pod {pod_ns}/{pod_name} (pod is not owner)"
    ))
}

/// Whether the pod volume `name` is a claim the pod asks for read-only (`persistentVolumeClaim.readOnly`).
pub fn read_only(pod: &Pod, name: &str) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter(|v| v.name == name)
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .any(|c| c.read_only == Some(true))
}

/// A fetched claim that a pod may use: its uid and volume name, or the kubelet's reason why not.
pub fn check_claim(claim: &PersistentVolumeClaim) -> Result<(String, String), String> {
    if claim.metadata.deletion_timestamp.is_some() {
        return Err("PVC is being deleted".into());
    }
    let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase != Some("Bound") {
        return Err("PVC is not bound".into());
    }
    let volume = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .unwrap_or_default();
    if volume.is_empty() {
        return Err("PVC has empty pvc.Spec.VolumeName".into());
    }
    Ok((claim.metadata.uid.clone().unwrap_or_default(), volume))
}

/// Spec fields of a PersistentVolume that are not its volume source.
const NOT_SOURCES: [&str; 9] = [
    "accessModes",
    "capacity",
    "claimRef",
    "mountOptions",
    "nodeAffinity",
    "persistentVolumeReclaimPolicy",
    "storageClassName",
    "volumeMode",
    "volumeAttributesClassName",
];

/// A fetched volume bound to the claim with `claim_uid`: where it is on the host, or why it cannot be used.
pub fn check_volume(
    pv: &PersistentVolume,
    claim_uid: &str,
    storage_dir: &Path,
) -> Result<Source, String> {
    let name = pv.metadata.name.as_deref().unwrap_or_default();
    let spec = pv.spec.as_ref();
    let Some(claim_ref) = spec.and_then(|s| s.claim_ref.as_ref()) else {
        return Err(format!(
            "found PV object {name} but it has a nil pv.Spec.ClaimRef indicating it is not yet bound to the claim"
        ));
    };
    let ref_uid = claim_ref.uid.as_deref().unwrap_or_default();
    if ref_uid != claim_uid {
        return Err(format!(
            "found PV object {name} but its pv.Spec.ClaimRef.UID {ref_uid} does not point to claim.UID {claim_uid}"
        ));
    }
    if let Some(hp) = spec.and_then(|s| s.host_path.as_ref()) {
        return Ok(Source::HostPath {
            path: hp.path.clone(),
            type_: hp.type_.clone().unwrap_or_default(),
            dir_mode: dir_mode(pv, &hp.path, storage_dir),
        });
    }
    if let Some(local) = spec.and_then(|s| s.local.as_ref()) {
        return Ok(Source::Local {
            path: local.path.clone(),
        });
    }
    // Name the source the volume has, as the user wrote it (`nfs`, `csi`, …).
    let other = spec
        .and_then(|s| serde_json::to_value(s).ok())
        .and_then(|v| {
            v.as_object().and_then(|m| {
                m.keys()
                    .find(|k| !NOT_SOURCES.contains(&k.as_str()))
                    .cloned()
            })
        });
    Err(match other {
        Some(kind) => format!("volume source {kind} of PersistentVolume {name} is not supported"),
        None => format!("PersistentVolume {name} has no volume source"),
    })
}

/// The mode of a directory created for a `DirectoryOrCreate` volume: local-path's 0777 for a volume that
/// provisioner made and whose path is directly under the storage dir, else the kubelet's 0755.
pub fn dir_mode(pv: &PersistentVolume, path: &str, storage_dir: &Path) -> u32 {
    let provisioned = pv
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PROVISIONED_BY))
        .is_some_and(|p| p == LOCAL_PATH_PROVISIONER);
    if provisioned && directly_under(Path::new(path), storage_dir) {
        LOCAL_PATH_DIR_MODE
    } else {
        DIR_MODE
    }
}

/// Whether `path` names an entry of `dir` itself (lexically: no `.`/`..` tricks, no deeper levels).
pub fn directly_under(path: &Path, dir: &Path) -> bool {
    let plain = |p: &Path| {
        p.is_absolute()
            && p.components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
    };
    if !plain(path) || !plain(dir) {
        return false;
    }
    path.parent() == Some(dir) && path.file_name().is_some()
}

/// The kubelet's text for a failed GET: the API's own message for an API error (`persistentvolumeclaims
/// "data" not found`), the client's error otherwise.
fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string(),
    }
}

/// Resolve every `persistentVolumeClaim` and generic ephemeral volume of the pod; volume name → where it
/// is. Each claim (and its volume) is fetched once even when several volumes name it. All failures are
/// collected.
pub async fn resolve(
    client: &kube::Client,
    pod: &Pod,
    storage_dir: &Path,
) -> Result<HashMap<String, Resolved>, ClaimsError> {
    let wanted = claim_uses(pod);
    let mut out = HashMap::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let mut by_claim: HashMap<(String, bool), Result<Resolved, String>> = HashMap::new();
    let mut failed = BTreeMap::new();
    for ClaimUse {
        volume,
        claim,
        ephemeral,
    } in wanted
    {
        let key = (claim, ephemeral);
        if !by_claim.contains_key(&key) {
            let owner = ephemeral.then_some(pod);
            let got = resolve_one(&claims, &volumes, (ns, &key.0), owner, storage_dir).await;
            by_claim.insert(key.clone(), got);
        }
        match by_claim.get(&key) {
            Some(Ok(r)) => {
                out.insert(volume, r.clone());
            }
            Some(Err(e)) => {
                failed.insert(volume, e.clone());
            }
            None => {}
        }
    }
    if failed.is_empty() {
        Ok(out)
    } else {
        Err(ClaimsError { failed })
    }
}

/// One claim, in the kubelet's order: the claim (fetched and usable, errors prefixed `error processing
/// PVC <ns>/<name>:`), then for an ephemeral volume of `owner` the ownership, then the volume.
async fn resolve_one(
    claims: &Api<PersistentVolumeClaim>,
    volumes: &Api<PersistentVolume>,
    (ns, claim): (&str, &str),
    owner: Option<&Pod>,
    storage_dir: &Path,
) -> Result<Resolved, String> {
    let processing = |e: String| format!("error processing PVC {ns}/{claim}: {e}");
    let pvc = claims
        .get(claim)
        .await
        .map_err(|e| format!("failed to fetch PVC from API server: {}", api_message(&e)))
        .map_err(processing)?;
    let (uid, volume) = check_claim(&pvc).map_err(processing)?;
    if let Some(pod) = owner {
        check_ephemeral_owner(pod, &pvc)?;
    }
    let pv = volumes.get(&volume).await.map_err(|e| {
        processing(format!(
            "failed to fetch PV {volume} from API server: {}",
            api_message(&e)
        ))
    })?;
    let source = check_volume(&pv, &uid, storage_dir).map_err(processing)?;
    Ok(Resolved {
        claim: claim.to_string(),
        volume,
        source,
    })
}

#[cfg(test)]
#[path = "claims_tests.rs"]
mod tests;
