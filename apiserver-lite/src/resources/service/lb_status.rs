//! `status.loadBalancer` of a Service as kube-apiserver 1.32 takes it: `ipMode` defaults to `VIP` on an
//! ingress entry with an `ip` (`SetDefaults_Service`, LoadBalancerIPMode on by default), and
//! `ValidateLoadBalancerStatus` checks the entries on every update — ingress only on a LoadBalancer,
//! `ip` an IP address, `hostname` a DNS subdomain and no IP, `ipMode` only with an `ip` and one of
//! `VIP`/`Proxy`.

use std::net::IpAddr;

use serde_json::{Value, json};

use super::super::validation::{DNS1123_SUBDOMAIN_MSG, is_dns1123_subdomain};
use crate::status::FieldError;

const IP_MODES: &[&str] = &["Proxy", "VIP"];

/// Default `ipMode: VIP` on every ingress entry that has an `ip` and no `ipMode`.
pub fn default_ip_mode(obj: &mut Value) {
    let Some(ingress) = obj
        .pointer_mut("/status/loadBalancer/ingress")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for entry in ingress.iter_mut().filter_map(Value::as_object_mut) {
        let has_ip = entry
            .get("ip")
            .and_then(Value::as_str)
            .is_some_and(|ip| !ip.is_empty());
        if has_ip && entry.get("ipMode").is_none_or(Value::is_null) {
            entry.insert("ipMode".into(), json!("VIP"));
        }
    }
}

/// Go's `ParseIPSloppy`: IPv4 parts may carry leading zeros (`010.0.0.1`).
fn parses_as_ip(text: &str) -> bool {
    if text.parse::<IpAddr>().is_ok() {
        return true;
    }
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        && parts
            .iter()
            .all(|p| p.parse::<u16>().is_ok_and(|n| n <= 255))
}

/// kube's `ValidateLoadBalancerStatus` (AllowServiceLBStatusOnNonLB off, as in 1.32).
pub fn validate(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ingress: &[Value] = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if ingress.is_empty() {
        return errs;
    }
    if obj.pointer("/spec/type").and_then(Value::as_str) != Some("LoadBalancer") {
        errs.push(FieldError::forbidden(
            "status.loadBalancer.ingress",
            "may only be used when `spec.type` is 'LoadBalancer'",
        ));
        return errs;
    }
    for (i, entry) in ingress.iter().enumerate() {
        let f = |x: &str| format!("status.loadBalancer.ingress[{i}].{x}");
        let ip = entry.get("ip").and_then(Value::as_str).unwrap_or("");
        if !ip.is_empty() && !parses_as_ip(ip) {
            errs.push(FieldError::invalid(
                f("ip"),
                &json!(ip),
                "must be a valid IP address",
            ));
        }
        match entry.get("ipMode") {
            None | Some(Value::Null) if !ip.is_empty() => errs.push(FieldError::required(
                f("ipMode"),
                "must be specified when `ip` is set",
            )),
            None | Some(Value::Null) => {}
            Some(_) if ip.is_empty() => errs.push(FieldError::forbidden(
                f("ipMode"),
                "may not be specified when `ip` is not set",
            )),
            Some(mode) if !mode.as_str().is_some_and(|m| IP_MODES.contains(&m)) => {
                errs.push(FieldError::not_supported(f("ipMode"), mode, IP_MODES))
            }
            Some(_) => {}
        }
        let hostname = entry.get("hostname").and_then(Value::as_str).unwrap_or("");
        if !hostname.is_empty() {
            if !is_dns1123_subdomain(hostname) {
                errs.push(FieldError::invalid(
                    f("hostname"),
                    &json!(hostname),
                    DNS1123_SUBDOMAIN_MSG,
                ));
            }
            if parses_as_ip(hostname) {
                errs.push(FieldError::invalid(
                    f("hostname"),
                    &json!(hostname),
                    "must be a DNS name, not an IP address",
                ));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lb(ingress: Value) -> Value {
        json!({"spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {"ingress": ingress}}})
    }

    fn fields(errs: &[FieldError]) -> Vec<String> {
        errs.iter().map(FieldError::to_line).collect()
    }

    #[test]
    fn ip_mode_defaults_to_vip_only_with_an_ip() {
        let mut svc = lb(json!([{"ip": "10.0.0.1"}, {"hostname": "lb.example"},
            {"ip": "10.0.0.2", "ipMode": "Proxy"}]));
        default_ip_mode(&mut svc);
        assert_eq!(
            svc["status"]["loadBalancer"]["ingress"],
            json!([{"ip": "10.0.0.1", "ipMode": "VIP"}, {"hostname": "lb.example"},
                {"ip": "10.0.0.2", "ipMode": "Proxy"}])
        );
        assert!(validate(&svc).is_empty());
    }

    #[test]
    fn entries_are_validated_as_kube_does() {
        let errs = validate(&lb(json!([
            {"ip": "10.0.0.1", "ipMode": "VIP"},
            {"ip": "010.000.000.001", "ipMode": "Proxy"},
            {"ip": "not-an-ip", "ipMode": "VIP"},
            {"ip": "10.0.0.3"},
            {"hostname": "lb.example", "ipMode": "VIP"},
            {"ip": "10.0.0.4", "ipMode": "Direct"},
            {"hostname": "10.0.0.5"},
            {"hostname": "Bad_Name"},
        ])));
        let lines = fields(&errs);
        assert_eq!(lines.len(), 6, "{lines:#?}");
        assert!(lines[0].starts_with("status.loadBalancer.ingress[2].ip: Invalid value: \"not-an-ip\": must be a valid IP address"), "{lines:#?}");
        assert!(lines[1].starts_with("status.loadBalancer.ingress[3].ipMode: Required value: must be specified when `ip` is set"), "{lines:#?}");
        assert!(lines[2].starts_with("status.loadBalancer.ingress[4].ipMode: Forbidden: may not be specified when `ip` is not set"), "{lines:#?}");
        assert!(
            lines[3].starts_with(
                "status.loadBalancer.ingress[5].ipMode: Unsupported value: \"Direct\""
            ),
            "{lines:#?}"
        );
        assert!(lines[4].starts_with("status.loadBalancer.ingress[6].hostname: Invalid value: \"10.0.0.5\": must be a DNS name, not an IP address"), "{lines:#?}");
        assert!(lines[5].starts_with("status.loadBalancer.ingress[7].hostname: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"), "{lines:#?}");
    }

    #[test]
    fn ingress_only_on_a_load_balancer() {
        let mut svc = lb(json!([{"ip": "10.0.0.1", "ipMode": "VIP"}]));
        svc["spec"]["type"] = json!("NodePort");
        assert_eq!(
            fields(&validate(&svc)),
            [
                "status.loadBalancer.ingress: Forbidden: may only be used when `spec.type` is 'LoadBalancer'"
            ]
        );
        svc["status"]["loadBalancer"] = json!({});
        assert!(validate(&svc).is_empty());
    }
}
