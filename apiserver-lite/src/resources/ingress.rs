//! networking.k8s.io/v1 Ingresses and IngressClasses, served as kube-apiserver 1.32 serves them: stored,
//! defaulted, validated and printed, with no controller behind them (ingress controllers are add-ons; skiff
//! ships none, so nothing routes the traffic an Ingress describes).
//!
//! - normalization through the k8s-openapi types, and kube's strategies (`ingressStrategy`: status reset
//!   on create and kept by updates of the main resource, generation bumped by spec changes;
//!   `SetDefaults_IngressClass`: `parameters.scope` is `Cluster` when unset);
//! - validation (`validation`, kube's `ValidateIngressCreate` / `ValidateIngressUpdate` /
//!   `ValidateIngressStatusUpdate`; `class`, kube's `ValidateIngressClass` / `ValidateIngressClassUpdate`);
//! - the DefaultIngressClass admission plugin (`admission`);
//! - table columns (`printIngress`, `printIngressClass`).

pub mod admission;
mod class;
mod names;
mod validation;

use serde_json::{Value, json};

use super::Kind;

pub use class::{validate_class, validate_class_update};
pub use validation::{validate_create, validate_update};

/// The annotation that marks an IngressClass as the cluster's default (`AnnotationIsDefaultIngressClass`).
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The deprecated class annotation of an Ingress (`kubernetes.io/ingress.class`): the DefaultIngressClass
/// plugin leaves an Ingress that has it alone, and on create it must agree with `spec.ingressClassName`.
pub const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// Round-trip through the k8s-openapi type (unknown fields dropped), keeping what the typed round trip
/// would blur: a path without `pathType` stays without one (k8s-openapi writes `""`, kube's field is a
/// pointer and its validation tells "Required" from "Unsupported"), and `spec` is always written (it is
/// not a pointer in kube).
pub fn normalize(kind: Kind, v: &Value) -> Result<Value, String> {
    if kind == Kind::IngressClass {
        let t: k8s_openapi::api::networking::v1::IngressClass =
            serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        let mut out = serde_json::to_value(t).map_err(|e| e.to_string())?;
        if !out.get("spec").is_some_and(Value::is_object) {
            out["spec"] = json!({});
        }
        return Ok(out);
    }
    let t: k8s_openapi::api::networking::v1::Ingress =
        serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    let mut out = serde_json::to_value(t).map_err(|e| e.to_string())?;
    if !out.get("spec").is_some_and(Value::is_object) {
        out["spec"] = json!({});
    }
    let sent_rules = v.pointer("/spec/rules").and_then(Value::as_array);
    if let (Some(sent), Some(rules)) = (
        sent_rules,
        out.pointer_mut("/spec/rules").and_then(Value::as_array_mut),
    ) {
        for (sent, rule) in sent.iter().zip(rules.iter_mut()) {
            let sent_paths = sent.pointer("/http/paths").and_then(Value::as_array);
            let paths = rule
                .pointer_mut("/http/paths")
                .and_then(Value::as_array_mut);
            if let (Some(sent_paths), Some(paths)) = (sent_paths, paths) {
                for (sent, path) in sent_paths.iter().zip(paths.iter_mut()) {
                    if sent.get("pathType").is_none_or(Value::is_null)
                        && let Some(p) = path.as_object_mut()
                    {
                        p.remove("pathType");
                    }
                }
            }
        }
    }
    Ok(out)
}

/// kube's `omitempty` on a service port's `number`: a `number: 0` (protobuf bodies always carry the
/// field) is not stored, and counts as no number for validation.
fn drop_zero_port_numbers(obj: &mut Value) {
    for backend in backends_mut(obj) {
        if let Some(port) = backend
            .pointer_mut("/service/port")
            .and_then(Value::as_object_mut)
            && port.get("number").and_then(Value::as_i64) == Some(0)
        {
            port.remove("number");
        }
    }
}

/// Every backend of an Ingress: `spec.defaultBackend` and each path's.
fn backends_mut(obj: &mut Value) -> Vec<&mut Value> {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, value) in spec.iter_mut() {
        match key.as_str() {
            "defaultBackend" => out.push(value),
            "rules" => {
                let paths = value
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.pointer_mut("/http/paths").and_then(Value::as_array_mut))
                    .flatten()
                    .filter_map(|p| p.get_mut("backend"));
                out.extend(paths);
            }
            _ => {}
        }
    }
    out
}

/// Applied to every version written. An Ingress loses its `number: 0` ports; an IngressClass gets kube's
/// `SetDefaults_IngressClass`: a parameters reference without a scope refers to a cluster-scoped resource.
pub fn defaults(kind: Kind, obj: &mut Value) {
    if kind == Kind::Ingress {
        drop_zero_port_numbers(obj);
        return;
    }
    if let Some(params) = obj
        .pointer_mut("/spec/parameters")
        .and_then(Value::as_object_mut)
        && params.get("scope").is_none_or(Value::is_null)
    {
        params.insert("scope".into(), json!("Cluster"));
    }
}

/// kube's `PrepareForCreate`: an Ingress starts with an empty status (kube writes `loadBalancer: {}`,
/// the field is not a pointer); then the defaults.
pub fn prepare_create(kind: Kind, obj: &mut Value) {
    if kind == Kind::Ingress {
        obj["status"] = json!({"loadBalancer": {}});
    }
    defaults(kind, obj);
}

fn col(name: &str, desc: &str) -> Value {
    json!({"name": name, "type": "string", "format": "", "description": desc, "priority": 0})
}

/// Table columns (kube's `ingressColumnDefinitions` and `ingressClassColumnDefinitions`).
pub fn columns(kind: Kind, name: Value, age: Value) -> Vec<Value> {
    if kind == Kind::IngressClass {
        return vec![
            name,
            col(
                "Controller",
                "Controller that is responsible for handling this class",
            ),
            col(
                "Parameters",
                "A reference to a resource with additional parameters",
            ),
            age,
        ];
    }
    vec![
        name,
        col(
            "Class",
            "The name of the IngressClass resource that should be used for additional configuration",
        ),
        col(
            "Hosts",
            "Hosts that incoming requests are matched against before the ingress rule",
        ),
        col(
            "Address",
            "Address is a list containing ingress points for the load-balancer",
        ),
        col("Ports", "Ports of TLS configurations that open"),
        age,
    ]
}

/// kube's `loadBalancerWidth`: the ADDRESS cell is clipped to this many bytes.
const ADDRESS_WIDTH: usize = 16;

/// kube's `formatHosts`: the first three hosts (rules without a host are skipped), `*` when none.
fn hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == MAX {
            more = true;
        }
        let host = rule.get("host").and_then(Value::as_str).unwrap_or("");
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".into();
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", rules.len() - MAX)
    } else {
        joined
    }
}

/// kube's `ingressLoadBalancerStatusStringer` (not wide): the sorted, distinct IPs (or hostnames) of
/// `status.loadBalancer.ingress`, clipped to 16 bytes.
fn address(obj: &Value) -> String {
    let mut set: Vec<&str> = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| {
            let ip = i.get("ip").and_then(Value::as_str).unwrap_or("");
            let host = i.get("hostname").and_then(Value::as_str).unwrap_or("");
            [ip, host].into_iter().find(|s| !s.is_empty())
        })
        .collect();
    set.sort_unstable();
    set.dedup();
    let joined = set.join(",");
    if joined.len() > ADDRESS_WIDTH && joined.is_char_boundary(ADDRESS_WIDTH - 3) {
        format!("{}...", &joined[..ADDRESS_WIDTH - 3])
    } else {
        joined
    }
}

/// Row cells (kube's `printIngress` and `printIngressClass`).
pub fn cells(kind: Kind, obj: &Value, name: String, age: String) -> Vec<Value> {
    let str_at = |p: &str| obj.pointer(p).and_then(Value::as_str);
    if kind == Kind::IngressClass {
        let parameters = match obj.pointer("/spec/parameters").filter(|p| p.is_object()) {
            Some(p) => {
                let kind = p.get("kind").and_then(Value::as_str).unwrap_or("");
                let name = p.get("name").and_then(Value::as_str).unwrap_or("");
                match p.get("apiGroup").and_then(Value::as_str) {
                    Some(group) => format!("{kind}.{group}/{name}"),
                    None => format!("{kind}/{name}"),
                }
            }
            None => "<none>".into(),
        };
        return vec![
            json!(name),
            json!(str_at("/spec/controller").unwrap_or("")),
            json!(parameters),
            json!(age),
        ];
    }
    let class = str_at("/spec/ingressClassName").unwrap_or("<none>");
    let rules: &[Value] = obj
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let tls = obj
        .pointer("/spec/tls")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    let ports = if tls { "80, 443" } else { "80" };
    vec![
        json!(name),
        json!(class),
        json!(hosts(rules)),
        json!(address(obj)),
        json!(ports),
        json!(age),
    ]
}

#[cfg(test)]
mod tests;
