//! Name and metadata validation (DNS-1123 rules, label syntax).

use serde_json::Value;

use crate::status::FieldError;

pub const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
pub const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// The DNS-1123 label pattern `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, whatever the length.
pub fn label_pattern(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// `IsDNS1123Subdomain`'s messages.
pub fn subdomain_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if !s.split('.').all(label_pattern) {
        errs.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    errs
}

/// `IsDNS1123Label`'s messages.
pub fn label_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !label_pattern(s) {
        errs.push(DNS1123_LABEL_MSG.to_string());
    }
    errs
}

/// One `Invalid` error per message.
pub fn invalid_each(path: &str, value: &str, msgs: Vec<String>) -> Vec<FieldError> {
    msgs.iter()
        .map(|m| FieldError::invalid(path, &serde_json::json!(value), m))
        .collect()
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

pub fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    b.is_empty()
        || (b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric())
}

pub const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

pub fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix
        && !is_dns1123_subdomain(p)
    {
        return false;
    }
    !name.is_empty() && is_label_value(name)
}

pub fn validate_meta(obj: &Value, namespaced: bool, label_name: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else if label_name && !is_dns1123_label(name) {
        errs.push(FieldError::invalid(
            "metadata.name",
            &Value::String(name.into()),
            DNS1123_LABEL_MSG,
        ));
    } else if !label_name && !is_dns1123_subdomain(name) {
        errs.push(FieldError::invalid(
            "metadata.name",
            &Value::String(name.into()),
            DNS1123_SUBDOMAIN_MSG,
        ));
    }
    if namespaced {
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        if ns.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        }
    }
    errs.extend(validate_owner_references(obj));
    errs.extend(validate_gc_finalizers(obj));
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        errs.extend(validate_labels(labels, "metadata.labels"));
    }
    errs
}

/// Label keys and values (kube's `ValidateLabels`), reported at `field`.
pub fn validate_labels(labels: &serde_json::Map<String, Value>, field: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in labels {
        if !is_qualified_name(k) {
            errs.push(FieldError::invalid(
                field,
                &Value::String(k.clone()),
                QUALIFIED_NAME_MSG,
            ));
        }
        match v.as_str() {
            Some(s) if is_label_value(s) => {}
            _ => errs.push(FieldError::invalid(field, v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")),
        }
    }
    errs
}

/// kube's `ValidateOwnerReferences`: apiVersion, kind, name and uid set, no core/v1 Event as an owner, at
/// most one reference with `controller: true`. Field paths as kube's (without the index).
pub fn validate_owner_references(obj: &Value) -> Vec<FieldError> {
    const PATH: &str = "metadata.ownerReferences";
    let mut errs = Vec::new();
    let Some(refs) = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
    else {
        return errs;
    };
    let mut first_controller: Option<String> = None;
    for r in refs {
        let text = |f: &str| r.get(f).and_then(Value::as_str).unwrap_or("");
        let api_version = text("apiVersion");
        // The version is what follows the group's slash (`v1`, `apps/v1`).
        let version = api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            errs.push(FieldError::invalid(
                format!("{PATH}.apiVersion"),
                &Value::String(api_version.into()),
                "version must not be empty",
            ));
        }
        for (field, what) in [("kind", "kind"), ("name", "name"), ("uid", "uid")] {
            if text(field).is_empty() {
                errs.push(FieldError::invalid(
                    format!("{PATH}.{field}"),
                    &Value::String(text(field).into()),
                    &format!("{what} must not be empty"),
                ));
            }
        }
        if api_version == "v1" && text("kind") == "Event" {
            errs.push(FieldError::invalid(
                PATH,
                r,
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            let this = format!("{}/{}", text("kind"), text("name"));
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    PATH,
                    &Value::Array(refs.clone()),
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}"
                    ),
                )),
                None => first_controller = Some(this),
            }
        }
    }
    errs
}

/// The garbage collector's two finalizers exclude each other (kube's `ValidateFinalizers`).
fn validate_gc_finalizers(obj: &Value) -> Vec<FieldError> {
    let Some(finalizers) = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let has = |f: &str| finalizers.iter().any(|x| x.as_str() == Some(f));
    if has(crate::handlers::FINALIZER_ORPHAN) && has(crate::handlers::FINALIZER_FOREGROUND) {
        return vec![FieldError::invalid(
            "metadata.finalizers",
            &Value::Array(finalizers.clone()),
            "finalizer orphan and foregroundDeletion cannot be both set",
        )];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dns_names() {
        assert!(is_dns1123_label("web-1"));
        assert!(!is_dns1123_label("Web"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain("a_b"));
    }

    #[test]
    fn owner_references() {
        let obj = |refs: Value| json!({"metadata": {"name": "a", "ownerReferences": refs}});
        let good = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1",
                          "controller": true, "blockOwnerDeletion": true});
        assert!(validate_owner_references(&obj(json!([good.clone()]))).is_empty());
        let e = validate_owner_references(&obj(
            json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "c", "uid": ""}]),
        ));
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].to_line(),
            "metadata.ownerReferences.uid: Invalid value: \"\": uid must not be empty"
        );
        let e = validate_owner_references(&obj(json!([{"apiVersion": "apps/", "uid": "u"}])));
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.ownerReferences.apiVersion",
                "metadata.ownerReferences.kind",
                "metadata.ownerReferences.name"
            ]
        );
        let mut second = good.clone();
        second["name"] = json!("rs2");
        let e = validate_owner_references(&obj(json!([good, second])));
        assert_eq!(e.len(), 1);
        assert!(e[0].message.ends_with(
            "Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/rs and ReplicaSet/rs2"
        ));
        let e = validate_owner_references(&obj(
            json!([{"apiVersion": "v1", "kind": "Event", "name": "e", "uid": "u"}]),
        ));
        assert_eq!(e.len(), 1);
        let e = validate_meta(
            &json!({"metadata": {"name": "a", "finalizers": ["orphan", "foregroundDeletion"]}}),
            false,
            false,
        );
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].field, "metadata.finalizers");
    }

    #[test]
    fn meta_errors() {
        let e = validate_meta(
            &json!({"metadata": {"name": "Bad_Name", "namespace": "default"}}),
            true,
            false,
        );
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].field, "metadata.name");
        let e = validate_meta(&json!({"metadata": {"name": "a.b"}}), false, true);
        assert_eq!(e.len(), 1);
        let e = validate_meta(
            &json!({"metadata": {"name": "ok", "labels": {"app": "x y"}}}),
            false,
            false,
        );
        assert_eq!(e.len(), 1);
        assert!(
            validate_meta(
                &json!({"metadata": {"name": "ok", "labels": {"k8s.io/app": "web"}}}),
                false,
                false
            )
            .is_empty()
        );
    }
}
