//! autoscaling HorizontalPodAutoscalers: kube 1.32's v2 defaults (`SetDefaults_HorizontalPodAutoscaler`),
//! validation (`ValidateHorizontalPodAutoscaler`, HPAScaleToZero off) and table (`printHorizontalPodAutoscaler`).
//! Objects are stored in the autoscaling/v2 form; the autoscaling/v1 API (which kubectl 1.32's `autoscale`
//! writes) converts on the way in and out (`convert`). The controller is `crate::controllers::hpa`.

pub mod convert;

use serde_json::{Value, json};

use crate::status::FieldError;

/// kube's `DefaultCPUUtilization`: the target of an HPA created without metrics.
pub const DEFAULT_CPU_UTILIZATION: i64 = 80;

/// Round-trip through the k8s-openapi v2 type (unknown fields dropped).
pub fn normalize(v: &Value) -> Result<Value, String> {
    let t: k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler =
        serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(t).map_err(|e| e.to_string())
}

/// kube's default scale-up rules (`GenerateHPAScaleUpRules` with nothing set).
pub fn default_scale_up() -> Value {
    json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15}]})
}

/// kube's default scale-down rules (`GenerateHPAScaleDownRules` with nothing set).
pub fn default_scale_down() -> Value {
    json!({"stabilizationWindowSeconds": 300, "selectPolicy": "Max", "policies": [
        {"type": "Percent", "value": 100, "periodSeconds": 15}]})
}

/// Fill the unset fields of one direction's rules from kube's defaults.
pub fn fill_rules(rules: Option<&Value>, defaults: Value) -> Value {
    let mut out = defaults;
    if let Some(Value::Object(m)) = rules {
        for (k, v) in m {
            if !v.is_null() {
                out[k.as_str()] = v.clone();
            }
        }
    }
    out
}

/// kube's v2 defaults: `minReplicas: 1`, cpu at 80 % utilization when no metric is given, and a
/// `behavior` that is set gets every unset field of kube's default rules (an unset one stays unset).
pub fn defaults(obj: &mut Value) {
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    if spec.get("minReplicas").is_none_or(Value::is_null) {
        spec["minReplicas"] = json!(1);
    }
    if spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]);
    }
    if spec.get("behavior").is_some_and(Value::is_object) {
        let b = &mut spec["behavior"];
        b["scaleUp"] = fill_rules(b.get("scaleUp"), default_scale_up());
        b["scaleDown"] = fill_rules(b.get("scaleDown"), default_scale_down());
    }
}

/// kube's `PrepareForCreate`: the status starts empty; then the defaults.
pub fn prepare_create(obj: &mut Value) {
    if let Some(m) = obj.as_object_mut() {
        m.insert("status".into(), json!({"desiredReplicas": 0}));
    }
    defaults(obj);
}

fn int(v: Option<&Value>) -> Option<i64> {
    v.and_then(Value::as_i64)
}

/// Whether a quantity string is positive (`Sign() == 1`).
fn positive_quantity(v: &Value) -> bool {
    v.as_str()
        .and_then(crate::resources::storage::quantity::parse)
        .is_some_and(|m| m > 0)
}

/// kube's `validateMetricTarget` and the source checks of `validateResourceSource` /
/// `validateContainerResourceSource`.
fn validate_target(t: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    let empty = json!({});
    let t = t.unwrap_or(&empty);
    let ty = t.get("type").and_then(Value::as_str).unwrap_or("");
    if ty.is_empty() {
        errs.push(FieldError::required(
            format!("{path}.type"),
            "must specify a metric target type",
        ));
    } else if !["Utilization", "Value", "AverageValue"].contains(&ty) {
        errs.push(FieldError::not_supported(
            format!("{path}.type"),
            &json!(ty),
            &["AverageValue", "Utilization", "Value"],
        ));
    }
    let util = t.get("averageUtilization").filter(|v| !v.is_null());
    let avg = t.get("averageValue").filter(|v| !v.is_null());
    if let Some(v) = t.get("value").filter(|v| !v.is_null())
        && !positive_quantity(v)
    {
        errs.push(FieldError::invalid(
            format!("{path}.value"),
            v,
            "must be positive",
        ));
    }
    if let Some(v) = avg
        && !positive_quantity(v)
    {
        errs.push(FieldError::invalid(
            format!("{path}.averageValue"),
            v,
            "must be positive",
        ));
    }
    if let Some(u) = util
        && u.as_i64().is_some_and(|u| u < 1)
    {
        errs.push(FieldError::invalid(
            format!("{path}.averageUtilization"),
            u,
            "must be greater than 0",
        ));
    }
    if util.is_none() && avg.is_none() {
        errs.push(FieldError::required(
            format!("{path}.averageUtilization"),
            "must set either a target raw value or a target utilization",
        ));
    }
    if util.is_some() && avg.is_some() {
        errs.push(FieldError::forbidden(
            format!("{path}.averageValue"),
            "may not set both a target raw value and a target utilization",
        ));
    }
}

/// kube's `validateMetricSpec`: the type names the one source that must be populated.
fn validate_metric(m: &Value, path: &str, errs: &mut Vec<FieldError>) {
    const TYPES: &[&str] = &[
        "ContainerResource",
        "External",
        "Object",
        "Pods",
        "Resource",
    ];
    let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
    if ty.is_empty() {
        errs.push(FieldError::required(
            format!("{path}.type"),
            "must specify a metric source type",
        ));
    } else if !TYPES.contains(&ty) {
        errs.push(FieldError::not_supported(
            format!("{path}.type"),
            &json!(ty),
            TYPES,
        ));
    }
    let fields = [
        "containerResource",
        "external",
        "object",
        "pods",
        "resource",
    ];
    let present: Vec<&str> = fields
        .iter()
        .copied()
        .filter(|f| m.get(*f).is_some_and(|v| !v.is_null()))
        .collect();
    let expected = fields
        .iter()
        .copied()
        .find(|f| f.eq_ignore_ascii_case(ty))
        .unwrap_or("");
    if !expected.is_empty() && !present.contains(&expected) {
        errs.push(FieldError::required(
            format!("{path}.{expected}"),
            "must populate information for the given metric source",
        ));
    }
    for other in present.iter().filter(|f| **f != expected) {
        errs.push(FieldError::forbidden(
            format!("{path}.{other}"),
            "must populate the given metric source only",
        ));
    }
    if let Some(src) = m
        .get(expected)
        .filter(|_| matches!(expected, "resource" | "containerResource"))
    {
        let p = format!("{path}.{expected}");
        if src
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            errs.push(FieldError::required(
                format!("{p}.name"),
                "must specify a resource name",
            ));
        }
        if expected == "containerResource"
            && src
                .get("container")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
        {
            errs.push(FieldError::required(
                format!("{p}.container"),
                "must specify a container",
            ));
        }
        validate_target(src.get("target"), &format!("{p}.target"), errs);
    }
}

/// kube's `validateScalingRules` for one direction.
fn validate_rules(r: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(w) = int(r.get("stabilizationWindowSeconds")) {
        if w < 0 {
            errs.push(FieldError::invalid(
                format!("{path}.stabilizationWindowSeconds"),
                &json!(w),
                "must be greater than or equal to zero",
            ));
        } else if w > 3600 {
            errs.push(FieldError::invalid(
                format!("{path}.stabilizationWindowSeconds"),
                &json!(w),
                "must be less than or equal to 3600",
            ));
        }
    }
    if let Some(s) = r.get("selectPolicy").and_then(Value::as_str)
        && !["Disabled", "Max", "Min"].contains(&s)
    {
        errs.push(FieldError::not_supported(
            format!("{path}.selectPolicy"),
            &json!(s),
            &["Disabled", "Max", "Min"],
        ));
    }
    let policies = r
        .get("policies")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if policies.is_empty() {
        errs.push(FieldError::required(
            format!("{path}.policies"),
            "must specify at least one Policy",
        ));
    }
    for (i, p) in policies.iter().enumerate() {
        let pp = format!("{path}.policies[{i}]");
        let ty = p.get("type").and_then(Value::as_str).unwrap_or("");
        if !["Percent", "Pods"].contains(&ty) {
            errs.push(FieldError::not_supported(
                format!("{pp}.type"),
                &json!(ty),
                &["Percent", "Pods"],
            ));
        }
        let v = int(p.get("value")).unwrap_or(0);
        if v <= 0 {
            errs.push(FieldError::invalid(
                format!("{pp}.value"),
                &json!(v),
                "must be greater than zero",
            ));
        }
        let period = int(p.get("periodSeconds")).unwrap_or(0);
        if period <= 0 {
            errs.push(FieldError::invalid(
                format!("{pp}.periodSeconds"),
                &json!(period),
                "must be greater than zero",
            ));
        } else if period > 1800 {
            errs.push(FieldError::invalid(
                format!("{pp}.periodSeconds"),
                &json!(period),
                "must be less than or equal to 1800",
            ));
        }
    }
}

/// kube's `validateHorizontalPodAutoscalerSpec` (HPAScaleToZero disabled: `minReplicas` ≥ 1) and the
/// non-negative status counters: every version written must pass.
pub fn validate(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = json!({});
    let spec = obj.get("spec").unwrap_or(&empty);
    let min = int(spec.get("minReplicas"));
    let max = int(spec.get("maxReplicas")).unwrap_or(0);
    if let Some(m) = min
        && m < 1
    {
        errs.push(FieldError::invalid(
            "spec.minReplicas",
            &json!(m),
            "must be greater than or equal to 1",
        ));
    }
    if max < 1 {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than 0",
        ));
    }
    if let Some(m) = min
        && max < m
    {
        errs.push(FieldError::invalid(
            "spec.maxReplicas",
            &json!(max),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    let r = spec.get("scaleTargetRef").unwrap_or(&empty);
    for f in ["kind", "name"] {
        match r.get(f).and_then(Value::as_str).unwrap_or("") {
            "" => errs.push(FieldError::required(format!("spec.scaleTargetRef.{f}"), "")),
            s if s == "." || s == ".." || s.contains('/') || s.contains('%') => {
                errs.push(FieldError::invalid(
                    format!("spec.scaleTargetRef.{f}"),
                    &json!(s),
                    "may not contain '/'",
                ))
            }
            _ => {}
        }
    }
    for (i, m) in spec
        .get("metrics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        validate_metric(m, &format!("spec.metrics[{i}]"), &mut errs);
    }
    if let Some(b) = spec.get("behavior").filter(|b| b.is_object()) {
        for (dir, key) in [("scaleUp", "scaleUp"), ("scaleDown", "scaleDown")] {
            if let Some(rules) = b.get(key).filter(|r| r.is_object()) {
                validate_rules(rules, &format!("spec.behavior.{dir}"), &mut errs);
            }
        }
    }
    for f in ["currentReplicas", "desiredReplicas"] {
        if let Some(n) = int(obj.pointer(&format!("/status/{f}")))
            && n < 0
        {
            errs.push(FieldError::invalid(
                format!("status.{f}"),
                &json!(n),
                "must be greater than or equal to 0",
            ));
        }
    }
    errs
}

fn col(name: &str, ty: &str, desc: &str) -> Value {
    json!({"name": name, "type": ty, "format": "", "description": desc, "priority": 0})
}

/// Table columns (kube's `horizontalPodAutoscalerColumnDefinitions`).
pub fn columns(name: Value, age: Value) -> Vec<Value> {
    vec![
        name,
        col("Reference", "string", "reference to the target resource"),
        col(
            "Targets",
            "string",
            "the metrics which are targets and their current values",
        ),
        col(
            "MinPods",
            "string",
            "the lower limit for the number of replicas",
        ),
        col(
            "MaxPods",
            "integer",
            "the upper limit for the number of replicas",
        ),
        col("Replicas", "integer", "current number of replicas"),
        age,
    ]
}

/// One metric's `current/target` (kube's `formatHPAMetrics`): utilization as `N%`, values as quantities,
/// `<unknown>` until the controller has a current value at the same position.
fn format_metric(spec: &Value, status: Option<&Value>) -> Option<String> {
    let key = match spec.get("type").and_then(Value::as_str)? {
        "Resource" => "resource",
        "ContainerResource" => "containerResource",
        _ => {
            let ty = spec.get("type").and_then(Value::as_str).unwrap_or("");
            return Some(format!("<unsupported {ty}>"));
        }
    };
    let src = spec.get(key)?;
    let name = src.get("name").and_then(Value::as_str).unwrap_or("");
    let cur = status
        .and_then(|s| s.get(key))
        .filter(|c| c.get("name").and_then(Value::as_str) == Some(name))
        .and_then(|c| c.get("current"));
    let target = src.get("target")?;
    let (current, wanted) = if let Some(v) = target.get("averageValue").and_then(Value::as_str) {
        let c = cur
            .and_then(|c| c.get("averageValue"))
            .and_then(Value::as_str);
        (c.unwrap_or("<unknown>").to_string(), v.to_string())
    } else {
        let u = target
            .get("averageUtilization")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let c = cur
            .and_then(|c| c.get("averageUtilization"))
            .and_then(Value::as_i64);
        (
            c.map_or("<unknown>".to_string(), |c| format!("{c}%")),
            format!("{u}%"),
        )
    };
    Some(format!("{name}: {current}/{wanted}"))
}

/// kube's `formatHPAMetrics`: at most three metrics, then `+ N more...`; `<none>` without metrics.
pub fn targets(obj: &Value) -> String {
    let specs = obj
        .pointer("/spec/metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if specs.is_empty() {
        return "<none>".into();
    }
    let statuses = obj
        .pointer("/status/currentMetrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .filter_map(|(i, s)| format_metric(s, statuses.get(i)))
        .collect();
    if list.len() > 3 {
        format!("{} + {} more...", list[..3].join(", "), list.len() - 3)
    } else {
        list.join(", ")
    }
}

/// Row cells (kube's `printHorizontalPodAutoscaler`).
pub fn cells(obj: &Value, name: String, age: String) -> Vec<Value> {
    let r = obj.pointer("/spec/scaleTargetRef");
    let field = |f: &str| {
        r.and_then(|r| r.get(f))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let reference = format!("{}/{}", field("kind"), field("name"));
    let min = obj
        .pointer("/spec/minReplicas")
        .and_then(Value::as_i64)
        .map_or("<unset>".to_string(), |m| m.to_string());
    vec![
        json!(name),
        json!(reference),
        json!(targets(obj)),
        json!(min),
        json!(
            obj.pointer("/spec/maxReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0)
        ),
        json!(
            obj.pointer("/status/currentReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0)
        ),
        json!(age),
    ]
}

#[cfg(test)]
mod tests;
