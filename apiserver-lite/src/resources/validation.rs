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

pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    b.is_empty()
        || (b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric())
}

fn is_qualified_name(s: &str) -> bool {
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
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if !is_qualified_name(k) {
                errs.push(FieldError::invalid("metadata.labels", &Value::String(k.clone()), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
            }
            match v.as_str() {
                Some(s) if is_label_value(s) => {}
                _ => errs.push(FieldError::invalid("metadata.labels", v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")),
            }
        }
    }
    errs
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
