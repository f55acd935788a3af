//! `spec.podFailurePolicy` (kube's `pod_failure_policy.go`): the rules are tried in order on a failed pod
//! and the first that matches decides what its failure does to the Job.

use serde_json::Value;

use super::super::owners::{Stored, str_at};
use super::pods;

/// What a matching rule does with a pod's failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Fail the whole Job at once; the message names the rule.
    FailJob(String),
    /// Fail the pod's index (Indexed Jobs with `backoffLimitPerIndex`).
    FailIndex,
    /// Count the failure as usual.
    Count,
    /// Do not count the failure toward the back-off limits.
    Ignore,
}

impl Action {
    /// Whether the failure counts toward `backoffLimit` / `backoffLimitPerIndex` (kube's `countFailed`).
    pub fn counts(&self) -> bool {
        !matches!(self, Action::Ignore)
    }
}

/// The action of the first rule of the Job's pod failure policy that matches the failed `pod`, `None`
/// without a policy or a match (kube's `matchPodFailurePolicy`; the failure then counts).
pub fn match_policy(job: &Value, pod: &Value) -> Option<Action> {
    let rules = job
        .pointer("/spec/podFailurePolicy/rules")
        .and_then(Value::as_array)?;
    let ns = str_at(pod, "/metadata/namespace");
    let name = str_at(pod, "/metadata/name");
    for (index, rule) in rules.iter().enumerate() {
        let action = str_at(rule, "/action");
        let matched = if let Some(req) = rule.get("onExitCodes").filter(|v| !v.is_null()) {
            exit_code_match(pod, req).map(|(container, code)| {
                format!(
                    "Container {container} for pod {ns}/{name} failed with exit code {code} matching {action} rule at index {index}"
                )
            })
        } else if let Some(reqs) = rule.get("onPodConditions").and_then(Value::as_array) {
            condition_match(pod, reqs).map(|type_| {
                format!(
                    "Pod {ns}/{name} has condition {type_} matching {action} rule at index {index}"
                )
            })
        } else {
            None
        };
        let Some(message) = matched else { continue };
        return match action {
            "FailJob" => Some(Action::FailJob(message)),
            "FailIndex" => Some(Action::FailIndex),
            "Ignore" => Some(Action::Ignore),
            "Count" => Some(Action::Count),
            // Validation admits no other action; an unknown one is skipped as kube does.
            _ => continue,
        };
    }
    None
}

/// The message of the first FailJob rule of the pod failure policy a failed pod matches (kube's
/// `getFailJobMessage`).
pub(super) fn fail_job_message(
    job: &Value,
    owned: &[Stored],
    replace_failed_only: bool,
) -> Option<String> {
    owned
        .iter()
        .filter(|p| pods::failed(p, replace_failed_only))
        .find_map(|p| match match_policy(job, &p.value) {
            Some(Action::FailJob(message)) => Some(message),
            _ => None,
        })
}

/// The first terminated container (init containers first) with a non-zero exit code the requirement
/// matches: its name and exit code (kube's `matchOnExitCodes`).
fn exit_code_match(pod: &Value, req: &Value) -> Option<(String, i64)> {
    let container = req.get("containerName").and_then(Value::as_str);
    let values: Vec<i64> = req
        .get("values")
        .and_then(Value::as_array)
        .map(|v| v.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    let operator = str_at(req, "/operator");
    for list in ["initContainerStatuses", "containerStatuses"] {
        let statuses = pod
            .pointer(&format!("/status/{list}"))
            .and_then(Value::as_array);
        for status in statuses.into_iter().flatten() {
            let Some(code) = status
                .pointer("/state/terminated/exitCode")
                .and_then(Value::as_i64)
            else {
                continue;
            };
            let name = str_at(status, "/name");
            if container.is_some_and(|c| c != name) || code == 0 {
                continue;
            }
            let hit = match operator {
                "In" => values.contains(&code),
                "NotIn" => !values.contains(&code),
                _ => false,
            };
            if hit {
                return Some((name.to_string(), code));
            }
        }
    }
    None
}

/// The type of the first pod condition a requirement matches by type and status (kube's
/// `matchOnPodConditions`).
fn condition_match(pod: &Value, reqs: &[Value]) -> Option<String> {
    let conditions = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)?;
    for req in reqs {
        let (type_, status) = (str_at(req, "/type"), str_at(req, "/status"));
        if conditions
            .iter()
            .any(|c| str_at(c, "/type") == type_ && str_at(c, "/status") == status)
        {
            return Some(type_.to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn first_matching_rule_wins() {
        let job = json!({"spec": {"podFailurePolicy": {"rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1]}},
        ]}}});
        let pod = |code: i64, conditions: Value| {
            json!({"metadata": {"namespace": "default", "name": "x"},
                "status": {"phase": "Failed", "conditions": conditions,
                    "initContainerStatuses": [{"name": "init", "state": {"terminated": {"exitCode": 0}}}],
                    "containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": code}}}]}})
        };
        assert_eq!(
            match_policy(&job, &pod(42, json!([]))),
            Some(Action::FailJob(
                "Container main for pod default/x failed with exit code 42 matching FailJob rule at index 1"
                    .into()
            ))
        );
        let disrupted = json!([{"type": "DisruptionTarget", "status": "True"}]);
        assert_eq!(
            match_policy(&job, &pod(42, disrupted)),
            Some(Action::Ignore)
        );
        assert_eq!(match_policy(&job, &pod(3, json!([]))), Some(Action::Count));
        assert_eq!(match_policy(&job, &pod(1, json!([]))), None);
        assert_eq!(match_policy(&json!({}), &pod(42, json!([]))), None);
    }
}
