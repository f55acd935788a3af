//! networking.k8s.io/v1 NetworkPolicies: normalization, kube's defaults (`SetDefaults_NetworkPolicy`,
//! `SetDefaults_NetworkPolicyPort`), validation (`validation`, kube's `ValidateNetworkPolicy`) and table
//! columns (`printNetworkPolicy`). The policies are enforced by the agent (`agent/src/netpol/`), which
//! reads them through the ClusterRole `skiff:network-policy-agent` (`crate::authz::bootstrap`).

mod validation;

use serde_json::{Value, json};

pub use validation::validate;

/// Round-trip through the k8s-openapi type (unknown fields dropped). kube's `spec` and `spec.podSelector`
/// are not pointers, so they are always written (`podSelector: {}` selects every pod of the namespace).
pub fn normalize(v: &Value) -> Result<Value, String> {
    let t: k8s_openapi::api::networking::v1::NetworkPolicy =
        serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    let mut out = serde_json::to_value(t).map_err(|e| e.to_string())?;
    if !out.get("spec").is_some_and(Value::is_object) {
        out["spec"] = json!({});
    }
    if !out
        .pointer("/spec/podSelector")
        .is_some_and(Value::is_object)
    {
        out["spec"]["podSelector"] = json!({});
    }
    Ok(out)
}

/// kube's defaults, applied to every version written (kube defaults on decode, so on create and update):
/// `policyTypes` is `[Ingress]`, plus `Egress` when egress rules exist, if the client named none; every
/// port without a protocol is TCP.
pub fn defaults(obj: &mut Value) {
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    for rules in ["ingress", "egress"] {
        let ports = spec
            .get_mut(rules)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get_mut("ports").and_then(Value::as_array_mut))
            .flatten();
        for port in ports {
            if let Some(p) = port.as_object_mut()
                && p.get("protocol").is_none_or(Value::is_null)
            {
                p.insert("protocol".into(), json!("TCP"));
            }
        }
    }
    let named = spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    if !named {
        let egress = spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty());
        spec["policyTypes"] = if egress {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
    }
}

fn col(name: &str, ty: &str, desc: &str) -> Value {
    json!({"name": name, "type": ty, "format": "", "description": desc, "priority": 0})
}

/// Table columns (kube's `networkPolicyColumnDefinitions`).
pub fn columns(name: Value, age: Value) -> Vec<Value> {
    vec![
        name,
        col(
            "Pod-Selector",
            "string",
            "Selects the pods to which this NetworkPolicy object applies. The array of ingress rules is \
             applied to any pods selected by this field. Multiple network policies can select the same set \
             of pods. In this case, the ingress rules for each are combined additively. This field is NOT \
             optional and follows standard label selector semantics. An empty podSelector matches all pods \
             in this namespace.",
        ),
        age,
    ]
}

/// Row cells (kube's `printNetworkPolicy`): the pod selector as `FormatLabelSelector` writes it, `<none>`
/// when it is empty.
pub fn cells(obj: &Value, name: String, age: String) -> Vec<Value> {
    let selector = super::workloads::selector_string(obj.pointer("/spec/podSelector"));
    let selector = if selector.is_empty() {
        "<none>".to_string()
    } else {
        selector
    };
    vec![json!(name), json!(selector), json!(age)]
}

#[cfg(test)]
mod tests;
