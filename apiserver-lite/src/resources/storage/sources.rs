//! The volume source of a PersistentVolume and its node affinity (kube's `ValidatePersistentVolumeSpec`
//! source part, `validateVolumeNodeAffinity`, `ValidateNodeSelector`).
//!
//! Exactly one source must be given ([`one_source`], which pod volumes share). `hostPath`, `local`, `nfs`
//! and `csi` are checked field by field as kube does; the other in-tree sources kube still accepts are
//! counted (so mixing is refused) but their fields are not checked.

use serde_json::{Value, json};

use super::names::{
    check_label, check_subdomain, invalid_each, label_value_errors, qualified_name_errors,
};
use crate::status::FieldError;

/// The sources of a PersistentVolumeSpec in kube's checking order, with the field name kube reports when
/// a second one is given.
const SOURCES: &[(&str, &str)] = &[
    ("hostPath", "hostPath"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("nfs", "nfs"),
    ("rbd", "rbd"),
    ("quobyte", "quobyte"),
    ("cephfs", "cephFS"),
    ("iscsi", "iscsi"),
    ("cinder", "cinder"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("scaleIO", "scaleIO"),
    ("local", "local"),
    ("storageos", "storageos"),
    ("csi", "csi"),
];

/// kube's `supportedHostPathTypes`, sorted as kube lists them in its error.
pub(crate) const HOST_PATH_TYPES: &[&str] = &[
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
];

/// The keys of `spec` that are volume sources (null ones are absent).
pub fn source_keys(spec: &Value) -> Vec<&'static str> {
    SOURCES
        .iter()
        .filter(|(k, _)| spec.get(*k).is_some_and(|v| !v.is_null()))
        .map(|(k, _)| *k)
        .collect()
}

/// The source part of a spec, for the immutability check.
pub fn source_part(spec: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for k in source_keys(spec) {
        out.insert(k.to_string(), spec[k].clone());
    }
    Value::Object(out)
}

fn text<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// `validatePathNoBacksteps`.
pub(crate) fn no_backsteps(path: &str, field: &str, errs: &mut Vec<FieldError>) {
    if path.split('/').any(|p| p == "..") {
        errs.push(FieldError::invalid(
            field,
            &json!(path),
            "must not contain '..'",
        ));
    }
}

/// kube's "exactly one volume source" rule, shared by PersistentVolumes and pod volumes: `sources` lists
/// (JSON key, name kube reports for a second source) in kube's checking order. The first source given is
/// handed to `check` with its key; each later one is `Forbidden` at `<path>.<reported name>` (except the
/// keys in `never_second`, which kube counts and checks without refusing); none is `Required` at `path`.
pub(crate) fn one_source(
    obj: &Value,
    sources: &[(&str, &str)],
    never_second: &[&str],
    path: &str,
    errs: &mut Vec<FieldError>,
    mut check: impl FnMut(&str, &Value, &mut Vec<FieldError>),
) {
    let mut count = 0;
    for (key, reported) in sources {
        let Some(src) = obj.get(*key).filter(|v| !v.is_null()) else {
            continue;
        };
        if count > 0 && !never_second.contains(key) {
            errs.push(FieldError::forbidden(
                format!("{path}.{reported}"),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        check(key, src, errs);
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a volume type"));
    }
}

/// Check the sources of `spec`; `has_affinity` says whether a node affinity was given (`local` needs one).
pub fn validate(spec: &Value, has_affinity: bool, errs: &mut Vec<FieldError>) {
    // kube never refuses a flexVolume as a second source of a PersistentVolume.
    one_source(
        spec,
        SOURCES,
        &["flexVolume"],
        "spec",
        errs,
        |key, src, errs| {
            let path = format!("spec.{key}");
            match key {
                "hostPath" => host_path(src, &path, errs),
                "local" => {
                    local(src, &path, errs);
                    if !has_affinity {
                        errs.push(FieldError::required(
                            "spec.nodeAffinity",
                            "Local volume requires node affinity",
                        ));
                    }
                }
                "nfs" => nfs(src, &path, errs),
                "csi" => csi(src, &path, errs),
                _ => {}
            }
        },
    );
}

/// kube's `validateHostPathVolumeSource`, plus an absolute path: the agent bind-mounts it as is.
fn host_path(src: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let p = text(src, "path");
    if p.is_empty() {
        errs.push(FieldError::required(format!("{path}.path"), ""));
        return;
    }
    if !p.starts_with('/') {
        errs.push(FieldError::invalid(
            format!("{path}.path"),
            &json!(p),
            "must be an absolute path",
        ));
    }
    no_backsteps(p, &format!("{path}.path"), errs);
    if let Some(t) = src.get("type").and_then(Value::as_str)
        && !HOST_PATH_TYPES.contains(&t)
    {
        errs.push(FieldError::not_supported(
            format!("{path}.type"),
            &json!(t),
            HOST_PATH_TYPES,
        ));
    }
}

/// kube's `validateLocalVolumeSource` (the absolute-path check as kube has it since 1.33).
fn local(src: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let p = text(src, "path");
    if p.is_empty() {
        errs.push(FieldError::required(format!("{path}.path"), ""));
        return;
    }
    if !p.starts_with('/') {
        errs.push(FieldError::invalid(
            path,
            &json!(p),
            "must be an absolute path",
        ));
    }
    no_backsteps(p, &format!("{path}.path"), errs);
}

/// kube's `validateNFSVolumeSource` (PersistentVolumes and pod volumes share it; an empty path is both
/// required and not absolute).
pub(crate) fn nfs(src: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if text(src, "server").is_empty() {
        errs.push(FieldError::required(format!("{path}.server"), ""));
    }
    let p = text(src, "path");
    if p.is_empty() {
        errs.push(FieldError::required(format!("{path}.path"), ""));
    }
    if !p.starts_with('/') {
        errs.push(FieldError::invalid(
            format!("{path}.path"),
            &json!(p),
            "must be an absolute path",
        ));
    }
}

/// kube's `ValidateCSIDriverName` (PersistentVolumes and pod volumes share it).
pub(crate) fn csi_driver(driver: &str, dpath: &str, errs: &mut Vec<FieldError>) {
    if driver.is_empty() {
        errs.push(FieldError::required(dpath, ""));
    }
    if driver.len() > 63 {
        errs.push(FieldError {
            reason: "FieldValueTooLong",
            field: dpath.to_string(),
            message: "Too long: may not be more than 63 bytes".to_string(),
        });
    }
    for m in super::names::subdomain_errors(&driver.to_lowercase()) {
        errs.push(FieldError::invalid(dpath, &json!(driver), &m));
    }
}

/// kube's `validateCSIPersistentVolumeSource`.
fn csi(src: &Value, path: &str, errs: &mut Vec<FieldError>) {
    csi_driver(text(src, "driver"), &format!("{path}.driver"), errs);
    if text(src, "volumeHandle").is_empty() {
        errs.push(FieldError::required(format!("{path}.volumeHandle"), ""));
    }
    for r in [
        "controllerPublishSecretRef",
        "controllerExpandSecretRef",
        "nodePublishSecretRef",
        "nodeExpandSecretRef",
    ] {
        let Some(sr) = src.get(r).filter(|v| !v.is_null()) else {
            continue;
        };
        let (name, ns) = (text(sr, "name"), text(sr, "namespace"));
        let rpath = format!("{path}.{r}");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{rpath}.name"), ""));
        } else {
            errs.extend(check_subdomain(&format!("{rpath}.name"), name));
        }
        if ns.is_empty() {
            errs.push(FieldError::required(format!("{rpath}.namespace"), ""));
        } else {
            errs.extend(check_label(&format!("{rpath}.namespace"), ns));
        }
    }
}

/// kube's `validateVolumeNodeAffinity`: `required` must be a valid node selector.
pub fn validate_affinity(affinity: &Value, errs: &mut Vec<FieldError>) {
    const PATH: &str = "spec.nodeAffinity.required";
    let Some(required) = affinity.get("required").filter(|r| !r.is_null()) else {
        errs.push(FieldError::required(
            PATH,
            "must specify required node constraints",
        ));
        return;
    };
    let terms = required
        .get("nodeSelectorTerms")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if terms.is_empty() {
        errs.push(FieldError::required(
            format!("{PATH}.nodeSelectorTerms"),
            "must have at least one node selector term",
        ));
    }
    for (i, term) in terms.iter().enumerate() {
        let tpath = format!("{PATH}.nodeSelectorTerms[{i}]");
        let list = |k: &str| {
            term.get(k)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        for (j, req) in list("matchExpressions").iter().enumerate() {
            requirement(req, &format!("{tpath}.matchExpressions[{j}]"), errs);
        }
        for (j, req) in list("matchFields").iter().enumerate() {
            field_requirement(req, &format!("{tpath}.matchFields[{j}]"), errs);
        }
    }
}

fn values(req: &Value) -> Vec<&str> {
    req.get("values")
        .and_then(Value::as_array)
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// kube's `ValidateNodeSelectorRequirement`.
fn requirement(req: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let vals = values(req);
    let vpath = format!("{path}.values");
    match text(req, "operator") {
        "In" | "NotIn" if vals.is_empty() => errs.push(FieldError::required(
            &vpath,
            "must be specified when `operator` is 'In' or 'NotIn'",
        )),
        "Exists" | "DoesNotExist" if !vals.is_empty() => errs.push(FieldError::forbidden(
            &vpath,
            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        )),
        "Gt" | "Lt" if vals.len() != 1 => errs.push(FieldError::required(
            &vpath,
            "must be specified single value when `operator` is 'Lt' or 'Gt'",
        )),
        "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
        other => errs.push(FieldError::invalid(
            format!("{path}.operator"),
            &json!(other),
            "not a valid selector operator",
        )),
    }
    let key = text(req, "key");
    errs.extend(invalid_each(
        &format!("{path}.key"),
        key,
        qualified_name_errors(key),
    ));
    for (i, v) in vals.iter().enumerate() {
        errs.extend(invalid_each(
            &format!("{vpath}[{i}]"),
            v,
            label_value_errors(v),
        ));
    }
}

/// kube's `ValidateNodeFieldSelectorRequirement` (only `metadata.name`, one value for In/NotIn).
fn field_requirement(req: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match text(req, "operator") {
        "In" | "NotIn" if values(req).len() != 1 => errs.push(FieldError::required(
            format!("{path}.values"),
            "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
        )),
        "In" | "NotIn" => {}
        other => errs.push(FieldError::invalid(
            format!("{path}.operator"),
            &json!(other),
            "not a valid selector operator",
        )),
    }
    let key = text(req, "key");
    if key != "metadata.name" {
        errs.push(FieldError::invalid(
            format!("{path}.key"),
            &json!(key),
            "not a valid field selector key",
        ));
    }
}
