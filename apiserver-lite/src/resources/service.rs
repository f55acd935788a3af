//! Services and Endpoints: defaults, validation and the columns kubectl prints.
//!
//! Supported service types: ClusterIP (including headless, `clusterIP: None`) and ExternalName. NodePort and
//! LoadBalancer are refused (no node ports or load balancers are implemented). The cluster IP itself is
//! allocated by `crate::service_ips` before validation.

use std::net::IpAddr;

use serde_json::{Value, json};

use super::validation::is_dns1123_label;
use crate::status::FieldError;

const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];

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
    if spec.get("sessionAffinity").is_none_or(Value::is_null) {
        spec["sessionAffinity"] = json!("None");
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            // Protobuf bodies carry an unset node port as 0.
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
    if obj.get("status").is_none_or(Value::is_null) {
        obj["status"] = json!({"loadBalancer": {}});
    }
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
        other => errs.push(FieldError::not_supported(
            "spec.type",
            &json!(other),
            &["ClusterIP", "ExternalName"],
        )),
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
    if ports.is_empty() && ty == "ClusterIP" && cluster_ip != "None" {
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
    errs
}

/// PUT may omit the allocated cluster IP: keep it (kube-apiserver does the same).
pub fn keep_allocated(old: &Value, new: &mut Value) {
    for f in ["clusterIP", "clusterIPs"] {
        if new.pointer(&format!("/spec/{f}")).is_none_or(|v| {
            v.is_null() || v.as_str() == Some("") || v.as_array().is_some_and(Vec::is_empty)
        }) && let Some(o) = old.pointer(&format!("/spec/{f}"))
            && new.get("spec").is_some_and(Value::is_object)
        {
            new["spec"][f] = o.clone();
        }
    }
}

pub fn validate_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let o = old.pointer("/spec/clusterIP").and_then(Value::as_str);
    let n = new.pointer("/spec/clusterIP").and_then(Value::as_str);
    if o.is_some_and(|x| !x.is_empty()) && o != n {
        return vec![FieldError::invalid(
            "spec.clusterIPs[0]",
            &json!(n.unwrap_or("")),
            "may not change once set",
        )];
    }
    Vec::new()
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

pub fn external_ip_column(obj: &Value) -> String {
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    if spec.get("type").and_then(Value::as_str) == Some("ExternalName") {
        return spec
            .get("externalName")
            .and_then(Value::as_str)
            .unwrap_or("<none>")
            .to_string();
    }
    let ips: Vec<String> = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if ips.is_empty() {
        "<none>".into()
    } else {
        ips.join(",")
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
            validate(&json!({"spec": {"type": "NodePort", "ports": [{"port": 1}]}}))[0].field,
            "spec.type"
        );
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
