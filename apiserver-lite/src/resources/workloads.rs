//! apps/v1 Deployments and ReplicaSets: defaults (kube's apps/v1 `SetDefaults_*`), validation (kube's
//! `ValidateDeployment*` / `ValidateReplicaSet*`) and table columns. The `scale` subresource is in
//! `crate::scale`.

mod go_syntax;
mod selector;
mod table;
mod validation;

use serde_json::{Value, json};

use super::Kind;

pub(crate) use go_syntax::{go_selector, go_string_map, invalid_go};
pub(crate) use selector::{canonical_selector, selector_is_empty, validate_label_selector};
pub use selector::{selector_matches, selector_string};
pub(crate) use table::container_cells;
pub use table::{cells, columns};
pub(crate) use validation::{
    PERCENT_MSG, int_or_percent, nonnegative, valid_percent, validate_template,
};
pub use validation::{validate, validate_update};

// ---- normalization ----

/// Round-trip through the k8s-openapi type. Its `spec.selector` is not optional, so a missing selector
/// would come back as `{}`; it is kept missing, because kube answers the two differently.
pub fn normalize(kind: Kind, v: &Value) -> Result<Value, String> {
    fn rt<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> Result<Value, String> {
        let t: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        serde_json::to_value(t).map_err(|e| e.to_string())
    }
    let mut out = if kind == Kind::Deployment {
        rt::<k8s_openapi::api::apps::v1::Deployment>(v)?
    } else {
        rt::<k8s_openapi::api::apps::v1::ReplicaSet>(v)?
    };
    if v.pointer("/spec/selector").is_none_or(Value::is_null)
        && let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.remove("selector");
    }
    Ok(out)
}

// ---- defaults ----

fn set_default(obj: &mut Value, key: &str, v: Value) {
    if let Some(m) = obj.as_object_mut()
        && m.get(key).is_none_or(Value::is_null)
    {
        m.insert(key.to_string(), v);
    }
}

/// The defaults of a pod template's spec (kube's `SetDefaults_PodSpec`, the volume and container defaults), the
/// ones a Deployment or ReplicaSet stores for its template.
pub fn default_template(template: &mut Value) {
    if !template.is_object() {
        *template = json!({});
    }
    if template.get("spec").is_none_or(|s| !s.is_object()) {
        template["spec"] = json!({});
    }
    let spec = &mut template["spec"];
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    // Volume source defaults, the ephemeral claim's `volumeMode` included.
    super::pod::volumes::apply_defaults(spec);
    for list in ["initContainers", "containers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                super::pod::default_template_container(c);
            }
        }
    }
}

/// kube's apps/v1 `SetDefaults_Deployment` / `SetDefaults_ReplicaSet`, applied to every version written
/// (create and update).
pub fn defaults(kind: Kind, obj: &mut Value) {
    if obj.get("spec").is_none_or(|s| !s.is_object()) {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    set_default(spec, "replicas", json!(1));
    if kind == Kind::Deployment {
        if spec.get("strategy").is_none_or(|s| !s.is_object()) {
            spec["strategy"] = json!({});
        }
        let strategy = &mut spec["strategy"];
        set_default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            if strategy.get("rollingUpdate").is_none_or(|r| !r.is_object()) {
                strategy["rollingUpdate"] = json!({});
            }
            let ru = &mut strategy["rollingUpdate"];
            set_default(ru, "maxUnavailable", json!("25%"));
            set_default(ru, "maxSurge", json!("25%"));
        }
        set_default(spec, "revisionHistoryLimit", json!(10));
        set_default(spec, "progressDeadlineSeconds", json!(600));
    }
    if spec.get("template").is_none_or(|t| !t.is_object()) {
        spec["template"] = json!({});
    }
    default_template(&mut spec["template"]);
}

/// What kube's create strategy does besides defaulting: the status starts empty.
pub fn reset_status(kind: Kind, obj: &mut Value) {
    obj["status"] = if kind == Kind::ReplicaSet {
        // `replicas` is not omitted when zero.
        json!({"replicas": 0})
    } else {
        json!({})
    };
}

/// Whether an update bumps `metadata.generation`: a spec change, and for Deployments also an annotation
/// change (annotations are copied to the ReplicaSets).
pub fn bumps_generation(kind: Kind, old: &Value, new: &Value) -> bool {
    if old.get("spec") != new.get("spec") {
        return true;
    }
    let ann = |v: &Value| {
        v.pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
            .cloned()
    };
    kind == Kind::Deployment && ann(old) != ann(new)
}

/// kube's status strategies take the metadata of a `status` write from its body except, for
/// Deployments, the labels: the Deployment controller writes the revision annotation this way (so that
/// it is no new generation). skiff takes the annotations (and a ReplicaSet's labels); the other metadata
/// stays as stored.
pub fn status_metadata(kind: Kind, body: &Value, new: &mut Value) {
    let mut fields = vec!["annotations"];
    if kind == Kind::ReplicaSet {
        fields.push("labels");
    }
    let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for f in fields {
        match body
            .pointer(&format!("/metadata/{f}"))
            .filter(|v| !v.is_null())
        {
            Some(v) => {
                meta.insert(f.into(), v.clone());
            }
            None => {
                meta.remove(f);
            }
        }
    }
}

#[cfg(test)]
mod tests;
