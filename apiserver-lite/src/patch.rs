//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch (the subset of
//! Kubernetes' patch strategies that the served kinds use) and server-side apply (approximated by SMP).

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match base.as_str() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml"
            | "application/apply-patch+json"
            | "application/apply-patch+cbor" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

/// RFC 7386 merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(pm) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(tm) = target {
        for (k, v) in pm {
            if v.is_null() {
                tm.remove(k);
            } else {
                merge_patch(tm.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// RFC 6902 JSON patch.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    let p: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| format!("invalid JSON patch: {e}"))?;
    json_patch::patch(target, &p.0).map_err(|e| e.to_string())
}

/// The merge key of a list field (by field name), for strategic merge patch.
pub(crate) fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => "name",
        "ports" => "containerPort",
        "volumeMounts" | "volumeDevices" => "mountPath",
        "conditions" | "addresses" | "readinessGates" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        _ => return None,
    })
}

/// Lists of scalars whose strategy is `merge` (union).
fn is_merged_primitive_list(field: &str) -> bool {
    matches!(field, "finalizers")
}

/// Strategic merge patch.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(pm) = patch else {
        *target = patch.clone();
        return;
    };
    if pm.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut p = pm.clone();
        p.remove("$patch");
        *target = Value::Object(p);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(tm) = target else { return };
    // $retainKeys: drop keys not listed.
    if let Some(Value::Array(keep)) = pm.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        tm.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in pm {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(del)) = (tm.get_mut(field), v) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if v.is_null() {
            tm.remove(k);
            continue;
        }
        match v {
            Value::Array(items) => {
                let existing = tm.get_mut(k);
                match (merge_key(k), existing) {
                    (Some(mk), Some(Value::Array(cur))) => merge_list(cur, items, mk),
                    (None, Some(Value::Array(cur))) if is_merged_primitive_list(k) => {
                        for it in items {
                            if !cur.contains(it) {
                                cur.push(it.clone());
                            }
                        }
                    }
                    _ => {
                        let cleaned: Vec<Value> = items
                            .iter()
                            .filter(|it| it.get("$patch").and_then(Value::as_str) != Some("delete"))
                            .map(|it| {
                                let mut c = Value::Null;
                                strategic_merge(&mut c, it);
                                if it.is_object() { c } else { it.clone() }
                            })
                            .collect();
                        tm.insert(k.clone(), Value::Array(cleaned));
                    }
                }
            }
            Value::Object(_) => strategic_merge(tm.entry(k.clone()).or_insert(Value::Null), v),
            other => {
                tm.insert(k.clone(), other.clone());
            }
        }
    }
}

/// Service and Endpoints ports are keyed by `port` where container ports are keyed by `containerPort`.
pub(crate) fn item_key<'a>(item: &Value, key: &'a str) -> &'a str {
    if key == "containerPort" && item.get(key).is_none() && item.get("port").is_some() {
        "port"
    } else {
        key
    }
}

fn merge_list(cur: &mut Vec<Value>, items: &[Value], key: &str) {
    for it in items {
        let key = item_key(it, key);
        let Some(kv) = it.get(key).cloned() else {
            cur.push(it.clone());
            continue;
        };
        let pos = cur.iter().position(|c| c.get(key) == Some(&kv));
        let delete = it.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                cur.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut cur[i], it),
            (None, false) => {
                let mut c = Value::Null;
                strategic_merge(&mut c, it);
                cur.push(c);
            }
        }
    }
}

/// Apply a patch of the given type to `target`.
pub fn apply(pt: PatchType, target: &mut Value, patch: &Value) -> Result<(), String> {
    match pt {
        PatchType::Json => json_patch(target, patch),
        PatchType::Merge => {
            if !patch.is_object() {
                return Err("merge patch must be a JSON object".into());
            }
            merge_patch(target, patch);
            Ok(())
        }
        PatchType::Strategic | PatchType::Apply => {
            if !patch.is_object() {
                return Err("strategic merge patch must be a JSON object".into());
            }
            strategic_merge(target, patch);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut t = json!({"spec": {"containers": [
            {"name": "a", "image": "x:1", "env": [{"name": "E", "value": "1"}]},
            {"name": "b", "image": "y:1"}
        ]}, "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}});
        strategic_merge(
            &mut t,
            &json!({"spec": {"containers": [
            {"name": "a", "image": "x:2", "env": [{"name": "F", "value": "2"}]},
            {"name": "b", "$patch": "delete"},
            {"name": "c", "image": "z"}
        ]}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        assert_eq!(t["spec"]["containers"][0]["image"], "x:2");
        assert_eq!(
            t["spec"]["containers"][0]["env"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(t["spec"]["containers"][1]["name"], "c");
        assert_eq!(t["spec"]["containers"].as_array().map(Vec::len), Some(2));
        assert_eq!(t["status"]["conditions"][0]["status"], "True");
        assert_eq!(t["status"]["conditions"][1]["type"], "PodScheduled");
    }

    #[test]
    fn strategic_replaces_unkeyed_lists_and_unions_finalizers() {
        let mut t =
            json!({"spec": {"tolerations": [{"key": "a"}]}, "metadata": {"finalizers": ["x"]}});
        strategic_merge(
            &mut t,
            &json!({"spec": {"tolerations": [{"key": "b"}]}, "metadata": {"finalizers": ["y"], "$deleteFromPrimitiveList/finalizers": ["x"]}}),
        );
        assert_eq!(t["spec"]["tolerations"], json!([{"key": "b"}]));
        assert_eq!(t["metadata"]["finalizers"], json!(["y"]));
    }

    #[test]
    fn strategic_replace_directive_replaces_a_nested_map() {
        // What `kubectl rollout undo` sends for a DaemonSet or StatefulSet: a ControllerRevision's data.
        let mut t = json!({"spec": {"replicas": 2, "template": {"metadata": {"labels": {"a": "1", "b": "2"}},
            "spec": {"containers": [{"name": "c", "image": "new"}, {"name": "d"}]}}}});
        strategic_merge(
            &mut t,
            &json!({"spec": {"template": {"$patch": "replace", "metadata": {"labels": {"a": "1"}},
                "spec": {"containers": [{"name": "c", "image": "old"}]}}}}),
        );
        assert_eq!(
            t,
            json!({"spec": {"replicas": 2, "template": {"metadata": {"labels": {"a": "1"}},
                "spec": {"containers": [{"name": "c", "image": "old"}]}}}})
        );
    }

    #[test]
    fn json_patch_ops() {
        let mut t = json!({"metadata": {"labels": {"a": "1"}}});
        json_patch(&mut t, &json!([{"op": "add", "path": "/metadata/labels/b", "value": "2"}, {"op": "remove", "path": "/metadata/labels/a"}])).expect("patch");
        assert_eq!(t, json!({"metadata": {"labels": {"b": "2"}}}));
        assert!(
            json_patch(
                &mut t,
                &json!([{"op": "test", "path": "/metadata/labels/b", "value": "3"}])
            )
            .is_err()
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type("text/plain"), None);
    }
}
