//! Quota scopes of pods (kube's `podMatchesScopeFunc`): `Terminating`/`NotTerminating`
//! (`activeDeadlineSeconds`), `BestEffort`/`NotBestEffort` (QoS), `PriorityClass` (the scope selector's
//! operators over `priorityClassName`) and `CrossNamespacePodAffinity`.

use serde_json::Value;

use super::usage::from_json;

/// One scope requirement of a quota: `spec.scopes` entries become `Exists` requirements (kube's
/// `getScopeSelectorsFromQuota`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeRequirement {
    pub scope: String,
    pub operator: String,
    pub values: Vec<String>,
}

pub fn scope_requirements(quota: &Value) -> Vec<ScopeRequirement> {
    let mut out: Vec<ScopeRequirement> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| ScopeRequirement {
            scope: s.to_string(),
            operator: "Exists".into(),
            values: Vec::new(),
        })
        .collect();
    for e in quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let s = |f: &str| e.get(f).and_then(Value::as_str).unwrap_or("").to_string();
        out.push(ScopeRequirement {
            scope: s("scopeName"),
            operator: s("operator"),
            values: e
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
        });
    }
    out
}

/// kube's QoS `BestEffort`: no container names a non-zero cpu or memory request or limit.
pub fn best_effort(pod: &Value) -> bool {
    !["/spec/containers", "/spec/initContainers"]
        .iter()
        .any(|list| {
            pod.pointer(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|c| {
                    ["requests", "limits"].iter().any(|f| {
                        let m = from_json(c.pointer(&format!("/resources/{f}")));
                        ["cpu", "memory"]
                            .iter()
                            .any(|r| m.get(*r).is_some_and(|a| a.nano != 0))
                    })
                })
        })
}

/// Whether an affinity term list names other namespaces (`namespaces` or a `namespaceSelector`).
fn cross_namespace(pod: &Value) -> bool {
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let terms = |p: &str| {
            pod.pointer(&format!("/spec/affinity/{kind}/{p}"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let required = terms("requiredDuringSchedulingIgnoredDuringExecution");
        let preferred: Vec<Value> = terms("preferredDuringSchedulingIgnoredDuringExecution")
            .into_iter()
            .filter_map(|w| w.get("podAffinityTerm").cloned())
            .collect();
        required.iter().chain(&preferred).any(|t| {
            t.get("namespaces")
                .and_then(Value::as_array)
                .is_some_and(|n| !n.is_empty())
                || t.get("namespaceSelector").is_some_and(|s| !s.is_null())
        })
    })
}

/// kube's `podMatchesScopeFunc`.
pub(super) fn pod_in_scope(req: &ScopeRequirement, pod: &Value) -> bool {
    let terminating = pod
        .pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|s| s >= 0);
    match req.scope.as_str() {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => best_effort(pod),
        "NotBestEffort" => !best_effort(pod),
        "CrossNamespacePodAffinity" => cross_namespace(pod),
        "PriorityClass" => {
            let class = pod
                .pointer("/spec/priorityClassName")
                .and_then(Value::as_str)
                .unwrap_or("");
            // The pod's class is matched as a label that is always present (possibly empty).
            match req.operator.as_str() {
                "Exists" => !class.is_empty(),
                "In" => req.values.iter().any(|v| v == class),
                "NotIn" => !req.values.iter().any(|v| v == class),
                _ => false,
            }
        }
        _ => false,
    }
}
