//! ConfigMaps, Secrets and ServiceAccounts: defaults, validation and table columns.
//!
//! Secret values are never logged: errors name keys, never values.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::status::FieldError;

/// Max total size of a ConfigMap's or Secret's data (kube-apiserver's `MaxSecretSize`).
const MAX_DATA_BYTES: usize = 1024 * 1024;

/// `[-._a-zA-Z0-9]+`, at most 253 characters (IsConfigMapKey).
pub fn is_config_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && k != "."
        && k != ".."
        && !k.starts_with("..")
}

fn keys_of(obj: &Value, field: &str) -> Vec<String> {
    obj.get(field)
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn check_keys(obj: &Value, field: &str, errs: &mut Vec<FieldError>) {
    for k in keys_of(obj, field) {
        if !is_config_key(&k) {
            errs.push(FieldError::invalid(
                format!("{field}[{k}]"),
                &json!(k),
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            ));
        }
    }
}

fn too_long(field: &str) -> FieldError {
    FieldError {
        reason: "FieldValueTooLong",
        field: field.to_string(),
        message: format!("Too long: may not be more than {MAX_DATA_BYTES} bytes"),
    }
}

fn data_size(obj: &Value, fields: &[&str]) -> usize {
    let mut n = 0usize;
    for f in fields {
        if let Some(m) = obj.get(*f).and_then(Value::as_object) {
            for (k, v) in m {
                n = n.saturating_add(k.len() + v.as_str().map_or(0, str::len));
            }
        }
    }
    n
}

pub fn validate_configmap(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    check_keys(obj, "data", &mut errs);
    check_keys(obj, "binaryData", &mut errs);
    let data = keys_of(obj, "data");
    for k in keys_of(obj, "binaryData") {
        if data.contains(&k) {
            errs.push(FieldError::invalid(
                format!("data[{k}]"),
                &json!(k),
                "duplicate of key present in binaryData",
            ));
        }
    }
    if data_size(obj, &["data", "binaryData"]) > MAX_DATA_BYTES {
        errs.push(too_long(""));
    }
    errs
}

/// Immutable ConfigMaps and Secrets keep their data; the `immutable` flag cannot be unset.
pub fn validate_immutable(old: &Value, new: &Value, fields: &[&str]) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return errs;
    }
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        errs.push(FieldError::forbidden(
            "immutable",
            "field is immutable when `immutable` is set",
        ));
    }
    for f in fields {
        if old.get(*f) != new.get(*f) {
            errs.push(FieldError::forbidden(
                *f,
                "field is immutable when `immutable` is set",
            ));
        }
    }
    errs
}

/// Fold `stringData` into `data` (base64-encoded, `stringData` wins) and default the type.
pub fn secret_defaults(obj: &mut Value) {
    if let Some(sd) = obj
        .as_object_mut()
        .and_then(|o| o.remove("stringData"))
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
    {
        if !obj.get("data").is_some_and(Value::is_object) {
            obj["data"] = Value::Object(Map::new());
        }
        for (k, v) in sd {
            let s = v.as_str().unwrap_or_default();
            obj["data"][k.as_str()] =
                json!(base64::engine::general_purpose::STANDARD.encode(s.as_bytes()));
        }
    }
    if obj
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        obj["type"] = json!("Opaque");
    }
}

pub fn validate_secret(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    check_keys(obj, "data", &mut errs);
    let decoded_size: usize = obj
        .get("data")
        .and_then(Value::as_object)
        .map(|m| {
            m.values()
                .map(|v| v.as_str().map_or(0, |s| s.len() / 4 * 3))
                .sum()
        })
        .unwrap_or(0);
    if decoded_size > MAX_DATA_BYTES {
        errs.push(too_long("data"));
    }
    let ty = obj.get("type").and_then(Value::as_str).unwrap_or("");
    let has = |k: &str| obj.pointer(&format!("/data/{k}")).is_some();
    match ty {
        "kubernetes.io/service-account-token"
            if obj
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .is_none() =>
        {
            errs.push(FieldError::required(
                "metadata.annotations[kubernetes.io/service-account.name]",
                "",
            ));
        }
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => {
            errs.push(FieldError::required("data[.dockerconfigjson]", ""));
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => {
            errs.push(FieldError::required("data[.dockercfg]", ""));
        }
        "kubernetes.io/tls" => {
            for k in ["tls.crt", "tls.key"] {
                if !has(k) {
                    errs.push(FieldError::required(format!("data[{k}]"), ""));
                }
            }
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(FieldError::required(
                "data[username]",
                "either username or password is required",
            ));
        }
        "kubernetes.io/ssh-auth" if !has("ssh-privatekey") => {
            errs.push(FieldError::required("data[ssh-privatekey]", ""));
        }
        _ => {}
    }
    errs
}

pub fn validate_secret_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = validate_immutable(old, new, &["data"]);
    if old.get("type") != new.get("type") {
        errs.push(FieldError::invalid(
            "type",
            new.get("type").unwrap_or(&Value::Null),
            "field is immutable",
        ));
    }
    errs
}

fn count(obj: &Value, fields: &[&str]) -> usize {
    fields
        .iter()
        .map(|f| obj.get(*f).and_then(Value::as_object).map_or(0, Map::len))
        .sum()
}

pub fn configmap_data_count(obj: &Value) -> i64 {
    count(obj, &["data", "binaryData"]) as i64
}

pub fn secret_data_count(obj: &Value) -> i64 {
    count(obj, &["data"]) as i64
}

pub fn serviceaccount_secret_count(obj: &Value) -> i64 {
    obj.get("secrets")
        .and_then(Value::as_array)
        .map_or(0, Vec::len) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_data_merges_into_data() {
        let mut s =
            json!({"data": {"a": "eA==", "b": "eQ=="}, "stringData": {"b": "zz", "c": "w"}});
        secret_defaults(&mut s);
        assert_eq!(s["data"]["a"], "eA==");
        assert_eq!(s["data"]["b"], "eno=");
        assert_eq!(s["data"]["c"], "dw==");
        assert_eq!(s["type"], "Opaque");
        assert!(s.get("stringData").is_none());
        assert_eq!(secret_data_count(&s), 3);
    }

    #[test]
    fn keys_and_types_are_validated() {
        assert!(is_config_key("a.b_C-1"));
        assert!(!is_config_key("a/b"));
        assert!(!is_config_key(".."));
        let e = validate_configmap(
            &json!({"data": {"bad key": "x", "k": "1"}, "binaryData": {"k": "eA=="}}),
        );
        assert_eq!(e.len(), 2);
        let e = validate_secret(&json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].field, "data[tls.key]");
        let old = json!({"immutable": true, "data": {"a": "eA=="}, "type": "Opaque"});
        let new = json!({"immutable": true, "data": {"a": "eQ=="}, "type": "Opaque"});
        assert_eq!(validate_secret_update(&old, &new).len(), 1);
        assert!(validate_secret_update(&old, &old).is_empty());
    }
}
