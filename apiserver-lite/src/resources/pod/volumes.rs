//! Pod volumes as kube 1.32's API server has them: the v1 defaults of volume sources (`SetDefaults_Volume`,
//! `…VolumeSource` defaults) and `ValidateVolumes` / `validateVolumeSource` with kube's field paths and
//! messages, for pods and for the pod templates of workloads alike (the caller prefixes the paths).
//!
//! Every source kube knows is counted (exactly one per volume), including the ones skiff's agent cannot
//! mount: kube accepts those, and the agent reports them on the pod. The file-projecting sources
//! (configMap, secret, downwardAPI, projected) are in [`files`].

mod files;
mod in_tree;

use std::collections::HashSet;

use serde_json::{Value, json};

use super::ephemeral;
use crate::resources::storage::{self, quantity};
use crate::status::FieldError;

pub use files::DEFAULT_MODE;

/// The sources of a pod volume in kube's checking order, each with the field name kube reports when it
/// is a second source (kube's own spellings: `cephFS`, and `downwarAPI`, sic).
pub const SOURCES: &[(&str, &str)] = &[
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
];

/// kube's `InclusiveRangeError(1, 255)`, its message for a disk partition.
const PARTITION_MSG: &str = "must be between 1 and 255, inclusive";
const LUN_MSG: &str = "must be between 0 and 255, inclusive";

fn text<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn set(v: &Value, k: &str) -> bool {
    v.get(k).is_some_and(|x| !x.is_null())
}

fn nonempty_list(v: &Value, k: &str) -> bool {
    v.get(k)
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// The v1 defaults of a pod spec's volumes: a volume without any source is an `emptyDir`; a hostPath's
/// `type` is `""`; configMap, secret, downwardAPI and projected sources get `defaultMode: 420` (0644);
/// field selectors `apiVersion: v1`, resource selectors `divisor: "0"` (how kube prints the unset
/// quantity), token projections `expirationSeconds: 3600`; an ephemeral claim `volumeMode: Filesystem`.
pub fn apply_defaults(spec: &mut Value) {
    ephemeral::apply_defaults(spec);
    let Some(vols) = spec.get_mut("volumes").and_then(Value::as_array_mut) else {
        return;
    };
    for v in vols.iter_mut().filter_map(Value::as_object_mut) {
        if !SOURCES
            .iter()
            .any(|(k, _)| v.get(*k).is_some_and(|s| !s.is_null()))
        {
            v.insert("emptyDir".into(), json!({}));
        }
        if let Some(hp) = v.get_mut("hostPath").and_then(Value::as_object_mut)
            && hp.get("type").is_none_or(Value::is_null)
        {
            hp.insert("type".into(), json!(""));
        }
        for key in ["configMap", "secret", "downwardAPI", "projected"] {
            if let Some(src) = v.get_mut(key) {
                files::apply_defaults(key, src);
            }
        }
    }
}

/// kube's `ValidateVolumes` for the volumes of `spec`, paths `spec.volumes[i]…`; `pod_name` (empty for a
/// template) enables the checks of the claims ephemeral volumes create. Returns the names of the volumes
/// without errors (the only ones mounts may name, as in kube) and the errors.
pub fn validate(spec: &Value, pod_name: &str) -> (HashSet<String>, Vec<FieldError>) {
    let mut names = HashSet::new();
    let mut errs = Vec::new();
    let vols = spec
        .get("volumes")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    // The claims the ephemeral volumes of this pod will create.
    let created: HashSet<String> = if pod_name.is_empty() {
        HashSet::new()
    } else {
        vols.iter()
            .filter(|v| set(v, "ephemeral"))
            .map(|v| ephemeral::claim_name(pod_name, text(v, "name")))
            .collect()
    };
    for (i, v) in vols.iter().enumerate() {
        let path = format!("spec.volumes[{i}]");
        let name = text(v, "name");
        let mut el = Vec::new();
        validate_source(v, &path, name, pod_name, &mut el);
        let name_path = format!("{path}.name");
        if name.is_empty() {
            el.push(FieldError::required(&name_path, ""));
        } else {
            el.extend(storage::check_label(&name_path, name));
        }
        if names.contains(name) {
            el.push(FieldError::duplicate(&name_path, &json!(name)));
        }
        if el.is_empty() {
            names.insert(name.to_string());
        } else {
            errs.append(&mut el);
        }
        let claim = v.pointer("/persistentVolumeClaim/claimName");
        if let Some(claim) = claim.and_then(Value::as_str)
            && created.contains(claim)
        {
            errs.push(FieldError::invalid(
                format!("{path}.persistentVolumeClaim.claimName"),
                &json!(claim),
                "must not reference a PVC that gets created for an ephemeral volume",
            ));
        }
    }
    (names, errs)
}

/// kube's `validateVolumeSource`: exactly one source, checked field by field.
fn validate_source(
    vol: &Value,
    path: &str,
    name: &str,
    pod_name: &str,
    errs: &mut Vec<FieldError>,
) {
    storage::one_source(vol, SOURCES, &[], path, errs, |key, src, errs| {
        let p = format!("{path}.{key}");
        match key {
            "emptyDir" => empty_dir(src, &p, errs),
            "hostPath" => host_path(src, &p, errs),
            "gitRepo" => {
                required(src, "repository", &p, errs);
                files::local_descending_path(
                    text(src, "directory"),
                    &format!("{p}.directory"),
                    errs,
                );
            }
            // kube checks this source at `persistentDisk`.
            "gcePersistentDisk" => disk(src, "pdName", &format!("{path}.persistentDisk"), errs),
            "awsElasticBlockStore" => disk(src, "volumeID", &p, errs),
            "nfs" => storage::nfs(src, &p, errs),
            "iscsi" => in_tree::iscsi(src, &p, name, path, errs),
            "glusterfs" => required_all(src, &["endpoints", "path"], &p, errs),
            "flocker" => in_tree::flocker(src, &p, errs),
            "persistentVolumeClaim" => required(src, "claimName", &p, errs),
            "rbd" => {
                required_list(src, "monitors", &p, errs);
                required(src, "image", &p, errs);
            }
            "cinder" => {
                required(src, "volumeID", &p, errs);
                secret_ref_name(src, &p, errs);
            }
            "cephfs" => required_list(src, "monitors", &p, errs),
            "quobyte" => in_tree::quobyte(src, &p, errs),
            "fc" => in_tree::fc(src, &p, errs),
            "flexVolume" => in_tree::flex_volume(src, &p, errs),
            "azureFile" => required_all(src, &["secretName", "shareName"], &p, errs),
            "vsphereVolume" => required(src, "volumePath", &p, errs),
            "photonPersistentDisk" => required(src, "pdID", &p, errs),
            "portworxVolume" => required(src, "volumeID", &p, errs),
            "azureDisk" => in_tree::azure_disk(src, &p, errs),
            "storageos" => in_tree::storageos(src, &p, errs),
            "scaleIO" => required_all(src, &["gateway", "system", "volumeName"], &p, errs),
            "csi" => csi(src, &p, errs),
            "ephemeral" => {
                errs.extend(ephemeral::validate_source(src, &p));
                ephemeral_claim_name(pod_name, name, path, errs);
            }
            "image" => required(src, "reference", &p, errs),
            _ => files::validate(key, src, &p, errs),
        }
    });
}

fn required(src: &Value, field: &str, path: &str, errs: &mut Vec<FieldError>) {
    if text(src, field).is_empty() {
        errs.push(FieldError::required(format!("{path}.{field}"), ""));
    }
}

fn required_all(src: &Value, fields: &[&str], path: &str, errs: &mut Vec<FieldError>) {
    for f in fields {
        required(src, f, path, errs);
    }
}

fn required_list(src: &Value, field: &str, path: &str, errs: &mut Vec<FieldError>) {
    if !nonempty_list(src, field) {
        errs.push(FieldError::required(format!("{path}.{field}"), ""));
    }
}

fn secret_ref_name(src: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(r) = src.get("secretRef").filter(|r| !r.is_null())
        && text(r, "name").is_empty()
    {
        errs.push(FieldError::required(format!("{path}.secretRef.name"), ""));
    }
}

/// An integer field outside `range` is `Invalid` with `msg`.
fn in_range(
    src: &Value,
    field: &str,
    range: std::ops::RangeInclusive<i64>,
    path: &str,
    msg: &str,
    errs: &mut Vec<FieldError>,
) {
    if let Some(n) = src.get(field).and_then(Value::as_i64)
        && !range.contains(&n)
    {
        errs.push(FieldError::invalid(
            format!("{path}.{field}"),
            &json!(n),
            msg,
        ));
    }
}

/// `emptyDir`: a size limit must be a valid, non-negative quantity (kube accepts any medium; the
/// kubelet refuses an unknown one when it mounts).
fn empty_dir(src: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let Some(limit) = src.get("sizeLimit").filter(|l| !l.is_null()) else {
        return;
    };
    let field = format!("{path}.sizeLimit");
    match limit.as_str().and_then(quantity::parse) {
        None => errs.push(FieldError::invalid(field, limit, quantity::QUANTITY_MSG)),
        Some(n) if n < 0 => errs.push(FieldError::forbidden(
            field,
            "SizeLimit field must be a valid resource quantity",
        )),
        Some(_) => {}
    }
}

/// kube's `validateHostPathVolumeSource`.
fn host_path(src: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let p = text(src, "path");
    if p.is_empty() {
        errs.push(FieldError::required(format!("{path}.path"), ""));
        return;
    }
    storage::no_backsteps(p, &format!("{path}.path"), errs);
    if let Some(t) = src.get("type").filter(|t| !t.is_null()) {
        let ty = t.as_str().unwrap_or("");
        if !storage::HOST_PATH_TYPES.contains(&ty) {
            errs.push(FieldError::not_supported(
                format!("{path}.type"),
                t,
                storage::HOST_PATH_TYPES,
            ));
        }
    }
}

/// GCE and AWS disks: the disk's id is required, the partition at most 255.
fn disk(src: &Value, id: &str, path: &str, errs: &mut Vec<FieldError>) {
    required(src, id, path, errs);
    in_range(src, "partition", 0..=255, path, PARTITION_MSG, errs);
}

/// kube's `validateCSIVolumeSource`: the driver's name, and a node-publish secret's name (whose
/// format errors kube reports at `csi.name`).
fn csi(src: &Value, path: &str, errs: &mut Vec<FieldError>) {
    storage::csi_driver(text(src, "driver"), &format!("{path}.driver"), errs);
    if let Some(r) = src.get("nodePublishSecretRef").filter(|r| !r.is_null()) {
        let name = text(r, "name");
        if name.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.nodePublishSecretRef.name"),
                "",
            ));
        } else {
            errs.extend(storage::check_subdomain(&format!("{path}.name"), name));
        }
    }
}

/// The claim an ephemeral volume creates, `<pod>-<volume>`, must be a valid object name.
fn ephemeral_claim_name(pod_name: &str, name: &str, vol_path: &str, errs: &mut Vec<FieldError>) {
    if pod_name.is_empty() || name.is_empty() {
        return;
    }
    let claim = ephemeral::claim_name(pod_name, name);
    for msg in storage::subdomain_errors(&claim) {
        errs.push(FieldError::invalid(
            format!("{vol_path}.name"),
            &json!(name),
            &format!("PVC name {claim:?}: {msg}"),
        ));
    }
}

#[cfg(test)]
mod tests;
