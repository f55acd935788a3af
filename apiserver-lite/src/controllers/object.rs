//! Editing stored objects as JSON, so that fields this code does not know survive a write.

use serde_json::{Map, Value};

use crate::handlers::WriteOpts;
use crate::strict::FieldValidation;

/// How a controller writes through the REST handlers' create/update paths: as `manager`, without
/// strict field validation (the controller builds the object itself).
pub fn write_opts(manager: &str) -> WriteOpts {
    WriteOpts {
        dry_run: false,
        field_validation: FieldValidation::Ignore,
        field_manager: Some(manager.into()),
        apply: false,
    }
}

/// Now, as Kubernetes writes `metav1.Time` (RFC 3339, whole seconds, UTC).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The object under `field` of `object`, created empty if absent or null; `None` if it is something else.
pub fn child<'a>(object: &'a mut Value, field: &str) -> Option<&'a mut Map<String, Value>> {
    let map = object.as_object_mut()?;
    let slot = map
        .entry(field.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// `metadata.<field>` as a string.
pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

/// Drop what readers recompute: `metadata.resourceVersion` is the key's mod_revision.
pub fn strip_resource_version(object: &mut Value) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
}

/// Set a `status.conditions[]` entry of `type_`, keeping `lastTransitionTime` when the status is unchanged.
/// `None` if the object's status or conditions are not of the expected shape.
pub fn set_condition(
    object: &mut Value,
    type_: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) -> Option<()> {
    let status_map = child(object, "status")?;
    let conditions = status_map
        .entry("conditions")
        .or_insert_with(|| Value::Array(Vec::new()));
    if conditions.is_null() {
        *conditions = Value::Array(Vec::new());
    }
    let conditions = conditions.as_array_mut()?;
    let previous = conditions
        .iter()
        .position(|c| c.get("type").and_then(Value::as_str) == Some(type_));
    let transition = previous
        .map(|i| &conditions[i])
        .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| Value::String(now_rfc3339()));
    let mut condition = Map::new();
    condition.insert("type".into(), type_.into());
    condition.insert("status".into(), status.into());
    condition.insert("lastProbeTime".into(), Value::Null);
    condition.insert("lastTransitionTime".into(), transition);
    if let Some(reason) = reason {
        condition.insert("reason".into(), reason.into());
    }
    if let Some(message) = message {
        condition.insert("message".into(), message.into());
    }
    match previous {
        Some(i) => conditions[i] = Value::Object(condition),
        None => conditions.push(Value::Object(condition)),
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_condition_replaces_and_keeps_transition_time() {
        let mut pod = json!({"metadata": {"name": "p", "resourceVersion": "9"}, "status": {"conditions": [
            {"type": "PodScheduled", "status": "False", "lastTransitionTime": "2020-01-01T00:00:00Z"},
            {"type": "Ready", "status": "False"}
        ]}});
        set_condition(
            &mut pod,
            "PodScheduled",
            "False",
            Some("Unschedulable"),
            Some("m"),
        )
        .expect("shape ok");
        let conditions = pod["status"]["conditions"].as_array().expect("array");
        assert_eq!(conditions.len(), 2);
        assert_eq!(conditions[0]["lastTransitionTime"], "2020-01-01T00:00:00Z");
        assert_eq!(conditions[0]["reason"], "Unschedulable");
        set_condition(&mut pod, "PodScheduled", "True", None, None).expect("shape ok");
        assert_ne!(
            pod["status"]["conditions"][0]["lastTransitionTime"],
            "2020-01-01T00:00:00Z"
        );
        assert!(pod["status"]["conditions"][0].get("reason").is_none());
        strip_resource_version(&mut pod);
        assert!(pod["metadata"].get("resourceVersion").is_none());
    }

    #[test]
    fn bad_shapes_are_refused_without_panic() {
        assert!(set_condition(&mut json!({"status": []}), "X", "True", None, None).is_none());
        assert!(
            set_condition(
                &mut json!({"status": {"conditions": 5}}),
                "X",
                "True",
                None,
                None
            )
            .is_none()
        );
        assert!(set_condition(&mut json!("string"), "X", "True", None, None).is_none());
        let mut ok = json!({"status": null});
        assert!(set_condition(&mut ok, "X", "True", None, None).is_some());
    }
}
