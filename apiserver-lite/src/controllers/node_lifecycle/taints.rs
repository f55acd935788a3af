//! The taints that mirror a node's Ready condition, as kube-controller-manager's node lifecycle controller
//! sets them: `unreachable` while Ready is `Unknown`, `not-ready` while it is `False`, none while `True`.
//! Pressure conditions are mirrored the same way (kube-controller-manager's taint-nodes-by-condition):
//! `memory-pressure`, `disk-pressure` and `pid-pressure`, `NoSchedule` only, while the condition is `True`.

use serde_json::{Value, json};

use super::ready_condition;

pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
const EFFECTS: [&str; 2] = ["NoSchedule", "NoExecute"];
/// Condition type → the `NoSchedule` taint it calls for while `True`.
const PRESSURE: [(&str, &str); 3] = [
    ("MemoryPressure", MEMORY_PRESSURE),
    ("DiskPressure", DISK_PRESSURE),
    ("PIDPressure", PID_PRESSURE),
];

/// A `NoExecute` taint of a node, as taint-based eviction needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct NoExecute {
    pub key: String,
    pub value: Option<String>,
    /// `timeAdded`; a taint without one counts from now.
    pub added: Option<jiff::Timestamp>,
}

fn is_lifecycle(taint: &Value) -> bool {
    matches!(
        taint.get("key").and_then(Value::as_str),
        Some(UNREACHABLE | NOT_READY | MEMORY_PRESSURE | DISK_PRESSURE | PID_PRESSURE)
    )
}

fn condition_status<'a>(node: &'a Value, type_: &str) -> Option<&'a str> {
    node.get("status")?
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))?
        .get("status")?
        .as_str()
}

/// The `(key, effect)` lifecycle taints the node's conditions call for.
fn wanted(node: &Value) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = wanted_key(node)
        .map(|key| EFFECTS.iter().map(|e| (key, *e)).collect())
        .unwrap_or_default();
    for (type_, key) in PRESSURE {
        if condition_status(node, type_) == Some("True") {
            out.push((key, "NoSchedule"));
        }
    }
    out
}

/// The lifecycle taint key the node's Ready status calls for.
fn wanted_key(node: &Value) -> Option<&'static str> {
    let status = ready_condition(node)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str);
    match status {
        Some("Unknown") => Some(UNREACHABLE),
        Some("False") => Some(NOT_READY),
        _ => None,
    }
}

/// The node with its lifecycle taints matching its Ready condition (other taints untouched, a kept
/// taint keeps its `timeAdded`), or `None` if they already match or the node has an unexpected shape.
pub fn with_lifecycle_taints(node: &Value, now: &str) -> Option<Value> {
    let wanted = wanted(node);
    let current: Vec<Value> = match node.get("spec").and_then(|s| s.get("taints")) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(taints)) => taints.clone(),
        Some(_) => return None,
    };
    let mut taints: Vec<Value> = current
        .iter()
        .filter(|t| {
            !is_lifecycle(t)
                || wanted.iter().any(|(key, effect)| {
                    t.get("key").and_then(Value::as_str) == Some(*key)
                        && t.get("effect").and_then(Value::as_str) == Some(*effect)
                })
        })
        .cloned()
        .collect();
    for (key, effect) in wanted {
        let present = taints.iter().any(|t| {
            t.get("key").and_then(Value::as_str) == Some(key)
                && t.get("effect").and_then(Value::as_str) == Some(effect)
        });
        if !present {
            let mut taint = json!({"key": key, "effect": effect});
            if effect == "NoExecute" {
                taint["timeAdded"] = now.into();
            }
            taints.push(taint);
        }
    }
    if taints == current {
        return None;
    }
    let mut updated = node.clone();
    let spec = super::object::child(&mut updated, "spec")?;
    if taints.is_empty() {
        spec.remove("taints");
    } else {
        spec.insert("taints".into(), Value::Array(taints));
    }
    super::object::strip_resource_version(&mut updated);
    Some(updated)
}

/// Every `NoExecute` taint of the node.
pub fn no_execute(node: &Value) -> Vec<NoExecute> {
    let Some(taints) = node
        .get("spec")
        .and_then(|s| s.get("taints"))
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    taints
        .iter()
        .filter(|t| t.get("effect").and_then(Value::as_str) == Some("NoExecute"))
        .filter_map(|t| {
            Some(NoExecute {
                key: t.get("key")?.as_str()?.to_string(),
                value: t.get("value").and_then(Value::as_str).map(str::to_string),
                added: t
                    .get("timeAdded")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ready: &str, taints: Value) -> Value {
        json!({"metadata": {"name": "n", "resourceVersion": "3"},
               "spec": {"podCIDR": "10.244.1.0/24", "taints": taints},
               "status": {"conditions": [{"type": "Ready", "status": ready}]}})
    }

    #[test]
    fn taints_follow_ready() {
        let other = json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"});
        let unknown = node("Unknown", json!([other.clone()]));
        let tainted = with_lifecycle_taints(&unknown, "2026-01-01T00:00:00Z").expect("adds");
        let taints = tainted["spec"]["taints"].as_array().expect("taints");
        assert_eq!(taints.len(), 3);
        assert_eq!(taints[0], other, "other taints are kept");
        assert_eq!(
            taints[1],
            json!({"key": UNREACHABLE, "effect": "NoSchedule"})
        );
        assert_eq!(
            taints[2],
            json!({"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"})
        );
        assert!(tainted["metadata"].get("resourceVersion").is_none());
        assert!(
            with_lifecycle_taints(&tainted, "later").is_none(),
            "stable once set"
        );
        let evictable = no_execute(&tainted);
        assert_eq!(evictable.len(), 1);
        assert_eq!(evictable[0].key, UNREACHABLE);
        assert!(evictable[0].added.is_some());

        // Ready=False replaces unreachable with not-ready.
        let mut not_ready = tainted.clone();
        not_ready["status"]["conditions"][0]["status"] = "False".into();
        let swapped = with_lifecycle_taints(&not_ready, "t2").expect("swaps");
        let keys: Vec<&str> = swapped["spec"]["taints"]
            .as_array()
            .expect("taints")
            .iter()
            .filter_map(|t| t["key"].as_str())
            .collect();
        assert_eq!(keys, ["dedicated", NOT_READY, NOT_READY]);

        // Recovery removes them; a node without other taints loses the field.
        let mut ready = swapped.clone();
        ready["status"]["conditions"][0]["status"] = "True".into();
        let healed = with_lifecycle_taints(&ready, "t3").expect("removes");
        assert_eq!(healed["spec"]["taints"], json!([other]));
        let bare = node(
            "True",
            json!([{"key": UNREACHABLE, "effect": "NoSchedule"}]),
        );
        let healed = with_lifecycle_taints(&bare, "t").expect("removes");
        assert!(healed["spec"].get("taints").is_none());
        assert_eq!(healed["spec"]["podCIDR"], "10.244.1.0/24");
        assert!(with_lifecycle_taints(&node("True", Value::Null), "t").is_none());
        assert!(with_lifecycle_taints(&node("Unknown", json!({})), "t").is_none());
    }

    #[test]
    fn taints_follow_pressure() {
        let mut n = node("True", Value::Null);
        n["status"]["conditions"] = json!([
            {"type": "MemoryPressure", "status": "True"},
            {"type": "DiskPressure", "status": "False"},
            {"type": "PIDPressure", "status": "True"},
            {"type": "Ready", "status": "True"}
        ]);
        let tainted = with_lifecycle_taints(&n, "t").expect("adds");
        assert_eq!(
            tainted["spec"]["taints"],
            json!([{"key": MEMORY_PRESSURE, "effect": "NoSchedule"},
                   {"key": PID_PRESSURE, "effect": "NoSchedule"}])
        );
        assert!(with_lifecycle_taints(&tainted, "t").is_none(), "stable");
        assert!(no_execute(&tainted).is_empty(), "pressure never evicts");
        // Ready=False on top adds not-ready; relief of memory pressure removes only its taint.
        let mut worse = tainted.clone();
        worse["status"]["conditions"][3]["status"] = "False".into();
        worse["status"]["conditions"][0]["status"] = "False".into();
        let t2 = with_lifecycle_taints(&worse, "t2").expect("changes");
        let keys: Vec<&str> = t2["spec"]["taints"]
            .as_array()
            .expect("taints")
            .iter()
            .filter_map(|t| t["key"].as_str())
            .collect();
        assert_eq!(keys, [PID_PRESSURE, NOT_READY, NOT_READY]);
        // Unknown pressure (agent silent) is no pressure taint.
        let mut silent = t2.clone();
        silent["status"]["conditions"][2]["status"] = "Unknown".into();
        silent["status"]["conditions"][3]["status"] = "Unknown".into();
        let t3 = with_lifecycle_taints(&silent, "t3").expect("changes");
        let keys: Vec<&str> = t3["spec"]["taints"]
            .as_array()
            .expect("taints")
            .iter()
            .filter_map(|t| t["key"].as_str())
            .collect();
        assert_eq!(keys, [UNREACHABLE, UNREACHABLE]);
    }
}
