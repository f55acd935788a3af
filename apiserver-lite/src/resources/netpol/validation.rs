//! kube 1.32's `ValidateNetworkPolicy` / `ValidateNetworkPolicyUpdate` (pkg/apis/networking/validation):
//! the pod selector, every rule's ports (protocol, number or IANA name, `endPort`) and peers (selectors,
//! `ipBlock` with its `except` strictly inside `cidr`), and `policyTypes`. The metadata is checked by the
//! caller.

use ipnet::IpNet;
use serde_json::{Value, json};

use crate::resources::workloads::validate_label_selector;
use crate::status::FieldError;

const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];
const POLICY_TYPES: &[&str] = &["Ingress", "Egress"];
const PORT_RANGE_MSG: &str = "must be between 1 and 65535, inclusive";

/// What every version of a NetworkPolicy must satisfy (kube's `ValidateNetworkPolicySpec`).
pub fn validate(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = json!({});
    let spec = obj.get("spec").filter(|s| s.is_object()).unwrap_or(&empty);
    if let Some(sel) = spec.get("podSelector").filter(|s| s.is_object()) {
        errs.extend(validate_label_selector(sel, "spec.podSelector"));
    }
    for (rules, peers) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in list(spec, rules).iter().enumerate() {
            let path = format!("spec.{rules}[{i}]");
            for (j, port) in list(rule, "ports").iter().enumerate() {
                validate_port(port, &format!("{path}.ports[{j}]"), &mut errs);
            }
            for (j, peer) in list(rule, peers).iter().enumerate() {
                validate_peer(peer, &format!("{path}.{peers}[{j}]"), &mut errs);
            }
        }
    }
    let types = list(spec, "policyTypes");
    if types.len() > POLICY_TYPES.len() {
        let shown: Vec<String> = types
            .iter()
            .map(|t| format!("{:?}", t.as_str().unwrap_or("")))
            .collect();
        errs.push(crate::resources::workloads::invalid_go(
            "spec.policyTypes",
            format!("[]networking.PolicyType{{{}}}", shown.join(", ")),
            "may not specify more than two policyTypes",
        ));
        return errs;
    }
    for (i, t) in types.iter().enumerate() {
        if !t.as_str().is_some_and(|t| POLICY_TYPES.contains(&t)) {
            errs.push(FieldError::not_supported(
                format!("spec.policyTypes[{i}]"),
                t,
                POLICY_TYPES,
            ));
        }
    }
    errs
}

/// The array at `key` of `v` (empty when missing or null).
fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// kube's `ValidateNetworkPolicyPort`.
fn validate_port(port: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(proto) = port.get("protocol").filter(|p| !p.is_null())
        && !proto.as_str().is_some_and(|p| PROTOCOLS.contains(&p))
    {
        errs.push(FieldError::not_supported(
            format!("{path}.protocol"),
            proto,
            PROTOCOLS,
        ));
    }
    let end = port.get("endPort").filter(|e| !e.is_null());
    match port.get("port").filter(|p| !p.is_null()) {
        Some(Value::String(name)) => {
            if let Some(end) = end {
                errs.push(FieldError::invalid(
                    format!("{path}.endPort"),
                    end,
                    "may not be specified when `port` is non-numeric",
                ));
            }
            for msg in port_name_errors(name) {
                errs.push(FieldError::invalid(
                    format!("{path}.port"),
                    &json!(name),
                    msg,
                ));
            }
        }
        Some(number) => {
            let n = number.as_i64();
            if !n.is_some_and(valid_port_number) {
                errs.push(FieldError::invalid(
                    format!("{path}.port"),
                    number,
                    PORT_RANGE_MSG,
                ));
            }
            if let Some(end) = end {
                let e = end.as_i64();
                if let (Some(e), Some(n)) = (e, n)
                    && e < n
                {
                    errs.push(FieldError::invalid(
                        format!("{path}.endPort"),
                        end,
                        "must be greater than or equal to `port`",
                    ));
                }
                if !e.is_some_and(valid_port_number) {
                    errs.push(FieldError::invalid(
                        format!("{path}.endPort"),
                        end,
                        PORT_RANGE_MSG,
                    ));
                }
            }
        }
        None => {
            if let Some(end) = end {
                errs.push(FieldError::invalid(
                    format!("{path}.endPort"),
                    end,
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
}

fn valid_port_number(n: i64) -> bool {
    (1..=65535).contains(&n)
}

/// kube's `IsValidPortName` (an IANA service name): every rule broken, in kube's order and words.
pub(crate) fn port_name_errors(name: &str) -> Vec<&'static str> {
    let mut errs = Vec::new();
    if name.len() > 15 {
        errs.push("must be no more than 15 characters");
    }
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)");
    }
    if name.contains("--") {
        errs.push("must not contain consecutive hyphens");
    }
    if name.starts_with('-') || name.ends_with('-') {
        errs.push("must not begin or end with a hyphen");
    }
    errs
}

/// kube's `ValidateNetworkPolicyPeer`: at least one of the three, and `ipBlock` alone.
fn validate_peer(peer: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let mut count = 0;
    for (key, name) in [
        ("podSelector", "podSelector"),
        ("namespaceSelector", "namespaceSelector"),
    ] {
        if let Some(sel) = peer.get(key).filter(|s| !s.is_null()) {
            count += 1;
            errs.extend(validate_label_selector(sel, &format!("{path}.{name}")));
        }
    }
    let block = peer.get("ipBlock").filter(|b| !b.is_null());
    if let Some(block) = block {
        count += 1;
        validate_ip_block(block, &format!("{path}.ipBlock"), errs);
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a peer"));
    } else if count > 1 && block.is_some() {
        errs.push(FieldError::forbidden(
            path,
            "may not specify both ipBlock and another peer",
        ));
    }
}

/// A CIDR as Go's `ParseCIDRSloppy` reads it (host bits may be set; the network is what counts).
fn parse_cidr(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>().ok().map(|n| n.trunc())
}

/// kube 1.32's `ValidateIPBlock`: `cidr` is required and a CIDR; each `except` is a CIDR strictly
/// inside it (same family, longer prefix). The first unparsable `except` ends the check, as in kube.
fn validate_ip_block(block: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let cidr = block.get("cidr").and_then(Value::as_str).unwrap_or("");
    if cidr.is_empty() {
        errs.push(FieldError::required(format!("{path}.cidr"), ""));
        return;
    }
    let Some(net) = parse_cidr(cidr) else {
        errs.push(FieldError::invalid(
            format!("{path}.cidr"),
            &json!(cidr),
            "not a valid CIDR",
        ));
        return;
    };
    for (i, except) in list(block, "except").iter().enumerate() {
        let text = except.as_str().unwrap_or("");
        let Some(inner) = parse_cidr(text) else {
            errs.push(FieldError::invalid(
                format!("{path}.except[{i}]"),
                except,
                "not a valid CIDR",
            ));
            return;
        };
        if !net.contains(&inner.network()) || net.prefix_len() >= inner.prefix_len() {
            errs.push(FieldError::invalid(
                format!("{path}.except[{i}]"),
                except,
                "must be a strict subset of `cidr`",
            ));
        }
    }
}
