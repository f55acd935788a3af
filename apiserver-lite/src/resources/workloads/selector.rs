//! `metav1.LabelSelector`s: validation (kube's `ValidateLabelSelector`), matching, the canonical form
//! updates are compared in, and the string form tables show.

use serde_json::{Map, Value, json};

use super::super::validation::{QUALIFIED_NAME_MSG, is_qualified_name, validate_labels};
use crate::status::FieldError;

pub(crate) fn selector_is_empty(sel: &Value) -> bool {
    let len = |k: &str| sel.get(k).and_then(Value::as_array).map_or(0, Vec::len);
    let labels = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .map_or(0, Map::len);
    labels + len("matchExpressions") == 0
}

/// kube's `ValidateLabelSelector` (strict label values) at `path`.
pub(crate) fn validate_label_selector(sel: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for (i, e) in exprs.iter().enumerate() {
            let p = format!("{path}.matchExpressions[{i}]");
            let values = e
                .get("values")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" | "NotIn" if values == 0 => errs.push(FieldError::required(
                    format!("{p}.values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                )),
                "Exists" | "DoesNotExist" if values > 0 => errs.push(FieldError::forbidden(
                    format!("{p}.values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                op => errs.push(FieldError::invalid(
                    format!("{p}.operator"),
                    &json!(op),
                    "not a valid selector operator",
                )),
            }
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            if !is_qualified_name(key) {
                errs.push(FieldError::invalid(
                    format!("{p}.key"),
                    &json!(key),
                    QUALIFIED_NAME_MSG,
                ));
            }
            for v in e
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !v
                    .as_str()
                    .is_some_and(super::super::validation::is_label_value)
                {
                    errs.push(FieldError::invalid(
                        format!("{p}.values"),
                        v,
                        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                    ));
                }
            }
        }
    }
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        errs.extend(validate_labels(ml, &format!("{path}.matchLabels")));
    }
    errs
}

/// Whether the labels satisfy a (valid) `metav1.LabelSelector`.
pub fn selector_matches(sel: &Value, labels: Option<&Map<String, Value>>) -> bool {
    let get = |k: &str| labels.and_then(|m| m.get(k)).and_then(Value::as_str);
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object)
        && ml.iter().any(|(k, v)| get(k) != v.as_str())
    {
        return false;
    }
    sel.get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let have = get(key);
            match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => have.is_some_and(|h| values.contains(&h)),
                "NotIn" => have.is_none_or(|h| !values.contains(&h)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            }
        })
}

/// A selector with empty parts dropped (kube compares them semantically: nil and empty are equal).
pub(crate) fn canonical_selector(sel: Option<&Value>) -> Value {
    let mut out = Map::new();
    if let Some(sel) = sel {
        if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object)
            && !ml.is_empty()
        {
            out.insert("matchLabels".into(), Value::Object(ml.clone()));
        }
        if let Some(me) = sel.get("matchExpressions").and_then(Value::as_array)
            && !me.is_empty()
        {
            out.insert("matchExpressions".into(), Value::Array(me.clone()));
        }
    }
    Value::Object(out)
}

/// The string form of a `metav1.LabelSelector` as kube's `LabelSelectorAsSelector(..).String()`:
/// requirements sorted by key, `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, joined by commas; ""
/// when the selector is empty or missing.
pub fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return String::new();
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let k = e
                .get("key")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let mut vals: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            vals.sort_unstable();
            vals.dedup();
            let s = match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => format!("{k} in ({})", vals.join(",")),
                "NotIn" => format!("{k} notin ({})", vals.join(",")),
                "Exists" => k.clone(),
                "DoesNotExist" => format!("!{k}"),
                _ => continue,
            };
            reqs.push((k, s));
        }
    }
    // kube sorts the requirements by key (stable for equal keys).
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter()
        .map(|(_, s)| s)
        .collect::<Vec<_>>()
        .join(",")
}
