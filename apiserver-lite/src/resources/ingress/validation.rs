//! kube's Ingress validation (`ValidateIngressCreate`, `ValidateIngressUpdate`, and the status checks of
//! `ValidateIngressStatusUpdate`), with kube's paths and messages. Metadata is checked by the caller
//! (`validate_meta`), as for every kind.

use serde_json::{Value, json};

use super::CLASS_ANNOTATION;
use super::names::{
    dns1035_errors, parses_as_ip, path_segment_errors, port_name_errors, subdomain_errors,
    wildcard_errors,
};
use crate::resources::validation::invalid_each;
use crate::resources::workloads::invalid_go;
use crate::status::FieldError;

/// `supportedPathTypes`, sorted as kube lists them.
const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];
/// Sequences an `Exact` or `Prefix` path may not contain, and suffixes it may not end with.
const INVALID_PATH_SEQUENCES: &[&str] = &["//", "/./", "/../", "%2f", "%2F"];
const INVALID_PATH_SUFFIXES: &[&str] = &["/..", "/."];

/// kube's `IngressValidationOptions`: on update, values an older apiserver let through stay writable.
#[derive(Default, Clone, Copy)]
struct Opts {
    allow_invalid_secret_name: bool,
    allow_invalid_wildcard_host_rule: bool,
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// kube's `ValidateIngressCreate`: the spec, and the deprecated class annotation agreeing with
/// `spec.ingressClassName` when both are set.
pub fn validate_create(obj: &Value) -> Vec<FieldError> {
    let mut errs = validate_spec(obj, Opts::default());
    let annotation = obj
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(CLASS_ANNOTATION))
        .and_then(Value::as_str);
    let class = obj
        .pointer("/spec/ingressClassName")
        .and_then(Value::as_str);
    if let (Some(annotation), Some(class)) = (annotation, class)
        && annotation != class
    {
        errs.push(FieldError::invalid(
            format!("annotations.{CLASS_ANNOTATION}"),
            &json!(annotation),
            "must match `ingressClassName` when both are specified",
        ));
    }
    errs
}

/// kube's `ValidateIngressUpdate` (with the options the stored object earns) plus the load-balancer
/// status checks, which a write of `status` must pass.
pub fn validate_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let opts = Opts {
        allow_invalid_secret_name: array(&old["spec"], "tls")
            .iter()
            .any(|t| !secret_name_errors(str_of(t, "secretName").unwrap_or("")).is_empty()),
        allow_invalid_wildcard_host_rule: array(&old["spec"], "rules").iter().any(|r| {
            str_of(r, "host").is_some_and(|h| h.contains('*'))
                && !rule_value_errors(r, "").is_empty()
        }),
    };
    let mut errs = validate_spec(new, opts);
    errs.extend(validate_status(new));
    errs
}

fn secret_name_errors(name: &str) -> Vec<String> {
    if name.is_empty() {
        Vec::new()
    } else {
        subdomain_errors(name)
    }
}

/// kube's `ValidateIngressSpec`.
fn validate_spec(obj: &Value, opts: Opts) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    let rules = spec.get("rules").filter(|r| !r.is_null());
    let default_backend = spec.get("defaultBackend").filter(|b| !b.is_null());
    let no_rules = rules.and_then(Value::as_array).is_none_or(Vec::is_empty);
    if no_rules && default_backend.is_none() {
        // kube prints the Go value of `spec.rules`: nil when absent, empty when `[]`.
        let go = if rules.is_some() {
            "[]networking.IngressRule{}"
        } else {
            "[]networking.IngressRule(nil)"
        };
        errs.push(invalid_go(
            "spec",
            go.to_string(),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(backend) = default_backend {
        errs.extend(validate_backend(backend, "spec.defaultBackend"));
    }
    for (i, rule) in array(&spec, "rules").iter().enumerate() {
        let path = format!("spec.rules[{i}]");
        let host = str_of(rule, "host").unwrap_or("");
        let mut wildcard = false;
        if !host.is_empty() {
            let field = format!("{path}.host");
            if parses_as_ip(host) {
                errs.push(FieldError::invalid(
                    &field,
                    &json!(host),
                    "must be a DNS name, not an IP address",
                ));
            }
            if host.contains('*') {
                errs.extend(invalid_each(&field, host, wildcard_errors(host)));
                wildcard = true;
            } else {
                errs.extend(invalid_each(&field, host, subdomain_errors(host)));
            }
        }
        if !wildcard || !opts.allow_invalid_wildcard_host_rule {
            errs.extend(rule_value_errors(rule, &path));
        }
    }
    for (t, tls) in array(&spec, "tls").iter().enumerate() {
        for (i, host) in array(tls, "hosts").iter().enumerate() {
            let host = host.as_str().unwrap_or("");
            let field = format!("spec.tls[{t}].hosts[{i}]");
            let msgs = if host.contains('*') {
                wildcard_errors(host)
            } else {
                subdomain_errors(host)
            };
            errs.extend(invalid_each(&field, host, msgs));
        }
        if !opts.allow_invalid_secret_name {
            let name = str_of(tls, "secretName").unwrap_or("");
            let field = format!("spec.tls[{t}].secretName");
            errs.extend(invalid_each(&field, name, secret_name_errors(name)));
        }
    }
    if let Some(class) = str_of(&spec, "ingressClassName") {
        errs.extend(invalid_each(
            "spec.ingressClassName",
            class,
            subdomain_errors(class),
        ));
    }
    errs
}

/// kube's `validateIngressRuleValue`: the HTTP paths of one rule (`path` is the rule's field path).
fn rule_value_errors(rule: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(http) = rule.get("http").filter(|h| h.is_object()) else {
        return errs;
    };
    let paths = array(http, "paths");
    if paths.is_empty() {
        errs.push(FieldError::required(format!("{path}.http.paths"), ""));
    }
    for (i, p) in paths.iter().enumerate() {
        errs.extend(validate_path(p, &format!("{path}.http.paths[{i}]")));
    }
    errs
}

/// kube's `validateHTTPIngressPath`.
fn validate_path(p: &Value, field: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(path_type) = p.get("pathType").filter(|t| !t.is_null()) else {
        return vec![FieldError::required(
            format!("{field}.pathType"),
            "pathType must be specified",
        )];
    };
    let path = str_of(p, "path").unwrap_or("");
    let path_field = format!("{field}.path");
    let absolute = || FieldError::invalid(&path_field, &json!(path), "must be an absolute path");
    match path_type.as_str() {
        Some("Exact" | "Prefix") => {
            if !path.starts_with('/') {
                errs.push(absolute());
            }
            for seq in INVALID_PATH_SEQUENCES.iter().filter(|s| path.contains(**s)) {
                errs.push(FieldError::invalid(
                    &path_field,
                    &json!(path),
                    &format!("must not contain '{seq}'"),
                ));
            }
            for suffix in INVALID_PATH_SUFFIXES.iter().filter(|s| path.ends_with(**s)) {
                errs.push(FieldError::invalid(
                    &path_field,
                    &json!(path),
                    &format!("cannot end with '{suffix}'"),
                ));
            }
        }
        Some("ImplementationSpecific") => {
            if !path.is_empty() && !path.starts_with('/') {
                errs.push(absolute());
            }
        }
        _ => errs.push(FieldError::not_supported(
            format!("{field}.pathType"),
            path_type,
            PATH_TYPES,
        )),
    }
    errs.extend(validate_backend(
        p.get("backend").unwrap_or(&Value::Null),
        &format!("{field}.backend"),
    ));
    errs
}

/// kube's `validateIngressBackend`: exactly one of a Service (a name and a port name or number) or a
/// typed resource reference.
fn validate_backend(backend: &Value, field: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let resource = backend.get("resource").filter(|r| !r.is_null());
    let service = backend.get("service").filter(|s| !s.is_null());
    match (resource, service) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            field,
            &json!(""),
            "cannot set both resource and service backends",
        )),
        (Some(r), None) => errs.extend(validate_typed_ref(r, &format!("{field}.resource"))),
        (None, Some(svc)) => {
            let name = str_of(svc, "name").unwrap_or("");
            let name_field = format!("{field}.service.name");
            if name.is_empty() {
                errs.push(FieldError::required(name_field, ""));
            } else {
                errs.extend(invalid_each(&name_field, name, dns1035_errors(name)));
            }
            let port = svc.get("port").cloned().unwrap_or(Value::Null);
            let port_name = str_of(&port, "name").unwrap_or("");
            let number = port.get("number").and_then(Value::as_i64).unwrap_or(0);
            match (port_name.is_empty(), number == 0) {
                (false, false) => errs.push(FieldError::invalid(
                    field,
                    &json!(""),
                    "cannot set both port name & port number",
                )),
                (false, true) => errs.extend(invalid_each(
                    &format!("{field}.service.port.name"),
                    port_name,
                    port_name_errors(port_name),
                )),
                (true, false) => {
                    if !(1..=65535).contains(&number) {
                        errs.push(FieldError::invalid(
                            format!("{field}.service.port.number"),
                            &json!(number),
                            "must be between 1 and 65535, inclusive",
                        ));
                    }
                }
                (true, true) => errs.push(FieldError::required(
                    field,
                    "port name or number is required",
                )),
            }
        }
        (None, None) => errs.push(FieldError::invalid(
            field,
            &json!(""),
            "resource or service backend is required",
        )),
    }
    errs
}

/// kube's `validateIngressTypedLocalObjectReference` (a resource backend).
fn validate_typed_ref(r: &Value, field: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(group) = str_of(r, "apiGroup") {
        errs.extend(invalid_each(
            &format!("{field}.apiGroup"),
            group,
            subdomain_errors(group),
        ));
    }
    for key in ["kind", "name"] {
        let value = str_of(r, key).unwrap_or("");
        let f = format!("{field}.{key}");
        if value.is_empty() {
            errs.push(FieldError::required(f, ""));
        } else {
            errs.extend(invalid_each(&f, value, path_segment_errors(value)));
        }
    }
    errs
}

/// The checks of kube's `ValidateIngressLoadBalancerStatus` (1.32): an `ip` is an IP address, a
/// `hostname` a DNS subdomain and not an IP.
fn validate_status(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let entries = obj
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, entry) in entries.iter().enumerate() {
        let field = |x: &str| format!("status.loadBalancer.ingress[{i}].{x}");
        let ip = str_of(entry, "ip").unwrap_or("");
        if !ip.is_empty() && !parses_as_ip(ip) {
            errs.push(FieldError::invalid(
                field("ip"),
                &json!(ip),
                "must be a valid IP address",
            ));
        }
        let hostname = str_of(entry, "hostname").unwrap_or("");
        if !hostname.is_empty() {
            errs.extend(invalid_each(
                &field("hostname"),
                hostname,
                subdomain_errors(hostname),
            ));
            if parses_as_ip(hostname) {
                errs.push(FieldError::invalid(
                    field("hostname"),
                    &json!(hostname),
                    "must be a DNS name, not an IP address",
                ));
            }
        }
    }
    errs
}
