//! Services and Endpoints: defaults, validation and the columns kubectl prints.
//!
//! Service types: ClusterIP (including headless, `clusterIP: None`), NodePort, LoadBalancer and ExternalName.
//! A LoadBalancer is a NodePort Service whose load balancer nobody provides: its `status.loadBalancer` stays
//! empty (kube-apiserver without a cloud provider). After validation the cluster IP is allocated by
//! `crate::service_ips` and node ports by `crate::node_ports`; the rules for what an update keeps, drops or
//! may change are kube-apiserver's (`patchAllocatedValues`, `dropTypeDependentFields`, `ValidateService`).
//! Session affinity's defaults and validation are in [`affinity`], `spec.loadBalancerClass`'s in [`lb_class`].

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use serde_json::{Value, json};

use super::validation::is_dns1123_label;
use crate::status::FieldError;

mod affinity;
mod lb_class;
mod lb_status;
pub use lb_status::default_ip_mode;

const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];
const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const EXTERNAL_TRAFFIC_POLICIES: &[&str] = &["Cluster", "Local"];
const HEALTH_CHECK_ONLY: &str =
    "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'";
const LOAD_BALANCER_ONLY: &str = "may only be used when `type` is 'LoadBalancer'";

/// `spec.<field>` as a string, `""` when absent.
fn spec_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("spec")
        .and_then(|s| s.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn service_type(obj: &Value) -> &str {
    match spec_str(obj, "type") {
        "" => "ClusterIP",
        ty => ty,
    }
}

fn ports(obj: &Value) -> &[Value] {
    obj.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// NodePort and LoadBalancer Services have node ports (kube's `needsNodePort`).
pub fn needs_node_ports(obj: &Value) -> bool {
    matches!(service_type(obj), "NodePort" | "LoadBalancer")
}

/// Whether ports without a node port get one: always for NodePort, for LoadBalancer unless
/// `allocateLoadBalancerNodePorts: false` (kube's `shouldAllocateNodePorts`).
pub fn allocates_node_ports(obj: &Value) -> bool {
    match service_type(obj) {
        "NodePort" => true,
        "LoadBalancer" => obj.pointer("/spec/allocateLoadBalancerNodePorts") != Some(&json!(false)),
        _ => false,
    }
}

/// A LoadBalancer with `externalTrafficPolicy: Local` has a health check node port (kube's
/// `NeedsHealthCheck`).
pub fn needs_health_check(obj: &Value) -> bool {
    service_type(obj) == "LoadBalancer" && spec_str(obj, "externalTrafficPolicy") == "Local"
}

/// kube's `ExternallyAccessible`: what `externalTrafficPolicy` applies to.
fn externally_accessible(obj: &Value) -> bool {
    match service_type(obj) {
        "NodePort" | "LoadBalancer" => true,
        "ClusterIP" => obj
            .pointer("/spec/externalIPs")
            .and_then(Value::as_array)
            .is_some_and(|ips| !ips.is_empty()),
        _ => false,
    }
}

/// A port's node port (unset: absent, null or 0).
pub fn node_port(port: &Value) -> Option<i64> {
    port.get("nodePort")
        .and_then(Value::as_i64)
        .filter(|n| *n != 0)
}

/// Every node port of the Service's ports, once each.
pub fn node_ports(obj: &Value) -> HashSet<i64> {
    ports(obj).iter().filter_map(node_port).collect()
}

pub fn health_check_node_port(obj: &Value) -> Option<i64> {
    obj.pointer("/spec/healthCheckNodePort")
        .and_then(Value::as_i64)
        .filter(|n| *n != 0)
}

pub fn defaults(obj: &mut Value) {
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if ty.is_empty() {
        spec["type"] = json!("ClusterIP");
    }
    let external = ty == "ExternalName";
    affinity::defaults(spec);
    // Protobuf bodies carry unset node ports as 0.
    if spec.get("healthCheckNodePort").and_then(Value::as_i64) == Some(0)
        && let Some(m) = spec.as_object_mut()
    {
        m.remove("healthCheckNodePort");
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            if p.get("nodePort").and_then(Value::as_i64) == Some(0)
                && let Some(m) = p.as_object_mut()
            {
                m.remove("nodePort");
            }
            if p.get("protocol").is_none_or(Value::is_null) {
                p["protocol"] = json!("TCP");
            }
            if p.get("targetPort").is_none_or(Value::is_null)
                && let Some(port) = p.get("port").cloned()
            {
                p["targetPort"] = port;
            }
        }
    }
    if !external {
        if spec.get("internalTrafficPolicy").is_none_or(Value::is_null) {
            spec["internalTrafficPolicy"] = json!("Cluster");
        }
        if spec.get("ipFamilies").is_none_or(Value::is_null) {
            spec["ipFamilies"] = json!(["IPv4"]);
        }
        if spec.get("ipFamilyPolicy").is_none_or(Value::is_null) {
            spec["ipFamilyPolicy"] = json!("SingleStack");
        }
        if let Some(ip) = spec.get("clusterIP").and_then(Value::as_str)
            && !ip.is_empty()
        {
            spec["clusterIPs"] = json!([ip]);
        }
    }
    if externally_accessible(obj) && spec_str(obj, "externalTrafficPolicy").is_empty() {
        obj["spec"]["externalTrafficPolicy"] = json!("Cluster");
    }
    if service_type(obj) == "LoadBalancer"
        && obj
            .pointer("/spec/allocateLoadBalancerNodePorts")
            .is_none_or(Value::is_null)
    {
        obj["spec"]["allocateLoadBalancerNodePorts"] = json!(true);
    }
    if obj.get("status").is_none_or(Value::is_null) {
        obj["status"] = json!({"loadBalancer": {}});
    }
    default_ip_mode(obj);
}

/// The requested cluster IP on create: `None` = allocate one; `Some("None")` = headless.
pub fn requested_cluster_ip(obj: &Value) -> Option<String> {
    obj.pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

pub fn needs_cluster_ip(obj: &Value) -> bool {
    obj.pointer("/spec/type").and_then(Value::as_str) != Some("ExternalName")
}

fn is_iana_svc_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && s.bytes().any(|c| c.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

fn check_port_number(field: String, v: &Value, errs: &mut Vec<FieldError>) {
    match v.as_i64() {
        Some(n) if (1..=65535).contains(&n) => {}
        _ => errs.push(FieldError::invalid(
            field,
            v,
            "must be between 1 and 65535, inclusive",
        )),
    }
}

fn check_protocol(field: String, p: &Value, errs: &mut Vec<FieldError>) {
    if let Some(proto) = p.get("protocol")
        && !proto.as_str().is_some_and(|x| PROTOCOLS.contains(&x))
    {
        errs.push(FieldError::not_supported(field, proto, PROTOCOLS));
    }
}

pub fn validate(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ty = obj
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let cluster_ip = obj
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("");
    match ty {
        "ClusterIP" => {}
        "NodePort" | "LoadBalancer" if cluster_ip == "None" => errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            &json!(cluster_ip),
            &format!("may not be set to 'None' for {ty} services"),
        )),
        "NodePort" | "LoadBalancer" => {}
        "ExternalName" => {
            let en = obj
                .pointer("/spec/externalName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if en.is_empty() {
                errs.push(FieldError::required("spec.externalName", ""));
            }
            if !cluster_ip.is_empty() {
                errs.push(FieldError::forbidden(
                    "spec.clusterIP",
                    "may not be set for ExternalName services",
                ));
            }
        }
        other => errs.push(FieldError::not_supported("spec.type", &json!(other), TYPES)),
    }
    if !cluster_ip.is_empty() && cluster_ip != "None" && cluster_ip.parse::<IpAddr>().is_err() {
        errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            &json!(cluster_ip),
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
    }
    let ports = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if ports.is_empty() && ty != "ExternalName" && cluster_ip != "None" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    let mut names: Vec<String> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let f = |x: &str| format!("spec.ports[{i}].{x}");
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            if ports.len() > 1 {
                errs.push(FieldError::required(f("name"), ""));
            }
        } else if !is_dns1123_label(name) {
            errs.push(FieldError::invalid(
                f("name"),
                &json!(name),
                super::validation::DNS1123_LABEL_MSG,
            ));
        } else if names.iter().any(|n| n == name) {
            errs.push(FieldError::duplicate(f("name"), &json!(name)));
        } else {
            names.push(name.to_string());
        }
        check_port_number(f("port"), p.get("port").unwrap_or(&Value::Null), &mut errs);
        check_protocol(f("protocol"), p, &mut errs);
        match p.get("targetPort") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if is_iana_svc_name(s) => {}
            Some(t @ Value::Number(_)) => check_port_number(f("targetPort"), t, &mut errs),
            Some(t) => errs.push(FieldError::invalid(
                f("targetPort"),
                t,
                "must contain at least one letter (a-z), at most 15 characters, and only lowercase letters, digits and '-'",
            )),
        }
    }
    affinity::validate(obj, &mut errs);
    validate_node_ports(obj, &mut errs);
    lb_class::validate(obj, &mut errs);
    errs
}

/// kube's `ValidateService` on node ports, `allocateLoadBalancerNodePorts` and the external traffic fields.
/// Whether a node port is in the range and free is the allocator's to say (`crate::node_ports`), as in kube.
fn validate_node_ports(obj: &Value, errs: &mut Vec<FieldError>) {
    let ty = service_type(obj);
    let mut seen = HashSet::new();
    for (i, p) in ports(obj).iter().enumerate() {
        let Some(np) = node_port(p) else {
            continue;
        };
        let field = format!("spec.ports[{i}].nodePort");
        if ty == "ClusterIP" {
            errs.push(FieldError::forbidden(
                field.as_str(),
                "may not be used when `type` is 'ClusterIP'",
            ));
        }
        // One node port may serve several protocols, but each only once.
        let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
        if !seen.insert((protocol, np)) {
            errs.push(FieldError::duplicate(field, &json!(np)));
        }
    }
    if obj
        .pointer("/spec/allocateLoadBalancerNodePorts")
        .is_some_and(|v| !v.is_null())
        && ty != "LoadBalancer"
    {
        errs.push(FieldError::forbidden(
            "spec.allocateLoadBalancerNodePorts",
            LOAD_BALANCER_ONLY,
        ));
    }
    let policy = spec_str(obj, "externalTrafficPolicy");
    if !externally_accessible(obj) {
        if !policy.is_empty() {
            errs.push(FieldError::invalid(
                "spec.externalTrafficPolicy",
                &json!(policy),
                "may only be set for externally-accessible services",
            ));
        }
    } else if !policy.is_empty() && !EXTERNAL_TRAFFIC_POLICIES.contains(&policy) {
        errs.push(FieldError::not_supported(
            "spec.externalTrafficPolicy",
            &json!(policy),
            EXTERNAL_TRAFFIC_POLICIES,
        ));
    }
    // A missing health check node port is allocated after validation (kube allocates before and requires it).
    if let Some(hc) = health_check_node_port(obj) {
        if needs_health_check(obj) {
            check_port_number("spec.healthCheckNodePort".into(), &json!(hc), errs);
        } else {
            errs.push(FieldError::invalid(
                "spec.healthCheckNodePort",
                &json!(hc),
                HEALTH_CHECK_ONLY,
            ));
        }
    }
}

/// PUT may omit what was allocated: keep it (kube-apiserver's `patchAllocatedValues`). Node ports are matched
/// by port name, and one the new object already uses for another port is not copied.
pub fn keep_allocated(old: &Value, new: &mut Value) {
    if !new.get("spec").is_some_and(Value::is_object) {
        return;
    }
    for f in ["clusterIP", "clusterIPs"] {
        if new.pointer(&format!("/spec/{f}")).is_none_or(|v| {
            v.is_null() || v.as_str() == Some("") || v.as_array().is_some_and(Vec::is_empty)
        }) && let Some(o) = old.pointer(&format!("/spec/{f}"))
        {
            new["spec"][f] = o.clone();
        }
    }
    if needs_node_ports(old) && needs_node_ports(new) {
        let kept = node_ports(new);
        let by_name: HashMap<&str, i64> = ports(old)
            .iter()
            .filter_map(|p| {
                Some((
                    p.get("name").and_then(Value::as_str).unwrap_or(""),
                    node_port(p)?,
                ))
            })
            .collect();
        let new_ports = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut);
        for p in new_ports.into_iter().flatten() {
            let name = p.get("name").and_then(Value::as_str).unwrap_or("");
            if node_port(p).is_none()
                && let Some(&np) = by_name.get(name)
                && !kept.contains(&np)
            {
                p["nodePort"] = json!(np);
            }
        }
    }
    if needs_health_check(old)
        && needs_health_check(new)
        && health_check_node_port(new).is_none()
        && let Some(hc) = health_check_node_port(old)
    {
        new["spec"]["healthCheckNodePort"] = json!(hc);
    }
}

/// An update to a type without node ports (or load balancer) drops what the old type had allocated or
/// defaulted, unless the client changed it (kube-apiserver's `dropTypeDependentFields`); a node port the
/// client added is then refused by validation.
pub fn drop_type_dependent(old: &Value, new: &mut Value) {
    let allocate = |svc: &Value| {
        svc.pointer("/spec/allocateLoadBalancerNodePorts")
            .filter(|v| !v.is_null())
            .cloned()
    };
    let drop_node_ports = needs_node_ports(old)
        && !needs_node_ports(new)
        && node_ports(new).is_subset(&node_ports(old));
    let mut dropped = Vec::new();
    if needs_health_check(old)
        && !needs_health_check(new)
        && health_check_node_port(old) == health_check_node_port(new)
    {
        dropped.push("healthCheckNodePort");
    }
    if service_type(old) == "LoadBalancer"
        && service_type(new) != "LoadBalancer"
        && allocate(old).is_some()
        && allocate(old) == allocate(new)
    {
        dropped.push("allocateLoadBalancerNodePorts");
    }
    if externally_accessible(old)
        && !externally_accessible(new)
        && spec_str(old, "externalTrafficPolicy") == spec_str(new, "externalTrafficPolicy")
    {
        dropped.push("externalTrafficPolicy");
    }
    lb_class::drop_on_type_change(old, new);
    if service_type(new) != "LoadBalancer" && new.get("status").is_some_and(Value::is_object) {
        new["status"]["loadBalancer"] = json!({});
    }
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    for field in dropped {
        spec.remove(field);
    }
    if drop_node_ports {
        let ports = spec.get_mut("ports").and_then(Value::as_array_mut);
        for p in ports.into_iter().flatten().filter_map(Value::as_object_mut) {
            p.remove("nodePort");
        }
    }
}

pub fn validate_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let status_errs = lb_status::validate(new);
    if !status_errs.is_empty() {
        return status_errs;
    }
    let o = old.pointer("/spec/clusterIP").and_then(Value::as_str);
    let n = new.pointer("/spec/clusterIP").and_then(Value::as_str);
    if o.is_some_and(|x| !x.is_empty()) && o != n {
        return vec![FieldError::invalid(
            "spec.clusterIPs[0]",
            &json!(n.unwrap_or("")),
            "may not change once set",
        )];
    }
    if needs_health_check(old)
        && needs_health_check(new)
        && health_check_node_port(old) != health_check_node_port(new)
    {
        return vec![FieldError::forbidden(
            "spec.healthCheckNodePort",
            "field is immutable",
        )];
    }
    let mut errs = Vec::new();
    lb_class::validate_update(old, new, &mut errs);
    errs
}

pub fn validate_endpoints(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let subsets = obj
        .get("subsets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, s) in subsets.iter().enumerate() {
        for list in ["addresses", "notReadyAddresses"] {
            for (j, a) in s
                .get(list)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let ip = a.get("ip").and_then(Value::as_str).unwrap_or("");
                if ip.parse::<IpAddr>().is_err() {
                    errs.push(FieldError::invalid(
                        format!("subsets[{i}].{list}[{j}].ip"),
                        &json!(ip),
                        "must be a valid IP address",
                    ));
                }
            }
        }
        for (j, p) in s
            .get("ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            check_port_number(
                format!("subsets[{i}].ports[{j}].port"),
                p.get("port").unwrap_or(&Value::Null),
                &mut errs,
            );
            check_protocol(format!("subsets[{i}].ports[{j}].protocol"), p, &mut errs);
        }
    }
    errs
}

/// `80/TCP,443:30443/TCP` or `<none>`.
pub fn ports_column(obj: &Value) -> String {
    let ports = obj
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if ports.is_empty() {
        return "<none>".into();
    }
    ports
        .iter()
        .map(|p| {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(np) if np > 0 => format!("{port}:{np}/{proto}"),
                _ => format!("{port}/{proto}"),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// kubectl's `getServiceExternalIP` (wide): a LoadBalancer without an address is `<pending>`.
pub fn external_ip_column(obj: &Value) -> String {
    let external_ips: Vec<String> = obj
        .pointer("/spec/externalIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    let mut shown = Vec::new();
    match service_type(obj) {
        "ExternalName" => return spec_str(obj, "externalName").to_string(),
        "ClusterIP" | "NodePort" => {}
        "LoadBalancer" => {
            let ingress = obj.pointer("/status/loadBalancer/ingress");
            let mut lb: Vec<String> = ingress
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|i| {
                    [i.get("ip"), i.get("hostname")]
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .find(|s| !s.is_empty())
                })
                .map(str::to_string)
                .collect();
            lb.sort();
            lb.dedup();
            if lb.is_empty() && external_ips.is_empty() {
                return "<pending>".into();
            }
            shown = lb;
        }
        _ => return "<unknown>".into(),
    }
    shown.extend(external_ips);
    if shown.is_empty() {
        "<none>".into()
    } else {
        shown.join(",")
    }
}

/// `k1=v1,k2=v2` sorted by key (kubectl's `labels.FormatLabels`), or `<none>`.
pub fn selector_column(obj: &Value) -> String {
    let Some(m) = obj.pointer("/spec/selector").and_then(Value::as_object) else {
        return "<none>".into();
    };
    if m.is_empty() {
        return "<none>".into();
    }
    let mut kv: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    kv.sort();
    kv.join(",")
}

/// kubectl's `formatEndpoints`: up to three `ip:port`, then ` + N more...`.
pub fn endpoints_column(obj: &Value) -> String {
    let mut list: Vec<String> = Vec::new();
    let mut total = 0usize;
    for s in obj
        .get("subsets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let addrs: Vec<String> = s
            .get("addresses")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.get("ip").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let ports: Vec<i64> = s
            .get("ports")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.get("port").and_then(Value::as_i64))
                    .collect()
            })
            .unwrap_or_default();
        if ports.is_empty() {
            for a in addrs {
                total += 1;
                if list.len() < 3 {
                    list.push(a);
                }
            }
        } else {
            for p in &ports {
                for a in &addrs {
                    total += 1;
                    if list.len() < 3 {
                        list.push(format!("{a}:{p}"));
                    }
                }
            }
        }
    }
    if list.is_empty() {
        return "<none>".into();
    }
    let mut out = list.join(",");
    if total > list.len() {
        out.push_str(&format!(" + {} more...", total - list.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let mut s = json!({"metadata": {"name": "web"}, "spec": {"selector": {"b": "2", "a": "1"},
            "ports": [{"port": 80}]}});
        defaults(&mut s);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        assert!(validate(&s).is_empty());
        assert_eq!(ports_column(&s), "80/TCP");
        assert_eq!(selector_column(&s), "a=1,b=2");
        let bad = json!({"spec": {"type": "ClusterIP", "ports": [{"port": 0, "name": "a"}, {"port": 70000, "name": "a", "protocol": "XX"}]}});
        let fields: Vec<String> = validate(&bad).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "spec.ports[0].port",
                "spec.ports[1].name",
                "spec.ports[1].port",
                "spec.ports[1].protocol"
            ]
        );
        assert_eq!(
            validate(&json!({"spec": {"type": "ClusterIP"}}))[0].field,
            "spec.ports"
        );
        assert!(validate(&json!({"spec": {"type": "ClusterIP", "clusterIP": "None"}})).is_empty());
        assert_eq!(
            validate(&json!({"spec": {"type": "Foo", "ports": [{"port": 1}]}}))[0].to_line(),
            "spec.type: Unsupported value: \"Foo\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""
        );
    }

    fn defaulted(spec: Value) -> Value {
        let mut s = json!({"metadata": {"name": "web"}, "spec": spec});
        defaults(&mut s);
        s
    }

    fn lines(errs: Vec<FieldError>) -> Vec<String> {
        errs.iter().map(FieldError::to_line).collect()
    }

    #[test]
    fn node_port_and_load_balancer_defaults() {
        let np = defaulted(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 0}]}));
        assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
        assert!(np["spec"].get("allocateLoadBalancerNodePorts").is_none());
        assert!(np["spec"]["ports"][0].get("nodePort").is_none());
        assert!(validate(&np).is_empty(), "{:?}", validate(&np));
        let lb = defaulted(json!({"type": "LoadBalancer", "healthCheckNodePort": 0,
            "ports": [{"port": 80}]}));
        assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
        assert!(lb["spec"].get("healthCheckNodePort").is_none());
        assert!(allocates_node_ports(&lb) && !needs_health_check(&lb));
        let local = defaulted(
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "allocateLoadBalancerNodePorts": false, "ports": [{"port": 80}]}),
        );
        assert!(needs_health_check(&local) && !allocates_node_ports(&local));
        let cip = defaulted(json!({"ports": [{"port": 80}]}));
        assert!(cip["spec"].get("externalTrafficPolicy").is_none());
        let external = defaulted(json!({"externalIPs": ["192.0.2.1"], "ports": [{"port": 80}]}));
        assert_eq!(external["spec"]["externalTrafficPolicy"], "Cluster");
    }

    #[test]
    fn node_ports_are_validated_as_kube_does() {
        let v = |spec: Value| lines(validate(&defaulted(spec)));
        assert_eq!(
            v(json!({"ports": [{"port": 80, "nodePort": 30080}]})),
            ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
        );
        // One node port for TCP and UDP, but not twice for one protocol.
        let ports = json!([{"name": "a", "port": 53, "nodePort": 30053},
            {"name": "b", "port": 53, "protocol": "UDP", "nodePort": 30053},
            {"name": "c", "port": 54, "nodePort": 30053}]);
        assert_eq!(
            v(json!({"type": "NodePort", "ports": ports})),
            ["spec.ports[2].nodePort: Duplicate value: 30053"]
        );
        assert_eq!(
            v(json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]})),
            [
                "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"
            ]
        );
        assert_eq!(
            v(
                json!({"type": "NodePort", "allocateLoadBalancerNodePorts": true,
                "externalTrafficPolicy": "Global", "healthCheckNodePort": 30000, "ports": [{"port": 80}]})
            ),
            [
                "spec.allocateLoadBalancerNodePorts: Forbidden: may only be used when `type` is 'LoadBalancer'",
                "spec.externalTrafficPolicy: Unsupported value: \"Global\": supported values: \"Cluster\", \"Local\"",
                "spec.healthCheckNodePort: Invalid value: 30000: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ]
        );
        assert_eq!(
            v(json!({"externalTrafficPolicy": "Local", "ports": [{"port": 80}]})),
            [
                "spec.externalTrafficPolicy: Invalid value: \"Local\": may only be set for externally-accessible services"
            ]
        );
        assert!(
            v(
                json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                "healthCheckNodePort": 30100, "ports": [{"port": 80}]})
            )
            .is_empty()
        );
    }

    #[test]
    fn updates_keep_allocated_node_ports_and_drop_them_with_the_type() {
        let old = defaulted(
            json!({"type": "NodePort", "clusterIP": "10.96.0.5", "ports": [
            {"name": "http", "port": 80, "nodePort": 30080},
            {"name": "https", "port": 443, "nodePort": 30443}]}),
        );
        // kubectl replace without node ports; `https` moved to 30080's port number: 30080 is not copied.
        let mut new = defaulted(json!({"type": "NodePort", "ports": [
            {"name": "http", "port": 80}, {"name": "https", "port": 443, "nodePort": 30080},
            {"name": "extra", "port": 8080}]}));
        keep_allocated(&old, &mut new);
        drop_type_dependent(&old, &mut new);
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.5");
        let got: Vec<Option<i64>> = ports(&new).iter().map(node_port).collect();
        assert_eq!(got, [None, Some(30080), None]);

        // To ClusterIP with the node ports left as they were: dropped.
        let mut to_cip = old.clone();
        to_cip["spec"]["type"] = json!("ClusterIP");
        defaults(&mut to_cip);
        drop_type_dependent(&old, &mut to_cip);
        assert!(node_ports(&to_cip).is_empty());
        assert!(to_cip["spec"].get("externalTrafficPolicy").is_none());
        assert!(validate(&to_cip).is_empty());
        // With a node port the old object did not have: refused.
        let mut changed = old.clone();
        changed["spec"]["type"] = json!("ClusterIP");
        changed["spec"]["ports"][0]["nodePort"] = json!(30081);
        drop_type_dependent(&old, &mut changed);
        assert_eq!(
            lines(validate(&changed)),
            [
                "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
                "spec.ports[1].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
            ]
        );

        // The health check node port is kept, immutable, and dropped with `Local`.
        let lb = defaulted(
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "healthCheckNodePort": 30100, "ports": [{"port": 80, "nodePort": 30080}]}),
        );
        let mut kept = defaulted(
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "ports": [{"port": 80}]}),
        );
        keep_allocated(&lb, &mut kept);
        assert_eq!(health_check_node_port(&kept), Some(30100));
        assert_eq!(node_ports(&kept), HashSet::from([30080]));
        kept["spec"]["healthCheckNodePort"] = json!(30101);
        assert_eq!(
            lines(validate_update(&lb, &kept)),
            ["spec.healthCheckNodePort: Forbidden: field is immutable"]
        );
        let mut cluster = lb.clone();
        cluster["spec"]["externalTrafficPolicy"] = json!("Cluster");
        drop_type_dependent(&lb, &mut cluster);
        assert_eq!(health_check_node_port(&cluster), None);
        let mut to_np = lb.clone();
        to_np["spec"]["type"] = json!("NodePort");
        drop_type_dependent(&lb, &mut to_np);
        assert!(to_np["spec"].get("allocateLoadBalancerNodePorts").is_none());
        assert_eq!(node_ports(&to_np), HashSet::from([30080]));
    }

    #[test]
    fn columns_of_node_port_and_load_balancer_services() {
        let np = defaulted(
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080},
            {"port": 53, "protocol": "UDP"}]}),
        );
        assert_eq!(ports_column(&np), "80:30080/TCP,53/UDP");
        assert_eq!(external_ip_column(&np), "<none>");
        let mut lb = defaulted(json!({"type": "LoadBalancer", "ports": [{"port": 80}]}));
        assert_eq!(external_ip_column(&lb), "<pending>");
        lb["spec"]["externalIPs"] = json!(["192.0.2.9"]);
        assert_eq!(external_ip_column(&lb), "192.0.2.9");
        lb["status"]["loadBalancer"]["ingress"] =
            json!([{"ip": "198.51.100.7"}, {"hostname": "lb.example"}]);
        assert_eq!(external_ip_column(&lb), "198.51.100.7,lb.example,192.0.2.9");
        let en = defaulted(json!({"type": "ExternalName", "externalName": "example.com"}));
        assert_eq!(external_ip_column(&en), "example.com");
    }

    #[test]
    fn endpoints_column_and_validation() {
        let e = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
            "ports": [{"port": 80}, {"port": 81}]}]});
        assert_eq!(
            endpoints_column(&e),
            "10.0.0.1:80,10.0.0.2:80,10.0.0.1:81 + 1 more..."
        );
        assert_eq!(endpoints_column(&json!({})), "<none>");
        assert!(validate_endpoints(&e).is_empty());
        let bad = json!({"subsets": [{"addresses": [{"ip": "x"}], "ports": [{"port": 0}]}]});
        assert_eq!(validate_endpoints(&bad).len(), 2);
    }
}
