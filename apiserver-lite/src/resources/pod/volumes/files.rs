//! The volume sources that project files (configMap, secret, downwardAPI, projected): their v1 defaults
//! and kube's `validateConfigMapVolumeSource`, `validateSecretVolumeSource`, `validateKeyToPath`,
//! `validateDownwardAPIVolumeSource`, `validateProjectedVolumeSource` and the path rules
//! (`validateLocalDescendingPath`, `ValidateLocalNonReservedPath`), with kube's paths — including its
//! quirks: a downwardAPI volume's item errors are reported at the source (`downwardAPI.path`, not
//! `downwardAPI.items[j].path`), a token projection's path at `projected.path`.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::resources::storage::{self, quantity};
use crate::status::FieldError;

/// The `defaultMode` kube gives these sources (0644).
pub const DEFAULT_MODE: i64 = 0o644;
/// A token projection's default lifetime (one hour).
const TOKEN_EXPIRATION_DEFAULT: i64 = 3600;
const MODE_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";
/// The pod fields a downwardAPI volume file may show (`validVolumeDownwardAPIFieldPathExpressions`).
const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];
/// Every label kube's `ConvertDownwardAPIFieldLabel` knows for v1 pods (`spec.host` is read as
/// `spec.nodeName`).
const KNOWN_FIELD_LABELS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.serviceAccountName",
    "spec.schedulerName",
    "status.phase",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
/// `validContainerResourceFieldPathExpressions`, sorted as kube lists them.
const RESOURCE_FIELDS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];
const BYTE_DIVISORS: &[&str] = &[
    "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
];

fn text<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn items(v: &Value) -> &[Value] {
    v.get("items")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn set_default(obj: &mut Value, key: &str, v: Value) {
    if let Some(m) = obj.as_object_mut()
        && m.get(key).is_none_or(Value::is_null)
    {
        m.insert(key.to_string(), v);
    }
}

/// The v1 defaults of the source `key` (configMap, secret, downwardAPI or projected).
pub(super) fn apply_defaults(key: &str, src: &mut Value) {
    if !src.is_object() {
        return;
    }
    set_default(src, "defaultMode", json!(DEFAULT_MODE));
    match key {
        "downwardAPI" => default_downward_items(src),
        "projected" => {
            for s in src
                .get_mut("sources")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(t) = s.get_mut("serviceAccountToken").filter(|t| t.is_object()) {
                    set_default(t, "expirationSeconds", json!(TOKEN_EXPIRATION_DEFAULT));
                }
                if let Some(d) = s.get_mut("downwardAPI").filter(|d| d.is_object()) {
                    default_downward_items(d);
                }
            }
        }
        _ => {}
    }
}

/// `apiVersion: v1` on field selectors (`SetDefaults_ObjectFieldSelector`) and the unset divisor of
/// resource selectors, which kube prints as `"0"`.
fn default_downward_items(src: &mut Value) {
    for item in src
        .get_mut("items")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(f) = item.get_mut("fieldRef").filter(|f| f.is_object()) {
            set_default(f, "apiVersion", json!("v1"));
        }
        if let Some(r) = item.get_mut("resourceFieldRef").filter(|r| r.is_object()) {
            set_default(r, "divisor", json!("0"));
        }
    }
}

/// Check the file-projecting source `key` at `path` (`spec.volumes[i].<key>`).
pub(super) fn validate(key: &str, src: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match key {
        "configMap" | "secret" => {
            let name_field = if key == "secret" {
                "secretName"
            } else {
                "name"
            };
            if text(src, name_field).is_empty() {
                errs.push(FieldError::required(format!("{path}.{name_field}"), ""));
            }
            mode(src, "defaultMode", path, errs);
            for (j, kp) in items(src).iter().enumerate() {
                key_to_path(kp, &format!("{path}.items[{j}]"), errs);
            }
        }
        "downwardAPI" => {
            mode(src, "defaultMode", path, errs);
            for file in items(src) {
                downward_file(file, path, errs);
            }
        }
        "projected" => {
            mode(src, "defaultMode", path, errs);
            projection_sources(src, path, errs);
        }
        _ => {}
    }
}

/// A file mode must be within 0..=0777.
fn mode(src: &Value, field: &str, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(m) = src.get(field).and_then(Value::as_i64)
        && !(0..=0o777).contains(&m)
    {
        errs.push(FieldError::invalid(
            format!("{path}.{field}"),
            &json!(m),
            MODE_MSG,
        ));
    }
}

/// kube's `validateLocalDescendingPath`: relative, without `..` elements.
pub(super) fn local_descending_path(p: &str, field: &str, errs: &mut Vec<FieldError>) {
    if p.starts_with('/') {
        errs.push(FieldError::invalid(
            field,
            &json!(p),
            "must be a relative path",
        ));
    }
    storage::no_backsteps(p, field, errs);
}

/// kube's `ValidateLocalNonReservedPath`: a local descending path that does not start with `..`.
fn local_non_reserved_path(p: &str, field: &str, errs: &mut Vec<FieldError>) {
    local_descending_path(p, field, errs);
    if p.starts_with("..") && !p.starts_with("../") {
        errs.push(FieldError::invalid(
            field,
            &json!(p),
            "must not start with '..'",
        ));
    }
}

/// kube's `validateKeyToPath`.
fn key_to_path(kp: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if text(kp, "key").is_empty() {
        errs.push(FieldError::required(format!("{path}.key"), ""));
    }
    let p = text(kp, "path");
    if p.is_empty() {
        errs.push(FieldError::required(format!("{path}.path"), ""));
    }
    local_non_reserved_path(p, &format!("{path}.path"), errs);
    mode(kp, "mode", path, errs);
}

/// kube's `validateDownwardAPIVolumeFile`, errors at `path`.
fn downward_file(file: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let p = text(file, "path");
    if p.is_empty() {
        errs.push(FieldError::required(format!("{path}.path"), ""));
    }
    local_non_reserved_path(p, &format!("{path}.path"), errs);
    let field_ref = file.get("fieldRef").filter(|f| !f.is_null());
    let resource_ref = file.get("resourceFieldRef").filter(|r| !r.is_null());
    match (field_ref, resource_ref) {
        (Some(f), r) => {
            field_selector(f, &format!("{path}.fieldRef"), errs);
            if r.is_some() {
                errs.push(FieldError::invalid(
                    path,
                    &json!("resource"),
                    "fieldRef and resourceFieldRef can not be specified simultaneously",
                ));
            }
        }
        (None, Some(r)) => resource_selector(r, &format!("{path}.resourceFieldRef"), errs),
        (None, None) => errs.push(FieldError::required(
            path,
            "one of fieldRef and resourceFieldRef is required",
        )),
    }
    mode(file, "mode", path, errs);
}

/// `metadata.labels['x']` → (`metadata.labels`, `x`) (kube's `SplitMaybeSubscriptedPath`).
fn split_subscript(p: &str) -> Option<(&str, &str)> {
    let inner = p.strip_suffix("']")?;
    let (path, subscript) = inner.split_once("['")?;
    (!path.is_empty()).then_some((path, subscript))
}

/// kube's `validateObjectFieldSelector` with the volume's field paths.
fn field_selector(f: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let (version, fp) = (text(f, "apiVersion"), text(f, "fieldPath"));
    if version.is_empty() {
        errs.push(FieldError::required(format!("{path}.apiVersion"), ""));
        return;
    }
    if fp.is_empty() {
        errs.push(FieldError::required(format!("{path}.fieldPath"), ""));
        return;
    }
    let conversion = if version != "v1" {
        Err(format!("unsupported pod version: {version}"))
    } else if let Some((p, _)) = split_subscript(fp) {
        if matches!(p, "metadata.annotations" | "metadata.labels") {
            Ok(fp)
        } else {
            Err(format!("field label does not support subscript: {fp}"))
        }
    } else if fp == "spec.host" {
        Ok("spec.nodeName")
    } else if KNOWN_FIELD_LABELS.contains(&fp) {
        Ok(fp)
    } else {
        Err(format!("field label not supported: {fp}"))
    };
    let internal = match conversion {
        Ok(p) => p,
        Err(e) => {
            errs.push(FieldError::invalid(
                format!("{path}.fieldPath"),
                &json!(fp),
                &format!("error converting fieldPath: {e}"),
            ));
            return;
        }
    };
    match split_subscript(internal) {
        Some(("metadata.annotations", key)) => errs.extend(storage::invalid_each(
            path,
            key,
            storage::qualified_name_errors(&key.to_lowercase()),
        )),
        Some(("metadata.labels", key)) => errs.extend(storage::invalid_each(
            path,
            key,
            storage::qualified_name_errors(key),
        )),
        Some((p, _)) => errs.push(FieldError::invalid(
            path,
            &json!(p),
            "does not support subscript",
        )),
        None if !VOLUME_FIELD_PATHS.contains(&internal) => errs.push(FieldError::not_supported(
            format!("{path}.fieldPath"),
            &json!(internal),
            VOLUME_FIELD_PATHS,
        )),
        None => {}
    }
}

/// kube's `validateContainerResourceFieldSelector` for volumes (a container name is required).
fn resource_selector(r: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let resource = text(r, "resource");
    if text(r, "containerName").is_empty() {
        errs.push(FieldError::required(format!("{path}.containerName"), ""));
    } else if resource.is_empty() {
        errs.push(FieldError::required(format!("{path}.resource"), ""));
    } else if !RESOURCE_FIELDS.contains(&resource)
        && !resource.starts_with("requests.hugepages-")
        && !resource.starts_with("limits.hugepages-")
    {
        errs.push(FieldError::not_supported(
            format!("{path}.resource"),
            &json!(resource),
            RESOURCE_FIELDS,
        ));
    }
    divisor(r, resource, path, errs);
}

/// kube's `validateContainerResourceDivisor`: only unit divisors, by resource.
fn divisor(r: &Value, resource: &str, path: &str, errs: &mut Vec<FieldError>) {
    let Some(d) = r.get("divisor").filter(|d| !d.is_null()) else {
        return;
    };
    let field = format!("{path}.divisor");
    let Some(q) = d.as_str().and_then(quantity::Quantity::parse) else {
        errs.push(FieldError::invalid(field, d, quantity::QUANTITY_MSG));
        return;
    };
    if q.nano == 0 {
        return;
    }
    let shown = q.to_string();
    let bytes = |what: &str| {
        format!(
            "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the {what} resource"
        )
    };
    let msg = match resource {
        "limits.cpu" | "requests.cpu" if !["1m", "1"].contains(&shown.as_str()) => {
            Some("only divisor's values 1m and 1 are supported with the cpu resource".to_string())
        }
        "limits.memory" | "requests.memory" if !BYTE_DIVISORS.contains(&shown.as_str()) => {
            Some(bytes("memory"))
        }
        "limits.ephemeral-storage" | "requests.ephemeral-storage"
            if !BYTE_DIVISORS.contains(&shown.as_str()) =>
        {
            Some(bytes("local ephemeral storage"))
        }
        _ => None,
    };
    if let Some(msg) = msg {
        errs.push(FieldError::invalid(&field, &json!(resource), &msg));
    }
    let hugepages =
        resource.starts_with("requests.hugepages-") || resource.starts_with("limits.hugepages-");
    if hugepages && !BYTE_DIVISORS.contains(&shown.as_str()) {
        errs.push(FieldError::invalid(
            &field,
            &json!(resource),
            &bytes("hugepages"),
        ));
    }
}

/// kube's `validateProjectionSources`: each source exactly one kind, file paths unique across sources.
fn projection_sources(src: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let mut paths: HashSet<String> = HashSet::new();
    let mut claim = |p: &str, value: &str, errs: &mut Vec<FieldError>| {
        if !paths.insert(p.to_string()) {
            errs.push(FieldError::invalid(
                path,
                &json!(value),
                "conflicting duplicate paths",
            ));
        }
    };
    let sources = src
        .get("sources")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, s) in sources.iter().enumerate() {
        let sp = format!("{path}.sources[{i}]");
        let mut kinds = 0;
        let given = |k: &str| s.get(k).filter(|v| !v.is_null());
        for key in ["secret", "configMap"] {
            let Some(o) = given(key) else { continue };
            kinds += 1;
            let pp = format!("{sp}.{key}");
            if text(o, "name").is_empty() {
                errs.push(FieldError::required(format!("{pp}.name"), ""));
            }
            for (j, kp) in items(o).iter().enumerate() {
                key_to_path(kp, &format!("{pp}.items[{j}]"), errs);
                if !text(kp, "path").is_empty() {
                    claim(text(kp, "path"), text(o, "name"), errs);
                }
            }
        }
        if let Some(o) = given("downwardAPI") {
            kinds += 1;
            for file in items(o) {
                downward_file(file, &format!("{sp}.downwardAPI"), errs);
                let p = text(file, "path");
                if !p.is_empty() {
                    claim(p, p, errs);
                }
            }
        }
        if let Some(t) = given("serviceAccountToken") {
            kinds += 1;
            let field = format!("{sp}.serviceAccountToken.expirationSeconds");
            let secs = t
                .get("expirationSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if secs < 600 {
                errs.push(FieldError::invalid(
                    &field,
                    &json!(secs),
                    "may not specify a duration less than 10 minutes",
                ));
            }
            if secs > 1 << 32 {
                errs.push(FieldError::invalid(
                    &field,
                    &json!(secs),
                    "may not specify a duration larger than 2^32 seconds",
                ));
            }
            let p = text(t, "path");
            if p.is_empty() {
                errs.push(FieldError::required(format!("{path}.path"), ""));
            } else {
                local_non_reserved_path(p, &format!("{path}.path"), errs);
            }
        }
        if let Some(b) = given("clusterTrustBundle") {
            kinds += 1;
            let pp = format!("{sp}.clusterTrustBundle");
            if given_in(b, "name").is_none() && given_in(b, "signerName").is_none() {
                errs.push(FieldError::required(
                    &pp,
                    "either name or signerName must be specified",
                ));
            }
            let p = text(b, "path");
            if p.is_empty() {
                errs.push(FieldError::required(format!("{pp}.path"), ""));
            }
            local_non_reserved_path(p, &format!("{pp}.path"), errs);
            claim(p, p, errs);
        }
        if kinds > 1 {
            errs.push(FieldError::forbidden(
                sp,
                "may not specify more than 1 volume type per source",
            ));
        }
    }
}

fn given_in<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    v.get(k).filter(|x| !x.is_null())
}
