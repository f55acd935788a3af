//! kube's IngressClass validation (`ValidateIngressClass`, `ValidateIngressClassUpdate`): a controller
//! named by a domain-prefixed path of at most 250 bytes, fixed once set, and an optional reference to a
//! parameters resource, cluster-scoped or in a named namespace.

use serde_json::{Value, json};

use super::names::{
    check_domain_prefixed_path, label_errors, path_segment_errors, subdomain_errors,
};
use crate::resources::validation::invalid_each;
use crate::status::FieldError;

/// `maxLenIngressClassController`.
const MAX_CONTROLLER_LEN: usize = 250;
/// `supportedIngressClassParametersReferenceScopes`, sorted as kube lists them.
const SCOPES: &[&str] = &["Cluster", "Namespace"];

/// kube's `validateIngressClassSpec` (metadata is checked by the caller).
pub fn validate_class(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let controller = obj
        .pointer("/spec/controller")
        .and_then(Value::as_str)
        .unwrap_or("");
    if controller.len() > MAX_CONTROLLER_LEN {
        errs.push(FieldError {
            reason: "FieldValueTooLong",
            field: "spec.controller".into(),
            message: format!("Too long: may not be more than {MAX_CONTROLLER_LEN} bytes"),
        });
    }
    errs.extend(check_domain_prefixed_path("spec.controller", controller));
    if let Some(params) = obj.pointer("/spec/parameters").filter(|p| p.is_object()) {
        errs.extend(validate_parameters(params));
    }
    errs
}

/// kube's `validateIngressClassParametersReference`.
fn validate_parameters(params: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let field = "spec.parameters";
    let str_of = |key: &str| params.get(key).and_then(Value::as_str);
    if let Some(group) = str_of("apiGroup") {
        errs.extend(invalid_each(
            &format!("{field}.apiGroup"),
            group,
            subdomain_errors(group),
        ));
    }
    for key in ["kind", "name"] {
        let value = str_of(key).unwrap_or("");
        let f = format!("{field}.{key}");
        if value.is_empty() {
            errs.push(FieldError::required(f, ""));
        } else {
            errs.extend(invalid_each(&f, value, path_segment_errors(value)));
        }
    }
    let Some(scope) = str_of("scope") else {
        errs.push(FieldError::required(format!("{field}.scope"), ""));
        return errs;
    };
    let namespace = str_of("namespace");
    match scope {
        "Namespace" => match namespace {
            None => errs.push(FieldError::required(
                format!("{field}.namespace"),
                "`parameters.scope` is set to 'Namespace'",
            )),
            Some(ns) => errs.extend(invalid_each(
                &format!("{field}.namespace"),
                ns,
                label_errors(ns),
            )),
        },
        "Cluster" => {
            if namespace.is_some() {
                errs.push(FieldError::forbidden(
                    format!("{field}.namespace"),
                    "`parameters.scope` is set to 'Cluster'",
                ));
            }
        }
        _ => errs.push(FieldError::not_supported(
            format!("{field}.scope"),
            &json!(scope),
            SCOPES,
        )),
    }
    errs
}

/// kube's `ValidateIngressClassUpdate`: `spec.controller` is immutable.
pub fn validate_class_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let controller = |o: &Value| {
        o.pointer("/spec/controller")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (before, after) = (controller(old), controller(new));
    if before == after {
        return Vec::new();
    }
    vec![FieldError::invalid(
        "spec.controller",
        &json!(after),
        "field is immutable",
    )]
}
