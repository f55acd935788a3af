//! autoscaling/v1 ⇄ autoscaling/v2 (the stored form), as kube's `pkg/apis/autoscaling/v1` conversion does:
//! v1 has only a CPU utilization target, so the other metrics, `behavior`, the current metrics and the
//! conditions travel in kube's `autoscaling.alpha.kubernetes.io/*` annotations of the v1 object.

use serde_json::{Map, Value, json};

pub const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
pub const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
pub const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
pub const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";

/// Whether a v2 metric is the one v1 expresses as `targetCPUUtilizationPercentage`.
fn is_cpu_utilization(m: &Value) -> bool {
    m.get("type").and_then(Value::as_str) == Some("Resource")
        && m.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
        && m.pointer("/resource/target/averageUtilization")
            .is_some_and(|v| !v.is_null())
}

/// The object's annotations, made an (empty) object when absent or not one; `None` only when `obj`
/// itself is not an object.
fn annotations(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let meta = obj
        .as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    let a = meta
        .as_object_mut()?
        .entry("annotations")
        .or_insert_with(|| json!({}));
    if !a.is_object() {
        *a = json!({});
    }
    a.as_object_mut()
}

fn drop_empty_annotations(obj: &mut Value) {
    if obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty)
        && let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut)
    {
        m.remove("annotations");
    }
}

fn to_json_string(v: &Value) -> Value {
    Value::String(serde_json::to_string(v).unwrap_or_default())
}

/// The autoscaling/v1 form of a stored (v2) HPA.
pub fn to_v1(v2: &Value) -> Value {
    let mut out = v2.clone();
    out["apiVersion"] = json!("autoscaling/v1");
    let spec = v2.get("spec").cloned().unwrap_or(json!({}));
    let metrics = spec
        .get("metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut s = json!({"scaleTargetRef": spec.get("scaleTargetRef").cloned().unwrap_or(json!({})),
        "maxReplicas": spec.get("maxReplicas").cloned().unwrap_or(json!(0))});
    if let Some(m) = spec.get("minReplicas").filter(|m| !m.is_null()) {
        s["minReplicas"] = m.clone();
    }
    let (cpu, other): (Vec<Value>, Vec<Value>) = metrics.into_iter().partition(is_cpu_utilization);
    if let Some(u) = cpu
        .first()
        .and_then(|m| m.pointer("/resource/target/averageUtilization"))
    {
        s["targetCPUUtilizationPercentage"] = u.clone();
    }
    let status = v2.get("status").cloned().unwrap_or(json!({}));
    let mut st = Map::new();
    for f in [
        "observedGeneration",
        "lastScaleTime",
        "currentReplicas",
        "desiredReplicas",
    ] {
        if let Some(x) = status.get(f).filter(|x| !x.is_null()) {
            st.insert(f.into(), x.clone());
        }
    }
    st.entry("desiredReplicas").or_insert(json!(0));
    let current = status
        .get("currentMetrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let (cur_cpu, cur_other): (Vec<Value>, Vec<Value>) = current.into_iter().partition(|m| {
        m.get("type").and_then(Value::as_str) == Some("Resource")
            && m.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
    });
    if let Some(u) = cur_cpu
        .first()
        .and_then(|m| m.pointer("/resource/current/averageUtilization"))
    {
        st.insert("currentCPUUtilizationPercentage".into(), u.clone());
    }
    let conditions = status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(a) = annotations(&mut out) {
        if !other.is_empty() {
            a.insert(METRICS.into(), to_json_string(&Value::Array(other)));
        }
        if let Some(b) = spec.get("behavior").filter(|b| !b.is_null()) {
            a.insert(BEHAVIOR.into(), to_json_string(b));
        }
        if !cur_other.is_empty() {
            a.insert(
                CURRENT_METRICS.into(),
                to_json_string(&Value::Array(cur_other)),
            );
        }
        if !conditions.is_empty() {
            a.insert(CONDITIONS.into(), to_json_string(&Value::Array(conditions)));
        }
    }
    drop_empty_annotations(&mut out);
    out["spec"] = s;
    out["status"] = Value::Object(st);
    out
}

/// Parse one of the conversion annotations (absent or malformed: `None`, as kube ignores it).
fn take_json(obj: &mut Value, key: &str) -> Option<Value> {
    let raw = annotations(obj)?.remove(key)?;
    raw.as_str().and_then(|s| serde_json::from_str(s).ok())
}

/// The stored (v2) form of an autoscaling/v1 HPA.
pub fn to_v2(v1: &Value) -> Value {
    let mut out = v1.clone();
    out["apiVersion"] = json!("autoscaling/v2");
    let other = take_json(&mut out, METRICS);
    let behavior = take_json(&mut out, BEHAVIOR);
    let cur_other = take_json(&mut out, CURRENT_METRICS);
    let conditions = take_json(&mut out, CONDITIONS);
    drop_empty_annotations(&mut out);
    let spec = v1.get("spec").cloned().unwrap_or(json!({}));
    let mut metrics = Vec::new();
    if let Some(u) = spec
        .get("targetCPUUtilizationPercentage")
        .filter(|u| !u.is_null())
    {
        metrics.push(json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": u}}}));
    }
    metrics.extend(
        other
            .and_then(|o| o.as_array().cloned())
            .unwrap_or_default(),
    );
    let mut s = json!({"scaleTargetRef": spec.get("scaleTargetRef").cloned().unwrap_or(json!({})),
        "maxReplicas": spec.get("maxReplicas").cloned().unwrap_or(json!(0))});
    if let Some(m) = spec.get("minReplicas").filter(|m| !m.is_null()) {
        s["minReplicas"] = m.clone();
    }
    if !metrics.is_empty() {
        s["metrics"] = Value::Array(metrics);
    }
    if let Some(b) = behavior {
        s["behavior"] = b;
    }
    let status = v1.get("status").cloned().unwrap_or(json!({}));
    let mut st = Map::new();
    for f in [
        "observedGeneration",
        "lastScaleTime",
        "currentReplicas",
        "desiredReplicas",
    ] {
        if let Some(x) = status.get(f).filter(|x| !x.is_null()) {
            st.insert(f.into(), x.clone());
        }
    }
    let mut current = Vec::new();
    if let Some(u) = status
        .get("currentCPUUtilizationPercentage")
        .filter(|u| !u.is_null())
    {
        current.push(json!({"type": "Resource", "resource": {"name": "cpu",
            "current": {"averageUtilization": u}}}));
    }
    current.extend(
        cur_other
            .and_then(|o| o.as_array().cloned())
            .unwrap_or_default(),
    );
    if !current.is_empty() {
        st.insert("currentMetrics".into(), Value::Array(current));
    }
    if let Some(c) = conditions {
        st.insert("conditions".into(), c);
    }
    out["spec"] = s;
    out["status"] = Value::Object(st);
    out
}

/// Round-trip through the k8s-openapi v1 type (unknown fields dropped).
pub fn normalize_v1(v: &Value) -> Result<Value, String> {
    let t: k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler =
        serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(t).map_err(|e| e.to_string())
}

/// v1 defaults, applied as the stored form's: convert, default as v2, convert back.
pub fn prepare_create_v1(obj: &mut Value) {
    let mut v2 = to_v2(obj);
    super::prepare_create(&mut v2);
    *obj = to_v1(&v2);
}
