//! apps/v1 ControllerRevisions: the history the DaemonSet and StatefulSet controllers keep of their
//! templates (what `kubectl rollout history/undo` reads). Schema through k8s-openapi, kube's
//! `ValidateControllerRevision` / `ValidateControllerRevisionUpdate` (`data` is mandatory and immutable,
//! `revision` non-negative) and kube's table columns (`printControllerRevision`).

use serde_json::{Value, json};

use crate::status::FieldError;

/// Round-trip through the k8s-openapi type (`data` is a raw extension: any JSON stays as it is).
pub fn normalize(v: &Value) -> Result<Value, String> {
    let t: k8s_openapi::api::apps::v1::ControllerRevision =
        serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(t).map_err(|e| e.to_string())
}

/// What every version must satisfy (the metadata is checked by the caller).
pub fn validate(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if obj.get("data").is_none_or(Value::is_null) {
        errs.push(FieldError::required("data", "data is mandatory"));
    }
    match obj.get("revision") {
        Some(Value::Number(n)) if n.as_i64().is_some_and(|r| r >= 0) => {}
        Some(v @ Value::Number(_)) => errs.push(FieldError::invalid(
            "revision",
            v,
            "must be greater than or equal to 0",
        )),
        // 0 when unset, as kube's int64 zero value.
        _ => {}
    }
    errs
}

/// Only metadata and `revision` may change: `data` is immutable.
pub fn validate_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let data = new.get("data").unwrap_or(&Value::Null);
    if old.get("data").unwrap_or(&Value::Null) != data {
        return vec![FieldError::invalid("data", data, "field is immutable")];
    }
    Vec::new()
}

fn col(name: &str, desc: &str) -> Value {
    json!({"name": name, "type": "string", "format": "", "description": desc, "priority": 0})
}

/// kube's `controllerRevisionColumnDefinitions`.
pub fn columns(name: Value, age: Value) -> Vec<Value> {
    vec![
        name,
        col("Controller", "Controller of the object"),
        json!({"name": "Revision", "type": "integer", "format": "",
            "description": "Revision of the ControllerRevision", "priority": 0}),
        age,
    ]
}

/// Row cells: the controller as `<kind-lowercase>.<group>/<name>` (`<none>` without one).
pub fn cells(obj: &Value, name: String, age: String) -> Vec<Value> {
    let controller = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|refs| {
            refs.iter()
                .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        })
        .map(|r| {
            let field = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
            let group = field("apiVersion")
                .rsplit_once('/')
                .map_or("", |(group, _)| group);
            let kind = field("kind").to_lowercase();
            match group {
                "" => format!("{kind}/{}", field("name")),
                group => format!("{kind}.{group}/{}", field("name")),
            }
        })
        .unwrap_or_else(|| "<none>".into());
    vec![
        json!(name),
        json!(controller),
        json!(obj.get("revision").and_then(Value::as_i64).unwrap_or(0)),
        json!(age),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision(revision: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": "web-abc", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                    "uid": "u", "controller": true}]},
            "data": {"spec": {"template": {"$patch": "replace"}}}, "revision": revision})
    }

    #[test]
    fn validation_follows_kube() {
        assert!(validate(&revision(json!(1))).is_empty());
        let lines =
            |errs: Vec<FieldError>| errs.iter().map(FieldError::to_line).collect::<Vec<_>>();
        assert_eq!(
            lines(validate(&revision(json!(-1)))),
            ["revision: Invalid value: -1: must be greater than or equal to 0"]
        );
        let mut no_data = revision(json!(1));
        no_data["data"] = Value::Null;
        assert_eq!(
            lines(validate(&no_data)),
            ["data: Required value: data is mandatory"]
        );
        // The revision may change, the data may not.
        let old = revision(json!(1));
        assert!(validate_update(&old, &revision(json!(3))).is_empty());
        let mut changed = revision(json!(1));
        changed["data"] = json!({"spec": {}});
        assert_eq!(
            lines(validate_update(&old, &changed)),
            ["data: Invalid value: {\"spec\":{}}: field is immutable"]
        );
        // The typed round trip keeps the data.
        let n = normalize(&old).expect("normalizes");
        assert_eq!(n["data"], old["data"]);
    }

    #[test]
    fn the_controller_column_names_kind_group_and_name() {
        let row = cells(&revision(json!(2)), "web-abc".into(), "5m".into());
        assert_eq!(
            row,
            [
                json!("web-abc"),
                json!("statefulset.apps/web"),
                json!(2),
                json!("5m")
            ]
        );
        let mut orphan = revision(json!(2));
        orphan["metadata"]["ownerReferences"] = json!([]);
        assert_eq!(cells(&orphan, "x".into(), "1s".into())[1], "<none>");
        assert_eq!(columns(json!("n"), json!("a")).len(), 4);
    }
}
