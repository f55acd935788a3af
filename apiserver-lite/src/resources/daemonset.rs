//! apps/v1 DaemonSets: defaults (kube's apps/v1 `SetDefaults_DaemonSet`), the create/update strategy's
//! template generation, validation (kube's `ValidateDaemonSet*`) and table columns (`printDaemonSet`).
//! The pod template's defaults and checks are the Deployment/ReplicaSet ones of [`super::workloads`].

use serde_json::{Value, json};

use super::workloads;
use crate::status::FieldError;

/// The annotation that carries the internal `spec.templateGeneration` in apps/v1 (bumped when the pod
/// template changes; the controller labels pods with it as `pod-template-generation`).
pub const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

/// Round-trip through the k8s-openapi type, keeping a missing selector missing (the type's is not
/// optional, and kube answers a missing and an empty selector differently).
pub fn normalize(v: &Value) -> Result<Value, String> {
    let t: k8s_openapi::api::apps::v1::DaemonSet =
        serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    let mut out = serde_json::to_value(t).map_err(|e| e.to_string())?;
    if v.pointer("/spec/selector").is_none_or(Value::is_null)
        && let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.remove("selector");
    }
    Ok(out)
}

fn set_default(obj: &mut Value, key: &str, v: Value) {
    if let Some(m) = obj.as_object_mut()
        && m.get(key).is_none_or(Value::is_null)
    {
        m.insert(key.to_string(), v);
    }
}

/// kube's `SetDefaults_DaemonSet` plus the pod template's defaults; every version written gets them.
pub fn defaults(obj: &mut Value) {
    if obj.get("spec").is_none_or(|s| !s.is_object()) {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    if spec.get("updateStrategy").is_none_or(|s| !s.is_object()) {
        spec["updateStrategy"] = json!({});
    }
    let strategy = &mut spec["updateStrategy"];
    if strategy
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        strategy["type"] = json!("RollingUpdate");
    }
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        if strategy.get("rollingUpdate").is_none_or(|r| !r.is_object()) {
            strategy["rollingUpdate"] = json!({});
        }
        let ru = &mut strategy["rollingUpdate"];
        set_default(ru, "maxUnavailable", json!(1));
        set_default(ru, "maxSurge", json!(0));
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    if spec.get("template").is_none_or(|t| !t.is_object()) {
        spec["template"] = json!({});
    }
    workloads::default_template(&mut spec["template"]);
}

fn set_template_generation(obj: &mut Value, generation: i64) {
    if obj.get("metadata").is_none_or(|m| !m.is_object()) {
        obj["metadata"] = json!({});
    }
    let meta = &mut obj["metadata"];
    if meta.get("annotations").is_none_or(|a| !a.is_object()) {
        meta["annotations"] = json!({});
    }
    meta["annotations"][TEMPLATE_GENERATION] = json!(generation.to_string());
}

/// The template generation of a stored DaemonSet (0 when the annotation is missing or malformed).
pub fn template_generation(obj: &Value) -> Option<i64> {
    obj.pointer("/metadata/annotations")?
        .get(TEMPLATE_GENERATION)?
        .as_str()?
        .parse()
        .ok()
}

/// What kube's create strategy does besides defaulting: template generation 1, an empty status (its four
/// required counters are never omitted).
pub fn prepare_create(obj: &mut Value) {
    defaults(obj);
    set_template_generation(obj, 1);
    obj["status"] = json!({"currentNumberScheduled": 0, "desiredNumberScheduled": 0,
        "numberMisscheduled": 0, "numberReady": 0});
}

/// kube's update strategy: the template generation is the server's, bumped when the template changes.
pub fn prepare_update(old: &Value, new: &mut Value) {
    defaults(new);
    let generation = template_generation(old).unwrap_or(0);
    let changed = old.pointer("/spec/template") != new.pointer("/spec/template");
    set_template_generation(new, if changed { generation + 1 } else { generation });
}

/// kube's `ValidateRollingUpdateDaemonSet` / `ValidateDaemonSetUpdateStrategy`.
fn validate_strategy(strategy: &Value) -> Vec<FieldError> {
    const PATH: &str = "spec.updateStrategy";
    let mut errs = Vec::new();
    match strategy.get("type").and_then(Value::as_str).unwrap_or("") {
        "OnDelete" => {}
        "RollingUpdate" => {
            let Some(ru) = strategy.get("rollingUpdate").filter(|r| r.is_object()) else {
                errs.push(FieldError::required(format!("{PATH}.rollingUpdate"), ""));
                return errs;
            };
            for f in ["maxUnavailable", "maxSurge"] {
                let path = format!("{PATH}.rollingUpdate.{f}");
                match ru.get(f) {
                    Some(Value::String(s)) if !workloads::valid_percent(s) => errs.push(
                        FieldError::invalid(&path, &json!(s), workloads::PERCENT_MSG),
                    ),
                    Some(Value::Number(n)) if n.as_i64().is_none_or(|n| n < 0) => {
                        errs.push(FieldError::invalid(
                            &path,
                            &Value::Number(n.clone()),
                            "must be greater than or equal to 0",
                        ))
                    }
                    _ => {}
                }
            }
            for f in ["maxUnavailable", "maxSurge"] {
                if let Some(Value::String(s)) = ru.get(f)
                    && workloads::valid_percent(s)
                    && workloads::int_or_percent(&json!(s)).is_some_and(|n| n > 100)
                {
                    errs.push(FieldError::invalid(
                        format!("{PATH}.rollingUpdate.{f}"),
                        &json!(s),
                        "must not be greater than 100%",
                    ));
                }
            }
            let set = |f: &str| ru.get(f).and_then(workloads::int_or_percent).unwrap_or(0) != 0;
            match (set("maxUnavailable"), set("maxSurge")) {
                (true, true) => errs.push(FieldError::invalid(
                    format!("{PATH}.rollingUpdate.maxSurge"),
                    ru.get("maxSurge").unwrap_or(&Value::Null),
                    "may not be set when maxUnavailable is non-zero",
                )),
                (false, false) => errs.push(FieldError::required(
                    format!("{PATH}.rollingUpdate.maxUnavailable"),
                    "cannot be 0 when maxSurge is 0",
                )),
                _ => {}
            }
        }
        other => errs.push(FieldError::not_supported(
            PATH,
            &json!(other),
            &["RollingUpdate", "OnDelete"],
        )),
    }
    errs
}

/// kube's `ValidateDaemonSetSpec` and `validateDaemonSetStatus`; every version written must pass.
pub fn validate(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    let selector = spec.get("selector").filter(|s| !s.is_null());
    let mut selector_ok = true;
    match selector {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            let sel_errs = workloads::validate_label_selector(sel, "spec.selector");
            selector_ok = sel_errs.is_empty();
            errs.extend(sel_errs);
            if workloads::selector_is_empty(sel) {
                errs.push(workloads::invalid_go(
                    "spec.selector",
                    workloads::go_selector(sel),
                    "empty selector is invalid for daemonset",
                ));
            }
        }
    }
    if selector_ok {
        let template = spec.get("template").cloned().unwrap_or(json!({}));
        for mut e in workloads::validate_template(&template, selector) {
            if e.field == "spec.template.spec.activeDeadlineSeconds" {
                e = FieldError::forbidden(
                    "spec.template.spec.activeDeadlineSeconds",
                    "activeDeadlineSeconds in DaemonSet is not Supported",
                );
            }
            errs.push(e);
        }
    }
    workloads::nonnegative(&spec, "/minReadySeconds", "spec.minReadySeconds", &mut errs);
    errs.extend(validate_strategy(
        spec.get("updateStrategy").unwrap_or(&json!({})),
    ));
    workloads::nonnegative(
        &spec,
        "/revisionHistoryLimit",
        "spec.revisionHistoryLimit",
        &mut errs,
    );
    if let Some(status) = obj.get("status").filter(|s| s.is_object()) {
        for c in [
            "currentNumberScheduled",
            "numberMisscheduled",
            "desiredNumberScheduled",
            "numberReady",
            "observedGeneration",
            "updatedNumberScheduled",
            "numberAvailable",
            "numberUnavailable",
            "collisionCount",
        ] {
            workloads::nonnegative(status, &format!("/{c}"), &format!("status.{c}"), &mut errs);
        }
    }
    errs
}

/// The update rules: the selector is immutable (apps/v1).
pub fn validate_update(old: &Value, new: &Value) -> Vec<FieldError> {
    workloads::validate_update(old, new)
}

fn col(name: &str, ty: &str, desc: &str, priority: i32) -> Value {
    json!({"name": name, "type": ty, "format": "", "description": desc, "priority": priority})
}

/// kube's `daemonSetColumnDefinitions`.
pub fn columns(name: Value, age: Value) -> Vec<Value> {
    vec![
        name,
        col(
            "Desired",
            "integer",
            "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
            0,
        ),
        col(
            "Current",
            "integer",
            "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/",
            0,
        ),
        col(
            "Ready",
            "integer",
            "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.",
            0,
        ),
        col(
            "Up-to-date",
            "integer",
            "The total number of nodes that are running updated daemon pod",
            0,
        ),
        col(
            "Available",
            "integer",
            "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
            0,
        ),
        col(
            "Node Selector",
            "string",
            "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/",
            0,
        ),
        age,
        col(
            "Containers",
            "string",
            "Names of each container in the template.",
            1,
        ),
        col(
            "Images",
            "string",
            "Images referenced by each container in the template.",
            1,
        ),
        col(
            "Selector",
            "string",
            "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
            1,
        ),
    ]
}

/// kube's `labels.FormatLabels`: `k=v` sorted by key, comma-joined; `<none>` when empty.
fn format_labels(m: Option<&Value>) -> String {
    let mut pairs: Vec<String> = m
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    if pairs.is_empty() {
        return "<none>".into();
    }
    pairs.sort();
    pairs.join(",")
}

/// Row cells (kube's `printDaemonSet`, wide).
pub fn cells(obj: &Value, name: String, age: String) -> Vec<Value> {
    let int = |p: &str| obj.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let (names, images) = workloads::container_cells(obj);
    let selector = workloads::selector_string(obj.pointer("/spec/selector"));
    vec![
        json!(name),
        json!(int("/status/desiredNumberScheduled")),
        json!(int("/status/currentNumberScheduled")),
        json!(int("/status/numberReady")),
        json!(int("/status/updatedNumberScheduled")),
        json!(int("/status/numberAvailable")),
        json!(format_labels(
            obj.pointer("/spec/template/spec/nodeSelector")
        )),
        json!(age),
        json!(names),
        json!(images),
        json!(if selector.is_empty() {
            "<none>".to_string()
        } else {
            selector
        }),
    ]
}

#[cfg(test)]
mod tests;
