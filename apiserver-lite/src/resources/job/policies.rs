//! kube's checks of a Job's policies (`validatePodFailurePolicy`, `validateSuccessPolicy`) and of the
//! per-index limits of Indexed Jobs.

use serde_json::{Value, json};

use super::super::validation::is_qualified_name;
use super::{int_at, is_set, str_at};
use crate::status::FieldError;

const MAX_RULES: usize = 20;
const MAX_EXIT_CODES: usize = 255;
const MAX_POD_CONDITIONS: usize = 20;
/// kube's `maxParallelismForIndexedJob`, also the limit on indexes with `backoffLimitPerIndex`.
const MAX_INDEXES: i64 = 100_000;
const ACTIONS: [&str; 4] = ["Count", "FailIndex", "FailJob", "Ignore"];

fn too_many(field: String, actual: usize, max: usize) -> FieldError {
    FieldError {
        reason: "FieldValueTooMany",
        field,
        message: format!("Too many: {actual}: must have at most {max} items"),
    }
}

/// kube's per-index limits: `completions` and `maxFailedIndexes` with `backoffLimitPerIndex`.
pub(super) fn validate_index_limits(spec: &Value, errs: &mut Vec<FieldError>) {
    if !is_set(spec, "backoffLimitPerIndex") || str_at(spec, "/completionMode") != "Indexed" {
        return;
    }
    let completions = int_at(spec, "/completions");
    if let Some(c) = completions
        && c > MAX_INDEXES
    {
        errs.push(FieldError::invalid(
            "spec.completions",
            &json!(c),
            &format!(
                "must be less than or equal to {MAX_INDEXES} when backoffLimitPerIndex is specified"
            ),
        ));
    }
    if let Some(m) = int_at(spec, "/maxFailedIndexes") {
        if m > MAX_INDEXES {
            errs.push(FieldError::invalid(
                "spec.maxFailedIndexes",
                &json!(m),
                &format!("must be less than or equal to {MAX_INDEXES}"),
            ));
        }
        if completions.is_some_and(|c| m > c) {
            errs.push(FieldError::invalid(
                "spec.maxFailedIndexes",
                &json!(m),
                "must be less than or equal to completions",
            ));
        }
    }
}

/// kube's `validatePodFailurePolicy`.
pub(super) fn validate_pod_failure_policy(spec: &Value, errs: &mut Vec<FieldError>) {
    let Some(policy) = spec.get("podFailurePolicy").filter(|p| !p.is_null()) else {
        return;
    };
    let rules = policy
        .get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let path = "spec.podFailurePolicy.rules";
    if rules.len() > MAX_RULES {
        errs.push(too_many(path.into(), rules.len(), MAX_RULES));
    }
    let containers: Vec<&str> = ["initContainers", "containers"]
        .iter()
        .flat_map(|l| {
            spec.pointer(&format!("/template/spec/{l}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| str_at(c, "/name"))
        })
        .collect();
    for (i, rule) in rules.iter().enumerate() {
        let rule_path = format!("{path}[{i}]");
        let action = str_at(rule, "/action");
        if !ACTIONS.contains(&action) {
            errs.push(FieldError::not_supported(
                format!("{rule_path}.action"),
                &json!(action),
                &ACTIONS,
            ));
        } else if action == "FailIndex" && !is_set(spec, "backoffLimitPerIndex") {
            errs.push(FieldError::invalid(
                format!("{rule_path}.action"),
                &json!(action),
                "requires the backoffLimitPerIndex to be set",
            ));
        }
        let on_exit = rule.get("onExitCodes").filter(|v| !v.is_null());
        let on_conditions = rule.get("onPodConditions").filter(|v| !v.is_null());
        match (on_exit, on_conditions) {
            (Some(_), Some(_)) => errs.push(FieldError::invalid(
                &rule_path,
                &json!(["onExitCodes", "onPodConditions"]),
                "specifying both OnExitCodes and OnPodConditions is not supported",
            )),
            (None, None) => errs.push(FieldError::required(
                &rule_path,
                "specifying one of OnExitCodes and OnPodConditions is required",
            )),
            (Some(req), None) => {
                validate_exit_codes(req, &format!("{rule_path}.onExitCodes"), &containers, errs)
            }
            (None, Some(reqs)) => {
                validate_conditions(reqs, &format!("{rule_path}.onPodConditions"), errs)
            }
        }
    }
}

fn validate_exit_codes(req: &Value, path: &str, containers: &[&str], errs: &mut Vec<FieldError>) {
    if let Some(name) = req.get("containerName").and_then(Value::as_str)
        && !containers.contains(&name)
    {
        errs.push(FieldError::invalid(
            format!("{path}.containerName"),
            &json!(name),
            "must be one of the container or initContainer names in the pod template",
        ));
    }
    let operator = str_at(req, "/operator");
    if !matches!(operator, "In" | "NotIn") {
        errs.push(FieldError::not_supported(
            format!("{path}.operator"),
            &json!(operator),
            &["In", "NotIn"],
        ));
    }
    let values: Vec<&Value> = req
        .get("values")
        .and_then(Value::as_array)
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    let values_path = format!("{path}.values");
    if values.is_empty() {
        errs.push(FieldError::required(
            &values_path,
            "at least one value is required",
        ));
    } else if values.len() > MAX_EXIT_CODES {
        errs.push(too_many(values_path.clone(), values.len(), MAX_EXIT_CODES));
    }
    let mut previous: Option<i64> = None;
    for (i, v) in values.iter().enumerate() {
        let field = format!("{values_path}[{i}]");
        let Some(n) = v.as_i64() else { continue };
        if operator == "In" && n == 0 {
            errs.push(FieldError::invalid(
                &field,
                v,
                "must not be 0 for the In operator",
            ));
        }
        match previous {
            Some(p) if p == n => errs.push(FieldError::duplicate(&field, v)),
            Some(p) if n < p => errs.push(FieldError::invalid(&field, v, "must be ordered")),
            _ => {}
        }
        previous = Some(n);
    }
}

fn validate_conditions(reqs: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let list = reqs.as_array().cloned().unwrap_or_default();
    if list.len() > MAX_POD_CONDITIONS {
        errs.push(too_many(path.into(), list.len(), MAX_POD_CONDITIONS));
    }
    for (i, req) in list.iter().enumerate() {
        let type_ = str_at(req, "/type");
        let type_path = format!("{path}[{i}].type");
        if type_.is_empty() {
            errs.push(FieldError::required(type_path, ""));
        } else if !is_qualified_name(type_) {
            errs.push(FieldError::invalid(
                type_path,
                &json!(type_),
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
            ));
        }
        let status = str_at(req, "/status");
        if !matches!(status, "True" | "False" | "Unknown") {
            errs.push(FieldError::not_supported(
                format!("{path}[{i}].status"),
                &json!(status),
                &["True", "False", "Unknown"],
            ));
        }
    }
}

/// kube's `validateSuccessPolicy` (the mode was checked by the caller).
pub(super) fn validate_success_policy(spec: &Value, errs: &mut Vec<FieldError>) {
    let Some(policy) = spec.get("successPolicy").filter(|p| !p.is_null()) else {
        return;
    };
    if str_at(spec, "/completionMode") != "Indexed" {
        return;
    }
    let path = "spec.successPolicy.rules";
    let rules = policy
        .get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if rules.is_empty() {
        errs.push(FieldError::required(
            path,
            "at least one rules must be specified when the successPolicy is specified",
        ));
    }
    if rules.len() > MAX_RULES {
        errs.push(too_many(path.into(), rules.len(), MAX_RULES));
    }
    let completions = int_at(spec, "/completions").unwrap_or(0);
    for (i, rule) in rules.iter().enumerate() {
        let rule_path = format!("{path}[{i}]");
        let indexes = rule.get("succeededIndexes").and_then(Value::as_str);
        let count = rule.get("succeededCount").and_then(Value::as_i64);
        if indexes.is_none() && count.is_none() {
            errs.push(FieldError::required(
                &rule_path,
                "at least one of succeededCount or succeededIndexes must be specified",
            ));
        }
        let mut total = None;
        if let Some(text) = indexes {
            match parse_strict(text, completions) {
                Ok(n) => total = Some(n),
                Err(e) => errs.push(FieldError::invalid(
                    format!("{rule_path}.succeededIndexes"),
                    &json!(text),
                    &format!("error parsing succeededIndexes: {e}"),
                )),
            }
        }
        let Some(c) = count else { continue };
        let count_path = format!("{rule_path}.succeededCount");
        if c < 0 {
            errs.push(FieldError::invalid(
                count_path,
                &json!(c),
                "must be greater than or equal to 0",
            ));
        } else if c > completions {
            errs.push(FieldError::invalid(
                count_path,
                &json!(c),
                &format!(
                    "must be less than or equal to {completions} (the number of specified completions)"
                ),
            ));
        } else if let Some(t) = total
            && c > t
        {
            errs.push(FieldError::invalid(
                count_path,
                &json!(c),
                &format!(
                    "must be less than or equal to {t} (the number of indexes in the specified succeededIndexes field)"
                ),
            ));
        }
    }
}

/// Strictly parse an interval list for validation (kube's `parseIndexesFromString` errors): ordered,
/// non-overlapping intervals within `0..completions`. The number of indexes, or why it is malformed.
fn parse_strict(text: &str, completions: i64) -> Result<i64, String> {
    let mut total = 0i64;
    let mut previous: Option<i64> = None;
    for part in text.split(',') {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (number(a, completions)?, number(b, completions)?),
            None => {
                let n = number(part, completions)?;
                (n, n)
            }
        };
        if first > last {
            return Err(format!(
                "non-increasing order, previous: {first}, current: {last}"
            ));
        }
        if let Some(p) = previous
            && first <= p
        {
            return Err(format!(
                "overlapping or non-increasing intervals, previous: {p}, current: {first}"
            ));
        }
        previous = Some(last);
        total += last - first + 1;
    }
    Ok(total)
}

fn number(text: &str, completions: i64) -> Result<i64, String> {
    let n: i64 = text
        .parse()
        .map_err(|_| format!("cannot convert string to integer for index: {text:?}"))?;
    if n < 0 {
        return Err(format!("index must be non-negative, got: {n}"));
    }
    if n >= completions {
        return Err(format!(
            "too large index: {n}, must be less than completions: {completions}"
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_interval_lists() {
        assert_eq!(parse_strict("0-2,4", 5), Ok(4));
        assert!(parse_strict("2-1", 5).is_err());
        assert!(parse_strict("1,1", 5).is_err());
        assert!(parse_strict("5", 5).is_err());
        assert!(parse_strict("x", 5).is_err());
    }
}
