//! IngressClass defaults, validation and cells.

use serde_json::{Value, json};

use super::lines;
use crate::resources::Kind;
use crate::resources::ingress::{
    cells, defaults, normalize, prepare_create, validate_class, validate_class_update,
};

fn class(spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "nginx"}, "spec": spec})
}

#[test]
fn parameters_default_to_cluster_scope() {
    let mut c = class(json!({"controller": "k8s.io/ingress-nginx",
        "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}}));
    prepare_create(Kind::IngressClass, &mut c);
    assert_eq!(c["spec"]["parameters"]["scope"], "Cluster");
    assert!(c.get("status").is_none());
    let mut c = class(json!({"controller": "k8s.io/ingress-nginx",
        "parameters": {"kind": "K", "name": "p", "scope": "Namespace", "namespace": "ns"}}));
    defaults(Kind::IngressClass, &mut c);
    assert_eq!(c["spec"]["parameters"]["scope"], "Namespace");
    assert!(validate_class(&c).is_empty());
    let n = normalize(Kind::IngressClass, &json!({"metadata": {"name": "x"}})).expect("ok");
    assert_eq!(n["spec"], json!({}));
}

#[test]
fn controller_is_a_domain_prefixed_path_fixed_once_set() {
    assert_eq!(
        lines(&validate_class(&class(json!({})))),
        ["spec.controller: Required value"]
    );
    assert_eq!(
        lines(&validate_class(&class(json!({"controller": "nginx"})))),
        [
            "spec.controller: Invalid value: \"nginx\": must be a domain-prefixed path (such as \"acme.io/foo\")"
        ]
    );
    let long = format!("example.com/{}", "a".repeat(250));
    assert_eq!(
        lines(&validate_class(&class(json!({"controller": long})))),
        ["spec.controller: Too long: may not be more than 250 bytes"]
    );
    let old = class(json!({"controller": "example.com/a"}));
    let new = class(json!({"controller": "example.com/b"}));
    assert_eq!(
        lines(&validate_class_update(&old, &new)),
        ["spec.controller: Invalid value: \"example.com/b\": field is immutable"]
    );
    assert!(validate_class_update(&old, &old).is_empty());
}

#[test]
fn parameters_follow_kubes_scope_rules() {
    let params = |p: Value| {
        lines(&validate_class(&class(
            json!({"controller": "example.com/c", "parameters": p}),
        )))
    };
    assert_eq!(
        params(json!({"apiGroup": "Bad_Group", "scope": "Cluster"})),
        [
            "spec.parameters.apiGroup: Invalid value: \"Bad_Group\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            "spec.parameters.kind: Required value",
            "spec.parameters.name: Required value",
        ]
    );
    assert_eq!(
        params(json!({"kind": "K", "name": "..", "scope": "Namespace"})),
        [
            "spec.parameters.name: Invalid value: \"..\": may not be '..'",
            "spec.parameters.namespace: Required value: `parameters.scope` is set to 'Namespace'",
        ]
    );
    assert_eq!(
        params(json!({"kind": "K", "name": "p", "scope": "Cluster", "namespace": "ns"})),
        ["spec.parameters.namespace: Forbidden: `parameters.scope` is set to 'Cluster'"]
    );
    assert_eq!(
        params(json!({"kind": "K", "name": "p", "scope": "Global"})),
        [
            "spec.parameters.scope: Unsupported value: \"Global\": supported values: \"Cluster\", \"Namespace\""
        ]
    );
    assert_eq!(
        params(json!({"kind": "K", "name": "p"})),
        ["spec.parameters.scope: Required value"]
    );
}

#[test]
fn class_cells_as_kubes_printer() {
    let c = class(json!({"controller": "k8s.io/ingress-nginx",
        "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}}));
    assert_eq!(
        cells(Kind::IngressClass, &c, "nginx".into(), "1m".into()),
        [
            json!("nginx"),
            json!("k8s.io/ingress-nginx"),
            json!("IngressParameters.k8s.example.com/p"),
            json!("1m")
        ]
    );
    let c = class(json!({"controller": "k8s.io/ingress-nginx"}));
    assert_eq!(
        cells(Kind::IngressClass, &c, "nginx".into(), "1m".into())[2],
        json!("<none>")
    );
}
