//! The in-tree sources of network and cloud disks skiff's agent does not mount (kube still validates
//! them): kube's `validateISCSIVolumeSource`, `validateFlockerVolumeSource`, `validateQuobyteVolumeSource`,
//! `validateFCVolumeSource`, `validateFlexVolumeSource`, `validateAzureDisk`, `validateStorageOSVolumeSource`.

use serde_json::{Value, json};

use super::{LUN_MSG, in_range, nonempty_list, required, secret_ref_name, set, text};
use crate::resources::storage;
use crate::status::FieldError;

/// kube's `validateISCSIVolumeSource` (the IQN's prefix, not its full pattern).
pub(super) fn iscsi(
    src: &Value,
    path: &str,
    name: &str,
    vol_path: &str,
    errs: &mut Vec<FieldError>,
) {
    required(src, "targetPortal", path, errs);
    let iqn = text(src, "iqn");
    if iqn.is_empty() {
        errs.push(FieldError::required(format!("{path}.iqn"), ""));
    } else if !["iqn", "eui", "naa"].iter().any(|p| iqn.starts_with(p)) {
        errs.push(FieldError::invalid(
            format!("{path}.iqn"),
            &json!(iqn),
            "must be valid format starting with iqn, eui, or naa",
        ));
    }
    in_range(src, "lun", 0..=255, path, LUN_MSG, errs);
    let chap = |k: &str| src.get(k).and_then(Value::as_bool) == Some(true);
    if (chap("chapAuthDiscovery") || chap("chapAuthSession")) && !set(src, "secretRef") {
        errs.push(FieldError::required(format!("{path}.secretRef"), ""));
    }
    if let Some(initiator) = src.get("initiatorName").and_then(Value::as_str) {
        if !["iqn", "eui", "naa"]
            .iter()
            .any(|p| initiator.starts_with(p))
        {
            errs.push(FieldError::invalid(
                format!("{path}.initiatorname"),
                &json!(initiator),
                "must be valid format starting with iqn, eui, or naa",
            ));
        }
        if name.len() + 1 + text(src, "targetPortal").len() > 64 {
            errs.push(FieldError::invalid(
                format!("{vol_path}.name"),
                &json!(name),
                "Total length of <volume name>:<iscsi.targetPortal> must be under 64 characters if iscsi.initiatorName is specified.",
            ));
        }
    }
}

/// kube's `validateFlockerVolumeSource`.
pub(super) fn flocker(src: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let (name, uuid) = (text(src, "datasetName"), text(src, "datasetUUID"));
    if name.is_empty() && uuid.is_empty() {
        errs.push(FieldError::required(
            path,
            "one of datasetName and datasetUUID is required",
        ));
    }
    if !name.is_empty() && !uuid.is_empty() {
        errs.push(FieldError::invalid(
            path,
            &json!("resource"),
            "datasetName and datasetUUID can not be specified simultaneously",
        ));
    }
    if name.contains('/') {
        errs.push(FieldError::invalid(
            format!("{path}.datasetName"),
            &json!(name),
            "must not contain '/'",
        ));
    }
}

/// kube's `validateQuobyteVolumeSource`.
pub(super) fn quobyte(src: &Value, path: &str, errs: &mut Vec<FieldError>) {
    const REGISTRY_MSG: &str = "must be a host:port pair or multiple pairs separated by commas";
    let registry = text(src, "registry");
    if registry.is_empty() {
        errs.push(FieldError::required(
            format!("{path}.registry"),
            REGISTRY_MSG,
        ));
    } else if text(src, "tenant").len() >= 65 {
        errs.push(FieldError::required(
            format!("{path}.tenant"),
            "must be a UUID and may not exceed a length of 64 characters",
        ));
    } else {
        for pair in registry.split(',') {
            if !is_host_port(pair) {
                errs.push(FieldError::invalid(
                    format!("{path}.registry"),
                    &json!(registry),
                    REGISTRY_MSG,
                ));
            }
        }
    }
    required(src, "volume", path, errs);
}

/// Whether Go's `net.SplitHostPort` accepts `s`: `host:port` or `[host]:port`.
fn is_host_port(s: &str) -> bool {
    match s.strip_prefix('[') {
        Some(rest) => rest
            .split_once(']')
            .is_some_and(|(h, p)| !h.contains('[') && p.starts_with(':') && !p[1..].contains(':')),
        None => s.matches(':').count() == 1 && !s.contains(['[', ']']),
    }
}

/// kube's `validateFCVolumeSource`.
pub(super) fn fc(src: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let (wwns, wwids) = (
        nonempty_list(src, "targetWWNs"),
        nonempty_list(src, "wwids"),
    );
    let field = format!("{path}.targetWWNs");
    if !wwns && !wwids {
        errs.push(FieldError::required(
            &field,
            "must specify either targetWWNs or wwids, but not both",
        ));
    }
    if wwns && wwids {
        errs.push(FieldError::invalid(
            &field,
            &src["targetWWNs"],
            "targetWWNs and wwids can not be specified simultaneously",
        ));
    }
    if wwns {
        if set(src, "lun") {
            in_range(src, "lun", 0..=255, path, LUN_MSG, errs);
        } else {
            errs.push(FieldError::required(
                format!("{path}.lun"),
                "lun is required if targetWWNs is specified",
            ));
        }
    }
}

/// kube's `validateFlexVolumeSource`: a driver, and no option in kube's own namespaces.
pub(super) fn flex_volume(src: &Value, path: &str, errs: &mut Vec<FieldError>) {
    required(src, "driver", path, errs);
    for k in src
        .get("options")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|o| o.keys())
    {
        let namespace = k.split_once('/').map_or(k.as_str(), |(ns, _)| ns);
        let normalized = format!(".{}", namespace.to_lowercase());
        if normalized.ends_with(".kubernetes.io") || normalized.ends_with(".k8s.io") {
            errs.push(FieldError::invalid(
                format!("{path}.options[{k}]"),
                &json!(k),
                "kubernetes.io and k8s.io namespaces are reserved",
            ));
        }
    }
}

/// kube's `validateAzureDisk`.
pub(super) fn azure_disk(src: &Value, path: &str, errs: &mut Vec<FieldError>) {
    const CACHING: &[&str] = &["None", "ReadOnly", "ReadWrite"];
    const KINDS: &[&str] = &["Dedicated", "Managed", "Shared"];
    required(src, "diskName", path, errs);
    let uri = text(src, "diskURI");
    if uri.is_empty() {
        errs.push(FieldError::required(format!("{path}.diskURI"), ""));
    }
    if let Some(c) = src.get("cachingMode").filter(|c| !c.is_null())
        && !CACHING.contains(&c.as_str().unwrap_or(""))
    {
        errs.push(FieldError::not_supported(
            format!("{path}.cachingMode"),
            c,
            CACHING,
        ));
    }
    let Some(kind) = src.get("kind").filter(|k| !k.is_null()) else {
        return;
    };
    if !KINDS.contains(&kind.as_str().unwrap_or("")) {
        errs.push(FieldError::not_supported(
            format!("{path}.kind"),
            kind,
            KINDS,
        ));
    }
    let (prefix, supported) = if kind == "Managed" {
        (
            "/subscriptions/",
            "/subscriptions/{sub-id}/resourcegroups/{group-name}/providers/microsoft.compute/disks/{disk-id}",
        )
    } else {
        (
            "https://",
            "https://{account-name}.blob.core.windows.net/{container-name}/{disk-name}.vhd",
        )
    };
    if !uri.starts_with(prefix) {
        errs.push(FieldError::not_supported(
            format!("{path}.diskURI"),
            &json!(uri),
            &[supported],
        ));
    }
}

/// kube's `validateStorageOSVolumeSource`.
pub(super) fn storageos(src: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let name = text(src, "volumeName");
    if name.is_empty() {
        errs.push(FieldError::required(format!("{path}.volumeName"), ""));
    } else {
        errs.extend(storage::check_label(&format!("{path}.volumeName"), name));
    }
    let ns = text(src, "volumeNamespace");
    if !ns.is_empty() {
        errs.extend(storage::check_label(&format!("{path}.volumeNamespace"), ns));
    }
    secret_ref_name(src, path, errs);
}
