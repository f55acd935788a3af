use serde_json::{Value, json};

use super::*;
use crate::status::FieldError;

mod admission;
mod class;

fn ingress(spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

fn svc(name: &str, port: Value) -> Value {
    json!({"service": {"name": name, "port": port}})
}

fn path(path_type: &str, path: &str) -> Value {
    json!({"path": path, "pathType": path_type, "backend": svc("web", json!({"number": 80}))})
}

fn rule(host: &str, paths: Vec<Value>) -> Value {
    json!({"host": host, "http": {"paths": paths}})
}

fn lines(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(FieldError::to_line).collect()
}

fn create_errors(spec: Value) -> Vec<String> {
    let mut n = normalize(Kind::Ingress, &ingress(spec)).expect("normalize");
    prepare_create(Kind::Ingress, &mut n);
    lines(&validate_create(&n))
}

#[test]
fn normalize_keeps_a_missing_path_type_missing_and_defaults_drop_port_zero() {
    let n = normalize(
        Kind::Ingress,
        &ingress(json!({"rules": [{"http": {"paths": [
            {"path": "/", "backend": svc("a", json!({"name": "http", "number": 0}))},
            path("Prefix", "/b"),
        ]}}], "bogus": 1})),
    )
    .expect("normalize");
    let paths = &n["spec"]["rules"][0]["http"]["paths"];
    assert!(paths[0].get("pathType").is_none(), "{paths}");
    assert_eq!(
        paths[0]["backend"]["service"]["port"],
        json!({"name": "http", "number": 0})
    );
    let mut defaulted = n.clone();
    defaults(Kind::Ingress, &mut defaulted);
    assert_eq!(
        defaulted["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"],
        json!({"name": "http"})
    );
    assert_eq!(paths[1]["pathType"], "Prefix");
    assert!(n["spec"].get("bogus").is_none());
    let n = normalize(Kind::Ingress, &json!({"metadata": {"name": "x"}})).expect("ok");
    assert_eq!(n["spec"], json!({}));
    assert!(normalize(Kind::Ingress, &ingress(json!({"rules": "no"}))).is_err());
}

#[test]
fn create_resets_the_status() {
    let mut obj = ingress(json!({"defaultBackend": svc("a", json!({"number": 80}))}));
    obj["status"] = json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}});
    prepare_create(Kind::Ingress, &mut obj);
    assert_eq!(obj["status"], json!({"loadBalancer": {}}));
}

#[test]
fn a_rule_or_a_default_backend_is_needed() {
    assert_eq!(
        create_errors(json!({})),
        [
            "spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"
        ]
    );
    assert_eq!(
        create_errors(json!({"rules": []})),
        [
            "spec: Invalid value: []networking.IngressRule{}: either `defaultBackend` or `rules` must be specified"
        ]
    );
    assert!(create_errors(json!({"defaultBackend": svc("a", json!({"number": 80}))})).is_empty());
    assert!(
        create_errors(
            json!({"rules": [rule("foo.com", vec![path("Prefix", "/")])],
            "tls": [{"hosts": ["foo.com", "*.foo.com"], "secretName": "my-cert"}],
            "ingressClassName": "nginx"})
        )
        .is_empty()
    );
}

#[test]
fn hosts_are_dns_names_with_an_optional_leading_wildcard() {
    let errs = create_errors(json!({"rules": [
        rule("10.0.0.1", vec![path("Prefix", "/")]),
        rule("*.foo.com", vec![path("Prefix", "/")]),
        rule("foo.*.com", vec![path("Prefix", "/")]),
        rule("Foo.com", vec![path("Prefix", "/")]),
        {"host": "bar.com"},
    ]}));
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert_eq!(
        errs[0],
        "spec.rules[0].host: Invalid value: \"10.0.0.1\": must be a DNS name, not an IP address"
    );
    assert!(
        errs[1].starts_with("spec.rules[2].host: Invalid value: \"foo.*.com\": a wildcard DNS-1123 subdomain must start with '*.'"),
        "{errs:#?}"
    );
    assert!(
        errs[2].starts_with(
            "spec.rules[3].host: Invalid value: \"Foo.com\": a lowercase RFC 1123 subdomain"
        ),
        "{errs:#?}"
    );
}

#[test]
fn paths_need_a_supported_type_and_an_absolute_clean_path() {
    let errs = create_errors(json!({"rules": [rule("", vec![
        json!({"path": "/", "backend": svc("web", json!({"number": 80}))}),
        path("Regex", "/"),
        path("Prefix", "api"),
        path("Exact", "/a//b/.."),
        path("ImplementationSpecific", ""),
        path("ImplementationSpecific", "rel"),
        path("Exact", "/%2Fx/."),
    ]), {"http": {"paths": []}}]}));
    assert_eq!(
        errs,
        [
            "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified",
            "spec.rules[0].http.paths[1].pathType: Unsupported value: \"Regex\": supported values: \"Exact\", \"ImplementationSpecific\", \"Prefix\"",
            "spec.rules[0].http.paths[2].path: Invalid value: \"api\": must be an absolute path",
            "spec.rules[0].http.paths[3].path: Invalid value: \"/a//b/..\": must not contain '//'",
            "spec.rules[0].http.paths[3].path: Invalid value: \"/a//b/..\": cannot end with '/..'",
            "spec.rules[0].http.paths[5].path: Invalid value: \"rel\": must be an absolute path",
            "spec.rules[0].http.paths[6].path: Invalid value: \"/%2Fx/.\": must not contain '%2F'",
            "spec.rules[0].http.paths[6].path: Invalid value: \"/%2Fx/.\": cannot end with '/.'",
            "spec.rules[1].http.paths: Required value",
        ]
    );
}

#[test]
fn backends_are_one_service_or_one_resource() {
    let backend = |b: Value| json!({"path": "/", "pathType": "Prefix", "backend": b});
    let errs = create_errors(json!({"rules": [rule("", vec![
        backend(json!({})),
        backend(json!({"service": {"name": "a", "port": {"number": 80}},
            "resource": {"kind": "Bucket", "name": "b"}})),
        backend(svc("a", json!({"name": "http", "number": 80}))),
        backend(svc("a", json!({}))),
        backend(svc("a", json!({"number": 70000}))),
        backend(svc("1web", json!({"name": "Http"}))),
        backend(json!({"service": {"port": {"number": 80}}})),
        backend(json!({"resource": {"apiGroup": "k8s.example.com", "kind": "Bucket", "name": "a/b"}})),
        backend(json!({"resource": {"apiGroup": "k8s.example.com"}})),
    ])]}));
    let p = |i: usize| format!("spec.rules[0].http.paths[{i}].backend");
    assert_eq!(
        errs,
        [
            format!(
                "{}: Invalid value: \"\": resource or service backend is required",
                p(0)
            ),
            format!(
                "{}: Invalid value: \"\": cannot set both resource and service backends",
                p(1)
            ),
            format!(
                "{}: Invalid value: \"\": cannot set both port name & port number",
                p(2)
            ),
            format!("{}: Required value: port name or number is required", p(3)),
            format!(
                "{}.service.port.number: Invalid value: 70000: must be between 1 and 65535, inclusive",
                p(4)
            ),
            format!(
                "{}.service.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
                p(5)
            ),
            format!(
                "{}.service.port.name: Invalid value: \"Http\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                p(5)
            ),
            format!("{}.service.name: Required value", p(6)),
            format!(
                "{}.resource.name: Invalid value: \"a/b\": may not contain '/'",
                p(7)
            ),
            format!("{}.resource.kind: Required value", p(8)),
            format!("{}.resource.name: Required value", p(8)),
        ]
    );
}

#[test]
fn tls_class_name_and_the_class_annotation() {
    let mut obj = ingress(json!({"defaultBackend": svc("a", json!({"number": 80})),
        "tls": [{"hosts": ["*.ok.com", "Bad.com"], "secretName": "Bad_Secret"}],
        "ingressClassName": "Nginx"}));
    obj["metadata"]["annotations"] = json!({CLASS_ANNOTATION: "traefik"});
    let errs = lines(&validate_create(&obj));
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert!(
        errs[0].starts_with(
            "spec.tls[0].hosts[1]: Invalid value: \"Bad.com\": a lowercase RFC 1123 subdomain"
        ),
        "{errs:#?}"
    );
    assert!(
        errs[1].starts_with(
            "spec.tls[0].secretName: Invalid value: \"Bad_Secret\": a lowercase RFC 1123 subdomain"
        ),
        "{errs:#?}"
    );
    assert!(
        errs[2].starts_with(
            "spec.ingressClassName: Invalid value: \"Nginx\": a lowercase RFC 1123 subdomain"
        ),
        "{errs:#?}"
    );
    assert_eq!(
        errs[3],
        "annotations.kubernetes.io/ingress.class: Invalid value: \"traefik\": must match `ingressClassName` when both are specified"
    );
}

#[test]
fn updates_keep_what_an_older_server_let_through_and_check_the_status() {
    let old = ingress(json!({"defaultBackend": svc("a", json!({"number": 80})),
        "tls": [{"secretName": "Old_Secret"}]}));
    let mut new = old.clone();
    new["spec"]["tls"][0]["hosts"] = json!(["foo.com"]);
    assert!(validate_update(&old, &new).is_empty());
    let clean = ingress(json!({"defaultBackend": svc("a", json!({"number": 80}))}));
    assert_eq!(validate_update(&clean, &new).len(), 1);

    new["status"] = json!({"loadBalancer": {"ingress": [
        {"ip": "10.0.0.1"}, {"ip": "nope"}, {"hostname": "lb.example.com"}, {"hostname": "10.0.0.2"}]}});
    assert_eq!(
        lines(&validate_update(&old, &new)),
        [
            "status.loadBalancer.ingress[1].ip: Invalid value: \"nope\": must be a valid IP address",
            "status.loadBalancer.ingress[3].hostname: Invalid value: \"10.0.0.2\": must be a DNS name, not an IP address",
        ]
    );
}

#[test]
fn ingress_cells_as_kubes_printer() {
    let mut obj = ingress(json!({"rules": [rule("", vec![]), rule("a.com", vec![]),
        rule("b.com", vec![]), rule("c.com", vec![]), rule("d.com", vec![])]}));
    let row = cells(Kind::Ingress, &obj, "web".into(), "5s".into());
    assert_eq!(
        row,
        [
            json!("web"),
            json!("<none>"),
            json!("a.com,b.com,c.com + 2 more..."),
            json!(""),
            json!("80"),
            json!("5s")
        ]
    );
    obj["spec"] = json!({"ingressClassName": "nginx", "rules": [rule("", vec![])],
        "tls": [{"secretName": "c"}]});
    obj["status"] = json!({"loadBalancer": {"ingress": [{"ip": "192.168.100.200"}, {"hostname": "lb.example"},
        {"ip": "10.0.0.1", "hostname": "ignored"}]}});
    let row = cells(Kind::Ingress, &obj, "web".into(), "5s".into());
    assert_eq!(
        row,
        [
            json!("web"),
            json!("nginx"),
            json!("*"),
            json!("10.0.0.1,192...."),
            json!("80, 443"),
            json!("5s")
        ]
    );
    let cols = columns(
        Kind::Ingress,
        json!({"name": "Name"}),
        json!({"name": "Age"}),
    );
    let names: Vec<&str> = cols.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["Name", "Class", "Hosts", "Address", "Ports", "Age"]);
}
