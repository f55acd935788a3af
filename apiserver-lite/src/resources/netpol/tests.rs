use serde_json::{Value, json};

use super::*;
use crate::status::FieldError;

fn policy(spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": "default"}, "spec": spec})
}

fn fields(errs: &[FieldError]) -> Vec<(String, String)> {
    errs.iter()
        .map(|e| (e.field.clone(), e.message.clone()))
        .collect()
}

fn one(field: &str, message: &str) -> Vec<(String, String)> {
    vec![(field.to_string(), message.to_string())]
}

#[test]
fn normalize_always_writes_spec_and_pod_selector() {
    let n = normalize(&json!({"metadata": {"name": "p"}, "bogus": 1})).expect("normalize");
    assert_eq!(n["spec"], json!({"podSelector": {}}));
    assert!(n.get("bogus").is_none());
    let n = normalize(&policy(json!({"podSelector": {"matchLabels": {"a": "b"}}}))).expect("ok");
    assert_eq!(n["spec"]["podSelector"], json!({"matchLabels": {"a": "b"}}));
    assert!(normalize(&policy(json!({"ingress": "no"}))).is_err());
}

#[test]
fn defaults_policy_types_from_the_rules_and_tcp_ports() {
    let mut p = policy(json!({"podSelector": {}}));
    defaults(&mut p);
    assert_eq!(p["spec"]["policyTypes"], json!(["Ingress"]));

    let mut p = policy(
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}],
        "egress": [{"ports": [{"port": 53, "protocol": "UDP"}, {"port": "dns"}]}]}),
    );
    defaults(&mut p);
    assert_eq!(p["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(p["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
    assert_eq!(p["spec"]["egress"][0]["ports"][0]["protocol"], "UDP");
    assert_eq!(p["spec"]["egress"][0]["ports"][1]["protocol"], "TCP");

    // An empty egress list does not make an Egress policy; named types are kept as they are.
    let mut p = policy(json!({"egress": []}));
    defaults(&mut p);
    assert_eq!(p["spec"]["policyTypes"], json!(["Ingress"]));
    let mut p = policy(json!({"policyTypes": ["Egress"], "ingress": [{}]}));
    defaults(&mut p);
    assert_eq!(p["spec"]["policyTypes"], json!(["Egress"]));
}

#[test]
fn docs_examples_are_valid() {
    for spec in [
        // default deny all ingress
        json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        // default deny all ingress and egress
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        // the test-network-policy example of kube's docs
        json!({"podSelector": {"matchLabels": {"role": "db"}}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [
                {"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}},
                {"namespaceSelector": {"matchLabels": {"project": "myproject"}}},
                {"podSelector": {"matchLabels": {"role": "frontend"}}}],
              "ports": [{"protocol": "TCP", "port": 6379}]}],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}],
              "ports": [{"protocol": "TCP", "port": 5978}]}]}),
        // namespace and pod selector in one peer, a port range, a named port
        json!({"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["a"]}]},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"user": "alice"}},
                                   "podSelector": {"matchLabels": {"role": "client"}}}],
              "ports": [{"port": 32000, "endPort": 32768}, {"port": "http", "protocol": "SCTP"}]}]}),
        json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "fd00::/8",
            "except": ["fd00:1::/32"]}}]}]}),
    ] {
        assert_eq!(fields(&validate(&policy(spec.clone()))), vec![], "{spec}");
    }
}

#[test]
fn ports_are_checked_as_kube() {
    let port = |p: Value| policy(json!({"podSelector": {}, "ingress": [{"ports": [p]}]}));
    let path = "spec.ingress[0].ports[0]";
    assert_eq!(
        fields(&validate(&port(json!({"protocol": "ICMP", "port": 1})))),
        one(
            &format!("{path}.protocol"),
            "Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\""
        )
    );
    assert_eq!(
        fields(&validate(&port(json!({"port": 0})))),
        one(
            &format!("{path}.port"),
            "Invalid value: 0: must be between 1 and 65535, inclusive"
        )
    );
    assert_eq!(
        fields(&validate(&port(json!({"port": 100, "endPort": 99})))),
        one(
            &format!("{path}.endPort"),
            "Invalid value: 99: must be greater than or equal to `port`"
        )
    );
    assert_eq!(
        fields(&validate(&port(json!({"port": 100, "endPort": 70000})))),
        one(
            &format!("{path}.endPort"),
            "Invalid value: 70000: must be between 1 and 65535, inclusive"
        )
    );
    assert_eq!(
        fields(&validate(&port(json!({"port": "http", "endPort": 90})))),
        one(
            &format!("{path}.endPort"),
            "Invalid value: 90: may not be specified when `port` is non-numeric"
        )
    );
    assert_eq!(
        fields(&validate(&port(json!({"endPort": 90})))),
        one(
            &format!("{path}.endPort"),
            "Invalid value: 90: may not be specified when `port` is not specified"
        )
    );
    let errs = validate(&port(json!({"port": "-Web--server-name-"})));
    let messages: Vec<&str> = errs.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "Invalid value: \"-Web--server-name-\": must be no more than 15 characters",
            "Invalid value: \"-Web--server-name-\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            "Invalid value: \"-Web--server-name-\": must not contain consecutive hyphens",
            "Invalid value: \"-Web--server-name-\": must not begin or end with a hyphen",
        ]
    );
    assert_eq!(
        validation::port_name_errors("8080"),
        ["must contain at least one letter (a-z)"]
    );
}

#[test]
fn peers_and_ip_blocks_are_checked_as_kube() {
    let peer = |p: Value| policy(json!({"podSelector": {}, "egress": [{"to": [p]}]}));
    let path = "spec.egress[0].to[0]";
    assert_eq!(
        fields(&validate(&peer(json!({})))),
        one(path, "Required value: must specify a peer")
    );
    assert_eq!(
        fields(&validate(&peer(
            json!({"podSelector": {}, "ipBlock": {"cidr": "10.0.0.0/8"}})
        ))),
        one(
            path,
            "Forbidden: may not specify both ipBlock and another peer"
        )
    );
    assert_eq!(
        fields(&validate(&peer(json!({"ipBlock": {"cidr": ""}})))),
        one(&format!("{path}.ipBlock.cidr"), "Required value")
    );
    assert_eq!(
        fields(&validate(&peer(json!({"ipBlock": {"cidr": "10.0.0.0"}})))),
        one(
            &format!("{path}.ipBlock.cidr"),
            "Invalid value: \"10.0.0.0\": not a valid CIDR"
        )
    );
    // Outside, equal to, wider than, or another family than `cidr`: all refused.
    for except in ["10.1.0.0/16", "192.168.0.0/16", "192.0.0.0/8", "fd00::/64"] {
        assert_eq!(
            fields(&validate(&peer(
                json!({"ipBlock": {"cidr": "192.168.0.0/16",
                "except": ["192.168.1.0/24", except]}})
            ))),
            one(
                &format!("{path}.ipBlock.except[1]"),
                &format!("Invalid value: {except:?}: must be a strict subset of `cidr`")
            ),
            "{except}"
        );
    }
    // A cidr with host bits set is read as its network, as Go's ParseCIDR does.
    assert!(
        validate(&peer(
            json!({"ipBlock": {"cidr": "192.168.7.1/16", "except": ["192.168.7.0/24"]}})
        ))
        .is_empty()
    );
    assert_eq!(
        fields(&validate(&peer(
            json!({"namespaceSelector": {"matchLabels": {"bad key!": "x"}}})
        )))[0]
            .0,
        format!("{path}.namespaceSelector.matchLabels")
    );
}

#[test]
fn selectors_and_policy_types_are_checked() {
    let errs = validate(&policy(json!({"podSelector": {"matchExpressions": [
        {"key": "app", "operator": "In"}]}})));
    assert_eq!(
        fields(&errs),
        one(
            "spec.podSelector.matchExpressions[0].values",
            "Required value: must be specified when `operator` is 'In' or 'NotIn'"
        )
    );
    assert_eq!(
        fields(&validate(&policy(
            json!({"policyTypes": ["Ingress", "Both"]})
        ))),
        one(
            "spec.policyTypes[1]",
            "Unsupported value: \"Both\": supported values: \"Ingress\", \"Egress\""
        )
    );
    assert_eq!(
        fields(&validate(&policy(
            json!({"policyTypes": ["Ingress", "Egress", "Ingress"]})
        ))),
        one(
            "spec.policyTypes",
            "Invalid value: []networking.PolicyType{\"Ingress\", \"Egress\", \"Ingress\"}: may not specify more than two policyTypes"
        )
    );
}

#[test]
fn table_shows_the_pod_selector_or_none() {
    let cols = columns(json!({"name": "Name"}), json!({"name": "Age"}));
    let names: Vec<&str> = cols.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["Name", "Pod-Selector", "Age"]);
    let p = policy(json!({"podSelector": {}}));
    assert_eq!(
        cells(&p, "p".into(), "5s".into()),
        [json!("p"), json!("<none>"), json!("5s")]
    );
    let p = policy(json!({"podSelector": {"matchLabels": {"role": "db"},
        "matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["b", "a"]}]}}));
    assert_eq!(
        cells(&p, "p".into(), "5s".into())[1],
        json!("app notin (a,b),role=db")
    );
}
