//! events.k8s.io/v1 Events share the storage of core/v1 Events (as in kube-apiserver): they are stored in
//! the core form and converted on the way in and out, so `kubectl describe` and `kubectl get events` see
//! events written through either API.

use serde_json::{Map, Value};

/// (events.k8s.io/v1 field, core/v1 field) pairs with a different name.
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(v: &Value, api_version: &str, to_core: bool) -> Value {
    let Some(m) = v.as_object() else {
        return v.clone();
    };
    let mut out = Map::new();
    for (k, x) in m {
        let name = RENAMED
            .iter()
            .find_map(|(v1, core)| {
                if to_core {
                    (*v1 == k.as_str()).then_some(*core)
                } else {
                    (*core == k.as_str()).then_some(*v1)
                }
            })
            .unwrap_or(k.as_str());
        out.insert(name.to_string(), x.clone());
    }
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String("Event".into()));
    Value::Object(out)
}

/// The stored (core/v1) form of an events.k8s.io/v1 Event.
pub fn to_core(v: &Value) -> Value {
    rename(v, "v1", true)
}

/// The events.k8s.io/v1 form of a stored (core/v1) Event.
pub fn from_core(v: &Value) -> Value {
    rename(v, "events.k8s.io/v1", false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip() {
        let v1 = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Pod", "name": "p"}, "note": "hi", "reason": "R",
            "reportingController": "c", "reportingInstance": "i", "deprecatedCount": 2});
        let core = to_core(&v1);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "hi");
        assert_eq!(core["reportingComponent"], "c");
        assert_eq!(core["count"], 2);
        assert_eq!(from_core(&core), v1);
    }
}
